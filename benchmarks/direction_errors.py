"""Which direction words a pre-trained model gets wrong: cloze accuracy per direction word, for clips with one
moving object and for the first of two, on the built-in corpus of the ``cpu`` preset.

Each direction cloze item (the caption with its main object's direction word masked) is scored as a whole:
right when every masked position is predicted (argmax over the vocabulary) as the true word. Runs on the test
split, or on the training split to tell a model that cannot fit a word from one that does not generalise.

    python benchmarks/direction_errors.py --checkpoint runs/lc/roll
    python benchmarks/direction_errors.py --checkpoint runs/lc/average --set model.roll_ratio=0.0
    python benchmarks/direction_errors.py --checkpoint runs/one/roll --split train --limit 1500 \\
        --set corpus.two_object_prob=0.0

``--set`` takes the overrides the checkpoint was trained with (the corpus and the model must match).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils.data import Subset

from allinone_lab.data.text import DIRECTION_WORDS
from allinone_lab.train.jobs import dataset, load_model, loader
from allinone_lab.train.presets import parse_overrides, preset


@torch.no_grad()
def direction_errors(model, items, rows: list[dict], batch_size: int = 64) -> dict[str, dict[str, float]]:
    """``{group: {word: accuracy %, "items": count, ...}}`` with groups ``one`` (one moving object) and
    ``two`` (the first of two), over the direction rows of ``rows`` (``items[i]`` is ``rows[i]``'s item)."""
    model.eval()
    correct: list[bool] = []
    for batch in loader(items, batch_size):
        out = model(batch["video"], batch["input_ids"], batch["attention_mask"])
        labels, asked = batch["mlm_labels"], batch["mlm_labels"] != -100
        predicted = model.mlm_logits(out).argmax(-1)
        correct += [bool((predicted[i][asked[i]] == labels[i][asked[i]]).all()) for i in range(len(labels))]
    tally: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for row, right in zip(rows, correct, strict=True):
        if row["kind"] != "direction":
            continue
        group = "two" if " and " in row["caption"] else "one"
        for word in (row["word"], "all"):
            tally[group][word][0] += right
            tally[group][word][1] += 1
    return {group: {"items": words["all"][1],
                    **{w: round(100.0 * words[w][0] / words[w][1], 1) for w in ("all", *DIRECTION_WORDS) if words[w][1]}}
            for group, words in sorted(tally.items())}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a run directory (its checkpoints/last.pt) or a .pt file")
    parser.add_argument("--split", choices=("test", "train"), default="test")
    parser.add_argument("--limit", type=int, default=None, help="only the first N cloze items of the split")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="SECTION.FIELD=VALUE")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    exp = preset("cpu").override(**parse_overrides(args.overrides))
    checkpoint = Path(args.checkpoint)
    if checkpoint.is_dir():
        checkpoint = checkpoint / "checkpoints" / "last.pt"
    model = load_model(exp, checkpoint)
    cloze = dataset(exp, "cloze", args.split, train=False)
    count = len(cloze) if args.limit is None else min(args.limit, len(cloze))
    rows = [cloze.table[i] for i in range(count)]
    result = direction_errors(model, Subset(cloze, range(count)), rows)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
