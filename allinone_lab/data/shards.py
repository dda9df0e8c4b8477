"""Sharded streaming data: prepared datasets packed into WebDataset tar shards, and read back as a stream.

Packing (``python -m allinone_lab.data.prepare shards --root ROOT --split SPLIT --out DIR``, :func:`pack_shards`)
writes, for one split of a prepared dataset (a registry dataset or the built-in corpus)::

    DIR/<dataset>-<split>-000000.tar ...   WebDataset shards; sample key = the row's index in the split (9 digits)
    DIR/index.npy                          int64 (rows, 3): shard, byte offset and byte length of every sample
    DIR/annotations/<file>                 the split's annotation file (and its answer/class vocabulary)
    DIR/shards.json                        the manifest, written last

A sample holds ``<key>.json`` (the annotation row) and one member per media column of the row that names a file
(``<key>.video.mp4``, ``<key>.image.jpg``, ``<key>.metadata.json``, ``<key>.mask.npz``): the file's bytes,
optionally re-encoded at pack time to a short side of ``short_side`` pixels (H.264, every frame kept at the
same frame rate, so time and frame windows still select the same frames). A media file missing when packing
gets no member; the sample is then reported as unreadable when read, as the file dataset reports the file.
Every shard is written under a temporary name and renamed when complete; the manifest (``shards.json``) comes
last and records the count of every shard, the sha256 of the source dataset's ``manifest.json`` and of the
annotation file, the fields, and whether (and how) videos were re-encoded.

Streaming (:class:`ShardDataset`, an ``IterableDataset``) reads local shards, URLs (``http(s)://``) or
``pipe:`` commands (anything ``webdataset.gopen`` opens). Items are built by the file dataset's own classes
(:class:`~allinone_lab.data.datasets.PairsDataset` ...) over the same annotation table: the streamed bytes of a
sample are put in a scratch directory at the path its row names and the class's item code runs on them, so
the item of row ``i`` equals the file dataset's item ``i`` (same seed and epoch). A VTM negative or a skip
replacement (another row's video) is read by its byte range (``index.npy``) from a local shard or an
``http(s)`` shard; where no byte range can be read (``pipe:``), the most recent sample of the stream with
another video stands in (counted in :attr:`ShardDataset.stats`), and only then do items differ from the files.

Order, splits and resuming (all arithmetic on the manifest's counts, no shard is opened to plan):

* An epoch of a source is a pass over its shards in a seeded permutation ``(seed, crc32(name), round)``, the
  samples of each shard in a seeded permutation too (``shuffle=False``: both in stored order). Sources are
  mixed with the rule of :class:`~allinone_lab.data.mixture.MixtureDataset`: ``c`` items of a source of
  ``n`` per epoch (largest remainders of the weights), every item ``c // n`` times and ``c % n`` further ones
  from a rotating round of passes, the sources interleaved by the fraction ``(j + 0.5) / c`` of the epoch.
* The epoch's ``length`` positions are cut into ``world_size * streams_per_rank`` contiguous streams of equal
  length, a whole number of batches (the tail that does not fill one is dropped); rank ``r`` owns streams
  ``r * streams_per_rank ...``. Its batch ``j`` is batch ``j // streams_per_rank`` of its stream
  ``j % streams_per_rank``. With ``accumulation = A`` (micro-batches per optimizer step and rank, as the
  training loop runs them), the streams are numbered by micro-batch slot instead: a rank's stream ``i`` is
  global stream ``(r * A + i % A) * (streams_per_rank // A) + i // A``, so micro-batch ``m`` of any step
  (:func:`~allinone_lab.train.sampler.micro_batch_index`) comes from the same global streams whether
  ``W * A`` micro-batches are spread over ``W`` ranks or accumulated by one: the same batches, item for item.
  DataLoader worker ``w`` of ``K`` (``K`` divides ``streams_per_rank``) runs the
  batches ``j`` with ``j % K == w``, which is the order in which a DataLoader collects them, so the batches do
  not depend on the number of workers.
* ``set_position(epoch, batches_done)`` resumes a rank after ``batches_done`` batches: each stream starts at
  its first unconsumed item; shards wholly before it are not opened, samples before it in its first shard are
  passed over without being read into memory or decoded.
* :meth:`ShardDataset.order` gives the rows in the order this rank's batches hold them, so a DataLoader over
  the file dataset with that list as its sampler gives the same batches.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import io
import json
import logging
import math
import numbers
import os
import re
import shutil
import tarfile
import tempfile
import time
import urllib.request
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from .config import DataConfig
from .corpus import default_cache_dir, sha256_file
from .datasets import (
    ClassificationDataset,
    ClozeDataset,
    MultipleChoiceDataset,
    OpenQADataset,
    PairsDataset,
    RetrievalDataset,
    VCRDataset,
    VideoDataset,
    collate,
)
from .mixture import _largest_remainder
from .roots import read_manifest
from .table import iter_records
from .video import GIF_EXTENSIONS, IMAGE_EXTENSIONS, VideoReadError

log = logging.getLogger("allinone_lab.data")

FORMAT = "allinone-lab-shards/1"
MANIFEST = "shards.json"
INDEX = "index.npy"
MEDIA_COLUMNS = ("video", "image", "metadata", "mask")
KEY_DIGITS = 9
_SHARD_STREAM = 0x53484152  # the shard permutation's random stream
_SAMPLE_STREAM = 0x53414D50  # the within-shard permutations' random stream
_CORPUS_CLASSES = {"pairs": PairsDataset, "retrieval": RetrievalDataset, "mc": MultipleChoiceDataset,
                   "qa": OpenQADataset, "cloze": ClozeDataset, "classification": ClassificationDataset}  # fmt: skip
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}


# Packing ---------------------------------------------------------------------------------------------------
def _resolve_split(root: Path, split: str, subtask: str | None) -> dict[str, Any]:
    """What packing needs of ``split`` of the prepared dataset at ``root``: name, task, class, annotation
    file, default augmentation and vocabulary files (``{dataset kwarg: path}``)."""
    manifest = read_manifest(root)
    name = manifest["dataset"]
    if name == "corpus":
        task, _, part = split.partition("_")
        if task not in _CORPUS_CLASSES or part not in ("train", "test") or subtask is not None:
            raise ValueError(f"shards: --split {split!r} of the built-in corpus at {root}: expected "
                             f"<task>_<train|test> with task in {sorted(_CORPUS_CLASSES)} and no --subtask")  # fmt: skip
        cls = _CORPUS_CLASSES[task]
        vocab = {"qa": ("answers", "answers.json"), "classification": ("classes", "classes.json")}.get(task)
        return {"dataset": name, "task": task, "class": cls.__name__, "split": split, "subtask": None,
                "annotation": root / "annotations" / f"{split}.jsonl", "train": part == "train",
                "vocab": {vocab[0]: root / "annotations" / vocab[1]} if vocab else {}}  # fmt: skip
    from .registry import DATASETS

    spec = DATASETS[name]
    key, sub = spec.locate(split, subtask)
    cls = spec.dataset_class(sub)
    vocab: dict[str, Path] = {}
    if spec.vocab and cls is OpenQADataset:
        vocab["answers"] = root / "annotations" / spec.vocab
    if spec.vocab and cls is ClassificationDataset:
        vocab["classes"] = root / "annotations" / spec.vocab
    return {"dataset": name, "task": spec.items(sub), "class": cls.__name__, "split": key, "subtask": sub,
            "annotation": root / "annotations" / spec.splits[key], "train": key in spec.train_splits,
            "vocab": vocab}  # fmt: skip


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def reencode_video(path: str | os.PathLike, short_side: int, gop: int | None = None) -> bytes | None:
    """The video at ``path`` re-encoded (H.264, CRF 23, yuv420p, PyAV) with its short side at ``short_side``
    pixels, every frame kept, in order, at the same frame rate (so time and frame windows select the same
    frames). ``gop``: a key frame at least every ``gop`` frames (x264 may add one at a scene cut; None: x264's
    default, at most every 250), so that
    sparse sampling seeks to a key frame near each sampled frame instead of decoding from the start
    (benchmarks/decode_rate.py measures the difference). None when its short side is already at most
    ``short_side`` and no ``gop`` is asked for; with a ``gop``, a smaller video keeps its size. Raises
    :class:`VideoReadError` (naming the file) when it cannot be decoded or holds fewer frames than its
    container lists."""
    import av

    path = Path(path)
    try:
        src = av.open(str(path))
    except Exception as exc:
        raise VideoReadError(path, f"cannot open the file ({type(exc).__name__}: {exc})") from exc
    with src:
        if not src.streams.video:
            raise VideoReadError(path, "no video stream")
        vin = src.streams.video[0]
        vin.thread_type = "AUTO"
        w, h = vin.codec_context.width, vin.codec_context.height
        if min(h, w) <= short_side and gop is None:
            return None
        rate = Fraction(vin.average_rate or vin.guessed_rate or 25).limit_denominator(100000)
        if min(h, w) <= short_side:
            nh, nw = _even(h), _even(w)
        else:
            scale = short_side / min(h, w)
            nh, nw = (short_side, _even(w * scale)) if h <= w else (_even(h * scale), short_side)
        buf = io.BytesIO()
        n = 0
        try:
            with av.open(buf, "w", format=_CONTAINERS.get(path.suffix.lower(), "mp4")) as out:
                vout = out.add_stream("libx264", rate=rate)
                vout.width, vout.height, vout.pix_fmt = nw, nh, "yuv420p"
                vout.options = {"crf": "23", "preset": "veryfast", "bf": "0"}
                if gop is not None:
                    vout.options = {**vout.options, "g": str(gop), "keyint_min": str(gop)}
                for frame in src.decode(vin):
                    small = frame.reformat(width=nw, height=nh, format="yuv420p", interpolation="AREA")
                    small.pts, small.time_base = n, 1 / rate
                    n += 1
                    for packet in vout.encode(small):
                        out.mux(packet)
                for packet in vout.encode():
                    out.mux(packet)
        except Exception as exc:
            raise VideoReadError(path, f"re-encoding failed after {n} frames ({type(exc).__name__}: {exc})") from exc
        if n == 0 or (vin.frames and n < vin.frames):
            raise VideoReadError(path, f"truncated or corrupt: decoded {n} frames, the container lists {vin.frames}")
    return buf.getvalue()


def _member_name(column: str, rel: str) -> str:
    return f"{column}{Path(rel).suffix.lower()}"


def _scan_shard(path: Path, shard: int, first: int, count: int, index: np.ndarray) -> None:
    """Fill ``index[first:first+count]`` with ``(shard, offset, length)`` of every sample of the shard file."""
    spans: dict[int, list[int]] = {}
    with tarfile.open(path, "r:") as tar:
        for info in tar:
            key = int(info.name.split(".", 1)[0])
            end = info.offset_data + -(-info.size // 512) * 512
            span = spans.setdefault(key, [info.offset, end])
            span[1] = end
    if sorted(spans) != list(range(first, first + count)):
        raise RuntimeError(f"shards: {path} holds keys {sorted(spans)[:5]}...; expected {first}..{first + count - 1}")
    for key, (start, end) in spans.items():
        index[key] = (shard, start, end - start)


def pack_shards(root: str | os.PathLike, split: str, out: str | os.PathLike, subtask: str | None = None,
                max_count: int = 1000, max_bytes: int = 256 * 2**20, short_side: int | None = None,
                force: bool = False, progress: Callable[[str], None] | None = None,
                gop: int | None = 16) -> dict[str, Any]:  # fmt: skip
    """Pack ``split`` (``subtask``) of the prepared dataset at ``root`` into WebDataset shards under ``out``
    (see the module docstring); returns the manifest.

    A shard closes at ``max_count`` samples or before it would pass ``max_bytes``. ``short_side``: re-encode
    every video (not GIFs or images) to that short side, a smaller one at its size, with a key frame at least
    every ``gop`` frames (None: x264's spacing, and a video already small enough is packed as it is): sparse
    sampling then decodes a few frames from a near key frame, about 2.5x the clips per core of x264's
    spacing at 256 px (benchmarks/decode_rate.py). A video that cannot be re-encoded is packed as it is and
    listed in the manifest's ``reencode_failed``. An ``out`` that already holds ``shards.json`` is refused
    unless ``force``."""
    import webdataset as wds

    root, out = Path(root), Path(out)
    for name, value, low in (("max_count", max_count, 1), ("max_bytes", max_bytes, 1),
                             ("short_side", short_side if short_side is not None else 2, 2),
                             ("gop", gop if gop is not None else 1, 1)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"pack_shards: {name}={value!r}; expected an integer >= {low}")
    info = _resolve_split(root, split, subtask)
    annotation: Path = info["annotation"]
    if not annotation.is_file():
        raise FileNotFoundError(f"pack_shards: the annotation file of split {info['split']!r} is missing: {annotation}")
    if (out / MANIFEST).exists() and not force:
        raise FileExistsError(f"pack_shards: {out / MANIFEST} exists; pass force=True (--force) to pack again")
    out.mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(exist_ok=True)
    t0 = time.perf_counter()
    prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{info['dataset']}-{info['split']}")
    shards: list[dict[str, Any]] = []
    rows_total, fields = 0, {"json"}
    missing: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    reencoded = kept = 0
    spans: list[tuple[Path, int, int, int]] = []  # (file, shard, first, count)
    writer = None
    tmp: Path | None = None
    count = size = 0

    def close() -> None:
        nonlocal writer, tmp
        if writer is None:
            return
        writer.close()
        k = len(shards)
        name = f"{prefix}-{k:06d}.tar"
        final = out / name
        os.replace(tmp, final)
        first = rows_total - count
        shards.append({"name": name, "count": count, "first": first, "bytes": final.stat().st_size,
                       "sha256": sha256_file(final)})  # fmt: skip
        spans.append((final, k, first, count))
        if progress is not None:
            progress(f"{name}: {count} samples, {final.stat().st_size:,} bytes")
        writer, tmp = None, None

    try:
        for i, row in enumerate(iter_records(annotation)):
            sample: dict[str, Any] = {"__key__": f"{i:0{KEY_DIGITS}d}",
                                      "json": json.dumps(row, ensure_ascii=False, sort_keys=True).encode("utf-8")}  # fmt: skip
            for column in MEDIA_COLUMNS:
                rel = row.get(column)
                if not rel or not isinstance(rel, str):
                    continue
                path = root / rel
                if not path.is_file():
                    missing.append({"row": i, "column": column, "path": rel})
                    continue
                data = None
                if short_side is not None and column == "video" and path.suffix.lower() not in IMAGE_EXTENSIONS + GIF_EXTENSIONS:
                    try:
                        data = reencode_video(path, short_side, gop)
                    except VideoReadError as exc:
                        failed.append({"row": i, "path": rel, "reason": exc.reason})
                    if data is None:
                        kept += 1
                    else:
                        reencoded += 1
                sample[_member_name(column, rel)] = data if data is not None else path.read_bytes()
                fields.add(_member_name(column, rel))
            nbytes = sum(len(v) + 1024 for k, v in sample.items() if not k.startswith("__"))
            if writer is not None and (count >= max_count or size + nbytes > max_bytes):
                close()
            if writer is None:
                tmp = out / f".{prefix}-{len(shards):06d}.tar.tmp-{os.getpid()}"
                writer = wds.TarWriter(str(tmp), encoder=False, mtime=0.0)
                count = size = 0
            writer.write(sample)
            count, size, rows_total = count + 1, size + nbytes, rows_total + 1
        close()
    finally:
        if writer is not None:
            writer.close()
        if tmp is not None and tmp.exists():
            tmp.unlink()
    if rows_total == 0:
        raise ValueError(f"pack_shards: {annotation} has no rows")
    index = np.zeros((rows_total, 3), dtype=np.int64)
    for path, k, first, n in spans:
        _scan_shard(path, k, first, n, index)
    _atomic_bytes(out / INDEX, _npy_bytes(index))
    ann_name = f"annotations/{annotation.name}"
    _atomic_bytes(out / ann_name, annotation.read_bytes())
    vocab = {}
    for kwarg, path in info["vocab"].items():
        _atomic_bytes(out / "annotations" / path.name, Path(path).read_bytes())
        vocab[kwarg] = f"annotations/{path.name}"
    manifest = {
        "format": FORMAT, "dataset": info["dataset"], "task": info["task"], "class": info["class"],
        "split": info["split"], "subtask": info["subtask"], "train": info["train"], "count": rows_total,
        "annotation": ann_name, "annotation_sha256": sha256_file(out / ann_name), "vocab": vocab,
        "index": INDEX, "source_root": str(root.resolve()),
        "source_manifest_sha256": sha256_file(root / "manifest.json"),
        "fields": sorted(fields),
        "reencoded": None if short_side is None else {
            "short_side": short_side, "codec": "libx264", "crf": 23, "gop": gop, "videos": reencoded,
            "kept_as_is": kept, "failed": len(failed)},
        "reencode_failed": failed, "missing_media": {"count": len(missing), "rows": missing[:100]},
        "shards": shards, "max_count": max_count, "max_bytes": max_bytes,
        "seconds": round(time.perf_counter() - t0, 3), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }  # fmt: skip
    _atomic_bytes(out / MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))
    return manifest


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _atomic_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# Reading: locations ------------------------------------------------------------------------------------------
def _is_url(location: str) -> bool:
    return location.startswith("pipe:") or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", location) is not None


def _read_all(location: str) -> bytes:
    """The bytes at a local path, a URL or a ``pipe:`` command (``webdataset.gopen``)."""
    if not _is_url(location):
        return Path(location).read_bytes()
    import webdataset as wds

    with wds.gopen(location, "rb") as f:
        return f.read()


def _read_range(location: str, start: int, length: int) -> bytes | None:
    """``length`` bytes at ``start`` of a local file or an ``http(s)`` URL; None where a byte range cannot be
    asked for (``pipe:`` and other schemes)."""
    if location.startswith("file://"):
        location = location[len("file://"):]
    if not _is_url(location):
        with open(location, "rb") as f:
            f.seek(start)
            return f.read(length)
    if location.startswith(("http://", "https://")):
        request = urllib.request.Request(location, headers={"Range": f"bytes={start}-{start + length - 1}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            data = response.read()
        return data if len(data) == length else None
    return None


class ShardSource:
    """One packed split: its manifest, where its shards and side files are, its annotation table (local copy).

    ``location``: the pack directory, its ``shards.json``, an ``http(s)`` URL of ``shards.json``, or a ``pipe:``
    command that prints it. ``url``: how to reach a file of the pack by name, a template with ``{name}`` (e.g.
    ``"pipe:aws s3 cp s3://bucket/webvid/{name} -"``); default: next to the manifest (required for ``pipe:``).
    Remote annotation and index files are fetched once into ``cache_dir`` (default the data cache) and checked
    against the manifest's sha256.
    """

    def __init__(self, location: str | os.PathLike, url: str | None = None,
                 cache_dir: str | os.PathLike | None = None) -> None:  # fmt: skip
        location = str(location)
        if not _is_url(location) and Path(location).is_dir():
            location = str(Path(location) / MANIFEST)
        if url is None:
            if location.startswith("pipe:"):
                raise ValueError(f"ShardSource: location {location!r} is a pipe: command; pass url= a template "
                                 f"with {{name}} that reaches each file of the pack")  # fmt: skip
            base = location.rsplit("/", 1)[0] if "/" in location else "."
            url = base + "/{name}"
        if "{name}" not in url:
            raise ValueError(f"ShardSource: url={url!r}; expected a template containing {{name}}")
        self.location, self.url = location, url
        try:
            manifest = json.loads(_read_all(location))
        except (OSError, ValueError) as exc:
            raise FileNotFoundError(f"ShardSource: cannot read the shard manifest {location!r} ({exc}); expected the "
                                    f"{MANIFEST} that `python -m allinone_lab.data.prepare shards` writes") from exc  # fmt: skip
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
            raise ValueError(f"ShardSource: {location}: format={got!r}; expected {FORMAT!r}")
        self.manifest = manifest
        self.shards: list[dict[str, Any]] = manifest["shards"]
        self.counts = np.array([s["count"] for s in self.shards], dtype=np.int64)
        self.firsts = np.array([s["first"] for s in self.shards], dtype=np.int64)
        if int(self.counts.sum()) != manifest["count"]:
            raise ValueError(f"ShardSource: {location}: the shards hold {int(self.counts.sum())} samples; the "
                             f"manifest's count is {manifest['count']}")  # fmt: skip
        self.local = not _is_url(url) or url.startswith("file://")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "shards"
        self._index: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.manifest["count"])

    def url_of(self, name: str) -> str:
        return self.url.format(name=name)

    def side_file(self, rel: str, sha256: str | None = None) -> Path:
        """A side file of the pack (annotation, vocabulary, index) as a local path; remote ones are fetched
        once into the cache and checked against ``sha256`` when given."""
        where = self.url_of(rel)
        if not _is_url(where) or where.startswith("file://"):
            return Path(where[len("file://"):] if where.startswith("file://") else where)
        tag = hashlib.sha256(f"{self.location}|{self.manifest.get('annotation_sha256')}".encode()).hexdigest()[:16]
        local = self.cache_dir / tag / rel
        if not local.is_file():
            data = _read_all(where)
            if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
                raise ValueError(f"ShardSource: {where}: sha256 differs from the manifest's {sha256}")
            _atomic_bytes(local, data)
        return local

    @property
    def index(self) -> np.ndarray:
        """``(rows, 3)``: shard, byte offset and byte length of every sample (memory-mapped when local)."""
        if self._index is None:
            self._index = np.load(self.side_file(self.manifest["index"]), mmap_mode="r")
        return self._index

    def name_of(self, row: int, member: str | None = None) -> str:
        """How a sample (or one of its members) is named in messages: ``<shard url>#<key>[.<member>]``."""
        k = int(np.searchsorted(self.firsts, row, side="right") - 1)
        key = f"{row:0{KEY_DIGITS}d}"
        return f"{self.url_of(self.shards[k]['name'])}#{key}" + (f".{member}" if member else "")

    def fetch(self, row: int) -> dict[str, bytes] | None:
        """The members of sample ``row`` by byte range; None where no byte range can be read."""
        shard, offset, length = (int(v) for v in self.index[row])
        where = self.url_of(self.shards[shard]["name"])
        data = _read_range(where, offset, length)
        if data is None:
            return None
        members: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(data + b"\0" * 1024), mode="r|") as tar:
            for info in tar:
                key, _, member = info.name.partition(".")
                if int(key) != row:
                    raise ValueError(f"{where}: bytes {offset}+{length} hold {info.name}; expected sample {row} "
                                     f"(index.npy does not match the shard)")  # fmt: skip
                members[member] = tar.extractfile(info).read()
        return members

    def read_shard(self, shard: int, rows: Sequence[int]) -> Iterator[tuple[int, dict[str, bytes]]]:
        """``(row, members)`` for ``rows`` (global indices inside shard ``shard``) in the order given. Samples
        not asked for are passed over (their bytes are neither kept nor decoded); reading stops after the last
        sample asked for, and rows in stored order are yielded as they are read."""
        import webdataset as wds
        from webdataset.tariterators import tar_file_iterator

        if not rows:
            return
        where = self.url_of(self.shards[shard]["name"])
        pending = [int(r) for r in rows]
        wanted, last = set(pending), max(pending)
        in_order = pending == sorted(pending)
        held: dict[int, dict[str, bytes]] = {}
        emitted = 0

        def select(fname: str) -> bool:
            row = int(fname.split(".", 1)[0])
            if row > last:
                raise _PastLast
            return row in wanted

        try:
            stream = wds.gopen(where, "rb") if _is_url(where) else open(where, "rb")
        except OSError as exc:
            raise OSError(f"cannot open shard {where!r}: {exc}") from exc
        current: tuple[int, dict[str, bytes]] | None = None
        try:
            try:
                for entry in tar_file_iterator(stream, select_files=select):
                    key, _, member = entry["fname"].partition(".")
                    row = int(key)
                    if current is not None and current[0] != row:
                        if in_order:
                            yield current
                            emitted += 1
                        else:
                            held[current[0]] = current[1]
                        current = None
                    if current is None:
                        current = (row, {})
                    current[1][member] = entry["data"]
            except _PastLast:
                pass
            except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
                raise OSError(f"shard {where!r} is unreadable: {type(exc).__name__}: {exc}") from exc
            if current is not None:
                if in_order:
                    yield current
                    emitted += 1
                else:
                    held[current[0]] = current[1]
        finally:
            stream.close()
        span = f"rows {int(self.firsts[shard])}..{int(self.firsts[shard] + self.counts[shard]) - 1}"
        if in_order:
            if emitted != len(pending):
                raise OSError(f"shard {where!r} ended after {emitted} of the {len(pending)} samples asked for; "
                              f"the manifest says it holds {span}")
            return
        lacking = [r for r in pending if r not in held]
        if lacking:
            raise OSError(f"shard {where!r} lacks samples {lacking[:5]}; the manifest says it holds {span}")
        for r in pending:
            yield r, held[r]


