"""Rows of the paper that take more than one plain fine-tuning run: the multi-clip test of Tables 2-4
("3 × 3"), Table 4's fine-tuned MSR-VTT MC (through MSR-VTT retrieval), Table 5's Q->A, QA->R and Q->AR,
Table 13's Fine-tune column on Ego4D (not produced, and said why) and Fig. 7's downstream columns.

The data is the release-format fixture root (every dataset, in each release's own format); the models are the
smoke preset's, so that the rehearsal code path runs in seconds.
"""

from __future__ import annotations

import dataclasses
import json
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from allinone_lab import repro
from allinone_lab.data import collate
from allinone_lab.data.fixtures import build_release_root
from allinone_lab.data.video import sample_indices
from allinone_lab.eval import encode_videos, evaluate_multiple_choice, evaluate_open_ended_qa, over_clips
from allinone_lab.repro import downstream, model_tables, paper
from allinone_lab.repro.show import comparison_rows
from allinone_lab.train import jobs
from allinone_lab.train.presets import preset

SMOKE = preset("smoke")
SMOKE_METHOD = "All-in-one (smoke preset)"


@pytest.fixture(scope="module")
def root() -> Path:
    return build_release_root()


@pytest.fixture(scope="module")
def init(tmp_path_factory) -> str:
    """One smoke pre-training run on the built-in corpus, the ``init`` of every reproduction here."""
    run = tmp_path_factory.mktemp("pretrain")
    return str(jobs.pretrain(SMOKE.override(**{"train.max_steps": 2}), run, progress=False))


def _run(name: str, out: Path, **values: Any) -> repro.Result:
    params = repro.check_parameters(name, scale="smoke", output_dir=str(out / name), **values)
    return repro.run_reproduction(name, params)


def _job(out: Path, name: str, run: str) -> dict[str, Any]:
    return json.loads((out / name / "runs" / "smoke" / run / "results.json").read_text())


def _beside(key: str, row: dict[str, Any], column: str) -> list[Any]:
    """The paper's values of ``column`` in the lines where ``row`` sits beside a paper row."""
    header, lines = comparison_rows(paper.table_dict(key), [row])
    lines = [dict(zip(header, line, strict=True)) for line in lines]
    return [line[f"{column} (paper)"] for line in lines if line.get(f"{column} (measured)") is not None]


