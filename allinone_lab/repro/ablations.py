"""Pre-training ablations: initialisation (Table 6), temporal modelling (Tables 8a, 9), rolling ratio
(Table 8b), input embeddings (Table 10), where rolling starts (Table 11a), which tokens roll (Table 11b) and
the number of frames (Fig. 9).

Each arm is pre-trained on the built-in corpus at the chosen scale and evaluated zero-shot (cloze and
multiple choice on the test split): the corpus's counterparts of the paper's pre-training accuracies and
zero-shot LSMDC / MSR-VTT multiple choice. Arms are picked by a parameter (``all`` runs every arm), so a
sweep can spread them over processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..model.pretrained import TIMM_TAGS, image_normalization
from .model_tables import parse_list
from .pretraining import CPU_PRETRAIN_STEPS, arm_experiment, describe, pretrain_arm, pretrain_steps
from .spec import Context, Param, ParameterError, Reproduction, Result, register

STEPS = Param("steps", int, None, help=f"pre-training steps per arm; None: by scale (cpu: {CPU_PRETRAIN_STEPS}, "
              "smoke and paper: the preset's)",
              bounds=(1, 10_000_000))


@dataclass
class Arm:
    """One row of an ablation: its run name, the paper row's keys, the experiment overrides, and overrides
    of the evaluation data only (e.g. more frames than pre-training saw)."""

    name: str
    keys: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)
    eval_overrides: dict[str, Any] = field(default_factory=dict)
    variant: str | None = None


def run_arms(ctx: Context, arms: list[Arm], steps: int | None, notes: list[str] | None = None) -> Result:
    """Pre-train and evaluate each arm; a single arm's metrics are unprefixed (so sweeps over arms line up),
    several arms' are ``<arm>/<metric>``."""
    steps = pretrain_steps(ctx, steps)
    rows, metrics, notes = [], {}, list(notes or [])
    described: set[str] = set()
    for arm in arms:
        exp = arm_experiment(ctx, arm.overrides, steps, variant=arm.variant)
        eval_exp = exp.override(**arm.eval_overrides) if arm.eval_overrides else None
        measured = pretrain_arm(ctx, arm.name, exp, eval_exp)
        rows.append({**arm.keys, **measured["row"]})
        numbers = {**measured["metrics"], **{k.lower() + "_acc": v for k, v in measured["row"].items()
                                             if k in ("VTM", "MLM")},
                   "pretrain_seconds": measured["row"]["PT time (s)"]}
        prefix = "" if len(arms) == 1 else f"{arm.name}/"
        metrics.update({prefix + k: float(v) for k, v in numbers.items()})
        line = describe(exp)
        if line not in described:
            described.add(line)
            notes.append(f"{arm.name}: {line}.")
    notes.append("Measured: zero-shot multiple choice and cloze (masked-word accuracy) on the built-in corpus's "
                 "test split, '(temporal)' among direction words / direction-only distractors; VTM and MLM are "
                 "training-batch accuracies over the last 20% of pre-training. The paper's LSMDC and MSR-VTT "
                 "columns are zero-shot multiple choice on those datasets.")
    return Result(metrics=metrics, rows=rows, notes=notes)


def _select(param: str, value: str, arms: dict[str, Arm]) -> list[Arm]:
    if value == "all":
        return list(arms.values())
    if value not in arms:
        raise ParameterError(f"parameter {param}={value!r}: expected 'all' or one of {list(arms)}")
    return [arms[value]]


def _frames(ctx: Context) -> int:
    return ctx.experiment().model.num_frames