class _PastLast(Exception):
    """Raised while reading a shard once a member lies past the last sample asked for."""


# Reading: items through the file datasets' classes ----------------------------------------------------------
_SCRATCH: Path | None = None


def _scratch_dir() -> Path:
    """A private directory of this process for the media of the item being built (in memory where possible):
    ``<base>/<pid>``, the base made by the first process that asks (DataLoader workers started by fork share
    it, each in its own sub-directory) and removed when that process exits."""
    global _SCRATCH
    if _SCRATCH is None or not _SCRATCH.is_dir():
        base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        _SCRATCH = Path(tempfile.mkdtemp(prefix=f"allinone-shards-{os.getpid()}-", dir=base))
        atexit.register(shutil.rmtree, str(_SCRATCH), True)
    mine = _SCRATCH / str(os.getpid())
    mine.mkdir(exist_ok=True)
    return mine


class _ShardMedia:
    """Mixed into a file dataset class: before the class's item code runs on a row, the row's media are put in a
    scratch directory (``video_root``) at the paths the row names, from the streamed sample or by byte range;
    read errors name the shard member instead of the scratch file."""

    _feed: _Feed

    def _item(self, index: int) -> dict[str, Any]:
        try:
            self._feed.materialize(index)
            return super()._item(index)
        except VideoReadError as exc:
            name = self._feed.name_for(exc.path)
            raise VideoReadError(name, exc.reason.replace(exc.path, name)) from None
        finally:
            self._feed.clear()

    def load_video(self, index: int, *args: Any, **kwargs: Any):
        self._feed.materialize(index)  # another row's video (a VTM negative): by byte range
        return super().load_video(index, *args, **kwargs)


