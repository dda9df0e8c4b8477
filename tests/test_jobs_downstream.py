"""Downstream jobs: prepared datasets through data_root, VCR and linear-probe fine-tuning with selection on
validation, zero-shot multiple choice, retrieval objectives and re-ranking, the command line, clear errors."""

from __future__ import annotations

import csv
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from allinone_lab.data import build_corpus, collate
from allinone_lab.data.corpus import EVENT_CLASSES
from allinone_lab.data.datasets import ClassificationDataset, OpenQADataset, VCRDataset
from allinone_lab.data.prepare import prepare
from allinone_lab.eval import retrieval_metrics
from allinone_lab.train.__main__ import main
from allinone_lab.train.jobs import (
    MissingSplitError,
    dataset,
    finetune,
    load_model,
    multiple_choice_accuracy,
    retrieval_evaluation,
)
from allinone_lab.train.preflight import PreflightError
from allinone_lab.train.presets import preset

SMOKE = preset("smoke")


def _clip(k: int) -> Path:
    """A real clip of the smoke corpus (32 px, 16 frames) to stand for a dataset's video."""
    return build_corpus(SMOKE.corpus) / "videos" / f"clip_{k:06d}.mp4"


def _link(root: Path, rel: str, k: int) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.symlink(_clip(k), path)


def _qa_dataset(tmp_path: Path, sizes=(("train", 12), ("val", 4), ("test", 5))) -> Path:
    """A prepared MSRVTT-QA: the release's {split}_qa.json files through the preparer, corpus clips as videos."""
    raw = tmp_path / "raw_qa"
    raw.mkdir()
    answers = ["cat", "dog", "man"]
    for split, n in sizes:
        rows = [{"question": f"what is in video {i}?", "answer": answers[i % 3], "video_id": i % 6, "id": i}
                for i in range(n)]
        (raw / f"{split}_qa.json").write_text(json.dumps(rows))
    out = tmp_path / "msrvtt-qa"
    prepare("msrvtt-qa", ["--out", str(out), "--src", str(raw)])
    for v in range(6):
        _link(out, f"videos/all/video{v}.mp4", v)
    return out


def _kinetics(tmp_path: Path, val_labels: list[str] | None = None) -> Path:
    """A prepared Kinetics-400 (train.csv / validate.csv of the release) with 3 classes."""
    raw = tmp_path / "raw_k400"
    raw.mkdir(exist_ok=True)
    labels = ["abseiling", "juggling", "zumba"]
    header = ["label", "youtube_id", "time_start", "time_end", "split"]

    def write(name: str, rows: list[list[str]]) -> None:
        with open(raw / name, "w", newline="") as f:
            csv.writer(f).writerows([header, *rows])

    write("train.csv", [[labels[i % 3], f"tr{i}", "0", "10", "train"] for i in range(15)])
    val_labels = val_labels or [labels[i % 3] for i in range(6)]
    write("validate.csv", [[lab, f"va{i}", "0", "10", "val"] for i, lab in enumerate(val_labels)])
    out = tmp_path / "k400"
    prepare("kinetics400", ["--out", str(out), "--src", str(raw)])
    for i in range(15):
        _link(out, f"videos/train/tr{i}_000000_000010.mp4", i)
    for i in range(len(val_labels)):
        _link(out, f"videos/val/va{i}_000000_000010.mp4", 20 + i)
    return out


