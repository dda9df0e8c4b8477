"""Objectives: modules that wrap the model and turn one batch into a weighted loss.

An objective is an ``nn.Module`` whose ``forward(batch)`` returns ``(loss, metrics)``, so that
``DistributedDataParallel`` can wrap it whatever model methods it calls.

Batch keys are those of :mod:`allinone_lab.data.datasets` (tensors, batch dimension first):
    video ``(B, S, C, H, W)``, input_ids / attention_mask ``(B, m)`` — the paired caption;
    mlm_input_ids / mlm_labels ``(B, m)`` — the masked caption and its targets (-100 where nothing is asked);
    vtm_video ``(B, S, C, H, W)``, vtm_input_ids / vtm_attention_mask ``(B, m)`` and vtm_label ``(B,)`` —
    optional VTM pairs prepared by the data (1 = matched); when absent, negatives are made in the batch
    by giving half the captions another item's video;
    multiple choice: input_ids / attention_mask ``(B, K, m)`` and answer ``(B,)``;
    open-ended QA: answer_label ``(B,)`` (-1: outside the answer vocabulary).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..model import AllInOne
from ..ot import cosine_cost, ipot, wasserstein
from .distributed import is_distributed, world_size
from .losses import mlm_loss, multiple_choice_loss, vtc_loss, vtm_loss

OBJECTIVES = ("vtm", "mlm", "vtc", "ot")
# Batch entry set by Pretraining.step_inputs: the masked words of the whole optimizer step per micro-batch.
MLM_ASKED_PER_BATCH = "mlm_asked_per_batch"

__all__ = ["MultipleChoice", "OpenEndedQA", "Pretraining", "Retrieval", "balanced_mlm_loss", "word_patch_alignment"]


class Pretraining(nn.Module):
    """VTM + MLM (+ VTC, + word-patch optimal-transport alignment) with real per-loss weights: the
    total is ``sum(weight * loss)``. A weight of 0 skips that loss's computation entirely.

    ``ot`` is the transport cost between the words and the (frame-averaged) patches of each matched pair
    in the VTM pass, under the IPOT plan of their cosine cost (the plan carries no gradient).
    """

    def __init__(self, model: AllInOne, weights: dict[str, float], vtm_neg_prob: float = 0.5) -> None:
        super().__init__()
        unknown = sorted(set(weights) - set(OBJECTIVES))
        if unknown:
            raise ValueError(f"loss weights: unknown objective(s) {unknown}; expected names in {list(OBJECTIVES)}")
        if any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
            raise ValueError(f"loss weights {weights}: expected non-negative weights, at least one positive")
        self.model = model
        self.weights = {name: float(weights.get(name, 0.0)) for name in OBJECTIVES}
        self.vtm_neg_prob = vtm_neg_prob

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        model, w = self.model, self.weights
        total = torch.zeros((), device=batch["video"].device)
        metrics: dict[str, Tensor] = {}
        if w["mlm"]:
            out = model(batch["video"], batch["mlm_input_ids"], batch["attention_mask"])
            labels = batch["mlm_labels"]
            asked = labels != -100
            # The vocabulary projection only where a word is asked: (n_masked, V), not (B, m, V).
            logits = model.mlm_head(out.text_tokens[asked])
            per_batch = batch.get(MLM_ASKED_PER_BATCH)
            loss = balanced_mlm_loss(logits, labels[asked], per_batch)
            total = total + w["mlm"] * loss
            metrics["mlm_loss"] = loss.detach()
            right = (logits.argmax(-1) == labels[asked]).float()
            # Weighted like the loss: the mean over micro-batches is the accuracy over the step's masked words.
            metrics["mlm_acc"] = right.mean() if per_batch is None else right.sum() / per_batch.clamp(min=1)
        if w["vtm"] or w["ot"]:
            video, ids, mask, labels = self.vtm_pairs(batch)
            joint = model(video, ids, mask)
        if w["ot"]:
            loss = word_patch_alignment(joint, ids, mask, labels, model.config.num_prefix_tokens)
            total = total + w["ot"] * loss
            metrics["ot_loss"] = loss.detach()
        if w["vtm"]:
            logits = model.vtm_logits(joint)
            loss = vtm_loss(logits, labels)
            total = total + w["vtm"] * loss
            metrics["vtm_loss"] = loss.detach()
            metrics["vtm_acc"] = (logits.argmax(-1) == labels).float().mean()
        if w["vtc"]:
            text = model.encode_text(batch["input_ids"], batch["attention_mask"])
            video = model.encode_video(batch["video"])
            loss = vtc_loss(text, video, model.vtc_head.log_scale)
            total = total + w["vtc"] * loss
            metrics["vtc_loss"] = loss.detach()
        metrics["loss"] = total.detach()
        return total, metrics

    def step_inputs(self, batches: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Called by the training loop with this process's micro-batches of one optimizer step before it runs
        them; the result is added to each. Here ``mlm_asked_per_batch``: the masked words of the whole step
        (every process, every micro-batch) per micro-batch, the normaliser of :func:`balanced_mlm_loss`."""
        if not self.weights["mlm"]:
            return {}
        device = next(self.parameters()).device
        asked = sum(int((b["mlm_labels"] != -100).sum()) for b in batches)
        counts = torch.tensor([float(asked), float(len(batches))], device=device)
        if is_distributed():
            torch.distributed.all_reduce(counts)
        return {MLM_ASKED_PER_BATCH: counts[0] / counts[1]}

    def vtm_pairs(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(video (B, S, C, H, W), ids (B, m), mask (B, m), labels (B,))``: the data's pairs, or
        in-batch negatives."""
        ids, mask = batch["input_ids"], batch["attention_mask"]
        if "vtm_label" in batch:
            return (batch.get("vtm_video", batch["video"]), batch.get("vtm_input_ids", ids),
                    batch.get("vtm_attention_mask", mask), batch["vtm_label"])
        video = batch["video"]
        size = video.shape[0]
        if size < 2:
            return video, ids, mask, torch.ones(size, dtype=torch.long, device=video.device)
        negative = torch.rand(size, device=video.device) < self.vtm_neg_prob
        other = (torch.arange(size, device=video.device) + torch.randint(1, size, (size,), device=video.device)) % size
        index = torch.where(negative, other, torch.arange(size, device=video.device))
        return video[index], ids, mask, (~negative).long()


def word_patch_alignment(joint, ids: Tensor, mask: Tensor, labels: Tensor, prefix: int,
                         special_ids: tuple[int, ...] = (0, 101, 102)) -> Tensor:
    """Mean transport cost between real words (no padding, [CLS] or [SEP]) and patch tokens over the
    matched pairs (``labels == 1``) of a joint forward pass ``joint``; 0 when there are none."""
    matched = labels == 1
    if not matched.any():
        return joint.pooled.sum() * 0.0
    words = joint.text_tokens[matched]
    patches = joint.video_tokens[matched][:, prefix:]
    word_mask = mask[matched].bool()
    for special in special_ids:
        word_mask &= ids[matched] != special
    cost = cosine_cost(words, patches)
    plan = ipot(cost.detach(), word_mask, None)
    return wasserstein(cost, plan).mean()


def balanced_mlm_loss(logits: Tensor, labels: Tensor, asked_per_batch: Tensor | None = None) -> Tensor:
    """MLM loss normalised by the masked positions of the *global* batch, so that averaging the
    per-process losses (as data parallelism does) equals the loss of one process holding every item.

    ``logits (..., V)`` and ``labels (...)`` (-100 where nothing is asked). ``asked_per_batch``: the masked
    positions of the whole optimizer step divided by its number of micro-batches (every process, every
    accumulated micro-batch; :meth:`Pretraining.step_inputs`), so that the mean over micro-batches is the
    mean over every masked word of the step however it is split; None: those of the micro-batches the
    processes run now (all-reduced here)."""
    if asked_per_batch is not None:
        return mlm_loss(logits, labels) * (labels != -100).sum() / asked_per_batch.clamp(min=1)
    if not is_distributed():
        return mlm_loss(logits, labels)
    local = (labels != -100).sum()
    total = local.detach().clone().float()
    torch.distributed.all_reduce(total)
    per_process = total / world_size()
    return mlm_loss(logits, labels) * local / per_process.clamp(min=1)


class Retrieval(nn.Module):
    """Retrieval fine-tuning: VTC over unimodal features plus VTM on the joint input.

    VTM negatives are hard: each caption is paired with another video of the batch drawn in proportion to
    its (detached) VTC similarity, and each video with another caption likewise.
    """

    def __init__(self, model: AllInOne, weights: dict[str, float] | None = None) -> None:
        super().__init__()
        self.model = model
        self.weights = {"vtc": 1.0, "vtm": 1.0, **(weights or {})}

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        model = self.model
        video, ids, mask = batch["video"], batch["input_ids"], batch["attention_mask"]
        text_emb, video_emb = model.encode_text(ids, mask), model.encode_video(video)
        loss_vtc = vtc_loss(text_emb, video_emb, model.vtc_head.log_scale)
        metrics = {"vtc_loss": loss_vtc.detach()}
        total = self.weights["vtc"] * loss_vtc
        if self.weights["vtm"] and video.shape[0] > 1:
            size = video.shape[0]
            with torch.no_grad():
                sim = (text_emb @ video_emb.t()).float()
                sim.fill_diagonal_(float("-inf"))
                neg_video = torch.multinomial(sim.softmax(dim=1), 1).squeeze(1)
                neg_text = torch.multinomial(sim.t().softmax(dim=1), 1).squeeze(1)
            videos = torch.cat((video, video[neg_video], video))
            texts = torch.cat((ids, ids, ids[neg_text]))
            masks = torch.cat((mask, mask, mask[neg_text]))
            labels = torch.cat((torch.ones(size), torch.zeros(2 * size))).long().to(video.device)
            logits = model.vtm_logits(model(videos, texts, masks))
            loss_vtm = vtm_loss(logits, labels)
            total = total + self.weights["vtm"] * loss_vtm
            metrics["vtm_loss"] = loss_vtm.detach()
            metrics["vtm_acc"] = (logits.argmax(-1) == labels).float().mean()
        metrics["loss"] = total.detach()
        return total, metrics


class MultipleChoice(nn.Module):
    """Multiple choice (and multiple-choice QA): the candidates' scores compete in one softmax."""

    def __init__(self, model: AllInOne) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        scores = self.model.choice_scores(batch["video"], batch["input_ids"], batch["attention_mask"])
        loss = multiple_choice_loss(scores, batch["answer"])
        return loss, {"loss": loss.detach(), "acc": (scores.argmax(1) == batch["answer"]).float().mean()}


class OpenEndedQA(nn.Module):
    """Open-ended QA as classification over the training split's answers (``answer_label`` indexes them;
    -1, an answer outside the vocabulary, is ignored in training)."""

    def __init__(self, model: AllInOne) -> None:
        super().__init__()
        if model.qa_head is None:
            raise ValueError("OpenEndedQA needs a model built with ModelConfig.num_answers > 0")
        self.model = model

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        out = self.model(batch["video"], batch["input_ids"], batch["attention_mask"])
        logits = self.model.qa_head(out.pooled)
        labels = batch["answer_label"]
        loss = torch.nn.functional.cross_entropy(logits.float(), labels, ignore_index=-1)
        return loss, {"loss": loss.detach(), "acc": (logits.argmax(1) == labels).float().mean()}