_SHARD_CLASSES: dict[str, type] = {}
for _cls in (PairsDataset, RetrievalDataset, OpenQADataset, MultipleChoiceDataset, ClozeDataset,
             ClassificationDataset, VCRDataset):  # fmt: skip
    _sub = type(f"Shard{_cls.__name__}", (_ShardMedia, _cls), {"__module__": __name__})
    _sub.__qualname__ = _sub.__name__
    globals()[_sub.__name__] = _sub  # picklable by name (DataLoader workers started by spawn)
    _SHARD_CLASSES[_cls.__name__] = _sub


class _Feed:
    """The media of one source's samples for its dataset object: the streamed sample, byte-range reads, and
    a few recent samples that stand in where no byte range can be read."""

    RECENT = 8

    def __init__(self, source: ShardSource, dataset: VideoDataset) -> None:
        self.source, self.dataset = source, dataset
        self.current: dict[int, dict[str, bytes]] = {}
        self.recent: OrderedDict[int, dict[str, bytes]] = OrderedDict()
        self.written: dict[str, str] = {}  # scratch path -> shard member name
        self.stats = {"streamed": 0, "fetched": 0, "stood_in": 0}

    def put(self, row: int, members: dict[str, bytes]) -> None:
        self.current = {row: members}
        self.stats["streamed"] += 1
        self.recent[row] = members
        while len(self.recent) > self.RECENT:
            self.recent.popitem(last=False)

    def _members(self, row: int) -> tuple[dict[str, bytes], int]:
        if row in self.current:
            return self.current[row], row
        members = self.source.fetch(row)
        if members is not None:
            self.stats["fetched"] += 1
            return members, row
        table = self.dataset.table
        mine = table.get(row, "video") if "video" in table else None
        for other in reversed(self.recent):
            if mine is None or table.get(other, "video") != mine:
                self.stats["stood_in"] += 1
                return self.recent[other], other
        raise RuntimeError(f"{self.source.location}: row {row} cannot be read by byte range from "
                           f"{self.source.url!r} and no streamed sample can stand in for it")  # fmt: skip

    def materialize(self, row: int) -> None:
        root = _scratch_dir()
        if self.dataset.video_root != root:  # a DataLoader worker: a directory of its own
            self.dataset.video_root = root
        table = self.dataset.table
        if all(str(root / str(table.get(row, c))) in self.written for c in MEDIA_COLUMNS
               if c in table and isinstance(table.get(row, c), str) and table.get(row, c)):  # fmt: skip
            return
        members, held = self._members(row)
        for column in MEDIA_COLUMNS:
            rel = table.get(row, column) if column in table else None
            if not rel or not isinstance(rel, str):
                continue
            path = root / rel
            member = _member_name(column, rel)
            name = self.source.name_of(held, member)
            data = members.get(member)
            if data is None:
                name += " (not in the shard: the file was missing when packed)"
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            self.written[str(path)] = name

    def name_for(self, path: str) -> str:
        return self.written.get(str(path), str(path))

    def clear(self) -> None:
        for path in self.written:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self.written = {}


