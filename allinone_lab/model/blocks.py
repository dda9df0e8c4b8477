"""Transformer blocks: timm's ViT ``Block`` plus the temporal module that runs before it.

The parameter names are timm's (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``,
``mlp.fc2``), so ViT/DeiT weights load 1:1. The TimeSformer and decoupled variants (Table 9) add their
own parameters beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from timm.models.vision_transformer import Attention, Block
from torch import Tensor, nn

from .layers import LayerNorm


@dataclass
class Layout:
    """How the ``(B*S, T, D)`` tokens of one forward pass are laid out.

    Attributes:
        frames: ``S``, frames per video (consecutive along the batch dimension).
        text_len: ``m``, text tokens at the start of each frame's sequence (0 for video only).
        attn_mask: boolean ``(B*S, 1, 1, T)`` (True = attend) or None.
    """

    frames: int
    text_len: int
    attn_mask: Tensor | None = None


def layer_norm(dim: int, eps: float, **factory) -> LayerNorm:
    return LayerNorm(dim, eps=eps, **factory)


class AllInOneBlock(Block):
    """Pre-norm ViT block preceded by an optional parameter-free temporal module.

    Args:
        temporal: a module called as ``temporal(x, num_frames, visual_start)`` (token rolling or channel
            shift), or None for no temporal interaction before this block.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        drop_path: float,
        eps: float,
        temporal: nn.Module | None = None,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__(
            dim,
            num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=True,
            drop_path=drop_path,
            proj_drop=proj_drop,
            norm_layer=partial(layer_norm, eps=eps),
        )
        self.temporal = temporal

    def forward(self, x: Tensor, layout: Layout) -> Tensor:  # type: ignore[override]
        if self.temporal is not None:
            x = self.temporal(x, layout.frames, layout.text_len)
        return super().forward(x, attn_mask=layout.attn_mask)


class TimeSformerBlock(AllInOneBlock):
    """Divided space-time attention: a temporal attention over each patch position across the ``S``
    frames (own parameters; output projection zero-initialised so the block starts as a ViT block),
    then the joint text-video attention and MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float, eps: float, **kw) -> None:
        super().__init__(dim, num_heads, mlp_ratio, drop_path, eps, **kw)
        self.temporal_norm = layer_norm(dim, eps)
        self.temporal_attn = Attention(dim, num_heads=num_heads, qkv_bias=True)
        self.temporal_fc = nn.Linear(dim, dim)

    def forward(self, x: Tensor, layout: Layout) -> Tensor:  # type: ignore[override]
        frames, start = layout.frames, layout.text_len + 1
        if frames > 1:
            bs, length, dim = x.shape
            patches = x[:, start:].reshape(bs // frames, frames, length - start, dim)
            patches = patches.transpose(1, 2).reshape(-1, frames, dim)  # (B*N, S, D)
            update = self.temporal_fc(self.temporal_attn(self.temporal_norm(patches)))
            update = update.reshape(bs // frames, length - start, frames, dim).transpose(1, 2)
            update = update.reshape(bs, length - start, dim)
            x = torch.cat((x[:, :start], x[:, start:] + self.drop_path1(update)), dim=1)
        return super().forward(x, layout)


class DecoupledBlock(AllInOneBlock):
    """Decoupled attention: self-attention within the text and within the video (over all frames'
    visual tokens) with their own parameters, then the joint per-frame attention and MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float, eps: float, **kw) -> None:
        super().__init__(dim, num_heads, mlp_ratio, drop_path, eps, **kw)
        self.text_norm = layer_norm(dim, eps)
        self.text_attn = Attention(dim, num_heads=num_heads, qkv_bias=True)
        self.video_norm = layer_norm(dim, eps)
        self.video_attn = Attention(dim, num_heads=num_heads, qkv_bias=True)

    def forward(self, x: Tensor, layout: Layout) -> Tensor:  # type: ignore[override]
        frames, m = layout.frames, layout.text_len
        bs, length, dim = x.shape
        text, video = x[:, :m], x[:, m:]
        if m:
            mask = None if layout.attn_mask is None else layout.attn_mask[..., :m]
            text = text + self.drop_path1(self.text_attn(self.text_norm(text), attn_mask=mask))
        if length > m:
            video = video.reshape(bs // frames, frames * (length - m), dim)
            video = video + self.drop_path1(self.video_attn(self.video_norm(video)))
            video = video.reshape(bs, length - m, dim)
        return super().forward(torch.cat((text, video), dim=1), layout)
