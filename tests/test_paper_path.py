"""The paper-scale path: several datasets under one data root, the pre-training mixture, the paper preset's
global batch, the rehearsal preset, zero-shot multiple choice on LSMDC and MSR-VTT for a pre-trained arm,
and the preflight that stops a paper-scale run within seconds, before any work, naming what is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from allinone_lab import repro
from allinone_lab.data.fixtures import build_release_root
from allinone_lab.data.mixture import MixtureDataset
from allinone_lab.data.roots import dataset_root, find_datasets
from allinone_lab.train import jobs
from allinone_lab.train.presets import preset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fixture_root() -> Path:
    return build_release_root()


def _partial_root(tmp_path: Path, fixture_root: Path, names: list[str]) -> Path:
    """A data root holding only ``names`` of the fixture's datasets (linked, not copied)."""
    root = tmp_path / "root"
    root.mkdir()
    for name in names:
        os.symlink(fixture_root / name, root / name)
    shutil.copy(fixture_root / "fixture.json", root / "fixture.json")  # a fixture: stand-in weights at rehearsal
    return root


def test_one_root_holds_several_datasets_each_found_by_its_manifest(tmp_path, fixture_root):
    found = find_datasets(fixture_root)
    assert {"webvid", "howto100m", "lsmdc-mc", "msrvtt-mc", "msrvtt", "vcr"} <= set(found)
    assert all(json.loads((path / "manifest.json").read_text())["dataset"] == name for name, path in found.items())
    assert find_datasets(fixture_root / "webvid") == {"webvid": fixture_root / "webvid"}  # a dataset root itself
    root = _partial_root(tmp_path, fixture_root, ["webvid"])
    with pytest.raises(FileNotFoundError, match=r"no prepared 'lsmdc-mc' \(it holds webvid .*prepare lsmdc-mc"):
        dataset_root(root, "lsmdc-mc")
    os.symlink(fixture_root / "webvid", root / "webvid-again")
    with pytest.raises(ValueError, match="both hold 'webvid'"):
        find_datasets(root)


def test_paper_preset_states_the_paper_global_batch_and_pretraining_data():
    base, tiny = preset("paper"), preset("paper", "tiny")
    assert (base.train.batch_size, base.train.global_batch_size, base.train.max_steps) == (16, 512, 200_000)
    assert (tiny.train.batch_size, tiny.train.global_batch_size, tiny.train.max_steps) == (32, 1024, 100_000)
    assert base.data.pretrain_datasets == {"webvid": 0.5, "howto100m": 0.5}


def test_rehearsal_is_the_paper_path_with_only_the_budget_cut():
    paper, rehearsal = preset("paper", "tiny").to_dict(), preset("rehearsal").to_dict()
    budget = {"max_steps", "batch_size", "global_batch_size", "checkpoint_every", "log_every", "num_workers",
              "max_eval_items"}
    for section in ("model", "data", "corpus"):
        assert rehearsal[section] == paper[section], section
    assert {k for k in paper["train"] if paper["train"][k] != rehearsal["train"][k]} <= budget
    assert rehearsal["train"]["global_batch_size"] > rehearsal["train"]["batch_size"]  # accumulation runs


def test_paper_preset_never_falls_back_to_the_built_in_corpus():
    with pytest.raises(ValueError, match="pretrain_datasets=.* needs data_root"):
        jobs.pretraining_pairs(preset("paper", "tiny"))


def test_pretraining_mixture_draws_each_dataset_in_its_share(fixture_root):
    exp = preset("rehearsal").override(data_root=str(fixture_root))
    pairs = jobs.pretraining_pairs(exp)
    assert isinstance(pairs, MixtureDataset) and set(pairs.sources) == {"webvid", "howto100m"}
    counts = pairs.counts()
    assert abs(counts["webvid"] - counts["howto100m"]) <= 1 and sum(counts.values()) == len(pairs)
    item = pairs[0]
    assert item["source"] in ("webvid", "howto100m") and item["video"].shape[:2] == (3, 3)


def test_a_pretrained_arm_is_scored_zero_shot_on_lsmdc_and_msrvtt(fixture_root):
    exp = preset("rehearsal").override(**{"data_root": str(fixture_root), "model.init": "scratch"})
    model = jobs.load_model(exp).eval()
    metrics = jobs.evaluate_pretrained(exp, model, batch_size=8)
    for name in ("lsmdc-mc", "msrvtt-mc"):
        assert 0 <= metrics[f"{name}/mc_accuracy"] <= 100 and metrics[f"{name}/mc_chance"] == pytest.approx(20.0)


