"""Image-pretrained initialisation from timm ViT/DeiT weights (Table 6).

``init="imagenet"`` / ``"imagenet21k"`` pick a timm pretrained tag per variant and patch size. Weights
come only from local files: ``config.init_file``, else the file timm's hub would give, if it is already
in the local Hugging Face cache. Nothing is ever downloaded while a model is built, so a run on a machine
without internet fails at once with :class:`MissingWeightsError` (which says how to fetch the file)
instead of deep inside a job. Position embeddings are resampled to the configured frame size and the
transfer is reported key by key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
from timm.layers import resample_abs_pos_embed
from torch import nn

from .config import ModelConfig

# (variant, patch size) -> (ImageNet tag, ImageNet-21K tag)
TIMM_TAGS: dict[tuple[str, int], tuple[str, str]] = {
    ("tiny", 16): ("deit_tiny_patch16_224.fb_in1k", "vit_tiny_patch16_224.augreg_in21k"),
    ("small", 16): ("deit_small_patch16_224.fb_in1k", "vit_small_patch16_224.augreg_in21k"),
    ("small", 32): ("vit_small_patch32_224.augreg_in21k_ft_in1k", "vit_small_patch32_224.augreg_in21k"),
    ("base", 16): ("vit_base_patch16_224.augreg2_in21k_ft_in1k", "vit_base_patch16_224.augreg_in21k"),
    ("base", 32): ("vit_base_patch32_224.augreg_in21k_ft_in1k", "vit_base_patch32_224.augreg_in21k"),
    ("large", 16): ("vit_large_patch16_224.augreg_in21k_ft_in1k", "vit_large_patch16_224.augreg_in21k"),
    ("large", 32): ("vit_large_patch32_384.orig_in21k_ft_in1k", "vit_large_patch32_224.orig_in21k"),
}

BACKBONE_PREFIXES = ("cls_token", "dist_token", "pos_embed", "patch_embed.", "blocks.", "norm.")


@dataclass
class LoadReport:
    """What a weight transfer did: keys copied, our keys left at their init, source keys ignored."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)

    def _title(self) -> str:
        return f"weights from {self.source}"

    def _sections(self) -> list[tuple[str, list[str]]]:
        return [("resized", self.resized), ("missing (kept at init)", self.missing),
                ("unexpected (ignored)", self.unexpected)]

    def _notes(self) -> list[str]:
        return []

    def __str__(self) -> str:
        lines = [f"{self._title()}: {len(self.loaded)} tensors loaded"]
        for name, keys in self._sections():
            if keys:
                shown = ", ".join(keys[:8]) + (f", ... (+{len(keys) - 8})" if len(keys) > 8 else "")
                lines.append(f"  {name}: {len(keys)}: {shown}")
        lines.extend(f"  note: {note}" for note in self._notes())
        return "\n".join(lines)


def timm_tag(config: ModelConfig) -> str:
    """The timm pretrained tag for ``config.init`` (``imagenet`` or ``imagenet21k``)."""
    if config.init == "scratch":
        raise ValueError("ModelConfig.init='scratch' has no pretrained weights")
    if config.width is not None or config.depth is not None or config.heads is not None:
        raise ValueError("ImageNet initialisation needs a named variant without width/depth/heads overrides")
    key = (config.variant, config.patch_size)
    if key not in TIMM_TAGS:
        raise ValueError(f"no timm weights for variant={config.variant!r} "
                         f"with patch_size={config.patch_size}; "
                         f"available: {sorted(TIMM_TAGS)}")
    return TIMM_TAGS[key][0 if config.init == "imagenet" else 1]


