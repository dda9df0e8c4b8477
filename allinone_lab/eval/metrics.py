"""Evaluation metrics: retrieval ranks with an explicit tie policy, accuracies, top-k.

Tied scores: a retrieval rank counts how many *wrong* items score above the best right item, plus the
tied wrong items according to ``ties``:

- ``pessimistic`` (default): every tied wrong item ranks first. A model that gives everything the same
  score gets the worst rank, never a lucky R@1 (argsort-based code returns whichever tied item comes
  first in memory, which can make a collapsed model look perfect).
- ``optimistic``: tied wrong items rank after the right one.
- ``mean``: the expected rank under random tie-breaking.
"""

from __future__ import annotations

import torch
from torch import Tensor

TIE_POLICIES = ("pessimistic", "optimistic", "mean")


def ranks(scores: Tensor, correct: Tensor, ties: str = "pessimistic") -> Tensor:
    """1-based rank of the best correct item for each query.

    Args:
        scores: ``(Q, N)`` similarity of each query to each item.
        correct: ``(Q, N)`` boolean, True where an item answers the query (at least one per row).
    Returns:
        ``(Q,)`` float ranks (``mean`` ties can give halves).
    """
    if ties not in TIE_POLICIES:
        raise ValueError(f"ties={ties!r}: expected one of {list(TIE_POLICIES)}")
    if scores.shape != correct.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and correct {tuple(correct.shape)} differ in shape")
    if not correct.any(dim=1).all():
        raise ValueError("every query needs at least one correct item")
    scores = scores.float()
    best = scores.masked_fill(~correct, float("-inf")).max(dim=1, keepdim=True).values
    wrong = ~correct
    higher = ((scores > best) & wrong).sum(dim=1).float()
    tied = ((scores == best) & wrong).sum(dim=1).float()
    extra = {"pessimistic": tied, "optimistic": torch.zeros_like(tied), "mean": tied / 2}[ties]
    return 1 + higher + extra


def rank_metrics(query_ranks: Tensor, prefix: str = "") -> dict[str, float]:
    """R@1/5/10 (percent), median and mean rank."""
    r = query_ranks.float()
    return {
        f"{prefix}R@1": float((r <= 1).float().mean() * 100),
        f"{prefix}R@5": float((r <= 5).float().mean() * 100),
        f"{prefix}R@10": float((r <= 10).float().mean() * 100),
        f"{prefix}MdR": float(r.median()),
        f"{prefix}MnR": float(r.mean()),
    }


def retrieval_metrics(similarity: Tensor, text_to_video: Tensor, ties: str = "pessimistic") -> dict[str, float]:
    """Text-to-video and video-to-text metrics from a ``(T, V)`` similarity matrix.

    ``text_to_video (T,)`` gives each text's video; a video with several captions is retrieved by any of
    them (video-to-text counts the best-ranked caption), as MSR-VTT and the paragraph benchmarks define.
    """
    texts, videos = similarity.shape
    correct = torch.zeros(texts, videos, dtype=torch.bool, device=similarity.device)
    correct[torch.arange(texts, device=similarity.device), text_to_video.to(similarity.device)] = True
    metrics = rank_metrics(ranks(similarity, correct, ties), "t2v_")
    metrics.update(rank_metrics(ranks(similarity.t(), correct.t(), ties), "v2t_"))
    return metrics


def accuracy(predictions: Tensor, targets: Tensor) -> float:
    """Percent of ``predictions`` equal to ``targets``; a target of -1 (an answer outside the training
    vocabulary) is always wrong."""
    if predictions.numel() == 0:
        raise ValueError("accuracy of an empty set")
    right = (predictions == targets) & (targets >= 0)
    return float(right.float().mean() * 100)


def topk_accuracy(logits: Tensor, targets: Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Top-k accuracy (percent) of ``logits (N, C)`` against ``targets (N,)``."""
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hit = top == targets[:, None]
    return {f"top{k}": float(hit[:, :k].any(dim=1).float().mean() * 100) for k in ks}
