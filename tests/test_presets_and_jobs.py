"""Presets (the paper's numbers), experiment overrides, and the command-line jobs on the smoke preset."""

import json

import pytest

from allinone_lab.train.__main__ import main
from allinone_lab.train.presets import PAPER_FINETUNE, Experiment, parse_overrides, preset


def test_paper_preset_equals_the_papers_settings():
    base = preset("paper")
    assert (base.model.variant, base.model.image_size, base.model.patch_size) == ("base", 224, 16)
    assert (base.model.num_frames, base.model.max_text_len, base.model.roll_ratio) == (3, 40, 0.25)
    assert (base.train.max_steps, base.train.batch_size) == (200_000, 16)
    assert (base.train.lr, base.train.weight_decay, base.train.warmup_ratio) == (1e-4, 0.01, 0.1)
    assert base.train.betas == (0.9, 0.98) and base.train.precision == "auto"  # mixed precision on GPU
    assert base.model.init == "imagenet" and preset("paper", "small").model.init == "imagenet21k"
    assert preset("paper", "small").train.batch_size == 16
    tiny = preset("paper", "tiny")
    assert (tiny.train.max_steps, tiny.train.batch_size) == (100_000, 32)
    assert PAPER_FINETUNE == {"default": {"epochs": 20, "global_batch_size": 256},
                              "vcr": {"epochs": 100, "global_batch_size": 512}}


def test_overrides_keep_model_and_data_in_step_and_name_bad_keys():
    exp = preset("smoke").override(**parse_overrides(["model.num_frames=1", "model.temporal=none",
                                                      "train.loss_weights={'mlm': 1.0}"]))
    assert exp.model.num_frames == exp.data.num_frames == 1 and exp.model.temporal == "none"
    assert exp.train.loss_weights == {"mlm": 1.0}
    with pytest.raises(ValueError, match="has no field 'ratio'"):
        preset("smoke").override(**{"model.ratio": 0.5})
    with pytest.raises(ValueError, match="unknown section"):
        preset("smoke").override(**{"optim.lr": 0.5})
    with pytest.raises(ValueError, match="model.image_size=32 but data.image_size=64"):
        Experiment(model=preset("smoke").model, data=preset("smoke").data.replace(image_size=64))
    assert Experiment.from_dict(preset("cpu").to_dict()) == preset("cpu")


def test_experiment_job_writes_results_and_resumes(tmp_path, capsys):
    args = ["experiment", "--preset", "smoke", "--run-dir", str(tmp_path), "--retrieval-steps", "2", "--no-progress",
            "--set", "train.max_steps=3"]
    assert main(args) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    metrics = results["metrics"]
    assert {"cloze_acc_temporal", "mc_accuracy", "mc_temporal_accuracy", "t2v_R@1", "random_R@1"} <= set(metrics)
    assert results["config"]["train"]["max_steps"] == 3
    steps = [json.loads(line)["step"] for line in (tmp_path / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    # Running it again finds the finished checkpoint and does not train again.
    assert main(args) == 0
    steps = [json.loads(line)["step"] for line in (tmp_path / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    assert main(["evaluate", "--run-dir", str(tmp_path)]) == 0
    assert "cloze_acc_all" in capsys.readouterr().out


@pytest.mark.parametrize("task", ["qa", "mc", "retrieval"])
def test_finetune_selects_on_validation_and_reports_test(tmp_path, task):
    args = ["finetune", "--preset", "smoke", "--task", task, "--run-dir", str(tmp_path), "--steps", "4",
            "--eval-every", "2", "--no-progress"]
    assert main(args) == 0
    history = [json.loads(line) for line in (tmp_path / "validation.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [2, 4]
    results = json.loads((tmp_path / "results.json").read_text())["metrics"]
    best = max(history, key=lambda h: h["score"])  # the first of equals wins
    assert results["selected_step"] == best["step"] and results["validation"] == best["score"]
    assert "score" in results["test"]
    assert main(args) == 0  # finished: nothing more to train, same selection
    assert len((tmp_path / "validation.jsonl").read_text().splitlines()) == 2


def test_pretraining_curves_are_recorded_and_resume_without_repeats(tmp_path):
    from allinone_lab.train.jobs import pretrain

    exp = preset("smoke").override(**{"train.max_steps": 5})
    pretrain(exp, tmp_path, progress=False, eval_every=2, stop_after=3)
    pretrain(exp, tmp_path, progress=False, eval_every=2)
    pretrain(exp, tmp_path, progress=False, eval_every=2)  # finished: no new row
    rows = [json.loads(line) for line in (tmp_path / "curve.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 3, 5]
    assert {"cloze_acc_temporal", "mc_temporal_accuracy"} <= set(rows[-1])


def test_cloze_chance_is_the_most_frequent_word_of_each_group():
    from collections import Counter

    from allinone_lab.data.corpus import build_corpus
    from allinone_lab.train import jobs

    exp = preset("smoke")
    rows = [json.loads(line) for line in
            (build_corpus(exp.corpus) / "annotations" / "cloze_test.jsonl").read_text().splitlines() if line]
    chance = jobs.cloze_chance(jobs.dataset(exp, "cloze", "test", train=False))
    temporal = Counter(r["word"] for r in rows if r["temporal"])
    direction = Counter(r["word"] for r in rows if r["kind"] == "direction")
    assert chance["cloze_chance_temporal"] == pytest.approx(100 * max(temporal.values()) / sum(temporal.values()))
    assert chance["cloze_chance_direction"] == pytest.approx(100 * max(direction.values()) / sum(direction.values()))
    assert {"cloze_chance_static", "cloze_chance_colour", "cloze_chance_shape"} <= set(chance)
    assert 0 < chance["cloze_chance_temporal"] < 100
