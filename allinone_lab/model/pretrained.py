"""Image-pretrained initialisation from timm ViT/DeiT weights (Table 6).

``init="imagenet"`` / ``"imagenet21k"`` pick a timm pretrained tag per variant and patch size. Weights
come from a local file (offline: ``config.init_file``) or from timm's hub (online). Position embeddings
are resampled to the configured frame size and the transfer is reported key by key.
"""

from __future__ import annotations

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
        raise ValueError(f"no timm weights for variant={config.variant!r} with patch_size={config.patch_size}; "
                         f"available: {sorted(TIMM_TAGS)}")
    return TIMM_TAGS[key][0 if config.init == "imagenet" else 1]


def image_normalization(config: ModelConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` the backbone's weights expect (timm's pretrained config; 0.5/0.5 from scratch)."""
    if config.init == "scratch":
        return (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    cfg = timm.get_pretrained_cfg(timm_tag(config))
    return tuple(cfg.mean), tuple(cfg.std)


def timm_state_dict(tag: str, file: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The backbone weights of a timm model: from ``file`` (a timm ``.pth``/``.bin``/``.safetensors``
    state dict, offline) or from timm's hub when ``file`` is None."""
    overlay = None
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise FileNotFoundError(f"init_file {str(path)!r} does not exist")
        overlay = {"file": str(path)}
    model = timm.create_model(tag, pretrained=True, pretrained_cfg_overlay=overlay, num_classes=0)
    return {k: v for k, v in model.state_dict().items() if k.startswith(BACKBONE_PREFIXES)}


def load_backbone_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str = "state dict") -> LoadReport:
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
            raise ValueError(f"{source}: {key} has shape {tuple(value.shape)}, the model expects {tuple(ours[key].shape)}")
        updates[key] = value
        report.loaded.append(key)
    report.missing = [k for k in ours if k.startswith(BACKBONE_PREFIXES) and k not in updates]
    model.load_state_dict(updates, strict=False)
    return report


def _resample_pos_embed(pos: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    prefix = cfg.num_prefix_tokens
    old = int(round((pos.shape[1] - prefix) ** 0.5))
    if old * old + prefix != pos.shape[1]:
        raise ValueError(f"pos_embed of {pos.shape[1]} tokens is not {prefix} prefix token(s) + a square grid")
    return resample_abs_pos_embed(pos, new_size=[cfg.grid_size] * 2, old_size=[old, old], num_prefix_tokens=prefix)


def initialize_from_timm(model: nn.Module, file: str | Path | None = None) -> LoadReport:
    """Initialise ``model``'s backbone as ``model.config.init`` says (no-op report for ``scratch``)."""
    cfg: ModelConfig = model.config
    if cfg.init == "scratch":
        return LoadReport(source="scratch")
    tag = timm_tag(cfg)
    file = file if file is not None else cfg.init_file
    state = timm_state_dict(tag, file)
    return load_backbone_weights(model, state, source=f"{tag} ({file or 'hub'})")
