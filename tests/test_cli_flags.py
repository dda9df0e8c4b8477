"""The training command line: every flag does what it says for the job given, or the job refuses it."""

from __future__ import annotations

import pytest

from allinone_lab.train.__main__ import FLAG_JOBS, FLAG_TASKS, JOBS, build_parser, main
from allinone_lab.train.state import load_checkpoint


def test_steps_sets_the_pretraining_steps(tmp_path):
    # The smoke preset trains 4 steps; --steps 3 must train 3 (it was once read by finetune alone).
    assert main(["pretrain", "--preset", "smoke", "--steps", "3", "--run-dir", str(tmp_path), "--no-progress"]) == 0
    assert load_checkpoint(tmp_path / "pretrain" / "checkpoints" / "last.pt")["step"] == 3


@pytest.mark.parametrize("argv, says", [
    (["pretrain", "--task", "mc"], "--task does not apply to `pretrain`: it is read by finetune only"),
    (["pretrain", "--init", "a.pt"], "--init does not apply to `pretrain`: pre-training starts from"),
    (["pretrain", "--retrieval-steps", "5"], "--retrieval-steps does not apply to `pretrain`"),
    (["experiment", "--stop-after", "5"], "--stop-after does not apply to `experiment`"),
    (["finetune", "--stop-after", "5"], "--stop-after does not apply to `finetune`"),
    (["evaluate", "--preset", "smoke"], "--preset does not apply to `evaluate`: the evaluation reads the run's"),
    (["evaluate", "--steps", "5"], "--steps does not apply to `evaluate`"),
    (["finetune", "--task", "linear_probe", "--steps", "5"],
     "--steps does not apply to --task linear_probe: it is read by --task mc | qa | retrieval | vcr only "
     "(the probe trains --probe-epochs epochs)"),
    (["finetune", "--task", "mc", "--zero-shot", "--eval-every", "2"], "--eval-every does not apply with --zero-shot"),
    (["finetune", "--task", "mc", "--objectives", "vtc=1"], "--objectives does not apply to --task mc"),
    (["finetune", "--task", "qa", "--no-paint-masks"], "--no-paint-masks does not apply to --task qa"),
    (["finetune", "--task", "qa", "--zero-shot"], "--zero-shot does not apply to --task qa"),
    (["finetune", "--task", "retrieval", "--probe-epochs", "3"], "--probe-epochs does not apply to --task retrieval"),
    (["finetune", "--steps", "3", "--set", "train.max_steps=4"], "--steps 3 and --set train.max_steps=4 disagree"),
])
def test_a_flag_the_job_would_not_use_is_refused_before_any_work(tmp_path, argv, says):
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as caught:
        main([*argv, "--run-dir", str(run_dir)])
    assert says in str(caught.value)
    assert not run_dir.exists()


def test_every_problem_is_listed_at_once(tmp_path):
    with pytest.raises(SystemExit) as caught:
        main(["pretrain", "--task", "mc", "--eval-every", "3", "--run-dir", str(tmp_path)])
    assert "--task does not apply" in str(caught.value) and "--eval-every does not apply" in str(caught.value)


def test_every_flag_declares_the_jobs_that_read_it():
    flags = {a.dest for a in build_parser()._actions if a.option_strings and a.dest != "help"}
    assert flags == set(FLAG_JOBS)
    assert all(set(jobs) <= set(JOBS) for jobs in FLAG_JOBS.values())
    assert all(FLAG_JOBS[dest] == ("finetune",) or dest == "steps" for dest in FLAG_TASKS)