# Table 6 ------------------------------------------------------------------------------------------------
def run_table6(params: dict[str, Any], ctx: Context) -> Result:
    files = {"imagenet": params["init_file"], "imagenet21k": params["init_file_21k"]}
    wanted = ["scratch", "imagenet", "imagenet21k"] if params["init"] == "all" else [params["init"]]
    available = [i for i in wanted if i == "scratch" or files[i] is not None]
    notes, missing_rows = [], []
    for init in wanted:
        if init not in available:
            option = "init_file" if init == "imagenet" else "init_file_21k"
            missing_rows.append({"init": init, "status": f"not available: set {option} to a local timm file"})
            notes.append(f"{init}: not run. Weights are never downloaded here; pass {option}= a local timm "
                         f"checkpoint of the {params['variant']} variant's '{init}' weights "
                         f"({_tag(params['variant'], init)}).")
    pretrained = any(i != "scratch" for i in available)
    arms = []
    for init in available:
        overrides: dict[str, Any] = {}
        if pretrained:  # every arm uses the named variant, so that the comparison is about the weights only
            overrides = _variant_overrides(ctx, params["variant"], init, files.get(init))
        arms.append(Arm(init, {"init": init}, overrides))
    result = run_arms(ctx, arms, params["steps"], notes) if arms else Result(metrics={}, rows=[], notes=notes)
    result.rows += missing_rows
    return result


def _tag(variant: str, init: str) -> str:
    pair = TIMM_TAGS.get((variant, 16))
    return "unknown" if pair is None else pair[0 if init == "imagenet" else 1]


def _variant_overrides(ctx: Context, variant: str, init: str, file: str | None) -> dict[str, Any]:
    """The named timm variant (its full width and depth) at the scale's frame size, with ``init`` weights and
    the image normalisation those weights expect."""
    base = ctx.experiment().model
    model = base.replace(variant=variant, width=None, heads=None, depth=None, patch_size=16, init=init,
                         init_file=file)
    mean, std = image_normalization(model)
    return {"model.variant": variant, "model.width": None, "model.heads": None, "model.depth": None,
            "model.patch_size": 16, "model.init": init, "model.init_file": file,
            "data.mean": tuple(mean), "data.std": tuple(std)}


register(Reproduction(
    name="table6",
    title="Table 6: initialisation (scratch, ImageNet, ImageNet-21K)",
    params=(
        Param("init", str, "all", ("all", "scratch", "imagenet", "imagenet21k")),
        Param("init_file", str, None, help="local timm weights for 'imagenet' (never downloaded)"),
        Param("init_file_21k", str, None, help="local timm weights for 'imagenet21k' (never downloaded)"),
        Param("variant", str, "tiny", ("tiny", "small", "base"), "backbone when ImageNet weights are used"),
        STEPS,
    ),
    run=run_table6,
))


# Table 8a -----------------------------------------------------------------------------------------------
def table8a_arms(frames: int) -> dict[str, Arm]:
    single = {"model.num_frames": 1, "model.temporal": "none"}
    return {
        "single_frame": Arm("single_frame", {"method": "Single Frame", "PF": 1, "DF": 1}, single),
        # Pre-trained on one frame (the same run as single_frame), evaluated on all frames averaged.
        "time_average": Arm("single_frame", {"method": "Time Average", "PF": 1, "DF": frames}, single,
                            {"model.num_frames": frames}),
        "time_average_3": Arm("time_average", {"method": "Time Average ‡", "PF": frames, "DF": frames},
                              {"model.temporal": "none"}),
        "channel_shift": Arm("channel_shift", {"method": "Channel Shift", "PF": frames, "DF": frames},
                             {"model.temporal": "channel_shift"}),
        "flatten": Arm("flatten", {"method": "Flatten", "PF": frames, "DF": frames}, {"model.temporal": "flatten"}),
        "roll": Arm("roll", {"method": "Token Rolling", "PF": frames, "DF": frames}, {"model.temporal": "roll"}),
    }


def run_table8a(params: dict[str, Any], ctx: Context) -> Result:
    arms = _select("method", params["method"], table8a_arms(_frames(ctx)))
    return run_arms(ctx, arms, params["steps"])


register(Reproduction(
    name="table8a",
    title="Table 8a: parameter-free temporal modelling (zero-shot)",
    params=(
        Param("method", str, "all", ("all", "single_frame", "time_average", "time_average_3", "channel_shift",
                                     "flatten", "roll")),
        STEPS,
    ),
    run=run_table8a,
))


