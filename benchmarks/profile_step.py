"""Where a pre-training step of the main job goes: data (decode, transform, text, collate), forward, backward,
optimizer and the rest, on this machine.

The main job is Table 8b at ``scale=cpu``: the ``cpu`` preset with the Table 8b budget at ``scale=cpu``
(``train.presets.pretrain_budget("cpu", "table8b")``) and ``model.roll_ratio`` set to ``--ratio``. Four parts:

1. **items**: ``--items`` pre-training pairs read one by one in this process, with the built-in corpus's
   decoded-frame cache and without it (every clip decoded from its ``.mp4``), timed by phase: ``decode``
   (reading the sampled frames: decord, or a slice of the cache), ``transform`` (resize, crop, normalise),
   ``text`` (tokenise, MLM masking, the VTM caption), the rest of ``__getitem__``; then ``collate`` of one
   batch.
2. **loader**: batches per second from a ``DataLoader`` alone (no training) with 0, 1 and 2 workers.
3. **step**: one optimizer step on a fixed batch, as the training loop runs it, by phase: ``forward`` (the
   two backbone passes, the MLM head on the masked words, the word-patch transport term, the losses),
   ``backward``, ``optimizer`` (clipping, AdamW, schedule, zeroing the gradients); median of ``--steps``
   steps after ``--warmup``. ``--torch-profiler`` adds torch's operator table.
4. **loop**: ``--loop-steps`` steps of the real training loop (``train.loop.train``) in a temporary run
   directory, for each ``--loop`` setting (``cache`` or ``decode``, and the loader workers, ``auto`` for the
   count chosen for the device): seconds per step, the loader included, with and without a worker process
   beside the compute threads. ``--set train.device=cuda`` runs it on a GPU.
5. **dispatch**: the operators one optimizer step dispatches, by phase (forward: the backbone passes, the
   MLM head, the transport term, the rest; backward; optimizer), on ``train.device``: each is a kernel launch
   on a GPU, where a model this small waits on launches rather than on arithmetic. Views (reshape,
   transpose, ...) are counted apart: they launch nothing.

Every time is given as wall seconds and as this process's CPU seconds (all its threads); on shared cores the
wall times move with other load (``uptime`` is printed), the CPU times much less.

    python benchmarks/profile_step.py                      # everything, two torch threads
    python benchmarks/profile_step.py --parts step --torch-profiler
    python benchmarks/profile_step.py --parts loop --loop cache:0 cache:1 decode:1 --loop-steps 30
    python benchmarks/profile_step.py --parts dispatch
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from allinone_lab.data import collate
from allinone_lab.data import text as text_module
from allinone_lab.data import video as video_module
from allinone_lab.train import jobs
from allinone_lab.train import objectives as objectives_module
from allinone_lab.train.loop import autocast_context, loader_workers, train
from allinone_lab.train.objectives import Pretraining
from allinone_lab.train.optim import build_optimizer, warmup_linear_schedule
from allinone_lab.train.presets import parse_overrides, preset, pretrain_budget
from allinone_lab.train.runs import resolve_device


class Timers:
    """Accumulated wall and CPU seconds per phase (nested phases are counted in both)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    @contextlib.contextmanager
    def __call__(self, name: str):
        w, c = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] += time.perf_counter() - w
            self.cpu[name] += time.process_time() - c
            self.calls[name] += 1

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            with self(name):
                return fn(*args, **kwargs)

        return timed


def experiment(args):
    exp = preset("cpu").override(**pretrain_budget("cpu", "table8b"), **{"model.roll_ratio": args.ratio})
    return exp.override(**parse_overrides(args.overrides)) if args.overrides else exp


def pairs(exp, cached: bool):
    from allinone_lab.data.corpus import corpus_dataset

    return corpus_dataset("pairs", "train", exp.data, exp.corpus, train=True, seed=exp.train.seed,
                          cache_frames=cached)


