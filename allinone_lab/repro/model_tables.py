"""Reproductions about the model itself: variants (Table 1), retrieval time (Table 14), rolling against
flatten cost (Fig. 3) and model scale (Fig. 7)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..eval.index import BACKENDS, EmbeddingIndex, FaissParams, faiss_gpus
from ..model import (
    AllInOne,
    ModelConfig,
    analytic_flops,
    attention_score_flops,
    build_model,
    count_parameters,
    dummy_inputs,
    throughput,
)
from ..train import jobs
from ..train.loop import resolve_precision
from ..train.presets import Experiment
from .downstream import PROBE_SOURCES, QA_SOURCES, Source, extra_source, run_finetune
from .pretraining import arm_experiment, describe, preflight_arms, pretrain_arm
from .spec import Context, Param, ParameterError, Reproduction, Result, register

PAPER_NAMES = {"tiny": "All-in-one-Ti", "small": "All-in-one-S", "base": "All-in-one-B", "large": "All-in-one-L"}
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def parse_list(name: str, text: str, kind: type = str, allowed: tuple | None = None) -> list:
    """A comma-separated parameter value as a list of ``kind``; errors name the parameter."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise ParameterError(f"parameter {name}={text!r}: expected a comma-separated list")
    out = []
    for item in items:
        try:
            value = kind(item)
        except ValueError:
            raise ParameterError(f"parameter {name}={text!r}: {item!r} is not {kind.__name__}") from None
        if allowed is not None and value not in allowed:
            raise ParameterError(f"parameter {name}={text!r}: {item!r} is not one of {list(allowed)}")
        out.append(value)
    return out


def _by_scale(ctx: Context, value: Any, defaults: dict[str, Any]) -> Any:
    return defaults[ctx.scale] if value is None else value


def _meta_model(config: ModelConfig) -> AllInOne:
    """The model's structure without allocating its weights (for parameter counts of large variants)."""
    with torch.device("meta"):
        return AllInOne(config)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# Table 1 ------------------------------------------------------------------------------------------------
TABLE1_DEFAULTS = {
    "smoke": {"variants": "tiny", "batch_size": 2, "iters": 2},
    "cpu": {"variants": "tiny,small,base", "batch_size": 4, "iters": 5},
    "rehearsal": {"variants": "tiny", "batch_size": 2, "iters": 2},
    "paper": {"variants": "tiny,small,base", "batch_size": 32, "iters": 20},
}


