"""The built-in corpus: determinism, caching, real mp4s, masks, report, and the single-frame property."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import decord
import numpy as np
import pytest

from allinone_lab.data import sample_indices
from allinone_lab.data.corpus import (
    COLOURS,
    DIRECTIONS,
    EVENT_CLASSES,
    CorpusConfig,
    background,
    build_corpus,
    clip_frames,
    object_state,
    render_clip,
    sample_clip,
)
from allinone_lab.data.video import write_video


def _read_all(path):
    vr = decord.VideoReader(str(path))
    return vr.get_batch(list(range(len(vr)))).asnumpy()


def _jsonl(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    return build_corpus(CorpusConfig(size="smoke", image_size=32), cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module", params=[(32, 16), (32, 8), (64, 16)], ids=lambda p: f"{p[0]}px-{p[1]}f")
def motion_corpus(tmp_path_factory, request):
    size, frames = request.param
    cfg = CorpusConfig(num_clips=240, image_size=size, num_frames=frames, event_probs=(1, 0, 0, 0),
                       two_object_prob=0.0, seed=3)  # fmt: skip
    return cfg, build_corpus(cfg, cache_dir=tmp_path_factory.mktemp("motion"))


def test_smoke_layout_report_and_formats(smoke):
    report = json.loads((smoke / "report.json").read_text())
    assert report["clips"] == 60 and sum(report["events"].values()) == 60
    assert all(report["events"][e] > 0 for e in ("move", "turn", "appear", "disappear"))
    assert (smoke / "report.md").read_text().startswith("# Built-in corpus report")
    clips = _jsonl(smoke / "annotations" / "clips.jsonl")
    assert len(clips) == 60 and {c["split"] for c in clips} == {"train", "test"}
    pairs = [c["objects"] for c in clips if len(c["objects"]) == 2]
    assert pairs and all(a["shape"] != b["shape"] and a["colour"] != b["colour"] for a, b in pairs)
    frames = _read_all(smoke / clips[0]["video"])
    assert frames.shape == (16, 32, 32, 3)
    masks = np.load(smoke / clips[0]["mask"])["masks"]
    assert masks.shape == (16, 32, 32) and len(clips[0]["boxes"]) == 16
    manifest = json.loads((smoke / "manifest.json").read_text())
    for name, rows in manifest["splits"].items():
        assert len(_jsonl(smoke / "annotations" / f"{name}.jsonl")) == rows
    from allinone_lab.data.corpus import sha256_file

    assert manifest["sha256"]["pairs_train.jsonl"] == sha256_file(smoke / "annotations" / "pairs_train.jsonl")
    # Train and test clips are disjoint across every task.
    train = {
        r["video"]
        for n in ("pairs", "mc", "qa", "cloze", "classification")
        for r in _jsonl(smoke / "annotations" / f"{n}_train.jsonl")
    }
    test = {
        r["video"]
        for n in ("pairs", "mc", "qa", "cloze", "classification")
        for r in _jsonl(smoke / "annotations" / f"{n}_test.jsonl")
    }
    assert train and test and not train & test
    for mc in _jsonl(smoke / "annotations" / "mc_train.jsonl"):
        assert len(mc["options"]) == 5 and len(set(mc["options"])) == 5
        ans = mc["options"][mc["answer"]].split()
        for j in mc["temporal_distractors"]:
            diff = [(a, b) for a, b in zip(ans, mc["options"][j].split(), strict=True) if a != b]
            assert diff and all(a in DIRECTIONS and b in DIRECTIONS for a, b in diff)
        static = [
            (a, b) for a, b in zip(ans, mc["options"][mc["static_distractor"]].split(), strict=True) if a != b
        ]
        assert len(static) == 1 and static[0][0] in COLOURS


def test_classification_items_label_every_clip_by_event_and_direction(smoke):
    assert json.loads((smoke / "annotations" / "classes.json").read_text()) == list(EVENT_CLASSES)
    assert len(EVENT_CLASSES) == 7
    clips = {c["video"]: c for c in _jsonl(smoke / "annotations" / "clips.jsonl")}
    verbs = {"move": "moves", "turn": "turns", "appear": "appears", "disappear": "disappears"}
    seen: Counter = Counter()
    for split in ("train", "test"):
        rows = _jsonl(smoke / "annotations" / f"classification_{split}.jsonl")
        assert sorted(r["video"] for r in rows) == sorted(v for v, c in clips.items() if c["split"] == split)
        for r in rows:
            clip = clips[r["video"]]
            direction = clip["objects"][0]["direction"]
            assert r["label"] == (f"moves {direction}" if clip["event"] == "move" else verbs[clip["event"]])
            assert r["mask"] == clip["mask"]
            seen[r["label"]] += 1
    assert set(seen) <= set(EVENT_CLASSES) and sum(seen.values()) == 60
    assert {"moves left", "moves right", "moves up", "moves down", "turns"} <= set(seen)


def test_deterministic_and_cached(tmp_path, smoke):
    cfg = CorpusConfig(size="smoke", image_size=32)
    again = build_corpus(cfg, cache_dir=tmp_path)
    assert (again / "annotations" / "pairs_train.jsonl").read_bytes() == (
        smoke / "annotations" / "pairs_train.jsonl"
    ).read_bytes()
    assert np.array_equal(
        _read_all(again / "videos" / "clip_000007.mp4"), _read_all(smoke / "videos" / "clip_000007.mp4")
    )
    stamp = (again / "report.json").stat().st_mtime_ns
    assert (
        build_corpus(cfg, cache_dir=tmp_path) == again and (again / "report.json").stat().st_mtime_ns == stamp
    )
    other = build_corpus(CorpusConfig(size="smoke", image_size=32, seed=1), cache_dir=tmp_path)
    assert other != again
    assert (other / "annotations" / "pairs_train.jsonl").read_bytes() != (
        again / "annotations" / "pairs_train.jsonl"
    ).read_bytes()


def test_config_validation():
    with pytest.raises(ValueError, match="CorpusConfig.size"):
        CorpusConfig(size="huge")
    with pytest.raises(ValueError, match="CorpusConfig.image_size"):
        CorpusConfig(image_size=33)
    with pytest.raises(ValueError, match="CorpusConfig.event_probs"):
        CorpusConfig(event_probs=(0.5, 0.5, 0.5, 0))
    assert CorpusConfig(image_size=64).speed_px == 3 and CorpusConfig(image_size=224).speed_px == 11
    with pytest.raises(ValueError, match="CorpusConfig.motion"):
        CorpusConfig(motion="bounce")
    with pytest.raises(ValueError, match="CorpusConfig.speed.*does not fit"):
        CorpusConfig(image_size=64, num_frames=16, motion="bounded", speed=0.1)
    assert CorpusConfig(image_size=64, num_frames=8, motion="bounded").speed_px == 6  # 42-px path of 43 free
    assert CorpusConfig(image_size=64, num_frames=16, motion="bounded").speed_px == 2  # the torus' 3 would not fit


def test_stored_masks_boxes_and_videos_match_the_renderer(smoke):
    """Every stored frame is the per-frame codec image of the renderer's frame: mp4s carry nothing else."""
    cfg = CorpusConfig(size="smoke", image_size=32)
    for c in _jsonl(smoke / "annotations" / "clips.jsonl")[:8]:
        clip = {**c, "objects": [dict(o, n=32) for o in c["objects"]]}
        frames, masks = clip_frames(clip, cfg)
        assert np.array_equal(np.load(smoke / c["mask"])["masks"], masks)
        decoded = _read_all(smoke / c["video"])
        for t in (0, 7, 15):
            write_video(smoke.parent / "one.mp4", frames[t : t + 1])
            assert np.array_equal(decoded[t], _read_all(smoke.parent / "one.mp4")[0])
        for t, row in enumerate(c["boxes"]):
            for k, (cx, cy, _r, vis) in enumerate(row):
                assert vis == int((masks[t] == k + 1).any()) or len(row) == 2  # two objects may occlude
                if vis and len(row) == 1:
                    assert masks[t, cy, cx] == 1  # the centre is inside the mask


