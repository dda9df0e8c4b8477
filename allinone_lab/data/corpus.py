"""The built-in temporal video-text corpus: procedurally generated clips with templated captions.

Clips show one or two objects (shape, colour, size) on a static textured background doing an event: moving
left/right/up/down, turning from one colour to another, appearing or disappearing. Everything is a
deterministic function of the seed. The corpus is written once into a cache directory as real ``.mp4`` files
(H.264, intra-only, lossless) plus annotation files in the same jsonl format as the prepared real datasets.

Single-frame property (directions). With ``motion="torus"`` (the default) motion wraps around the frame and
the start position is uniform over all pixels, so at every frame index the object's position is uniform
whatever its direction; shapes, colours, sizes and backgrounds are drawn independently of the direction. A
frame is therefore identically distributed under "left", "right", "up" and "down": only comparing frames
tells them apart. Every frame is coded as a key frame, so decoding adds no information from neighbouring
frames. With ``motion="bounded"`` objects never cross the border: the start is uniform over the positions
that keep the whole path inside the frame. Then a frame drawn at a random index is still identically
distributed under opposite directions, but a frame at a known index is not (early in a clip, objects moving
right are on the left): a model that knows each frame's time can read the direction from positions without
comparing frames. The coordinate across the motion is drawn from the band that the middle of the path covers,
so the middle frame of a clip with an odd number of frames (the frame a single-frame model is evaluated on) is
identically distributed under all four directions.

Decoded frames. Next to the videos the corpus keeps every clip's frames as decoded from its ``.mp4`` (one
uint8 array, memory-mapped, :func:`frame_cache`), so that training reads each clip from memory on every epoch
instead of decoding it again; the datasets get the same tensors either way. The cache is keyed by the
corpus's manifest and its videos' sizes and modification times, so a changed corpus never reads stale frames.

Colour changes and appear/disappear cannot have that property: frame 0 shows the first state and the last
frame the final state. They appear in pre-training pairs and retrieval captions but are excluded from the
temporal multiple-choice, QA and cloze items (cloze items on the final colour exist, marked
``kind="final_colour"``, ``temporal=False``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .video import FrameCache, read_all_frames, write_video

log = logging.getLogger("allinone_lab.data")

CORPUS_VERSION = 6
FRAME_CACHE_VERSION = 1  # layout of the decoded-frame cache (frames/frames-<key>.npy + .json)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 30, 30),
    "green": (30, 200, 60),
    "blue": (40, 80, 240),
    "yellow": (240, 220, 30),
    "purple": (170, 50, 210),
}
SIZES: dict[str, float] = {"small": 0.09, "big": 0.15}  # radius as a fraction of the frame side
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
EVENTS: tuple[str, ...] = ("move", "turn", "appear", "disappear")
# Classification labels: the event of the clip's first object, a motion split by its direction.
EVENT_CLASSES: tuple[str, ...] = (
    "appears",
    "disappears",
    "moves down",
    "moves left",
    "moves right",
    "moves up",
    "turns",
)
SIZE_PRESETS: dict[str, int] = {"smoke": 60, "cpu": 3000}
MOTIONS: tuple[str, ...] = ("torus", "bounded")
MOTION_TEMPLATES = (
    "a {adj} {shape} moves {dir}",
    "the {adj} {shape} is moving {dir}",
    "a {adj} {shape} goes {dir}",
)


@dataclass
class CorpusConfig:
    """What to generate. ``size`` picks the clip count (``smoke``: 60, ``cpu``: 3000) unless ``num_clips``."""

    size: str = "smoke"
    num_clips: int | None = None
    image_size: int = 64  # even; 224 for paper-scale smoke runs
    num_frames: int = 16  # stored frames per clip
    fps: int = 8
    seed: int = 0
    speed: float | None = (
        None  # px per stored frame = floor(image_size * speed); None: fastest without aliasing
    )
    tsn_segments: int = 3  # frames the loader samples; sets the automatic speed
    event_probs: tuple[float, float, float, float] = (0.6, 0.2, 0.1, 0.1)  # move, turn, appear, disappear
    two_object_prob: float = 0.3  # of motion clips
    motion: str = "torus"  # torus: objects wrap around the border; bounded: they stay inside the frame
    test_fraction: float = 0.2

    def __post_init__(self) -> None:
        self.event_probs = tuple(float(p) for p in self.event_probs)
        if self.size not in SIZE_PRESETS:
            raise ValueError(f"CorpusConfig.size={self.size!r}: expected one of {list(SIZE_PRESETS)}")
        if self.image_size < 16 or self.image_size % 2:
            raise ValueError(f"CorpusConfig.image_size={self.image_size!r}: expected an even integer >= 16")
        if self.num_frames < 2:
            raise ValueError(f"CorpusConfig.num_frames={self.num_frames!r}: expected an integer >= 2")
        if self.num_clips is not None and self.num_clips < 10:
            raise ValueError(f"CorpusConfig.num_clips={self.num_clips!r}: expected None or an integer >= 10")
        if len(self.event_probs) != 4 or abs(sum(self.event_probs) - 1) > 1e-6 or min(self.event_probs) < 0:
            raise ValueError(
                f"CorpusConfig.event_probs={self.event_probs!r}: expected 4 probabilities summing to 1"
            )
        if not 0 < self.test_fraction < 1:
            raise ValueError(
                f"CorpusConfig.test_fraction={self.test_fraction!r}: expected a fraction in (0, 1)"
            )
        if self.tsn_segments < 1:
            raise ValueError(f"CorpusConfig.tsn_segments={self.tsn_segments!r}: expected an integer >= 1")
        if self.motion not in MOTIONS:
            raise ValueError(f"CorpusConfig.motion={self.motion!r}: expected one of {list(MOTIONS)}")
        if self.speed_px < 1:
            raise ValueError(
                f"CorpusConfig.speed={self.speed!r}: gives {self.speed_px} px/frame, expected >= 1"
            )
        if self.motion == "bounded" and self.speed_px * (self.num_frames - 1) > self.free_path:
            raise ValueError(
                f"CorpusConfig.speed={self.speed!r}: a {self.speed_px * (self.num_frames - 1)}-px path over "
                f"{self.num_frames} frames does not fit inside a {self.image_size}-px frame with motion='bounded' "
                f"(at most {self.free_path} px for the biggest object); lower speed or num_frames"
            )

    @property
    def clips(self) -> int:
        return self.num_clips if self.num_clips is not None else SIZE_PRESETS[self.size]

    @property
    def max_tsn_gap(self) -> int:
        """Largest frame distance between consecutive TSN-sampled frames (training, random per segment)."""
        t, s = self.num_frames, self.tsn_segments
        lo = [(i * t) // s for i in range(s)]
        hi = [max((i + 1) * t // s, lo[i] + 1) for i in range(s)]
        return max([hi[i + 1] - 1 - lo[i] for i in range(s - 1)] or [t - 1])

    @property
    def free_path(self) -> int:
        """Pixels the centre of the biggest object can travel while the object stays whole inside the frame."""
        return self.image_size - 1 - 2 * object_radius("big", self.image_size)

    @property
    def speed_px(self) -> int:
        """Displacement per stored frame. Automatic: the largest speed whose largest TSN step stays under half
        the frame, so the direction between sampled frames is never ambiguous on the torus (3 px at 64 px/16
        frames, 11 px at 224 px; 3 px at 32 px with 8 frames); with ``motion="bounded"`` also no more than
        lets the biggest object's whole path fit inside the frame (6 px at 64 px with 8 frames)."""
        if self.speed is not None:
            return int(np.floor(self.image_size * self.speed))
        speed = int((self.image_size // 2 - 1) // self.max_tsn_gap)
        if self.motion == "bounded":
            speed = min(speed, self.free_path // (self.num_frames - 1))
        return speed

    def fingerprint(self) -> str:
        blob = json.dumps({**dataclasses.asdict(self), "version": CORPUS_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


# Rendering ----------------------------------------------------------------------------------------------
def object_radius(size: str, n: int) -> int:
    """Radius in pixels of a ``small`` or ``big`` object in an ``n``-px frame."""
    return max(2, int(round(SIZES[size] * n)))


def _torus_offsets(n: int, c: int) -> np.ndarray:
    """Signed wrapped offsets ``p - c`` in ``[-n/2, n/2)`` for p = 0..n-1."""
    return (np.arange(n) - c + n // 2) % n - n // 2


def shape_mask(shape: str, radius: int, cx: int, cy: int, n: int) -> np.ndarray:
    """Boolean ``(n, n)`` mask of a shape centred at integer ``(cx, cy)`` on an ``n x n`` torus."""
    dx = _torus_offsets(n, cx)[None, :]
    dy = _torus_offsets(n, cy)[:, None]
    if shape == "circle":
        return dx * dx + dy * dy <= radius * radius
    if shape == "square":
        r = int(round(radius * 0.85))
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if shape == "triangle":  # apex up
        return (dy >= -radius) & (dy <= radius) & (2 * np.abs(dx) <= dy + radius)
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def background(n: int, rng: np.random.Generator) -> np.ndarray:
    """Static textured background ``(n, n, 3)`` uint8: low-frequency grey-green noise plus fine grain."""
    import torch
    import torch.nn.functional as F

    coarse = torch.from_numpy(rng.random((1, 3, 6, 6)).astype(np.float32))
    smooth = (
        F.interpolate(coarse, size=(n, n), mode="bicubic", align_corners=False)[0].permute(1, 2, 0).numpy()
    )
    base = 70 + 50 * smooth + 4 * rng.random((n, n, 1))
    return np.clip(base, 0, 255).astype(np.uint8)


def object_state(obj: dict[str, Any], t: int) -> tuple[int, int, str | None]:
    """``(cx, cy, colour or None if hidden)`` of an object at frame ``t``."""
    n = obj["n"]
    dx, dy = DIRECTIONS.get(obj.get("direction") or "", (0, 0))
    cx = (obj["x0"] + dx * obj["speed"] * t) % n
    cy = (obj["y0"] + dy * obj["speed"] * t) % n
    ev = obj["event"]
    if ev == "turn":
        return cx, cy, obj["colour"] if t < obj["t_change"] else obj["colour2"]
    if ev == "appear":
        return cx, cy, obj["colour"] if t >= obj["t_change"] else None
    if ev == "disappear":
        return cx, cy, obj["colour"] if t < obj["t_change"] else None
    return cx, cy, obj["colour"]


def render_clip(
    bg: np.ndarray, objects: list[dict[str, Any]], num_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Frames uint8 ``(T, n, n, 3)`` and object-id masks uint8 ``(T, n, n)`` (0 background, k+1 object k).

    Objects are painted in list order, so a later object covers an earlier one (independently of motion).
    """
    n = bg.shape[0]
    frames = np.repeat(bg[None], num_frames, axis=0)
    masks = np.zeros((num_frames, n, n), np.uint8)
    for t in range(num_frames):
        for k, obj in enumerate(objects):
            cx, cy, colour = object_state(obj, t)
            if colour is None:
                continue
            m = shape_mask(obj["shape"], obj["radius"], cx, cy, n)
            frames[t][m] = COLOURS[colour]
            masks[t][m] = k + 1
    return frames, masks


# Sampling ------------------------------------------------------------------------------------------------
def _adj(obj: dict[str, Any], colour_key: str = "colour") -> str:
    return f"{obj['size']} {obj[colour_key]}"


def _new_object(
    rng: np.random.Generator, cfg: CorpusConfig, event: str, exclude: tuple[str, str] | None = None
):
    n = cfg.image_size
    while True:  # a second object differs in shape and colour, so "the red object" names one object
        shape = SHAPES[rng.integers(len(SHAPES))]
        colour = list(COLOURS)[rng.integers(len(COLOURS))]
        if exclude is None or (shape != exclude[0] and colour != exclude[1]):
            break
    size = list(SIZES)[rng.integers(len(SIZES))]
    obj: dict[str, Any] = {
        "n": n,
        "shape": shape,
        "colour": colour,
        "size": size,
        "radius": object_radius(size, n),
        "x0": int(rng.integers(n)),  # uniform start: the key to the single-frame property
        "y0": int(rng.integers(n)),
        "speed": cfg.speed_px,
        "event": event,
        "direction": None,
    }
    if event == "move":
        obj["direction"] = list(DIRECTIONS)[rng.integers(4)]
    if cfg.motion == "bounded":
        _start_inside(obj, cfg.num_frames, rng)
    if event != "move":
        obj["speed"] = 0
        lo, hi = cfg.num_frames // 4, cfg.num_frames - cfg.num_frames // 4
        obj["t_change"] = int(rng.integers(max(1, lo), max(lo + 1, hi)))
        if event == "turn":
            others = [c for c in COLOURS if c != colour]
            obj["colour2"] = others[rng.integers(len(others))]
    return obj


def _start_inside(obj: dict[str, Any], num_frames: int, rng: np.random.Generator) -> None:
    """Redraw the start uniformly over the positions that keep the object whole inside the frame for the
    whole clip (``motion="bounded"``).

    Along the motion, the middle of the path lies in a band: the centres that keep the object inside, less
    ``travel / 2`` at each end. The coordinate across the motion is drawn from that same band, so that the
    middle frame shows every direction's objects at identically distributed positions (exactly so for an odd
    ``num_frames``).
    """
    n, r = obj["n"], obj["radius"]
    travel = obj["speed"] * (num_frames - 1)
    dx, dy = DIRECTIONS.get(obj["direction"] or "", (0, 0))
    for key, step in (("x0", dx), ("y0", dy)):
        lo, hi = r, n - 1 - r  # centres that keep the object inside
        if step > 0:
            hi -= travel
        elif step < 0:
            lo += travel
        elif travel:
            lo, hi = lo + travel // 2, hi - travel // 2
        obj[key] = int(rng.integers(lo, hi + 1))


def _object_caption(obj: dict[str, Any], template: str) -> str:
    ev = obj["event"]
    if ev == "move":
        return template.format(adj=_adj(obj), shape=obj["shape"], dir=obj["direction"])
    if ev == "turn":
        return f"the {_adj(obj)} {obj['shape']} turns {obj['colour2']}"
    return f"a {_adj(obj)} {obj['shape']} {ev}s"


def _caption(objects: list[dict[str, Any]], template: str, directions: list[str] | None = None) -> str:
    parts = []
    for k, obj in enumerate(objects):
        o = dict(obj, direction=directions[k]) if directions is not None else obj
        parts.append(_object_caption(o, template if k == 0 else "a {adj} {shape} moves {dir}"))
    return " and ".join(parts)


def sample_clip(rng: np.random.Generator, cfg: CorpusConfig) -> dict[str, Any]:
    """Latent description of one clip (objects, event, caption). Deterministic given ``rng``'s state."""
    event = EVENTS[int(rng.choice(4, p=cfg.event_probs))]
    objects = [_new_object(rng, cfg, event)]
    if event == "move" and rng.random() < cfg.two_object_prob:
        first = (objects[0]["shape"], objects[0]["colour"])
        objects.append(_new_object(rng, cfg, "move", exclude=first))
    template = MOTION_TEMPLATES[rng.integers(len(MOTION_TEMPLATES))]
    return {"event": event, "objects": objects, "template": template, "bg_seed": int(rng.integers(2**31))}


def clip_frames(clip: dict[str, Any], cfg: CorpusConfig) -> tuple[np.ndarray, np.ndarray]:
    """Render a sampled clip: frames ``(T, n, n, 3)`` uint8 and masks ``(T, n, n)`` uint8."""
    bg = background(cfg.image_size, np.random.default_rng(clip["bg_seed"]))
    return render_clip(bg, clip["objects"], cfg.num_frames)


# Items ---------------------------------------------------------------------------------------------------
def _boxes(clip: dict[str, Any], num_frames: int) -> list[list[list[int]]]:
    """Per frame, per object: ``[cx, cy, radius, visible]`` (centre on the torus; a box may wrap)."""
    out = []
    for t in range(num_frames):
        row = []
        for obj in clip["objects"]:
            cx, cy, colour = object_state(obj, t)
            row.append([int(cx), int(cy), int(obj["radius"]), int(colour is not None)])
        out.append(row)
    return out


def event_label(clip: dict[str, Any]) -> str:
    """The classification label of a clip (one of :data:`EVENT_CLASSES`): its first object's event, a motion
    as ``moves <direction>``. Works on a sampled clip and on a row of ``clips.jsonl``."""
    obj = clip["objects"][0]
    if clip["event"] == "move":
        return f"moves {obj['direction']}"
    return {"turn": "turns", "appear": "appears", "disappear": "disappears"}[clip["event"]]


def _items_for_clip(clip: dict[str, Any], video: str, rng: np.random.Generator) -> dict[str, list[dict]]:
    objs, ev, tpl = clip["objects"], clip["event"], clip["template"]
    caption = _caption(objs, tpl)
    out: dict[str, list[dict]] = {
        "pairs": [],
        "mc": [],
        "qa": [],
        "cloze": [],
        "classification": [{"video": video, "label": event_label(clip)}],
    }
    pair: dict[str, Any] = {"video": video, "caption": caption, "event": ev}
    if ev == "move":
        # Every other assignment of directions (3 for one moving object): a VTM negative is drawn among them,
        # so that the match head learns to tell each direction from each other one, as multiple choice asks.
        dirs = tuple(o["direction"] for o in objs)
        others = [d for d in itertools.product(DIRECTIONS, repeat=len(objs)) if d != dirs]
        pair["temporal_negative"] = [_caption(objs, tpl, list(d)) for d in others]
    out["pairs"].append(pair)
    main = objs[0]
    if ev == "move":
        # Multiple choice: the answer, 3 distractors that differ only in direction(s), 1 static distractor.
        dirs = [o["direction"] for o in objs]
        temporal = []
        if len(objs) == 1:
            temporal = [_caption(objs, tpl, [d]) for d in DIRECTIONS if d != dirs[0]]
        else:
            combos = [(a, b) for a in DIRECTIONS for b in DIRECTIONS if (a, b) != tuple(dirs)]
            for j in rng.permutation(len(combos))[:3]:
                temporal.append(_caption(objs, tpl, list(combos[j])))
        other_colours = [c for c in COLOURS if c != main["colour"]]
        static_obj = dict(main, colour=other_colours[rng.integers(len(other_colours))])
        static = _caption([static_obj, *objs[1:]], tpl)
        options = [caption, *temporal, static]
        order = rng.permutation(5)
        options = [options[i] for i in order]
        inv = {int(o): i for i, o in enumerate(order)}
        out["mc"].append({"video": video, "options": options, "answer": inv[0],
                          "temporal_distractors": sorted(inv[i] for i in (1, 2, 3)), "static_distractor": inv[4],
                          "temporal": True})  # fmt: skip
        desc = f"{main['colour']} {main['shape']}"
        out["qa"].append({"video": video, "question": f"which way does the {desc} move?",
                          "answer": main["direction"], "kind": "direction", "temporal": True})  # fmt: skip
        out["cloze"].append({"video": video, "caption": caption, "word": main["direction"], "kind": "direction",
                             "temporal": True})  # fmt: skip
    if ev == "turn":
        out["cloze"].append({"video": video, "caption": caption, "word": main["colour2"], "kind": "final_colour",
                             "temporal": False})  # fmt: skip
    else:
        # Static questions (answerable from any frame where the object is visible).
        out["qa"].append({"video": video, "question": f"what shape is the {main['size']} {main['colour']} object?",
                          "answer": main["shape"], "kind": "shape", "temporal": False})  # fmt: skip
        out["qa"].append({"video": video, "question": f"what colour is the {main['size']} {main['shape']}?",
                          "answer": main["colour"], "kind": "colour", "temporal": False})  # fmt: skip
        out["cloze"].append({"video": video, "caption": caption, "word": main["shape"], "kind": "shape",
                             "temporal": False})  # fmt: skip
        out["cloze"].append({"video": video, "caption": caption, "word": main["colour"], "kind": "colour",
                             "temporal": False})  # fmt: skip
    return out


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=True) + "\n")


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_cache_dir() -> Path:
    """``$ALLINONE_DATA_CACHE`` or ``~/.cache/allinone_lab``."""
    return Path(os.environ.get("ALLINONE_DATA_CACHE", Path.home() / ".cache" / "allinone_lab"))


def corpus_dir(cfg: CorpusConfig, cache_dir: str | os.PathLike | None = None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "corpus" / f"{cfg.size}-{cfg.image_size}px-s{cfg.seed}-{cfg.fingerprint()}"


def build_corpus(
    cfg: CorpusConfig | None = None, cache_dir: str | os.PathLike | None = None, force: bool = False,
    workers: int | None = None,
) -> Path:
    """Generate the corpus (or reuse the cached copy) and return its root directory. ``workers``: processes
    that render the clips (None: one per CPU core for corpora of 500 clips or more); the files are the same
    whatever their number.

    Layout (the prepared-dataset format, see docs/data.md)::

        root/videos/clip_000000.mp4        T x n x n H.264, intra-only, lossless
        root/masks/clip_000000.npz         "masks": uint8 (T, n, n), 0 background, k+1 object k
        root/annotations/clips.jsonl       latent description, per-frame boxes, split
        root/annotations/{pairs,retrieval,mc,qa,cloze,classification}_{train,test}.jsonl
        root/annotations/answers.json (QA), classes.json (classification: EVENT_CLASSES)
        root/manifest.json, report.json, report.md
        root/frames/frames-<key>.npy, .json  every clip's frames as decoded from its .mp4 (:func:`frame_cache`)
    """
    cfg = cfg or CorpusConfig()
    out = corpus_dir(cfg, cache_dir)
    if (out / "report.json").exists() and not force:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".tmp-", dir=out.parent))
    try:
        _generate(cfg, tmp, workers)
        if out.exists() and not force:  # another process finished the same corpus meanwhile: keep its copy
            shutil.rmtree(tmp, ignore_errors=True)
            return out
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _generate(cfg: CorpusConfig, root: Path, workers: int | None = None) -> None:
    t0 = time.time()
    (root / "videos").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "annotations").mkdir()
    rng = np.random.default_rng(cfg.seed)
    n_test = max(2, int(round(cfg.clips * cfg.test_fraction)))
    split_of = np.array(["train"] * (cfg.clips - n_test) + ["test"] * n_test)[rng.permutation(cfg.clips)]
    tasks = ("pairs", "retrieval", "mc", "qa", "cloze", "classification")
    tables: dict[str, list[dict]] = {f"{k}_{s}": [] for k in tasks for s in ("train", "test")}
    clips_meta = []
    clips = []
    for i in range(cfg.clips):  # every draw from the corpus's random stream, in clip order
        clip = sample_clip(rng, cfg)
        clips.append(clip)
        name = f"clip_{i:06d}"
        video = f"videos/{name}.mp4"
        split = str(split_of[i])
        objects = [{k: v for k, v in o.items() if k != "n"} for o in clip["objects"]]
        clips_meta.append({"video": video, "mask": f"masks/{name}.npz", "split": split, "event": clip["event"],
                           "objects": objects, "bg_seed": clip["bg_seed"], "template": clip["template"],
                           "boxes": _boxes(clip, cfg.num_frames)})  # fmt: skip
        items = _items_for_clip(clip, video, np.random.default_rng([cfg.seed, i]))
        for rows in items.values():
            for r in rows:
                r["mask"] = f"masks/{name}.npz"
        tables[f"pairs_{split}"] += items["pairs"]
        tables[f"retrieval_{split}"] += [
            {"video": video, "caption": p["caption"], "mask": p["mask"]} for p in items["pairs"]
        ]
        for k in ("mc", "qa", "cloze", "classification"):
            tables[f"{k}_{split}"] += items[k]
    # Render, encode and decode every clip (the slow part; each clip is a function of its description alone).
    (root / "frames").mkdir()
    staging = root / "frames" / ".staging.npy"
    np.lib.format.open_memmap(staging, mode="w+", dtype=np.uint8,
                              shape=(cfg.clips, cfg.num_frames, cfg.image_size, cfg.image_size, 3)).flush()
    _render_clips(root, cfg, clips, staging, workers)
    ann = root / "annotations"
    _write_jsonl(ann / "clips.jsonl", clips_meta)
    for name, rows in tables.items():
        _write_jsonl(ann / f"{name}.jsonl", rows)
    answers = sorted({r["answer"] for r in tables["qa_train"]})
    (ann / "answers.json").write_text(json.dumps(answers, indent=0))
    (ann / "classes.json").write_text(json.dumps(list(EVENT_CLASSES), indent=0))
    manifest = {
        "dataset": "corpus",
        "config": dataclasses.asdict(cfg),
        "splits": {n: len(r) for n, r in tables.items()},
        "sha256": {p.name: sha256_file(p) for p in sorted(ann.iterdir())},
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    _publish_frame_cache(root, [c["video"] for c in clips_meta], staging)
    events = {e: sum(c["event"] == e for c in clips_meta) for e in EVENTS}
    words: dict[str, int] = {}
    for c in clips_meta:
        for o in c["objects"]:
            for w in (o["shape"], o["colour"], o["size"], o.get("direction"), o.get("colour2")):
                if w:
                    words[w] = words.get(w, 0) + 1
    report = {
        "version": CORPUS_VERSION,
        "config": dataclasses.asdict(cfg),
        "clips": cfg.clips,
        "clips_per_split": {s: int((split_of == s).sum()) for s in ("train", "test")},
        "events": events,
        "two_object_clips": sum(len(c["objects"]) == 2 for c in clips_meta),
        "word_counts": dict(sorted(words.items())),
        "items": manifest["splits"],
        "speed_px_per_frame": cfg.speed_px,
        "motion": cfg.motion,
        "answers": answers,
        "seconds": round(time.time() - t0, 2),
        "bytes": sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.parent.name != "frames"),
    }
    (root / "report.json").write_text(json.dumps(report, indent=1))
    lines = [f"# Built-in corpus report ({cfg.size}, {cfg.image_size}px, seed {cfg.seed})", ""]
    lines += [f"- {k}: {v}" for k, v in report.items() if k not in ("config", "word_counts", "items")]
    lines += ["", "| split file | items |", "|---|---|"] + [
        f"| {k} | {v} |" for k, v in report["items"].items()
    ]
    lines += ["", "| word | clips |", "|---|---|"] + [
        f"| {k} | {v} |" for k, v in report["word_counts"].items()
    ]
    (root / "report.md").write_text("\n".join(lines) + "\n")


# The decoded-frame cache ----------------------------------------------------------------------------------
def _corpus_videos(root: Path) -> dict[str, os.stat_result]:
    """The corpus's videos as the annotations name them (``videos/clip_000000.mp4``, ...), in clip order, with
    their ``stat``."""
    folder = root / "videos"
    if not folder.is_dir():
        return {}
    with os.scandir(folder) as entries:
        found = {f"videos/{e.name}": e.stat() for e in entries if e.name.endswith(".mp4")}
    return dict(sorted(found.items()))


def frame_cache_key(root: str | os.PathLike, videos: dict[str, os.stat_result] | None = None) -> str:
    """What the decoded frames of the corpus at ``root`` depend on: its ``manifest.json`` (configuration and
    annotation checksums), each video's name, size and modification time, and the cache layout."""
    root = Path(root)
    videos = _corpus_videos(root) if videos is None else videos
    h = hashlib.sha256(f"frame-cache-v{FRAME_CACHE_VERSION}\n".encode())
    manifest = root / "manifest.json"
    h.update(manifest.read_bytes() if manifest.is_file() else b"no manifest")
    for video, st in videos.items():
        h.update(f"\n{video} {st.st_size} {st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _publish_frame_cache(root: Path, videos: list[str], staging: Path) -> Path:
    """Make ``staging`` (a ``.npy`` file of ``(N, T, H, W, 3)`` uint8, row i = ``videos[i]``, in ``root/frames``)
    the frame cache of ``root`` under its key, with its index; older caches of the corpus are removed."""
    found = _corpus_videos(root)
    if list(found) != videos:
        raise RuntimeError(f"corpus at {root}: the videos on disk are not the {len(videos)} the cache holds")
    key = frame_cache_key(root, found)
    path = root / "frames" / f"frames-{key}.npy"
    shape = np.load(staging, mmap_mode="r").shape
    index_tmp = staging.with_name(f".{path.stem}.{os.getpid()}.json.tmp")
    index_tmp.write_text(json.dumps({"key": key, "videos": videos, "shape": list(shape)}))
    os.replace(index_tmp, path.with_suffix(".json"))
    os.replace(staging, path)
    for old in path.parent.glob("frames-*"):
        if old.stem != path.stem:
            old.unlink(missing_ok=True)
    return path


def frame_cache(root: str | os.PathLike, build: bool = True) -> FrameCache | None:
    """The decoded-frame cache of the corpus at ``root`` (:class:`~allinone_lab.data.video.FrameCache`):
    ``root/frames/frames-<key>.npy``, every stored frame of every clip as decoding its ``.mp4`` gives it,
    memory-mapped. ``key`` (:func:`frame_cache_key`) changes with the corpus, so a stale cache is never read.
    Written when the corpus is generated; a corpus without one (e.g. copied without it) gets it here by
    decoding each clip once (``build=True``), else None. None also when it cannot be written (a read-only
    directory): the datasets then decode."""
    root = Path(root)
    found = _corpus_videos(root)
    if not found:
        return None
    key = frame_cache_key(root, found)
    videos = list(found)
    path = root / "frames" / f"frames-{key}.npy"
    if not path.is_file() or not path.with_suffix(".json").is_file():
        if not build:
            return None
        staging = root / "frames" / f".staging-{os.getpid()}.npy"
        try:
            staging.parent.mkdir(exist_ok=True)
            cache = None
            for i, video in enumerate(videos):
                clip, _ = read_all_frames(root / video)
                if cache is None:
                    cache = np.lib.format.open_memmap(staging, mode="w+", dtype=np.uint8, shape=(len(videos), *clip.shape))
                if clip.shape != cache.shape[1:]:  # not one shape: no cache, the datasets decode
                    del cache
                    staging.unlink()
                    return None
                cache[i] = clip
            cache.flush()
            del cache
            _publish_frame_cache(root, videos, staging)
        except OSError as exc:
            log.warning("frame cache of %s not written (%s); clips will be decoded", root, exc)
            staging.unlink(missing_ok=True)
            return None
    index = json.loads(path.with_suffix(".json").read_text())
    return FrameCache(path, {video: row for row, video in enumerate(index["videos"])})


def _render_range(root: Path, cfg: CorpusConfig, start: int, clips: list[dict[str, Any]], staging: Path) -> None:
    """Render clips ``start, start + 1, ...``: write each ``.mp4`` and mask file, then decode the ``.mp4`` into its
    row of the frame cache being built (``staging``)."""
    cache = np.load(staging, mmap_mode="r+")
    for offset, clip in enumerate(clips):
        name = f"clip_{start + offset:06d}"
        frames, masks = clip_frames(clip, cfg)
        write_video(root / "videos" / f"{name}.mp4", frames, fps=cfg.fps)
        np.savez_compressed(root / "masks" / f"{name}.npz", masks=masks)
        decoded, _ = read_all_frames(root / "videos" / f"{name}.mp4")
        if decoded.shape != cache.shape[1:]:
            raise RuntimeError(f"corpus: {name}.mp4 decodes to frames of shape {decoded.shape}, expected "
                               f"{cache.shape[1:]}")
        cache[start + offset] = decoded
    cache.flush()


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # one rendering process per core


def _render_clips(root: Path, cfg: CorpusConfig, clips: list[dict[str, Any]], staging: Path,
                  workers: int | None = None) -> None:
    """Render every clip, on ``workers`` processes (default: one per CPU core, up to 8; one for small corpora or
    where processes cannot be forked). The files are the same whatever the number of processes."""
    import multiprocessing

    if workers is None:
        workers = min(os.cpu_count() or 1, 8) if len(clips) >= 500 else 1
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        _render_range(root, cfg, 0, clips, staging)
        return
    from concurrent.futures import ProcessPoolExecutor

    chunk = max(50, len(clips) // (8 * workers))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_one_thread) as pool:
        jobs = [pool.submit(_render_range, root, cfg, start, clips[start:start + chunk], staging)
                for start in range(0, len(clips), chunk)]
        for job in jobs:
            job.result()


def load_report(root: str | os.PathLike) -> dict[str, Any]:
    return json.loads((Path(root) / "report.json").read_text())


CORPUS_TASKS: dict[str, str] = {
    "pairs": "pairs",
    "retrieval": "retrieval",
    "mc": "mc",
    "qa": "qa",
    "cloze": "cloze",
    "classification": "classification",
}


def corpus_dataset(
    task: str,
    split: str = "train",
    data_cfg: Any = None,
    corpus_cfg: CorpusConfig | None = None,
    cache_dir: str | os.PathLike | None = None,
    train: bool | None = None,
    root: str | os.PathLike | None = None,
    cache_frames: bool = True,
    **kwargs: Any,
):
    """A dataset over the built-in corpus (built on first use): ``task`` in pairs, retrieval, mc, qa, cloze,
    classification; ``split`` train or test. QA uses the training split's ``answers.json``, classification
    ``classes.json`` (:data:`EVENT_CLASSES`). ``root`` reads an existing corpus directory (e.g. a copy) instead
    of the one ``corpus_cfg`` names. Clips come from the corpus's decoded-frame cache (:func:`frame_cache`,
    the same tensors as decoding) unless ``cache_frames=False``, which decodes every clip each time."""
    from .config import DataConfig
    from .datasets import (
        ClassificationDataset,
        ClozeDataset,
        MultipleChoiceDataset,
        OpenQADataset,
        PairsDataset,
        RetrievalDataset,
    )

    if task not in CORPUS_TASKS:
        raise ValueError(f"corpus_dataset: task={task!r}: expected one of {list(CORPUS_TASKS)}")
    if split not in ("train", "test"):
        raise ValueError(f"corpus_dataset: split={split!r}: expected 'train' or 'test'")
    root = build_corpus(corpus_cfg, cache_dir) if root is None else Path(root)
    ann = root / "annotations" / f"{task}_{split}.jsonl"
    cfg = data_cfg if data_cfg is not None else DataConfig()
    train = (split == "train") if train is None else train
    classes = {"pairs": PairsDataset, "retrieval": RetrievalDataset, "mc": MultipleChoiceDataset,
               "qa": OpenQADataset, "cloze": ClozeDataset, "classification": ClassificationDataset}  # fmt: skip
    if task == "qa":
        kwargs.setdefault("answers", root / "annotations" / "answers.json")
    if task == "classification":
        kwargs.setdefault("classes", root / "annotations" / "classes.json")
    if cache_frames:
        kwargs.setdefault("frame_cache", frame_cache(root))
    return classes[task](ann, cfg, video_root=root, train=train, **kwargs)