@contextlib.contextmanager
def patched(obj, name: str, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def profile_items(exp, args) -> dict:
    """Per-item phase times (ms), with the frame cache and decoding."""
    out = {}
    for label, cached in (("cache", True), ("decode", False)):
        ds = pairs(exp, cached)
        ds.set_epoch(1)
        t = Timers()
        n = min(args.items, len(ds))
        with contextlib.ExitStack() as stack:
            stack.enter_context(patched(video_module, "read_frames", t.wrap("decode", video_module.read_frames)))
            stack.enter_context(patched(video_module, "frames_to_tensor",
                                        t.wrap("transform", video_module.frames_to_tensor)))
            original_cached = video_module.load_cached_clip

            def load_cached(stored, cfg, train=False, rng=None, meta=None, timers=t, original=original_cached):
                # the slice of the cache is the "decode" of this path; frames_to_tensor is timed inside it
                with timers("clip (cached)"):
                    return original(stored, cfg, train=train, rng=rng, meta=meta)

            from allinone_lab.data import datasets as datasets_module

            stack.enter_context(patched(datasets_module, "load_cached_clip", load_cached))
            tp = text_module.TextProcessor
            stack.enter_context(patched(tp, "encode", t.wrap("text", tp.encode)))
            stack.enter_context(patched(tp, "mask", t.wrap("text", tp.mask)))
            ds[0]  # tokenizer loaded, cache mapped
            for key in list(t.wall):
                t.wall[key] = t.cpu[key] = 0.0
            with t("item"):
                batch = [ds[i] for i in range(n)]
            with t("collate"):
                for start in range(0, n - exp.train.batch_size + 1, exp.train.batch_size):
                    collate(batch[start:start + exp.train.batch_size])
        if "clip (cached)" in t.wall:
            t.wall["decode"] += t.wall["clip (cached)"] - t.wall["transform"]
            t.cpu["decode"] += t.cpu["clip (cached)"] - t.cpu["transform"]
        batches = max(1, n // exp.train.batch_size)
        row = {}
        for phase in ("decode", "transform", "text"):
            row[phase] = (1e3 * t.wall[phase] / n, 1e3 * t.cpu[phase] / n)
        rest = t.wall["item"] - sum(t.wall[p] for p in ("decode", "transform", "text"))
        rest_cpu = t.cpu["item"] - sum(t.cpu[p] for p in ("decode", "transform", "text"))
        row["rest of the item"] = (1e3 * rest / n, 1e3 * rest_cpu / n)
        row["item"] = (1e3 * t.wall["item"] / n, 1e3 * t.cpu["item"] / n)
        row["collate (per batch)"] = (1e3 * t.wall["collate"] / batches, 1e3 * t.cpu["collate"] / batches)
        row["one batch of items + collate"] = (row["item"][0] * exp.train.batch_size + row["collate (per batch)"][0],
                                               row["item"][1] * exp.train.batch_size + row["collate (per batch)"][1])
        out[label] = row
    return out


def profile_loader(exp, args) -> dict:
    from torch.utils.data import DataLoader

    out = {}
    for label, cached in (("cache", True), ("decode", False)):
        ds = pairs(exp, cached)
        for workers in args.loader_workers:
            loader = DataLoader(ds, batch_size=exp.train.batch_size, shuffle=True, num_workers=workers,
                                collate_fn=collate, drop_last=True, generator=torch.Generator().manual_seed(0))
            w, c = time.perf_counter(), time.process_time()
            seen = 0
            for seen, _ in enumerate(loader, 1):
                if seen >= args.loader_batches:
                    break
            out[f"{label}, {workers} workers"] = {"batches_per_s": seen / (time.perf_counter() - w),
                                                  "main_cpu_s_per_batch": (time.process_time() - c) / seen}
    return out


def profile_step(exp, args) -> dict:
    torch.manual_seed(exp.train.seed)
    model = jobs.load_model(exp)
    objective = Pretraining(model, exp.train.loss_weights, exp.data.vtm_neg_prob)
    optimizer = build_optimizer(objective, exp.train.lr, exp.train.weight_decay, exp.train.betas)
    scheduler = warmup_linear_schedule(optimizer, exp.train.max_steps, exp.train.warmup_ratio)
    ds = pairs(exp, True)
    batch = collate([ds[i] for i in range(exp.train.batch_size)])
    batch = {**batch, **objective.step_inputs([batch])}
    t = Timers()
    # Phases inside the objective's forward: the backbone passes, the MLM head, the transport term.
    hooks = []
    for module, name in ((model, "forward: backbone (2 passes)"), (model.mlm_head, "forward: MLM head")):
        starts: list = []
        hooks.append(module.register_forward_pre_hook(
            lambda *_, s=starts: s.append((time.perf_counter(), time.process_time()))))

        def post(*_, s=starts, n=name):
            w, c = s.pop()
            t.wall[n] += time.perf_counter() - w
            t.cpu[n] += time.process_time() - c

        hooks.append(module.register_forward_hook(post))
    ot = objectives_module.word_patch_alignment
    per_step = []
    with patched(objectives_module, "word_patch_alignment", t.wrap("forward: word-patch transport", ot)):
        for step in range(args.warmup + args.steps):
            if step == args.warmup:  # forget the warm-up steps (the same Timers: the wrappers hold it)
                for table in (t.wall, t.cpu, t.calls):
                    table.clear()
            w = time.perf_counter()
            with t("step"):
                with t("forward (all)"):
                    loss, metrics = objective(batch)
                with t("backward"):
                    loss.backward()
                with t("optimizer (clip, AdamW, schedule, zero)"):
                    if exp.train.grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(objective.parameters(), exp.train.grad_clip)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                with t("metrics to host"):
                    float(loss.detach())
            if step >= args.warmup:
                per_step.append(time.perf_counter() - w)
    for hook in hooks:
        hook.remove()
    n = args.steps
    rows = {}
    inner = ("forward: backbone (2 passes)", "forward: MLM head", "forward: word-patch transport")
    for name in (*inner, "forward (all)", "backward", "optimizer (clip, AdamW, schedule, zero)", "metrics to host"):
        rows[name] = (t.wall[name] / n, t.cpu[name] / n)
    rows["forward: losses and the rest"] = (
        rows["forward (all)"][0] - sum(rows[k][0] for k in inner),
        rows["forward (all)"][1] - sum(rows[k][1] for k in inner))
    rows["step (sum)"] = (t.wall["step"] / n, t.cpu["step"] / n)
    rows["step (median wall)"] = (statistics.median(per_step), float("nan"))
    if args.torch_profiler:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                loss, _ = objective(batch)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    return rows


def profile_loop(exp, args) -> dict:
    """Seconds per step of the real training loop (loader included) for each ``cache|decode:workers``; a
    setting named again is another round (``cache:0 cache:1 cache:0 cache:1``), reported as ``#2``..."""
    out = {}
    rounds: dict[str, int] = defaultdict(int)
    for setting in args.loop:
        rounds[setting] += 1
        source, _, workers = setting.partition(":")
        count = None if workers == "auto" else int(workers or 0)
        run = exp.override(**{"train.max_steps": args.loop_steps, "train.num_workers": count,
                              "train.checkpoint_every": 10 ** 6, "train.log_every": args.loop_steps})
        dataset = pairs(run, source == "cache")
        model = jobs.load_model(run)
        objective = Pretraining(model, run.train.loss_weights, run.data.vtm_neg_prob)
        with tempfile.TemporaryDirectory() as tmp:
            w, c = time.perf_counter(), time.process_time()
            train(objective, dataset, run.train, Path(tmp) / "run", collate_fn=collate, progress=False)
            wall, cpu = time.perf_counter() - w, time.process_time() - c
        label = setting if rounds[setting] == 1 else f"{setting} #{rounds[setting]}"
        out[label] = {"s_per_step": wall / args.loop_steps, "main_cpu_s_per_step": cpu / args.loop_steps}
    return out


VIEWS = frozenset({"view", "_unsafe_view", "_reshape_alias", "reshape", "t", "transpose", "permute", "expand",
                   "unsqueeze", "squeeze", "slice", "select", "narrow", "alias", "detach", "as_strided",
                   "split", "split_with_sizes", "unbind", "chunk", "unflatten"})


def profile_dispatch(exp, args) -> dict:
    """Operators dispatched by one optimizer step on ``train.device``, by phase: ``(all, launching)``."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        """Counts every ATen operator below autograd (forward and backward); modes nest, so an enclosing
        count sees what an inner one saw."""

        def __init__(self):
            super().__init__()
            self.ops: dict[str, int] = defaultdict(int)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

        def totals(self) -> tuple[int, int]:
            return sum(self.ops.values()), sum(n for op, n in self.ops.items() if op not in VIEWS)

    device = resolve_device(exp.train.device)
    torch.manual_seed(exp.train.seed)
    model = jobs.load_model(exp).to(device)
    objective = Pretraining(model, exp.train.loss_weights, exp.data.vtm_neg_prob)
    optimizer = build_optimizer(objective, exp.train.lr, exp.train.weight_decay, exp.train.betas)
    ds = pairs(exp, True)
    batch = collate([ds[i] for i in range(exp.train.batch_size)])
    batch = {**batch, **objective.step_inputs([batch])}
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    phases = {"forward: backbone passes": Count(), "forward: MLM head": Count(),
              "forward: word-patch transport": Count()}

    def counted(name, fn):
        def run(*a, **k):
            with phases[name]:
                return fn(*a, **k)
        return run

    rows = {}
    for _ in range(2):  # the second step is the one reported (the first creates the optimizer's state)
        for count in phases.values():
            count.ops.clear()
        with contextlib.ExitStack() as stack:
            stack.enter_context(patched(model, "forward", counted("forward: backbone passes", model.forward)))
            stack.enter_context(patched(model.mlm_head, "forward", counted("forward: MLM head", model.mlm_head.forward)))
            stack.enter_context(patched(objectives_module, "word_patch_alignment",
                                        counted("forward: word-patch transport", objectives_module.word_patch_alignment)))
            with Count() as forward, autocast_context(device, exp.train.precision):
                loss, _ = objective(batch)
        with Count() as backward:
            loss.backward()
        with Count() as step:
            if exp.train.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(objective.parameters(), exp.train.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        rows = {name: count.totals() for name, count in phases.items()}
        inside = [sum(r[i] for r in rows.values()) for i in (0, 1)]
        rows["forward: losses and the rest"] = (forward.totals()[0] - inside[0], forward.totals()[1] - inside[1])
        rows["backward"], rows["optimizer (clip, AdamW, zero)"] = backward.totals(), step.totals()
    rows["step"] = (sum(r[0] for r in rows.values()), sum(r[1] for r in rows.values()))
    return rows


def show(title: str, rows: dict) -> None:
    print(f"\n{title}")
    for name, (wall, cpu) in rows.items():
        print(f"  {name:45s} {wall:10.4f}  {cpu:10.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratio", type=float, default=0.25, help="model.roll_ratio (the main job's: 0.25)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--parts", nargs="+", default=["items", "loader", "step", "loop"],
                        choices=["items", "loader", "step", "loop", "dispatch"])
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--loader-workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--loader-batches", type=int, default=12)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--torch-profiler", action="store_true")
    parser.add_argument("--loop", nargs="+", default=["cache:0", "cache:1", "decode:1"],
                        help="training-loop settings to time: cache|decode:workers")
    parser.add_argument("--loop-steps", type=int, default=20)
    parser.add_argument("--json", default=None, help="also write the numbers here")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="SECTION.FIELD=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    exp = experiment(args)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    device = resolve_device(exp.train.device)
    print(f"main job: ratio {args.ratio}, batch {exp.train.batch_size}, {exp.train.max_steps} steps, on {device} "
          f"with {loader_workers(exp.train.num_workers, device)} loader workers; overrides {args.overrides or 'none'}")
    pairs(exp, True)  # the corpus and its frame cache exist before anything is timed
    result: dict = {"threads": args.threads, "load": os.getloadavg()}
    if "items" in args.parts:
        items = profile_items(exp, args)
        result["items_ms"] = items
        for label, rows in items.items():
            show(f"items, {label} (ms per item: wall, CPU)", rows)
    if "loader" in args.parts:
        result["loader"] = profile_loader(exp, args)
        print("\nloader alone (batches/s; CPU s of the main process per batch)")
        for name, row in result["loader"].items():
            print(f"  {name:45s} {row['batches_per_s']:10.2f}  {row['main_cpu_s_per_batch']:10.4f}")
    if "step" in args.parts:
        result["step_s"] = profile_step(exp, args)
        show("one optimizer step on a fixed batch (s per step: wall, CPU)", result["step_s"])
    if "loop" in args.parts:
        result["loop"] = profile_loop(exp, args)
        print("\ntraining loop (s per step: wall; CPU s of the main process per step)")
        for name, row in result["loop"].items():
            print(f"  {name:45s} {row['s_per_step']:10.4f}  {row['main_cpu_s_per_step']:10.4f}")
    if "dispatch" in args.parts:
        result["dispatch"] = profile_dispatch(exp, args)
        print(f"\noperators one optimizer step dispatches on {device} (all; without views: each a kernel on a GPU)")
        for name, (every, launching) in result["dispatch"].items():
            print(f"  {name:45s} {every:10d}  {launching:10d}")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