@pytest.mark.parametrize("two_objects", [False, True])
def test_single_frame_distribution_is_identical_for_every_direction_at_every_index(two_objects):
    """Exact: over all start positions, the multiset of frames at index t is the same for each direction.

    With two objects the second one's start is independent of the first's (as in the generator), so fixing
    it and enumerating the first object's starts checks the conditional distribution, occlusion included.
    """
    n, T = 16, 16
    bg = background(n, np.random.default_rng(0))
    base = {
        "n": n,
        "shape": "triangle",
        "colour": "red",
        "size": "big",
        "radius": 3,
        "speed": 3,
        "event": "move",
    }
    other = dict(base, shape="circle", colour="blue", radius=2, x0=5, y0=9, direction="left")
    per_dir = {}
    for d in DIRECTIONS:
        counters = [Counter() for _ in range(T)]
        for x0 in range(n):
            for y0 in range(n):
                objs = [dict(base, x0=x0, y0=y0, direction=d)]
                if two_objects:
                    objs.append(other)  # independent of object 1 (as generated), painted on top of it
                frames, _ = render_clip(bg, objs, T)
                for t in range(T):
                    counters[t][frames[t].tobytes()] += 1
        per_dir[d] = counters
    for t in range(T):
        assert per_dir["left"][t] == per_dir["right"][t] == per_dir["up"][t] == per_dir["down"][t]
    # ...whereas pairs of frames differ between directions (the property is not vacuous).
    f_left, _ = render_clip(bg, [dict(base, x0=4, y0=4, direction="left")], 2)
    f_right, _ = render_clip(bg, [dict(base, x0=4, y0=4, direction="right")], 2)
    assert np.array_equal(f_left[0], f_right[0]) and not np.array_equal(f_left[1], f_right[1])


