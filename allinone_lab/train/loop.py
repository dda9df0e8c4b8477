"""The one training loop, for pre-training and every fine-tuning task.

    run = train(objective, dataset, config, run_dir)

It places the objective on its device, wraps it for data parallelism under torchrun, accumulates
gradients to the global batch, clips, steps AdamW and the warm-up/linear-decay schedule, logs metrics
to ``run_dir/metrics.jsonl`` (and TensorBoard where installed), and writes ``run_dir/checkpoints/last.pt``
atomically every ``checkpoint_every`` steps and at the end. Calling it again on the same ``run_dir``
resumes exactly: model, optimizer, scheduler, RNG streams and position in the data.

The update depends on the global batch, not on how it is split: W processes accumulating A micro-batches
each run the same W * A micro-batches (:class:`~allinone_lab.train.sampler.ResumableSampler`), each with
the random draws of (seed, step, micro-batch), as one process accumulating W * A of them. (VTC is the
exception: its negatives come from every process's micro-batch of the moment.) A streamed dataset
(:class:`~allinone_lab.data.ShardDataset`, built for this process by
:func:`~allinone_lab.train.jobs.pretraining_shards`) yields the collated micro-batches itself, placed by the
same rule, and resumes from the recorded position.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, IterableDataset

from .config import TrainConfig
from .distributed import init_from_env, is_distributed, is_main, mean_across_processes, rank, world_size
from .optim import build_optimizer, warmup_linear_schedule
from .rundir import claim
from .sampler import ResumableSampler, micro_batch_index
from .state import atomic_save, atomic_write_json, capture_rng, load_checkpoint, restore_rng


class NonFiniteLossError(RuntimeError):
    """Raised when a step's loss is NaN or infinite; the last good checkpoint is left in place."""


@dataclass
class RunResult:
    run_dir: Path
    step: int
    last_metrics: dict[str, float]
    checkpoint: Path


