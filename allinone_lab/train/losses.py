"""Training objectives: video-text matching, masked language modelling and video-text contrast.

Each loss is a plain function of logits or features; weights are applied by the caller.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .distributed import all_gather_with_grad, rank


def vtm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of the 2-way matching head. ``logits (B, 2)``, ``labels (B,)`` (1 = match)."""
    return F.cross_entropy(logits.float(), labels)


def mlm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy on masked positions. ``logits (..., V)``, ``labels (...)`` with -100 elsewhere.

    A batch without any masked position gives 0 (not NaN) and still keeps the graph.
    """
    flat_labels = labels.reshape(-1)
    if not (flat_labels != -100).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), flat_labels, ignore_index=-100)


def vtc_loss(text_embeds: Tensor, video_embeds: Tensor, log_scale: Tensor, gather: bool = True) -> Tensor:
    """Symmetric InfoNCE over unit embeddings ``(B, E)``; row ``i`` of each is a positive pair.

    With ``gather`` and an initialised process group, negatives come from every process: each process
    scores its own rows against all processes' rows (gradients flow back through the gather), so the
    mean over processes equals the loss of one process holding the global batch.
    """
    all_text, all_video = text_embeds, video_embeds
    offset = 0
    if gather:
        all_text, all_video = all_gather_with_grad(text_embeds), all_gather_with_grad(video_embeds)
        offset = rank() * text_embeds.shape[0]
    scale = log_scale.exp()
    labels = torch.arange(text_embeds.shape[0], device=text_embeds.device) + offset
    t2v = scale * text_embeds.float() @ all_video.float().t()
    v2t = scale * video_embeds.float() @ all_text.float().t()
    return (F.cross_entropy(t2v, labels) + F.cross_entropy(v2t, labels)) / 2


def multiple_choice_loss(scores: Tensor, answer: Tensor) -> Tensor:
    """Candidates compete in one softmax: ``scores (B, K)``, ``answer (B,)`` index of the right one."""
    return F.cross_entropy(scores.float(), answer)
