"""Data-parallel utilities that also work without any process group (a notebook on one device).

Launch with ``torchrun --nproc_per_node=N -m allinone_lab.train ...``; NCCL on GPUs, gloo on CPUs,
multi-node through torchrun's rendezvous (``--nnodes``, ``--rdzv-endpoint``).
"""

from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0 of the process group; before the group is joined, what torchrun's ``RANK`` says (so that work
    done before joining, such as taking a run directory's lock, is done by one process only)."""
    if is_distributed():
        return rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def init_from_env(device: str = "auto") -> torch.device:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1) and pick this process's device.

    Without torchrun's variables nothing is initialised and the device is ``device`` (``auto``: CUDA when
    available, else CPU).
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    target = torch.device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not is_distributed():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if target.type == "cuda":
            torch.cuda.set_device(local_rank)
            target = torch.device("cuda", local_rank)
        dist.init_process_group(backend="nccl" if target.type == "cuda" else "gloo")
        # Leave the group before the interpreter tears down: a gloo group still alive at exit can abort the
        # process ("terminate called without an active exception") after the run has finished.
        atexit.register(_leave_group)
    return target


def _leave_group() -> None:
    if is_distributed():
        dist.destroy_process_group()


def all_gather_with_grad(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor (B, ...)`` from every process along dim 0, keeping gradients to the local part.
    Identity without a process group."""
    if not is_distributed() or world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=0)


def all_gather_no_grad(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` from every process along dim 0 (evaluation features)."""
    if not is_distributed() or world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def mean_across_processes(value: Tensor) -> Tensor:
    if not is_distributed():
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / world_size()
