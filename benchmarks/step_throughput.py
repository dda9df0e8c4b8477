"""Inference and training throughput (videos/s) of the All-in-one variants, beside the paper's Table 1.

Inference: one forward of the joint model (3 frames of 224x224 and 40 text tokens per video), no gradient.
Training: one pre-training step as the training loop runs it: the VTM + MLM objective (two joint
forwards per video: the masked caption and the VTM pair), backward, gradient clipping at 1.0 and an
AdamW step. Both run under bf16 autocast on a GPU and in fp32 on a CPU (``--precision`` overrides),
with the batch sizes of the paper's pre-training by default (32 for tiny, 16 for small and base).
Each figure is the median over ``--iters`` timed calls after ``--warmup`` untimed ones.

    python benchmarks/step_throughput.py                                  # tiny, small, base on this device
    python benchmarks/step_throughput.py --variants tiny base --train-batch 4 --infer-batch 4 --iters 3
    python benchmarks/step_throughput.py --device cuda --out gpu.json    # bf16 on the GPU

Prints one JSON line per variant and, with ``--out``, writes them all as one JSON file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from allinone_lab.io import atomic_write_json
from allinone_lab.model import AllInOne, ModelConfig, dummy_inputs
from allinone_lab.repro.paper import PAPER
from allinone_lab.train.loop import autocast_context, environment, resolve_precision
from allinone_lab.train.objectives import Pretraining
from allinone_lab.train.optim import build_optimizer

PAPER_TRAIN_BATCH = {"tiny": 32, "small": 16, "base": 16}
PAPER_NAMES = {"tiny": "All-in-one-Ti", "small": "All-in-one-S", "base": "All-in-one-B"}


def paper_throughput() -> dict[str, float]:
    """Table 1's throughput column by variant name."""
    by_name = {row["model"]: row["Throughput (videos/s)"] for row in PAPER["table1"].rows}
    return {variant: by_name[name] for variant, name in PAPER_NAMES.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn, device: torch.device, iters: int, warmup: int) -> float:
    times = []
    for i in range(warmup + iters):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def pretraining_batch(config: ModelConfig, batch_size: int, device: torch.device, mask_prob: float = 0.15,
                      seed: int = 0) -> dict[str, torch.Tensor]:
    """A random batch with the keys the pre-training objective reads; ``mask_prob`` of the tokens asked."""
    inputs = dummy_inputs(config, batch_size, device="cpu")
    gen = torch.Generator().manual_seed(seed)
    asked = torch.rand(inputs["text_ids"].shape, generator=gen) < mask_prob
    asked[:, 1] = True  # at least one asked word per caption
    labels = torch.where(asked, inputs["text_ids"], torch.full_like(inputs["text_ids"], -100))
    batch = {"video": inputs["video"], "input_ids": inputs["text_ids"], "attention_mask": inputs["text_mask"],
             "mlm_input_ids": torch.where(asked, torch.full_like(inputs["text_ids"], 103), inputs["text_ids"]),
             "mlm_labels": labels}
    return {k: v.to(device) for k, v in batch.items()}


def measure_variant(variant: str, device: torch.device, precision: str, train_batch: int, infer_batch: int,
                    iters: int, warmup: int, image_size: int, frames: int, text_len: int) -> dict:
    config = ModelConfig(variant=variant, image_size=image_size, patch_size=16, num_frames=frames,
                         max_text_len=text_len)
    model = AllInOne(config).to(device)
    row: dict = {"variant": variant, "device": str(device), "precision": precision, "image_size": image_size,
                 "frames": frames, "text_len": text_len}

    model.eval()
    inputs = dummy_inputs(config, infer_batch, device=device)

    def forward():
        with torch.no_grad(), autocast_context(device, precision):
            model(inputs["video"], inputs["text_ids"], inputs["text_mask"])

    seconds = median_seconds(forward, device, iters, warmup)
    row.update(infer_batch=infer_batch, infer_videos_per_s=infer_batch / seconds)

    model.train()
    objective = Pretraining(model, {"vtm": 1.0, "mlm": 1.0})
    optimizer = build_optimizer(model, lr=1e-4, weight_decay=0.01)
    batch = pretraining_batch(config, train_batch, device)

    def step():
        with autocast_context(device, precision):
            loss, _ = objective(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = median_seconds(step, device, iters, warmup)
    row.update(train_batch=train_batch, train_step_s=seconds, train_videos_per_s=train_batch / seconds)
    if device.type == "cuda":
        row["train_peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    row["paper_videos_per_s"] = paper_throughput()[variant]
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["tiny", "small", "base"], choices=sorted(PAPER_NAMES))
    parser.add_argument("--device", default="auto", help="auto (cuda where available) | cpu | cuda | cuda:N")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                        help="auto: bf16 on a GPU, fp32 on a CPU")
    parser.add_argument("--train-batch", type=int, default=None, help="default: the paper's (32 tiny, 16 else)")
    parser.add_argument("--infer-batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--text-len", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None, help="write every row and the environment as JSON")
    args = parser.parse_args(argv)

    name = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    precision = resolve_precision(device, args.precision)
    rows = []
    for variant in args.variants:
        train_batch = args.train_batch or PAPER_TRAIN_BATCH[variant]
        row = measure_variant(variant, device, precision, train_batch, args.infer_batch, args.iters, args.warmup,
                              args.image_size, args.frames, args.text_len)
        print(json.dumps(row), flush=True)
        rows.append(row)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.out is not None:
        atomic_write_json({"environment": environment(), "rows": rows}, args.out)
    return rows


if __name__ == "__main__":
    main()
