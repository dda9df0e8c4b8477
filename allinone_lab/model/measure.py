"""Parameter counts, FLOPs (counted and analytic) and throughput for any model configuration."""

from __future__ import annotations

import time
from contextlib import nullcontext

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from .config import ModelConfig


def count_parameters(model: nn.Module, exclude_pretraining_heads: bool = True) -> int:
    """Trainable parameters; by default without the VTM and MLM heads (the paper's Table 1 convention)."""
    skip = set(model.head_parameter_names()) if exclude_pretraining_heads else set()
    return sum(p.numel() for n, p in model.named_parameters() if n not in skip)


def dummy_inputs(
    config: ModelConfig, batch_size: int, text_len: int | None = None, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Random ``video (B, S, C, H, W)``, ``text_ids (B, m)`` and an all-ones ``text_mask (B, m)``."""
    m = config.max_text_len if text_len is None else text_len
    gen = torch.Generator().manual_seed(0)
    video = torch.randn(batch_size, config.num_frames, config.in_chans, config.image_size, config.image_size,
                        generator=gen)
    ids = torch.randint(1000, config.vocab_size, (batch_size, m), generator=gen)
    return {"video": video.to(device), "text_ids": ids.to(device), "text_mask": torch.ones_like(ids).to(device)}


def count_flops(model: nn.Module, inputs: dict[str, torch.Tensor]) -> int:
    """Forward FLOPs of the backbone (``model(**inputs)``) counted by ``torch.utils.flop_counter``.

    Attention runs on the math backend while counting: the counter reports zero FLOPs for the fused
    CPU attention kernel.
    """
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        model(**inputs)
    return counter.get_total_flops()


def analytic_flops(config: ModelConfig, batch_size: int = 1, text_len: int | None = None) -> int:
    """Forward FLOPs of the backbone from the architecture (a multiply-add is 2 FLOPs).

    Counts the patch projection, every block's attention (projections, scores, weighted sum) and MLP,
    the variant's extra attention, and the pooler; element-wise ops are ignored.
    """
    d, s = config.embed_dim, config.num_frames
    m = config.max_text_len if text_len is None else text_len
    n_vis = config.visual_len
    hidden = int(d * config.mlp_ratio_)

    def attention(tokens: int, sequences: int) -> int:
        return sequences * (2 * tokens * d * 4 * d + 4 * tokens * tokens * d)

    def block(tokens: int, sequences: int) -> int:
        return attention(tokens, sequences) + sequences * 4 * tokens * d * hidden

    if config.temporal == "flatten":
        per_block = block(m + s * n_vis, 1)
    else:
        per_block = block(m + n_vis, s)
    if config.temporal == "timesformer":
        patches = config.num_patches
        per_block += attention(s, patches) + patches * 2 * s * d * d  # temporal attention + temporal_fc
    elif config.temporal == "decoupled":
        per_block += attention(m, s) + attention(s * n_vis, 1)
    patch_proj = s * config.num_patches * 2 * config.in_chans * config.patch_size**2 * d
    pooler = 2 * d * d
    return batch_size * (config.num_layers * per_block + patch_proj + pooler)


def attention_score_flops(config: ModelConfig, batch_size: int = 1, text_len: int | None = None) -> int:
    """FLOPs of the quadratic part of self-attention (``QK^T`` and the weighted sum of ``V``) in the joint
    blocks: ``4 T^2 D`` per sequence and block. This is the cost the paper's Fig. 3 compares: ``S`` sequences
    of ``m + n`` tokens for rolling, one of ``m + S n`` tokens for flatten."""
    d, s = config.embed_dim, config.num_frames
    m = config.max_text_len if text_len is None else text_len
    if config.temporal == "flatten":
        per_block = 4 * (m + s * config.visual_len) ** 2 * d
    else:
        per_block = s * 4 * (m + config.visual_len) ** 2 * d
    return batch_size * config.num_layers * per_block


@torch.no_grad()
def throughput(
    model: nn.Module,
    inputs: dict[str, torch.Tensor],
    iters: int = 5,
    warmup: int = 2,
    autocast_dtype: torch.dtype | None = None,
) -> float:
    """Forward videos per second of ``model(**inputs)`` (median over ``iters`` timed calls)."""
    batch = next(iter(inputs.values())).shape[0]
    device = next(model.parameters()).device
    autocast = (
        torch.autocast(device_type=device.type, dtype=autocast_dtype) if autocast_dtype is not None else nullcontext()
    )
    times = []
    with autocast:
        for i in range(warmup + iters):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(**inputs)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    times.sort()
    return batch / times[len(times) // 2]
