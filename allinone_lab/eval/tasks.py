"""Evaluation routines for every downstream task; each takes a model and iterables of batches.

Evaluation is deterministic: the model is put in eval mode (no dropout, fixed rolling positions) and
the data should sample the middle frame of each segment. Batch keys follow
:mod:`allinone_lab.train.objectives`; evaluation needs nothing from training.

Multi-clip testing (the paper's "3 x 3" rows): a ``video`` batch of shape ``(B, K, S, C, H, W)`` holds K clips
of S frames for each video. Every score (video embedding, VTM logit, multiple-choice score, QA logits) is then
computed for each clip on its own and averaged over the K clips (:func:`over_clips`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..model import AllInOne
from .metrics import accuracy, retrieval_metrics, topk_accuracy

Batches = Iterable[dict[str, Tensor]]


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _match_logit(model: AllInOne, ids: Tensor, mask: Tensor, video: Tensor) -> Tensor:
    return model.vtm_logits(model(video.to(ids.device), ids, mask))[:, 1]


def _choice_scores(model: AllInOne, ids: Tensor, mask: Tensor, video: Tensor) -> Tensor:
    return model.choice_scores(video.to(ids.device), ids, mask)


def _answer_logits(model: AllInOne, ids: Tensor, mask: Tensor, video: Tensor) -> Tensor:
    return model.qa_head(model(video.to(ids.device), ids, mask).pooled)


def over_clips(video: Tensor, score: Callable[[Tensor], Tensor]) -> Tensor:
    """``score`` of a batch of videos, as float: ``video (B, S, C, H, W)`` (one clip per video) gives
    ``score(video)``; ``video (B, K, S, C, H, W)`` (K clips per video) gives the mean over the clips of
    ``score(video[:, k])``, one forward per clip, so that a multi-clip score is the average of the clips'
    scores (the paper's multi-clip test)."""
    if video.dim() == 5:
        return score(video).float()
    if video.dim() != 6 or video.shape[1] < 1:
        raise ValueError(f"video of shape {tuple(video.shape)}: expected (B, S, C, H, W), or "
                         f"(B, K, S, C, H, W) with K >= 1 clips per video")
    return torch.stack([score(video[:, k]).float() for k in range(video.shape[1])]).mean(0)


@torch.no_grad()
def encode_videos(model: AllInOne, batches: Batches) -> Tensor:
    """Unit video embeddings ``(V, E)``, one forward per video. A multi-clip batch ``(B, K, S, C, H, W)``
    gives the mean of the K clips' unit embeddings, so that a text's cosine similarity with it is the average
    of its similarities with the clips."""
    model.eval()
    dev = _device(model)
    return torch.cat([over_clips(b["video"], lambda v: model.encode_video(v.to(dev))).cpu() for b in batches])


@torch.no_grad()
def encode_texts(model: AllInOne, batches: Batches) -> Tensor:
    """Unit text embeddings ``(T, E)``, one forward per text."""
    model.eval()
    dev = _device(model)
    return torch.cat(
        [model.encode_text(b["input_ids"].to(dev), b["attention_mask"].to(dev)).float().cpu() for b in batches]
    )


@torch.no_grad()
def rerank_with_vtm(model: AllInOne, similarity: Tensor, videos: Tensor, text_ids: Tensor, text_mask: Tensor,
                    k: int) -> Tensor:
    """Re-score each text's top-``k`` videos with the VTM "match" logit (joint input); the others keep
    their dual-stream score minus a margin so they stay below every re-scored video.
    ``videos (V, S, C, H, W)``, or ``(V, K, S, C, H, W)`` for K clips per video (the logit averaged over
    the clips)."""
    model.eval()
    dev = _device(model)
    k = min(k, similarity.shape[1])
    top = similarity.topk(k, dim=1).indices
    rescored = similarity.clone() - (similarity.max() - similarity.min() + 1) * 1e3
    for text in range(similarity.shape[0]):
        cand = top[text]
        ids, mask = text_ids[text].expand(k, -1).to(dev), text_mask[text].expand(k, -1).to(dev)
        rescored[text, cand] = over_clips(videos[cand], partial(_match_logit, model, ids, mask)).cpu()
    return rescored


def evaluate_retrieval(model: AllInOne, video_batches: Batches, text_batches: Batches, text_to_video: Tensor,
                       ties: str = "pessimistic") -> dict[str, float]:
    """Dual-stream retrieval: encode each video and each text once, rank by cosine similarity."""
    similarity = encode_texts(model, text_batches) @ encode_videos(model, video_batches).t()
    return retrieval_metrics(similarity, text_to_video, ties)


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def encode_sharded(encode: Callable[[AllInOne, Batches], Tensor], model: AllInOne, dataset: Dataset,
                   batch_size: int, collate_fn: Callable[[list[Any]], dict[str, Tensor]],
                   num_workers: int = 0) -> Tensor:
    """Embed ``dataset`` with ``encode`` (:func:`encode_videos` or :func:`encode_texts`), split across the
    processes of a data-parallel job: each encodes a contiguous share and the shares are gathered, so every
    process returns all ``(N, E)`` embeddings in dataset order. Without a process group it encodes
    everything in this process."""
    rank, world = _world()
    total = len(dataset)  # type: ignore[arg-type]
    per = -(-total // world)
    share = range(min(total, rank * per), min(total, (rank + 1) * per))
    dim = model.config.vtc_dim
    if len(share):
        loader = DataLoader(Subset(dataset, share), batch_size=batch_size, shuffle=False,
                            num_workers=num_workers, collate_fn=collate_fn)
        local = encode(model, loader)
    else:
        local = torch.zeros(0, dim)
    if world == 1:
        return local
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    padded = torch.zeros(per, dim, device=device)
    padded[: len(local)] = local.to(device)
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat(parts).cpu()[:total]


def evaluate_retrieval_sharded(model: AllInOne, videos: Dataset, texts: Dataset, text_to_video: Tensor,
                               collate_fn: Callable[[list[Any]], dict[str, Tensor]], batch_size: int = 32,
                               ties: str = "pessimistic", num_workers: int = 0) -> dict[str, float]:
    """:func:`evaluate_retrieval` with the video and text embeddings computed across all processes
    (each encodes ``1/world`` of each set); every process returns the same metrics."""
    text_emb = encode_sharded(encode_texts, model, texts, batch_size, collate_fn, num_workers)
    video_emb = encode_sharded(encode_videos, model, videos, batch_size, collate_fn, num_workers)
    return retrieval_metrics(text_emb @ video_emb.t(), text_to_video, ties)


def _per_item(predictions: Tensor, targets: Tensor) -> dict[str, Any]:
    """Each item's prediction and whether it is right (a target of -1 is never right), in batch order."""
    right = (predictions == targets) & (targets >= 0)
    return {"predictions": predictions.tolist(), "correct": right.tolist()}


@torch.no_grad()
def evaluate_multiple_choice(model: AllInOne, batches: Batches, per_item: bool = False) -> dict[str, Any]:
    """Accuracy (percent) when the candidates' scores compete (VTM match logit, or the MC head); with K clips
    per video (``video (B, K, S, C, H, W)``) each candidate's score is averaged over the clips.

    Batches may carry ``subset (B, K)``, a boolean mask of candidates (the answer included, e.g. the answer
    and its temporal-only distractors): ``subset_accuracy`` is then the accuracy among those alone over the
    batches that carry one, from the same forward pass, and ``subset_chance`` its chance level. ``per_item`` adds ``predictions`` (the chosen
    candidate of each item) and ``correct`` (booleans), in the order of the batches: what a score that
    combines two evaluations item by item needs (VCR's Q->AR)."""
    model.eval()
    dev = _device(model)
    predictions, answers, subset_predictions, subset_answers, subset_sizes = [], [], [], [], []
    for b in batches:
        ids, mask = b["input_ids"].to(dev), b["attention_mask"].to(dev)
        scores = over_clips(b["video"], partial(_choice_scores, model, ids, mask)).cpu()
        predictions.append(scores.argmax(1))
        answers.append(b["answer"])
        if "subset" in b:
            subset_predictions.append(scores.masked_fill(~b["subset"], float("-inf")).argmax(1))
            subset_answers.append(b["answer"])
            subset_sizes.append(b["subset"].sum(1).float())
    result: dict[str, Any] = {"accuracy": accuracy(torch.cat(predictions), torch.cat(answers)),
                              "chance": 100.0 / scores.shape[1]}
    if subset_predictions:
        result["subset_accuracy"] = accuracy(torch.cat(subset_predictions), torch.cat(subset_answers))
        result["subset_chance"] = float(100.0 * (1.0 / torch.cat(subset_sizes)).mean())
    if per_item:
        result.update(_per_item(torch.cat(predictions), torch.cat(answers)))
    return result


@torch.no_grad()
def evaluate_open_ended_qa(model: AllInOne, batches: Batches, per_item: bool = False) -> dict[str, Any]:
    """Accuracy (percent) over the answer vocabulary; answers outside it (-1) count as wrong. With K clips
    per video (``video (B, K, S, C, H, W)``) the answer logits are averaged over the clips. ``per_item``
    adds ``predictions`` (answer ids) and ``correct`` (booleans) in the order of the batches."""
    model.eval()
    dev = _device(model)
    predictions, answers = [], []
    for b in batches:
        ids, mask = b["input_ids"].to(dev), b["attention_mask"].to(dev)
        logits = over_clips(b["video"], partial(_answer_logits, model, ids, mask))
        predictions.append(logits.argmax(1).cpu())
        answers.append(b["answer_label"])
    result: dict[str, Any] = {"accuracy": accuracy(torch.cat(predictions), torch.cat(answers))}
    if per_item:
        result.update(_per_item(torch.cat(predictions), torch.cat(answers)))
    return result


@torch.no_grad()
def evaluate_cloze(model: AllInOne, batches: Batches) -> dict[str, float]:
    """MLM accuracy (percent) on masked words (``input_ids`` already masked, ``mlm_labels``), overall and
    per group: ``temporal``/``static`` from a boolean ``temporal`` key, and each value of a ``kind`` list."""
    model.eval()
    dev = _device(model)
    right: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for b in batches:
        out = model(b["video"].to(dev), b["input_ids"].to(dev), b["attention_mask"].to(dev))
        labels = b["mlm_labels"]
        hit = (model.mlm_logits(out).argmax(-1).cpu() == labels) & (labels != -100)
        asked = (labels != -100).sum(1)
        groups: list[set[str]] = [{"all"} for _ in range(len(labels))]
        if "temporal" in b:
            for group, temporal in zip(groups, b["temporal"].tolist(), strict=True):
                group.add("temporal" if temporal else "static")
        if "kind" in b:
            for group, kind in zip(groups, b["kind"], strict=True):
                group.add(str(kind))
        for i, group in enumerate(groups):
            for key in group:
                right[key] += int(hit[i].sum())
                total[key] += int(asked[i])
    return {f"cloze_acc_{k}": 100.0 * right[k] / total[k] for k in sorted(total) if total[k]}


@torch.no_grad()
def cloze_confusion(model: AllInOne, batches: Batches) -> dict[int, dict[int, int]]:
    """For every asked position (``mlm_labels`` not -100): ``{true id: {predicted id: count}}``, the argmax
    over the whole vocabulary; shows which word a wrong prediction picks (e.g. "right" read as "left")."""
    model.eval()
    dev = _device(model)
    counts: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for b in batches:
        out = model(b["video"].to(dev), b["input_ids"].to(dev), b["attention_mask"].to(dev))
        labels = b["mlm_labels"]
        asked = labels != -100
        predicted = model.mlm_logits(out).argmax(-1).cpu()[asked]
        for true, guess in zip(labels[asked].tolist(), predicted.tolist(), strict=True):
            counts[true][guess] += 1
    return {true: dict(row) for true, row in counts.items()}


@torch.no_grad()
def extract_features(model: AllInOne, batches: Batches) -> tuple[Tensor, Tensor]:
    """Frozen video features for a linear probe: the frame-averaged video CLS ``(N, D)`` and ``label (N,)``."""
    model.eval()
    dev = _device(model)
    feats, labels = [], []
    for b in batches:
        feats.append(model(video=b["video"].to(dev)).video_tokens[:, 0].float().cpu())
        labels.append(b["label"])
    return torch.cat(feats), torch.cat(labels)


def linear_probe(train_features: Tensor, train_labels: Tensor, test_features: Tensor, test_labels: Tensor,
                 num_classes: int | None = None, epochs: int = 100, lr: float = 1e-2, weight_decay: float = 1e-4,
                 seed: int = 0) -> dict[str, float]:
    """Train one linear layer on frozen features (full-batch AdamW on standardised features) and report
    top-1/5/10 accuracy on the test features."""
    classes = num_classes or int(max(train_labels.max(), test_labels.max())) + 1
    mean, std = train_features.mean(0), train_features.std(0).clamp(min=1e-6)
    x_train, x_test = (train_features - mean) / std, (test_features - mean) / std
    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(x_train.shape[1], classes)
    with torch.no_grad():
        layer.weight.normal_(0, 0.01, generator=gen)
        layer.bias.zero_()
    opt = torch.optim.AdamW(layer.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(layer(x_train), train_labels).backward()
        opt.step()
    with torch.no_grad():
        return topk_accuracy(layer(x_test), test_labels, ks=tuple(k for k in (1, 5, 10) if k <= classes))