# Multi-clip test -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("frames", [7, 9, 90, 100, 1001])
def test_clip_k_of_k_lies_within_the_kth_of_k_equal_segments(frames):
    clips, per_clip = 3, 3
    indices = sample_indices(frames, clips * per_clip, train=False).reshape(clips, per_clip)
    for k, clip in enumerate(indices):
        assert ((k * frames) // clips <= clip).all() and (clip < max((k + 1) * frames // clips, 1)).all()
        assert (np.diff(clip) >= 0).all()


def test_multi_clip_items_split_the_wide_sampling_into_clips(root):
    exp = SMOKE.override(data_root=str(root / "msrvtt-mc"))
    multi = jobs.multi_clip_dataset(exp, "mc", "test", 3)
    wide = jobs.dataset(exp.override(**{"model.num_frames": 9}), "mc", "test", train=False)
    item = multi[0]
    assert item["video"].shape == (3, 3, 3, SMOKE.model.image_size, SMOKE.model.image_size)
    assert torch.equal(item["video"].reshape(wide[0]["video"].shape), wide[0]["video"])
    assert len(multi) == len(wide) and multi.table.source == wide.table.source  # attributes: the wrapped ones
    assert jobs.multi_clip_dataset(exp, "mc", "test", 1)[0]["video"].shape[0] == 3  # one clip: the plain item
    with pytest.raises(ValueError, match="test_clips=0: expected an integer >= 1"):
        jobs.multi_clip_dataset(exp, "mc", "test", 0)


def test_multi_clip_scores_are_the_mean_of_the_per_clip_scores(root):
    exp = SMOKE.override(data_root=str(root / "msrvtt-mc"))
    model = jobs.load_model(exp).eval()
    multi = jobs.multi_clip_dataset(exp, "mc", "test", 3)
    batch = collate([multi[i] for i in range(len(multi))])
    video, ids, mask = batch["video"], batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        per_clip = torch.stack([model.choice_scores(video[:, k], ids, mask) for k in range(3)])
        mean = per_clip.mean(0)
        torch.testing.assert_close(over_clips(video, partial(model.choice_scores, choice_ids=ids,
                                                             choice_mask=mask)), mean)
        embeddings = torch.stack([model.encode_video(video[:, k]) for k in range(3)]).mean(0)
    torch.testing.assert_close(encode_videos(model, [batch]), embeddings)
    direct = evaluate_multiple_choice(model, [batch], per_item=True)
    assert direct["predictions"] == mean.argmax(1).tolist()


def test_the_jobs_test_every_video_as_clips_and_keep_each_items_answer(root, tmp_path):
    exp = SMOKE.override(data_root=str(root / "msrvtt-mc"))
    results = jobs.finetune(exp, "mc", tmp_path / "mc", 0, zero_shot=True, test_clips=3, per_item=True)
    model = jobs.load_model(exp).eval()  # the job's model: the same seeded initialisation
    batch = collate([jobs.multi_clip_dataset(exp, "mc", "test", 3)[i] for i in range(results["test_items"])])
    with torch.no_grad():
        ids, mask = batch["input_ids"], batch["attention_mask"]
        mean = torch.stack([model.choice_scores(batch["video"][:, k], ids, mask) for k in range(3)]).mean(0)
    test = results["test"]
    assert test["predictions"] == mean.argmax(1).tolist()
    assert test["correct"] == (mean.argmax(1) == batch["answer"]).tolist()
    assert test["item_index"] == list(range(results["test_items"])) and results["test_clips"] == 3
    assert json.loads((tmp_path / "mc" / "results.json").read_text())["config"]["test_clips"] == 3
    qa = SMOKE.override(data_root=str(root / "msrvtt-qa"))
    answers = jobs.dataset(qa, "qa", "train").answers
    qa = qa.override(**{"model.num_answers": len(answers)})
    model = jobs.load_model(qa).eval()
    batch = collate([jobs.multi_clip_dataset(qa, "qa", "test", 3)[i] for i in range(4)])
    with torch.no_grad():
        logits = torch.stack([model.qa_head(model(batch["video"][:, k], batch["input_ids"],
                                                  batch["attention_mask"]).pooled) for k in range(3)]).mean(0)
    assert evaluate_open_ended_qa(model, [batch], per_item=True)["predictions"] == logits.argmax(1).tolist()
    with pytest.raises(ValueError, match="task 'linear_probe': test_clips=3"):
        jobs.finetune(exp, "linear_probe", tmp_path / "probe", 0, test_clips=3)


def test_the_corpus_refuses_more_clips_than_it_stores_frames(tmp_path):
    with pytest.raises(repro.ParameterError, match=r"parameter test_clips=3: 3 clips of 3 frames need 9 "
                                                   r"frames per video, but the built-in corpus stores 8"):
        _run("table2", tmp_path, test_clips=3)
    with pytest.raises(ValueError, match="test_clips=3: 3 clips of 3 frames need 9 frames"):
        jobs.multi_clip_dataset(SMOKE, "mc", "test", 3)
    with pytest.raises(repro.ParameterError, match="parameter test_clips=17: expected an integer in"):
        repro.check_parameters("table3", test_clips=17)


@pytest.mark.parametrize(("name", "dataset", "column", "paper_value"), [
    ("table2", "msrvtt-qa", "Accuracy", 44.3),
    ("table3", "msrvtt-9k", "R@1", 37.9),
    ("table4", "lsmdc-mc", "Accuracy", 83.5),
])
def test_three_by_three_rows_are_tested_on_three_clips(root, init, tmp_path, name, dataset, column,
                                                        paper_value):
    extra = {"mode": "fine-tune"} if name == "table4" else {}
    result = _run(name, tmp_path, init=init, data_root=str(root), dataset=dataset, test_clips=3, steps=1,
                  **extra)
    (row,) = result.rows
    assert row["frames"] == "3 × 3" and column in row
    assert any(note.startswith("Multi-clip test (3 × 3)") for note in result.notes)
    (run,) = (tmp_path / name / "runs" / "smoke").iterdir()
    job = json.loads((run / "results.json").read_text())
    assert job["config"]["test_clips"] == 3 and job["metrics"]["test_clips"] == 3
    # at paper scale (All-in-one-B) the row sits beside the paper's "3x3" row
    assert _beside(paper.table(name).key, {**row, "method": "All-in-one-B"}, column) == [paper_value]


# Table 4: MSR-VTT MC fine-tuned through retrieval --------------------------------------------------------
def test_table4_fine_tunes_msrvtt_mc_on_msrvtt_retrieval_then_scores_the_candidates(root, init, tmp_path):
    result = _run("table4", tmp_path, init=init, data_root=str(root), dataset="msrvtt-mc", steps=1)
    rows = {row["method"]: row for row in result.rows}
    assert set(rows) == {f"{SMOKE_METHOD} (zero-shot)", SMOKE_METHOD}
    retrieval = _job(tmp_path, "table4", "msrvtt-mc-finetune-retrieval")
    assert retrieval["config"]["task"] == "retrieval"
    assert retrieval["config"]["splits"] == {"train": "train_9k"}
    assert retrieval["config"]["data_root"].endswith("msrvtt")
    scored = _job(tmp_path, "table4", "msrvtt-mc-finetune")
    assert scored["config"]["zero_shot"] is True and scored["config"]["task"] == "mc"
    assert scored["config"]["init"].endswith("msrvtt-mc-finetune-retrieval/checkpoints/best.pt")
    assert rows[SMOKE_METHOD]["Accuracy"] == scored["metrics"]["test"]["accuracy"]
    assert rows[SMOKE_METHOD]["dataset"] == "MSR-VTT"
    assert any("no training split" in note and "MSR-VTT (9K train) retrieval pairs" in note
               for note in result.notes)


def test_table4_without_msrvtt_retrieval_notes_or_refuses_the_fine_tuned_row(root, init, tmp_path):
    only = tmp_path / "only-mc"
    only.mkdir()
    (only / "msrvtt-mc").symlink_to(root / "msrvtt-mc")
    result = _run("table4", tmp_path, init=init, data_root=str(only), dataset="msrvtt-mc")
    assert [row["method"] for row in result.rows] == [f"{SMOKE_METHOD} (zero-shot)"]
    assert any("not fine-tuned: parameter mode='both' with dataset='msrvtt-mc' fine-tunes on msrvtt retrieval"
               in note and "no prepared 'msrvtt'" in note for note in result.notes)
    with pytest.raises(repro.ParameterError, match="parameter mode='fine-tune' with dataset='msrvtt-mc' "
                                                   "fine-tunes on msrvtt retrieval"):
        _run("table4", tmp_path / "refused", init=init, data_root=str(only), dataset="msrvtt-mc",
             mode="fine-tune")


# Table 5: Q->A, QA->R and Q->AR --------------------------------------------------------------------------
def test_table5_scores_q_to_ar_from_the_per_item_answers_of_both_subtasks(root, init, tmp_path):
    result = _run("table5", tmp_path, init=init, data_root=str(root), dataset="vcr", steps=1,
                  pt_data="HowTo100M")
    (row,) = result.rows
    assert row["dataset"] == "VCR" and row["Accuracy"] == row["Q->A"]
    answer, rationale = _job(tmp_path, "table5", "vcr"), _job(tmp_path, "table5", "vcr-qar")
    assert answer["config"]["subtask"] == "qa" and rationale["config"]["subtask"] == "qar"
    a, r = answer["metrics"]["test"], rationale["metrics"]["test"]
    assert row["QA->R"] == r["accuracy"] and a["item_index"] == r["item_index"]
    both = [x and y for x, y in zip(a["correct"], r["correct"], strict=True)]
    assert row["Q->AR"] == pytest.approx(100 * sum(both) / len(both))
    assert row["Q->AR"] <= min(row["Q->A"], row["QA->R"])
    assert result.metrics["Q->AR accuracy"] == row["Q->AR"]
    assert all(isinstance(v, float) for v in result.metrics.values())  # no per-item lists among the metrics
    assert any("Accuracy here is Q->A" in note for note in result.notes)


def test_q_to_ar_needs_the_same_items_in_the_same_rows(root):
    qa = downstream.extra_source(downstream.VCR_SOURCES["vcr"], _context(root, "smoke"), "test")
    qar = dataclasses.replace(qa, subtask="qar")
    with pytest.raises(ValueError, match="cover different rows"):
        downstream._q_to_ar(SMOKE, qa, qar, True, {"item_index": [0]}, {"item_index": [0, 1]})
    items = {"item_index": [0, 1], "correct": [True, True]}
    assert downstream._q_to_ar(SMOKE, qa, qar, True, items, items) == 100.0
    with pytest.raises(ValueError, match="row 0 of the Q->A and QA->R test files is not the same question"):
        downstream._q_to_ar(SMOKE, qar, qa, True, items, items)  # swapped: the rows do not match


# Table 13: Ego4D's Fine-tune column ----------------------------------------------------------------------
def test_table13_on_ego4d_gives_the_zero_shot_column_and_says_why_not_the_fine_tuned_one(root, init,
                                                                                          tmp_path):
    result = _run("table13", tmp_path, init=init, data_root=str(root), dataset="ego4d-mc", time_average=False)
    (row,) = result.rows
    assert "Zero-shot" in row and "Fine-tune" not in row
    (note,) = [n for n in result.notes if n.startswith("Fine-tune column not produced")]
    assert "does not say what data the model is fine-tuned on" in note and "validation set only" in note
    with pytest.raises(repro.ParameterError, match="parameter mode='fine-tune' with dataset='ego4d-mc': the "
                                                   "Fine-tune column cannot be produced"):
        _run("table13", tmp_path / "refused", init=init, data_root=str(root), dataset="ego4d-mc",
             mode="fine-tune", time_average=False)


# Fig. 7: fine-tune, zero-shot and linear probe by model size -------------------------------------------
def _context(root: Path, scale: str, out: Path | None = None) -> repro.Context:
    return repro.Context(params={}, device=torch.device("cpu"), scale=scale,
                         output_dir=out or root / "unused", data_root=str(root))


def test_fig7_adds_the_downstream_columns_of_each_size(root, tmp_path, monkeypatch):
    calls: list[tuple[str, Any, Path]] = []

    def pretrain_arm(ctx, name, exp, eval_exp=None):
        row = {"LSMDC": 25.0, "MSR-VTT": 50.0, "VTM": 60.0, "Params (M)": 5.0, "steps": 2}
        return {"row": row, "metrics": {}}

    def downstream_columns(ctx, name, exp, checkpoint, sources, params):
        calls.append((name, exp, checkpoint))
        columns = {"Fine-tune MSRVTT-QA": 10.0, f"Linear probe {sources[1].label} Top-1": 20.0}
        return columns, f"{name}: downstream"

    monkeypatch.setattr(model_tables, "pretrain_arm", pretrain_arm)
    monkeypatch.setattr(model_tables, "preflight_arms", lambda ctx, arms: None)
    monkeypatch.setattr(model_tables, "fig7_downstream", downstream_columns)
    ctx = _context(root, "rehearsal", tmp_path)
    result = model_tables.run_fig7(repro.check_parameters("fig7", scale="rehearsal"), ctx)
    (row,) = [r for r in result.rows if "VTM" in r]
    assert row["model"] == "All-in-one-Ti"
    assert {k: row[k] for k in ("Zero-shot LSMDC MC", "Zero-shot MSR-VTT MC", "Fine-tune MSRVTT-QA",
                                "Linear probe K400 Top-1")} == {"Zero-shot LSMDC MC": 25.0,
                                                                "Zero-shot MSR-VTT MC": 50.0,
                                                                "Fine-tune MSRVTT-QA": 10.0,
                                                                "Linear probe K400 Top-1": 20.0}
    ((name, exp, checkpoint),) = calls
    assert exp.model.variant == "tiny" and exp.data_root == str(root)
    run = tmp_path / "runs" / "rehearsal" / "All-in-one-Ti"
    assert checkpoint == run / "pretrain" / "checkpoints" / "last.pt"
    assert any("a full run adds" in note and "ten downstream datasets" in note for note in result.notes)
    assert result.metrics["All-in-one-Ti/Linear probe K400 Top-1"] == 20.0
    calls.clear()
    off = model_tables.run_fig7(repro.check_parameters("fig7", scale="rehearsal", downstream=False), ctx)
    assert not calls and any("not run (downstream=False)" in note for note in off.notes)
    only = tmp_path / "only-mc"
    only.mkdir()
    (only / "msrvtt-qa").symlink_to(root / "msrvtt-qa")
    with pytest.raises(repro.ParameterError, match="parameter downstream=True .*no prepared 'hmdb51'"):
        model_tables.run_fig7(repro.check_parameters("fig7", scale="rehearsal", probe_dataset="hmdb51"),
                              _context(only, "rehearsal", tmp_path))


def test_fig7_downstream_fine_tunes_msrvtt_qa_and_probes_from_the_checkpoint(root, init, tmp_path):
    ctx = _context(root, "smoke", tmp_path)
    sources = model_tables.fig7_sources(repro.check_parameters("fig7", scale="rehearsal"),
                                        _context(root, "rehearsal", tmp_path))
    params = repro.check_parameters("fig7", probe_epochs=5)
    columns, note = model_tables.fig7_downstream(ctx, "width 64", ctx.experiment(), Path(init), sources,
                                                 params)
    assert set(columns) == {"Fine-tune MSRVTT-QA", "Linear probe K400 Top-1"}
    assert all(0.0 <= value <= 100.0 for value in columns.values())
    tuned = json.loads((tmp_path / "runs" / "smoke" / "width_64-msrvtt-qa" / "results.json").read_text())
    assert tuned["config"]["task"] == "qa" and tuned["config"]["init"] == init
    assert (tmp_path / "runs" / "smoke" / "width_64-kinetics400" / "validation.jsonl").is_file()
    assert note.startswith("width 64: MSRVTT-QA fine-tuned")
