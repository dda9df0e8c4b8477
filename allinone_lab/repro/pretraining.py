"""Pre-train one arm of an ablation and evaluate it zero-shot, through ``train.jobs``.

Every pre-training reproduction (Tables 6, 8-11, Fig. 7, 9) runs its arms with :func:`pretrain_arm`: the
scale's preset with the arm's overrides and the scale's budget (``train.presets.pretrain_budget``),
``train.runs.pretrain_or_reuse`` into ``output_dir/runs/<scale>/<arm>/`` (a stopped run resumes; a finished
one is reused), then ``train.runs.evaluate`` (``jobs.evaluate_pretrained``):

- at ``rehearsal`` and ``paper``, the paper's protocol: pre-training on the mixture of prepared datasets
  under ``data_root`` (WebVid + HowTo100M) and zero-shot multiple choice on the LSMDC and MSR-VTT test sets,
  reported in the paper's columns (:data:`PAPER_COLUMNS`);
- at ``smoke`` and ``cpu``, the built-in corpus: cloze (masked-word accuracy) and zero-shot multiple choice
  on its test split, in columns of its own (:data:`MEASURED_COLUMNS`), never under a real dataset's name.

Before any arm trains, :func:`preflight_arms` checks what every arm will read and write.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from ..data.registry import DATASETS
from ..model import count_parameters
from ..train import jobs
from ..train.distributed import world_size
from ..train.presets import Experiment, pretrain_budget
from ..train.runs import evaluate, pretrain_or_reuse
from .spec import Context, Headline, ParameterError

# Measured columns of an arm pre-trained on the built-in corpus (percent).
MEASURED_COLUMNS = {
    "zero-shot MC": "mc_accuracy",
    "zero-shot MC (temporal)": "mc_temporal_accuracy",
    "cloze": "cloze_acc_all",
    "cloze (temporal)": "cloze_acc_temporal",
}
# The paper's columns of an arm pre-trained on prepared data: zero-shot multiple choice (percent) on each
# benchmark's test set.
PAPER_COLUMNS = {DATASETS[name].label: f"{name}/mc_accuracy" for name in jobs.ZERO_SHOT_MC}  # LSMDC, MSR-VTT
# What a sweep over a pre-training ablation plots: the temporal columns first (the claim of token rolling),
# chance marked; on prepared data the paper's own columns, its numbers beside ours.
HEADLINE = (
    Headline("zero-shot MC (temporal)", "multiple choice: answer vs its direction-only distractors (%)",
             chance="mc_temporal_chance"),
    Headline("cloze (temporal)", "cloze: masked temporal words predicted (%)", chance="cloze_chance_temporal",
             chance_label="chance: the most frequent temporal word"),
    Headline("zero-shot MC", "zero-shot multiple choice, all options (%)", chance="mc_chance"),
    *(Headline(label, f"zero-shot multiple choice on {label} (%)", chance=20.0, paper=label)
      for label in PAPER_COLUMNS),  # both 5-way
)


def arm_experiment(ctx: Context, overrides: dict[str, Any], steps: int | None = None, variant: str | None = None,
                   protocol: str = "default") -> Experiment:
    """The scale's experiment for one arm: the preset (``variant`` at rehearsal/paper scale), the scale's
    pre-training budget under ``protocol``, the arm's ``overrides``, then ``steps`` if given; checkpoints
    and logs kept within the run."""
    exp = ctx.experiment(variant=variant, **{**pretrain_budget(ctx.scale, protocol), **overrides})
    if steps is not None:
        if steps < 1:
            raise ParameterError(f"parameter steps={steps}: expected an integer >= 1")
        exp = exp.override(**{"train.max_steps": steps})
    n = exp.train.max_steps
    return exp.override(**{"train.checkpoint_every": min(exp.train.checkpoint_every, n),
                           "train.log_every": min(exp.train.log_every, max(1, n // 10))})


def pretrain_steps(ctx: Context, steps: int | None, protocol: str = "default") -> int:
    """``steps`` if given, else the scale's pre-training steps under ``protocol``."""
    return arm_experiment(ctx, {}, steps, protocol=protocol).train.max_steps


def global_batch(exp: Experiment) -> int:
    """The global batch one optimizer step of ``exp`` sees on this run's processes."""
    return exp.train.global_batch_size or exp.train.batch_size * world_size()


def preflight_arms(ctx: Context, arms: list[tuple[str, Experiment, Experiment | None]]) -> None:
    """Check, before any arm trains, everything each ``(run name, experiment, evaluation experiment)`` will
    need: its pre-training and evaluation data, weights, run directory and disk; one error lists every
    problem of every arm (:meth:`Context.preflight`)."""
    ctx.preflight([(exp, ctx.run_path(name) / "pretrain",
                    jobs.pretraining_needs(exp) + jobs.evaluation_needs(eval_exp or exp),
                    {"run_config": exp.to_dict()})
                   for name, exp, eval_exp in arms])


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
    start = time.perf_counter()
    run = pretrain_or_reuse(exp, ctx.run_dir(name) / "pretrain", progress=ctx.progress)
    seconds = time.perf_counter() - start
    model = run.model(ctx.device)
    if eval_exp is None:
        metrics = evaluate(run, device=ctx.device)
    else:  # on another experiment's data, e.g. more frames than the run was trained with
        metrics = jobs.evaluate_pretrained(eval_exp, model)
    columns = MEASURED_COLUMNS if jobs.uses_corpus(exp) else PAPER_COLUMNS
    row: dict[str, Any] = {label: metrics[key] for label, key in columns.items() if key in metrics}
    row.update(training_accuracies(run.run_dir))
    row["Params (M)"] = count_parameters(model) / 1e6
    row["PT time (s)"] = round(seconds, 1)
    row["steps"] = exp.train.max_steps
    row["global batch"] = global_batch(exp)
    del model, run
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()
    return {"row": row, "metrics": metrics}


def describe(exp: Experiment) -> str:
    """One line on the model and data an arm used (for the result's notes)."""
    m = exp.model
    return (f"model width {m.embed_dim}, {m.num_heads} heads, depth {m.num_layers}, {m.image_size} px frames "
            f"(patch {m.patch_size}), {m.num_frames} frames, {m.max_text_len} text tokens, init {m.init}; "
            f"{describe_data(exp)}; global batch {global_batch(exp)} (per process {exp.train.batch_size}), "
            f"{exp.train.max_steps} steps")


def describe_data(exp: Experiment) -> str:
    """Where an experiment's pre-training pairs come from."""
    mix = exp.data.pretrain_datasets
    if exp.data.pretrain_shards is not None:
        packs = exp.data.pretrain_shards
        shares = mix or {name: 1 for name in packs}
        total = sum(shares.values())
        return "pre-training data: " + " + ".join(
            f"{name} {100 * share / total:.0f}% (shards {jobs.shard_pack(exp, name)['location']})"
            for name, share in shares.items() if share > 0)
    if jobs.uses_corpus(exp):
        return f"built-in corpus '{exp.corpus.size}' ({exp.corpus.image_size} px)"
    if mix is None:
        return f"pre-training data: the prepared dataset at {exp.data_root}"
    total = sum(mix.values())
    shares = " + ".join(f"{name} {100 * share / total:.0f}%" for name, share in mix.items() if share > 0)
    return f"pre-training data: {shares} of every epoch, prepared under {exp.data_root}"