def run_table1(params: dict[str, Any], ctx: Context) -> Result:
    defaults = TABLE1_DEFAULTS[ctx.scale]
    variants = parse_list("variants", _by_scale(ctx, params["variants"], {s: d["variants"] for s, d in
                                                                          TABLE1_DEFAULTS.items()}),
                          allowed=tuple(PAPER_NAMES))
    batch = params["batch_size"] or defaults["batch_size"]
    iters = params["iters"] or defaults["iters"]
    precision = resolve_precision(ctx.device, params["precision"])
    rows, metrics = [], {}
    for variant in variants:
        config = ModelConfig(variant=variant, image_size=224, patch_size=16, num_frames=3, max_text_len=40)
        model = build_model(config).to(ctx.device).eval()
        inputs = dummy_inputs(config, batch, device=ctx.device)
        speed = throughput(model, inputs, iters=iters, warmup=max(1, iters // 4), autocast_dtype=AUTOCAST[precision])
        row = {"model": PAPER_NAMES[variant], "Embedding Dimension": config.embed_dim, "#Heads": config.num_heads,
               "#Layers": config.num_layers, "Params (M)": count_parameters(model) / 1e6,
               "Training Resolution": config.image_size, "GFLOPs": analytic_flops(config) / 1e9,
               "Throughput (videos/s)": speed}
        rows.append(row)
        metrics[f"{variant}_params_M"] = row["Params (M)"]
        metrics[f"{variant}_throughput"] = speed
        del model
    notes = [f"Throughput: forward only, batch {batch}, 3 frames of 224x224 and 40 text tokens, {precision}, "
             f"median of {iters} timed calls on {ctx.device}.",
             "Params (M) excludes the VTM and MLM heads (the paper's convention); GFLOPs is per video "
             "(analytic, equal to torch's flop counter)."]
    return Result(metrics=metrics, rows=rows, notes=notes)


register(Reproduction(
    name="table1",
    title="Table 1: model variants (parameters, FLOPs, throughput)",
    params=(
        Param("variants", str, None, help="comma-separated tiny,small,base,large; None: tiny at smoke, else Ti/S/B"),
        Param("batch_size", int, None, help="videos per forward for throughput; None: by scale"),
        Param("iters", int, None, help="timed forward calls; None: by scale"),
        Param("precision", str, "auto", ("auto", "fp32", "bf16", "fp16"), "auto: bf16 on GPU, fp32 on CPU"),
    ),
    run=run_table1,
    reads_data=False,
))


# Table 14 -----------------------------------------------------------------------------------------------
TABLE14_DEFAULTS = {
    "smoke": {"sizes": "1000,10000", "runs": 3},
    "cpu": {"sizes": "1000,100000", "runs": 20},
    "rehearsal": {"sizes": "1000,10000", "runs": 2},
    "paper": {"sizes": "1000,1000000,10000000", "runs": 1000},
}


def _mean_ms(fn, runs: int, device: torch.device, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(runs):
        fn()
    _sync(device)
    return 1000.0 * (time.perf_counter() - start) / runs


def table14_model_config(scale: str) -> ModelConfig:
    """All-in-one-B at 224 px with 3 frames and 40 text tokens, except a tiny model at smoke scale."""
    if scale == "smoke":
        return ModelConfig(variant="tiny", width=64, heads=2, depth=2, image_size=32, patch_size=8,
                           num_frames=3, max_text_len=16)
    return ModelConfig(variant="base", image_size=224, patch_size=16, num_frames=3, max_text_len=40)


@torch.inference_mode()
def run_table14(params: dict[str, Any], ctx: Context) -> Result:
    defaults = TABLE14_DEFAULTS[ctx.scale]
    sizes = parse_list("sizes", params["sizes"] or defaults["sizes"], int)
    if any(n < 1 for n in sizes):
        raise ParameterError(f"parameter sizes={params['sizes']!r}: expected positive integers")
    runs = params["runs"] or defaults["runs"]
    config = table14_model_config(ctx.scale)
    model = build_model(config).to(ctx.device).eval()
    inputs = dummy_inputs(config, 1, device=ctx.device)
    visual_ms = _mean_ms(lambda: model.encode_video(inputs["video"]), runs, ctx.device)
    text_ms = _mean_ms(lambda: model.encode_text(inputs["text_ids"], inputs["text_mask"]), runs, ctx.device)
    query = model.encode_text(inputs["text_ids"], inputs["text_mask"]).float()
    gen = torch.Generator().manual_seed(ctx.seed)
    backend = params["backend"]
    gpu_faiss = ctx.device.type == "cuda" and backend != "torch" and faiss_gpus() > 0
    rows, metrics = [], {"visual_embedding_ms": visual_ms, "text_embedding_ms": text_ms}
    for n in sizes:
        stored = torch.nn.functional.normalize(torch.randn(n, config.vtc_dim, generator=gen), dim=1)
        faiss_params = None
        if backend == "faiss-ivfpq" and gpu_faiss:  # faiss GPUs take 8-bit codes, not the CPU's fast-scan
            default = FaissParams.default("ivfpq", n, config.vtc_dim)
            faiss_params = default.replace(nbits=8, m=config.vtc_dim // 8)
        index = EmbeddingIndex(stored.to(ctx.device), backend=backend, faiss_params=faiss_params)
        del stored
        ranking_ms = _mean_ms(lambda index=index: index.search(query, k=10), runs, ctx.device)
        rows.append({"dataset": f"{n:,} stored videos", "N": n, "Visual Embedding (ms)": visual_ms,
                     "Text Embedding (ms)": text_ms, "Similarity Ranking (ms)": ranking_ms})
        metrics[f"ranking_ms_{n}"] = ranking_ms
        del index
    name = "a tiny model" if ctx.scale == "smoke" else "All-in-one-B (224 px, 3 frames, 40 text tokens)"
    search = "exact" if backend in ("torch", "faiss", "faiss-flat") else "approximate"
    where = "faiss on GPU" if gpu_faiss and backend != "faiss-hnsw" else (
        "faiss on CPU" if backend != "torch" else f"torch on {ctx.device}")
    notes = [f"One query at a time on {ctx.device}, mean of {runs} runs after a warm-up; embeddings from {name} "
             f"with random weights (timing does not depend on them).",
             f"Stored embeddings are random {config.vtc_dim}-d unit vectors; {search} top-10 search with the "
             f"{backend} backend of allinone_lab.eval.index ({where}; the paper: FAISS-GPU on 8 A100s)."]
    if search == "approximate":
        notes.append("Approximate indexes use FaissParams.default for each size; their recall against exact "
                     "search is measured by benchmarks/retrieval_index.py on clustered embeddings.")
    return Result(metrics=metrics, rows=rows, notes=notes)


register(Reproduction(
    name="table14",
    title="Table 14: retrieval running time per query",
    params=(
        Param("sizes", str, None, help="comma-separated numbers of stored videos; None: by scale"),
        Param("runs", int, None, help="timed runs per measurement; None: by scale (paper: 1000)"),
        Param("backend", str, "torch", BACKENDS,
              "torch or faiss (= faiss-flat): exact; faiss-ivfpq, faiss-hnsw: approximate (faiss on GPU "
              "where faiss-gpu sees the device)"),
    ),
    run=run_table14,
    reads_data=False,
))


# Figure 3 -----------------------------------------------------------------------------------------------
FIG3_TIMING = {
    "smoke": {"config": dict(variant="tiny", width=64, heads=2, depth=2, image_size=32, patch_size=8,
                             max_text_len=16), "max_frames": 4, "iters": 2, "batch_size": 1},
    "cpu": {"config": dict(variant="tiny", image_size=224, patch_size=16, max_text_len=40), "max_frames": 8,
            "iters": 3, "batch_size": 1},
    "rehearsal": {"config": dict(variant="tiny", image_size=224, patch_size=16, max_text_len=40), "max_frames": 4,
                  "iters": 1, "batch_size": 1},
    "paper": {"config": dict(variant="base", image_size=224, patch_size=16, max_text_len=40), "max_frames": 16,
              "iters": 10, "batch_size": 8},
}


def run_fig3(params: dict[str, Any], ctx: Context) -> Result:
    frames = parse_list("frames", params["frames"], int)
    if any(s < 1 for s in frames):
        raise ParameterError(f"parameter frames={params['frames']!r}: expected integers >= 1")
    rows, metrics = [], {}
    base = dict(variant=params["variant"], image_size=224, patch_size=16, max_text_len=40)
    timing = FIG3_TIMING[ctx.scale]
    for s in frames:
        roll = ModelConfig(**base, num_frames=s, temporal="roll")
        flat = roll.replace(temporal="flatten")
        row = {
            "frames": s,
            "rolling attention GFLOPs": attention_score_flops(roll) / 1e9,
            "flatten attention GFLOPs": attention_score_flops(flat) / 1e9,
            "rolling / flatten attention cost": attention_score_flops(roll) / attention_score_flops(flat),
            "rolling / flatten attention cost (no text)":
                attention_score_flops(roll, text_len=0) / attention_score_flops(flat, text_len=0),
            "rolling / flatten FLOPs": analytic_flops(roll) / analytic_flops(flat),
        }
        if params["measure_time"] and s <= timing["max_frames"]:
            speeds = {}
            for mode in ("roll", "flatten"):
                config = ModelConfig(**timing["config"], num_frames=s, temporal=mode)
                model = build_model(config).to(ctx.device).eval()
                inputs = dummy_inputs(config, timing["batch_size"], device=ctx.device)
                speeds[mode] = throughput(model, inputs, iters=timing["iters"], warmup=1)
                del model
            row["rolling / flatten wall time"] = speeds["flatten"] / speeds["roll"]
        rows.append(row)
        metrics[f"attention_ratio_S{s}"] = row["rolling / flatten attention cost"]
    t = timing["config"]
    notes = [f"FLOPs are analytic for All-in-one-{params['variant']} at 224 px with 40 text tokens (exact, equal to "
             "torch's flop counter); attention cost is the quadratic term 4 T^2 D per sequence and block.",
             "With text, rolling costs S (m + n)^2 against (m + S n)^2 for flatten, so the ratio is above 1/S; "
             "without text (m = 0) it is exactly 1/S, the paper's 'around one third' at S = 3.",
             f"Wall time: {t['variant']} model (width {t.get('width', 'default')}, {t['image_size']} px), "
             f"batch {timing['batch_size']}, up to {timing['max_frames']} frames, median of {timing['iters']} "
             f"calls on {ctx.device}."]
    return Result(metrics=metrics, rows=rows, notes=notes)


def plot_fig3(result: Result):
    from matplotlib.figure import Figure

    rows = sorted(result.rows, key=lambda r: r["frames"])
    s = [r["frames"] for r in rows]
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(s, [r["rolling attention GFLOPs"] for r in rows], marker="o", label="token rolling  S (m+n)^2")
    left.plot(s, [r["flatten attention GFLOPs"] for r in rows], marker="s", label="flatten  (m+Sn)^2")
    left.set(xlabel="frames S", ylabel="attention GFLOPs per video", yscale="log", title="Self-attention cost")
    left.legend()
    for key, marker in (("rolling / flatten attention cost", "o"), ("rolling / flatten attention cost (no text)", "^"),
                        ("rolling / flatten FLOPs", "s"), ("rolling / flatten wall time", "x")):
        points = [(r["frames"], r[key]) for r in rows if key in r]
        if points:
            right.plot(*zip(*points, strict=True), marker=marker, label=key.replace("rolling / flatten ", ""))
    right.plot(s, [1 / x for x in s], ls="--", color="grey", label="1/S")
    right.set(xlabel="frames S", ylabel="rolling / flatten", title="Rolling relative to flatten")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return fig


register(Reproduction(
    name="fig3",
    title="Figure 3: token rolling against flatten, cost against the number of frames",
    params=(
        Param("frames", str, "1,2,3,4,8,16", help="comma-separated numbers of frames"),
        Param("variant", str, "base", ("tiny", "small", "base", "large"), "backbone for the analytic FLOPs"),
        Param("measure_time", bool, True, help="also time both models (sizes by scale)"),
    ),
    run=run_fig3,
    reads_data=False,
    plot=plot_fig3,
))


# Figure 7 -----------------------------------------------------------------------------------------------
FIG7_LADDER = {"smoke": "32,64", "cpu": "96,192,288", "rehearsal": "tiny", "paper": "tiny,small,base,large"}
FIG7_CPU_STEPS = 300  # per model of the ladder at scale=cpu


# The zero-shot columns of a size pre-trained on prepared data (pretraining.PAPER_COLUMNS), as Fig. 7 names
# its evaluations.
FIG7_ZERO_SHOT = {"LSMDC": "Zero-shot LSMDC MC", "MSR-VTT": "Zero-shot MSR-VTT MC"}


def fig7_sources(params: dict[str, Any], ctx: Context) -> tuple[Source, Source] | str:
    """The fine-tuning (MSRVTT-QA) and linear-probe (``probe_dataset``) datasets of Fig. 7's downstream
    columns, found under ``data_root`` with their data checked before anything trains; or why they are not
    run (a note): ``downstream`` is off, the scale is smoke or cpu, or there is no ``data_root``."""
    if not params["downstream"]:
        return "not run (downstream=False)"
    if not ctx.paper_protocol:
        return (f"run at rehearsal and paper scale only, on prepared data; at scale={ctx.scale!r} the corpus "
                f"ladder reports zero-shot multiple choice and cloze")
    if ctx.data_root is None:
        return "not run: data_root is None (the datasets are read from it)"
    why = "parameter downstream=True (the fine-tune and linear-probe columns; downstream=False skips them)"
    qa = extra_source(QA_SOURCES["msrvtt-qa"], ctx, why)
    probe = extra_source(PROBE_SOURCES[params["probe_dataset"]], ctx, why)
    return qa, probe


def fig7_downstream(ctx: Context, name: str, exp: Experiment, checkpoint: Path,
                    sources: tuple[Source, Source], params: dict[str, Any]) -> tuple[dict[str, float], str]:
    """The downstream columns of one pre-trained size (``checkpoint``, model of ``exp``): MSRVTT-QA
    fine-tuned at the scale's budget (the downstream reproductions' schedule; ``finetune_steps`` overrides
    it) and a linear probe on ``probe_dataset``'s frozen features. Returns ``(columns, note)``."""
    qa, probe = sources
    run = name.replace(" ", "_")
    tuned = run_finetune(ctx, exp, "qa", checkpoint, f"{run}-{qa.prepared}",
                         {"steps": params["finetune_steps"]}, qa)
    probed = jobs.finetune(probe.experiment(exp), "linear_probe", ctx.run_dir(f"{run}-{probe.prepared}"), 0,
                           init=checkpoint, progress=ctx.progress, splits=dict(probe.splits) or None,
                           probe_epochs=params["probe_epochs"])
    columns = {f"Fine-tune {qa.label}": tuned["test"]["accuracy"],
               f"Linear probe {probe.label} Top-1": probed["test"]["top1"]}
    note = (f"{name}: {qa.label} fine-tuned, checkpoint of step {tuned['selected_step']} chosen by "
            f"validation accuracy {tuned['validation']:.2f} ({tuned['test_items']} test items); "
            f"{probe.label} linear probe at learning rate {probed['selected_lr']} ({probed['num_classes']} "
            f"classes)")
    return columns, note


def run_fig7(params: dict[str, Any], ctx: Context) -> Result:
    """Parameters and FLOPs of Ti/S/B/L, then pre-train each model of ``sizes`` (widths of the scale's model,
    or named variants) and evaluate it zero-shot. With ``steps`` None each named variant keeps its own
    pre-training schedule at rehearsal and paper scale (Ti 100K steps at batch 32 per GPU, S/B 200K at 16);
    an explicit ``steps`` applies to every model.

    At rehearsal and paper scale each size is evaluated as Appendix A does, by fine-tune, zero-shot and
    linear probe: zero-shot multiple choice on LSMDC and MSR-VTT, a linear probe on ``probe_dataset`` and
    fine-tuning on MSRVTT-QA (``downstream=False`` keeps the zero-shot columns only). The paper's other
    datasets of its ten are what a full run adds (the notes say which)."""
    rows: dict[str, dict[str, Any]] = {}
    for variant, name in PAPER_NAMES.items():
        config = ModelConfig(variant=variant)
        rows[name] = {"model": name, "Params (M)": count_parameters(_meta_model(config)) / 1e6,
                      "GFLOPs": analytic_flops(config) / 1e9}
    metrics: dict[str, float] = {}
    notes = ["Params (M) and GFLOPs of Ti/S/B/L: 224 px, 3 frames, 40 text tokens (analytic)."]
    sizes = params["sizes"] or FIG7_LADDER[ctx.scale]
    steps = params["steps"] if params["steps"] is not None or ctx.scale != "cpu" else FIG7_CPU_STEPS
    trains = sizes.strip().lower() != "none"
    sources = fig7_sources(params, ctx) if trains else "not run (sizes='none')"
    planned: list[tuple[str, Experiment, dict[str, Any]]] = []
    if trains:
        for size in parse_list("sizes", sizes):
            tuned: dict[str, Any] = {"variant": size} if size in PAPER_NAMES else {}
            if size in PAPER_NAMES:
                # steps None: the variant's own schedule at rehearsal and paper scale (Sec. 4.1: Ti 100K steps
                # at batch 32 per GPU, S and B 200K at 16), not the default variant's
                exp = arm_experiment(ctx, {}, steps, variant=size)
                if not ctx.paper_protocol:
                    exp = exp.override(**{"model.variant": size, "model.width": None, "model.heads": None,
                                          "model.depth": None})
                name = PAPER_NAMES[size]
            else:
                try:
                    width = int(size)
                except ValueError:
                    raise ParameterError(f"parameter sizes={sizes!r}: {size!r} is neither a variant "
                                         f"{list(PAPER_NAMES)} nor a width") from None
                base = ctx.experiment().model
                heads = base.num_heads if width % base.num_heads == 0 else 1
                exp = arm_experiment(ctx, {"model.width": width, "model.heads": heads}, steps)
                tuned = {"model.width": width, "model.heads": heads}
                name = f"width {width}"
            planned.append((name, exp, tuned))
        preflight_arms(ctx, [(name.replace(" ", "_"), exp, None) for name, exp, _ in planned])
        for name, exp, tuned in planned:
            measured = pretrain_arm(ctx, name.replace(" ", "_"), exp)
            row = rows.setdefault(name, {"model": name})
            row.update({FIG7_ZERO_SHOT.get(k, k): v for k, v in measured["row"].items()})
            metrics[f"{name}/zero-shot MC"] = measured["row"].get("zero-shot MC", float("nan"))
            metrics[f"{name}/cloze"] = measured["row"].get("cloze", float("nan"))
            for label in FIG7_ZERO_SHOT.values():
                if label in row:
                    metrics[f"{name}/{label}"] = row[label]
            notes.append(f"{name}: {describe(exp)}.")
            if not isinstance(sources, str):
                checkpoint = ctx.run_dir(name.replace(" ", "_")) / "pretrain" / "checkpoints" / "last.pt"
                model = ctx.experiment(**tuned)  # the size's model, the scale's fine-tuning settings
                columns, note = fig7_downstream(ctx, name, model, checkpoint, sources, params)
                row.update(columns)
                metrics.update({f"{name}/{label}": value for label, value in columns.items()})
                notes.append(note)
    if isinstance(sources, str):
        notes.append(f"Downstream fine-tune and linear-probe columns: {sources}.")
    else:
        notes.append(f"Appendix A evaluates every size on ten downstream datasets by fine-tune, zero-shot "
                     f"and linear probe without listing them (its text names MSRVTT-QA, TGIF-QA and TVQA) or "
                     f"printing numbers. This run covers zero-shot multiple choice on LSMDC and MSR-VTT, a "
                     f"linear probe on {sources[1].label} and fine-tuning on {sources[0].label} (the dataset "
                     f"of Fig. 7's training curve); a full run adds the other downstream reproductions from "
                     f"each size's checkpoint (init=runs/<scale>/<size>/pretrain/checkpoints/last.pt): "
                     f"Tables 2 (TGIF-QA, MSVD-QA), 3 (MSR-VTT, DiDeMo, ActivityNet retrieval), 4 "
                     f"(fine-tuned MC) and 12 (the other linear probe). TVQA is not prepared by this lab.")
    return Result(metrics=metrics, rows=list(rows.values()), notes=notes)


def plot_fig7(result: Result):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    variants = [r for r in result.rows if r["model"] in PAPER_NAMES.values() and "GFLOPs" in r]
    left.plot([r["Params (M)"] for r in variants], [r["GFLOPs"] for r in variants], marker="o")
    for r in variants:
        left.annotate(r["model"].removeprefix("All-in-one-"), (r["Params (M)"], r["GFLOPs"]))
    left.set(xscale="log", yscale="log", xlabel="parameters (M)", ylabel="GFLOPs per video", title="Model variants")
    measured = ("zero-shot MC", "cloze", "cloze (temporal)", *FIG7_ZERO_SHOT.values())
    trained = sorted((r for r in result.rows if any(k in r for k in measured)), key=lambda r: r["Params (M)"])
    downstream = sorted({k for r in trained for k in r if k.startswith(("Fine-tune ", "Linear probe "))})
    for key in (*measured, *downstream):
        points = [(r["Params (M)"], r[key]) for r in trained if key in r]
        if points:
            right.plot(*zip(*points, strict=True), marker="o", label=key)
    right.set(xscale="log", xlabel="parameters (M)", ylabel="accuracy (%)", title="By model size")
    if trained:
        right.legend()
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return fig


register(Reproduction(
    name="fig7",
    title="Figure 7: parameters and performance with the model size",
    params=(
        Param("sizes", str, None, help="comma-separated widths or variants to pre-train; 'none' skips training; "
                                       "None: by scale"),
        Param("steps", int, None, help="pre-training steps per model; None: by scale"),
        Param("downstream", bool, True, help="at rehearsal and paper scale, also fine-tune each size on "
                                             "MSRVTT-QA and linear-probe it on probe_dataset"),
        Param("probe_dataset", str, "kinetics400", ("kinetics400", "hmdb51"), "the linear probe's dataset"),
        Param("probe_epochs", int, 100, help="full-batch epochs of the linear layer", bounds=(1, 10**6)),
        Param("finetune_steps", int, None, help="MSRVTT-QA fine-tuning steps (None: by scale, the downstream "
                                                "reproductions' schedule)", bounds=(1, 10**9)),
    ),
    run=run_fig7,
    plot=plot_fig7,
))
