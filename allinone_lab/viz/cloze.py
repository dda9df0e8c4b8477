"""Cloze with optimal transport (the paper's Fig. 6).

Given a clip and its caption: mask chosen words (nouns and verbs by default, see :mod:`.words`), predict
each with the MLM head (top-k with probabilities), and align each masked word with the patches by optimal
transport between the caption's token features and the patch features (cosine cost,
:func:`allinone_lab.ot.transport_plan`: IPOT by default, POT's ``emd`` or ``sinkhorn``). A masked word's
row of the plan, normalised, is its distribution over patches; entries above a threshold are overlaid on
the frames.

Patch features are taken in the frame each token came from: token rolling permutes tokens across frames and
the permutation persists to the output (:func:`frame_patches`). Transport runs between all real caption
tokens (``[MASK]`` included; ``[CLS]``, ``[SEP]`` and padding excluded) and the patches, with uniform
marginals. With a single word the plan would be uniform whatever the features: the other words compete for
the patches. ``scope="frame"`` solves one problem per frame (each frame's patches; every frame's map sums to
1), ``scope="clip"`` one problem over all frames' patches.

The features are those of the backbone's output by default; ``layer`` reads another block's output (through
the final norm, every patch put back in its frame: :func:`layer_features`).

Measurement (the corpus knows where each object is): :func:`mass_in_mask` is the fraction of a plan's mass
inside an object's mask, per frame; :func:`uniform_mass_in_mask` the same for a uniform plan (the object's
area share), the baseline; :func:`item_measure` both per frame and in how many frames the word beats the
baseline; :func:`cloze_alignment` over corpus items, :func:`layer_alignment` for every block's features.

Pictures (:func:`draw_heatmaps`): each frame dimmed and in grey, the word's mass in one sequential colour map
with opacity growing with the mass, the object's mask outlined, the share inside it against the uniform
plan's under each frame. Every title, label and note is drawn through :func:`.glyphs.plot_text`: a character
the plotting font cannot draw is written as its code point (``U+4E2D``). Example items are chosen in the open
(:func:`typical_items`: the median item of each kind, with its rank).

Shapes: text features ``(B, m, D)``, patch features ``(B, S, N, D)``, plans ``(..., S, N)`` on a
``(gh, gw)`` patch grid, object masks ``(S, H, W)``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import load_tokenizer
from ..model import AllInOne, AllInOneOutput, restore_frame_order
from ..ot import cosine_cost, transport_plan
from .glyphs import plot_text, readable_text
from .sources import Clip
from .words import is_default_cloze_word, word_class, word_kind

SCOPES: tuple[str, ...] = ("frame", "clip")


# Captions and words ---------------------------------------------------------------------------------------
@dataclass
class Word:
    """One word of a caption: its text, the positions of its WordPiece tokens, its class and corpus kind."""

    index: int
    text: str
    pieces: tuple[int, ...]
    word_class: str
    kind: str | None


@dataclass
class EncodedCaption:
    """A caption tokenised to the model's length: ``input_ids``/``attention_mask (L,)`` and its words."""

    text: str
    input_ids: Tensor
    attention_mask: Tensor
    words: list[Word]

    def word_texts(self) -> list[str]:
        return [w.text for w in self.words]


def encode_caption(caption: str, max_len: int, tokenizer: Any = None) -> EncodedCaption:
    """Tokenise ``caption`` (``[CLS] ... [SEP]``, padded to ``max_len``) and group pieces into words.

    Words truncated away entirely are dropped; a word cut in the middle keeps its remaining pieces.
    """
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError(f"caption={caption!r}: expected a non-empty string")
    tok = tokenizer if tokenizer is not None else load_tokenizer()
    enc = tok(caption, max_length=max_len, truncation=True, padding="max_length", return_offsets_mapping=True)
    pieces: dict[int, list[int]] = {}
    for position, word_id in enumerate(enc.word_ids()):
        if word_id is not None:
            pieces.setdefault(word_id, []).append(position)
    words = []
    for word_id in sorted(pieces):
        positions = pieces[word_id]
        start, end = enc["offset_mapping"][positions[0]][0], enc["offset_mapping"][positions[-1]][1]
        text = caption[start:end]
        words.append(Word(len(words), text, tuple(positions), word_class(text), word_kind(text)))
    return EncodedCaption(caption, torch.tensor(enc["input_ids"]), torch.tensor(enc["attention_mask"]), words)


def select_words(caption: EncodedCaption, words: Iterable[str | int] | None = None) -> list[int]:
    """Indices of the words to mask: by default the nouns and verbs; else the given words (every occurrence
    of a text, case-insensitive) or word indices.

    Raises:
        ValueError: a word that is not in the caption, or an index out of range.
    """
    if words is None:
        return [w.index for w in caption.words if is_default_cloze_word(w.text)]
    chosen: set[int] = set()
    for item in words:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not 0 <= int(item) < len(caption.words):
                raise ValueError(f"word index {item}: caption has {len(caption.words)} words {caption.word_texts()}")
            chosen.add(int(item))
            continue
        hits = [w.index for w in caption.words if w.text.lower() == str(item).lower()]
        if not hits:
            raise ValueError(f"word {item!r} is not in the caption; its words are {caption.word_texts()}")
        chosen.update(hits)
    return sorted(chosen)


