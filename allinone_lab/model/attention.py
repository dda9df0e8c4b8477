"""Attention weights on demand: an explicit softmax path that records every attention map of a forward pass.

The blocks run timm's fused ``scaled_dot_product_attention``, which never materialises its weights. Inside
:func:`capture_attention` each attention module of the model is given, on the instance only, a forward that
computes ``softmax(q k^T / sqrt(d) + mask) v`` explicitly and stores the softmax. Leaving the context removes
those instance attributes again, so the normal forward pass is the class's fused one, untouched: no hooks,
no flags, no cost.

Recorded shapes (per block ``i``):

* ``joint[i]``: the block's text-video attention ``(B*S, heads, T, T)`` with ``T = m + L`` per frame
  (``temporal="flatten"``: ``(B, heads, m + S*L, m + S*L)``, one sequence per clip);
* ``extra["temporal_attn"][i]``: TimeSformer's attention across frames ``(B*N, heads, S, S)``;
* ``extra["text_attn"][i]`` ``(B*S, heads, m, m)`` and ``extra["video_attn"][i]``
  ``(B, heads, S*L, S*L)``: the decoupled variant's unimodal attentions.

Rolling acts *before* a block's attention: :attr:`AttentionMaps.rolled` gives the positions each block
rolls (their tokens move one frame). The permutation persists through the later blocks, so a position rolled
by several blocks holds a token displaced by all of them; :attr:`AttentionMaps.origins` gives the frame every
token came from, block by block.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from timm.models.vision_transformer import Attention
from torch import Tensor, nn

from .allinone import AllInOne, AllInOneOutput
from .temporal import TokenRolling

ATTENTION_NAMES: tuple[str, ...] = ("attn", "temporal_attn", "text_attn", "video_attn")


def explicit_attention(
    attn: Attention, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False
) -> tuple[Tensor, Tensor]:
    """timm ``Attention`` computed with an explicit softmax.

    Args:
        attn: a timm :class:`~timm.models.vision_transformer.Attention` module.
        x: ``(B, N, C)`` tokens.
        attn_mask: boolean ``(B, 1, 1, N)`` (True = attend) or an additive float mask, or None.
        is_causal: not used by this model; raises if set.

    Returns:
        ``(output (B, N, C), weights (B, heads, N, N))``; the output equals the fused path's.
    """
    if is_causal:
        raise ValueError("explicit_attention: is_causal=True is not supported (the model never uses it)")
    batch, length, _ = x.shape
    heads, head_dim = attn.num_heads, attn.head_dim
    attn_dim = getattr(attn, "attn_dim", heads * head_dim)
    gate_layer = getattr(attn, "gate", None)
    gate = gate_layer(x).sigmoid() if gate_layer is not None else None
    qkv = attn.qkv(x).reshape(batch, length, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    scores = (q * attn.scale) @ k.transpose(-2, -1)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    weights = scores.softmax(dim=-1)
    out = (attn.attn_drop(weights) @ v).transpose(1, 2).reshape(batch, length, attn_dim)
    out = getattr(attn, "norm", nn.Identity())(out)
    if gate is not None:
        out = out * gate
    return attn.proj_drop(attn.proj(out)), weights


@dataclass
class AttentionRecord:
    """Softmax weights recorded inside :func:`capture_attention`, detached.

    Attributes:
        joint: ``{block index: (B*S, heads, T, T)}`` the blocks' text-video attention.
        extra: ``{"temporal_attn" | "text_attn" | "video_attn": {block index: weights}}``.
    """

    joint: dict[int, Tensor] = field(default_factory=dict)
    extra: dict[str, dict[int, Tensor]] = field(default_factory=dict)

    def clear(self) -> None:
        self.joint.clear()
        self.extra.clear()


def _recording_forward(module: Attention, store: dict[int, Tensor], index: int):
    def forward(x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
        out, weights = explicit_attention(module, x, attn_mask, is_causal)
        store[index] = weights.detach()
        return out

    return forward


@contextmanager
def capture_attention(model: AllInOne) -> Iterator[AttentionRecord]:
    """Record every attention map of the forward passes run inside the context.

    Each later forward pass overwrites the previous one's entries. On exit the model is exactly as before
    (the fused attention, no hooks), also when the body raises.

    Example::

        with capture_attention(model) as record:
            model(video, text_ids, text_mask)
        weights = record.joint[0]  # (B*S, heads, T, T)
    """
    record = AttentionRecord()
    patched: list[nn.Module] = []
    try:
        for index, block in enumerate(model.blocks):
            for name in ATTENTION_NAMES:
                module = getattr(block, name, None)
                if module is None:
                    continue
                if not isinstance(module, Attention):
                    raise TypeError(
                        f"capture_attention: blocks[{index}].{name} is a {type(module).__name__}, expected timm's "
                        "Attention (the only attention the explicit path reproduces)"
                    )
                if "forward" in vars(module):
                    raise RuntimeError(f"capture_attention: blocks[{index}].{name} is already being captured")
                store = record.joint if name == "attn" else record.extra.setdefault(name, {})
                module.forward = _recording_forward(module, store, index)
                patched.append(module)
        yield record
    finally:
        for module in patched:
            vars(module).pop("forward", None)


def is_capturing(model: nn.Module) -> bool:
    """True while some attention module of ``model`` runs the explicit recording path."""
    return any(isinstance(m, Attention) and "forward" in vars(m) for m in model.modules())


@dataclass
class AttentionMaps:
    """One forward pass's attention maps with the layout needed to read them.

    Attributes:
        record: the recorded weights (see :class:`AttentionRecord`).
        output: the model's outputs for the same pass.
        frames: ``S``.
        text_len: ``m``, text tokens at the start of every sequence.
        visual_len: ``L``, visual tokens per frame (CLS [+ dist] + patches).
        temporal: the model's temporal mode.
        rolled: ``{block index: (from_previous, from_next)}`` visual positions (0 = video CLS) to which the
            block, just before its attention, moves the previous / next frame slot's token; empty without
            rolling.
        origins: ``(layers, S, L)`` the frame each visual token came from when each block's attention runs
            (:meth:`AllInOne.token_origins`).
        text_mask: ``(B, m)`` or None.
    """

    record: AttentionRecord
    output: AllInOneOutput
    frames: int
    text_len: int
    visual_len: int
    temporal: str
    rolled: dict[int, tuple[Tensor, Tensor]]
    origins: Tensor
    text_mask: Tensor | None

    @property
    def num_layers(self) -> int:
        return len(self.record.joint)


def rolled_positions(model: AllInOne, visual_len: int | None = None) -> dict[int, tuple[Tensor, Tensor]]:
    """``{block index: (from_previous, from_next)}`` for every block whose temporal module rolls tokens, as
    :func:`~allinone_lab.model.temporal.roll_positions` gives them (eval-mode positions for ``random``)."""
    length = model.config.visual_len if visual_len is None else visual_len
    out: dict[int, tuple[Tensor, Tensor]] = {}
    for index, block in enumerate(model.blocks):
        temporal = getattr(block, "temporal", None)
        if isinstance(temporal, TokenRolling):
            prev, nxt = temporal.positions(length)
            if prev.numel() + nxt.numel():
                out[index] = (prev.cpu(), nxt.cpu())
    return out


@torch.no_grad()
def attention_maps(
    model: AllInOne, video: Tensor, text_ids: Tensor, text_mask: Tensor | None = None
) -> AttentionMaps:
    """Run ``model`` (in eval mode, patches in raster order) on a batch and return its attention maps.

    Args:
        video: ``(B, S, C, H, W)``; text_ids, text_mask: ``(B, m)``.
    """
    was_training = model.training
    model.eval()
    try:
        with capture_attention(model) as record:
            output = model(video, text_ids, text_mask, shuffle_patches=False)
        visual_len = output.video_frame_tokens.shape[2]
        rolled = rolled_positions(model, visual_len) if video.shape[1] > 1 else {}
        origins = model.token_origins(video.shape[1], num_visual=visual_len)
    finally:
        model.train(was_training)
    return AttentionMaps(
        record=record,
        output=output,
        frames=video.shape[1],
        text_len=text_ids.shape[1],
        visual_len=visual_len,
        temporal=model.config.temporal,
        rolled=rolled,
        origins=origins,
        text_mask=text_mask,
    )
