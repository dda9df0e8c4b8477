"""Runs: the experiment of a scale, pre-training it (or reusing the finished run), loading and evaluating it.

Pre-training or loading a model for a notebook, a reproduction or a figure takes these few steps::

    exp = runs.experiment("cpu", **{"model.roll_ratio": 0.25})   # the preset, then dotted overrides
    run = runs.pretrain_or_reuse(exp, "runs/roll")               # resumes a stopped run, reuses a done one
    runs.evaluate(run)                                           # cloze and zero-shot multiple choice
    run = runs.load_run("runs/roll")                             # later: config.json + checkpoints/last.pt

A knob reaches the model in a few hops: ``ratio`` -> ``{"model.roll_ratio": ratio}`` -> :func:`experiment`
-> ``Experiment.model.roll_ratio`` -> :meth:`Run.model` builds ``AllInOne(experiment.model)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import loading
from ..data.registry import DATASETS
from ..loading import resolve_device as resolve_device  # the one device rule (``auto``: CUDA if visible)
from ..model import AllInOne
from . import jobs
from .config import TrainConfig
from .presets import PAPER_SCALES, Experiment, preset


# 1. The experiment ------------------------------------------------------------------------------------------
def experiment(scale: str, variant: str | None = None, **overrides: Any) -> Experiment:
    """The ``scale`` preset (``smoke`` | ``cpu`` | ``rehearsal`` | ``paper``; ``variant`` picks the backbone
    of the last two) with the dotted ``overrides`` applied (``{"model.roll_ratio": 0.5}``,
    ``{"data_root": ROOT}``): the one way to build the experiment of a scale."""
    if variant is not None and scale not in PAPER_SCALES:
        raise ValueError(f"variant={variant!r}: only the scales {list(PAPER_SCALES)} take a variant; scale "
                         f"{scale!r} has a model of its own (change it with model.* overrides)")
    return preset(scale, variant).override(**overrides)


# 2. The run -------------------------------------------------------------------------------------------------
@dataclass
class Run:
    """A model that was trained (or released): where its run lives (None for a checkpoint made elsewhere),
    the experiment it ran, and the checkpoint holding its weights. :meth:`model` builds it once."""

    run_dir: Path | None
    experiment: Experiment
    checkpoint: Path
    notes: list[str] = field(default_factory=list)  # what loading did, for display
    _model: AllInOne | None = field(default=None, init=False, repr=False, compare=False)

    def model(self, device: str | torch.device = "auto") -> AllInOne:
        """The model with the checkpoint's weights, in eval mode on ``device`` (built on the first call, then
        the same model, moved)."""
        if self._model is None:
            self._model = loading.model_with_weights(self.experiment.model, self.checkpoint,
                                                     self.experiment.train.seed)
        return self._model.to(resolve_device(device)).eval()


# 3. Pre-training --------------------------------------------------------------------------------------------
def pretrain_or_reuse(exp: Experiment, run_dir: str | os.PathLike, progress: bool = True,
                      eval_every: int | None = None) -> Run:
    """Pre-train ``exp`` into ``run_dir`` with :func:`jobs.pretrain` (its preflight first; a stopped run
    resumes exactly, a finished one is reused without a step). ``eval_every`` adds learning curves
    (``curve.jsonl``). The run's experiment is ``exp``."""
    checkpoint = jobs.pretrain(exp, run_dir, progress=progress, eval_every=eval_every)
    return Run(Path(run_dir), exp, Path(checkpoint))


# 4. Loading -------------------------------------------------------------------------------------------------
def load_run(path: str | os.PathLike, device: str | torch.device = "auto") -> Run:
    """The run at ``path``: a training run directory (``config.json`` + ``checkpoints/last.pt``) or a
    checkpoint file inside its ``checkpoints/``, with the experiment of its ``config.json``; or a checkpoint
    made elsewhere (a released ``.ckpt``, a converted ``.safetensors`` or its directory), with the data and
    corpus its model expects. The model is loaded (:func:`allinone_lab.loading.load`: eval mode, on
    ``device``) before this returns, so that a bad file fails here."""
    loaded = loading.load(path, device)
    values = loaded.config or {}
    train = TrainConfig.from_dict(values["train"]) if isinstance(values.get("train"), dict) else TrainConfig()
    exp = Experiment(model=loaded.model.config, data=loaded.data, train=train, corpus=loaded.corpus,
                     data_root=values.get("data_root"))
    run = Run(loaded.run_dir, exp, loaded.checkpoint, loaded.notes)
    run._model = loaded.model
    return run


# 5. Evaluation ----------------------------------------------------------------------------------------------
ZERO_SHOT_ITEMS = ("mc", "retrieval")  # the items a pre-trained model is evaluated on without a trained head


def evaluate(run: Run, dataset: str | None = None, device: str | torch.device = "auto") -> dict[str, float]:
    """Zero-shot evaluation of a pre-trained run on ``device``.

    ``dataset`` None: :func:`jobs.evaluate_pretrained` on the run's data (the built-in corpus: cloze and
    multiple choice on its test split; prepared data: multiple choice on the LSMDC and MSR-VTT test sets
    under ``data_root``). A dataset name: that prepared dataset under the run's ``data_root``, on its test
    split: multiple choice by the VTM match logit, or dual-stream retrieval, as ``<dataset>/<metric>``."""
    exp, model = run.experiment, run.model(device)
    if dataset is None:
        return jobs.evaluate_pretrained(exp, model)
    usable = sorted(name for name, spec in DATASETS.items() if spec.task in ZERO_SHOT_ITEMS)
    if dataset not in DATASETS or DATASETS[dataset].task not in ZERO_SHOT_ITEMS:
        raise ValueError(f"dataset={dataset!r}: expected a prepared multiple-choice or retrieval dataset "
                         f"(one of {usable}) or None for the run's own data")
    task = DATASETS[dataset].task
    test = jobs.dataset(exp, task, "test", train=False, name=dataset)
    items = jobs.evaluation_items(exp, np.arange(len(test)))
    if task == "mc":
        metrics = jobs.multiple_choice_accuracy(model, test, 8, items)
    else:
        metrics = jobs.retrieval_evaluation(model, test, items)
    return {**{f"{dataset}/{key}": value for key, value in metrics.items()},
            f"{dataset}/items": float(len(items))}