def _table8b_at_paper(tmp_path: Path, data_root: Path, output_dir: Path | None = None) -> tuple[str, float]:
    """Run Table 8b at scale=paper in a fresh process; returns (stderr, seconds)."""
    code = ("from allinone_lab import repro; repro.run_reproduction('table8b', repro.check_parameters('table8b', "
            f"scale='paper', data_root={str(data_root)!r}, output_dir={str(output_dir or tmp_path / 'out')!r}, "
            "device='cpu'))")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "empty-cache"), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    seconds = time.perf_counter() - start
    assert done.returncode != 0
    return done.stderr, seconds


@pytest.mark.slow
def test_paper_run_stops_within_seconds_listing_every_problem(tmp_path, fixture_root):
    # No lsmdc-mc evaluation set, no ImageNet-21K weights in the (empty) cache, an output_dir under a file.
    root = _partial_root(tmp_path, fixture_root, ["webvid", "howto100m", "msrvtt-mc"])
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    stderr, seconds = _table8b_at_paper(tmp_path, root, blocker / "out")
    assert seconds < 30
    assert "PreflightError: preflight found 3 problems before any work" in stderr
    assert "has no prepared 'lsmdc-mc'" in stderr and "prepare lsmdc-mc --out" in stderr  # the evaluation set
    tag = "vit_base_patch16_224.augreg2_in21k_ft_in1k"  # All-in-one-B's ImageNet weights, and how to fetch them
    assert f"no local weights for variant='base' init='imagenet' (timm tag {tag})" in stderr
    assert f"download timm/{tag}" in stderr
    assert f"{blocker}' on its path is a regular file" in stderr  # the unwritable output directory
    assert not (blocker.parent / "out").exists()


def test_preflight_names_a_media_file_that_does_not_decode(tmp_path, fixture_root):
    root = tmp_path / "root"
    shutil.copytree(fixture_root / "msrvtt-mc", root / "msrvtt-mc", symlinks=False)
    first = json.loads((root / "msrvtt-mc" / "annotations" / "test.jsonl").read_text().splitlines()[0])["video"]
    broken = root / "msrvtt-mc" / first
    broken.unlink()
    broken.write_bytes(b"not a video")
    exp = preset("rehearsal").override(data_root=str(root))
    problems = jobs.data_problems(exp, [("mc", "test", "msrvtt-mc")])
    assert problems and str(broken) in problems[0]


def test_check_command_prints_one_line_per_reproduction(tmp_path, fixture_root):
    root = _partial_root(tmp_path, fixture_root, ["webvid", "howto100m", "msrvtt-mc"])
    done = subprocess.run([sys.executable, "-m", "allinone_lab.repro", "check", "--scale", "rehearsal",
                           "--data-root", str(root), "table8b", "table1", "table4"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    lines = dict(line.split(None, 1) for line in done.stdout.strip().splitlines())
    assert set(lines) == {"table8b", "table1", "table4"}
    assert lines["table8b"].startswith("missing:") and "lsmdc-mc" in lines["table8b"]
    assert lines["table1"].startswith("ready")
    assert lines["table4"] == "ready"  # msrvtt-mc is there, and the rehearsal's pre-training data
    assert done.returncode == 1
    assert repro.REPRODUCTIONS["table1"].reads_data is False


def test_fig9_pretrains_on_webvid_alone_at_the_paper_scales(monkeypatch, fixture_root, tmp_path):
    from allinone_lab.repro import ablations

    seen = {}

    def pretrain_arm(ctx, name, exp, eval_exp=None):
        seen[name] = exp
        return {"row": {"LSMDC": 20.0, "MSR-VTT": 20.0, "PT time (s)": 0.0}, "metrics": {}}

    monkeypatch.setattr(ablations, "pretrain_arm", pretrain_arm)
    params = repro.check_parameters("fig9", scale="rehearsal", data_root=str(fixture_root),
                                    output_dir=str(tmp_path / "out"))
    ctx = repro.Context(params=params, device=torch.device("cpu"), scale="rehearsal", output_dir=tmp_path / "out",
                        data_root=str(fixture_root), fixture_weights=fixture_root / "weights")
    result = ablations.run_fig9(params, ctx)
    assert seen and all(exp.data.pretrain_datasets == {"webvid": 1.0} for exp in seen.values())
    assert any("WebVid alone" in note for note in result.notes)