def resolve_precision(device: torch.device, precision: str) -> str:
    """``auto``: bf16 on CUDA (fp16 where bf16 is unsupported), fp32 elsewhere."""
    if precision != "auto":
        return precision
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def autocast_context(device: torch.device, precision: str):
    """bf16/fp16 autocast, or nothing for fp32."""
    precision = resolve_precision(device, precision)
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def environment() -> dict[str, Any]:
    env = {"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform(),
           "processor": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
           "world_size": world_size(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
    return env


def move(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


# Loader workers per process feeding a GPU when TrainConfig.num_workers is None. One worker delivers about 36
# batches of the main job a second on a 2-vCPU VM (benchmarks/profile_step.py --parts loader); a GPU step
# ten times faster than two CPU cores (about 24 ms) needs more than one.
GPU_LOADER_WORKERS = 4


def loader_workers(requested: int | None, device: torch.device, divides: int | None = None,
                   threads: int | None = None) -> int:
    """DataLoader workers for this process: ``requested`` when set; otherwise (None) chosen for the device.
    On a CPU, one worker where a core is left beside the ``threads`` compute threads (default: torch's), none
    where there is not: on two cores training on two threads, loading in the main process is the faster (0.242
    against 0.261 s a step for the main job, benchmarks/RESULTS.md). On a GPU, up to
    :data:`GPU_LOADER_WORKERS`, no more than this process's share of the CPUs less one (``LOCAL_WORLD_SIZE``
    processes per node under torchrun). ``divides``: a streamed dataset's ``streams_per_rank``, which the
    count must divide (the largest such count is taken). Results do not depend on the count (every item's
    draws come from its index and epoch)."""
    if requested is not None:
        return requested
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type == "cpu":
        workers = 1 if cpus > (threads or torch.get_num_threads()) else 0
    else:
        share = cpus // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        workers = max(1, min(GPU_LOADER_WORKERS, share - 1))
    while divides and workers > 1 and divides % workers:
        workers -= 1
    return workers


def micro_batch_seed(seed: int, step: int, index: int) -> int:
    """The torch seed of micro-batch ``index`` (:func:`~allinone_lab.train.sampler.micro_batch_index`) of
    optimizer step ``step`` (0-based): a function of these alone, not of the process that runs it."""
    return int(np.random.SeedSequence([seed % 2**64, step, index]).generate_state(1, np.uint64)[0])


def train(
    objective: nn.Module,
    dataset: Dataset,
    config: TrainConfig,
    run_dir: str | Path,
    collate_fn=None,
    resolved_config: dict[str, Any] | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> RunResult:
    """Optimise ``objective`` (an ``nn.Module`` returning ``(loss, metrics)`` for a batch) on ``dataset``.

    Args:
        resolved_config: the whole experiment's configuration, written to ``run_dir/config.json`` (its
            ``train`` section is ``config``, the one this run trains with).
        stop_after: leave after this many optimizer steps in this call (a time-boxed job); the schedule
            still spans ``config.max_steps`` and a later call resumes.

    The run directory is this process's alone while it trains (:class:`~allinone_lab.train.rundir.RunLock`),
    and a run it holds resumes only with the configuration it records (``config.json``; the step count may
    grow): otherwise :class:`~allinone_lab.train.rundir.RunConfigMismatch` before any work.
    """
    device = init_from_env(config.device)
    run_dir = Path(run_dir)
    with claim(run_dir, {**(resolved_config or {}), "train": config.to_dict()}):  # the steps it takes
        return _train(objective, dataset, config, run_dir, device, collate_fn, stop_after, progress)


def _train(objective: nn.Module, dataset: Dataset, config: TrainConfig, run_dir: Path, device: torch.device,
           collate_fn, stop_after: int | None, progress: bool) -> RunResult:
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    # The same on every process: each micro-batch then reseeds from (seed, step, micro-batch) below.
    torch.manual_seed(config.seed)

    objective.to(device)
    optimizer = build_optimizer(objective, config.lr, config.weight_decay, config.betas)
    scheduler = warmup_linear_schedule(optimizer, config.max_steps, config.warmup_ratio)
    # Loss scaling for fp16 only (bf16 and fp32 need none; the scaler is then a pass-through).
    scaler = torch.amp.GradScaler(device.type, enabled=resolve_precision(device, config.precision) == "fp16")
    step, epoch, batches_done = 0, 0, 0
    if ckpt_path.is_file():
        state = load_checkpoint(ckpt_path, map_location=device)
        objective.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        step, epoch, batches_done = state["step"], state["epoch"], state["batches_done"]
        restore_rng(state["rng"][rank()] if rank() < len(state["rng"]) else state["rng"][0])
    elif is_main():  # a new run (claim, above, recorded its config.json)
        atomic_write_json(environment(), run_dir / "environment.json")

    model = objective
    if is_distributed():
        model = DistributedDataParallel(objective, find_unused_parameters=True)

    per_step = config.batch_size * world_size()
    global_batch = config.global_batch_size or per_step
    if global_batch % per_step:
        raise ValueError(f"global_batch_size={global_batch} is not a multiple of batch_size x processes = {per_step}")
    accumulation = global_batch // per_step
    streamed = isinstance(dataset, IterableDataset)
    workers = loader_workers(config.num_workers, device, getattr(dataset, "streams_per_rank", None))
    if streamed:  # collated micro-batches from a resumable stream (ShardDataset), placed for this process
        _check_stream(dataset, config, accumulation, collate_fn, workers)
    else:
        sampler = ResumableSampler(len(dataset), config.batch_size, config.seed, True, rank(), world_size(),
                                   accumulation)
    # An objective may ask for figures of the whole optimizer step (every process, every micro-batch), e.g.
    # the masked words of the global batch; what it returns is added to each of this process's micro-batches.
    step_inputs = getattr(objective, "step_inputs", None)

    def batches():
        nonlocal epoch, batches_done
        while True:
            if streamed:  # the stream skips what was consumed; it yields whole micro-batches
                dataset.set_position(epoch, batches_done)
                loader = DataLoader(dataset, batch_size=None, num_workers=workers,
                                    pin_memory=device.type == "cuda")
            else:
                sampler.set_position(epoch, batches_done)
                if hasattr(dataset, "set_epoch"):
                    dataset.set_epoch(epoch)
                loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, drop_last=True,
                                    num_workers=workers, collate_fn=collate_fn,
                                    pin_memory=device.type == "cuda",
                                    # its own generator: creating a loader must not draw from the global RNG
                                    generator=torch.Generator().manual_seed(config.seed + epoch))
            for batch in loader:
                batches_done += 1
                yield batch
            epoch, batches_done = epoch + 1, 0

    writer = _tensorboard(run_dir) if is_main() else None
    log_file = (run_dir / "metrics.jsonl").open("a") if is_main() else None
    bar = _progress(config.max_steps, step) if progress and is_main() else None
    stream = batches()
    model.train()
    sums: dict[str, torch.Tensor] = {}
    count, window_start = 0, time.perf_counter()
    last: dict[str, float] = {}
    steps_this_call = 0
    try:
        while step < config.max_steps and (stop_after is None or steps_this_call < stop_after):
            step_loss = torch.zeros((), device=device)
            micro_batches = [next(stream) for _ in range(accumulation)]
            shared = step_inputs(micro_batches) if step_inputs is not None else {}
            for micro, batch in enumerate(micro_batches):
                batch = move({**batch, **shared}, device)
                # Dropout, stochastic depth, in-batch negatives...: drawn from (seed, step, micro-batch), the
                # same wherever the micro-batch runs, whatever ran before it.
                index = micro_batch_index(rank(), micro, accumulation)
                torch.manual_seed(micro_batch_seed(config.seed, step, index))
                sync = micro == accumulation - 1 or not is_distributed()
                with nullcontext() if sync else model.no_sync():
                    with autocast_context(device, config.precision):
                        loss, metrics = model(batch)
                    scaler.scale(loss / accumulation).backward()
                step_loss += loss.detach().float() / accumulation
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0) + value.detach().float() / accumulation
            loss_value = float(mean_across_processes(step_loss))  # one sync per step, over every micro-batch
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(
                    f"loss is {loss_value} at step {step + 1}; stopped before the update. The last good "
                    f"checkpoint is {ckpt_path if ckpt_path.is_file() else 'none (no checkpoint yet)'}"
                )
            scaler.unscale_(optimizer)
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(objective.parameters(), config.grad_clip)
            scaler.step(optimizer)  # skips the update if fp16 gradients overflowed
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            steps_this_call += 1
            count += 1
            if bar is not None:
                bar.update(1)
            if step % config.log_every == 0 or step == config.max_steps:
                elapsed = time.perf_counter() - window_start
                last = {k: round(float(mean_across_processes(v)) / count, 6) for k, v in sums.items()}
                last.update(step=step, epoch=epoch, lr=scheduler.get_last_lr()[0],
                            videos_per_s=round(count * global_batch / elapsed, 3))
                if log_file is not None:
                    log_file.write(json.dumps(last) + "\n")
                    log_file.flush()
                if writer is not None:
                    for key, value in last.items():
                        writer.add_scalar(f"train/{key}", value, step)
                if bar is not None:
                    bar.set_postfix(loss=last.get("loss"))
                sums, count, window_start = {}, 0, time.perf_counter()
            if step % config.checkpoint_every == 0 or step == config.max_steps:
                _save(ckpt_path, objective, optimizer, scheduler, scaler, step, epoch, batches_done)
    finally:
        if bar is not None:
            bar.close()
        if log_file is not None:
            log_file.close()
        if writer is not None:
            writer.close()
    if steps_this_call and step % config.checkpoint_every and step != config.max_steps:
        _save(ckpt_path, objective, optimizer, scheduler, scaler, step, epoch, batches_done)
    return RunResult(run_dir=run_dir, step=step, last_metrics=last, checkpoint=ckpt_path)


def _check_stream(dataset: IterableDataset, config: TrainConfig, accumulation: int, collate_fn, workers: int) -> None:
    """A streamed dataset must hand this process its own micro-batches: built for the loop's batch size,
    accumulation, rank and world size (:func:`allinone_lab.train.jobs.pretraining_shards` does), collating
    itself, with streams the loader's workers can divide."""
    wanted = {"batch_size": config.batch_size, "accumulation": accumulation, "rank": rank(),
              "world_size": world_size()}
    if not hasattr(dataset, "set_position"):
        raise TypeError(f"{type(dataset).__name__}: a streamed (iterable) dataset needs set_position(epoch, "
                        f"batches_done) for exact resume; expected a ShardDataset")
    wrong = [f"{k}={getattr(dataset, k, None)!r} (expected {v!r})" for k, v in wanted.items()
             if getattr(dataset, k, None) != v]
    if wrong:
        raise ValueError(f"{type(dataset).__name__} was built for another run layout: {', '.join(wrong)}; build "
                         f"it for this process (allinone_lab.train.jobs.pretraining_shards)")
    if collate_fn is not None and collate_fn is not getattr(dataset, "collate_fn", None):
        raise ValueError(f"collate_fn={collate_fn!r} differs from the stream's own {dataset.collate_fn!r}: a "
                         f"{type(dataset).__name__} collates its micro-batches itself")
    if workers > 1 and dataset.streams_per_rank % workers:
        raise ValueError(f"TrainConfig.num_workers={workers} does not divide the stream's streams_per_rank="
                         f"{dataset.streams_per_rank} (accumulation {accumulation} x data.shard_streams); "
                         f"expected a divisor")


def _save(path: Path, objective: nn.Module, optimizer, scheduler, scaler, step: int, epoch: int,
          batches_done: int) -> None:
    rng = [capture_rng()]
    if is_distributed():
        gathered: list[Any] = [None] * world_size()
        torch.distributed.all_gather_object(gathered, rng[0])
        rng = gathered
    if is_main():
        atomic_save({"model": objective.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "step": step, "epoch": epoch,
                     "batches_done": batches_done, "rng": rng}, path)


def _progress(total: int, initial: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", dynamic_ncols=True)


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))