def _centroids(frames, colour):
    """Object position per frame, from the video pixels: circular mean of the pixels of the object's colour."""
    n = frames.shape[1]
    out = []
    ang = 2 * np.pi * np.arange(n) / n
    for f in frames:
        m = np.abs(f.astype(np.float32) - np.array(colour, np.float32)).sum(-1) < 90
        ys, xs = np.nonzero(m)
        cx = np.angle(np.exp(1j * ang[xs]).mean()) % (2 * np.pi) * n / (2 * np.pi)
        cy = np.angle(np.exp(1j * ang[ys]).mean()) % (2 * np.pi) * n / (2 * np.pi)
        out.append((cx, cy))
    return np.array(out)


def _histogram_probe(train_x, train_y, test_x, test_y, n_classes):
    """Bayes classifier on discrete features (a table of class counts per feature cell)."""
    table: dict[tuple, np.ndarray] = {}
    for x, y in zip(map(tuple, train_x), train_y, strict=True):
        table.setdefault(x, np.zeros(n_classes))[y] += 1
    prior = np.bincount(train_y, minlength=n_classes)
    pred = [int(np.argmax(table.get(tuple(x), prior) + 1e-3 * prior)) for x in test_x]
    return float(np.mean(np.array(pred) == test_y))


def test_generated_data_single_frame_probe_at_chance_two_frame_probe_not(motion_corpus):
    """On the decoded corpus: (frame index, object position) predicts the direction at chance only."""
    _cfg, root = motion_corpus
    n, h, T = _cfg.image_size, _cfg.image_size // 2, _cfg.num_frames
    e0, e1 = sample_indices(T, 3, train=False)[:2]  # the first two eval TSN frames
    clips = _jsonl(root / "annotations" / "clips.jsonl")
    names = list(DIRECTIONS)
    single, pairs, labels = [], [], []
    for c in clips:
        pos = _centroids(_read_all(root / c["video"]), COLOURS[c["objects"][0]["colour"]])
        masks = np.load(root / c["mask"])["masks"]
        mask_pos = _centroids(np.repeat(masks[..., None], 3, -1) * 100, (100, 100, 100))  # stored masks
        err = (pos - mask_pos + h) % n - h
        assert np.abs(err).max() < 1.5  # the video shows the object where the annotation says
        step_box = (np.array(c["boxes"][1][0][:2]) - np.array(c["boxes"][0][0][:2]) + h) % n - h
        assert np.array_equal(step_box, _cfg.speed_px * np.array(DIRECTIONS[c["objects"][0]["direction"]]))
        y = names.index(c["objects"][0]["direction"])
        bins = np.floor(pos / (n / 4)).astype(int) % 4  # 4 x 4 position cells
        single.append([(t, bins[t, 0], bins[t, 1]) for t in range(T)])
        step = (pos[e1] - pos[e0] + h) % n - h
        pairs.append((int(np.sign(np.round(step[0]))), int(np.sign(np.round(step[1])))))
        labels.append(y)
    labels = np.array(labels)
    assert min(np.bincount(labels, minlength=4)) > 30
    half = len(clips) // 2
    tr, te = slice(0, half), slice(half, None)
    xs = np.array(single)  # (clips, T, 3)
    acc_single = _histogram_probe(
        xs[tr].reshape(-1, 3), np.repeat(labels[tr], T), xs[te].reshape(-1, 3), np.repeat(labels[te], T), 4
    )
    acc_pair = _histogram_probe(np.array(pairs)[tr], labels[tr], np.array(pairs)[te], labels[te], 4)
    print(f"{n}px {T}f: single-frame probe {acc_single:.3f} (chance 0.25), two-frame probe {acc_pair:.3f}")
    assert acc_single < 0.25 + 0.08, acc_single
    assert acc_pair > 0.95, acc_pair


