"""Optimal transport between word and patch features: batched, masked, in fp32.

The default solver is the inexact proximal point method (IPOT, Xie et al., 2020) that the paper cites:
each outer step solves a Sinkhorn projection of ``exp(-C / beta) * T`` onto the marginals, and as
``beta`` shrinks the plan tends to the exact optimal plan. POT's exact ``ot.emd`` and log-domain
``ot.bregman.sinkhorn_log`` are offered as solvers too (one pair at a time, on the CPU).

Shapes: words ``(B, n, D)``, patches ``(B, m, D)``, cost and plan ``(B, n, m)``, masks ``(B, n)``/``(B, m)``
(True for real positions). Marginals are uniform over the real positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SOLVERS = ("ipot", "emd", "sinkhorn")


def cosine_cost(x: Tensor, y: Tensor) -> Tensor:
    """``1 - cos(x_i, y_j)``: ``(B, n, D), (B, m, D) -> (B, n, m)`` in fp32, in [0, 2]."""
    return 1 - F.normalize(x.float(), dim=-1) @ F.normalize(y.float(), dim=-1).transpose(1, 2)


def uniform_marginals(mask: Tensor) -> Tensor:
    """``(B, n)`` bool -> ``(B, n)`` fp32 weights, uniform over True positions (each row sums to 1)."""
    weights = mask.float()
    return weights / weights.sum(dim=1, keepdim=True).clamp(min=1)


@torch.no_grad()
def ipot(cost: Tensor, x_mask: Tensor | None = None, y_mask: Tensor | None = None, beta: float = 0.5,
         iters: int = 50, inner: int = 1) -> Tensor:
    """IPOT transport plans ``(B, n, m)`` (rows sum to the x marginal, columns to the y marginal).

    Padded positions get no mass. ``beta`` is the proximal step (smaller: closer to the exact plan,
    more iterations needed); ``inner`` Sinkhorn updates per outer step (1 suffices, as in the paper).
    """
    cost = cost.float()
    batch, n, m = cost.shape
    x_mask = torch.ones(batch, n, dtype=torch.bool, device=cost.device) if x_mask is None else x_mask.bool()
    y_mask = torch.ones(batch, m, dtype=torch.bool, device=cost.device) if y_mask is None else y_mask.bool()
    valid = x_mask[:, :, None] & y_mask[:, None, :]
    kernel = torch.exp(-cost / beta) * valid
    plan = valid.float() / valid.float().sum(dim=(1, 2), keepdim=True).clamp(min=1)
    # Marginals and scalings as columns (B, n, 1) and (B, m, 1), so that each update is one batched product, a
    # clamp and a division: nine kernels an outer step with inner=1 (on a GPU, where this loop's small tensors
    # cost launches rather than arithmetic). Padded positions need no masking inside the loop: their marginal
    # is 0, so their scaling is 0 exactly (tests/test_ot.py holds the plans to the masked recursion, bit for bit).
    a, b = uniform_marginals(x_mask)[:, :, None], uniform_marginals(y_mask)[:, :, None]
    delta, sigma = a, b
    for _ in range(iters):
        q = kernel * plan
        for _ in range(inner):
            delta = a / torch.bmm(q, sigma).clamp_(min=1e-30)
            sigma = b / torch.bmm(q.transpose(1, 2), delta).clamp_(min=1e-30)
        plan = delta * q * sigma.transpose(1, 2)
    return plan


def transport_plan(cost: Tensor, x_mask: Tensor | None = None, y_mask: Tensor | None = None,
                   solver: str = "ipot", **kwargs) -> Tensor:
    """Plans ``(B, n, m)`` with ``solver``: ``ipot`` (batched torch), ``emd`` (POT, exact) or ``sinkhorn``
    (POT's ``ot.bregman.sinkhorn_log``; pass ``reg``, default 0.05)."""
    if solver == "ipot":
        return ipot(cost, x_mask, y_mask, **kwargs)
    if solver not in SOLVERS:
        raise ValueError(f"solver={solver!r}: expected one of {list(SOLVERS)}")
    import ot

    batch, n, m = cost.shape
    x_mask = torch.ones(batch, n, dtype=torch.bool) if x_mask is None else x_mask.bool().cpu()
    y_mask = torch.ones(batch, m, dtype=torch.bool) if y_mask is None else y_mask.bool().cpu()
    plans = torch.zeros(batch, n, m, dtype=torch.float64)
    for i in range(batch):
        rows, cols = x_mask[i].nonzero().squeeze(1), y_mask[i].nonzero().squeeze(1)
        sub = cost[i].detach().double().cpu()[rows][:, cols].numpy()
        a = torch.full((len(rows),), 1.0 / len(rows), dtype=torch.float64).numpy()
        b = torch.full((len(cols),), 1.0 / len(cols), dtype=torch.float64).numpy()
        if solver == "emd":
            plan = ot.emd(a, b, sub)
        else:
            plan = ot.bregman.sinkhorn_log(a, b, sub, reg=kwargs.get("reg", 0.05), numItermax=kwargs.get("iters", 1000))
        plans[i, rows[:, None], cols[None, :]] = torch.from_numpy(plan)
    return plans.float().to(cost.device)


def wasserstein(cost: Tensor, plan: Tensor) -> Tensor:
    """Transport cost ``<C, T>`` per pair: ``(B,)``."""
    return (cost.float() * plan.float()).sum(dim=(1, 2))