def _vcr(tmp_path: Path) -> Path:
    """A prepared VCR: the release's train/val jsonl, images and per-image metadata (boxes)."""
    from PIL import Image

    raw = tmp_path / "raw_vcr"
    raw.mkdir()
    for split, n in (("train", 10), ("val", 3)):
        with open(raw / f"{split}.jsonl", "w") as f:
            for i in range(n):
                f.write(json.dumps({
                    "img_fn": f"movie/{split}{i}.jpg", "metadata_fn": f"movie/{split}{i}.json",
                    "objects": ["person", "person"], "question": ["why", "is", [0], "here", "?"],
                    "answer_choices": [["because", [1], "called"], ["no"], ["to", "eat"], ["rain"]],
                    "answer_label": i % 4}) + "\n")  # fmt: skip
    out = tmp_path / "vcr"
    prepare("vcr", ["--out", str(out), "--src", str(raw)])
    images = out / "vcr1images" / "movie"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 10), ("val", 3)):
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(images / f"{split}{i}.jpg")
            (images / f"{split}{i}.json").write_text(json.dumps({"boxes": [[0, 0, 20, 39, 1], [24, 0, 47, 39, 1]]}))
    return out


def _history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "validation.jsonl").read_text().splitlines()]


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


# Prepared datasets -----------------------------------------------------------------------------------------
def test_prepared_dataset_splits_map_to_the_release_files(tmp_path):
    root = _qa_dataset(tmp_path)
    exp = SMOKE.override(data_root=str(root))
    train = dataset(exp, "qa", "train")
    assert isinstance(train, OpenQADataset) and train.train and len(train) == 12
    assert train.answers == json.loads((root / "annotations" / "answers.json").read_text())
    test = dataset(exp, "qa", "test")
    assert not test.train and len(test) == 5 and len(dataset(exp, "qa", "val")) == 4
    item = test[0]
    assert item["video"].shape == (3, 3, 32, 32) and item["answer_label"] == 0  # "cat" is the first answer
    # the jobs' splits can be pointed at other prepared splits
    assert len(dataset(exp, "qa", "test", splits={"test": "val"})) == 4
    k400 = dataset(SMOKE.override(data_root=str(_kinetics(tmp_path))), "classification", "test")
    assert isinstance(k400, ClassificationDataset) and k400.classes == ["abseiling", "juggling", "zumba"]


def test_tgif_subtasks_and_a_corpus_directory_as_data_root(tmp_path):
    from PIL import Image

    raw = tmp_path / "raw_tgif"
    raw.mkdir()
    mc = "gif_name\tquestion\ta1\ta2\ta3\ta4\ta5\tanswer\tvid_id\tkey\n"
    fq = "gif_name\tquestion\tanswer\tvid_id\tkey\tdescription\ttype\n"
    for prefix in ("Train", "Test"):
        (raw / f"{prefix}_action_question.csv").write_text(mc + "g1\twhat does it do?\tjump\tsit\trun\teat\tnod\t2\tv\t1\n")
        (raw / f"{prefix}_frameqa_question.csv").write_text(fq + "g1\twhat colour?\twhite\tv\t1\td\t2\n")
    root = tmp_path / "tgif"
    prepare("tgif-qa", ["--out", str(root), "--src", str(raw)])
    (root / "gifs").mkdir()
    frames = [Image.fromarray(np.full((24, 24, 3), 40 * i, np.uint8)) for i in range(4)]
    frames[0].save(root / "gifs" / "g1.gif", save_all=True, append_images=frames[1:])
    exp = SMOKE.override(data_root=str(root))
    action = dataset(exp, "mc", "test", subtask="action")
    assert action[0]["input_ids"].shape == (5, 16) and action[0]["answer"] == 2
    assert isinstance(dataset(exp, "qa", "train"), OpenQADataset)  # frameqa by default for open-ended QA
    with pytest.raises(ValueError, match="task 'mc' needs subtask 'action' or 'transition'"):
        dataset(exp, "mc", "test")
    with pytest.raises(ValueError, match="holds tgif-qa \\(qa items\\); task 'mc' needs"):
        dataset(exp, "mc", "test", subtask="frameqa")
    corpus_root = build_corpus(SMOKE.corpus)  # the corpus directory is a prepared dataset too
    from_root = dataset(SMOKE.override(data_root=str(corpus_root)), "qa", "test")
    assert len(from_root) == len(dataset(SMOKE, "qa", "test")) and from_root.answers == dataset(SMOKE, "qa", "test").answers