# Table 8b -----------------------------------------------------------------------------------------------
def run_table8b(params: dict[str, Any], ctx: Context) -> Result:
    ratio = params["ratio"]
    arm = Arm(f"ratio_{ratio:g}", {"ratio": ratio}, {"model.temporal": "roll", "model.roll_ratio": ratio})
    result = run_arms(ctx, [arm], params["steps"])
    exp = ctx.experiment(**{"model.roll_ratio": ratio})
    k = exp.model.roll_k()
    result.rows[0]["rolled tokens each way"] = k
    result.notes.append(f"Ratio {ratio:g} rolls k = floor({exp.model.visual_len} x {ratio:g} / 2) = {k} of "
                        f"{exp.model.visual_len} visual tokens per frame each way; ratio 0 is time averaging.")
    if exp.model.roll_selection != "block":
        result.notes.append(f"Rolled positions: '{exp.model.roll_selection}' (the {ctx.scale} preset's "
                            "selection); the paper rolls a block (Table 11b).")
    return result


register(Reproduction(
    name="table8b",
    title="Table 8b: ratio of rolled tokens (zero-shot)",
    params=(Param("ratio", float, 0.25, help="fraction of visual tokens rolled", bounds=(0.0, 1.0)), STEPS),
    run=run_table8b,
))


# Table 9 ------------------------------------------------------------------------------------------------
TABLE9_ARMS = {
    "timesformer": Arm("timesformer", {"method": "TimeSformer"}, {"model.temporal": "timesformer"}),
    "decoupled": Arm("decoupled", {"method": "Decouple Attn"}, {"model.temporal": "decoupled"}),
    "roll": Arm("roll", {"method": "All-in-one-B"}, {"model.temporal": "roll"}),
}


def run_table9(params: dict[str, Any], ctx: Context) -> Result:
    result = run_arms(ctx, _select("method", params["method"], TABLE9_ARMS), params["steps"])
    result.notes.append("Rows keep the paper's labels; 'All-in-one-B' is token rolling on the scale's model, and "
                        "'PT time (s)' is this run's pre-training time (the paper's PT Time is in hours on GPUs).")
    return result


register(Reproduction(
    name="table9",
    title="Table 9: TimeSformer and decoupled attention against token rolling",
    params=(Param("method", str, "all", ("all", "timesformer", "decoupled", "roll")), STEPS),
    run=run_table9,
))


# Table 10 -----------------------------------------------------------------------------------------------
TABLE10_ARMS = {
    "none": Arm("no_spe_no_mte", {"SPE": False, "MTE": False}, {"model.use_spe": False, "model.use_mte": False}),
    "spe": Arm("spe", {"SPE": True, "MTE": False}, {"model.use_spe": True, "model.use_mte": False}),
    "spe_mte": Arm("spe_mte", {"SPE": True, "MTE": True}, {"model.use_spe": True, "model.use_mte": True}),
}


def run_table10(params: dict[str, Any], ctx: Context) -> Result:
    return run_arms(ctx, _select("embeddings", params["embeddings"], TABLE10_ARMS), params["steps"])


register(Reproduction(
    name="table10",
    title="Table 10: spatio-temporal position and modality-type embeddings",
    params=(Param("embeddings", str, "all", ("all", "none", "spe", "spe_mte"),
                  "none: neither; spe: position only; spe_mte: both"), STEPS),
    run=run_table10,
))


# Table 11a ----------------------------------------------------------------------------------------------
PAPER_DEPTH = 12  # All-in-one-B's blocks, to which the paper's positions 1, 3 and 6 refer


def first_block(position: int, depth: int) -> int:
    """The paper's 1-based start block (of 12) mapped to a model of ``depth`` blocks, keeping its fraction
    of the depth: 1 -> 1, 3 -> 1 + 2*depth/12, 6 -> 1 + 5*depth/12 (rounded down)."""
    return 1 + (position - 1) * depth // PAPER_DEPTH


