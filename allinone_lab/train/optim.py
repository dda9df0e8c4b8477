"""AdamW with decoupled weight decay on weights only, and the paper's warm-up + linear-decay schedule."""

from __future__ import annotations

import torch
from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: matrices and embeddings decay; biases and norm scales (1-D tensors) do not."""
    decay, no_decay = [], []
    for _, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.98), eps: float = 1e-8
) -> torch.optim.AdamW:
    """AdamW over :func:`parameter_groups`; torch's fused kernel where every parameter is a floating-point
    tensor on the CPU or a CUDA device (the same update in one pass over each tensor: on two CPU cores the
    optimizer step of the main job's model, most of it the 30,522-word embedding and MLM decoder, takes about
    a sixth of the per-tensor loop's time; benchmarks/RESULTS.md)."""
    groups = parameter_groups(model, weight_decay)
    params = [p for group in groups for p in group["params"]]
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused or None)


def warmup_linear_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float = 0.1
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0 over ``warmup_ratio * total_steps`` steps, then linear decay to 0 at the end."""
    warmup = max(1, int(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
