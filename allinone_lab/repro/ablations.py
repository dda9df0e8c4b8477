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

import torch

from ..model import AllInOne, ModelConfig, count_parameters
from ..model.pretrained import TIMM_TAGS, image_normalization
from ..train import jobs
from ..train.presets import CPU_PRETRAIN_STEPS
from . import paper as paper_numbers
from .model_tables import parse_list
from .pretraining import HEADLINE, arm_experiment, describe, preflight_arms, pretrain_arm
from .spec import Context, Param, ParameterError, Reproduction, Result, register

STEPS = Param("steps", int, None, help=f"pre-training steps per arm; None: by scale (cpu: {CPU_PRETRAIN_STEPS}, "
              "others: the preset's)",
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


def run_arms(ctx: Context, arms: list[Arm], steps: int | None, notes: list[str] | None = None,
             protocol: str = "default") -> Result:
    """Pre-train and evaluate each arm (after one preflight of them all); a single arm's metrics are
    unprefixed (so sweeps over arms line up), several arms' are ``<arm>/<metric>``."""
    rows, metrics, notes = [], {}, list(notes or [])
    planned = []
    for arm in arms:
        exp = arm_experiment(ctx, arm.overrides, steps, variant=arm.variant, protocol=protocol)
        planned.append((arm, exp, exp.override(**arm.eval_overrides) if arm.eval_overrides else None))
    runs = {arm.name: (arm.name, exp, eval_exp) for arm, exp, eval_exp in planned}  # arms may share a run
    preflight_arms(ctx, list(runs.values()))
    described: set[str] = set()
    for arm, exp, eval_exp in planned:
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
    if jobs.uses_corpus(planned[0][1]):
        notes.append("Measured: zero-shot multiple choice and cloze (masked-word accuracy) on the built-in corpus's "
                     "test split, '(temporal)' among direction words / direction-only distractors; VTM and MLM are "
                     "training-batch accuracies over the last 20% of pre-training. The paper's LSMDC and MSR-VTT "
                     "columns are zero-shot multiple choice on those datasets (scale rehearsal or paper).")
    else:
        notes.append("Measured as in the paper: LSMDC and MSR-VTT are zero-shot multiple-choice accuracy (the "
                     "pre-trained VTM match logit picks one of five candidates) on each test set under data_root; "
                     "VTM and MLM are training-batch accuracies over the last 20% of pre-training.")
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
    """Pre-train the named variant from scratch and from each ImageNet initialisation whose local weights are
    given. Every arm, the scratch one included and whether or not any weights are given, is the ``variant``
    backbone at the scale's frame size, so that the arms differ only in their initial weights and one run
    directory always holds one configuration; the scratch arm is ``init="scratch"`` at every scale (the paper
    presets initialise from ImageNet). Measured rows carry the steps they ran, beside the paper's 200K row of
    their initialisation (the 800K rows only beside a run of 800K steps)."""
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
    arms = [Arm(init, {"init": init}, _variant_overrides(ctx, params["variant"], init, files.get(init)))
            for init in available]
    result = run_arms(ctx, arms, params["steps"], notes) if arms else Result(metrics={}, rows=[], notes=notes)
    result.rows += missing_rows
    if arms:
        result.notes.append(
            f"Every arm is the {params['variant']} variant (its full width and depth, patch 16) at this "
            "scale's frame size, initialised as its row says ('scratch': random weights). 'steps (measured)' "
            "is what each arm ran; it sits beside the paper's 200K row of its initialisation ('steps "
            "(paper)'). The paper's 800K rows are not run here: a measured row sits beside them only when "
            "it ran 800K steps (scale='paper', steps=800000).")
    return result


def _tag(variant: str, init: str) -> str:
    pair = TIMM_TAGS.get((variant, 16))
    return "unknown" if pair is None else pair[0 if init == "imagenet" else 1]


def _variant_overrides(ctx: Context, variant: str, init: str, file: str | None) -> dict[str, Any]:
    """The named timm variant (its full width and depth) at the scale's frame size, initialised as ``init``
    says (``scratch``: random weights) with the image normalisation those weights expect."""
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
        Param("variant", str, "tiny", ("tiny", "small", "base"), "backbone of every arm, scratch included"),
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
    result = run_arms(ctx, [arm], params["steps"], protocol="table8b")
    exp = ctx.experiment(**{"model.roll_ratio": ratio})
    k = exp.model.roll_k()
    result.rows[0]["rolled tokens each way"] = k
    result.notes.append(f"Ratio {ratio:g} rolls k = {k} of {exp.model.visual_len} visual tokens per frame each way "
                        f"(floor({exp.model.visual_len} x {ratio:g} / 2), at least one for a positive ratio); "
                        "ratio 0 is time averaging.")
    if exp.model.roll_selection != "block":
        result.notes.append(f"Rolled positions: '{exp.model.roll_selection}' (the {ctx.scale} preset's "
                            "selection); the paper rolls a block (Table 11b).")
    return result


register(Reproduction(
    name="table8b",
    title="Table 8b: ratio of rolled tokens (zero-shot)",
    params=(Param("ratio", float, 0.25, help="fraction of visual tokens rolled", bounds=(0.0, 1.0)), STEPS),
    run=run_table8b,
    headline=HEADLINE,
))


# Table 9 ------------------------------------------------------------------------------------------------
TABLE9_ARMS = {
    "timesformer": Arm("timesformer", {"method": "TimeSformer"}, {"model.temporal": "timesformer"}),
    "decoupled": Arm("decoupled", {"method": "Decouple Attn"}, {"model.temporal": "decoupled"}),
    "roll": Arm("roll", {"method": "All-in-one-B"}, {"model.temporal": "roll"}),
}


TABLE9_B_PARAMS = "Params (M) as All-in-one-B"  # the arm's block at All-in-one-B size, whatever the scale


def all_in_one_b_parameters(temporal: str) -> float:
    """Parameters (millions, without the pre-training heads) of All-in-one-B (224 px, 3 frames, 40 text
    tokens) with ``temporal``, counted on the meta device (no weights allocated)."""
    config = ModelConfig(variant="base", image_size=224, patch_size=16, num_frames=3, max_text_len=40,
                         temporal=temporal)
    with torch.device("meta"):
        return count_parameters(AllInOne(config)) / 1e6


def table9_parameter_note() -> str:
    """What the TimeSformer and decoupled arms add to each block here, against what the paper's counts
    imply."""
    paper_rows = {row["method"]: row["Params (M)"] for row in paper_numbers.TABLE9.rows}
    base = paper_rows["All-in-one-B"]
    arms = (("TimeSformer", "timesformer"), ("Decouple Attn", "decoupled"), ("All-in-one-B", "roll"))
    ours = {method: all_in_one_b_parameters(temporal) for method, temporal in arms}
    added = ("TimeSformer", "Decouple Attn")
    per_block = {m: (ours[m] - ours["All-in-one-B"]) / PAPER_DEPTH for m in added}
    implied = {m: (paper_rows[m] - base) / PAPER_DEPTH for m in added}
    ts, da = "TimeSformer", "Decouple Attn"
    roll = ours["All-in-one-B"]
    return (f"'{TABLE9_B_PARAMS}': each arm built as All-in-one-B, {ours[ts]:.1f}M ({ts}) and "
            f"{ours[da]:.1f}M ({da}) against the paper's {paper_rows[ts]:g}M and {paper_rows[da]:g}M "
            f"({roll:.1f}M and {base:g}M for All-in-one-B). Here {ts} adds to each of the 12 blocks a time "
            f"attention over each patch position (layer norm, attention) and a linear layer, "
            f"{per_block[ts]:.2f}M, and {da} a text-only and a video-only self-attention with their layer "
            f"norms, {per_block[da]:.2f}M; the "
            f"paper's counts imply ({paper_rows[ts]:g} - {base:g}) / 12 = {implied[ts]:.2f}M and "
            f"({paper_rows[da]:g} - {base:g}) / 12 = {implied[da]:.2f}M per block, added layers whose exact "
            "form the paper does not specify.")


def run_table9(params: dict[str, Any], ctx: Context) -> Result:
    """Pre-train TimeSformer-style, decoupled-attention and token-rolling arms on the scale's model. Each row
    also states the arm's parameters at All-in-one-B size (:data:`TABLE9_B_PARAMS`) beside the paper's count,
    and the notes say what each arm adds per block here against what the paper's counts imply."""
    arms = _select("method", params["method"], TABLE9_ARMS)
    result = run_arms(ctx, arms, params["steps"])
    for arm, row in zip(arms, result.rows, strict=True):
        row[TABLE9_B_PARAMS] = all_in_one_b_parameters(arm.overrides["model.temporal"])
    result.notes.append("Rows keep the paper's labels; 'All-in-one-B' is token rolling on the scale's "
                        "model, and 'PT time (s)' is this run's pre-training time (the paper's PT Time is in "
                        "hours on GPUs). 'Params (M)' (measured) counts the model this run trained, at the "
                        "scale's size.")
    result.notes.append(table9_parameter_note())
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
PAPER_POSITIONS = (1, 3, 6)
# Pre-training seconds per step at scale="cpu" (width 128, 8 heads, batch 32, two CPU cores; one optimizer step
# on a fixed batch, benchmarks/profile_step.py, 2026-12-04), the preset's 3 blocks against Table 11a's 12: the
# cost of running the paper's positions as they are.
TABLE11A_CPU_SECONDS_PER_STEP = {3: 0.21, 12: 0.74}


def first_block(position: int, depth: int) -> int:
    """The paper's 1-based start block (of 12) mapped to a model of ``depth`` blocks, keeping its fraction
    of the depth: 1 -> 1, 3 -> 1 + 2*depth/12, 6 -> 1 + 5*depth/12 (rounded down)."""
    return 1 + (position - 1) * depth // PAPER_DEPTH


def table11a_depth(depth: int) -> int:
    """The depth of Table 11a's arms: ``depth`` (the scale's) when the paper's positions 1, 3 and 6 start at
    distinct blocks of it, else the paper's 12 blocks. A shallower model would map two or three positions to
    one start block and show one configuration as different ablation points (depth 3: positions 1 and 3
    both start at block 1; depth 2: all three)."""
    starts = {first_block(p, depth) for p in PAPER_POSITIONS}
    return depth if len(starts) == len(PAPER_POSITIONS) else PAPER_DEPTH


def run_table11a(params: dict[str, Any], ctx: Context) -> Result:
    """Pre-train with rolling from the paper's block 1, 3 or 6 on. Where the scale's preset is too shallow
    for the three positions to start at distinct blocks (smoke: 2 blocks, cpu: 3), every arm has the paper's
    12 blocks, with the preset's width and heads: the positions are then the paper's blocks themselves, at
    about 3.5 times the preset's pre-training time per step at scale='cpu'
    (:data:`TABLE11A_CPU_SECONDS_PER_STEP`)."""
    preset_depth = ctx.experiment().model.num_layers
    depth = table11a_depth(preset_depth)
    deeper = {} if depth == preset_depth else {"model.depth": depth}
    positions = list(PAPER_POSITIONS) if params["position"] == "all" else [int(params["position"])]
    arms = [Arm(f"position_{p}", {"position": p}, {**deeper, "model.temporal": "roll",
                                                  "model.first_temporal_block": first_block(p, depth)})
            for p in positions]
    result = run_arms(ctx, arms, params["steps"])
    for row, p in zip(result.rows, positions, strict=True):
        row["first rolling block"] = first_block(p, depth)
        row["blocks"] = depth
    if deeper:
        mapped = [first_block(p, preset_depth) for p in PAPER_POSITIONS]
        cost = TABLE11A_CPU_SECONDS_PER_STEP
        result.notes.append(
            f"Every arm has depth {depth} (the paper's 12 blocks), not the {ctx.scale} preset's "
            f"{preset_depth}: with {preset_depth} blocks the paper's positions 1, 3, 6 would start at blocks "
            f"{mapped}, one configuration shown as different positions. Width and heads are the preset's; "
            "rolling starts at the paper's block itself ('first rolling block'). Cost: at scale='cpu' a "
            f"pre-training step takes about {cost[12]:g} s with 12 blocks against {cost[3]:g} s with the "
            "preset's 3 (two CPU cores, batch 32).")
    elif depth != PAPER_DEPTH:
        result.notes.append(f"The paper's positions refer to 12 blocks; this model has {depth}, so rolling "
                            f"starts at block 1 + (position - 1) x {depth} // 12 ('first rolling block').")
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
# Default frame counts per scale, within the frames each scale's built-in corpus stores per clip (smoke 8,
# cpu 3, paper 16). The cpu corpus stores 3: its objects move 21 px per frame (more than a 16-px patch, so
# that one sampled step shows the direction) and stay inside the 64-px frame, which leaves room for 3 frames;
# storing more would mean slower objects, a corpus unlike every other table's.
FIG9_FRAMES = {"smoke": "1,3", "cpu": "1,2,3", "rehearsal": "1,3", "paper": "1,2,3,4,8,16"}


FIG9_PRETRAIN_DATA = {"webvid": 1.0}


def run_fig9(params: dict[str, Any], ctx: Context) -> Result:
    """Pre-train one arm per frame count (``frames``, None: :data:`FIG9_FRAMES` of the scale). On the built-in
    corpus a count must be within the frames it stores per clip; an explicit count beyond them is refused
    with a :class:`ParameterError` naming the parameter and the stored count."""
    text = params["frames"] or FIG9_FRAMES[ctx.scale]
    frames = parse_list("frames", text, int)
    base = ctx.experiment()
    corpus = jobs.uses_corpus(base)
    stored = base.corpus.num_frames if corpus else None
    bad = [f for f in frames if f < 1 or (stored is not None and f > stored)]
    if bad:
        if corpus:
            raise ParameterError(f"parameter frames={text!r}: {bad} outside 1..{stored}, the frames stored "
                                 f"per clip in the '{ctx.scale}' corpus; expected frame counts in "
                                 f"1..{stored}")
        raise ParameterError(f"parameter frames={text!r}: {bad} below 1; expected positive frame counts")
    # The paper pre-trains this ablation on WebVid2.5M alone (Appendix B.2), not the default mixture.
    data = {} if corpus else {"data.pretrain_datasets": dict(FIG9_PRETRAIN_DATA)}
    arms = [Arm(f"frames_{f}", {"frames": f}, {"model.num_frames": f, **data}) for f in frames]
    result = run_arms(ctx, arms, params["steps"])
    if not corpus:
        result.notes.append("Pre-trained on WebVid alone, as the paper's Fig. 9 (Appendix B.2).")
    if corpus:
        c = base.corpus
        result.notes.append(
            f"Frame counts {frames} of the {stored} frames stored per clip in the '{c.size}' corpus (objects "
            f"move {c.speed_px} px per stored frame); the paper varies 1 to 16 frames on WebVid2.5M.")
    return result


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