def run_table11a(params: dict[str, Any], ctx: Context) -> Result:
    depth = ctx.experiment().model.num_layers
    positions = [1, 3, 6] if params["position"] == "all" else [int(params["position"])]
    arms = [Arm(f"position_{p}", {"position": p}, {"model.temporal": "roll",
                                                  "model.first_temporal_block": first_block(p, depth)})
            for p in positions]
    result = run_arms(ctx, arms, params["steps"])
    for row, p in zip(result.rows, positions, strict=True):
        row["first rolling block"] = first_block(p, depth)
    result.notes.append(f"The paper's positions refer to 12 blocks; this model has {depth}, so rolling starts at "
                        f"block 1 + (position - 1) x {depth} // 12 ('first rolling block').")
    return result


register(Reproduction(
    name="table11a",
    title="Table 11a: the first block with token rolling",
    params=(Param("position", str, "all", ("all", "1", "3", "6"), "the paper's start block of 12"), STEPS),
    run=run_table11a,
))


# Table 11b ----------------------------------------------------------------------------------------------
TABLE11B_ARMS = {
    "random": Arm("random", {"method": "Random Selection"}, {"model.temporal": "roll", "model.roll_selection": "random"}),
    "varying": Arm("varying", {"method": "Varying Layers"}, {"model.temporal": "roll", "model.roll_selection": "varying"}),
    "block": Arm("block", {"method": "Block"}, {"model.temporal": "roll", "model.roll_selection": "block"}),
    # Not in the paper: block rows in odd rolled layers, block columns in even ones (no paper numbers).
    "alternating": Arm("alternating", {"method": "Alternating rows and columns"},
                       {"model.temporal": "roll", "model.roll_selection": "alternating"}),
}


def run_table11b(params: dict[str, Any], ctx: Context) -> Result:
    arms = _select("selection", params["selection"], TABLE11B_ARMS)
    notes = []
    if any(arm.name == "alternating" for arm in arms):
        notes.append("'Alternating rows and columns' is not in the paper: odd rolled layers roll the top and bottom "
                     "rows (as Block), even ones the left and right columns, so the rolled tokens meet motion "
                     "along both axes.")
    return run_arms(ctx, arms, params["steps"], notes)


register(Reproduction(
    name="table11b",
    title="Table 11b: which tokens roll",
    params=(Param("selection", str, "all", ("all", "random", "varying", "block", "alternating")), STEPS),
    run=run_table11b,
))


# Figure 9 -----------------------------------------------------------------------------------------------
FIG9_FRAMES = {"smoke": "1,3", "cpu": "1,2,3,4,8", "paper": "1,2,3,4,8,16"}


def run_fig9(params: dict[str, Any], ctx: Context) -> Result:
    text = params["frames"] or FIG9_FRAMES[ctx.scale]
    frames = parse_list("frames", text, int)
    stored = ctx.experiment().corpus.num_frames
    bad = [f for f in frames if not 1 <= f <= stored]
    if bad:
        raise ParameterError(f"parameter frames={text!r}: {bad} outside 1..{stored}, the frames stored per clip "
                             f"in the '{ctx.scale}' corpus")
    arms = [Arm(f"frames_{f}", {"frames": f}, {"model.num_frames": f}) for f in frames]
    return run_arms(ctx, arms, params["steps"])


def plot_fig9(result: Result):
    from matplotlib.figure import Figure

    rows = sorted(result.rows, key=lambda r: r["frames"])
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    x = [r["frames"] for r in rows]
    for ax, keys, title in ((left, ("VTM", "MLM"), "Pre-training accuracy"),
                            (right, ("zero-shot MC", "zero-shot MC (temporal)", "cloze", "cloze (temporal)"),
                             "Zero-shot on the corpus")):
        for key in keys:
            ys = [r.get(key, math.nan) for r in rows]
            if any(not math.isnan(y) for y in ys):
                ax.plot(x, ys, marker="o", label=key)
        ax.set(xlabel="frames", ylabel="accuracy (%)", title=title, xticks=x)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


register(Reproduction(
    name="fig9",
    title="Figure 9: pre-training and zero-shot accuracy against the number of frames",
    params=(Param("frames", str, None, help="comma-separated frame counts; None: by scale"), STEPS),
    run=run_fig9,
    plot=plot_fig9,
))


__all__ = ["Arm", "first_block", "run_arms", "table8a_arms"]
