"""Parameter-free temporal modules: temporal token rolling (the paper's TTR) and TSM channel shift.

Both act on the visual tokens of a joint sequence laid out per frame as
``[text (m) ; video CLS (+ dist) ; patches (N)]`` and batched as ``(B*S, T, D)`` with ``T = m + L``
(``L`` visual tokens per frame). Text tokens and the video CLS are never touched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


def rolled_per_side(num_visual: int, ratio: float) -> int:
    """Tokens a layer rolls each way in time: ``floor(L * ratio / 2)`` of the ``L`` visual tokens per frame, and
    at least one for any ratio above 0 (so that a small patch grid never turns a positive ratio into time
    averaging: 17 tokens at ratio 0.1 roll one each way, not none). 197 tokens at 0.25 roll 24."""
    k = int(num_visual * ratio / 2)
    return max(k, 1) if ratio > 0 else 0


def layer_selection(selection: str, layer_offset: int) -> str:
    """The selection one rolled layer applies: ``alternating`` is ``block`` in its even rolled layers (0, 2, ...)
    and ``columns`` (the first and last ``k`` patches in column order) in its odd ones; others are unchanged."""
    if selection == "alternating":
        return "block" if layer_offset % 2 == 0 else "columns"
    return selection


def roll_positions(
    selection: str,
    num_visual: int,
    k: int,
    layer_offset: int = 0,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
    num_prefix: int = 1,
) -> tuple[Tensor, Tensor]:
    """Visual-token positions that take frame ``t-1``'s and frame ``t+1``'s tokens.

    Positions index the visual part of a frame (0 is the video CLS, never selected).

    Args:
        selection: ``block`` (positions ``1..k`` and the last ``k``, as the released implementation),
            ``random`` (``2k`` distinct positions drawn with ``generator``), ``varying`` (a
            contiguous block of ``2k`` positions that moves by ``2k`` with each layer) or ``alternating``
            (``block`` in the first rolled layer, then the first and last ``k`` patches in column order, and so
            on alternately: top and bottom rows, then left and right columns, of a square patch grid).
        num_visual: ``L``, visual tokens per frame including the CLS.
        k: positions rolled in each direction.
        layer_offset: index of this layer among the rolled layers (``varying`` and ``alternating``).
        num_prefix: visual tokens before the patches (CLS, plus the distillation token if any).

    Returns:
        ``(from_previous, from_next)``: two int64 tensors of ``k`` positions each.
    """
    selection = layer_selection(selection, layer_offset)
    candidates = num_visual - 1  # never the CLS at position 0
    if 2 * k > candidates:
        raise ValueError(f"cannot roll 2*{k} of {candidates} visual positions; lower roll_ratio")
    if selection == "block":
        prev = torch.arange(1, k + 1, device=device)
        nxt = torch.arange(num_visual - k, num_visual, device=device)
    elif selection == "random":
        chosen = torch.randperm(candidates, generator=generator)[: 2 * k].to(device) + 1
        prev, nxt = chosen[:k], chosen[k:]
    elif selection == "columns":
        side = math.isqrt(num_visual - num_prefix)
        if side * side != num_visual - num_prefix:
            raise ValueError(
                f"roll selection 'alternating' needs a square patch grid; got {num_visual - num_prefix} patches"
            )
        if 2 * k > side * side:
            raise ValueError(f"cannot roll 2*{k} of {side * side} patches; lower roll_ratio")
        rows = torch.arange(side, device=device)
        column_order = (rows[None, :] * side + rows[:, None]).flatten() + num_prefix  # patches column by column
        prev, nxt = column_order[:k], column_order[column_order.numel() - k :]
    elif selection == "varying":
        start = (layer_offset * 2 * k) % max(candidates, 1)
        chosen = (torch.arange(2 * k, device=device) + start) % candidates + 1
        prev, nxt = chosen[:k], chosen[k:]
    else:
        raise ValueError(
            f"roll selection {selection!r}: expected 'block', 'random', 'varying' or 'alternating'"
        )
    return prev, nxt


def roll_tokens(x: Tensor, num_frames: int, visual_start: int, prev: Tensor, nxt: Tensor) -> Tensor:
    """Temporal token rolling: move selected visual tokens one frame forward / backward in time.

    Args:
        x: ``(B*S, T, D)`` joint tokens, frames of one video consecutive in the batch dimension.
        num_frames: ``S``.
        visual_start: index of the video CLS in each frame's sequence (the text length ``m``).
        prev: visual positions that receive frame ``t-1``'s token (cyclic in time).
        nxt: visual positions that receive frame ``t+1``'s token (cyclic in time).

    Returns:
        A new ``(B*S, T, D)`` tensor; every other token is unchanged. The operation is a permutation.
    """
    if num_frames == 1 or prev.numel() + nxt.numel() == 0:
        return x
    bs, length, dim = x.shape
    video = x.view(bs // num_frames, num_frames, length, dim)
    out = video.clone()
    prev = prev + visual_start
    nxt = nxt + visual_start
    out[:, :, prev] = torch.roll(video[:, :, prev], shifts=1, dims=1)
    out[:, :, nxt] = torch.roll(video[:, :, nxt], shifts=-1, dims=1)
    return out.view(bs, length, dim)


def roll_block_tokens(x: Tensor, num_frames: int, visual_start: int, k: int) -> Tensor:
    """``block`` rolling with contiguous slices (the default, on the hot path; same result as
    :func:`roll_tokens` with :func:`roll_positions` ``("block", ...)``)."""
    if num_frames == 1 or k == 0:
        return x
    bs, length, dim = x.shape
    video = x.view(bs // num_frames, num_frames, length, dim)
    head_end = visual_start + 1 + k
    tail_start = length - k
    out = torch.cat(
        (
            video[:, :, : visual_start + 1],
            torch.roll(video[:, :, visual_start + 1 : head_end], shifts=1, dims=1),
            video[:, :, head_end:tail_start],
            torch.roll(video[:, :, tail_start:], shifts=-1, dims=1),
        ),
        dim=2,
    )
    return out.view(bs, length, dim)


def shift_channels(x: Tensor, num_frames: int, visual_start: int, fold_div: int = 8) -> Tensor:
    """TSM channel shift on patch tokens: ``1/fold_div`` of the channels take frame ``t-1``'s values,
    the next ``1/fold_div`` take frame ``t+1``'s, zero-padded at the clip ends (as TSM does).

    Args:
        x: ``(B*S, T, D)``; the text and the video CLS (index ``visual_start``) are left unchanged.
    """
    if num_frames == 1:
        return x
    bs, length, dim = x.shape
    fold = dim // fold_div
    video = x.view(bs // num_frames, num_frames, length, dim)
    patches = video[:, :, visual_start + 1 :]
    shifted = torch.zeros_like(patches)
    shifted[:, 1:, :, :fold] = patches[:, :-1, :, :fold]  # from the previous frame
    shifted[:, :-1, :, fold : 2 * fold] = patches[:, 1:, :, fold : 2 * fold]  # from the next frame
    shifted[:, :, :, 2 * fold :] = patches[:, :, :, 2 * fold :]
    out = torch.cat((video[:, :, : visual_start + 1], shifted), dim=2)
    return out.view(bs, length, dim)


class TokenRolling(nn.Module):
    """Temporal token rolling before one block (no parameters).

    Args:
        ratio: fraction of visual tokens rolled; ``k = floor(L * ratio / 2)`` per direction, at least one
            for a positive ratio (:func:`rolled_per_side`).
        selection: ``block`` | ``random`` | ``varying`` (Table 11b) | ``alternating`` (rows, then columns).
        layer_offset: rank of this layer among rolled layers (for ``varying`` and ``alternating``).
        seed: fixes the ``random`` positions used in eval mode (training draws new ones each call).
        num_prefix: visual tokens before the patches (for ``alternating``).
    """

    def __init__(
        self, ratio: float, selection: str = "block", layer_offset: int = 0, seed: int = 0, num_prefix: int = 1
    ) -> None:
        super().__init__()
        self.ratio = ratio
        self.selection = selection
        self.layer_offset = layer_offset
        self.seed = seed
        self.num_prefix = num_prefix

    def extra_repr(self) -> str:
        return f"ratio={self.ratio}, selection={self.selection!r}, layer_offset={self.layer_offset}"

    def positions(self, num_visual: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
        """The positions this layer rolls for frames of ``num_visual`` visual tokens."""
        k = rolled_per_side(num_visual, self.ratio)
        generator = None
        if self.selection == "random" and not self.training:
            generator = torch.Generator().manual_seed(self.seed + self.layer_offset)
        return roll_positions(self.selection, num_visual, k, self.layer_offset, generator, device, self.num_prefix)

    def forward(self, x: Tensor, num_frames: int, visual_start: int) -> Tensor:
        num_visual = x.shape[1] - visual_start
        if num_frames == 1 or num_visual <= self.num_prefix:  # one frame, or text only: nothing to roll
            return x
        if layer_selection(self.selection, self.layer_offset) == "block":
            return roll_block_tokens(x, num_frames, visual_start, rolled_per_side(num_visual, self.ratio))
        prev, nxt = self.positions(num_visual, x.device)
        return roll_tokens(x, num_frames, visual_start, prev, nxt)


@torch.no_grad()
def token_origins(temporal_modules: Sequence[nn.Module | None], num_frames: int, num_visual: int) -> Tensor:
    """The frame each visual token came from, ``(layers, S, L)`` int64, when each layer's attention runs.

    Rolling permutes tokens across frames and the permutation persists through the later blocks: in layer
    ``i``, frame slot ``s`` holds at position ``j`` the token of frame ``origins[i, s, j]``; the last layer's
    entry also holds for the backbone's output. Each layer's positions are those of the module in eval mode
    (``random`` draws fixed positions there). Channel shift and layers without a temporal module move no
    tokens.

    Args:
        temporal_modules: one entry per layer: its temporal module or None.
        num_frames: ``S``; num_visual: ``L``, visual tokens per frame (CLS first).
    """
    origin = torch.arange(num_frames, dtype=torch.float32)[:, None, None].expand(num_frames, num_visual, 1)
    origin = origin.contiguous()
    layers = []
    for module in temporal_modules:
        if isinstance(module, TokenRolling):
            was_training = module.training
            module.eval()
            try:
                origin = module(origin, num_frames, 0)
            finally:
                module.train(was_training)
        layers.append(origin[..., 0].round().long())
    if not layers:
        return torch.empty(0, num_frames, num_visual, dtype=torch.long)
    return torch.stack(layers)


def restore_frame_order(frame_tokens: Tensor, origins: Tensor) -> Tensor:
    """Put every token back in the frame it came from: ``(B, S, L, D)`` tokens by frame slot and
    ``(S, L)`` origins (a layer of :func:`token_origins`) -> ``(B, S, L, D)`` tokens by frame."""
    batch, frames, length, dim = frame_tokens.shape
    if origins.shape != (frames, length):
        raise ValueError(f"origins of shape {tuple(origins.shape)} do not match {frames} frames of {length} tokens")
    index = origins.to(frame_tokens.device)[None, :, :, None].expand(batch, frames, length, dim)
    return torch.zeros_like(frame_tokens).scatter_(1, index, frame_tokens)


class ChannelShift(nn.Module):
    """TSM-style channel shift before one block (no parameters); the Table 8a baseline."""

    def __init__(self, fold_div: int = 8) -> None:
        super().__init__()
        self.fold_div = fold_div

    def forward(self, x: Tensor, num_frames: int, visual_start: int) -> Tensor:
        return shift_channels(x, num_frames, visual_start, self.fold_div)
