"""Evaluation routines for every downstream task; each takes a model and iterables of batches.

Evaluation is deterministic: the model is put in eval mode (no dropout, fixed rolling positions) and
the data should sample the middle frame of each segment. Batch keys follow
:mod:`allinone_lab.train.objectives`; evaluation needs nothing from training.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
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


@torch.no_grad()
def encode_videos(model: AllInOne, batches: Batches) -> Tensor:
    """Unit video embeddings ``(V, E)``, one forward per video."""
    model.eval()
    return torch.cat([model.encode_video(b["video"].to(_device(model))).float().cpu() for b in batches])


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
    their dual-stream score minus a margin so they stay below every re-scored video."""
    model.eval()
    dev = _device(model)
    k = min(k, similarity.shape[1])
    top = similarity.topk(k, dim=1).indices
    rescored = similarity.clone() - (similarity.max() - similarity.min() + 1) * 1e3
    for text in range(similarity.shape[0]):
        cand = top[text]
        out = model(videos[cand].to(dev), text_ids[text].expand(k, -1).to(dev), text_mask[text].expand(k, -1).to(dev))
        rescored[text, cand] = model.vtm_logits(out)[:, 1].float().cpu()
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


@torch.no_grad()
def evaluate_multiple_choice(model: AllInOne, batches: Batches) -> dict[str, float]:
    """Accuracy (percent) when the candidates' scores compete (VTM match logit, or the MC head).

    Batches may carry ``subset (B, K)``, a boolean mask of candidates (the answer included, e.g. the answer
    and its temporal-only distractors): ``subset_accuracy`` is then the accuracy among those alone over the
    batches that carry one, from the same forward pass."""
    model.eval()
    dev = _device(model)
    predictions, answers, subset_predictions, subset_answers = [], [], [], []
    for b in batches:
        scores = model.choice_scores(b["video"].to(dev), b["input_ids"].to(dev), b["attention_mask"].to(dev)).cpu()
        predictions.append(scores.argmax(1))
        answers.append(b["answer"])
        if "subset" in b:
            subset_predictions.append(scores.masked_fill(~b["subset"], float("-inf")).argmax(1))
            subset_answers.append(b["answer"])
    result = {"accuracy": accuracy(torch.cat(predictions), torch.cat(answers)), "chance": 100.0 / scores.shape[1]}
    if subset_predictions:
        result["subset_accuracy"] = accuracy(torch.cat(subset_predictions), torch.cat(subset_answers))
    return result


@torch.no_grad()
def evaluate_open_ended_qa(model: AllInOne, batches: Batches) -> dict[str, float]:
    """Accuracy (percent) over the answer vocabulary; answers outside it (-1) count as wrong."""
    model.eval()
    dev = _device(model)
    predictions, answers = [], []
    for b in batches:
        out = model(b["video"].to(dev), b["input_ids"].to(dev), b["attention_mask"].to(dev))
        predictions.append(model.qa_head(out.pooled).argmax(1).cpu())
        answers.append(b["answer_label"])
    return {"accuracy": accuracy(torch.cat(predictions), torch.cat(answers))}


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