def test_histogram_probe_detects_a_leaky_generator():
    """Control: the same probe catches motion without wrap-around (start near one edge, move across)."""
    rng = np.random.default_rng(0)
    x, y = [], []
    for _ in range(240):
        d = int(rng.integers(2))  # 0 left, 1 right
        x0 = 28 - int(rng.integers(6)) if d == 0 else int(rng.integers(6))
        for t in range(16):
            pos = x0 + (1 if d else -1) * t
            x.append((t, int(np.clip(pos, 0, 31)) // 8))
            y.append(d)
    x, y = np.array(x), np.array(y)
    assert (
        _histogram_probe(x[: len(x) // 2], y[: len(y) // 2], x[len(x) // 2 :], y[len(y) // 2 :], 2) > 0.75
    )  # chance 0.5


@pytest.mark.parametrize("size,frames", [(64, 16), (32, 8), (224, 16)])
def test_motion_is_large_against_an_8px_patch_but_never_aliases(size, frames):
    from allinone_lab.data import sample_indices

    cfg = CorpusConfig(image_size=size, num_frames=frames)
    v = cfg.speed_px
    ev = sample_indices(frames, 3, train=False)
    assert v * np.diff(ev).min() >= 8  # eval TSN frames: at least one 8-px patch of motion between them
    rng = np.random.default_rng(0)
    gaps = [np.diff(sample_indices(frames, 3, True, rng)).max() for _ in range(2000)]
    assert max(gaps) == cfg.max_tsn_gap and v * max(gaps) < size / 2  # never half a frame: no aliasing


def test_sample_clip_is_deterministic():
    cfg = CorpusConfig()
    a = sample_clip(np.random.default_rng(9), cfg)
    b = sample_clip(np.random.default_rng(9), cfg)
    assert a == b
    fa, ma = clip_frames(a, cfg)
    fb, mb = clip_frames(b, cfg)
    assert np.array_equal(fa, fb) and np.array_equal(ma, mb)


def test_prepare_corpus_command(tmp_path):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "allinone_lab.data.prepare", "corpus", "--size", "smoke", "--image-size", "32",
           "--cache-dir", str(tmp_path)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    root = Path(r.stdout.splitlines()[0])
    assert root.parent == tmp_path / "corpus" and (root / "report.json").exists()
    assert "# Built-in corpus report (smoke, 32px, seed 0)" in r.stdout
    assert json.loads((root / "report.json").read_text())["clips"] == 60


def test_bounded_motion_stays_inside_and_hides_direction_only_without_the_frame_index():
    """``motion="bounded"``: a moving object is whole inside the frame on every frame (its mask keeps its
    area and never touches two opposite borders); over all frame indices together, positions are distributed
    alike for opposite directions, while the first frame alone gives the direction away."""
    cfg = CorpusConfig(image_size=32, num_frames=8, motion="bounded", event_probs=(1, 0, 0, 0), two_object_prob=0)
    rng = np.random.default_rng(0)
    xs: dict[str, list[np.ndarray]] = {"left": [], "right": []}
    for _ in range(1200):
        clip = sample_clip(rng, cfg)
        obj = clip["objects"][0]
        _, masks = clip_frames(clip, cfg)
        areas = masks.reshape(cfg.num_frames, -1).sum(axis=1)
        assert (areas == areas[0]).all() and areas[0] > 0
        cols = masks.any(axis=1)
        assert not (cols[:, 0] & cols[:, -1]).any()
        if obj["direction"] in xs:
            centres = [int(np.nonzero(c)[0].mean().round()) for c in cols]
            xs[obj["direction"]].append(np.array(centres))

    def total_variation(a: np.ndarray, b: np.ndarray) -> float:
        pa = np.bincount(a, minlength=32) / len(a)
        pb = np.bincount(b, minlength=32) / len(b)
        return 0.5 * np.abs(pa - pb).sum()

    left, right = np.stack(xs["left"]), np.stack(xs["right"])
    assert len(left) > 200 and len(right) > 200
    assert total_variation(left.ravel(), right.ravel()) < 0.1  # any index: alike
    assert total_variation(left[:, 0], right[:, 0]) > 0.8  # the first frame: nearly disjoint


def test_bounded_motion_middle_frame_hides_direction_and_axis():
    """With ``motion="bounded"`` and an odd number of frames, the middle frame shows the objects of all four
    directions at identically distributed centres (both coordinates), even when the path is long."""
    cfg = CorpusConfig(image_size=64, num_frames=3, speed=0.33, motion="bounded", event_probs=(1, 0, 0, 0),
                       two_object_prob=0)
    rng = np.random.default_rng(0)
    centres: dict[str, list[tuple[int, int]]] = {d: [] for d in DIRECTIONS}
    for _ in range(4000):
        obj = sample_clip(rng, cfg)["objects"][0]
        cx, cy, _ = object_state(obj, 1)
        centres[obj["direction"]].append((cx, cy))
        assert obj["radius"] <= min(obj["x0"], obj["y0"]) and max(obj["x0"], obj["y0"]) <= 63 - obj["radius"]

    def histogram(values: list[tuple[int, int]], axis: int) -> np.ndarray:
        return np.bincount([v[axis] for v in values], minlength=64) / len(values)

    for axis in (0, 1):
        reference = histogram(centres["right"], axis)
        for direction in ("left", "up", "down"):
            assert 0.5 * np.abs(histogram(centres[direction], axis) - reference).sum() < 0.15, (direction, axis)
