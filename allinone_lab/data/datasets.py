"""Generic annotation-driven datasets: pairs (MLM + VTM), retrieval, open-ended QA, multiple choice, cloze,
classification (linear probe) and VCR.

Every dataset reads one annotation file (jsonl/json/csv/tsv, see docs/data.md) into an
:class:`~allinone_lab.data.table.AnnotationTable` and resolves ``video`` paths against ``video_root`` (default:
the parent of the ``annotations/`` folder). Items are dicts of tensors; :func:`collate` batches them, clips
becoming ``(B, S, C, H, W)``. Randomness is a function of ``(seed, epoch, index)`` only (call
:meth:`VideoDataset.set_epoch`), so results do not depend on the number of workers. Nothing needs a
distributed process group.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .config import DataConfig
from .table import AnnotationTable, iter_records
from .text import MaskedText, TextProcessor, mirror_text, vtm_partner
from .video import (
    FrameCache,
    VideoReadError,
    draw_vcr_masks,
    frames_to_tensor,
    load_cached_clip,
    load_clip,
    read_image,
    transform_masks,
)

log = logging.getLogger("allinone_lab.data")

ENCODINGS_KEPT = 20_000  # texts whose tokenisation a dataset remembers (VideoDataset.encode)


def _opt_float(v: Any) -> float | None:
    if v is None or v == "":
        return None
    return float(v)


class VideoDataset(Dataset):
    """Base class: annotation table, video loading with ``on_error`` handling, deterministic randomness.

    ``on_error="skip"`` (in :class:`DataConfig`) replaces an unreadable item by another one (at most
    ``max_skips_per_item`` tries, then a ``RuntimeError``); every skipped file is logged, appended to
    ``skip_log`` (shared by all DataLoader workers) and listed by :meth:`skipped_files`.

    ``frame_cache`` (a :class:`~allinone_lab.data.video.FrameCache`, e.g. the built-in corpus's): clips of the
    videos it holds are sliced from its decoded frames instead of decoded again, with the same tensors as
    decoding gives; rows with a time or frame window, and videos it does not hold, are decoded.
    """

    task = "video"

    def __init__(
        self,
        annotation: str | os.PathLike | AnnotationTable,
        cfg: DataConfig | None = None,
        video_root: str | os.PathLike | None = None,
        train: bool = False,
        seed: int = 0,
        text: TextProcessor | None = None,
        skip_log: str | os.PathLike | None = None,
        cache: bool = True,
        with_masks: bool = False,
        frame_cache: FrameCache | None = None,
    ) -> None:
        if isinstance(annotation, AnnotationTable):
            self.table = annotation
            default_root = Path(annotation.source).parent.parent if annotation.source else Path(".")
        else:
            self.table = AnnotationTable.from_file(annotation, cache=cache)
            default_root = Path(annotation).parent.parent
        if len(self.table) == 0:
            raise ValueError(f"{type(self).__name__}: annotation {self.table.source!r} has no rows")
        self.cfg = cfg or DataConfig()
        self.video_root = Path(video_root) if video_root is not None else default_root
        self.train = train
        self.seed = seed
        self.epoch = 0
        self._text = text
        if skip_log is None:  # created on the first skip
            skip_log = (
                Path(tempfile.gettempdir())
                / "allinone-skips"
                / f"{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
            )
        self.skip_log = Path(skip_log)
        self.with_masks = with_masks
        self.frame_cache = frame_cache
        self._encodings: dict[tuple[str, str | None], MaskedText] = {}
        self._check_columns()
        if with_masks and "mask" not in self.table:
            raise ValueError(
                f"{type(self).__name__}: with_masks=True needs a `mask` column (per-frame label maps, .npz)"
            )

    required: tuple[str, ...] = ("video",)

    def _check_columns(self) -> None:
        missing = [c for c in self.required if c not in self.table]
        if missing:
            raise ValueError(
                f"{type(self).__name__}: annotation {self.table.source!r} lacks column(s) {missing}; "
                f"it has {self.table.columns}"
            )

    @property
    def text(self) -> TextProcessor:
        if self._text is None:
            self._text = TextProcessor(self.cfg)
        return self._text

    def encode(self, text: str, text_pair: str | None = None) -> MaskedText:
        """``self.text.encode(text, text_pair)``, remembered for the first :data:`ENCODINGS_KEPT` texts (the
        built-in corpus repeats a few hundred captions on every epoch); fresh tensors on every call."""
        key = (text, text_pair)
        enc = self._encodings.get(key)
        if enc is None:
            enc = self.text.encode(text, text_pair)
            if len(self._encodings) < ENCODINGS_KEPT:
                self._encodings[key] = enc
        return MaskedText(enc.input_ids.clone(), enc.attention_mask.clone())

    def __len__(self) -> int:
        return len(self.table)

    def set_epoch(self, epoch: int) -> None:
        """Change the random stream (frames, crops, masks, negatives) for a new epoch."""
        self.epoch = int(epoch)

    def rng(self, index: int, stream: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index, stream])

    def video_path(self, index: int) -> Path:
        return self.video_root / str(self.table.get(index, "video"))

    def load_video(self, index: int, rng: np.random.Generator, meta: dict | None = None) -> torch.Tensor:
        """Clip of row ``index``: float ``(S, C, H, W)``; rows with ``start``/``end`` (seconds) use that window."""
        sf, ef = self.table.get(index, "start_frame"), self.table.get(index, "end_frame")
        start, end = _opt_float(self.table.get(index, "start")), _opt_float(self.table.get(index, "end"))
        if self.frame_cache is not None and sf is None and ef is None and start is None and end is None:
            stored = self.frame_cache.get(self.table.get(index, "video"))
            if stored is not None:  # the whole video, decoded once: the same tensor as decoding it here
                return load_cached_clip(stored, self.cfg, train=self.train, rng=rng, meta=meta)
        return load_clip(
            self.video_path(index), self.cfg, train=self.train, rng=rng, start=start, end=end,
            start_frame=None if sf is None else int(sf), end_frame=None if ef is None else int(ef), meta=meta,
        )  # fmt: skip

    def load_masks(self, index: int, meta: dict) -> torch.Tensor:
        """Object label maps uint8 ``(S, H, W)`` of row ``index`` for the frames/crop recorded in ``meta``."""
        path = self.video_root / str(self.table.get(index, "mask"))
        if not path.is_file():
            raise VideoReadError(path, "mask file does not exist")
        with np.load(path) as f:
            return transform_masks(f["masks"], meta)

    def _video(self, index: int, rng: np.random.Generator, out: dict[str, Any]) -> torch.Tensor:
        """Load the clip; with ``with_masks`` also put the aligned ``masks (S, H, W)`` into ``out``."""
        if not self.with_masks:
            return self.load_video(index, rng)
        meta: dict = {}
        video = self.load_video(index, rng, meta)
        out["masks"] = self.load_masks(index, meta)
        return video

    def _item(self, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        if self.cfg.on_error == "raise":
            out = self._item(index)
            out["skipped"] = []
            return out
        skipped: list[str] = []
        current = index
        for attempt in range(self.cfg.max_skips_per_item + 1):
            try:
                out = self._item(current)
                out["skipped"] = skipped
                return out
            except VideoReadError as exc:
                self._record_skip(exc, index, current)
                skipped.append(exc.path)
                current = int(self.rng(index, 1000 + attempt).integers(len(self)))
        raise RuntimeError(
            f"{type(self).__name__}: item {index} and {self.cfg.max_skips_per_item} replacements are all "
            f"unreadable: {skipped}"
        )

    def _record_skip(self, exc: VideoReadError, index: int, current: int) -> None:
        log.warning("skipping unreadable %s (%s) for item %d", exc.path, exc.reason, index)
        line = json.dumps({"path": exc.path, "reason": exc.reason, "item": index, "row": current}) + "\n"
        self.skip_log.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.skip_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))  # one write per line: safe across worker processes
        finally:
            os.close(fd)

    def skipped_files(self) -> list[dict[str, Any]]:
        """Every skip so far (all workers): ``[{"path", "reason", "item", "row"}, ...]`` in order."""
        if not self.skip_log.exists():
            return []
        return [json.loads(line) for line in self.skip_log.read_text(encoding="utf-8").splitlines() if line]

    def skip_summary(self, log_it: bool = True) -> dict[str, Any]:
        """``{"count": skips, "files": {path: reason}}``; logged as a warning when anything was skipped."""
        entries = self.skipped_files()
        summary = {"count": len(entries), "files": {e["path"]: e["reason"] for e in entries}}
        if log_it and entries:
            log.warning("%s: %d skipped item(s), %d file(s): %s", type(self).__name__, len(entries),
                        len(summary["files"]), sorted(summary["files"]))  # fmt: skip
        return summary

    def reset_skips(self) -> None:
        if self.skip_log.exists():
            self.skip_log.unlink()


def _caption(value: Any, rng: np.random.Generator | None, train: bool) -> str:
    """A caption field: a string, or a list (one picked at random in training, the first in evaluation)."""
    if isinstance(value, list):
        if not value:
            raise ValueError("empty caption list")
        return str(value[int(rng.integers(len(value)))] if train and rng is not None else value[0])
    return str(value)


class PairsDataset(VideoDataset):
    """Pre-training pairs: MLM on the true pair and a VTM pair with ``vtm_neg_prob`` negatives.

    Item: ``video (S,C,H,W)``, ``input_ids``/``attention_mask (L,)`` (unmasked caption), ``mlm_input_ids``,
    ``mlm_labels (L,)``, ``vtm_video (S,C,H,W)``, ``vtm_input_ids``/``vtm_attention_mask (L,)``,
    ``vtm_label`` (1 matched, 0 not) and ``vtm_negative`` (0 positive, 1 another item's video, 2 the caption's
    temporal negative: same video, another assignment of the direction words, drawn among those the
    ``temporal_negative`` column lists (or the one it holds); needs ``cfg.temporal_negatives``). In training,
    ``cfg.mirror_prob`` of the clips are mirrored left-right with "left" and "right" exchanged in the caption
    and its temporal negative (:func:`mirror_text`).
    """

    task = "pairs"
    required = ("video", "caption")

    def _other_video(self, index: int, rng: np.random.Generator) -> tuple[int, int]:
        j, label = vtm_partner(index, len(self), rng, self.cfg.vtm_neg_prob)
        if label == 1:
            return j, 1
        mine = self.table.get(index, "video")
        for _ in range(8):  # several captions may share a video: a negative must show another video
            if self.table.get(j, "video") != mine:
                return j, 0
            j, _ = vtm_partner(index, len(self), rng, 1.0)
        return index, 1  # (almost) every row shows this video: no true negative exists, keep the positive

    def _item(self, index: int) -> dict[str, Any]:
        rng = self.rng(index)
        extra: dict[str, Any] = {}
        video = self._video(index, rng, extra)
        caption = _caption(self.table.get(index, "caption"), rng, self.train)
        mirror = self.train and self.cfg.mirror_prob > 0 and self.rng(index, 3).random() < self.cfg.mirror_prob
        if mirror:
            video, caption = video.flip(-1), mirror_text(caption)
            if "masks" in extra:
                extra["masks"] = extra["masks"].flip(-1)
        plain = self.encode(caption)
        masked = self.text.mask(plain, rng)
        out = {"video": video, "input_ids": plain.input_ids, "attention_mask": plain.attention_mask,
               "mlm_input_ids": masked.input_ids, "mlm_labels": masked.mlm_labels, "index": index, **extra}  # fmt: skip
        vrng = self.rng(index, 1)
        j, label = self._other_video(index, vrng)
        negative, vtm_video, vtm_text = 0, video, plain
        if label == 0:
            temporal = self.table.get(index, "temporal_negative") if self.cfg.temporal_negatives else None
            if isinstance(temporal, list | tuple):  # several: one drawn for this item and epoch
                temporal = temporal[int(vrng.integers(len(temporal)))] if temporal else None
            if temporal:
                negative, vtm_text = 2, self.encode(mirror_text(str(temporal)) if mirror else str(temporal))
            else:
                negative, vtm_video = 1, self.load_video(j, self.rng(j, 2))
        out.update(vtm_video=vtm_video, vtm_input_ids=vtm_text.input_ids, vtm_attention_mask=vtm_text.attention_mask,
                   vtm_label=torch.tensor(label), vtm_negative=torch.tensor(negative))  # fmt: skip
        return out


class RetrievalDataset(VideoDataset):
    """Text-video retrieval. A ``caption`` list is a paragraph (DiDeMo, ActivityNet): its sentences are joined.

    Item: ``video (S,C,H,W)``, ``input_ids``/``attention_mask (L,)``, ``video_index`` (id among the unique
    videos, see :attr:`text_to_video`), ``index``.
    """

    task = "retrieval"
    required = ("video", "caption")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = self.table.column("video")
        self.videos, inverse = np.unique(np.asarray(names, dtype=object).astype(str), return_inverse=True)
        self.text_to_video = inverse.astype(np.int64)  # (N_text,)

    @property
    def num_videos(self) -> int:
        return len(self.videos)

    def video_rows(self) -> np.ndarray:
        """One row index per unique video, ``(num_videos,)`` in :attr:`videos` order (for video-only passes:
        ``Subset(dataset, dataset.video_rows())``)."""
        first = np.full(self.num_videos, -1, dtype=np.int64)
        for row in range(len(self.text_to_video) - 1, -1, -1):
            first[self.text_to_video[row]] = row
        return first

    def _item(self, index: int) -> dict[str, Any]:
        rng = self.rng(index)
        value = self.table.get(index, "caption")
        caption = " ".join(map(str, value)) if isinstance(value, list) else str(value)
        enc = self.encode(caption)
        extra: dict[str, Any] = {}  # filled by _video; unpacked last, after the call
        return {"video": self._video(index, rng, extra), "input_ids": enc.input_ids, "attention_mask": enc.attention_mask,
                "video_index": int(self.text_to_video[index]), "index": index, **extra}  # fmt: skip


def build_answer_vocab(answers: Iterable[str], min_count: int = 1, top_k: int | None = None) -> list[str]:
    """Answer vocabulary from the training answers: most frequent first (ties alphabetical)."""
    counts = Counter(str(a) for a in answers)
    vocab = sorted((a for a, c in counts.items() if c >= min_count), key=lambda a: (-counts[a], a))
    return vocab[:top_k] if top_k is not None else vocab


def load_answer_vocab(path: str | os.PathLike) -> list[str]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of answers")
    return [str(a) for a in data]


class OpenQADataset(VideoDataset):
    """Open-ended QA as classification over ``answers`` (built from the training split).

    Item: ``video``, ``input_ids``/``attention_mask (L,)`` of the question, ``answer_label`` (-1: answer out of
    the vocabulary, counted wrong by ``allinone_lab.eval.accuracy``), ``index``.
    """

    task = "qa"
    required = ("video", "question", "answer")

    def __init__(self, annotation, cfg=None, answers: Sequence[str] | str | os.PathLike | None = None,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(annotation, cfg, **kwargs)
        if answers is None:
            if not self.train:
                raise ValueError(
                    "OpenQADataset: pass `answers` (the training split's vocabulary) for evaluation"
                )
            answers = build_answer_vocab(self.table.column("answer"))
        elif isinstance(answers, (str, os.PathLike)):
            answers = load_answer_vocab(answers)
        self.answers = list(answers)
        lookup = {a: i for i, a in enumerate(self.answers)}
        self.labels = np.array([lookup.get(str(a), -1) for a in self.table.column("answer")], dtype=np.int64)

    @property
    def oov_count(self) -> int:
        """Rows whose answer is not in the vocabulary (they can never be answered right)."""
        return int((self.labels < 0).sum())

    def _item(self, index: int) -> dict[str, Any]:
        enc = self.encode(str(self.table.get(index, "question")))
        extra: dict[str, Any] = {}
        return {"video": self._video(index, self.rng(index), extra), "input_ids": enc.input_ids,
                "attention_mask": enc.attention_mask, "answer_label": int(self.labels[index]), "index": index, **extra}  # fmt: skip


class MultipleChoiceDataset(VideoDataset):
    """Multiple choice: ``options`` (K sentences), ``answer`` (index), optional ``question`` (encoded as the
    first segment, the option as the second).

    Item: ``video``, ``input_ids``/``attention_mask (K, L)``, ``answer``, ``index``.
    """

    task = "mc"
    required = ("video", "options", "answer")

    def __init__(self, *args: Any, num_options: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        first = self.table.get(0, "options")
        self.num_options = num_options if num_options is not None else len(first)

    def _item(self, index: int) -> dict[str, Any]:
        options = self.table.get(index, "options")
        if not isinstance(options, list) or len(options) != self.num_options:
            raise ValueError(
                f"{self.table.source}: row {index} has {options!r}; expected {self.num_options} options"
            )
        question = self.table.get(index, "question")
        encs = [
            self.encode(str(question), str(o)) if question else self.encode(str(o)) for o in options
        ]
        extra: dict[str, Any] = {}
        return {"video": self._video(index, self.rng(index), extra),
                "input_ids": torch.stack([e.input_ids for e in encs]),
                "attention_mask": torch.stack([e.attention_mask for e in encs]),
                "answer": int(self.table.get(index, "answer")), "index": index, **extra}  # fmt: skip


class ClozeDataset(VideoDataset):
    """Cloze: every piece of every occurrence of ``word`` in ``caption`` is replaced by [MASK] (a second,
    unmasked "left" in "... moves left and ... moves left" would give the answer away).

    Item: ``video``, ``input_ids``/``attention_mask``/``mlm_labels (L,)`` (labels only at the masked
    pieces), ``temporal`` (bool), ``index``. ``kind`` (direction, shape, colour, final_colour) stays in the table.
    """

    task = "cloze"
    required = ("video", "caption", "word")

    def _item(self, index: int) -> dict[str, Any]:
        caption, word = str(self.table.get(index, "caption")), str(self.table.get(index, "word"))
        enc = self.encode(caption)
        ids = enc.input_ids
        target = self.text.tokenizer(word, add_special_tokens=False)["input_ids"]
        n = len(target)
        masked = ids.clone()
        labels = torch.full_like(ids, -100)
        k = 0
        while k <= len(ids) - n:
            if n and ids[k : k + n].tolist() == target:
                labels[k : k + n] = ids[k : k + n]
                masked[k : k + n] = self.text.mask_id
                k += n
            else:
                k += 1
        if not (labels != -100).any():
            raise ValueError(f"{self.table.source}: row {index}: word {word!r} not in caption {caption!r}")
        temporal = bool(self.table.get(index, "temporal", False))
        extra: dict[str, Any] = {}
        return {"video": self._video(index, self.rng(index), extra), "input_ids": masked,
                "attention_mask": enc.attention_mask, "mlm_labels": labels, "temporal": temporal, "index": index,
                **extra}  # fmt: skip


class ClassificationDataset(VideoDataset):
    """Action labels for the linear probe (Kinetics-400, HMDB51). Item: ``video``, ``label`` (class id), ``index``."""

    task = "classification"
    required = ("video", "label")

    def __init__(self, annotation, cfg=None, classes: Sequence[str] | str | os.PathLike | None = None,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(annotation, cfg, **kwargs)
        if classes is None:
            classes = sorted({str(v) for v in self.table.column("label")})
        elif isinstance(classes, (str, os.PathLike)):
            classes = load_answer_vocab(classes)
        self.classes = list(classes)
        lookup = {c: i for i, c in enumerate(self.classes)}
        self.labels = np.array([lookup.get(str(v), -1) for v in self.table.column("label")], dtype=np.int64)

    def _item(self, index: int) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        return {"video": self._video(index, self.rng(index), extra), "label": int(self.labels[index]), "index": index,
                **extra}  # fmt: skip


class VCRDataset(MultipleChoiceDataset):
    """VCR: an image (a one-frame video repeated S times) with a coloured mask painted on each referenced
    person, then multiple choice. ``boxes``/``segms`` come from the row or from its ``metadata`` json (VCR's
    per-image file); ``referenced`` lists the object ids to paint.

    ``paint_masks=False`` gives the plain image (the paper's Table 5 row without masks); boxes and metadata
    are then not read. Item: ``video (S, C, H, W)`` (the image S times), ``input_ids``/``attention_mask (K, L)``,
    ``answer``, ``index``.
    """

    task = "vcr"
    required = ("image", "options", "answer")

    def __init__(self, *args: Any, paint_masks: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(paint_masks, bool):
            raise ValueError(f"VCRDataset: paint_masks={paint_masks!r}: expected True or False")
        self.paint_masks = paint_masks

    def video_path(self, index: int) -> Path:
        return self.video_root / str(self.table.get(index, "image"))

    def load_video(self, index: int, rng: np.random.Generator) -> torch.Tensor:
        image = read_image(self.video_path(index))
        if not self.paint_masks:
            frames = np.repeat(image[None], self.cfg.num_frames, axis=0)
            return frames_to_tensor(frames, self.cfg, train=self.train, rng=rng)
        boxes, segms = self.table.get(index, "boxes"), self.table.get(index, "segms")
        if boxes is None:
            meta_path = self.video_root / str(self.table.get(index, "metadata"))
            if not meta_path.is_file():
                raise VideoReadError(meta_path, "VCR metadata json (boxes, segms) does not exist")
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            boxes, segms = meta["boxes"], meta.get("segms")
        painted = draw_vcr_masks(image, boxes, self.table.get(index, "referenced") or [], segms)
        frames = np.repeat(painted[None], self.cfg.num_frames, axis=0)
        return frames_to_tensor(frames, self.cfg, train=self.train, rng=rng)


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of items: tensors gain a leading ``B`` (clips ``(B, S, C, H, W)``), numbers become tensors,
    ``skipped`` lists are concatenated, anything else stays a list."""
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [b[key] for b in batch]
        if key == "skipped":
            out[key] = [p for v in values for p in v]
        elif isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        elif isinstance(values[0], bool):
            out[key] = torch.tensor(values, dtype=torch.bool)
        elif isinstance(values[0], int):
            out[key] = torch.tensor(values, dtype=torch.int64)
        elif isinstance(values[0], float):
            out[key] = torch.tensor(values, dtype=torch.float32)
        else:
            out[key] = values
    return out


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All rows of an annotation file as dicts (small files; datasets use :class:`AnnotationTable`)."""
    return list(iter_records(path))
