"""Run directories: a run resumes only with the configuration it records, and has one writer at a time."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from allinone_lab.repro.spec import Context
from allinone_lab.train import jobs
from allinone_lab.train.preflight import PreflightError
from allinone_lab.train.presets import preset
from allinone_lab.train.rundir import (
    LOCK_FILE,
    RunConfigMismatch,
    RunLock,
    RunLockedError,
    check_config,
    config_differences,
)
from allinone_lab.train.state import load_checkpoint


def _smoke(**overrides):
    return preset("smoke").override(**{"train.max_steps": 2, "train.checkpoint_every": 2, **overrides})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-step smoke pre-training run."""
    run_dir = tmp_path_factory.mktemp("rundir") / "pretrain"
    jobs.pretrain(_smoke(), run_dir, progress=False)
    return run_dir


# The configuration a run records --------------------------------------------------------------------------------
def test_another_configuration_stops_before_any_work_naming_the_fields(finished):
    before = (finished / "checkpoints" / "last.pt").stat().st_mtime_ns
    with pytest.raises(PreflightError) as caught:
        jobs.pretrain(_smoke(**{"model.width": 32, "model.heads": 2, "train.lr": 5e-4}), finished, progress=False)
    message = str(caught.value)
    assert "model.width: 64 in the run, 32 now" in message
    assert "train.lr: 0.001 in the run, 0.0005 now" in message
    assert "another output_dir / --run-dir" in message and f"delete {str(finished)!r}" in message
    assert "model.heads" not in message  # unchanged fields are not listed
    assert (finished / "checkpoints" / "last.pt").stat().st_mtime_ns == before


def test_train_itself_refuses_a_mismatched_resume(finished):
    from allinone_lab.data import collate
    from allinone_lab.train import Pretraining, train

    exp = _smoke(**{"model.width": 32})
    model = jobs.load_model(exp)
    with pytest.raises(RunConfigMismatch, match=r"model\.width: 64 in the run, 32 now"):
        train(Pretraining(model, exp.train.loss_weights), jobs.pretraining_pairs(exp), exp.train, finished,
              collate_fn=collate, resolved_config=exp.to_dict(), progress=False)


def test_the_step_count_may_grow_but_not_shrink(tmp_path):
    run_dir = tmp_path / "pretrain"
    jobs.pretrain(_smoke(), run_dir, progress=False)
    with pytest.raises(PreflightError, match=r"train\.max_steps: 2 in the run, 1 now \(the step count may grow"):
        jobs.pretrain(_smoke(**{"train.max_steps": 1}), run_dir, progress=False)
    grown = _smoke(**{"train.max_steps": 3, "train.log_every": 3, "train.checkpoint_every": 1})
    checkpoint = jobs.pretrain(grown, run_dir, progress=False)
    assert load_checkpoint(checkpoint)["step"] == 3
    recorded = json.loads((run_dir / "config.json").read_text())
    assert recorded["train"]["max_steps"] == 3 and recorded["train"]["log_every"] == 3


def test_differences_compare_values_as_recorded():
    exp = _smoke()
    recorded = json.loads(json.dumps(exp.to_dict()))  # tuples read back as lists
    assert config_differences(recorded, exp.to_dict()) == []
    assert config_differences(recorded, _smoke(**{"train.device": "cpu", "train.num_workers": 2}).to_dict()) == []
    assert config_differences(recorded, _smoke(**{"data.mlm_prob": 0.3}).to_dict()) == [("data.mlm_prob", 0.15, 0.3)]
    assert config_differences({**recorded, "task": "qa"}, exp.to_dict()) == [("task", "qa", None)]


def test_nothing_recorded_nothing_to_check(tmp_path):
    check_config(tmp_path / "new", _smoke().to_dict())
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(RunConfigMismatch, match="config.json is not valid JSON"):
        check_config(tmp_path / "bad", _smoke().to_dict())


def test_reproductions_keep_scales_and_seeds_apart(tmp_path):
    import torch

    def path(scale, seed):
        return Context({}, torch.device("cpu"), scale, tmp_path, seed=seed).run_path("ratio_0.25")

    assert len({path("smoke", 0), path("cpu", 0), path("cpu", 1), path("smoke", 1)}) == 4
    assert path("cpu", 0) == tmp_path / "runs" / "cpu" / "ratio_0.25"


# One writer -------------------------------------------------------------------------------------------------------
HOLDER = textwrap.dedent("""
    import sys, time
    from allinone_lab.train.rundir import RunLock
    lock = RunLock(sys.argv[1])
    lock.acquire()
    print("held", flush=True)
    time.sleep(600)
""")


def _hold(run_dir: Path) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_second_writer_stops_naming_the_holder_and_a_dead_holders_lock_is_taken_over(tmp_path, capsys):
    run_dir = tmp_path / "pretrain"
    child = _hold(run_dir)
    try:
        with pytest.raises(RunLockedError) as caught:
            RunLock(run_dir).acquire()
        message = str(caught.value)
        assert f"pid {child.pid} on host {socket.gethostname()!r}" in message and "started " in message
        with pytest.raises(PreflightError, match=f"being written by another process \\(pid {child.pid}"):
            jobs.pretrain(_smoke(), run_dir, progress=False)
        assert not (run_dir / "checkpoints").exists()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    # The holder died without releasing: its lock is taken over, saying whose it was.
    checkpoint = jobs.pretrain(_smoke(), run_dir, progress=False)
    assert load_checkpoint(checkpoint)["step"] == 2
    assert f"taking over the lock left by pid {child.pid}" in capsys.readouterr().err
    assert (run_dir / LOCK_FILE).read_text() == ""  # released: names nobody


RACER = textwrap.dedent("""
    import sys, time
    from allinone_lab.train.rundir import RunLock, RunLockedError
    while time.time() < float(sys.argv[2]):
        pass
    try:
        RunLock(sys.argv[1]).acquire()
        print("won", flush=True)
        time.sleep(3)
    except RunLockedError:
        print("lost", flush=True)
""")


def test_of_writers_starting_together_exactly_one_gets_the_run(tmp_path):
    start = str(time.time() + 2.0)
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path / "run"), start], stdout=subprocess.PIPE,
                               text=True) for _ in range(3)]
    outcomes = sorted(r.communicate(timeout=120)[0].strip() for r in racers)
    assert outcomes == ["lost", "lost", "won"]


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    lock = RunLock(tmp_path)
    with lock:
        with RunLock(tmp_path):
            assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()  # still held
        assert not lock.is_held_elsewhere()
    assert (tmp_path / LOCK_FILE).read_text() == ""


def test_before_the_process_group_exists_only_torchruns_rank_0_takes_the_lock(tmp_path, monkeypatch):
    # Under torchrun every process runs the job's preflight and claim before joining the group; only rank 0
    # may take the lock, and the others must not see rank 0's lock as another writer.
    from allinone_lab.train.distributed import is_main
    from allinone_lab.train.rundir import claim, run_dir_problems

    child = _hold(tmp_path)
    try:
        monkeypatch.setenv("RANK", "1")
        assert not is_main()
        assert run_dir_problems(tmp_path) == []
        with claim(tmp_path):  # takes nothing
            pass
        monkeypatch.setenv("RANK", "0")
        assert is_main() and run_dir_problems(tmp_path)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
