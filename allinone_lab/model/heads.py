"""Task heads on top of the backbone's outputs. Each takes features of width ``D``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import LayerNorm


class Pooler(nn.Module):
    """``tanh(Linear(text CLS))``: ``(B, D) -> (B, D)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dense = nn.Linear(dim, dim)

    def forward(self, cls_token: Tensor) -> Tensor:
        return torch.tanh(self.dense(cls_token))


class VTMHead(nn.Module):
    """Video-text matching: ``(B, D) -> (B, 2)`` logits; index 1 is "match"."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, 2)

    def forward(self, pooled: Tensor) -> Tensor:
        return self.fc(pooled)


class MLMHead(nn.Module):
    """BERT-style masked-language-model head: dense, GELU, LayerNorm, decoder to the vocabulary + bias.

    ``(B, m, D) -> (B, m, vocab)``. The decoder is not tied to the word embeddings.
    """

    def __init__(self, dim: int, vocab_size: int, eps: float = 1e-12) -> None:
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.norm = LayerNorm(dim, eps=eps)
        self.decoder = nn.Linear(dim, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, tokens: Tensor) -> Tensor:
        hidden = self.norm(F.gelu(self.dense(tokens)))
        return self.decoder(hidden) + self.bias


class VTCHead(nn.Module):
    """Video-text contrastive projections into a shared space with a (fixed or learnable) temperature.

    ``project_text``/``project_video``: ``(B, D) -> (B, out_dim)`` unit vectors.
    """

    def __init__(self, dim: int, out_dim: int = 512, temperature: float = 0.05, learnable: bool = False) -> None:
        super().__init__()
        self.text_proj = nn.Linear(dim, out_dim)
        self.video_proj = nn.Linear(dim, out_dim)
        log_scale = torch.tensor(math.log(1.0 / temperature))
        if learnable:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    @property
    def temperature(self) -> float:
        return float(torch.exp(-self.log_scale.detach()))

    def project_text(self, features: Tensor) -> Tensor:
        return F.normalize(self.text_proj(features), dim=-1)

    def project_video(self, features: Tensor) -> Tensor:
        return F.normalize(self.video_proj(features), dim=-1)

    def logits(self, text_embeds: Tensor, video_embeds: Tensor) -> Tensor:
        """Scaled cosine similarities ``(B_text, B_video)`` of unit embeddings."""
        return self.log_scale.exp() * text_embeds @ video_embeds.t()


class QAHead(nn.Module):
    """Open-ended QA classifier over an answer vocabulary: ``(B, D) -> (B, num_answers)``."""

    def __init__(self, dim: int, num_answers: int) -> None:
        super().__init__()
        hidden = dim // 2
        self.net = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(dim, hidden), LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, num_answers)
        )

    def forward(self, pooled: Tensor) -> Tensor:
        return self.net(pooled)


class MCHead(nn.Module):
    """Multiple-choice scorer: ``(B, D) -> (B,)`` one score per (video, candidate) pair."""

    def __init__(self, dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(0.1), nn.Linear(dim, hidden), LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, 1)
        )

    def forward(self, pooled: Tensor) -> Tensor:
        return self.net(pooled).squeeze(-1)