def mask_caption(caption: EncodedCaption, indices: Sequence[int], mask_id: int) -> Tensor:
    """``(L,)`` ids with every piece of the chosen words replaced by ``mask_id``."""
    ids = caption.input_ids.clone()
    for index in indices:
        ids[list(caption.words[index].pieces)] = mask_id
    return ids


# Predictions ----------------------------------------------------------------------------------------------
@dataclass
class WordPrediction:
    """The MLM head's guesses for one masked word: per piece, ``top_k`` ``(token, probability)`` pairs in
    descending probability."""

    word: Word
    candidates: list[list[tuple[str, float]]]

    @property
    def top(self) -> str:
        """The most probable word (top pieces joined, ``##`` continuations merged)."""
        text = ""
        for piece in self.candidates:
            token = piece[0][0]
            if token.startswith("##") and text:
                text += token[2:]
            else:
                text += " " + token if text else token
        return text

    @property
    def probability(self) -> float:
        """Probability of the top word (product over its pieces)."""
        return float(np.prod([piece[0][1] for piece in self.candidates]))

    @property
    def correct(self) -> bool:
        return self.top == self.word.text.lower()


def top_k_tokens(logits: Tensor, positions: Sequence[int], k: int, tokenizer: Any) -> list[list[tuple[str, float]]]:
    """Top-``k`` ``(token, probability)`` at each position of ``logits (L, vocab)``, sorted by probability."""
    if k < 1:
        raise ValueError(f"top_k={k}: expected an integer >= 1")
    probs = logits[list(positions)].float().softmax(dim=-1)
    values, ids = probs.topk(min(k, probs.shape[-1]), dim=-1)
    return [[(tokenizer.convert_ids_to_tokens(int(i)), float(p)) for p, i in zip(vals, row, strict=True)]
            for vals, row in zip(values.cpu(), ids.cpu(), strict=True)]


# Transport ------------------------------------------------------------------------------------------------
def source_tokens(input_ids: Tensor, attention_mask: Tensor, cls_id: int, sep_id: int) -> Tensor:
    """Boolean ``(B, m)``: the real caption tokens that take part in transport (``[MASK]`` included,
    ``[CLS]``, ``[SEP]`` and padding excluded)."""
    return attention_mask.bool() & (input_ids != cls_id) & (input_ids != sep_id)


def frame_patches(model: AllInOne, output: AllInOneOutput) -> Tensor:
    """``(B, S, N, D)``: each frame's patch features from a joint forward pass, every token in the frame it
    came from (token rolling leaves rolled tokens in other frames' slots; see :meth:`AllInOne.token_origins`)."""
    tokens = output.video_frame_tokens
    origins = model.token_origins(tokens.shape[1], with_text=output.text_tokens is not None,
                                  num_visual=tokens.shape[2])  # fmt: skip
    if len(origins):
        tokens = restore_frame_order(tokens, origins[-1])
    return tokens[:, :, model.config.num_prefix_tokens :]


def resolve_layer(model: AllInOne, layer: int | None) -> int:
    """The block whose output the transport reads, 1-based: ``None`` or ``-1`` is the last block (the
    backbone's output), ``-2`` the one before, and so on."""
    depth = len(model.blocks)
    if layer is None:
        return depth
    chosen = int(layer) + depth + 1 if int(layer) < 0 else int(layer)
    if not 1 <= chosen <= depth:
        raise ValueError(f"layer={layer!r}: the model has blocks 1..{depth} (or -1..-{depth} from the top)")
    return chosen


@torch.no_grad()
def layer_features(model: AllInOne, video: Tensor, ids: Tensor, attention_mask: Tensor,
                   layers: Iterable[int | None] = (None,)) -> tuple[AllInOneOutput, dict[int, tuple[Tensor, Tensor]]]:
    """One joint forward pass and, for each requested block (see :func:`resolve_layer`), the caption's token
    features ``(B, m, D)`` (averaged over frames as the model averages its output) and each frame's patch
    features ``(B, S, N, D)`` at that block's output, through the final norm, every patch token put back in
    the frame it came from (the permutation token rolling has made up to that block).

    The last block's features are the backbone's output (``output.text_tokens`` and
    :func:`frame_patches`). Returns the output and ``{block: (text, patches)}``.
    """
    depth = len(model.blocks)
    wanted = sorted({resolve_layer(model, layer) for layer in layers})
    captured: dict[int, Tensor] = {}
    handles = [model.blocks[block - 1].register_forward_hook(
        lambda module, args, result, block=block: captured.__setitem__(block, result)) for block in wanted]
    try:
        output = model(video, ids, attention_mask, shuffle_patches=False)
    finally:
        for handle in handles:
            handle.remove()
    batch, frames, length = video.shape[0], video.shape[1], ids.shape[1]
    prefix = model.config.num_prefix_tokens
    features: dict[int, tuple[Tensor, Tensor]] = {}
    for block in wanted:
        if block == depth:
            features[block] = (output.text_tokens, frame_patches(model, output))
            continue
        x = model.norm(captured[block])
        if x.shape[0] == batch * frames:  # one sequence per frame: [text ; visual]
            x = x.view(batch, frames, x.shape[1], x.shape[2])
            text, visual = x[:, :, :length].mean(dim=1), x[:, :, length:]
            origins = model.token_origins(frames, with_text=True, num_visual=visual.shape[2])
            if len(origins):
                visual = restore_frame_order(visual, origins[block - 1])
        else:  # one sequence per clip: [text ; frame 1 ; frame 2 ; ...]
            text, visual = x[:, :length], x[:, length:].reshape(batch, frames, -1, x.shape[-1])
        features[block] = (text, visual[:, :, prefix:])
    return output, features


