"""Text-to-video attention over token positions (the paper's Fig. 4).

For each text token, its attention weights to the visual tokens of its frame are renormalised to a
distribution over the ``L`` visual positions (0 = video CLS, then the patches in sequence order); these are
averaged over the real text tokens, the frames and the batch, separately per layer and head. In a rolled
block the positions that hold the neighbouring frames' tokens are known (:attr:`AttentionMaps.rolled`);
the paper's observation is that with rolling the text attends more to those positions, and without it
more to the centre of the sequence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..model import AllInOne
from ..model.attention import AttentionMaps, attention_maps


def text_to_video_distribution(maps: AttentionMaps, include_cls: bool = True) -> Tensor:
    """``(layers, heads, L)`` distribution of text-to-video attention over visual positions.

    Each text query's weights to the visual keys are renormalised to sum to 1, then averaged over real text
    tokens (``maps.text_mask``), frames and clips. ``temporal="flatten"`` sees all frames in one sequence:
    its weights are summed over frames per position. ``include_cls=False`` drops the video CLS (position 0)
    before renormalising, leaving ``L - 1`` patch positions.
    """
    if maps.text_len == 0:
        raise ValueError("text_to_video_distribution: the attention maps were recorded without text")
    m, length, frames = maps.text_len, maps.visual_len, maps.frames
    layers = []
    for index in sorted(maps.record.joint):
        weights = maps.record.joint[index].float()
        text_rows = weights[:, :, :m, m:]  # (B*S | B, heads, m, keys)
        if maps.temporal == "flatten":
            batch, heads = text_rows.shape[:2]
            text_rows = text_rows.reshape(batch, heads, m, frames, length)
            text_rows = text_rows.permute(0, 3, 1, 2, 4).reshape(batch * frames, heads, m, length)
        if not include_cls:
            text_rows = text_rows[..., 1:]
        text_rows = text_rows / text_rows.sum(dim=-1, keepdim=True).clamp(min=1e-12)
        batch_frames = text_rows.shape[0]
        if maps.text_mask is None:
            query = torch.ones(batch_frames, m, device=text_rows.device)
        else:
            query = maps.text_mask.float().to(text_rows.device).repeat_interleave(frames, dim=0)
        query = query / query.sum()
        layers.append(torch.einsum("bq,bhqp->hp", query, text_rows))
    return torch.stack(layers).cpu()


def rolled_mask(rolled: Mapping[int, tuple[Tensor, Tensor]], layers: int, length: int,
                include_cls: bool = True) -> Tensor:
    """Boolean ``(layers, L)``: True where a visual position holds a rolled token in that layer."""
    mask = torch.zeros(layers, length, dtype=torch.bool)
    for index, (prev, nxt) in rolled.items():
        if index < layers:
            mask[index, prev] = True
            mask[index, nxt] = True
    return mask if include_cls else mask[:, 1:]


def rolled_share(distribution: Tensor, mask: Tensor) -> Tensor:
    """Attention mass on the rolled positions per layer, ``(layers,)``, from a ``(layers, heads, L)``
    distribution (head-averaged) and a ``(layers, L)`` mask. Layers without rolled positions give NaN."""
    mean = distribution.mean(dim=1)
    share = (mean * mask).sum(dim=-1)
    return torch.where(mask.any(dim=-1), share, torch.full_like(share, float("nan")))


@dataclass
class AttentionProfile:
    """One model's Fig. 4 data: the ``(layers, heads, L)`` distribution and the ``(layers, L)`` rolled mask."""

    label: str
    distribution: Tensor
    rolled: Tensor

    @classmethod
    def from_maps(cls, label: str, maps: AttentionMaps, include_cls: bool = True) -> AttentionProfile:
        dist = text_to_video_distribution(maps, include_cls)
        return cls(label, dist, rolled_mask(maps.rolled, dist.shape[0], maps.visual_len, include_cls))

    def mean(self, layers: Sequence[int] | None = None) -> Tensor:
        """``(L,)`` distribution averaged over heads and the chosen layers (all by default)."""
        chosen = self.distribution if layers is None else self.distribution[list(layers)]
        return chosen.mean(dim=(0, 1))

    def rolled_positions(self, layers: Sequence[int] | None = None) -> Tensor:
        """``(L,)`` True where any of the chosen layers rolls that position."""
        chosen = self.rolled if layers is None else self.rolled[list(layers)]
        return chosen.any(dim=0)


