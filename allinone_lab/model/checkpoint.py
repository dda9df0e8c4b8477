"""Load the released All-in-one checkpoints safely, map them onto :class:`AllInOne`, export to safetensors.

Two on-disk formats are understood:

* ``released``: the PyTorch-Lightning ``.ckpt`` files of the original code (``{"state_dict": {...}}``,
  names such as ``transformer.blocks.0.attn.qkv.weight``, ``text_embeddings.LayerNorm.weight``), read with
  ``torch.load(weights_only=True)`` so that no arbitrary object is ever unpickled;
* ``allinone-lab``: our own names in a ``.safetensors`` file, written by :func:`save_converted` (or
  ``python -m allinone_lab.model.convert IN.ckpt OUT_DIR``) next to a ``config.json`` that holds the
  :class:`ModelConfig` and the SHA-256 of the weights.

The format is recognised from the file's bytes and keys, not from its suffix. Every tensor's shape is
checked; position embeddings are resampled when the frame size, the number of frames or the text length
differ from the checkpoint's. A :class:`CheckpointReport` lists what was loaded, resized, ignored on
purpose, left at init, missing and unexpected; missing or unexpected keys are an error unless
``strict=False``.

The released distilled small model (DeiT-S distilled: ``transformer.dist_token``, ``pos_embed`` of
``2 + N`` rows) never adds ``temporal_embed`` to its patches, so such checkpoints load with
``ModelConfig(distilled=True, use_temporal_embed=False)`` and a stored ``transformer.temporal_embed`` is
ignored (and reported as such). The distillation token is visual position 1, the first rolled position,
exactly as in the released code.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save
from torch import Tensor

from ..io import atomic_write_bytes
from .allinone import AllInOne
from .config import VARIANTS, ModelConfig
from .pretrained import LoadReport, _resample_pos_embed

FORMAT_NAME = "allinone-lab"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"

RELEASED = "released"
OURS = FORMAT_NAME

# Released name -> our name. An entry ending in "." maps a prefix, any other entry one exact key.
RELEASED_TO_OURS: tuple[tuple[str, str], ...] = (
    ("text_embeddings.word_embeddings.", "text_embed.word_embeddings."),
    ("text_embeddings.position_embeddings.", "text_embed.position_embeddings."),
    ("text_embeddings.token_type_embeddings.", "text_embed.token_type_embeddings."),
    ("text_embeddings.LayerNorm.", "text_embed.norm."),
    ("token_type_embeddings.", "modality_embed."),
    ("transformer.cls_token", "cls_token"),
    ("transformer.dist_token", "dist_token"),
    ("transformer.pos_embed", "pos_embed"),
    ("transformer.temporal_embed", "temporal_embed"),
    ("transformer.patch_embed.proj.", "patch_embed.proj."),
    ("transformer.blocks.", "blocks."),
    ("transformer.norm.", "norm."),
    ("pooler.dense.", "pooler.dense."),
    ("mlm_score.transform.dense.", "mlm_head.dense."),
    ("mlm_score.transform.LayerNorm.", "mlm_head.norm."),
    ("mlm_score.decoder.", "mlm_head.decoder."),
    ("mlm_score.bias", "mlm_head.bias"),
    ("itm_score.fc.", "vtm_head.fc."),
    ("vtm_score.fc.", "vtm_head.fc."),  # the "plus" checkpoints
    ("txt_proj.", "vtc_head.text_proj."),  # fine-tuned retrieval checkpoints
    ("vid_proj.", "vtc_head.video_proj."),
    ("vqa_classifier.", "qa_head.net."),  # open-ended QA: Dropout, Linear, LayerNorm, GELU, Linear
    ("mc_vqa_classifier.", "mc_head.net."),  # multiple-choice QA: same layout
)
# Released keys dropped on purpose: buffers that carry no weights.
RELEASED_IGNORED: tuple[str, ...] = ("text_embeddings.position_ids",)
# Heads that a checkpoint may lack entirely (left at init, reported, never an error).
OPTIONAL_HEADS: tuple[str, ...] = ("vtm_head.", "mlm_head.", "vtc_head.", "qa_head.", "mc_head.")
# Our keys never read from a file: the VTC temperature comes from the config.
CONFIG_ONLY_KEYS: tuple[str, ...] = ("vtc_head.log_scale",)


class CheckpointError(ValueError):
    """A checkpoint file cannot be read, is not an All-in-one checkpoint, or does not fit the model."""


@dataclass
class CheckpointReport(LoadReport):
    """What :func:`load_checkpoint` did. Keys are the file's names for ``unexpected``/``ignored`` and
    ours for the other lists.

    Attributes (besides :class:`LoadReport`'s ``loaded``/``missing``/``unexpected``/``resized``):
        format: ``"released"`` or ``"allinone-lab"``.
        ignored: file keys dropped on purpose (``position_ids``; the distilled model's unused
            ``temporal_embed``).
        defaulted: our keys set to a documented default (``temporal_embed`` absent from the file: zeros).
        heads_at_init: heads absent from the file and left at their initialisation.
        notes: one line per decision a reader should know about (inferred fields, resampling).
    """

    format: str = ""
    ignored: list[str] = field(default_factory=list)
    defaulted: list[str] = field(default_factory=list)
    heads_at_init: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def _title(self) -> str:
        return f"weights from {self.source} ({self.format})"

    def _sections(self) -> list[tuple[str, list[str]]]:
        return [("resized", self.resized), ("ignored on purpose", self.ignored), ("set to default", self.defaulted),
                ("heads left at init", self.heads_at_init), ("missing (kept at init)", self.missing),
                ("unexpected (not loaded)", self.unexpected)]

    def _notes(self) -> list[str]:
        return self.notes


@dataclass
class CheckpointFile:
    """The tensors of one file, in the file's own names, with what else the file says.

    Attributes:
        path: the weights file that was read.
        format: ``"released"`` or ``"allinone-lab"``.
        state: name -> tensor, ``module.`` prefixes removed.
        config: the :class:`ModelConfig` the file records (our format), else None.
        hparams: the Lightning ``hyper_parameters["config"]`` dict of a released file (plain values), or {}.
    """

    path: Path
    format: str
    state: dict[str, Tensor]
    config: ModelConfig | None = None
    hparams: dict[str, Any] = field(default_factory=dict)


# Reading files -----------------------------------------------------------------------------------------
def _unsafe_message(path: Path, detail: str) -> str:
    found = re.search(r"GLOBAL ([\w.]+)", detail)
    what = f"the object type {found.group(1)!r}" if found else "objects other than tensors and plain containers"
    return (
        f"{path}: refusing to load: the checkpoint needs {what}, which `torch.load(weights_only=True)` does "
        "not allow. Unpickling it would run code chosen by whoever made the file (arbitrary code execution). "
        "If, and only if, you trust where the file comes from, load it once with trust_pickle=True "
        "(CLI: --trust-pickle) and convert it to safetensors, which never executes code."
    )


def _sniff(path: Path) -> str:
    """``"zip"`` (torch.save), ``"pickle"`` (legacy torch.save), ``"safetensors"`` or ``"unknown"``."""
    with path.open("rb") as handle:
        head = handle.read(10)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    if len(head) >= 10 and head[8:9] == b"{":
        return "safetensors"
    return "unknown"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_config_json(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not a readable JSON config ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME or "model_config" not in meta:
        raise CheckpointError(
            f"{path}: expected a JSON object with format={FORMAT_NAME!r} and a 'model_config' entry "
            "(as written by `python -m allinone_lab.model.convert`)"
        )
    return meta


def _sibling_config(weights: Path) -> Path | None:
    """``config.json`` beside ``weights`` if it was written for that file (else None: not ours)."""
    candidate = weights.parent / CONFIG_FILE
    try:
        meta = json.loads(candidate.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(meta, dict) and meta.get("format") == FORMAT_NAME and meta.get("weights") == weights.name:
        return candidate
    return None


def _config_from(values: Any, where: str) -> ModelConfig:
    if not isinstance(values, dict):
        raise CheckpointError(f"{where}: 'model_config' must be a JSON object, got {type(values).__name__}")
    try:
        return ModelConfig.from_dict(values)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: invalid model_config: {err}") from err


def _tensor_state(obj: Mapping[str, Any], path: Path) -> dict[str, Tensor]:
    state: dict[str, Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise CheckpointError(
                f"{path}: state_dict entry {key!r} is a {type(value).__name__}, expected a tensor"
            )
        state[key[len("module.") :] if key.startswith("module.") else key] = value
    return state


def _detect_format(state: Mapping[str, Tensor], path: Path) -> str:
    if any(k.startswith(("text_embeddings.", "transformer.")) for k in state):
        return RELEASED
    if any(k.startswith("text_embed.") for k in state):
        return OURS
    sample = sorted(state)[:6]
    hint = ""
    if "cls_token" in state and any(k.startswith("blocks.") for k in state):
        hint = (" It looks like an image ViT/DeiT (timm) state dict: use it as an initialisation with "
                "ModelConfig(init='imagenet', init_file=...).")
    raise CheckpointError(
        f"{path}: not an All-in-one checkpoint: expected keys such as "
        "'text_embeddings.word_embeddings.weight' and 'transformer.blocks.0.attn.qkv.weight' (released) "
        f"or 'text_embed.word_embeddings.weight' (allinone-lab); found {len(state)} keys, e.g. {sample}.{hint}"
    )


def read_checkpoint(path: str | Path, trust_pickle: bool = False) -> CheckpointFile:
    """Read a checkpoint's tensors without building a model.

    Args:
        path: a released ``.ckpt``, a ``.safetensors`` file, or a directory written by
            :func:`save_converted` (``model.safetensors`` + ``config.json``).
        trust_pickle: allow ``torch.load(weights_only=False)``. Only for files from a trusted source:
            unpickling runs code chosen by the file's author.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: unreadable (truncated, corrupted), unsafe to unpickle, or not an All-in-one file.
    """
    path = Path(path)
    config_path: Path | None = None
    if path.is_dir():
        config_path = path / CONFIG_FILE
        path = path / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if config_path is None and _sniff(path) == "safetensors":
        config_path = _sibling_config(path)

    kind = _sniff(path)
    config: ModelConfig | None = None
    hparams: dict[str, Any] = {}
    if kind == "safetensors":
        meta_json: dict[str, Any] | None = None
        if config_path is not None and config_path.is_file():
            meta_json = _read_config_json(config_path)
            expected = meta_json.get("weights_sha256")
            if expected is not None and _sha256(path) != expected:
                raise CheckpointError(
                    f"{path}: SHA-256 differs from the one recorded in {config_path} "
                    "(the weights file is corrupted or was replaced)"
                )
        try:
            raw = load_file(str(path))
            with safe_open(str(path), framework="pt") as handle:
                header = handle.metadata() or {}
        except Exception as err:  # safetensors raises its own error types
            raise CheckpointError(
                f"{path}: cannot be read as a safetensors file (truncated or corrupted?): {err}"
            ) from err
        if meta_json is not None:
            config = _config_from(meta_json["model_config"], str(config_path))
        elif header.get("format") == FORMAT_NAME and "model_config" in header:
            try:
                values = json.loads(header["model_config"])
            except json.JSONDecodeError as err:
                raise CheckpointError(f"{path}: header metadata 'model_config' is not JSON ({err})") from err
            config = _config_from(values, f"{path} (header metadata)")
        state = _tensor_state(raw, path)
    elif kind in ("zip", "pickle"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
        except pickle.UnpicklingError as err:
            if not trust_pickle and "GLOBAL" in str(err):
                raise CheckpointError(_unsafe_message(path, str(err))) from None
            raise CheckpointError(f"{path}: cannot be unpickled (truncated or corrupted?): {err}") from err
        except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
            raise CheckpointError(
                f"{path}: cannot be read as a PyTorch checkpoint (truncated or corrupted?): {err}"
            ) from err
        if not isinstance(obj, Mapping):
            raise CheckpointError(f"{path}: expected a dict (a Lightning checkpoint), got {type(obj).__name__}")
        if "state_dict" in obj:
            if not isinstance(obj["state_dict"], Mapping):
                raise CheckpointError(f"{path}: 'state_dict' is a {type(obj['state_dict']).__name__}, expected a dict")
            state = _tensor_state(obj["state_dict"], path)
        elif obj and all(isinstance(v, Tensor) for v in obj.values()):
            state = _tensor_state(obj, path)
        else:
            raise CheckpointError(
                f"{path}: no 'state_dict' entry; top-level keys are {sorted(map(str, obj))[:10]}"
            )
        hyper = obj.get("hyper_parameters")
        if isinstance(hyper, Mapping):
            inner = hyper.get("config", hyper)
            if isinstance(inner, Mapping):
                hparams = {k: v for k, v in inner.items() if isinstance(v, (int, float, str, bool))}
    else:
        raise CheckpointError(
            f"{path}: unknown file type (neither a PyTorch checkpoint nor a safetensors file; "
            "truncated, corrupted or foreign?)"
        )
    if not state:
        raise CheckpointError(f"{path}: the checkpoint holds no tensors")
    fmt = _detect_format(state, path)
    return CheckpointFile(path=path, format=fmt, state=state, config=config, hparams=hparams)


# Name mapping -----------------------------------------------------------------------------------------
def released_to_ours(
    state: Mapping[str, Tensor], names: dict[str, str] | None = None
) -> tuple[dict[str, Tensor], list[str], list[str]]:
    """Rename a released state dict to our names.

    Args:
        names: if given, receives our name -> the file's name for every renamed key.

    Returns:
        ``(ours, ignored, unexpected)``: the renamed tensors, the released keys dropped on purpose, and
        the released keys with no counterpart in our model (released names).
    """
    if any(k.startswith("itm_score.") for k in state) and any(k.startswith("vtm_score.") for k in state):
        raise CheckpointError("the checkpoint has both itm_score.* and vtm_score.* heads; expected one of them")
    ours: dict[str, Tensor] = {}
    ignored: list[str] = []
    unexpected: list[str] = []
    for key, value in state.items():
        key = key[len("module.") :] if key.startswith("module.") else key
        if key in RELEASED_IGNORED:
            ignored.append(key)
            continue
        for src, dst in RELEASED_TO_OURS:
            if (src.endswith(".") and key.startswith(src)) or key == src:
                ours[dst + key[len(src) :]] = value
                if names is not None:
                    names[dst + key[len(src) :]] = key
                break
        else:
            unexpected.append(key)
    return ours, ignored, unexpected


def ours_to_released(state: Mapping[str, Tensor], matching_head: str = "itm_score") -> dict[str, Tensor]:
    """Rename our state dict to the released names (the inverse of :func:`released_to_ours`).

    Args:
        matching_head: ``"itm_score"`` (pre-training checkpoints) or ``"vtm_score"`` (the "plus" ones).

    ``vtc_head.log_scale`` (a config value) is dropped; any other key without a released name raises
    ``ValueError``. Extra block parameters (TimeSformer/decoupled) go under ``transformer.blocks.*``,
    which the released code does not have.
    """
    if matching_head not in ("itm_score", "vtm_score"):
        raise ValueError(f"matching_head={matching_head!r}: expected 'itm_score' or 'vtm_score'")
    inverse = [(dst, src) for src, dst in RELEASED_TO_OURS if not src.startswith(("vtm_score", "itm_score"))]
    inverse.append(("vtm_head.fc.", f"{matching_head}.fc."))
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key in CONFIG_ONLY_KEYS:
            continue
        for src, dst in inverse:
            if (src.endswith(".") and key.startswith(src)) or key == src:
                out[dst + key[len(src) :]] = value
                break
        else:
            raise ValueError(f"{key!r} has no name in the released format")
    return out


def to_released_state_dict(model: AllInOne, matching_head: str = "itm_score") -> dict[str, Tensor]:
    """``model``'s weights under the released names (e.g. to run the original code on them)."""
    return ours_to_released({k: v.detach() for k, v in model.state_dict().items()}, matching_head)


# Config inference -------------------------------------------------------------------------------------
def _need(state: Mapping[str, Tensor], key: str, ndim: int) -> Tensor:
    if key not in state:
        raise CheckpointError(f"cannot infer the model: key {key!r} is missing from the checkpoint")
    if state[key].ndim != ndim:
        raise CheckpointError(f"{key} has shape {tuple(state[key].shape)}, expected {ndim} dimensions")
    return state[key]


def infer_config(
    state: Mapping[str, Tensor],
    released: bool = True,
    hparams: Mapping[str, Any] | None = None,
    notes: list[str] | None = None,
    **overrides: Any,
) -> ModelConfig:
    """The :class:`ModelConfig` a state dict (in our names) was made with, read from tensor shapes.

    Width, vocabulary, text length, depth, MLP ratio, patch size, channels, frame size, frames, the
    distillation token, SPE/MTE and the optional heads come from shapes. The number of heads is not
    stored in weights: it comes from the named variant of that width (tiny 192: 3, small 384: 6,
    base 768: 12, large 1024: 16), else ``hparams["num_heads"]``, else ``width // 64`` (noted).

    Args:
        released: the tensors came from a released checkpoint (the distilled model then never adds the
            temporal embedding, and the patch permutation is switched on).
        hparams: the released file's Lightning config (``num_heads``, ``num_frames``), if any.
        notes: a list that receives one line per guess.
        overrides: :class:`ModelConfig` fields that win over the inferred ones.
    """
    hparams = dict(hparams or {})
    notes = notes if notes is not None else []
    words = _need(state, "text_embed.word_embeddings.weight", 2)
    vocab, width = words.shape
    text_len = _need(state, "text_embed.position_embeddings.weight", 2).shape[0]
    proj = _need(state, "patch_embed.proj.weight", 4)
    patch, in_chans = proj.shape[-1], proj.shape[1]
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.") and k.endswith(".norm1.weight")})
    if depth == 0:
        raise CheckpointError("cannot infer the model: no blocks.{i}.norm1.weight keys in the checkpoint")
    fc1 = _need(state, "blocks.0.mlp.fc1.weight", 2)
    distilled = "dist_token" in state
    prefix = 2 if distilled else 1

    fields: dict[str, Any] = dict(vocab_size=vocab, max_text_len=text_len, patch_size=patch, in_chans=in_chans,
                                  distilled=distilled, init="scratch")
    named = [n for n, v in VARIANTS.items() if v.width == width]
    if named and VARIANTS[named[0]].depth == depth and fc1.shape[0] == 4 * width:
        fields["variant"] = named[0]
    else:
        heads = VARIANTS[named[0]].heads if named else hparams.get("num_heads")
        if not isinstance(heads, int) or heads <= 0 or width % heads:
            heads = max(1, width // 64)
            notes.append(f"number of heads not stored in the weights: assumed width/64 = {heads} (override heads=)")
        fields.update(variant="base", width=width, depth=depth, heads=heads, mlp_ratio=fc1.shape[0] / width)

    if "pos_embed" in state:
        rows = _need(state, "pos_embed", 3).shape[1] - prefix
        grid = int(round(rows**0.5))
        if grid * grid != rows:
            raise CheckpointError(
                f"pos_embed has {rows + prefix} rows: expected {prefix} prefix token(s) + a square grid of patches"
            )
        fields["image_size"] = grid * patch
    else:
        fields["use_spe"] = False
    if "temporal_embed" in state:
        fields["num_frames"] = _need(state, "temporal_embed", 3).shape[1]
    elif isinstance(hparams.get("num_frames"), int):
        fields["num_frames"] = hparams["num_frames"]
    fields["use_temporal_embed"] = not distilled if released else "temporal_embed" in state
    fields["use_mte"] = "modality_embed.weight" in state
    if "vtc_head.text_proj.weight" in state:
        fields["vtc_dim"] = state["vtc_head.text_proj.weight"].shape[0]
    if "qa_head.net.4.weight" in state:
        fields["num_answers"] = state["qa_head.net.4.weight"].shape[0]
    fields["mc_head"] = "mc_head.net.1.weight" in state
    fields["shuffle_patches"] = released
    fields["roll_unimodal"] = not released
    fields.update(overrides)
    try:
        return ModelConfig(**fields)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"the inferred configuration is invalid: {err}") from err


# Loading into a model ---------------------------------------------------------------------------------
def _resample_frames(emb: Tensor, frames: int) -> Tensor:
    """``(1, F, D) -> (1, frames, D)``, linear, as :meth:`AllInOne.frame_embedding` does at run time."""
    return F.interpolate(emb[0].float().t()[None], size=frames, mode="linear", align_corners=False)[0].t()[None]


def _resample_text_positions(table: Tensor, rows: int) -> Tensor:
    """Fewer rows: the first ``rows`` (exact for every text that fits). More: linear, ends kept."""
    if rows <= table.shape[0]:
        return table[:rows]
    return F.interpolate(table.float().t()[None], size=rows, mode="linear", align_corners=True)[0].t()


def _fit(key: str, value: Tensor, target: Tensor, cfg: ModelConfig, report: CheckpointReport) -> Tensor:
    if value.shape == target.shape:
        return value
    before = tuple(value.shape)
    if value.ndim != target.ndim or value.shape[-1] != target.shape[-1]:
        return value  # left to the shape check, which names the key
    if key == "pos_embed":
        value = _resample_pos_embed(value.float(), cfg)
    elif key == "temporal_embed":
        value = _resample_frames(value, target.shape[1])
    elif key == "text_embed.position_embeddings.weight":
        value = _resample_text_positions(value, target.shape[0])
    else:
        return value
    report.resized.append(key)
    report.notes.append(f"{key} resampled from {before} to {tuple(value.shape)}")
    return value


def load_state(
    model: AllInOne,
    ours: Mapping[str, Tensor],
    source: str = "state dict",
    fmt: str = OURS,
    strict: bool = True,
    report: CheckpointReport | None = None,
    file_names: Mapping[str, str] | None = None,
) -> CheckpointReport:
    """Copy tensors in our names into ``model``: check every shape, resample position embeddings.

    ``file_names`` (our name -> the file's name) makes the report and errors use the file's names for
    keys the model has no place for.

    Strict (the default) raises :class:`CheckpointError` on missing or unexpected keys; heads absent from
    the file altogether are left at init and reported (the released pre-training checkpoints have no
    VTC projection), and an absent ``temporal_embed`` is set to zeros, as the released code does.
    Shape mismatches always raise.
    """
    cfg = model.config
    report = report if report is not None else CheckpointReport(source=source, format=fmt)
    target = model.state_dict()
    updates: dict[str, Tensor] = {}
    errors: list[str] = []
    for key, value in ours.items():
        if key not in target:
            if key == "temporal_embed" and fmt == RELEASED and cfg.distilled and not cfg.use_temporal_embed:
                report.ignored.append("transformer.temporal_embed")
                report.notes.append("transformer.temporal_embed ignored: the released distilled model never adds it")
            else:
                report.unexpected.append((file_names or {}).get(key, key))
            continue
        try:
            value = _fit(key, value, target[key], cfg, report)
        except ValueError as err:
            errors.append(f"{key}: {err}")
            continue
        if value.shape != target[key].shape:
            errors.append(f"{key}: checkpoint {tuple(value.shape)}, model expects {tuple(target[key].shape)}")
            continue
        updates[key] = value
    if errors:
        raise CheckpointError(f"{source}: shape mismatch for {len(errors)} tensor(s): " + "; ".join(errors))

    present_heads = {h for h in OPTIONAL_HEADS if any(k.startswith(h) for k in ours)}
    for key in target:
        if key in updates:
            continue
        head = next((h for h in OPTIONAL_HEADS if key.startswith(h)), None)
        if key in CONFIG_ONLY_KEYS:
            continue
        if head is not None and head not in present_heads:
            if head.rstrip(".") not in report.heads_at_init:
                report.heads_at_init.append(head.rstrip("."))
        elif key == "temporal_embed" and "temporal_embed" not in ours:
            updates[key] = torch.zeros_like(target[key])
            report.defaulted.append(key)
            report.notes.append("temporal_embed not in the checkpoint: set to zeros")
        else:
            report.missing.append(key)
    if strict and (report.missing or report.unexpected):
        parts = []
        if report.missing:
            parts.append(f"missing from the checkpoint: {report.missing}")
        if report.unexpected:
            parts.append(f"not used by the model: {report.unexpected}")
        raise CheckpointError(
            f"{source}: the checkpoint does not match the model ({'; '.join(parts)}). Pass strict=False "
            "(CLI: --no-strict) to load what matches and keep the rest at init; the report lists every key."
        )
    model.load_state_dict(updates, strict=False)
    report.loaded = list(updates)
    return report


def load_checkpoint(
    model: AllInOne, path: str | Path, strict: bool = True, trust_pickle: bool = False
) -> CheckpointReport:
    """Load a released ``.ckpt`` or a converted ``.safetensors`` (file or directory) into ``model``."""
    ckpt = read_checkpoint(path, trust_pickle=trust_pickle)
    return _load_file(model, ckpt, strict)


def _load_file(model: AllInOne, ckpt: CheckpointFile, strict: bool, notes: list[str] | None = None) -> CheckpointReport:
    report = CheckpointReport(source=str(ckpt.path), format=ckpt.format, notes=list(notes or []))
    names: dict[str, str] = {}
    if ckpt.format == RELEASED:
        ours, report.ignored, report.unexpected = released_to_ours(ckpt.state, names)
    else:
        ours = ckpt.state
    return load_state(model, ours, str(ckpt.path), ckpt.format, strict, report, names)


def from_checkpoint(
    path: str | Path,
    config: ModelConfig | None = None,
    strict: bool = True,
    shuffle_patches: bool | None = None,
    trust_pickle: bool = False,
    **overrides: Any,
) -> AllInOne:
    """Build a ready (eval-mode) :class:`AllInOne` from a checkpoint; the report is ``model.load_report``.

    Args:
        path: a released ``.ckpt``, a converted ``.safetensors`` or the directory holding it.
        config: the model to build; None infers it from the file (our ``config.json`` / header metadata,
            else tensor shapes, see :func:`infer_config`). For a released file the released behaviour
            (``roll_unimodal=False``; ``use_temporal_embed=False`` when distilled) is applied to it unless
            those fields are given as keywords.
        strict: raise on missing or unexpected keys (see :func:`load_state`).
        shuffle_patches: the released patch permutation. None: on for a released checkpoint (faithful
            evaluation), the recorded config's value for a converted one. False gives deterministic
            outputs equal to the released model's with the permutation left out.
        trust_pickle: allow unpickling arbitrary objects (only for files from a trusted source).
        overrides: :class:`ModelConfig` fields changed after inference (``num_frames=8``,
            ``image_size=288``, ``max_text_len=...``: position embeddings are resampled to fit).

    Example::

        model = from_checkpoint("all-in-one-base.ckpt")
        print(model.load_report)
    """
    ckpt = read_checkpoint(path, trust_pickle=trust_pickle)
    notes: list[str] = []
    ours_for_inference = released_to_ours(ckpt.state)[0] if ckpt.format == RELEASED else ckpt.state
    if config is None:
        if ckpt.config is not None:
            config = ckpt.config.replace(**overrides) if overrides else ckpt.config
        else:
            try:
                config = infer_config(ours_for_inference, ckpt.format == RELEASED, ckpt.hparams, notes, **overrides)
            except CheckpointError as err:
                raise CheckpointError(f"{ckpt.path}: {err}") from None
            notes.insert(0, f"configuration inferred from tensor shapes: {_describe(config)}")
    elif overrides:
        config = config.replace(**overrides)
    if shuffle_patches is not None:
        config = config.replace(shuffle_patches=shuffle_patches)
    elif ckpt.format == RELEASED and not config.shuffle_patches:
        config = config.replace(shuffle_patches=True)
    if ckpt.format == RELEASED:
        # A config given by the user gets the released model's behaviour too, unless a keyword says otherwise.
        faithful = {"roll_unimodal": False, **({"use_temporal_embed": False} if config.distilled else {})}
        changes = {k: v for k, v in faithful.items() if k not in overrides and getattr(config, k) != v}
        if changes:
            config = config.replace(**changes)
            notes.append(f"set {changes} as in the released code (pass them as keywords to keep yours)")
        if config.shuffle_patches:
            notes.append("released patch permutation on (faithful evaluation); shuffle_patches=False turns it off")
    model = AllInOne(config)
    report = _load_file(model, ckpt, strict, notes)
    model.load_report = report
    return model.eval()


def _describe(cfg: ModelConfig) -> str:
    return (
        f"variant={cfg.variant} width={cfg.embed_dim} depth={cfg.num_layers} heads={cfg.num_heads} "
        f"frames={cfg.num_frames} image_size={cfg.image_size} text_len={cfg.max_text_len} "
        f"distilled={cfg.distilled} temporal_embed={cfg.use_temporal_embed}"
    )


# Writing ----------------------------------------------------------------------------------------------
def save_converted(
    model: AllInOne, out_dir: str | Path, source: str | None = None, report: CheckpointReport | None = None
) -> tuple[Path, Path]:
    """Write ``out_dir/model.safetensors`` (our names) and ``out_dir/config.json``, each atomically.

    ``config.json`` holds the :class:`ModelConfig`, the SHA-256 of the weights file and a summary of the
    load report; the safetensors header repeats the config so the weights file also loads alone.

    Returns:
        ``(weights_path, config_path)``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights, config_path = out / WEIGHTS_FILE, out / CONFIG_FILE
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    config_json = json.dumps(model.config.to_dict(), sort_keys=True)
    header = {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION), "model_config": config_json}
    atomic_write_bytes(weights, lambda handle: handle.write(save(state, metadata=header)))
    meta: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "weights": WEIGHTS_FILE,
        "weights_sha256": _sha256(weights),
        "model_config": model.config.to_dict(),
        "source": source,
    }
    if report is not None:
        meta["conversion"] = {
            "format": report.format,
            "loaded": len(report.loaded),
            "resized": report.resized,
            "ignored": report.ignored,
            "defaulted": report.defaulted,
            "heads_at_init": report.heads_at_init,
            "missing": report.missing,
            "unexpected": report.unexpected,
            "notes": report.notes,
        }
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(config_path, lambda handle: handle.write(text.encode()))
    return weights, config_path


def convert_checkpoint(
    src: str | Path,
    out_dir: str | Path,
    strict: bool = True,
    trust_pickle: bool = False,
    shuffle_patches: bool | None = None,
    **overrides: Any,
) -> CheckpointReport:
    """Load ``src`` (see :func:`from_checkpoint`) and write it to ``out_dir`` as safetensors + JSON."""
    model = from_checkpoint(src, strict=strict, shuffle_patches=shuffle_patches, trust_pickle=trust_pickle,
                            **overrides)
    report: CheckpointReport = model.load_report
    save_converted(model, out_dir, source=Path(src).name, report=report)
    return report
