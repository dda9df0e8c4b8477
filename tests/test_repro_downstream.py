"""The downstream reproductions (Tables 2-5, 7, 12, 13) at smoke scale: rows keyed like the paper's, stand-ins
named as such, prepared datasets through data_root, and parameter errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from allinone_lab import repro
from allinone_lab.data import build_corpus
from allinone_lab.data.prepare import prepare
from allinone_lab.repro import downstream, paper
from allinone_lab.train import jobs
from allinone_lab.train.presets import preset

SMOKE = preset("smoke")


@pytest.fixture(scope="module")
def init(tmp_path_factory) -> str:
    """One smoke pre-training run shared by the tests (``init`` of each reproduction)."""
    run = tmp_path_factory.mktemp("pretrain")
    return str(jobs.pretrain(SMOKE.override(**{"train.max_steps": 2}), run, progress=False))


def _run(name: str, tmp_path: Path, **values) -> repro.Result:
    params = repro.check_parameters(name, scale="smoke", output_dir=str(tmp_path / name), **values)
    return repro.run_reproduction(name, params)


def _paper_match(name: str, row: dict) -> list[dict]:
    table = paper.table(repro.REPRODUCTIONS[name].paper_key)
    return [r for r in table.rows if all(r.get(k) == row.get(k) for k in table.match_keys if k in row)]


def test_every_downstream_table_is_registered_with_its_knobs():
    knobs = {"table2": {"dataset", "test_clips"}, "table3": {"dataset", "rerank_top_k", "test_clips"},
             "table4": {"dataset", "mode", "test_clips"},
             "table5": {"dataset", "pt_data", "paint_masks"}, "table7": {"dataset", "objectives", "rerank_top_k"},
             "table12": {"dataset", "hmdb_split", "probe_epochs", "time_average", "time_average_init"},
             "table13": {"dataset", "mode", "time_average", "time_average_init"}}
    for name, own in knobs.items():
        params = {p.name for p in repro.REPRODUCTIONS[name].params}
        assert own <= params and {"init", "pretrain_steps"} <= params, name
        assert repro.check_parameters(name)["dataset"] is None  # by scale: corpus at smoke and cpu


def test_table7_reports_each_objective_dual_stream_and_reranked(tmp_path, init):
    result = _run("table7", tmp_path, init=init, rerank_top_k=4, steps=2)
    arms = [(r["VTM"], r["VTC"], r["scoring"]) for r in result.rows]
    assert arms == [(False, True, "dual-stream"), (False, True, "re-rank top 4 by VTM"),
                    (True, False, "dual-stream"), (True, False, "re-rank top 4 by VTM"),
                    (True, True, "dual-stream"), (True, True, "re-rank top 4 by VTM")]
    for row in result.rows:  # corpus rows: labelled as the corpus, never beside MSR-VTT or DiDeMo numbers
        assert row["dataset"] == "corpus retrieval" and not _paper_match("table7", row)
        assert 0 <= row["T2V R@1"] <= row["T2V R@5"] <= row["T2V R@10"] <= 100
    vtc_only = json.loads((tmp_path / "table7" / "runs" / "smoke" / "corpus-vtc" / "results.json").read_text())
    assert vtc_only["config"]["objectives"] == {"vtc": 1.0, "vtm": 0.0}
    saved = json.loads((tmp_path / "table7" / "results.json").read_text())
    assert saved["rows"] == result.rows and saved["paper"]["key"] == "table7"


def test_table5_on_the_corpus_is_a_named_stand_in(tmp_path, init):
    result = _run("table5", tmp_path, init=init, steps=2)
    (row,) = result.rows
    assert row["dataset"] == "corpus MC (VCR stand-in)" and row["Mask"] is False
    assert not _paper_match("table5", row)  # never placed beside the paper's VCR numbers
    assert any("VCR needs data_root" in note and "stand-in only" in note for note in result.notes)
    assert result.metrics["chance"] == 20.0


def _prepared_vcr(tmp_path: Path) -> Path:
    """A prepared VCR of 6 train and 2 val questions (random images, two people, person 0 referenced)."""
    import numpy as np
    from PIL import Image

    raw = tmp_path / "raw_vcr"
    raw.mkdir()
    for split, n in (("train", 6), ("val", 2)):
        rows = [{"img_fn": f"m/{split}{i}.jpg", "metadata_fn": f"m/{split}{i}.json", "objects": ["person", "person"],
                 "question": ["why", "is", [0], "here", "?"], "answer_label": i % 4,
                 "answer_choices": [["because", [1], "called"], ["no"], ["to", "eat"], ["rain"]]} for i in range(n)]
        (raw / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    root = tmp_path / "vcr"
    prepare("vcr", ["--out", str(root), "--src", str(raw)])
    images = root / "vcr1images" / "m"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 2)):
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(images / f"{split}{i}.jpg")
            (images / f"{split}{i}.json").write_text(json.dumps({"boxes": [[0, 0, 20, 39, 1], [24, 0, 47, 39, 1]]}))
    return root


def test_table5_with_and_without_painted_masks_on_a_prepared_vcr(tmp_path, init):
    root = _prepared_vcr(tmp_path)
    runs = {}
    for paint in (True, False):
        result = _run("table5", tmp_path / str(paint), init=init, data_root=str(root), dataset="vcr",
                      paint_masks=paint, pt_data="HowTo100M", steps=2)
        (row,) = result.rows
        assert row["Mask"] is paint and row["dataset"] == "VCR Q->A" and row["PT Data"] == "HowTo100M"
        (how,) = [note for note in result.notes if note.startswith("Q->A")]
        assert ("plain images" in how) is not paint
        (run,) = (tmp_path / str(paint) / "table5" / "runs" / "smoke").iterdir()
        runs[paint] = json.loads((run / "results.json").read_text())["config"]
    assert runs[True]["paint_masks"] is True and runs[False]["paint_masks"] is False
    with pytest.raises(repro.ParameterError, match="parameter paint_masks='maybe': expected true or false"):
        repro.check_parameters("table5", paint_masks="maybe")


def test_table12_probes_rolling_and_time_average(tmp_path, init):
    result = _run("table12", tmp_path, init=init, time_average_init=init, probe_epochs=10)
    assert [r["method"] for r in result.rows] == ["Time Average (smoke preset)", "All-in-one (smoke preset)"]
    assert {"corpus events Top-1", "corpus events Top-5"} <= set(result.rows[0])
    alone = _run("table12", tmp_path / "alone", init=init, probe_epochs=10)
    assert [r["method"] for r in alone.rows] == ["All-in-one (smoke preset)"]
    assert any("Time Average: not run" in note for note in alone.notes)


def test_table4_zero_shot_row_equals_the_pre_trained_vtm_scores(tmp_path, init):
    result = _run("table4", tmp_path, init=init, mode="zero-shot")
    (row,) = result.rows
    assert row["method"] == "All-in-one (smoke preset) (zero-shot)" and row["dataset"] == "corpus MC"
    direct = jobs.multiple_choice_accuracy(jobs.load_model(SMOKE, init), jobs.dataset(SMOKE, "mc", "test"))
    assert row["Accuracy"] == direct["mc_accuracy"]
    assert row["Accuracy among temporal distractors"] == direct["mc_temporal_accuracy"]


def test_table2_on_a_prepared_msrvtt_qa(tmp_path, init):
    raw = tmp_path / "raw"
    raw.mkdir()
    for split, n in (("train", 10), ("val", 3), ("test", 4)):
        rows = [{"question": f"what is in {i}?", "answer": ["cat", "dog"][i % 2], "video_id": i % 4, "id": i}
                for i in range(n)]
        (raw / f"{split}_qa.json").write_text(json.dumps(rows))
    root = tmp_path / "msrvtt-qa"
    prepare("msrvtt-qa", ["--out", str(root), "--src", str(raw)])
    (root / "videos" / "all").mkdir(parents=True)
    corpus = build_corpus(SMOKE.corpus)
    for v in range(4):
        os.symlink(corpus / "videos" / f"clip_{v:06d}.mp4", root / "videos" / "all" / f"video{v}.mp4")
    result = _run("table2", tmp_path, init=init, data_root=str(root), dataset="msrvtt-qa")
    (row,) = result.rows
    assert (row["dataset"], row["frames"]) == ("MSRVTT-QA", "3") and "Accuracy" in row
    assert any("3 items" in note and "test has 4 items" in note for note in result.notes)  # val split, test split
    with pytest.raises(repro.ParameterError, match="dataset='msvd-qa': data_root .* has no prepared 'msvd-qa'"):
        _run("table2", tmp_path, init=init, data_root=str(root), dataset="msvd-qa")
    with pytest.raises(repro.ParameterError, match="dataset='corpus' is the built-in corpus, but data_root="):
        _run("table2", tmp_path, init=init, data_root=str(root))
    with pytest.raises(repro.ParameterError, match="dataset='tgif-action' needs data_root"):
        _run("table2", tmp_path, init=init, dataset="tgif-action")


def test_parameter_errors_name_the_parameter(tmp_path):
    with pytest.raises(repro.ParameterError, match="init='missing.pt': expected an existing checkpoint"):
        _run("table3", tmp_path, init="missing.pt")
    with pytest.raises(repro.ParameterError, match="parameter objectives='itc': expected one of"):
        repro.check_parameters("table7", objectives="itc")
    with pytest.raises(repro.ParameterError, match="parameter steps=0: expected an integer in"):
        repro.check_parameters("table3", steps=0)
    ctx = repro.Context(params={}, device=repro.resolve_device("cpu"), scale="paper", output_dir=tmp_path)
    with pytest.raises(repro.ParameterError, match="init=None at scale='paper'"):
        downstream.pretrained(ctx, {"init": None})


def test_notebook_steps_index_query_and_predictions(tmp_path):
    import torch

    from allinone_lab.eval import EmbeddingIndex
    from allinone_lab.repro import downstream_steps

    model = jobs.load_model(SMOKE).eval()
    test = jobs.dataset(SMOKE, "retrieval", "test", train=False)
    index = downstream_steps.build_video_index(model, test, tmp_path / "index.safetensors")
    assert len(index) == test.num_videos
    assert torch.equal(EmbeddingIndex.load(tmp_path / "index.safetensors").embeddings, index.embeddings)
    caption = str(test.table.get(0, "caption"))
    table = downstream_steps.query_index(model, index, test, caption, k=3)
    encoded = test.text.encode(caption)
    with torch.no_grad():
        query = model.encode_text(encoded.input_ids[None], encoded.attention_mask[None])
    best = int((query @ index.embeddings.t()).argmax())
    first = table.splitlines()[2].split(" | ")
    assert first[0] == "| 1" and first[1] == test.videos[best].split("/")[-1] and len(table.splitlines()) == 5
    mc = jobs.dataset(SMOKE, "mc", "test", train=False)
    rows = [line.split(" | ") for line in downstream_steps.predictions(model, mc, 2).splitlines()[2:]]
    assert len(rows) == 2 * mc.num_options
    for item in (rows[:5], rows[5:]):
        scores = [float(r[3]) for r in item]
        assert sum(r[5].startswith("✓") for r in item) == 1 and sum(r[4] == "✓" for r in item) == 1
        assert float(next(r[3] for r in item if r[5].startswith("✓"))) == max(scores)
    qa = jobs.dataset(SMOKE, "qa", "test", train=False)
    with pytest.raises(ValueError, match="the model has no answer head"):
        downstream_steps.predictions(model, qa, 2)
    with pytest.raises(repro.ParameterError, match="scale='huge'"):
        downstream_steps.context("huge")