# Reading: the plan of an epoch -------------------------------------------------------------------------------
class _Plan:
    """Arithmetic of one source's epoch streams (the MixtureDataset rule over passes of shards)."""

    def __init__(self, name: str, source: ShardSource, seed: int, shuffle: bool) -> None:
        self.name, self.source, self.seed, self.shuffle = name, source, seed, shuffle
        self.key = zlib.crc32(name.encode("utf-8"))
        self.n = len(source)

    def _pass(self, round_: int) -> tuple[np.ndarray, np.ndarray]:
        """Shard order of pass ``round_`` and the cumulative sample counts along it."""
        k = len(self.source.shards)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.key, round_, _SHARD_STREAM]).permutation(k)
        else:
            order = np.arange(k)
        return order, np.concatenate([[0], np.cumsum(self.source.counts[order])])

    def _within(self, round_: int, shard: int) -> np.ndarray:
        count = int(self.source.counts[shard])
        if not self.shuffle:
            return np.arange(count)
        return np.random.default_rng([self.seed, self.key, round_, _SAMPLE_STREAM, shard]).permutation(count)

    def segments(self, epoch: int, c: int) -> list[tuple[int, int, int]]:
        """The epoch's ``c`` items as pass ranges ``(round, start, stop)``, in stream order."""
        if c == 0:
            return []
        q, t = divmod(c, self.n)
        if t:
            m = -(-self.n // t)
            round_, j = divmod(epoch, m)
        else:
            round_, j = epoch, 0
        out = [(round_, 0, self.n)] * q
        if t:
            a = (j * t) % self.n
            out += [(round_, a, a + t)] if a + t <= self.n else [(round_, a, self.n), (round_, 0, a + t - self.n)]
        return out

    def runs(self, epoch: int, c: int, a: int, b: int) -> Iterator[tuple[int, list[int]]]:
        """Positions ``[a, b)`` of the epoch's stream as ``(shard, rows)`` runs, lazily and in order."""
        pos = 0
        for round_, start, stop in self.segments(epoch, c):
            length = stop - start
            lo, hi = max(a - pos, 0), min(b - pos, length)
            pos += length
            if lo >= hi:
                continue
            order, cum = self._pass(round_)
            p, end = start + lo, start + hi
            k = int(np.searchsorted(cum, p, side="right") - 1)
            while p < end:
                shard = int(order[k])
                s_lo, s_hi = p - int(cum[k]), min(end, int(cum[k + 1])) - int(cum[k])
                within = self._within(round_, shard)[s_lo:s_hi]
                yield shard, (int(self.source.firsts[shard]) + within).tolist()
                p, k = int(cum[k]) + s_hi, k + 1


def _resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        r, w = dist.get_rank(), dist.get_world_size()
    else:
        r, w = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    return (r if rank is None else rank), (w if world_size is None else world_size)


def _check_int(where: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{where}={value!r}; expected an integer >= {low}")
    return int(value)


class ShardDataset(IterableDataset):
    """Items (or collated batches) streamed from packed shards; see the module docstring for the order.

    Args:
        sources: one pack (a :class:`ShardSource` or its location: a directory, ``shards.json``, URL) or a
            mapping name -> pack, mixed by ``weights`` (items then carry ``"source"``, as in
            :class:`~allinone_lab.data.mixture.MixtureDataset`).
        cfg: the :class:`DataConfig` of the items (``on_error`` as for the file datasets).
        weights: name -> non-negative proportion, with a mapping of sources (default: equal shares).
        length: items per epoch (default: the sum of the sources' rows).
        seed: the order's seed and the items' (``VideoDataset.seed``): the file dataset of the same seed
            gives the same items.
        batch_size: yield batches of this many items (``collate_fn``, default :func:`collate`; use the
            DataLoader with ``batch_size=None``); None yields single items (positions count items).
        streams_per_rank: contiguous streams per rank; the DataLoader's ``num_workers`` must divide it.
        accumulation: micro-batches per optimizer step of this rank (``streams_per_rank`` a multiple of it): the
            training loop's; places the streams so that data parallelism equals accumulation (above).
        shuffle: permute the shards and the samples within each shard (by seed and epoch).
        train: augmentation (default: the packed split's own default).
        rank, world_size: default from ``torch.distributed`` or ``RANK``/``WORLD_SIZE`` (else 0 and 1).
        url: with a single location, the template that reaches its files (see :class:`ShardSource`).
        dataset_kwargs: passed to the item class (e.g. ``with_masks=True``, ``paint_masks=False``).
    """

    def __init__(self, sources: Any, cfg: DataConfig | None = None, weights: Mapping[str, float] | None = None,
                 length: int | None = None, seed: int = 0, batch_size: int | None = None,
                 collate_fn: Callable[[list[dict[str, Any]]], Any] = collate, streams_per_rank: int = 8,
                 shuffle: bool = True, train: bool | None = None, rank: int | None = None,
                 world_size: int | None = None, url: str | None = None,
                 skip_log: str | os.PathLike | None = None, accumulation: int = 1,
                 **dataset_kwargs: Any) -> None:  # fmt: skip
        self.mixed = isinstance(sources, Mapping)
        named = dict(sources) if self.mixed else {"": sources}
        if not named:
            raise ValueError("ShardDataset: sources={}; expected a pack location or a non-empty mapping")
        if weights is None:
            weights = {n: 1 for n in named}
        elif not self.mixed:
            raise ValueError("ShardDataset: weights given for a single source; pass a mapping of sources")
        if set(weights) != set(named):
            raise ValueError(f"ShardDataset: weights keys {sorted(weights)}; expected the sources' {sorted(named)}")
        fractions = []
        for n in named:
            w = weights[n]
            if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w) or w < 0:
                raise ValueError(f"ShardDataset: weights[{n!r}]={w!r}; expected a finite non-negative number")
            fractions.append(Fraction(w) if isinstance(w, numbers.Rational) else Fraction(float(w)))
        if not any(fractions):
            raise ValueError(f"ShardDataset: weights {dict(weights)} are all zero; expected one positive")
        self.seed = _check_int("ShardDataset: seed", seed, -(2**62))
        self.batch_size = None if batch_size is None else _check_int("ShardDataset: batch_size", batch_size, 1)
        self.streams_per_rank = _check_int("ShardDataset: streams_per_rank", streams_per_rank, 1)
        self.accumulation = _check_int("ShardDataset: accumulation", accumulation, 1)
        if self.streams_per_rank % self.accumulation:
            raise ValueError(f"ShardDataset: streams_per_rank={streams_per_rank} is not a multiple of "
                             f"accumulation={accumulation}")  # fmt: skip
        self.rank, self.world_size = _resolve_rank(rank, world_size)
        _check_int("ShardDataset: world_size", self.world_size, 1)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"ShardDataset: rank={self.rank}; expected 0 <= rank < world_size={self.world_size}")
        self.collate_fn, self.shuffle = collate_fn, bool(shuffle)
        self.cfg = cfg or DataConfig()
        self.names = list(named)
        self.sources: dict[str, ShardSource] = {}
        self.datasets: dict[str, VideoDataset] = {}
        self._plans: dict[str, _Plan] = {}
        skip_dir = Path(skip_log).parent if skip_log is not None else None
        for n, where in named.items():
            src = where if isinstance(where, ShardSource) else ShardSource(where, url=url if not self.mixed else None)
            m = src.manifest
            cls = _SHARD_CLASSES.get(m["class"])
            if cls is None:
                raise ValueError(f"ShardDataset: {src.location}: class={m['class']!r}; expected one of "
                                 f"{sorted(_SHARD_CLASSES)}")  # fmt: skip
            kwargs = {k: src.side_file(v) for k, v in m.get("vocab", {}).items()}
            kwargs.update(dataset_kwargs)
            if skip_log is not None:
                kwargs["skip_log"] = skip_log if not self.mixed else skip_dir / f"{Path(skip_log).stem}-{n}.jsonl"
            ann = src.side_file(m["annotation"], m.get("annotation_sha256"))
            ds = cls(ann, self.cfg, video_root=_scratch_dir(), train=m["train"] if train is None else train,
                     seed=self.seed, **kwargs)  # fmt: skip
            if len(ds) != len(src):
                raise ValueError(f"ShardDataset: {src.location}: the annotation has {len(ds)} rows; the shards "
                                 f"hold {len(src)}")  # fmt: skip
            ds._feed = _Feed(src, ds)
            self.sources[n], self.datasets[n] = src, ds
            self._plans[n] = _Plan(n or "shards", src, self.seed, self.shuffle)
        sizes = [len(self.sources[n]) for n in self.names]
        self.length = sum(sizes) if length is None else _check_int("ShardDataset: length", length, 1)
        counts = _largest_remainder(fractions, self.length)
        self.counts = dict(zip(self.names, counts, strict=True))
        position = np.concatenate([(np.arange(c, dtype=np.float64) + 0.5) / c for c in counts if c])
        code = np.concatenate([np.full(c, k, dtype=np.int16) for k, c in enumerate(counts) if c])
        self._code = code[np.argsort(position, kind="stable")]  # (length,) source number of every position
        self.items_per_stream = ((self.length // (self.world_size * self.streams_per_rank))
                                 // (self.batch_size or 1) * (self.batch_size or 1))  # fmt: skip
        if self.items_per_stream == 0:
            raise ValueError(
                f"ShardDataset: length={self.length} is smaller than world_size={self.world_size} x "
                f"streams_per_rank={self.streams_per_rank} x batch_size={self.batch_size or 1}; expected at "
                f"least one batch per stream (lower streams_per_rank)"
            )
        self.epoch, self.batches_done = 0, 0
        self.set_epoch(0)

    # ---- position ----------------------------------------------------------------------------------------
    @property
    def batches_per_epoch(self) -> int:
        """Batches (items, without ``batch_size``) this rank yields in a whole epoch."""
        return self.streams_per_rank * self.items_per_stream // (self.batch_size or 1)

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its beginning (and set the item classes' random stream)."""
        self.set_position(epoch, 0)

    def set_position(self, epoch: int, batches_done: int) -> None:
        """Resume at ``epoch`` after this rank's first ``batches_done`` batches (items, without ``batch_size``)."""
        self.epoch = _check_int("ShardDataset.set_position: epoch", epoch, 0)
        self.batches_done = _check_int("ShardDataset.set_position: batches_done", batches_done, 0)
        if self.batches_done > self.batches_per_epoch:
            raise ValueError(f"ShardDataset.set_position: batches_done={batches_done}; expected at most "
                             f"{self.batches_per_epoch} (batches of rank {self.rank} per epoch)")  # fmt: skip
        for ds in self.datasets.values():
            ds.set_epoch(self.epoch)

    def __len__(self) -> int:
        return self.batches_per_epoch - self.batches_done

    # ---- the plan ----------------------------------------------------------------------------------------
    def _stream_range(self, stream: int) -> tuple[int, int]:
        """Positions ``[start, stop)`` of the epoch owned by this rank's ``stream`` (before any resume)."""
        a = self.accumulation
        g = ((self.rank * a + stream % a) * (self.streams_per_rank // a) + stream // a) * self.items_per_stream
        return g, g + self.items_per_stream

    def _consumed(self, stream: int) -> int:
        """Items of ``stream`` in the first ``batches_done`` batches of this rank."""
        t, d = self.streams_per_rank, self.batches_done
        return max(0, -(-(d - stream) // t)) * (self.batch_size or 1)

    def _stream_rows(self, stream: int) -> tuple[np.ndarray, dict[str, Iterator[tuple[int, list[int]]]]]:
        """Source numbers of the stream's remaining positions and, per source, its ``(shard, rows)`` runs."""
        g0, g1 = self._stream_range(stream)
        g0 += self._consumed(stream)
        codes = self._code[g0:g1]
        runs = {}
        for k, n in enumerate(self.names):
            a = int(np.count_nonzero(self._code[:g0] == k))
            b = a + int(np.count_nonzero(codes == k))
            runs[n] = self._plans[n].runs(self.epoch, self.counts[n], a, b)
        return codes, runs

    def order(self) -> list[Any]:
        """The rows this rank's remaining batches hold, in order (``(source, row)`` pairs for a mixture): a
        DataLoader over the file dataset with this list as its sampler gives the same batches."""
        per_stream = []
        for i in range(self.streams_per_rank):
            codes, runs = self._stream_rows(i)
            rows = {n: iter([r for _, rs in runs[n] for r in rs]) for n in self.names}
            seq = [(self.names[c], next(rows[self.names[c]])) for c in codes]
            per_stream.append(seq if self.mixed else [r for _, r in seq])
        b = self.batch_size or 1
        out, done = [], self.batches_done
        for j in range(done, self.batches_per_epoch):
            i = j % self.streams_per_rank
            k = (j // self.streams_per_rank) - (-(-(done - i) // self.streams_per_rank) if done > i else 0)
            out.extend(per_stream[i][k * b:(k + 1) * b])
        return out

    # ---- iteration ---------------------------------------------------------------------------------------
    def _stream_items(self, stream: int) -> Iterator[dict[str, Any]]:
        codes, runs = self._stream_rows(stream)
        readers = {n: self._read(n, runs[n]) for n in self.names}
        for c in codes:
            name = self.names[c]
            row, members = next(readers[name])
            ds = self.datasets[name]
            ds._feed.put(row, members)
            item = ds[row]
            if self.mixed:
                item["source"] = name
            yield item

    def _read(self, name: str, runs: Iterator[tuple[int, list[int]]]) -> Iterator[tuple[int, dict[str, bytes]]]:
        src = self.sources[name]
        for shard, rows in runs:
            yield from src.read_shard(shard, rows)

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        if self.streams_per_rank % workers:
            raise ValueError(f"ShardDataset: DataLoader num_workers={workers} does not divide "
                             f"streams_per_rank={self.streams_per_rank}; expected a divisor")  # fmt: skip
        role = (worker + self.batches_done) % workers  # the worker the next batch comes from leads
        b = self.batch_size or 1
        streams = {i: self._stream_items(i) for i in range(self.streams_per_rank) if i % workers == role}
        for j in range(self.batches_done, self.batches_per_epoch):
            if j % workers != role:
                continue
            it = streams[j % self.streams_per_rank]
            items = [next(it) for _ in range(b)]
            yield items[0] if self.batch_size is None else self.collate_fn(items)

    # ---- bookkeeping -------------------------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """Per source (this process): samples streamed, rows read by byte range, rows stood in for."""
        return {n or "shards": dict(ds._feed.stats) for n, ds in self.datasets.items()}

    def skipped_files(self) -> list[dict[str, Any]]:
        """Every skip so far (all workers): ``{"path", "reason", "item", "row"}`` (+ ``"source"`` in a mixture),
        ``path`` naming the shard member (``<shard>#<key>.video.mp4``)."""
        out = []
        for n, ds in self.datasets.items():
            out.extend({**e, "source": n} if self.mixed else e for e in ds.skipped_files())
        return out

    def skip_summary(self, log_it: bool = True) -> dict[str, Any]:
        """``{"count", "files": {path: reason}}`` (+ ``"by_source"`` in a mixture), as the file datasets'."""
        entries = self.skipped_files()
        summary: dict[str, Any] = {"count": len(entries), "files": {e["path"]: e["reason"] for e in entries}}
        if self.mixed:
            summary["by_source"] = {n: {"count": sum(e["source"] == n for e in entries),
                                        "files": {e["path"]: e["reason"] for e in entries if e["source"] == n}}
                                    for n in self.names}  # fmt: skip
        if log_it and entries:
            log.warning("ShardDataset: %d skipped item(s), %d file(s): %s", len(entries), len(summary["files"]),
                        sorted(summary["files"]))  # fmt: skip
        return summary

    def reset_skips(self) -> None:
        for ds in self.datasets.values():
            ds.reset_skips()


# Command line --------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m allinone_lab.data.prepare shards ...``"""
    p = argparse.ArgumentParser(
        prog="python -m allinone_lab.data.prepare shards",
        description="Pack one split of a prepared dataset (or of the built-in corpus) into WebDataset tar shards "
        "with a manifest (shards.json), for streaming with allinone_lab.data.shards.ShardDataset.",
    )
    p.add_argument("--root", type=Path, required=True, help="the prepared dataset (its manifest.json)")
    p.add_argument("--split", required=True, help="split key (msrvtt: train_9k; corpus: pairs_train, qa_test...)")
    p.add_argument("--subtask", default=None, help="TGIF-QA / VCR subtask (or name the split with it: qa_val)")
    p.add_argument("--out", type=Path, required=True, help="directory for the shards and shards.json")
    p.add_argument("--max-count", type=int, default=1000, help="samples per shard at most (default 1000)")
    p.add_argument("--max-bytes", type=int, default=256 * 2**20, help="bytes per shard at most (default 256 MiB)")
    p.add_argument("--short-side", type=int, default=None,
                   help="re-encode videos to this short side in pixels (e.g. 256); default: bytes as they are")
    p.add_argument("--gop", type=int, default=16,
                   help="with --short-side: a key frame at least every GOP frames (default 16; 0: x264's spacing)")
    p.add_argument("--force", action="store_true", help="pack again into an --out that holds shards.json")
    a = p.parse_args(argv)
    try:
        m = pack_shards(a.root, a.split, a.out, a.subtask, a.max_count, a.max_bytes, a.short_side, a.force,
                        progress=print, gop=a.gop or None)  # fmt: skip
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        p.error(str(exc))
    print(json.dumps({k: m[k] for k in ("dataset", "split", "count", "fields", "reencoded", "seconds")}
                     | {"shards": len(m["shards"]), "missing_media": m["missing_media"]["count"],
                        "manifest": str(a.out / MANIFEST)}))  # fmt: skip
    return 0
