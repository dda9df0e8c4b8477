"""Downstream reproductions: video QA (Table 2), text-video retrieval (Table 3), multiple choice (Table 4),
VCR (Table 5), retrieval objectives (Table 7), linear probe (Table 12) and Ego4D-style multiple choice
(Table 13).

Each one takes a pre-trained model (``init``: a ``checkpoints/last.pt`` of a pre-training run; None
pre-trains here on the built-in corpus at the scale's preset), fine-tunes it through
:func:`allinone_lab.train.jobs.finetune` (the checkpoint chosen on a validation split, never on test) and
reports the test numbers. The data is the built-in corpus, or with ``data_root`` a dataset prepared by
``python -m allinone_lab.data.prepare`` whose name the reproduction's ``dataset`` parameter states. Where
the corpus has no counterpart of a benchmark (VCR's images, Ego4D's egocentric videos) the corpus stand-in is
named as such in the rows and the notes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.corpus import EVENT_CLASSES
from ..train import jobs
from ..train.presets import PAPER_FINETUNE, Experiment
from .pretraining import pretrain_steps
from .spec import Context, Param, ParameterError, Reproduction, Result, register

# Fine-tuning steps and batch size at scale="cpu" (the cpu preset's model on two CPU cores): multiple choice
# runs every option through the joint model, so its batches are smaller.
CPU_FINETUNE: dict[str, tuple[int, int]] = {"retrieval": (200, 32), "qa": (200, 32), "mc": (100, 8),
                                             "vcr": (100, 8)}
VARIANT_NAMES = {"tiny": "Ti", "small": "S", "base": "B", "large": "L"}

PRETRAIN_PARAMS = (
    Param("init", str, None, help="a pre-trained checkpoint (checkpoints/last.pt of a pre-training run made at "
                                  "the same scale); None: pre-train here on the built-in corpus"),
    Param("pretrain_steps", int, None, help="pre-training steps when init is None (None: by scale)",
          bounds=(1, 10**9)),
    Param("steps", int, None, help="fine-tuning steps (None: by scale; paper scale: the epochs of the paper)",
          bounds=(1, 10**9)),
)


@dataclass(frozen=True)
class Source:
    """A benchmark a reproduction can run on: the prepared dataset's name (None: the built-in corpus), the
    jobs' task and subtask, and how its rows are labelled."""

    prepared: str | None
    task: str
    label: str
    subtask: str | None = None
    column: str = "Accuracy"
    splits: tuple[tuple[str, str], ...] = ()


def select_source(sources: dict[str, Source], name: str, ctx: Context) -> Source:
    """The source ``name``, checked against ``data_root``: a prepared dataset needs its data_root, and the
    data_root's manifest must name that dataset."""
    source = sources[name]
    if source.prepared is None:
        if ctx.data_root is not None:
            raise ParameterError(f"parameter dataset={name!r} is the built-in corpus, but data_root="
                                 f"{ctx.data_root!r} is set; expected data_root=None, or dataset= the prepared "
                                 f"dataset's name (one of {[k for k, s in sources.items() if s.prepared]})")
        return source
    if ctx.data_root is None:
        raise ParameterError(f"parameter dataset={name!r} needs data_root: a directory prepared by "
                             f"`python -m allinone_lab.data.prepare {source.prepared} --out ROOT ...`")
    found = jobs.read_manifest(ctx.data_root)["dataset"]
    if found != source.prepared:
        raise ParameterError(f"parameter dataset={name!r} expects data_root prepared as {source.prepared!r}; "
                             f"{ctx.data_root!r} holds {found!r}")
    return source


def method_name(ctx: Context, exp: Experiment, arm: str = "All-in-one") -> str:
    """The row's method: the paper's name at scale=paper (``All-in-one-B``), else the preset it ran at."""
    if ctx.scale == "paper":
        suffix = VARIANT_NAMES.get(exp.model.variant, exp.model.variant)
        return f"{arm}-{suffix}" if arm == "All-in-one" else arm
    return f"{arm} ({ctx.scale} preset)"


