"""Resumable training state: model, optimizer, scheduler, RNG streams and the data position.

Checkpoints are written atomically (:mod:`allinone_lab.io`) and load with ``torch.load(weights_only=True)``: nothing but tensors and plain containers.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import atomic_save, atomic_write_bytes, atomic_write_json

__all__ = ["atomic_save", "atomic_write_bytes", "atomic_write_json", "capture_rng", "load_checkpoint", "restore_rng"]


def capture_rng() -> dict[str, Any]:
    """Every RNG stream a training step may draw from, as tensors and plain values."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "python_version": py_version,
        "python": list(py_internal),
        "python_gauss": py_gauss,
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Set every stream :func:`capture_rng` recorded. Accepts a state loaded onto any device (a checkpoint
    read with ``map_location="cuda"``): RNG states are set from CPU byte tensors."""
    torch.set_rng_state(state["torch"].cpu())
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].cpu().numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a training checkpoint safely (tensors and plain containers only), with a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated, corrupted or not a torch file
        raise ValueError(f"checkpoint {str(path)!r} could not be read ({type(error).__name__}: {error})") from error
