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

Measurement (the corpus knows where each object is): :func:`mass_in_mask` is the fraction of a plan's mass
inside an object's mask, per frame; :func:`uniform_mass_in_mask` the same for a uniform plan (the object's
area share), the baseline.

Shapes: text features ``(B, m, D)``, patch features ``(B, S, N, D)``, plans ``(..., S, N)`` on a
``(gh, gw)`` patch grid, object masks ``(S, H, W)``.
"""

from __future__ import annotations

import io
import warnings
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
    extra: dict[str, Any] = field(default_factory=dict)

    def mass_in_mask(self, label: int = 1) -> Tensor:
        """``(n_masked, S)`` fraction of each word's mass inside object ``label``'s mask."""
        return mass_in_mask(self.plans, self.clip.object_mask(label))

    def uniform_mass_in_mask(self, label: int = 1) -> Tensor:
        return uniform_mass_in_mask(self.clip.object_mask(label), self.plans.shape[-1])


@torch.no_grad()
def run_cloze(model: AllInOne, clip: Clip, caption: str | None = None, words: Iterable[str | int] | None = None,
              top_k: int = 5, solver: str = "ipot", scope: str = "frame", tokenizer: Any = None,
              **solver_kwargs: Any) -> ClozeResult:
    """Mask words of ``caption`` (default: the clip's), predict them, align them with the patches.

    Args:
        model: any :class:`AllInOne` (run in eval mode, patches in raster order).
        clip: the clip; its video must match the model's frame size.
        words: words or word indices to mask; None masks the nouns and verbs.
        top_k: candidates per masked piece.
        solver, scope, solver_kwargs: see :func:`word_patch_plans`.
    """
    tok = tokenizer if tokenizer is not None else load_tokenizer()
    caption = clip.caption if caption is None else caption
    encoded = encode_caption(caption, model.config.max_text_len, tok)
    masked = select_words(encoded, words)
    ids = mask_caption(encoded, masked, tok.mask_token_id)
    device = next(model.parameters()).device
    model.eval()
    out = model(clip.video[None].to(device), ids[None].to(device), encoded.attention_mask[None].to(device),
                shuffle_patches=False)
    logits = model.mlm_logits(out)[0]
    predictions = [WordPrediction(encoded.words[i], top_k_tokens(logits, encoded.words[i].pieces, top_k, tok))
                   for i in masked]  # fmt: skip
    patches = frame_patches(model, out)
    sources = source_tokens(ids[None], encoded.attention_mask[None], tok.cls_token_id, tok.sep_token_id)
    plans = word_patch_plans(out.text_tokens, sources.to(device), patches, solver, scope, **solver_kwargs)[0]
    frames, height, width = clip.video.shape[0], clip.video.shape[-2], clip.video.shape[-1]
    grid = (height // model.config.patch_size, width // model.config.patch_size)
    word_plans = torch.stack([word_plan(plans, encoded.words[i].pieces, scope) for i in masked]) if masked else \
        torch.zeros(0, frames, patches.shape[2])
    return ClozeResult(caption=encoded, masked=masked, predictions=predictions, plans=word_plans.cpu(),
                       grid=grid, frames=clip.frames, clip=clip, scope=scope, solver=solver)


@dataclass
class HeatmapRow:
    """One row of a heatmap figure: a clip's frames uint8 ``(S, H, W, 3)``, a word's ``(S, N)`` plan on a
    ``grid``, the row's title and label, and optionally the object masks ``(S, H, W)`` to outline."""

    frames: np.ndarray
    plan: Tensor | None
    grid: tuple[int, int]
    title: str = ""
    label: str = ""
    correct: bool | None = None
    mask: np.ndarray | None = None


def draw_heatmaps(rows: Sequence[HeatmapRow], threshold: float = 0.3, frames: Sequence[int] | None = None,
                  alpha: float = 0.55, cmap: str = "jet", panel_size: float = 2.2):
    """A grid of frames (columns) by rows, each frame overlaid with its row's plan above ``threshold`` of the
    row's peak (:func:`threshold_plan`) and the object outline in white. Returns a matplotlib ``Figure``
    (not managed by pyplot, so notebooks show it once)."""
    from matplotlib.figure import Figure

    if not rows:
        raise ValueError("draw_heatmaps: expected at least one row")
    count = rows[0].frames.shape[0]
    chosen = list(range(count)) if frames is None else [int(f) for f in frames]
    for f in chosen:
        if not 0 <= f < count:
            raise ValueError(f"frame {f}: the clip has frames 0..{count - 1}")
    fig = Figure(figsize=(panel_size * len(chosen) + 0.4, panel_size * len(rows) + 0.5))
    axes = fig.subplots(len(rows), len(chosen), squeeze=False)
    for r, row in enumerate(rows):
        height, width = row.frames.shape[1:3]
        kept = None if row.plan is None else threshold_plan(row.plan.float(), threshold)
        peak = 1.0 if kept is None else max(float(kept.max()), 1e-12)
        for col, f in enumerate(chosen):
            ax = axes[r, col]
            ax.imshow(row.frames[f], extent=(0, width, height, 0))
            if kept is not None:
                heat = kept[f].reshape(row.grid).numpy()
                ax.imshow(np.ma.masked_where(heat <= 0, heat), extent=(0, width, height, 0), cmap=cmap,
                          alpha=alpha, vmin=0, vmax=peak, interpolation="nearest")
            if row.mask is not None and row.mask[f].any():
                ax.contour(np.arange(width) + 0.5, np.arange(height) + 0.5, row.mask[f].astype(float),
                           levels=[0.5], colors="white", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlim(0, width)
            ax.set_ylim(height, 0)
            if r == 0:
                ax.set_xlabel(f"frame {f + 1}")
                ax.xaxis.set_label_position("top")
        if row.label:
            axes[r, 0].set_ylabel(row.label, fontsize=9)
        if row.title:
            colour = "black" if row.correct is None else ("green" if row.correct else "darkred")
            axes[r, 0].set_title(row.title, loc="left", fontsize=10, color=colour)
    with warnings.catch_warnings():  # untrained models predict any vocabulary piece, CJK glyphs included
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.tight_layout()
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
    with warnings.catch_warnings():  # untrained models predict any vocabulary piece, CJK glyphs included
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def predictions_table(result: ClozeResult, top_k: int | None = None) -> list[dict[str, Any]]:
    """One row per masked word: the word, its class, the top prediction, its probability, whether it is
    right and the top-k candidates of its first piece."""
    rows = []
    for pred in result.predictions:
        first = pred.candidates[0][: top_k or len(pred.candidates[0])]
        rows.append({"word": pred.word.text, "class": pred.word.word_class, "prediction": pred.top,
                     "probability": round(pred.probability, 4), "correct": pred.correct,
                     "top_k": ", ".join(f"{t} {p:.2f}" for t, p in first)})  # fmt: skip
    return rows


# The measurement over corpus items --------------------------------------------------------------------------
KINDS: tuple[str, ...] = ("direction", "colour", "shape")


@torch.no_grad()
def cloze_alignment(model: AllInOne, dataset: Any, num_items: int | None = None, kinds: Sequence[str] = KINDS,
                    batch_size: int = 16, solver: str = "ipot", scope: str = "frame", object_label: int = 1,
                    **solver_kwargs: Any) -> dict[str, Any]:
    """Transport mass inside the object's mask against a uniform plan, per word kind, over cloze items.

    Args:
        dataset: a corpus cloze dataset with masks (``corpus_dataset("cloze", "test", ..., with_masks=True)``);
            its items mask the cloze word, its table gives each item's ``kind``.
        num_items: the first ``num_items`` items of the chosen kinds (None: all).
        object_label: the mask label of the object the cloze word describes (1: the caption's first object).

    Returns:
        ``{"rows": [...], "items": [...], "visible_rows": [...]}``. A row per kind (and ``all``): ``items``,
        ``mass_in_mask`` (mean over items of the mean over frames where the object is visible), ``uniform``,
        ``ratio``, ``frames_above_uniform`` (mean count of frames whose in-mask mass beats the uniform plan's),
        ``items_in_several_frames`` (share of items with at least two such frames), ``items_above_uniform``
        (share of items whose mass in the mask beats the uniform plan's) and ``cloze_accuracy``.
        ``visible_rows``: the same mass for the caption's other, unmasked words, by their corpus kind
        (``function`` for function words, ``other`` for the rest): which words the object's patches go to.
    """
    from ..data import collate

    tok = dataset.text.tokenizer
    chosen = [i for i in range(len(dataset)) if str(dataset.table.get(i, "kind")) in kinds]
    if num_items is not None:
        chosen = chosen[:num_items]
    if not chosen:
        raise ValueError(f"cloze_alignment: no items of kinds {list(kinds)} in the dataset")
    device = next(model.parameters()).device
    model.eval()
    items: list[dict[str, Any]] = []
    visible_words: dict[str, list[tuple[float, float]]] = {}
    for start in range(0, len(chosen), batch_size):
        indices = chosen[start : start + batch_size]
        batch = collate([dataset[i] for i in indices])
        ids, attention = batch["input_ids"], batch["attention_mask"]
        out = model(batch["video"].to(device), ids.to(device), attention.to(device), shuffle_patches=False)
        labels = batch["mlm_labels"]
        predicted = model.mlm_logits(out).argmax(-1).cpu()
        sources = source_tokens(ids, attention, tok.cls_token_id, tok.sep_token_id).to(device)
        plans = word_patch_plans(out.text_tokens, sources, frame_patches(model, out), solver, scope,
                                 **solver_kwargs).cpu()  # fmt: skip
        for row, index in enumerate(indices):
            asked = (labels[row] != -100).nonzero().squeeze(1).tolist()
            plan = word_plan(plans[row], asked, scope)
            mask = batch["masks"][row] == object_label
            visible = mask.flatten(1).any(dim=1)
            inside = mass_in_mask(plan, mask)
            uniform = uniform_mass_in_mask(mask, plan.shape[-1])
            items.append({"index": index, "kind": str(dataset.table.get(index, "kind")),
                          "word": str(dataset.table.get(index, "word")),
                          "mass_in_mask": float(inside[visible].mean()) if visible.any() else float("nan"),
                          "uniform": float(uniform[visible].mean()) if visible.any() else float("nan"),
                          "frames_above_uniform": int((inside[visible] > uniform[visible]).sum()),
                          "correct": bool((predicted[row, asked] == labels[row, asked]).all())})  # fmt: skip
            if visible.any():
                for position in sources[row].nonzero().squeeze(1).tolist():
                    if position not in asked:
                        token = tok.convert_ids_to_tokens(int(ids[row, position]))
                        kind = word_kind(token) or ("function" if word_class(token) == "function" else "other")
                        share = mass_in_mask(plans[row, position], mask)[visible].mean()
                        visible_words.setdefault(kind, []).append((float(share), float(uniform[visible].mean())))
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
    visible_rows = []
    for kind, pairs in sorted(visible_words.items()):
        inside, uniform = (float(np.mean(values)) for values in zip(*pairs, strict=True))
        visible_rows.append({"kind": kind, "words": len(pairs), "mass_in_mask": inside, "uniform": uniform,
                             "ratio": inside / uniform if uniform > 0 else float("nan")})  # fmt: skip
    return {"rows": rows, "items": items, "visible_rows": visible_rows, "solver": solver, "scope": scope}