def describe(exp: Experiment) -> str:
    """One line on the model and data of a run (for the notes)."""
    m = exp.model
    data = f"prepared dataset {exp.data_root}" if exp.data_root else f"built-in corpus '{exp.corpus.size}'"
    return (f"model {m.variant} (width {m.embed_dim}, depth {m.num_layers}), {m.image_size} px, {m.num_frames} "
            f"frames, {m.max_text_len} text tokens; fine-tuned on {data}")


def pretrained(ctx: Context, params: dict[str, Any], name: str = "pretrain",
               overrides: dict[str, Any] | None = None, init_param: str = "init") -> tuple[Path, str]:
    """``(checkpoint, note)``: the ``init`` checkpoint, or one pre-trained here on the built-in corpus with the
    scale's preset (plus ``overrides``) into ``output_dir/runs/<name>/pretrain`` (reused once finished)."""
    init = params.get(init_param)
    if init is not None:
        path = Path(init)
        if not path.is_file():
            raise ParameterError(f"parameter {init_param}={init!r}: expected an existing checkpoint file "
                                 f"(checkpoints/last.pt of a pre-training run)")
        return path, f"initialised from {path}"
    if ctx.scale == "paper":
        raise ParameterError(f"parameter {init_param}=None at scale='paper': expected a checkpoint pre-trained at "
                             f"the paper's settings (python -m allinone_lab.train pretrain --preset paper ...)")
    steps = pretrain_steps(ctx, params.get("pretrain_steps"))
    base = ctx.experiment(**(overrides or {}))
    exp = base.override(**{"data_root": None, "train.max_steps": steps,
                           "train.checkpoint_every": min(base.train.checkpoint_every, steps),
                           "train.log_every": min(base.train.log_every, max(1, steps // 10))})
    checkpoint = jobs.pretrain(exp, ctx.run_dir(name) / "pretrain", progress=ctx.progress)
    losses = " + ".join(f"{loss.upper()} {weight:g}" for loss, weight in exp.train.loss_weights.items() if weight)
    return checkpoint, f"pre-trained here for {steps} steps ({losses}) on the built-in corpus '{exp.corpus.size}'"


def finetune_experiment(ctx: Context, exp: Experiment, task: str, steps: int | None,
                        source: Source | None = None) -> tuple[Experiment, int, int]:
    """``(experiment, steps, eval_every)`` for fine-tuning ``task`` at the context's scale: the smoke preset's
    steps; at cpu :data:`CPU_FINETUNE`; at paper the paper's schedule (20 epochs at a global batch of 256, VCR
    100 epochs at 512), ``steps`` overriding the number of steps."""
    if steps is not None and steps < 1:
        raise ParameterError(f"parameter steps={steps}: expected an integer >= 1")
    if ctx.scale == "smoke":
        steps = steps or exp.train.max_steps
        return exp.override(**{"train.max_steps": steps, "train.checkpoint_every": steps}), steps, max(1, steps // 2)
    if ctx.scale == "cpu":
        default, batch = CPU_FINETUNE[task]
        steps = steps or default
        exp = exp.override(**{"train.batch_size": batch, "train.max_steps": steps,
                              "train.checkpoint_every": steps, "train.log_every": max(1, steps // 10)})
        return exp, steps, max(1, steps // 4)
    schedule = PAPER_FINETUNE["vcr" if task == "vcr" else "default"]
    global_batch = schedule["global_batch_size"]
    if steps is None:
        kwargs = {"subtask": source.subtask, "splits": dict(source.splits) or None} if source else {}
        items = len(jobs.dataset(exp, jobs.FINETUNE_TASKS[task], "train", **kwargs))
        steps = max(1, math.ceil(schedule["epochs"] * items / global_batch))
    exp = exp.override(**{"train.global_batch_size": global_batch, "train.max_steps": steps,
                          "train.checkpoint_every": min(exp.train.checkpoint_every, steps)})
    return exp, steps, max(1, steps // 10)


def run_finetune(ctx: Context, exp: Experiment, task: str, init: Path, name: str, params: dict[str, Any],
                 source: Source | None = None, **options: Any) -> dict[str, Any]:
    """Fine-tune ``task`` from ``init`` into ``output_dir/runs/<name>`` and return the job's results."""
    exp, steps, eval_every = finetune_experiment(ctx, exp, task, params.get("steps"), source)
    data = {"subtask": source.subtask, "splits": dict(source.splits) or None} if source else {}
    return jobs.finetune(exp, task, ctx.run_dir(name), steps, init=init, eval_every=eval_every,
                         progress=ctx.progress, **data, **options)


def run_zero_shot(ctx: Context, exp: Experiment, task: str, init: Path, name: str,
                  source: Source | None = None, **options: Any) -> dict[str, Any]:
    data = {"subtask": source.subtask, "splits": dict(source.splits) or None} if source else {}
    return jobs.finetune(exp, task, ctx.run_dir(name), 0, init=init, zero_shot=True, **data, **options)


def _frames(exp: Experiment) -> str:
    return str(exp.model.num_frames)


# Table 2: video question answering ---------------------------------------------------------------------------
QA_SOURCES: dict[str, Source] = {
    "corpus": Source(None, "qa", "corpus QA"),
    "tgif-action": Source("tgif-qa", "mc", "TGIF-QA", "action", "Action"),
    "tgif-transition": Source("tgif-qa", "mc", "TGIF-QA", "transition", "Transition"),
    "tgif-frameqa": Source("tgif-qa", "qa", "TGIF-QA", "frameqa", "FrameQA"),
    "msrvtt-qa": Source("msrvtt-qa", "qa", "MSRVTT-QA"),
    "msvd-qa": Source("msvd-qa", "qa", "MSVD-QA"),
}


def run_table2(params: dict[str, Any], ctx: Context) -> Result:
    source = select_source(QA_SOURCES, params["dataset"], ctx)
    init, how = pretrained(ctx, params)
    exp = ctx.experiment()
    results = run_finetune(ctx, exp, source.task, init, f"{params['dataset']}", params, source)
    test = results["test"]
    row = {"dataset": source.label, "method": method_name(ctx, exp), "frames": _frames(exp),
           source.column: test["accuracy"]}
    for key, value in test.items():
        if key.startswith("accuracy_"):
            row[f"{source.column} ({key.removeprefix('accuracy_')})"] = value
    notes = [how, describe(exp), f"selected step {results['selected_step']} by validation accuracy "
             f"{results['validation']:.2f} ({results['val_items']} items); test has {results['test_items']} items"]
    if source.prepared is None:
        notes.append("Built-in corpus: open-ended QA over the training answers (direction questions need the "
                     "frames' order; shape and colour questions do not). Not comparable with the paper's numbers.")
    if source.task == "mc":
        notes.append("Multiple-choice QA: question and candidate as a text pair, the VTM match logit picks one.")
    return Result(metrics={"accuracy": test["accuracy"], **{k: v for k, v in test.items() if k != "score"}},
                  rows=[row], notes=notes)


# Table 3: text-video retrieval -----------------------------------------------------------------------------------
RETRIEVAL_SOURCES: dict[str, Source] = {
    "corpus": Source(None, "retrieval", "corpus retrieval"),
    "msrvtt-9k": Source("msrvtt", "retrieval", "MSR-VTT (9K train)", splits=(("train", "train_9k"),)),
    "msrvtt-7k": Source("msrvtt", "retrieval", "MSR-VTT (7K train)", splits=(("train", "train_7k"),)),
    "didemo": Source("didemo", "retrieval", "DiDeMo"),
    "activitynet": Source("activitynet", "retrieval", "ActivityNet Captions"),
}
RETRIEVAL_COLUMNS = ("R@1", "R@5", "R@10", "MdR")


def run_table3(params: dict[str, Any], ctx: Context) -> Result:
    source = select_source(RETRIEVAL_SOURCES, params["dataset"], ctx)
    init, how = pretrained(ctx, params)
    exp = ctx.experiment()
    results = run_finetune(ctx, exp, "retrieval", init, params["dataset"], params, source,
                           rerank_top_k=params["rerank_top_k"])
    test = results["test"]
    row = {"dataset": source.label, "method": method_name(ctx, exp), "frames": _frames(exp),
           **{col: test[f"t2v_{col}"] for col in RETRIEVAL_COLUMNS}}
    scoring = (f"dual-stream cosine similarity, then the top {params['rerank_top_k']} re-scored by VTM"
               if params["rerank_top_k"] else "dual-stream cosine similarity (each modality encoded alone)")
    notes = [how, describe(exp), f"fine-tuned with VTC + VTM; ranked by {scoring}",
             f"chance R@1 = {test['random_R@1']:.2f}% ({results['test_items']} test texts); ties count against "
             f"the model (pessimistic)", f"selected step {results['selected_step']} by validation T2V R@1"]
    return Result(metrics={k: v for k, v in test.items() if k != "score"}, rows=[row], notes=notes)


# Table 4: multiple choice ------------------------------------------------------------------------------------------
MC_SOURCES: dict[str, Source] = {
    "corpus": Source(None, "mc", "corpus MC"),
    "msrvtt-mc": Source("msrvtt-mc", "mc", "MSR-VTT"),
    "lsmdc-mc": Source("lsmdc-mc", "mc", "LSMDC"),
}


def _mc_rows(ctx: Context, exp: Experiment, source: Source, init: Path, params: dict[str, Any], name: str,
             arm: str = "All-in-one") -> tuple[dict[str, dict], list[str]]:
    """Zero-shot and/or fine-tuned multiple choice (``params["mode"]``) of one pre-trained model."""
    out: dict[str, dict] = {}
    notes: list[str] = []
    if params["mode"] in ("both", "zero-shot"):
        out["zero-shot"] = run_zero_shot(ctx, exp, "mc", init, f"{name}-zero-shot", source)["test"]
    if params["mode"] in ("both", "fine-tune"):
        try:
            results = run_finetune(ctx, exp, "mc", init, f"{name}-finetune", params, source)
        except jobs.MissingSplitError as error:
            if params["mode"] == "fine-tune":
                raise
            notes.append(f"{method_name(ctx, exp, arm)}: not fine-tuned: {error}")
        else:
            out["fine-tune"] = results["test"]
            notes.append(f"{method_name(ctx, exp, arm)}: fine-tuned checkpoint of step {results['selected_step']} "
                         f"chosen by validation accuracy {results['validation']:.2f}")
    return out, notes


def run_table4(params: dict[str, Any], ctx: Context) -> Result:
    source = select_source(MC_SOURCES, params["dataset"], ctx)
    init, how = pretrained(ctx, params)
    exp = ctx.experiment()
    measured, notes = _mc_rows(ctx, exp, source, init, params, params["dataset"])
    rows, metrics = [], {}
    for mode, test in measured.items():
        method = method_name(ctx, exp) + (" (zero-shot)" if mode == "zero-shot" else "")
        row = {"dataset": source.label, "method": method, "frames": _frames(exp), "Accuracy": test["accuracy"]}
        if "subset_accuracy" in test:
            row["Accuracy among temporal distractors"] = test["subset_accuracy"]
        rows.append(row)
        metrics.update({f"{mode} {k}": v for k, v in test.items() if k != "score"})
    notes = [how, describe(exp), *notes, "Candidates are scored by the VTM match logit (zero-shot: the "
             "pre-trained head; fine-tuned: cross-entropy over the candidates' scores)."]
    if source.prepared is None:
        notes.append("Built-in corpus: five captions per motion clip, three differ from the answer only in the "
                     "direction words (a single frame cannot tell them apart), one in a colour.")
    return Result(metrics=metrics, rows=rows, notes=notes)


# Table 5: visual commonsense reasoning ---------------------------------------------------------------------------
VCR_SOURCES: dict[str, Source] = {
    "corpus": Source(None, "vcr", "corpus MC (VCR stand-in)"),
    "vcr": Source("vcr", "vcr", "VCR Q->A", subtask="qa"),
}


def run_table5(params: dict[str, Any], ctx: Context) -> Result:
    source = select_source(VCR_SOURCES, params["dataset"], ctx)
    init, how = pretrained(ctx, params)
    exp = ctx.experiment()
    paint = params["paint_masks"]
    name = params["dataset"] if paint else f"{params['dataset']}-no-mask"
    results = run_finetune(ctx, exp, "vcr", init, name, params, source, paint_masks=paint)
    test = results["test"]
    stand_in = source.prepared is None and jobs.corpus_stand_in("vcr") != "vcr"
    row = {"method": method_name(ctx, exp), "PT Data": params["pt_data"], "Mask": paint and not stand_in,
           "dataset": source.label if stand_in or source.prepared else "corpus VCR items", "Accuracy": test["accuracy"]}
    notes = [how, describe(exp), f"the VTM match logit of each candidate fine-tuned with cross-entropy over the "
             f"candidates; checkpoint of step {results['selected_step']} chosen on a validation split held out of "
             f"train (with VCR, its public val split is the test split)"]
    if stand_in:
        notes.append("VCR needs data_root (python -m allinone_lab.data.prepare vcr): the built-in corpus has no "
                     "images with people to reason about. This row is the corpus's multiple-choice items fine-tuned "
                     "with the VCR job (a video and five captions, no painted masks), a stand-in only: it says "
                     "nothing about VCR accuracy.")
    elif paint:
        notes.append("Q->A: the question and each of the four answers as a text pair; every referenced person is "
                     "painted with its own colour (the paper's 'Mask' setting).")
    else:
        notes.append("Q->A: the question and each of the four answers as a text pair, on the plain images (no "
                     "painted masks: the paper's row without 'Mask').")
    return Result(metrics={k: v for k, v in test.items() if k != "score"}, rows=[row], notes=notes)


# Table 7: retrieval objectives -------------------------------------------------------------------------------------
OBJECTIVE_ARMS: dict[str, dict[str, float]] = {"vtc": {"vtc": 1.0, "vtm": 0.0}, "vtm": {"vtc": 0.0, "vtm": 1.0},
                                               "vtc+vtm": {"vtc": 1.0, "vtm": 1.0}}
OBJECTIVE_SOURCES = {k: v for k, v in RETRIEVAL_SOURCES.items() if k in ("corpus", "msrvtt-9k", "didemo")}


def run_table7(params: dict[str, Any], ctx: Context) -> Result:
    source = select_source(OBJECTIVE_SOURCES, params["dataset"], ctx)
    init, how = pretrained(ctx, params)
    exp = ctx.experiment()
    arms = list(OBJECTIVE_ARMS) if params["objectives"] == "all" else [params["objectives"]]
    scorings = [0] + ([params["rerank_top_k"]] if params["rerank_top_k"] else [])
    rows, metrics = [], {}
    notes = [how, describe(exp)]
    for arm in arms:
        weights = OBJECTIVE_ARMS[arm]
        run = f"{params['dataset']}-{arm}"
        results = run_finetune(ctx, exp, "retrieval", init, run, params, source, objectives=weights)
        model = jobs.load_model(exp, ctx.run_dir(run) / "checkpoints" / "best.pt", strict=False).to(ctx.device)
        test_ds = jobs.dataset(exp, "retrieval", "test", train=False, splits=dict(source.splits) or None)
        for k in scorings:
            test = results["test"] if k == 0 else jobs.retrieval_evaluation(model, test_ds, rerank_top_k=k)
            row: dict[str, Any] = {"VTM": weights["vtm"] > 0, "VTC": weights["vtc"] > 0, "dataset": source.label,
                                   "scoring": f"re-rank top {k} by VTM" if k else "dual-stream"}
            for direction in ("t2v", "v2t"):
                for col in ("R@1", "R@5", "R@10"):
                    row[f"{direction.upper()} {col}"] = test[f"{direction}_{col}"]
            rows.append(row)
            metrics.update({f"{arm} {row['scoring']} {key}": value for key, value in test.items() if key != "score"})
        notes.append(f"{arm}: checkpoint of step {results['selected_step']} chosen by validation T2V R@1 "
                     f"(dual-stream)")
    notes.append("Dual-stream scores use the VTC projections; a VTM-only run never trains them (they keep their "
                 "pre-trained values), so its dual-stream rows measure the pre-trained projections and its "
                 "re-ranked rows the fine-tuned VTM head.")
    return Result(metrics=metrics, rows=rows, notes=notes)


# Table 12: linear probe -------------------------------------------------------------------------------------------
PROBE_SOURCES: dict[str, Source] = {
    "corpus": Source(None, "linear_probe", "corpus events"),
    "kinetics400": Source("kinetics400", "linear_probe", "K400"),
    "hmdb51": Source("hmdb51", "linear_probe", "HMDB51"),
}


def _rolling_and_time_average(params: dict[str, Any], ctx: Context,
                              notes: list[str]) -> Iterator[tuple[str, Experiment, Path, str, str]]:
    """The arms of Tables 12 and 13: (Time Average if asked, then) All-in-one, each pre-trained here unless its
    checkpoint is given. Yields ``(arm, experiment, init checkpoint, how it was obtained, run name)``."""
    arms = [("All-in-one", {}, "init")]
    if params["time_average"]:
        arms.insert(0, ("Time Average", {"model.roll_ratio": 0.0}, "time_average_init"))
    for arm, overrides, init_param in arms:
        if init_param == "time_average_init" and params["init"] is not None and params["time_average_init"] is None:
            notes.append("Time Average: not run (init is given but time_average_init is not)")
            continue
        init, how = pretrained(ctx, params, "pretrain" if not overrides else "pretrain-time-average", overrides,
                               init_param)
        name = f"{params['dataset']}-{'time-average' if overrides else 'rolling'}"
        yield arm, ctx.experiment(**overrides), init, how, name


def run_table12(params: dict[str, Any], ctx: Context) -> Result:
    source = select_source(PROBE_SOURCES, params["dataset"], ctx)
    if source.prepared == "hmdb51":
        k = params["hmdb_split"]
        source = Source("hmdb51", "linear_probe", "HMDB51", splits=(("train", f"train{k}"), ("test", f"test{k}")))
    rows, metrics, notes = [], {}, []
    for arm, exp, init, how, name in _rolling_and_time_average(params, ctx, notes):
        results = jobs.finetune(exp, "linear_probe", ctx.run_dir(name), 0, init=init, progress=ctx.progress,
                                splits=dict(source.splits) or None, probe_epochs=params["probe_epochs"])
        test = results["test"]
        row = {"method": method_name(ctx, exp, arm), "frames": _frames(exp)}
        row.update({f"{source.label} Top-{k.removeprefix('top')}": v for k, v in test.items()})
        rows.append(row)
        metrics.update({f"{arm} {k}": v for k, v in test.items()})
        notes.append(f"{arm}: {how}; learning rate {results['selected_lr']} chosen by validation top-1 "
                     f"({results['val_items']} items held out of train); {results['num_classes']} classes, "
                     f"feature dim {results['feature_dim']}")
    notes.append("Frozen backbone; one linear layer on the frame-averaged video CLS of the last layer.")
    if source.prepared is None:
        notes.append(f"Built-in corpus: classes {list(EVENT_CLASSES)} (a motion split by direction; "
                     f"one frame cannot tell the directions apart). Top-10 needs more than 7 classes.")
    return Result(metrics=metrics, rows=rows, notes=notes)


# Table 13: Ego4D-style multiple choice ------------------------------------------------------------------------------
EGO_SOURCES: dict[str, Source] = {
    "corpus": Source(None, "mc", "corpus MC (Ego4D stand-in)"),
    "ego4d-mc": Source("ego4d-mc", "mc", "Ego4D MC"),
}


def run_table13(params: dict[str, Any], ctx: Context) -> Result:
    source = select_source(EGO_SOURCES, params["dataset"], ctx)
    rows, metrics, notes = [], {}, []
    for arm, exp, init, how, name in _rolling_and_time_average(params, ctx, notes):
        measured, arm_notes = _mc_rows(ctx, exp, source, init, params, name, arm)
        row = {"method": method_name(ctx, exp, arm), "frames": _frames(exp)}
        if "zero-shot" in measured:
            row["Zero-shot"] = measured["zero-shot"]["accuracy"]
        if "fine-tune" in measured:
            row["Fine-tune"] = measured["fine-tune"]["accuracy"]
        rows.append(row)
        metrics.update({f"{arm} {mode} {k}": v for mode, test in measured.items() for k, v in test.items()
                        if k != "score"})
        notes += [f"{arm}: {how}", *arm_notes]
    if source.prepared is None:
        notes.append("Ego4D needs data_root (python -m allinone_lab.data.prepare ego4d-mc): the built-in corpus "
                     "has no egocentric video. These rows are the corpus's five-way multiple-choice items, a "
                     "stand-in only: they say nothing about Ego4D accuracy.")
    else:
        notes.append("The public Ego4D MC file has only a val split: it is the test split here, and fine-tuning "
                     "needs a training split (pass mode='zero-shot', or prepare one).")
    return Result(metrics=metrics, rows=rows, notes=notes)


# Registration -------------------------------------------------------------------------------------------------------
def _dataset_param(sources: dict[str, Source], help_text: str) -> Param:
    return Param("dataset", str, "corpus", tuple(sources), help_text + " (anything but corpus needs data_root)")


_MODE = Param("mode", str, "both", ("both", "zero-shot", "fine-tune"),
              "zero-shot (the pre-trained VTM head), fine-tune, or both")
_TIME_AVERAGE = (
    Param("time_average", bool, True, help="also run the Time Average baseline (pre-trained without rolling)"),
    Param("time_average_init", str, None, help="its pre-trained checkpoint; None: pre-train it here"),
)

register(Reproduction(
    name="table2", title="Table 2: video question answering",
    params=(_dataset_param(QA_SOURCES, "corpus QA, TGIF-QA (action, transition: multiple choice; frameqa: "
                                       "open-ended), MSRVTT-QA or MSVD-QA"), *PRETRAIN_PARAMS),
    run=run_table2))
register(Reproduction(
    name="table3", title="Table 3: text-to-video retrieval",
    params=(_dataset_param(RETRIEVAL_SOURCES, "corpus, MSR-VTT (9K or 7K training videos), DiDeMo or "
                                              "ActivityNet Captions"),
            Param("rerank_top_k", int, 0, help="re-score the top k videos of each text with VTM (0: dual-stream only)",
                  bounds=(0, 10**6)),
            *PRETRAIN_PARAMS),
    run=run_table3))
register(Reproduction(
    name="table4", title="Table 4: multiple choice (fine-tuned and zero-shot)",
    params=(_dataset_param(MC_SOURCES, "corpus, MSR-VTT MC or LSMDC MC"), _MODE, *PRETRAIN_PARAMS),
    run=run_table4))
register(Reproduction(
    name="table5", title="Table 5: visual commonsense reasoning (Q->A)",
    params=(_dataset_param(VCR_SOURCES, "vcr, or the corpus stand-in"),
            Param("pt_data", str, "built-in corpus", help="label of the pre-training data, for the row"),
            Param("paint_masks", bool, True, help="paint each referenced person in its own colour (Mask); False: "
                                                  "the plain images"),
            *PRETRAIN_PARAMS),
    run=run_table5))
register(Reproduction(
    name="table7", title="Table 7: retrieval fine-tuning objectives",
    params=(_dataset_param(OBJECTIVE_SOURCES, "corpus, MSR-VTT (9K) or DiDeMo"),
            Param("objectives", str, "all", ("all", "vtc", "vtm", "vtc+vtm"), "which objectives to fine-tune with"),
            Param("rerank_top_k", int, 8, help="also report the top k videos of each text re-scored by VTM (0: no)",
                  bounds=(0, 10**6)),
            *PRETRAIN_PARAMS),
    run=run_table7))
register(Reproduction(
    name="table12", title="Table 12: linear probe on action recognition",
    params=(_dataset_param(PROBE_SOURCES, "corpus events, Kinetics-400 or HMDB51"),
            Param("hmdb_split", int, 1, (1, 2, 3), "the HMDB51 train/test split"),
            Param("probe_epochs", int, 100, help="full-batch epochs of the linear layer", bounds=(1, 10**6)),
            *_TIME_AVERAGE, *PRETRAIN_PARAMS[:2]),
    run=run_table12))
register(Reproduction(
    name="table13", title="Table 13: Ego4D-style multiple choice",
    params=(_dataset_param(EGO_SOURCES, "ego4d-mc, or the corpus stand-in"), _MODE, *_TIME_AVERAGE,
            *PRETRAIN_PARAMS),
    run=run_table13))