@torch.no_grad()
def attention_profile(model: AllInOne, batches: Iterable[dict[str, Any]], label: str,
                      include_cls: bool = True) -> AttentionProfile:
    """``model``'s Fig. 4 profile averaged over batches of ``video (B, S, C, H, W)``, ``input_ids`` and
    ``attention_mask (B, m)`` (every real text token of every frame weighs the same)."""
    device = next(model.parameters()).device
    total, weight, maps = None, 0.0, None
    for batch in batches:
        mask = batch["attention_mask"]
        maps = attention_maps(model, batch["video"].to(device), batch["input_ids"].to(device), mask.to(device))
        queries = float(mask.sum()) * maps.frames
        dist = text_to_video_distribution(maps, include_cls) * queries
        total = dist if total is None else total + dist
        weight += queries
    if maps is None:
        raise ValueError("attention_profile: no batches")
    dist = total / weight
    return AttentionProfile(label, dist, rolled_mask(maps.rolled, dist.shape[0], maps.visual_len, include_cls))


def plot_attention_profiles(profiles: Sequence[AttentionProfile], layers: Sequence[int] | None = None,
                            title: str | None = None):
    """Side-by-side panels, one per profile (e.g. with and without rolling): top, the distribution over
    visual positions (mean over heads and ``layers``) relative to uniform (1 = ``1/L``), the rolled
    positions in orange; bottom, the per-layer distributions as an image with the rolled positions outlined.

    Returns a matplotlib ``Figure`` (not managed by pyplot).
    """
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if not profiles:
        raise ValueError("plot_attention_profiles: expected at least one profile")
    fig = Figure(figsize=(5.2 * len(profiles), 6.0))
    axes = fig.subplots(2, len(profiles), squeeze=False, gridspec_kw={"height_ratios": [1.2, 1.0]})
    relative = [p.mean(layers) * p.distribution.shape[-1] for p in profiles]  # 1 = uniform
    low = min(float(r.min()) for r in relative)
    high = max(float(r.max()) for r in relative)
    margin = max(0.05 * (high - low), 1e-3)
    for col, profile in enumerate(profiles):
        dist = relative[col].numpy()
        rolled = profile.rolled_positions(layers).numpy()
        positions = np.arange(dist.shape[0])
        ax = axes[0, col]
        ax.bar(positions, dist, width=1.0, color=np.where(rolled, "tab:orange", "tab:blue"), edgecolor="none")
        ax.axhline(1.0, color="black", linestyle="--", linewidth=1, zorder=3)
        handles = [Patch(color="tab:blue", label="other positions")]
        if rolled.any():
            handles.append(Patch(color="tab:orange", label="rolled positions"))
        handles.append(Line2D([], [], color="black", linestyle="--", label="uniform"))
        ax.legend(handles=handles, loc="upper center", fontsize=8, ncol=3)
        ax.set_ylim(min(low - margin, 1.0 - margin), max(high, 1.0) + 4 * margin)
        ax.set_xlim(-0.5, dist.shape[0] - 0.5)
        ax.set_title(profile.label)
        ax.set_xlabel("visual token position (0 = video CLS)")
        ax.set_ylabel("attention / uniform")
        ax = axes[1, col]
        per_layer = profile.distribution.mean(dim=1).numpy()
        image = ax.imshow(per_layer, aspect="auto", interpolation="nearest", cmap="viridis")
        ys, xs = np.nonzero(profile.rolled.numpy())
        ax.scatter(xs, ys, marker="s", s=30, facecolors="none", edgecolors="tab:orange", linewidths=1.2)
        ax.set_yticks(range(per_layer.shape[0]), [str(i + 1) for i in range(per_layer.shape[0])])
        ax.set_xlabel("visual token position (rolled: orange squares)")
        ax.set_ylabel("layer")
        fig.colorbar(image, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
