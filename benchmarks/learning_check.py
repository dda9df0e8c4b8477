"""The CPU learning check: does token rolling learn temporal words that single frames cannot?

Pre-trains three arms of the ``cpu`` preset on the built-in corpus, each for the same number of steps,
recording learning curves (cloze accuracy on temporal and static words, zero-shot multiple choice on the
temporal-only distractors) on the test split every ``--eval-every`` steps, and at the end the cloze
accuracy on each direction word with the word most often predicted for it:

- ``roll``: token rolling (the preset's default);
- ``average``: the time-average model (``roll_ratio=0``, 3 frames);
- ``single``: the single-frame model (``num_frames=1`` in training and evaluation).

Then fine-tunes the rolling model for retrieval and reports R@1 against random. Writes one JSON object per
arm, a summary, and ``learning_curves.png`` into ``--out``.

    python benchmarks/learning_check.py --out runs/learning_check
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from allinone_lab.data.text import DIRECTION_WORDS, load_tokenizer
from allinone_lab.eval import cloze_confusion
from allinone_lab.io import atomic_write_json
from allinone_lab.train.jobs import (
    dataset,
    evaluate_pretrained,
    finetune_retrieval,
    load_model,
    loader,
    pretrain,
)
from allinone_lab.train.presets import parse_overrides, preset

ARMS = {
    "roll": {},
    "average": {"model.roll_ratio": 0.0},
    "single": {"model.num_frames": 1},
}


def plot(curves: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name, rows in curves.items():
        steps = [r["step"] for r in rows]
        axes[0].plot(steps, [r.get("cloze_acc_temporal", float("nan")) for r in rows], marker="o", label=name)
        axes[1].plot(steps, [r.get("cloze_acc_static", float("nan")) for r in rows], marker="o", label=name)
        axes[2].plot(steps, [r.get("mc_temporal_accuracy", float("nan")) for r in rows], marker="o", label=name)
    titles = ("cloze accuracy, temporal words (%)", "cloze accuracy, static words (%)",
              "zero-shot MC, temporal distractors (%)")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].axhline(25, color="grey", ls="--", lw=1)
    axes[2].axhline(25, color="grey", ls="--", lw=1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def per_direction(exp, model) -> dict[str, float | str]:
    """Cloze accuracy on each direction word of the test split, and the word most often predicted for it."""
    tokenizer = load_tokenizer(exp.data.tokenizer_path)
    counts = cloze_confusion(model, loader(dataset(exp, "cloze", "test", train=False), 32))
    out: dict[str, float | str] = {}
    for word in DIRECTION_WORDS:
        word_id = tokenizer.convert_tokens_to_ids(word)
        row = counts.get(word_id, {})
        if row:
            out[f"cloze_acc_{word}"] = 100.0 * row.get(word_id, 0) / sum(row.values())
            out[f"cloze_top_{word}"] = tokenizer.convert_ids_to_tokens(max(row, key=row.get))
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/learning_check")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--retrieval-steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="SECTION.FIELD=VALUE")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    base = preset("cpu").override(**parse_overrides(args.overrides))
    curves, summary = {}, {}
    for arm in args.arms:
        exp = base.override(**ARMS[arm])
        run = out / arm
        start = time.perf_counter()
        checkpoint = pretrain(exp, run, progress=False, eval_every=args.eval_every)
        seconds = time.perf_counter() - start
        model = load_model(exp, checkpoint)
        final = {**evaluate_pretrained(exp, model), **per_direction(exp, model)}
        if arm == "roll" and args.retrieval_steps:
            final.update(finetune_retrieval(exp, model, run / "retrieval", args.retrieval_steps, progress=False))
        curves[arm] = [json.loads(line) for line in (run / "curve.jsonl").read_text().splitlines()]
        summary[arm] = {"pretrain_seconds_this_call": round(seconds, 1), **final}
        print(json.dumps({"arm": arm, **summary[arm]}), flush=True)
    plot(curves, out / "learning_curves.png")
    atomic_write_json({"config": base.to_dict(), "arms": summary, "curves": curves}, out / "summary.json")
    return summary


if __name__ == "__main__":
    main()
