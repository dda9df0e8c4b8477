"""The run API (``allinone_lab.train.runs``): the experiment of a scale, pre-training once and reusing the
finished run, loading a run from its directory or its checkpoint, and zero-shot evaluation (smoke preset)."""

import json

import pytest
import torch

from allinone_lab.data import fixtures as fx
from allinone_lab.train import jobs, runs
from allinone_lab.train.presets import preset
from allinone_lab.train.state import load_checkpoint


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    first, second = a.state_dict(), b.state_dict()
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_experiment_is_the_preset_with_dotted_overrides():
    overrides = {"model.roll_ratio": 0.5, "train.seed": 3, "data_root": None}
    exp = runs.experiment("smoke", **overrides)
    assert exp == preset("smoke").override(**overrides)
    assert exp.model.roll_ratio == 0.5 and exp.train.seed == 3
    assert runs.experiment("cpu") == preset("cpu")
    assert runs.experiment("rehearsal", "small") == preset("rehearsal", "small")
    with pytest.raises(ValueError, match="variant='base': only the scales"):
        runs.experiment("smoke", "base")
    with pytest.raises(ValueError, match="has no field 'ratio'"):
        runs.experiment("smoke", **{"model.ratio": 0.5})
    with pytest.raises(ValueError, match="preset 'laptop'"):
        runs.experiment("laptop")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> runs.Run:
    exp = runs.experiment("smoke", **{"train.device": "cpu"})
    return runs.pretrain_or_reuse(exp, tmp_path_factory.mktemp("runs") / "smoke", progress=False)


def test_pretrain_or_reuse_trains_once_then_reuses_the_finished_run(run):
    assert run.run_dir is not None and run.checkpoint == run.run_dir / "checkpoints" / "last.pt"
    assert load_checkpoint(run.checkpoint)["step"] == run.experiment.train.max_steps
    logged = (run.run_dir / "metrics.jsonl").read_text()
    written = run.checkpoint.stat().st_mtime_ns
    again = runs.pretrain_or_reuse(run.experiment, run.run_dir, progress=False)
    assert (run.run_dir / "metrics.jsonl").read_text() == logged  # no new steps
    assert run.checkpoint.stat().st_mtime_ns == written and again.checkpoint == run.checkpoint
    assert again.experiment == run.experiment and _same_weights(again.model("cpu"), run.model("cpu"))
    assert again.model("cpu") is again.model("cpu")  # built once


def test_load_run_from_the_directory_or_the_checkpoint_file(run, tmp_path):
    from_dir = runs.load_run(run.run_dir, device="cpu")
    from_file = runs.load_run(run.checkpoint, device="cpu")
    assert from_dir.experiment == from_file.experiment == run.experiment
    assert from_dir.run_dir == from_file.run_dir == run.run_dir
    assert from_dir.checkpoint == from_file.checkpoint == run.checkpoint
    assert _same_weights(from_dir.model("cpu"), from_file.model("cpu"))
    assert _same_weights(from_dir.model("cpu"), run.model("cpu")) and not from_dir.model("cpu").training
    with pytest.raises(FileNotFoundError, match="does not exist"):
        runs.load_run(tmp_path / "missing")
    bad = tmp_path / "bad"
    (bad / "checkpoints").mkdir(parents=True)
    (bad / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    (bad / "config.json").write_text(json.dumps(run.experiment.to_dict()))
    with pytest.raises(ValueError, match="could not be read"):
        runs.load_run(bad)


def test_evaluate_returns_the_corpus_metrics(run):
    metrics = runs.evaluate(run, device="cpu")
    assert {"cloze_acc_all", "mc_accuracy", "mc_chance"} <= set(metrics)
    assert metrics == jobs.evaluate_pretrained(run.experiment, run.model("cpu"))
    with pytest.raises(ValueError, match="dataset='msrvtt-qa': expected a prepared multiple-choice"):
        runs.evaluate(run, "msrvtt-qa")
    with pytest.raises(ValueError, match="needs data_root"):
        runs.evaluate(run, "lsmdc-mc")


def test_evaluate_on_a_named_prepared_dataset(run, tmp_path):
    root = fx.build_release_root(tmp_path / "root", ["lsmdc-mc", "msrvtt"])
    on_root = runs.Run(run.run_dir, run.experiment.override(data_root=str(root)), run.checkpoint)
    mc = runs.evaluate(on_root, "lsmdc-mc", device="cpu")
    assert set(mc) >= {"lsmdc-mc/mc_accuracy", "lsmdc-mc/items"} and mc["lsmdc-mc/items"] > 0
    retrieval = runs.evaluate(on_root, "msrvtt", device="cpu")
    assert "msrvtt/t2v_R@1" in retrieval and retrieval["msrvtt/items"] > 0


def test_resolve_device():
    assert runs.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert runs.resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="device='gpu': expected auto, cpu"):
        runs.resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            runs.resolve_device("cuda")