@torch.no_grad()
def word_patch_plans(text_tokens: Tensor, sources: Tensor, frame_patches: Tensor, solver: str = "ipot",
                     scope: str = "frame", **solver_kwargs: Any) -> Tensor:
    """Each caption token's transport distribution over the patches, ``(B, m, S, N)`` in fp32.

    Args:
        text_tokens: ``(B, m, D)`` token features of the joint forward pass.
        sources: ``(B, m)`` bool, the tokens that take part (see :func:`source_tokens`).
        frame_patches: ``(B, S, N, D)`` patch features of every frame.
        solver: ``ipot`` | ``emd`` | ``sinkhorn`` (:func:`allinone_lab.ot.transport_plan`).
        scope: ``frame`` (one problem per frame; each frame's row sums to 1) or ``clip`` (one problem over
            all frames' patches; the whole row sums to 1).

    Rows of tokens outside ``sources`` are zero.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope={scope!r}: expected one of {list(SCOPES)}")
    batch, frames, patches, dim = frame_patches.shape
    sources = sources.bool()
    if scope == "frame":
        words = text_tokens.repeat_interleave(frames, dim=0)
        cost = cosine_cost(words, frame_patches.reshape(batch * frames, patches, dim))
        plan = transport_plan(cost, sources.repeat_interleave(frames, dim=0), None, solver=solver, **solver_kwargs)
        plan = plan.reshape(batch, frames, -1, patches).permute(0, 2, 1, 3)  # (B, m, S, N)
        total = plan.sum(dim=-1, keepdim=True)
    else:
        cost = cosine_cost(text_tokens, frame_patches.reshape(batch, frames * patches, dim))
        plan = transport_plan(cost, sources, None, solver=solver, **solver_kwargs).reshape(batch, -1, frames, patches)
        total = plan.sum(dim=(-2, -1), keepdim=True)
    return (plan / total.clamp(min=1e-30)) * sources[:, :, None, None]


def word_plan(plans: Tensor, pieces: Sequence[int], scope: str = "frame") -> Tensor:
    """One word's ``(S, N)`` distribution from a caption's ``(m, S, N)`` token plans (its pieces summed and
    renormalised per frame or over the clip, as ``scope``)."""
    rows = plans[list(pieces)].sum(dim=0)
    total = rows.sum(dim=-1, keepdim=True) if scope == "frame" else rows.sum()
    return rows / total.clamp(min=1e-30)


def threshold_plan(plan: Tensor, threshold: float) -> Tensor:
    """Keep the entries of each word's ``(..., S, N)`` plan at or above ``threshold`` times its largest
    entry (over all frames); zero the rest. ``threshold`` in [0, 1]."""
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold={threshold!r}: expected a fraction in [0, 1] of the word's largest entry")
    peak = plan.amax(dim=(-2, -1), keepdim=True)
    return torch.where(plan >= threshold * peak, plan, torch.zeros_like(plan))


# Masks ----------------------------------------------------------------------------------------------------
def patch_coverage(object_masks: Tensor, num_patches: int) -> Tensor:
    """Fraction of each patch's pixels inside the mask: ``(S, H, W)`` bool -> ``(S, N)`` (raster order).

    The patch grid is inferred from ``num_patches`` and the frame size (square patches).
    """
    if object_masks.ndim != 3:
        raise ValueError(f"object_masks: expected (S, H, W), got shape {tuple(object_masks.shape)}")
    height, width = object_masks.shape[-2:]
    patch = int(round((height * width / num_patches) ** 0.5))
    if patch < 1 or (height // patch) * (width // patch) != num_patches or height % patch or width % patch:
        raise ValueError(f"object_masks of {height}x{width} px do not tile into {num_patches} square patches")
    cover = F.avg_pool2d(object_masks.float()[:, None], kernel_size=patch)[:, 0]
    return cover.flatten(1)


def mass_in_mask(plan: Tensor, object_masks: Tensor) -> Tensor:
    """Fraction of the transport mass inside the object's mask, per frame: ``(..., S, N)`` plan and
    ``(S, H, W)`` boolean masks -> ``(..., S)``.

    Each patch's mass is spread evenly over its pixels, so a patch half inside the mask counts half.
    Frames where the plan has no mass give NaN.
    """
    cover = patch_coverage(object_masks, plan.shape[-1]).to(plan.device)
    plan = plan.float()
    inside = (plan * cover).sum(dim=-1)
    total = plan.sum(dim=-1)
    return torch.where(total > 0, inside / total.clamp(min=1e-30), torch.full_like(total, float("nan")))


def uniform_mass_in_mask(object_masks: Tensor, num_patches: int) -> Tensor:
    """The baseline: :func:`mass_in_mask` of a uniform plan, i.e. the object's share of each frame, ``(S,)``."""
    return patch_coverage(object_masks, num_patches).mean(dim=-1)


