"""Reproductions of the paper's figures on attention (Fig. 4) and cloze with optimal transport (Fig. 6).

``fig4``: the text-to-video attention distribution over visual token positions of a model pre-trained with
token rolling beside one pre-trained without (ratio 0, the paper's baseline), on test pairs of the built-in
corpus, with the rolled positions marked.

``fig6``: cloze with optimal transport on test items of the built-in corpus: the transport mass of each
masked word inside the mask of the object it describes, against a uniform plan, per word kind (direction,
colour, shape) and per frame, with the features of the block chosen on training items; and heatmaps of the
typical (median) item of each kind, its rank printed beside it, the predicted words as titles, the frames
dimmed in grey and the object outlined.

Both pre-train with the ``scale`` preset (or load the given checkpoints) and save the figure's data next to
``results.json`` so that :func:`repro.plot` can redraw it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..data import corpus_dataset
from ..io import atomic_save
from ..ot import SOLVERS
from ..train import jobs
from ..train.runs import load_run, pretrain_or_reuse
from ..viz.attention import AttentionProfile, attention_profile, plot_attention_profiles
from ..viz.cloze import (
    KINDS,
    SCOPES,
    HeatmapRow,
    choose_layer,
    cloze_alignment,
    draw_heatmaps,
    layer_alignment,
    run_cloze,
    typical_items,
)
from ..viz.sources import ModelBundle, corpus_pair_batches, load_corpus_clip
from .pretraining import arm_experiment, describe
from .spec import Context, Param, ParameterError, Reproduction, Result, register

FIG4_DATA = "fig4_profiles.pt"
FIG6_DATA = "fig6_examples.pt"


def pretrained_bundle(ctx: Context, name: str, checkpoint: str | None, steps: int | None,
                      overrides: dict[str, Any] | None = None) -> tuple[ModelBundle, str]:
    """The model of ``checkpoint``, or one pre-trained (with the preset's losses) with the scale's preset and
    ``overrides`` for ``steps`` steps (None: by scale, see :func:`pretraining.pretrain_steps`) into
    ``ctx.run_dir(name)/pretrain`` (a finished run there is reused). Returns the bundle and a line saying
    where the model came from."""
    if checkpoint is not None:
        ctx.ready()
        run = load_run(checkpoint, ctx.device)
        bundle = ModelBundle.from_run(run, ctx.device, source=str(Path(checkpoint)))
        return bundle, f"{name}: checkpoint {checkpoint}"
    exp = arm_experiment(ctx, overrides or {}, steps)
    run_dir = ctx.run_path(name) / "pretrain"
    ctx.preflight([(exp, run_dir, jobs.pretraining_needs(exp), {"run_config": exp.to_dict()})])
    run = pretrain_or_reuse(exp, run_dir, progress=ctx.progress)
    # The model as its run directory records it (a run reused from an earlier call keeps its configuration).
    bundle = ModelBundle.from_run(load_run(run.run_dir, ctx.device), ctx.device)
    return bundle, f"{name}: pre-trained here, {describe(exp)}"


def _result_dir(result: Result) -> Path:
    if result.path is not None:
        return Path(result.path).parent
    return Path(result.params["output_dir"])


# Fig. 4 ---------------------------------------------------------------------------------------------------
def _check_positive(params: dict[str, Any], name: str, *keys: str) -> None:
    for key in keys:
        if params[key] is not None and params[key] < 1:
            raise ParameterError(f"{name}: parameter {key}={params[key]!r}: expected an integer >= 1")


def run_fig4(params: dict[str, Any], ctx: Context) -> Result:
    arms = (("with rolling", "roll", params["roll_ratio"], params["roll_checkpoint"]),
            ("without rolling", "no_roll", 0.0, params["none_checkpoint"]))  # fmt: skip
    _check_positive(params, "fig4", "clips")
    if not 0 < params["roll_ratio"] <= 1:
        raise ParameterError(f"fig4: parameter roll_ratio={params['roll_ratio']!r}: expected a fraction in (0, 1]")
    profiles: list[AttentionProfile] = []
    origins: list[str] = []
    pairs = 0
    for label, name, ratio, checkpoint in arms:
        bundle, origin = pretrained_bundle(ctx, name, checkpoint, params["steps"], {"model.roll_ratio": ratio})
        origins.append(origin)
        batches = corpus_pair_batches(bundle.data, bundle.corpus, params["clips"])
        pairs = sum(len(b["input_ids"]) for b in batches)
        profiles.append(attention_profile(bundle.model, batches, label))
    rolling, baseline = profiles
    if not rolling.rolled.any():
        raise ValueError("fig4: the model 'with rolling' rolls no positions (roll_ratio 0 or a checkpoint without "
                         "rolling); pass roll_ratio > 0 or a rolled checkpoint as roll_checkpoint")
    rolled_layers = rolling.rolled.any(dim=1)
    positions = rolling.rolled[rolled_layers].any(dim=0)  # positions rolled in any rolled layer
    rows, metrics = [], {}
    for profile in profiles:
        if profile.distribution.shape[-1] != positions.shape[0]:
            raise ValueError("fig4: the two models see different numbers of visual tokens per frame "
                             f"({profile.distribution.shape[-1]} vs {positions.shape[0]})")
        mean = profile.distribution[rolled_layers].mean(dim=(0, 1))
        rolled_share = float(mean[positions].sum())
        uniform = float(positions.sum()) / positions.shape[0]
        row = {"model": profile.label, "rolled positions share": rolled_share, "uniform share": uniform,
               "ratio to uniform": rolled_share / uniform, "CLS share": float(mean[0]),
               "other positions share": 1.0 - rolled_share - float(mean[0])}  # fmt: skip
        rows.append(row)
        key = "roll" if profile is rolling else "none"
        metrics[f"rolled_share_{key}"] = rolled_share
    metrics["rolled_share_uniform"] = rows[0]["uniform share"]
    metrics["rolled_share_gain"] = metrics["rolled_share_roll"] - metrics["rolled_share_none"]
    atomic_save({"profiles": [{"label": p.label, "distribution": p.distribution, "rolled": p.rolled}
                              for p in profiles]}, ctx.output_dir / FIG4_DATA)  # fmt: skip
    notes = [f"averaged over {pairs} test pairs of the built-in corpus, every real text token "
             "of every frame, all heads and the layers with rolling; shares are of each text token's attention to "
             "the visual tokens of its frame",
             "rolled positions: those the rolling model rolls (the same positions are measured for the baseline)",
             *origins]
    return Result(metrics=metrics, rows=rows, notes=notes)


def plot_fig4(result: Result):
    data = torch.load(_result_dir(result) / FIG4_DATA, weights_only=True)
    profiles = [AttentionProfile(p["label"], p["distribution"], p["rolled"]) for p in data["profiles"]]
    return plot_attention_profiles(profiles, title="Text-to-video attention over visual token positions")


FIG4 = register(Reproduction(
    name="fig4",
    title="Fig. 4: text-to-video attention distribution over tokens, with and without token rolling",
    params=(
        Param("clips", int, 32, help="test pairs of the built-in corpus averaged over"),
        Param("roll_ratio", float, 0.25, help="rolling ratio of the model with rolling"),
        Param("steps", int, None, help="pre-training steps of each model (None: by scale)"),
        Param("roll_checkpoint", str, None, help="a model with rolling to use instead of pre-training one"),
        Param("none_checkpoint", str, None, help="a model without rolling to use instead of pre-training one"),
    ),
    run=run_fig4,
    plot=plot_fig4,
))  # fmt: skip


# Fig. 6 ---------------------------------------------------------------------------------------------------
TARGET_SHARE = 0.75  # direction items whose word beats the uniform plan in at least 2 of the 3 frames
SELECTION_ITEMS = 3  # training items that choose the block, per test item measured


def _layer_line(rows: list[dict[str, Any]], kind: str = "direction") -> str:
    return ", ".join(f"block {r['layer']}: {100 * r['items_in_several_frames']:.0f}%" for r in rows
                     if r["kind"] == kind)


def run_fig6(params: dict[str, Any], ctx: Context) -> Result:
    _check_positive(params, "fig6", "items")
    if not 0 <= params["threshold"] <= 1:
        raise ParameterError(f"fig6: parameter threshold={params['threshold']!r}: expected a fraction in [0, 1]")
    bundle, origin = pretrained_bundle(ctx, "model", params["checkpoint"], params["steps"])
    solver, scope = params["solver"], params["scope"]
    # The block whose features are transported is chosen on training items, never on the test items reported.
    train_items = corpus_dataset("cloze", "train", bundle.data, bundle.corpus, train=False, with_masks=True)
    chosen_on = layer_alignment(bundle.model, train_items, SELECTION_ITEMS * params["items"], KINDS, solver=solver,
                                scope=scope)  # fmt: skip
    layer = choose_layer(chosen_on)
    ds = corpus_dataset("cloze", "test", bundle.data, bundle.corpus, train=False, with_masks=True)
    by_layer = layer_alignment(bundle.model, ds, params["items"], KINDS, solver=solver, scope=scope)
    stats = cloze_alignment(bundle.model, ds, params["items"], KINDS, solver=solver, scope=scope, layer=layer)
    rows = [{"kind": r["kind"], "items": r["items"], "layer": layer, "mass in mask": r["mass_in_mask"],
             "uniform plan": r["uniform"], "ratio": r["ratio"], "items above uniform": r["items_above_uniform"],
             "frames above uniform": r["frames_above_uniform"], "items in 2+ frames": r["items_in_several_frames"],
             "cloze accuracy": r["cloze_accuracy"]} for r in stats["rows"]]  # fmt: skip
    metrics = {f"{key}_{r['kind']}": r[field] for r in stats["rows"]
               for key, field in (("mass_in_mask", "mass_in_mask"), ("uniform", "uniform"), ("ratio", "ratio"),
                                  ("items_in_2plus_frames", "items_in_several_frames"))}  # fmt: skip
    metrics["layer"] = float(layer)
    last = len(bundle.model.blocks)
    for r in by_layer:
        if r["layer"] == last:
            metrics[f"items_in_2plus_frames_{r['kind']}_last_layer"] = r["items_in_several_frames"]
    picks = typical_items(stats["items"], KINDS)
    examples = []
    for kind in KINDS[: max(0, params["examples"])]:
        if kind not in picks:
            continue
        pick = picks[kind]
        clip = load_corpus_clip(pick.item["index"], bundle.data, bundle.corpus, split="test", task="cloze")
        res = run_cloze(bundle.model, clip, words=[str(clip.info["word"])], solver=solver, scope=scope, layer=layer)
        pred = res.predictions[0]
        examples.append({"frames": torch.from_numpy(res.frames), "plan": res.plans[0], "grid": list(res.grid),
                         "title": f"predicted: {pred.top} ({pred.probability:.2f})",
                         "label": f"{kind}: [{pred.word.text}]", "correct": pred.correct,
                         "mask": clip.object_mask(1), "note": pick.note(), "index": pick.item["index"],
                         "rank": pick.rank, "count": pick.count})  # fmt: skip
    atomic_save({"examples": examples, "threshold": params["threshold"], "layer": layer, "by_layer": by_layer,
                 "chosen_on": chosen_on}, ctx.output_dir / FIG6_DATA)  # fmt: skip
    direction = next((r for r in stats["rows"] if r["kind"] == "direction"), None)
    notes = [f"{solver} transport between the caption's tokens and the patches, scope {scope!r}, features of block "
             f"{layer} of {last} (through the final norm); mass in mask: mean over items of the mean over frames "
             "where the object is visible",
             "uniform plan: the object's share of the frame (what a plan blind to the video would put inside)",
             f"block chosen on the first {SELECTION_ITEMS * params['items']} cloze items of the training split "
             f"(share of direction items above the uniform plan in at least 2 frames: {_layer_line(chosen_on)}); "
             f"the test items above, by block: {_layer_line(by_layer)}",
             "examples: for each word kind the test item at the median of mass in the object over the uniform plan's, "
             "with its rank printed beside it (not the best ones)"]  # fmt: skip
    if direction is not None:
        share = direction["items_in_several_frames"]
        verdict = "met" if share >= TARGET_SHARE else "NOT met (where and why: docs/visualisation.md, 'How well " \
            "the pictures align')"
        notes.append(f"target, direction words above the uniform plan in at least 2 of 3 frames for at least "
                     f"{100 * TARGET_SHARE:.0f}% of items: {verdict}; {100 * share:.0f}% of {direction['items']} "
                     "items here")
    notes.append(origin)
    return Result(metrics=metrics, rows=rows, notes=notes)


def plot_fig6(result: Result):
    data = torch.load(_result_dir(result) / FIG6_DATA, weights_only=True)
    rows = [HeatmapRow(e["frames"].numpy(), e["plan"], tuple(e["grid"]), e["title"], e["label"], e["correct"],
                       e["mask"].numpy(), e.get("note", "")) for e in data["examples"]]  # fmt: skip
    if not rows:
        return None
    return draw_heatmaps(rows, threshold=float(data["threshold"]))


FIG6 = register(Reproduction(
    name="fig6",
    title="Fig. 6: cloze with optimal transport between masked words and patches",
    params=(
        Param("items", int, 96, help="test cloze items measured (directions, colours and shapes)"),
        Param("examples", int, 3, help="example clips drawn (one per word kind: its median item)"),
        Param("steps", int, None, help="pre-training steps (None: by scale)"),
        Param("checkpoint", str, None, help="a model to use instead of pre-training one"),
        Param("solver", str, "ipot", SOLVERS, help="optimal transport solver"),
        Param("scope", str, "frame", SCOPES, help="frame: one transport problem per frame; clip: one per clip"),
        Param("threshold", float, 0.3, help="heatmaps show plan entries above this fraction of the word's peak"),
    ),
    run=run_fig6,
    plot=plot_fig6,
))  # fmt: skip
