"""Loading a trained model with the inputs it expects, from any checkpoint.

A path is one of: a run directory of this toolkit (``config.json`` + ``checkpoints/last.pt``), a training
checkpoint inside its ``checkpoints/``, or a checkpoint made elsewhere that
:func:`allinone_lab.model.from_checkpoint` reads (a released ``.ckpt``, a converted ``.safetensors`` or its
directory). :func:`load` gives the model (eval mode, on a device) with the data and corpus configuration it
expects.

This sits below training and the visualisations alike (the visualisations never import training code): the
run API (:func:`allinone_lab.train.runs.load_run`) and :func:`allinone_lab.viz.load_bundle` both load here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .data import CorpusConfig, DataConfig
from .model import AllInOne, ModelConfig, from_checkpoint, image_normalization

TRAINING_CHECKPOINT = Path("checkpoints") / "last.pt"  # where a run keeps its weights


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when a GPU is visible, else CPU; anything else as a ``torch.device`` that must exist
    here (a ``cuda`` device without a GPU is an error, not a late crash)."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r}: expected auto, cpu, cuda, cuda:N or mps") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: no CUDA device is available here (use auto or cpu)")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) are available")
    return resolved


@dataclass
class Loaded:
    """A loaded model and where it came from.

    Attributes:
        model: the :class:`AllInOne` with the checkpoint's weights, in eval mode.
        data: the data configuration of its inputs (the run's, or one matching the model).
        corpus: the built-in corpus it was trained on (or one rendered at its frame size).
        checkpoint: the file (or converted directory) the weights came from.
        run_dir: the run directory; None for a checkpoint made elsewhere.
        config: the run's ``config.json`` (its resolved experiment); None for a checkpoint made elsewhere.
        notes: what loading did, for display.
    """

    model: AllInOne
    data: DataConfig
    corpus: CorpusConfig
    checkpoint: Path
    run_dir: Path | None = None
    config: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def load(path: str | os.PathLike, device: str | torch.device = "auto") -> Loaded:
    """The model at ``path`` (a run directory, a checkpoint inside one, or a checkpoint made elsewhere) on
    ``device``, in eval mode, with the data and corpus configuration it expects."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    run_dir = run_dir_of(path)
    if run_dir is None:
        model = from_checkpoint(path)
        note = str(model.load_report) if hasattr(model, "load_report") else f"checkpoint {path}"
        config = model.config
        loaded = Loaded(model, data_config_for(config), corpus_config_for(config), path, notes=[note])
    else:
        values = read_run_config(run_dir)
        model_config, data, corpus = run_configs(values)
        checkpoint = path if path.is_file() else run_dir / TRAINING_CHECKPOINT
        seed = values["train"].get("seed", 0) if isinstance(values.get("train"), dict) else 0
        model = model_with_weights(model_config, checkpoint, seed)
        notes = [f"training checkpoint {checkpoint}"]
        loaded = Loaded(model, data, corpus, checkpoint, run_dir, values, notes)
    loaded.model = loaded.model.to(resolve_device(device)).eval()
    return loaded


def run_dir_of(path: str | os.PathLike) -> Path | None:
    """The training run directory ``path`` is, or holds ``path`` as ``checkpoints/*.pt``; None otherwise."""
    path = Path(path)
    if path.is_dir() and (path / "config.json").is_file() and (path / TRAINING_CHECKPOINT).is_file():
        return path
    if path.is_file() and path.suffix == ".pt" and path.parent.name == "checkpoints":
        if (path.parent.parent / "config.json").is_file():
            return path.parent.parent
    return None


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``run_dir/config.json`` (the experiment the run resolved), checked to have ``model`` and ``data``."""
    path = Path(run_dir) / "config.json"
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    for section in ("model", "data"):
        if not isinstance(values.get(section), dict):
            raise ValueError(f"{path}: expected a {section!r} section (the run's resolved configuration)")
    return values


def run_configs(values: dict[str, Any]) -> tuple[ModelConfig, DataConfig, CorpusConfig]:
    """The model, data and corpus configuration of a run's ``config.json`` values. A data section that
    disagrees with the model on frames, frame size or text length is replaced by the model's; without a
    corpus section, the corpus rendered at the model's frame size."""
    model = ModelConfig.from_dict(values["model"])
    data = DataConfig.from_dict(values["data"])
    shape = (model.num_frames, model.image_size, model.max_text_len)
    if (data.num_frames, data.image_size, data.max_text_len) != shape:
        data = data_config_for(model)
    corpus = corpus_config_for(model)
    if isinstance(values.get("corpus"), dict):
        corpus = CorpusConfig(**values["corpus"])
    return model, data, corpus


def model_with_weights(config: ModelConfig, checkpoint: str | os.PathLike, seed: int = 0) -> AllInOne:
    """``AllInOne(config)`` with the weights of a training checkpoint (every tensor required). Built after
    ``torch.manual_seed(seed)``, as the training jobs build a model, so the global RNG ends the same."""
    weights = training_weights(checkpoint)
    torch.manual_seed(seed)
    model = AllInOne(config)
    model.load_state_dict(weights, strict=True)
    return model


def training_weights(checkpoint: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model's tensors of a training checkpoint (``{"model": {"model.<name>": tensor}, ...}``, the
    objective's state), their ``model.`` prefix removed."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, corrupted or not a torch file
        raise ValueError(f"checkpoint {str(path)!r} could not be read ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise ValueError(f"checkpoint {str(path)!r}: expected a training checkpoint with a 'model' "
                         "state dict")
    weights = {k.removeprefix("model."): v for k, v in state["model"].items() if k.startswith("model.")}
    if not weights:
        raise ValueError(f"checkpoint {str(path)!r}: its 'model' state has no 'model.*' tensors")
    return weights


def data_config_for(model_config: ModelConfig, **changes: Any) -> DataConfig:
    """The :class:`DataConfig` matching a model: frames, frame size, text length and the normalisation its
    initialisation expects."""
    mean, std = image_normalization(model_config)
    values = dict(num_frames=model_config.num_frames, image_size=model_config.image_size,
                  max_text_len=model_config.max_text_len, mean=mean, std=std)
    values.update(changes)
    return DataConfig(**values)


def corpus_config_for(model_config: ModelConfig) -> CorpusConfig:
    """The smallest built-in corpus rendered at the model's frame size."""
    size = max(16, model_config.image_size + model_config.image_size % 2)
    return CorpusConfig(size="smoke", image_size=size, num_frames=8)