def image_normalization(config: ModelConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` the backbone's weights expect (timm's pretrained config; 0.5/0.5 from scratch)."""
    if config.init == "scratch":
        return (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    cfg = timm.get_pretrained_cfg(timm_tag(config))
    return tuple(cfg.mean), tuple(cfg.std)


# Local weight files ------------------------------------------------------------------------------------
HUB_FILENAMES: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")  # what timm reads from its hub
WEIGHT_SUFFIXES: tuple[str, ...] = (".safetensors", ".bin", ".pth", ".pt", ".npz")


class MissingWeightsError(FileNotFoundError):
    """No local file holds the timm weights a configuration asks for; nothing is downloaded instead.

    ``tag`` is the timm pretrained tag, ``looked_at`` the places searched, ``command`` the command that
    fetches the file on a machine with internet access.
    """

    def __init__(self, tag: str, looked_at: list[str], variant: str | None = None, init: str | None = None,
                 cache_dir: str | os.PathLike | None = None) -> None:
        self.tag, self.looked_at, self.variant, self.init = tag, list(looked_at), variant, init
        self.cache_dir = str(cache_dir if cache_dir is not None else hf_hub_cache_dir())
        repo = hub_repo_id(tag)
        local = f"weights/{tag}/{HUB_FILENAMES[0]}"
        self.command = f"hf download {repo} {HUB_FILENAMES[0]} --local-dir weights/{tag}"
        what = f"timm tag {tag}"
        if variant is not None or init is not None:
            what = f"variant={variant!r} init={init!r} ({what})"
        lines = [
            f"no local weights for {what}; nothing is downloaded while building a model",
            f"  looked at: {'; '.join(self.looked_at)}",
            f"  fetch on a machine with internet: {self.command}",
            "    (huggingface_hub before 0.34 names the command huggingface-cli download, same arguments)",
            f"  then either: --set model.init_file={local}",
            f"    or copy the cache folder {_cache_folder(repo)} into the Hugging Face cache "
            f"{self.cache_dir}",
        ]
        super().__init__("\n".join(lines))

    def __reduce__(self):  # picklable across processes
        return (MissingWeightsError, (self.tag, self.looked_at, self.variant, self.init, self.cache_dir))


def hub_repo_id(tag: str) -> str:
    """The Hugging Face hub repository timm loads ``tag`` from (its pretrained cfg's ``hf_hub_id``,
    without a ``@revision``), e.g. ``timm/deit_tiny_patch16_224.fb_in1k``."""
    return _hub_id(tag).split("@", 1)[0]


def _hub_id(tag: str) -> str:
    cfg = timm.get_pretrained_cfg(tag)
    return (cfg.hf_hub_id if cfg is not None else None) or f"timm/{tag}"


def hf_hub_cache_dir() -> Path:
    """The Hugging Face hub cache folder, resolved now from the environment with huggingface_hub's rules:
    ``HF_HUB_CACHE``, else the legacy ``HUGGINGFACE_HUB_CACHE``, else ``HF_HOME/hub``, else
    ``$XDG_CACHE_HOME/huggingface/hub`` (``~/.cache`` by default). Resolved at call time, not at import,
    so a variable set by a launcher or a test takes effect."""

    def expand(value: str) -> Path:
        return Path(os.path.expandvars(os.path.expanduser(value)))

    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return expand(os.environ[name])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return expand(home) / "hub"


def _cache_folder(repo: str) -> str:
    return "models--" + repo.replace("/", "--")


def cached_hub_file(tag: str, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The weight file of ``tag`` in the local Hugging Face cache (``model.safetensors`` first, then
    ``pytorch_model.bin``, at the cached ``main`` revision or the hub id's ``@revision``), or None.
    Reads the cache only; never contacts the hub."""
    from huggingface_hub import try_to_load_from_cache

    repo, _, revision = _hub_id(tag).partition("@")
    cache = Path(cache_dir) if cache_dir is not None else hf_hub_cache_dir()
    for filename in HUB_FILENAMES:
        found = try_to_load_from_cache(repo, filename, cache_dir=str(cache), revision=revision or None)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def _looked_at(config: ModelConfig, tag: str) -> list[str]:
    cache = hf_hub_cache_dir()
    if config.init_file:
        return [f"ModelConfig.init_file={config.init_file!r} (no such file)"]
    return ["ModelConfig.init_file (not set)",
            f"Hugging Face cache {cache / _cache_folder(hub_repo_id(tag))} ({' or '.join(HUB_FILENAMES)})"]


def find_init_weights(config: ModelConfig) -> Path | None:
    """The local file to initialise ``config``'s backbone from, or None when there is none (or for
    ``init="scratch"``, which needs none).

    ``config.init_file`` when set (it must exist: an explicit file that is missing is not replaced by
    another one); else the weights of the timm tag in the local Hugging Face cache. Raises ValueError
    when the configuration has no timm tag (overridden width/depth/heads, an unsupported patch size).
    """
    if config.init == "scratch":
        return None
    tag = timm_tag(config)
    if config.init_file:
        path = Path(config.init_file).expanduser()
        return path if path.is_file() else None
    return cached_hub_file(tag)


def require_init_weights(config: ModelConfig) -> Path:
    """:func:`find_init_weights`, raising :class:`MissingWeightsError` (with the fetch command) when no
    local file exists. ``init="scratch"`` has nothing to require: ValueError."""
    tag = timm_tag(config)
    path = find_init_weights(config)
    if path is None:
        raise MissingWeightsError(tag, _looked_at(config, tag), variant=config.variant, init=config.init)
    return path


def _file_problems(path: Path, config: ModelConfig) -> list[str]:
    """Cheap checks of a found weight file: readable, non-empty, and (safetensors: from the header only) a
    timm ViT of the configured width, patch size and channels."""
    where = f"init weights {str(path)!r}"
    try:
        size = path.stat().st_size
    except OSError as error:
        return [f"{where}: cannot be read ({error.strerror or error})"]
    if size == 0:
        return [f"{where}: file is empty (0 bytes); fetch it again"]
    if not os.access(path, os.R_OK):
        return [f"{where}: not readable by this user; fix its permissions"]
    if path.suffix not in WEIGHT_SUFFIXES:
        return [f"{where}: unknown weight format {path.suffix!r}; expected one of {list(WEIGHT_SUFFIXES)}"]
    if path.suffix != ".safetensors":
        return []
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            keys = set(handle.keys())
            shape = list(handle.get_slice("patch_embed.proj.weight").get_shape()) \
                if "patch_embed.proj.weight" in keys else None
    except Exception as error:  # truncated header, not a safetensors file
        return [f"{where}: not a readable safetensors file ({type(error).__name__}: {error}); fetch it again"]
    if shape is None:
        return [f"{where}: has no 'patch_embed.proj.weight', so it is not a timm ViT/DeiT state dict"]
    expected = [config.embed_dim, config.in_chans, config.patch_size, config.patch_size]
    if shape != expected:
        return [f"{where}: patch_embed.proj.weight has shape {shape}, variant={config.variant!r} "
                f"patch_size={config.patch_size} expects {expected}; it holds the weights of another model"]
    return []


def check_init_weights(config: ModelConfig) -> list[str]:
    """Problems that would stop ``config``'s backbone initialisation, as readable strings (empty when it
    will work or for ``init="scratch"``). Never raises: meant for checks before a long run starts."""
    if config.init == "scratch":
        return []
    try:
        tag = timm_tag(config)
    except ValueError as error:
        return [f"model init={config.init!r}: {error}"]
    try:
        path = find_init_weights(config)
        if path is None:
            return [str(MissingWeightsError(tag, _looked_at(config, tag), variant=config.variant,
                                            init=config.init))]
        return _file_problems(path, config)
    except Exception as error:  # a broken cache or config must still come back as a problem
        return [f"model init={config.init!r} (timm tag {tag}): weights could not be checked "
                f"({type(error).__name__}: {error})"]


def write_timm_weights(tag: str, path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a weight file in the exact format timm's hub serves for ``tag`` (the full model's state dict
    as safetensors, classifier head included) but with RANDOM weights: ``timm.create_model(tag,
    pretrained=False)`` initialised from ``seed``. For tests and dress rehearsals, so that the local-file
    loading path runs end to end without a download; never a substitute for the pretrained weights.

    ``path`` must end with ``.safetensors``; parent folders are created and the file is written to a
    temporary name then moved into place. Returns the path.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"write_timm_weights: path {str(path)!r} must end with .safetensors")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = timm.create_model(tag, pretrained=False).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp),
                  metadata={"format": "pt", "timm_tag": tag,
                            "weights": f"random (seed {seed}), not pretrained"})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def timm_state_dict(tag: str, file: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The backbone weights of a timm model, read from a local file only: ``file`` (a timm
    ``.safetensors``/``.bin``/``.pth`` state dict, or an original ``.npz``) or, when None, the tag's file in
    the local Hugging Face cache. Raises :class:`MissingWeightsError` when there is none; never downloads.
    """
    if file is not None:
        path = Path(file).expanduser()
        if not path.is_file():
            raise MissingWeightsError(tag, [f"init_file {str(path)!r} (no such file)"])
    else:
        path = cached_hub_file(tag)
        if path is None:
            cache = hf_hub_cache_dir() / _cache_folder(hub_repo_id(tag))
            raise MissingWeightsError(tag, [f"Hugging Face cache {cache} ({' or '.join(HUB_FILENAMES)})"])
    # A file source makes timm read that file and nothing else; custom_load selects its .npz reader.
    overlay = {"file": str(path), "custom_load": path.suffix == ".npz"}
    model = timm.create_model(tag, pretrained=True, pretrained_cfg_overlay=overlay, num_classes=0)
    return {k: v for k, v in model.state_dict().items() if k.startswith(BACKBONE_PREFIXES)}


def load_backbone_weights(model: nn.Module, state: dict[str, torch.Tensor],
                          source: str = "state dict") -> LoadReport:
    """Copy ViT/DeiT backbone tensors (timm names) into ``model``, resampling position embeddings.

    Our backbone keys absent from ``state`` are reported as missing; source keys we have no place for
    (classifier heads, ...) as unexpected. Shape mismatches other than the position grid raise.
    """
    cfg: ModelConfig = model.config
    ours = model.state_dict()
    report = LoadReport(source=source)
    updates: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key not in ours:
            report.unexpected.append(key)
            continue
        if key == "pos_embed" and value.shape != ours[key].shape:
            value = _resample_pos_embed(value, cfg)
            report.resized.append(key)
        if value.shape != ours[key].shape:
            raise ValueError(f"{source}: {key} has shape {tuple(value.shape)}, "
                             f"the model expects {tuple(ours[key].shape)}")
        updates[key] = value
        report.loaded.append(key)
    report.missing = [k for k in ours if k.startswith(BACKBONE_PREFIXES) and k not in updates]
    model.load_state_dict(updates, strict=False)
    return report


def _resample_pos_embed(pos: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    prefix = cfg.num_prefix_tokens
    old = int(round((pos.shape[1] - prefix) ** 0.5))
    if old * old + prefix != pos.shape[1]:
        raise ValueError(f"pos_embed of {pos.shape[1]} tokens is not {prefix} prefix token(s) "
                         "+ a square grid")
    return resample_abs_pos_embed(pos, new_size=[cfg.grid_size] * 2, old_size=[old, old],
                                  num_prefix_tokens=prefix)


def initialize_from_timm(model: nn.Module, file: str | Path | None = None) -> LoadReport:
    """Initialise ``model``'s backbone as ``model.config.init`` says (no-op report for ``scratch``).

    Weights come from ``file``, else :func:`find_init_weights` (``config.init_file`` or the local Hugging
    Face cache); :class:`MissingWeightsError` when neither exists. Nothing is downloaded.
    """
    cfg: ModelConfig = model.config
    if cfg.init == "scratch":
        return LoadReport(source="scratch")
    tag = timm_tag(cfg)
    if file is None:
        path = require_init_weights(cfg)
    else:
        path = Path(file).expanduser()
        if not path.is_file():
            raise MissingWeightsError(tag, [f"init_file {str(path)!r} (no such file)"], variant=cfg.variant,
                                      init=cfg.init)
    state = timm_state_dict(tag, path)
    return load_backbone_weights(model, state, source=f"{tag} ({path})")
