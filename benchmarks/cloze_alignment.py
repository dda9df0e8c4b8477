"""Cloze alignment: how much of a masked word's transport mass lands on the object it describes.

For test cloze items of the built-in corpus (directions, colours, shapes), the cloze word is masked, the
model runs on the clip and the masked caption, and optimal transport (IPOT by default, cosine cost) aligns
the caption's tokens with each frame's patches. The fraction of the masked word's mass inside the mask of
its object (the corpus renders it, so it knows where it is) is compared with a uniform plan (the object's
share of the frame), per word kind. Also reported: in how many frames the word beats the uniform plan, the
cloze accuracy, and the same mass for the caption's unmasked words by kind (which words the object goes to).

    # a model trained elsewhere (a run directory or any checkpoint the model can load)
    python benchmarks/cloze_alignment.py --checkpoint runs/cpu/pretrain --items 300
    # pre-train with the cpu preset first (into --out/pretrain; a finished run is reused)
    python benchmarks/cloze_alignment.py --pretrain-steps 300 --out runs/cloze_alignment

Writes ``--out/cloze_alignment.json`` (rows, per-item numbers, command, machine, date) and prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from allinone_lab.data import corpus_dataset
from allinone_lab.io import atomic_write_json
from allinone_lab.ot import SOLVERS
from allinone_lab.viz import KINDS, SCOPES, cloze_alignment, load_bundle

MASKED = (["kind", "items", "mass in mask", "uniform plan", "ratio", "items above uniform", "frames above uniform",
           "items in 2+ frames", "cloze acc (%)"],
          ["kind", "items", "mass_in_mask", "uniform", "ratio", "items_above_uniform", "frames_above_uniform",
           "items_in_several_frames", "cloze_accuracy"])  # fmt: skip
BY_WORD = (["kind", "word", "items", "ratio", "items above uniform"],
           ["kind", "word", "items", "ratio", "items_above_uniform"])  # fmt: skip
VISIBLE = (["unmasked word", "words", "mass in mask", "uniform plan", "ratio"],
           ["kind", "words", "mass_in_mask", "uniform", "ratio"])  # fmt: skip


def markdown(rows: list[dict], columns: tuple[list[str], list[str]] = MASKED) -> str:
    header, keys = columns
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k]) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def by_word(items: list[dict]) -> list[dict]:
    """Per cloze word: items, mean mass in the mask over mean uniform share, share of items above uniform."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for item in items:
        if item["mass_in_mask"] == item["mass_in_mask"]:  # NaN: the object is never visible
            groups.setdefault((item["kind"], item["word"]), []).append(item)
    rows = []
    for (kind, word), group in sorted(groups.items()):
        inside = sum(it["mass_in_mask"] for it in group) / len(group)
        uniform = sum(it["uniform"] for it in group) / len(group)
        above = sum(it["mass_in_mask"] > it["uniform"] for it in group) / len(group)
        rows.append({"kind": kind, "word": word, "items": len(group), "ratio": inside / uniform,
                     "items_above_uniform": above})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="run directory or checkpoint of the model to measure")
    parser.add_argument("--pretrain-steps", type=int, default=None,
                        help="without --checkpoint: pre-train the cpu preset for this many steps first")
    parser.add_argument("--preset", default="cpu", help="preset used with --pretrain-steps (default cpu)")
    parser.add_argument("--out", default="runs/cloze_alignment")
    parser.add_argument("--items", type=int, default=300, help="test cloze items (directions, colours, shapes)")
    parser.add_argument("--solver", default="ipot", choices=SOLVERS)
    parser.add_argument("--scope", default="frame", choices=SCOPES)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if (args.checkpoint is None) == (args.pretrain_steps is None):
        parser.error("give exactly one of --checkpoint and --pretrain-steps")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    pretrain_seconds = None
    checkpoint = args.checkpoint
    if checkpoint is None:
        from allinone_lab.train.jobs import pretrain
        from allinone_lab.train.presets import preset

        exp = preset(args.preset).override(**{"train.max_steps": args.pretrain_steps,
                                              "train.checkpoint_every": args.pretrain_steps})
        start = time.perf_counter()
        pretrain(exp, out / "pretrain", progress=False)
        pretrain_seconds = round(time.perf_counter() - start, 1)
        checkpoint = out / "pretrain"
    bundle = load_bundle(checkpoint)
    ds = corpus_dataset("cloze", "test", bundle.data, bundle.corpus, train=False, with_masks=True)
    start = time.perf_counter()
    stats = cloze_alignment(bundle.model, ds, args.items, KINDS, batch_size=args.batch_size, solver=args.solver,
                            scope=args.scope)
    seconds = round(time.perf_counter() - start, 1)
    record = {
        "command": " ".join(["python", "benchmarks/cloze_alignment.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": torch.get_num_threads(), "torch": torch.__version__},
        "checkpoint": str(checkpoint), "pretrain_seconds": pretrain_seconds, "measure_seconds": seconds,
        "solver": args.solver, "scope": args.scope, "rows": stats["rows"], "word_rows": by_word(stats["items"]),
        "visible_rows": stats["visible_rows"], "items": stats["items"],
    }  # fmt: skip
    atomic_write_json(record, out / "cloze_alignment.json")
    print(markdown(stats["rows"]))
    print("\nBy masked word:\n")
    print(markdown(record["word_rows"], BY_WORD))
    print("\nThe caption's unmasked words in the same plans:\n")
    print(markdown(stats["visible_rows"], VISIBLE))
    print(f"\n{len(stats['items'])} items, {args.solver} per {args.scope}, measured in {seconds} s"
          + (f", pre-trained in {pretrain_seconds} s" if pretrain_seconds is not None else ""))
    return record


if __name__ == "__main__":
    main()