# One clip -------------------------------------------------------------------------------------------------
@dataclass
class ClozeResult:
    """Predictions and alignment maps for one clip and caption.

    Attributes:
        caption: the encoded caption; ``masked`` the indices of its masked words.
        predictions: one :class:`WordPrediction` per masked word.
        plans: ``(n_masked, S, N)`` each masked word's transport distribution over the patches.
        grid: ``(gh, gw)`` patch grid; ``frames`` uint8 ``(S, H, W, 3)``.
        clip: the clip (its object masks when it comes from the corpus).
    """

    caption: EncodedCaption
    masked: list[int]
    predictions: list[WordPrediction]
    plans: Tensor
    grid: tuple[int, int]
    frames: np.ndarray
    clip: Clip
    scope: str = "frame"
    solver: str = "ipot"
    layer: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def mass_in_mask(self, label: int = 1) -> Tensor:
        """``(n_masked, S)`` fraction of each word's mass inside object ``label``'s mask."""
        return mass_in_mask(self.plans, self.clip.object_mask(label))

    def uniform_mass_in_mask(self, label: int = 1) -> Tensor:
        return uniform_mass_in_mask(self.clip.object_mask(label), self.plans.shape[-1])


@torch.no_grad()
def run_cloze(model: AllInOne, clip: Clip, caption: str | None = None, words: Iterable[str | int] | None = None,
              top_k: int = 5, solver: str = "ipot", scope: str = "frame", tokenizer: Any = None,
              layer: int | None = None, **solver_kwargs: Any) -> ClozeResult:
    """Mask words of ``caption`` (default: the clip's), predict them, align them with the patches.

    Args:
        model: any :class:`AllInOne` (run in eval mode, patches in raster order).
        clip: the clip; its video must match the model's frame size.
        words: words or word indices to mask; None masks the nouns and verbs.
        top_k: candidates per masked piece.
        solver, scope, solver_kwargs: see :func:`word_patch_plans`.
        layer: the block whose output features are transported (:func:`resolve_layer`; None: the last).
    """
    tok = tokenizer if tokenizer is not None else load_tokenizer()
    caption = clip.caption if caption is None else caption
    encoded = encode_caption(caption, model.config.max_text_len, tok)
    masked = select_words(encoded, words)
    ids = mask_caption(encoded, masked, tok.mask_token_id)
    device = next(model.parameters()).device
    model.eval()
    block = resolve_layer(model, layer)
    out, features = layer_features(model, clip.video[None].to(device), ids[None].to(device),
                                   encoded.attention_mask[None].to(device), [block])  # fmt: skip
    logits = model.mlm_logits(out)[0]
    predictions = [WordPrediction(encoded.words[i], top_k_tokens(logits, encoded.words[i].pieces, top_k, tok))
                   for i in masked]  # fmt: skip
    text, patches = features[block]
    sources = source_tokens(ids[None], encoded.attention_mask[None], tok.cls_token_id, tok.sep_token_id)
    plans = word_patch_plans(text, sources.to(device), patches, solver, scope, **solver_kwargs)[0]
    frames, height, width = clip.video.shape[0], clip.video.shape[-2], clip.video.shape[-1]
    grid = (height // model.config.patch_size, width // model.config.patch_size)
    word_plans = torch.stack([word_plan(plans, encoded.words[i].pieces, scope) for i in masked]) if masked else \
        torch.zeros(0, frames, patches.shape[2])
    return ClozeResult(caption=encoded, masked=masked, predictions=predictions, plans=word_plans.cpu(),
                       grid=grid, frames=clip.frames, clip=clip, scope=scope, solver=solver, layer=block)


@dataclass
class HeatmapRow:
    """One row of a heatmap figure: a clip's frames uint8 ``(S, H, W, 3)``, a word's ``(S, N)`` plan on a
    ``grid``, the row's title and label, optionally the object masks ``(S, H, W)`` to outline and measure
    against, and a note printed beside the row (how the example was chosen)."""

    frames: np.ndarray
    plan: Tensor | None
    grid: tuple[int, int]
    title: str = ""
    label: str = ""
    correct: bool | None = None
    mask: np.ndarray | None = None
    note: str = ""


HEAT_CMAP = "magma"
OUTLINE_COLOUR = "#00e5ff"
MASS_LABEL = "share of the word's transport mass"


def dimmed_grey(frame: np.ndarray, low: float = 0.1, high: float = 0.5) -> np.ndarray:
    """A uint8 ``(H, W, 3)`` frame as dim grey, float ``(H, W)`` in ``[low, high]`` (luminance rescaled): the
    clip stays readable underneath while its colours and texture cannot be mistaken for heat."""
    pixels = np.asarray(frame, dtype=np.float32) / 255.0
    luminance = pixels[..., 0] * 0.299 + pixels[..., 1] * 0.587 + pixels[..., 2] * 0.114
    return low + (high - low) * luminance


def heat_rgba(heat: np.ndarray, vmax: float, cmap: Any, alpha: float, keep: np.ndarray | None = None) -> np.ndarray:
    """``(gh, gw)`` mass -> ``(gh, gw, 4)`` RGBA: colour from ``cmap`` on ``[0, vmax]``, opacity proportional
    to the mass (``alpha`` at ``vmax``), fully transparent where ``keep`` is False or the mass is ~0."""
    level = np.clip(np.asarray(heat, dtype=np.float64) / max(float(vmax), 1e-12), 0.0, 1.0)
    rgba = np.array(cmap(level), dtype=np.float64)
    opacity = alpha * level
    if keep is not None:
        opacity = np.where(keep, opacity, 0.0)
    rgba[..., 3] = np.where(level > 1e-3, opacity, 0.0)
    return rgba


def draw_heatmaps(rows: Sequence[HeatmapRow], threshold: float = 0.3, frames: Sequence[int] | None = None,
                  alpha: float = 0.95, cmap: str = HEAT_CMAP, panel_size: float = 2.2, outline: str = OUTLINE_COLOUR,
                  colorbar: bool = True):
    """A grid of frames (columns) by rows, drawn so that heat and clip separate.

    Each frame is shown dimmed and in grey; the row's plan is overlaid with one sequential colour map
    (``cmap``) whose opacity grows with the mass, on one scale for the whole figure (the colour bar, labelled
    "share of the word's transport mass", marks the uniform plan's share of a patch); entries below
    ``threshold`` of the row's peak (:func:`threshold_plan`) are left out. The object's true mask is outlined
    in ``outline``, and under each frame is the share of the word's mass inside it against the uniform
    plan's. A row's ``note`` is printed beside it. Titles, labels and notes are drawn in their readable form
    (:func:`.glyphs.plot_text`: characters the font lacks as code points, ``$`` as itself). Returns a
    matplotlib ``Figure`` (not managed by pyplot, so notebooks show it once); its first
    ``len(rows) * len(frames)`` axes are the frames, row by row.
    """
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    if not rows:
        raise ValueError("draw_heatmaps: expected at least one row")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold={threshold!r}: expected a fraction in [0, 1] of the word's largest entry")
    count = rows[0].frames.shape[0]
    chosen = list(range(count)) if frames is None else [int(f) for f in frames]
    for f in chosen:
        if not 0 <= f < count:
            raise ValueError(f"frame {f}: the clip has frames 0..{count - 1}")
    colours = matplotlib.colormaps[cmap]
    plans = [None if row.plan is None else row.plan.float() for row in rows]
    peaks = [float(p[chosen].max()) for p in plans if p is not None and p.numel()]
    vmax = max(peaks) if peaks and max(peaks) > 0 else 1.0
    notes = any(row.note for row in rows)
    width_ratios = [1.0] * len(chosen) + ([1.25] if notes else [])
    fig = Figure(figsize=(panel_size * sum(width_ratios) + (1.0 if colorbar else 0.3), (panel_size + 0.55) * len(rows)
                          + 0.3), layout="constrained")  # fmt: skip
    grid = fig.add_gridspec(len(rows), len(width_ratios), width_ratios=width_ratios)
    axes = np.empty((len(rows), len(chosen)), dtype=object)
    for r in range(len(rows)):  # the frames first, so that fig.axes[r * frames + col] is a frame panel
        for col in range(len(chosen)):
            axes[r, col] = fig.add_subplot(grid[r, col])
    for r, (row, plan) in enumerate(zip(rows, plans, strict=True)):
        height, width = row.frames.shape[1:3]
        keep = None if plan is None else threshold_plan(plan, threshold) > 0
        inside = uniform = None
        if plan is not None and row.mask is not None:
            mask = torch.as_tensor(np.asarray(row.mask)).bool()
            inside, uniform = mass_in_mask(plan, mask), uniform_mass_in_mask(mask, plan.shape[-1])
        for col, f in enumerate(chosen):
            ax = axes[r, col]
            ax.imshow(dimmed_grey(row.frames[f]), cmap="gray", vmin=0.0, vmax=1.0, extent=(0, width, height, 0),
                      interpolation="nearest")  # fmt: skip
            if plan is not None:
                rgba = heat_rgba(plan[f].reshape(row.grid).numpy(), vmax, colours, alpha,
                                 keep[f].reshape(row.grid).numpy())  # fmt: skip
                ax.imshow(rgba, extent=(0, width, height, 0), interpolation="nearest")
            visible = row.mask is not None and bool(np.asarray(row.mask[f]).any())
            if visible:
                ax.contour(np.arange(width) + 0.5, np.arange(height) + 0.5, np.asarray(row.mask[f], dtype=float),
                           levels=[0.5], colors=outline, linewidths=1.6)  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlim(0, width)
            ax.set_ylim(height, 0)
            for spine in ax.spines.values():
                spine.set_visible(False)
            if inside is not None:
                text = (f"in object {100 * float(inside[f]):.0f}% (uniform {100 * float(uniform[f]):.0f}%)"
                        if visible else "object not visible")
                above = visible and float(inside[f]) > float(uniform[f])
                ax.set_xlabel(text, fontsize=7.5, color="black" if above else "dimgray",
                              fontweight="bold" if above else "normal")  # fmt: skip
            ax.text(0.03, 0.97, f"frame {f + 1}", transform=ax.transAxes, fontsize=7.5, color="white", va="top",
                    ha="left")  # fmt: skip
        if row.label:
            axes[r, 0].set_ylabel(plot_text(row.label), fontsize=9)
        if row.title:
            colour = "black" if row.correct is None else ("green" if row.correct else "darkred")
            axes[r, 0].set_title(plot_text(row.title), loc="left", fontsize=9.5, color=colour)
        if row.note:
            note_ax = fig.add_subplot(grid[r, len(chosen)])
            note_ax.axis("off")
            note_ax.text(0.02, 0.5, plot_text(row.note), fontsize=8, va="center", ha="left", wrap=True,
                         transform=note_ax.transAxes)  # fmt: skip
    if colorbar and any(p is not None for p in plans):
        mappable = ScalarMappable(Normalize(0.0, vmax), colours)
        bar = fig.colorbar(mappable, ax=list(axes[-1]), location="bottom", fraction=0.05, aspect=35, pad=0.02)
        bar.set_label(MASS_LABEL + " (per patch)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
        first = next(p for p in plans if p is not None)
        level = float(first[chosen].sum(dim=-1).mean()) / first.shape[-1]  # a uniform plan's share of a patch
        if 0 < level <= vmax:
            bar.ax.axvline(level, color=outline, linewidth=1.5)
            bar.ax.text(level, 1.15, "uniform", fontsize=6.5, color="black", ha="center", va="bottom",
                        transform=bar.ax.get_xaxis_transform())  # fmt: skip
    if any(row.mask is not None for row in rows):
        fig.suptitle(f"frames dimmed, in grey; heat: {MASS_LABEL}; outline: the object's mask in the corpus",
                     fontsize=8, color="dimgray", x=0.01, ha="left")  # fmt: skip
    return fig


def plot_cloze(result: ClozeResult, threshold: float = 0.3, frames: Sequence[int] | None = None,
               show_mask: bool = True, **kwargs: Any):
    """Heatmaps of each masked word's plan (entries at or above ``threshold`` of its peak) on the frames: one
    row per masked word, titled with the predicted word and its probability (green when right), labelled
    with the masked word. A corpus clip's objects are outlined (``show_mask``). Without masked words
    the frames alone. Returns a matplotlib ``Figure``."""
    mask = None
    if show_mask and result.clip.object_masks is not None:
        mask = (result.clip.object_masks > 0).numpy()  # every object of the clip
    rows = [HeatmapRow(result.frames, result.plans[i], result.grid, f"{pred.top} ({pred.probability:.2f})",
                       f"[{pred.word.text}]", pred.correct, mask)
            for i, pred in enumerate(result.predictions)]  # fmt: skip
    if not rows:
        rows = [HeatmapRow(result.frames, None, result.grid, "no word masked", mask=mask)]
    return draw_heatmaps(rows, threshold, frames, **kwargs)


def figure_png(fig, dpi: int = 80) -> bytes:
    """PNG bytes of a matplotlib figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def predictions_table(result: ClozeResult, top_k: int | None = None, readable: bool = False) -> list[dict[str, Any]]:
    """One row per masked word: the word, its class, the top prediction, its probability, whether it is
    right and the top-k candidates of its first piece.

    ``readable``: the word, the prediction and the candidates in their readable form
    (:func:`.glyphs.readable_text`: a character the plotting font cannot draw written as ``U+4E2D``), as the
    explorer and the heatmap titles show them; otherwise the tokenizer's raw text."""
    shown = readable_text if readable else str
    rows = []
    for pred in result.predictions:
        first = pred.candidates[0][: top_k or len(pred.candidates[0])]
        rows.append({"word": shown(pred.word.text), "class": pred.word.word_class, "prediction": shown(pred.top),
                     "probability": round(pred.probability, 4), "correct": pred.correct,
                     "top_k": ", ".join(f"{shown(t)} {p:.2f}" for t, p in first)})  # fmt: skip
    return rows


# The measurement over corpus items --------------------------------------------------------------------------
KINDS: tuple[str, ...] = ("direction", "colour", "shape")


def _summary_rows(items: list[dict[str, Any]], kinds: Sequence[str]) -> list[dict[str, Any]]:
    """One row per kind (and ``all``) from per-item measurements (items whose object is never visible are
    left out)."""
    rows = []
    for kind in [*kinds, "all"]:
        group = [it for it in items if (kind == "all" or it["kind"] == kind) and not np.isnan(it["mass_in_mask"])]
        if not group:
            continue
        inside = float(np.mean([it["mass_in_mask"] for it in group]))
        uniform = float(np.mean([it["uniform"] for it in group]))
        rows.append({"kind": kind, "items": len(group), "mass_in_mask": inside, "uniform": uniform,
                     "ratio": inside / uniform if uniform > 0 else float("nan"),
                     "frames_above_uniform": float(np.mean([it["frames_above_uniform"] for it in group])),
                     "items_in_several_frames": float(np.mean([it["frames_above_uniform"] >= 2 for it in group])),
                     "items_above_uniform": float(np.mean([it["mass_in_mask"] > it["uniform"] for it in group])),
                     "cloze_accuracy": 100.0 * float(np.mean([it["correct"] for it in group]))})  # fmt: skip
    return rows


def item_measure(plan: Tensor, mask: Tensor) -> dict[str, Any]:
    """The alignment of one word's ``(S, N)`` plan with its object's boolean ``(S, H, W)`` mask: per frame the
    share of the mass inside the mask (``in_object``) and a uniform plan's (``uniform_per_frame``; NaN where the
    object is not visible), their means over the visible frames (``mass_in_mask``, ``uniform``, ``ratio``) and
    in how many visible frames the word beats the uniform plan (``frames_above_uniform`` of
    ``frames_visible``)."""
    visible = mask.flatten(1).any(dim=1)
    inside = mass_in_mask(plan, mask)
    uniform = uniform_mass_in_mask(mask, plan.shape[-1])
    nan = torch.full_like(inside, float("nan"))
    mean_in = float(inside[visible].mean()) if visible.any() else float("nan")
    mean_uniform = float(uniform[visible].mean()) if visible.any() else float("nan")
    return {"mass_in_mask": mean_in, "uniform": mean_uniform,
            "ratio": mean_in / mean_uniform if mean_uniform > 0 else float("nan"),
            "frames_visible": int(visible.sum()),
            "frames_above_uniform": int((inside[visible] > uniform[visible]).sum()),
            "in_object": torch.where(visible, inside, nan).tolist(),
            "uniform_per_frame": torch.where(visible, uniform, nan).tolist()}  # fmt: skip


@torch.no_grad()
def _measure(model: AllInOne, dataset: Any, chosen: Sequence[int], blocks: Sequence[int], batch_size: int,
             solver: str, scope: str, object_label: int, visible_block: int | None,
             **solver_kwargs: Any) -> tuple[dict[int, list[dict[str, Any]]], dict[str, list[tuple[float, float]]]]:
    """Per block, the measurement of every chosen item; for ``visible_block`` also the caption's unmasked
    words' mass in the object by kind."""
    from ..data import collate

    tok = dataset.text.tokenizer
    device = next(model.parameters()).device
    model.eval()
    items: dict[int, list[dict[str, Any]]] = {block: [] for block in blocks}
    visible_words: dict[str, list[tuple[float, float]]] = {}
    for start in range(0, len(chosen), batch_size):
        indices = chosen[start : start + batch_size]
        batch = collate([dataset[i] for i in indices])
        ids, attention = batch["input_ids"], batch["attention_mask"]
        out, features = layer_features(model, batch["video"].to(device), ids.to(device), attention.to(device),
                                       blocks)  # fmt: skip
        labels = batch["mlm_labels"]
        predicted = model.mlm_logits(out).argmax(-1).cpu()
        sources = source_tokens(ids, attention, tok.cls_token_id, tok.sep_token_id).to(device)
        for block in blocks:
            text, patches = features[block]
            plans = word_patch_plans(text, sources, patches, solver, scope, **solver_kwargs).cpu()
            for row, index in enumerate(indices):
                asked = (labels[row] != -100).nonzero().squeeze(1).tolist()
                mask = batch["masks"][row] == object_label
                items[block].append({"index": index, "kind": str(dataset.table.get(index, "kind")),
                                     "word": str(dataset.table.get(index, "word")),
                                     **item_measure(word_plan(plans[row], asked, scope), mask),
                                     "correct": bool((predicted[row, asked] == labels[row, asked]).all())})  # fmt: skip
                visible = mask.flatten(1).any(dim=1)
                if block != visible_block or not visible.any():
                    continue
                uniform = float(uniform_mass_in_mask(mask, plans.shape[-1])[visible].mean())
                for position in sources[row].nonzero().squeeze(1).tolist():
                    if position not in asked:
                        token = tok.convert_ids_to_tokens(int(ids[row, position]))
                        kind = word_kind(token) or ("function" if word_class(token) == "function" else "other")
                        share = mass_in_mask(plans[row, position], mask)[visible].mean()
                        visible_words.setdefault(kind, []).append((float(share), uniform))
    return items, visible_words


def _chosen_items(dataset: Any, num_items: int | None, kinds: Sequence[str]) -> list[int]:
    chosen = [i for i in range(len(dataset)) if str(dataset.table.get(i, "kind")) in kinds]
    if num_items is not None:
        chosen = chosen[:num_items]
    if not chosen:
        raise ValueError(f"cloze_alignment: no items of kinds {list(kinds)} in the dataset")
    return chosen


@torch.no_grad()
def cloze_alignment(model: AllInOne, dataset: Any, num_items: int | None = None, kinds: Sequence[str] = KINDS,
                    batch_size: int = 16, solver: str = "ipot", scope: str = "frame", object_label: int = 1,
                    layer: int | None = None, **solver_kwargs: Any) -> dict[str, Any]:
    """Transport mass inside the object's mask against a uniform plan, per word kind, over cloze items.

    Args:
        dataset: a corpus cloze dataset with masks (``corpus_dataset("cloze", "test", ..., with_masks=True)``);
            its items mask the cloze word, its table gives each item's ``kind``.
        num_items: the first ``num_items`` items of the chosen kinds (None: all).
        object_label: the mask label of the object the cloze word describes (1: the caption's first object).
        layer: the block whose output features are transported (:func:`resolve_layer`; None: the last).

    Returns:
        ``{"rows": [...], "items": [...], "visible_rows": [...], "layer": block}``. A row per kind (and
        ``all``): ``items``, ``mass_in_mask`` (mean over items of the mean over frames where the object is
        visible), ``uniform``, ``ratio``, ``frames_above_uniform`` (mean count of frames whose in-mask mass
        beats the uniform plan's), ``items_in_several_frames`` (share of items with at least two such frames),
        ``items_above_uniform`` (share of items whose mass in the mask beats the uniform plan's) and
        ``cloze_accuracy``. ``items``: one dict per item (:func:`item_measure`, with ``index``, ``kind``,
        ``word`` and ``correct``). ``visible_rows``: the same mass for the caption's other, unmasked words,
        by their corpus kind (``function`` for function words, ``other`` for the rest): which words the
        object's patches go to.
    """
    chosen = _chosen_items(dataset, num_items, kinds)
    block = resolve_layer(model, layer)
    measured, visible_words = _measure(model, dataset, chosen, [block], batch_size, solver, scope, object_label,
                                       block, **solver_kwargs)  # fmt: skip
    items = measured[block]
    visible_rows = []
    for kind, pairs in sorted(visible_words.items()):
        inside, uniform = (float(np.mean(values)) for values in zip(*pairs, strict=True))
        visible_rows.append({"kind": kind, "words": len(pairs), "mass_in_mask": inside, "uniform": uniform,
                             "ratio": inside / uniform if uniform > 0 else float("nan")})  # fmt: skip
    return {"rows": _summary_rows(items, kinds), "items": items, "visible_rows": visible_rows, "solver": solver,
            "scope": scope, "layer": block}  # fmt: skip


@torch.no_grad()
def layer_alignment(model: AllInOne, dataset: Any, num_items: int | None = None, kinds: Sequence[str] = KINDS,
                    batch_size: int = 16, solver: str = "ipot", scope: str = "frame", object_label: int = 1,
                    **solver_kwargs: Any) -> list[dict[str, Any]]:
    """:func:`cloze_alignment`'s rows for the features of every block (one forward pass per batch): one row
    per block and kind, with ``layer`` (1-based; the last is the backbone's output)."""
    chosen = _chosen_items(dataset, num_items, kinds)
    blocks = list(range(1, len(model.blocks) + 1))
    measured, _ = _measure(model, dataset, chosen, blocks, batch_size, solver, scope, object_label, None,
                           **solver_kwargs)  # fmt: skip
    return [{"layer": block, **row} for block in blocks for row in _summary_rows(measured[block], kinds)]


def choose_layer(rows: Sequence[dict[str, Any]], kind: str = "direction",
                 key: str = "items_in_several_frames") -> int:
    """The block whose features put ``kind`` words on their object most often (``key`` of
    :func:`layer_alignment`'s rows, measured on items other than those reported); ties go to the later
    block, the nearer to the output."""
    candidates = [row for row in rows if row["kind"] == kind]
    if not candidates:
        raise ValueError(f"choose_layer: no rows of kind {kind!r}")
    return int(max(candidates, key=lambda row: (row[key], row["layer"]))["layer"])


# Example items, chosen in the open --------------------------------------------------------------------------
@dataclass
class TypicalItem:
    """The item at the median of an alignment measure among the items of one kind.

    Attributes:
        item: the item's measurement (a dict of :func:`cloze_alignment`'s ``items``).
        rank: its place among the ``count`` items of its kind, 1 = the most mass in the object.
        overall_rank: its place among all ``overall`` measured items (every kind).
        measure: the key items were ranked by.
    """

    item: dict[str, Any]
    rank: int
    count: int
    overall_rank: int
    overall: int
    measure: str = "ratio"

    def note(self) -> str:
        """A line to print beside the example: how it was chosen and where it stands."""
        it = self.item
        visible = it.get("frames_visible", len(it.get("in_object", [])))
        return (f"typical {it['kind']} item (median): rank {self.rank} of {self.count} {it['kind']} items "
                f"and {self.overall_rank} of {self.overall} in all, by mass in the object "
                f"({it['ratio']:.2f}x uniform); above uniform in {it['frames_above_uniform']} of {visible} "
                f"frames; test item #{it['index']}")


def typical_items(items: Sequence[dict[str, Any]], kinds: Sequence[str] = KINDS,
                  measure: str = "ratio") -> dict[str, TypicalItem]:
    """For each kind, the item at the median of ``measure`` (default: mass in the object over the uniform
    plan's) among the measured items of that kind, with its rank there and among all items. Items are ranked
    from the most mass in the object down (ties: the earlier item first); with an even count the median is
    the upper middle one (rank ``count / 2``). Items whose object is never visible are left out."""
    ranked = [it for it in items if not np.isnan(float(it[measure]))]
    order = sorted(range(len(ranked)), key=lambda i: (-float(ranked[i][measure]), i))
    overall_rank = {position: place + 1 for place, position in enumerate(order)}
    picks: dict[str, TypicalItem] = {}
    for kind in kinds:
        group = [i for i in order if ranked[i]["kind"] == kind]
        if not group:
            continue
        rank = (len(group) + 1) // 2
        position = group[rank - 1]
        picks[kind] = TypicalItem(ranked[position], rank, len(group), overall_rank[position], len(ranked), measure)
    return picks
