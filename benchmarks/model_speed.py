"""Forward speed of the All-in-one variants against timm, rolling overhead, flatten cost, GEMM efficiency.

Prints one JSON object per configuration, then a summary object with the four target figures:
``speed_vs_timm`` (ours / timm videos/s, worst case; target >= 0.95), ``roll_overhead`` (roll / none
wall time - 1, worst case; target <= 0.03), ``flatten_cost_ratio`` (flatten / roll, FLOPs and wall time)
and ``gemm_fraction`` (base's achieved GFLOP/s over a large fp32 matmul's; target >= 0.5).

    python benchmarks/model_speed.py                      # 224 px, 3 frames, 40 tokens, batch 1 and 8
    python benchmarks/model_speed.py --variants tiny --batches 1 --iters 2   # a quick look
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from functools import partial

import torch
from timm.models.vision_transformer import VisionTransformer

from allinone_lab.model import AllInOne, ModelConfig, analytic_flops, attention_score_flops, dummy_inputs


def interleaved_seconds(calls: dict[str, Callable[[], object]], iters: int, warmup: int) -> dict[str, float]:
    """Fastest seconds per call, timing the candidates round-robin so that drifts hit all alike (other
    work on the machine only ever adds time, so the minimum is the most faithful estimate)."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for round_ in range(iters):
        for i in range(len(names)):  # each round starts with another candidate: no order advantage
            name = names[(round_ + i) % len(names)]
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def with_ratio(model: AllInOne, ratio: float | None, inputs: dict[str, torch.Tensor]) -> object:
    """Call ``model`` with every rolling layer's ratio set to ``ratio`` (None: the configured ratio)."""
    layers = [block.temporal for block in model.blocks if block.temporal is not None]
    for layer in layers:
        layer.ratio = model.config.roll_ratio if ratio is None else ratio
    return model(**inputs)


def timm_reference(cfg: ModelConfig) -> VisionTransformer:
    """A timm ViT of the same width/depth whose per-frame sequence has the same length as ours
    (``1 + text_len`` register tokens + patches = ``m + L``)."""
    return VisionTransformer(
        img_size=cfg.image_size, patch_size=cfg.patch_size, embed_dim=cfg.embed_dim, depth=cfg.num_layers,
        num_heads=cfg.num_heads, reg_tokens=cfg.max_text_len, num_classes=0, global_pool="",
    ).eval()


def gemm_gflops(size: int = 2048, iters: int = 5, repeats: int = 5) -> float:
    """fp32 GFLOP/s of a ``size``-square matrix product (best of ``repeats`` timings, after warm-up)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    rates = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        for _ in range(iters):
            torch.mm(a, b)
        rates.append(2 * size**3 * iters / (time.perf_counter() - start) / 1e9)
    return max(rates[1:])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["tiny", "small", "base"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--text-len", type=int, default=40)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args(argv)

    machine = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
               "torch": torch.__version__, "python": sys.version.split()[0]}
    print(json.dumps({"kind": "environment", **machine}), flush=True)
    gemm = gemm_gflops()
    print(json.dumps({"kind": "gemm", "size": 2048, "gflops": round(gemm, 1)}), flush=True)

    speed, overhead, flatten_time, flatten_flops, base_fraction = [], [], [], [], None
    for variant in args.variants:
        common = dict(variant=variant, image_size=args.image_size, num_frames=args.frames,
                      max_text_len=args.text_len, drop_path_rate=0.0)
        models = {mode: AllInOne(ModelConfig(**common, temporal=mode)).eval() for mode in ("roll", "flatten")}
        models["flatten"].load_state_dict(models["roll"].state_dict())
        # `none` is the same model instance with every rolling ratio at 0 (exactly the time-average
        # model): two instances would differ in memory placement by more than rolling costs.
        models["none"] = models["roll"]
        vit = timm_reference(models["roll"].config)
        for batch in args.batches:
            cfg = models["roll"].config
            inputs = dummy_inputs(cfg, batch, args.text_len)
            masked = dict(inputs)
            masked["text_mask"] = masked["text_mask"].clone()
            masked["text_mask"][:, args.text_len // 2 :] = 0  # half the text is padding, as in real batches
            unmasked = {"video": inputs["video"], "text_ids": inputs["text_ids"]}
            frames = inputs["video"].flatten(0, 1)
            with torch.inference_mode():
                seconds = interleaved_seconds(
                    {
                        "timm": partial(vit.forward_features, frames),
                        "roll": partial(with_ratio, models["roll"], None, unmasked),
                        "roll_masked": partial(with_ratio, models["roll"], None, masked),
                        "none": partial(with_ratio, models["roll"], 0.0, unmasked),
                        "flatten": partial(models["flatten"], **unmasked),
                    },
                    args.iters,
                    args.warmup,
                )
            flops = {mode: analytic_flops(models[mode].config, batch, args.text_len) for mode in ("roll", "flatten")}
            attn = {mode: attention_score_flops(models[mode].config, batch, args.text_len) for mode in ("roll", "flatten")}
            row = {
                "kind": "config", "variant": variant, "batch": batch, "frames": args.frames,
                "image_size": args.image_size, "text_len": args.text_len,
                "videos_per_s": {name: round(batch / s, 3) for name, s in seconds.items()},
                "speed_vs_timm": round(seconds["timm"] / seconds["roll"], 4),
                "speed_vs_timm_masked": round(seconds["timm"] / seconds["roll_masked"], 4),
                "roll_overhead": round(seconds["roll"] / seconds["none"] - 1, 4),
                "flatten_wall_ratio": round(seconds["flatten"] / seconds["roll"], 4),
                "flatten_flops_ratio": round(flops["flatten"] / flops["roll"], 4),
                "flatten_attention_flops_ratio": round(attn["flatten"] / attn["roll"], 4),
                "gflops_per_video": round(flops["roll"] / batch / 1e9, 2),
                "achieved_gflops": round(flops["roll"] / seconds["roll"] / 1e9, 1),
            }
            print(json.dumps(row), flush=True)
            speed.append(row["speed_vs_timm"])
            overhead.append(row["roll_overhead"])
            flatten_time.append(row["flatten_wall_ratio"])
            flatten_flops.append(row["flatten_attention_flops_ratio"])
            if variant == "base" and batch == max(args.batches):
                base_fraction = row["achieved_gflops"] / gemm

    summary = {
        "kind": "summary",
        "speed_vs_timm": min(speed),
        "roll_overhead": max(overhead),
        "flatten_cost_ratio": {"attention_flops": max(flatten_flops), "wall_time": max(flatten_time)},
        "gemm_fraction": None if base_fraction is None else round(base_fraction, 3),
        "targets": {"speed_vs_timm": ">= 0.95", "roll_overhead": "<= 0.03", "gemm_fraction": ">= 0.5"},
    }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
