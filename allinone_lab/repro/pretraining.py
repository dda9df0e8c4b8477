"""Pre-train one arm of an ablation and evaluate it zero-shot, through ``train.jobs``.

Every pre-training reproduction (Tables 6, 8-11, Fig. 7, 9) runs its arms with :func:`pretrain_arm`: the
scale's preset with the arm's overrides, ``jobs.pretrain`` into ``output_dir/runs/<arm>/`` (a stopped run
resumes; a finished one is reused), then ``jobs.evaluate_pretrained`` on the test split of the built-in
corpus: cloze (masked-word accuracy) and zero-shot multiple choice, the corpus's stand-ins for the paper's
zero-shot LSMDC / MSR-VTT multiple choice.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from ..model import count_parameters
from ..train import jobs
from ..train.presets import Experiment
from .spec import Context, ParameterError

# Pre-training steps at scale="cpu" (the cpu preset: width 192, depth 3, 64 px, batch 32). A VTM + MLM step
# is two forward/backward passes, about 0.6 s on two otherwise idle CPU cores, so one arm (pre-training,
# then cloze and zero-shot multiple choice on the test split) takes a few minutes. That is a quick look:
# direction words need the preset's full 1,500 steps (`steps=1500`; benchmarks/RESULTS.md, learning check).
CPU_PRETRAIN_STEPS = 400

# Measured columns of a pre-trained arm (percent).
MEASURED_COLUMNS = {
    "zero-shot MC": "mc_accuracy",
    "zero-shot MC (temporal)": "mc_temporal_accuracy",
    "cloze": "cloze_acc_all",
    "cloze (temporal)": "cloze_acc_temporal",
}


def pretrain_steps(ctx: Context, steps: int | None) -> int:
    """``steps`` if given, else the scale's: the smoke and paper presets' ``max_steps``, or
    :data:`CPU_PRETRAIN_STEPS` at ``cpu``."""
    if steps is not None:
        if steps < 1:
            raise ParameterError(f"parameter steps={steps}: expected an integer >= 1")
        return steps
    if ctx.scale == "cpu":
        return CPU_PRETRAIN_STEPS
    return ctx.experiment().train.max_steps


def arm_experiment(ctx: Context, overrides: dict[str, Any], steps: int, variant: str | None = None) -> Experiment:
    """The scale's experiment with ``overrides`` and ``steps`` pre-training steps (checkpoints and logs kept
    within the run)."""
    base = ctx.experiment(variant=variant, **overrides)
    return base.override(**{
        "train.max_steps": steps,
        "train.checkpoint_every": min(base.train.checkpoint_every, steps),
        "train.log_every": min(base.train.log_every, max(1, steps // 10)),
    })


def training_accuracies(run_dir: str | Path, last_fraction: float = 0.2) -> dict[str, float]:
    """VTM and MLM accuracy (percent) on the training batches, averaged over the logged entries of the last
    ``last_fraction`` of the run (``metrics.jsonl``)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return {}
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not entries:
        return {}
    last_step = entries[-1]["step"]
    tail = [e for e in entries if e["step"] > last_step * (1 - last_fraction)] or entries[-1:]
    out = {}
    for name, key in (("VTM", "vtm_acc"), ("MLM", "mlm_acc")):
        values = [e[key] for e in tail if key in e]
        if values:
            out[name] = 100.0 * sum(values) / len(values)
    return out


def pretrain_arm(ctx: Context, name: str, exp: Experiment, eval_exp: Experiment | None = None) -> dict[str, Any]:
    """Pre-train ``exp`` into ``ctx.run_dir(name)/pretrain`` and evaluate it (on ``eval_exp``'s data when
    given, e.g. more frames than it was trained with). Returns the measured columns (:data:`MEASURED_COLUMNS`,
    ``VTM``/``MLM`` training accuracy, ``Params (M)``, ``PT time (s)``) and ``metrics``: every number
    ``evaluate_pretrained`` returned."""
    run_dir = ctx.run_dir(name) / "pretrain"
    start = time.perf_counter()
    checkpoint = jobs.pretrain(exp, run_dir, progress=ctx.progress)
    seconds = time.perf_counter() - start
    model = jobs.load_model(exp, checkpoint).to(ctx.device)
    metrics = jobs.evaluate_pretrained(eval_exp or exp, model)
    row: dict[str, Any] = {label: metrics[key] for label, key in MEASURED_COLUMNS.items() if key in metrics}
    row.update(training_accuracies(run_dir))
    row["Params (M)"] = count_parameters(model) / 1e6
    row["PT time (s)"] = round(seconds, 1)
    row["steps"] = exp.train.max_steps
    del model
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()
    return {"row": row, "metrics": metrics}


def describe(exp: Experiment) -> str:
    """One line on the model and data an arm used (for the result's notes)."""
    m = exp.model
    return (f"model width {m.embed_dim}, {m.num_heads} heads, depth {m.num_layers}, {m.image_size} px frames "
            f"(patch {m.patch_size}), {m.num_frames} frames, {m.max_text_len} text tokens; built-in corpus "
            f"'{exp.corpus.size}' ({exp.corpus.image_size} px); batch {exp.train.batch_size}, "
            f"{exp.train.max_steps} steps")