def test_prepared_dataset_errors_name_the_file_and_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory.*allinone_lab.data.prepare"):
        dataset(SMOKE.override(data_root=str(tmp_path / "nowhere")), "qa", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no manifest.json"):
        dataset(SMOKE.override(data_root=str(tmp_path / "empty")), "qa", "train")
    (tmp_path / "empty" / "manifest.json").write_text(json.dumps({"dataset": "imagenet"}))
    with pytest.raises(ValueError, match=r"manifest.json: dataset='imagenet'; expected one of"):
        dataset(SMOKE.override(data_root=str(tmp_path / "empty")), "qa", "train")

    root = _qa_dataset(tmp_path)
    exp = SMOKE.override(data_root=str(root))
    with pytest.raises(ValueError, match="holds msrvtt-qa \\(qa items\\); task 'retrieval' needs"):
        dataset(exp, "retrieval", "train")
    with pytest.raises(ValueError, match="only tgif-qa and vcr take a subtask"):
        dataset(exp, "qa", "train", subtask="action")
    with pytest.raises(ValueError, match="'nope', which is not one of"):
        dataset(exp, "qa", "train", splits={"train": "nope"})
    with pytest.raises(ValueError, match="unknown job split"):
        dataset(exp, "qa", "train", splits={"dev": "val"})
    (root / "annotations" / "test.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="test.jsonl' not found; expected the file that .*prepare msrvtt-qa"):
        dataset(exp, "qa", "test")
    (root / "annotations" / "answers.json").unlink()
    with pytest.raises(FileNotFoundError, match="answers.json' not found"):
        dataset(exp, "qa", "train")

    k400 = _kinetics(tmp_path)
    exp = SMOKE.override(data_root=str(k400))
    with pytest.raises(MissingSplitError, match="no 'val' split for the jobs"):
        dataset(exp, "classification", "val")
    (k400 / "videos" / "train" / "tr0_000000_000010.mp4").unlink()
    with pytest.raises(FileNotFoundError, match="tr0_000000_000010.mp4' \\(row 0 of train.jsonl\\) not found"):
        dataset(exp, "classification", "train")
    ego = tmp_path / "ego"
    ego.mkdir()
    (ego / "manifest.json").write_text(json.dumps({"dataset": "ego4d-mc"}))
    with pytest.raises(PreflightError, match="(?s)2 problems.*ego4d-mc .* no 'train' split.*val.jsonl' not found"):
        finetune(SMOKE.override(data_root=str(ego)), "mc", tmp_path / "ego_run", 2, progress=False)
    assert not (tmp_path / "ego_run").exists()  # stopped before any work


def test_qa_on_a_prepared_dataset_selects_on_its_val_split(tmp_path):
    root = _qa_dataset(tmp_path)
    run = tmp_path / "qa_run"
    results = finetune(SMOKE.override(data_root=str(root)), "qa", run, 4, eval_every=2, progress=False)
    assert (results["train_items"], results["val_items"], results["test_items"]) == (12, 4, 5)
    history = _history(run)
    best = max(history, key=lambda h: h["score"])
    assert [h["step"] for h in history] == [2, 4] and results["selected_step"] == best["step"]
    config = _results(run)["config"]
    assert config["model"]["num_answers"] == 3 and config["data_root"] == str(root)


# VCR ---------------------------------------------------------------------------------------------------------
def test_vcr_finetunes_on_prepared_vcr_holding_validation_out_of_train(tmp_path):
    root = _vcr(tmp_path)
    exp = SMOKE.override(data_root=str(root))
    assert isinstance(dataset(exp, "vcr", "train"), VCRDataset)
    run = tmp_path / "vcr_run"
    results = finetune(exp, "vcr", run, 4, eval_every=2, val_fraction=0.2, progress=False)
    # VCR's test labels are not public: val is the test split; validation is held out of train
    assert (results["train_items"], results["val_items"], results["test_items"]) == (8, 2, 3)
    history = _history(run)
    assert results["selected_step"] == max(history, key=lambda h: h["score"])["step"]
    assert results["test"]["chance"] == 25.0  # four answers
    selected = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert selected["step"] == results["selected_step"]
    with pytest.raises(ValueError, match="subtask='rationale'; expected 'qa'"):
        dataset(exp, "vcr", "train", subtask="rationale")
    # QA->R rows exist only where the release lists rationales (not in this fixture)
    with pytest.raises(FileNotFoundError, match="qar_val.jsonl' not found"):
        dataset(exp, "vcr", "test", subtask="qar")


def test_vcr_without_painted_masks_reaches_the_dataset_and_the_run(tmp_path):
    root = _vcr(tmp_path)
    exp = SMOKE.override(data_root=str(root))
    painted, plain = dataset(exp, "vcr", "test"), dataset(exp, "vcr", "test", paint_masks=False)
    assert painted.paint_masks and not plain.paint_masks
    assert not torch.equal(painted[0]["video"], plain[0]["video"])  # person0 is referenced in every question
    assert torch.equal(painted[0]["input_ids"], plain[0]["input_ids"])
    results = finetune(exp, "vcr", tmp_path / "plain", 2, eval_every=2, val_fraction=0.2, progress=False,
                       paint_masks=False)
    assert results["test_items"] == 3 and _results(tmp_path / "plain")["config"]["paint_masks"] is False
    with pytest.raises(ValueError, match="paint_masks=False: only task 'vcr' paints masks"):
        finetune(SMOKE, "mc", tmp_path / "mc", 2, paint_masks=False)
    with pytest.raises(ValueError, match="paint_masks=False: only task 'vcr' paints masks"):
        dataset(SMOKE, "retrieval", "test", paint_masks=False)


def test_vcr_on_the_corpus_is_the_multiple_choice_stand_in(tmp_path):
    results = finetune(SMOKE, "vcr", tmp_path, 2, eval_every=2, progress=False)
    mc = dataset(SMOKE, "mc", "test")
    assert results["test_items"] == len(mc) and results["test"]["chance"] == 20.0


# Linear probe --------------------------------------------------------------------------------------------------
def test_linear_probe_selects_the_learning_rate_on_validation_never_on_test(tmp_path):
    lrs = (1e-3, 1e-1, 1.0)
    exp = SMOKE.override(data_root=str(_kinetics(tmp_path)))
    results = finetune(exp, "linear_probe", tmp_path / "probe", 0, val_fraction=0.2, progress=False, probe_lrs=lrs,
                       probe_epochs=20)
    history = _history(tmp_path / "probe")
    assert [h["lr"] for h in history] == list(lrs)
    best = max(history, key=lambda h: h["score"])
    assert results["selected_lr"] == best["lr"] and results["validation"] == best["top1"]
    assert (results["train_items"], results["val_items"], results["test_items"]) == (12, 3, 6)
    assert set(results["test"]) == {"top1"} and results["num_classes"] == 3  # top-5 needs 5 classes
    # Relabel the test split: the selection is unchanged, only the test numbers move.
    wrong = ["zumba", "abseiling", "juggling"] * 2
    (tmp_path / "raw_k400" / "validate.csv").unlink()
    exp2 = SMOKE.override(data_root=str(_kinetics(tmp_path, val_labels=wrong)))
    again = finetune(exp2, "linear_probe", tmp_path / "probe2", 0, val_fraction=0.2, progress=False, probe_lrs=lrs,
                     probe_epochs=20)
    assert _history(tmp_path / "probe2") == history
    assert again["selected_lr"] == results["selected_lr"] and again["validation"] == results["validation"]


def test_linear_probe_on_the_corpus_classifies_events_and_directions(tmp_path):
    train = dataset(SMOKE, "classification", "train", train=False)
    root = build_corpus(SMOKE.corpus)
    assert train.table.source == str(root / "annotations" / "classification_train.jsonl")  # the corpus's own items
    from_root = dataset(SMOKE.override(data_root=str(root)), "classification", "train", train=False)
    assert from_root.classes == train.classes and np.array_equal(from_root.labels, train.labels)
    assert train.classes == list(EVENT_CLASSES)
    labels = {train.classes[k] for k in train.labels}
    assert {"moves left", "moves right", "moves up", "moves down"} <= labels and -1 not in train.labels
    results = finetune(SMOKE, "linear_probe", tmp_path, 0, progress=False, probe_lrs=(1e-2,), probe_epochs=10)
    assert set(results["test"]) == {"top1", "top5"} and results["feature_dim"] == SMOKE.model.width
    assert results["test_items"] == len(dataset(SMOKE, "classification", "test"))
    with pytest.raises(ValueError, match="zero_shot does not apply"):
        finetune(SMOKE, "linear_probe", tmp_path, 0, zero_shot=True)


# Zero-shot multiple choice, retrieval objectives and re-ranking -------------------------------------------------
def test_zero_shot_multiple_choice_scores_the_init_model_on_test(tmp_path):
    from allinone_lab.train.jobs import pretrain

    checkpoint = pretrain(SMOKE.override(**{"train.max_steps": 2}), tmp_path / "pre", progress=False)
    results = finetune(SMOKE, "mc", tmp_path / "zs", 0, init=checkpoint, zero_shot=True)
    model = load_model(SMOKE, checkpoint)
    direct = multiple_choice_accuracy(model, dataset(SMOKE, "mc", "test", train=False))
    assert results["test"]["accuracy"] == direct["mc_accuracy"]
    assert results["test"]["subset_accuracy"] == direct["mc_temporal_accuracy"]
    assert not (tmp_path / "zs" / "checkpoints").exists() and _results(tmp_path / "zs")["metrics"]["zero_shot"]
    with pytest.raises(ValueError, match="QA needs a trained head"):
        finetune(SMOKE, "qa", tmp_path / "zs_qa", 0, zero_shot=True)


def test_reranking_every_video_ranks_by_the_vtm_match_logit():
    model = load_model(SMOKE).eval()
    test = dataset(SMOKE, "retrieval", "test", train=False)
    full = retrieval_evaluation(model, test, rerank_top_k=len(test))
    batch = next(iter(torch.utils.data.DataLoader(test, batch_size=len(test), collate_fn=collate)))
    order = np.argsort(test.table.column("video"))  # the unique videos in sorted-name order
    videos = batch["video"][order]
    with torch.no_grad():
        logits = torch.stack([
            model.vtm_logits(model(videos, batch["input_ids"][t].expand(len(videos), -1),
                                   batch["attention_mask"][t].expand(len(videos), -1)))[:, 1]
            for t in range(len(test))])  # fmt: skip
    expected = retrieval_metrics(logits, torch.as_tensor(test.text_to_video))
    assert {k: pytest.approx(v, abs=1e-4) for k, v in expected.items()} == {k: full[k] for k in expected}
    dual = retrieval_evaluation(model, test)
    assert dual["random_R@1"] == 100.0 / test.num_videos and set(dual) == set(full)


def _evaluate_counting_loads(rerank_top_k: int) -> dict:
    """Retrieval evaluation of the smoke model on the corpus test split, recording which rows were read."""
    test = dataset(SMOKE, "retrieval", "test", train=False)
    loaded: list[int] = []
    read = test._item

    def counting(index: int) -> dict:
        loaded.append(index)
        return read(index)

    test._item = counting
    metrics = retrieval_evaluation(load_model(SMOKE), test, rerank_top_k=rerank_top_k, batch_size=4)
    return {"metrics": metrics, "loaded": loaded}


def _retrieval_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    out = {"dual": _evaluate_counting_loads(0), "reranked": _evaluate_counting_loads(3)}
    torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_retrieval_evaluation_under_two_processes_encodes_each_share_once(tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_retrieval_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    single = _evaluate_counting_loads(0)
    items = len(dataset(SMOKE, "retrieval", "test"))
    assert len(single["loaded"]) == 2 * items  # one video per row, so every row is read as text and as video
    both = sorted(ranks[0]["dual"]["loaded"] + ranks[1]["dual"]["loaded"])
    assert both == sorted(single["loaded"])  # the two shares split the work: every read happens once
    assert all(len(r["dual"]["loaded"]) == items for r in ranks)
    for mode, expected in (("dual", single["metrics"]), ("reranked", _evaluate_counting_loads(3)["metrics"])):
        for result in ranks:
            assert result[mode]["metrics"].keys() == expected.keys()
            for key, value in expected.items():
                assert abs(result[mode]["metrics"][key] - value) < 1e-6, (mode, key)


def test_retrieval_objectives_are_checked_and_recorded(tmp_path):
    with pytest.raises(ValueError, match="expected non-negative weights for \\['vtc', 'vtm'\\]"):
        finetune(SMOKE, "retrieval", tmp_path, 2, objectives={"itc": 1.0})
    with pytest.raises(ValueError, match="at least one positive"):
        finetune(SMOKE, "retrieval", tmp_path, 2, objectives={"vtc": 0.0, "vtm": 0.0})
    with pytest.raises(ValueError, match="only task 'retrieval' takes objective weights"):
        finetune(SMOKE, "mc", tmp_path, 2, objectives={"vtc": 1.0})
    finetune(SMOKE, "retrieval", tmp_path / "vtc", 2, eval_every=2, objectives={"vtc": 1.0, "vtm": 0.0},
             progress=False)
    logged = [json.loads(line) for line in (tmp_path / "vtc" / "metrics.jsonl").read_text().splitlines()]
    assert all("vtm_loss" not in row and "vtc_loss" in row for row in logged)
    assert _results(tmp_path / "vtc")["config"]["objectives"] == {"vtc": 1.0, "vtm": 0.0}


# Command line ----------------------------------------------------------------------------------------------------
def test_command_line_reaches_every_downstream_task(tmp_path, capsys):
    common = ["--preset", "smoke", "--no-progress", "--steps", "2", "--eval-every", "2"]
    assert main(["finetune", "--task", "vcr", "--run-dir", str(tmp_path / "vcr"), *common]) == 0
    assert _results(tmp_path / "vcr")["metrics"]["task"] == "vcr"
    assert main(["finetune", "--task", "linear_probe", "--run-dir", str(tmp_path / "lp"), "--probe-lrs", "0.01",
                 "--probe-epochs", "5", "--preset", "smoke", "--no-progress"]) == 0
    assert _results(tmp_path / "lp")["metrics"]["selected_lr"] == 0.01
    assert main(["finetune", "--task", "mc", "--zero-shot", "--run-dir", str(tmp_path / "zs"), "--preset", "smoke",
                 "--no-progress"]) == 0
    assert _results(tmp_path / "zs")["metrics"]["zero_shot"] is True
    assert main(["finetune", "--task", "retrieval", "--objectives", "vtc=1", "vtm=0", "--rerank-top-k", "3",
                 "--run-dir", str(tmp_path / "ret"), *common]) == 0
    assert _results(tmp_path / "ret")["config"]["rerank_top_k"] == 3
    root = _qa_dataset(tmp_path)
    assert main(["finetune", "--task", "qa", "--data-root", str(root), "--split", "test=val",
                 "--run-dir", str(tmp_path / "qa"), *common]) == 0
    assert _results(tmp_path / "qa")["metrics"]["test_items"] == 4
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["finetune", "--task", "captioning", "--run-dir", str(tmp_path / "x")])
    assert "invalid choice: 'captioning'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--split 'test': expected NAME=VALUE"):
        main(["finetune", "--task", "qa", "--split", "test", "--run-dir", str(tmp_path / "y"), *common])
