"""Which direction words a pre-trained model gets wrong: cloze accuracy per direction word, for clips with one
moving object and for the first of two, on the built-in corpus of the ``cpu`` preset.

Each direction cloze item masks its main object's direction word (twice where both objects move the same
way); accuracy counts masked positions predicted (argmax over the vocabulary) as the true word. Runs on the test
split, or on the training split to tell a model that cannot fit a word from one that does not generalise.

    python benchmarks/direction_errors.py --checkpoint runs/lc/roll
    python benchmarks/direction_errors.py --checkpoint runs/lc/average --set model.roll_ratio=0.0
    python benchmarks/direction_errors.py --checkpoint runs/two/roll --split train --limit 1500 \\
        --set corpus.two_object_prob=0.3 model.roll_selection=block

(The ``cpu`` preset's corpus has one moving object per clip; ``corpus.two_object_prob=0.3`` is the corpus'
default, with two moving objects in 30% of the motion clips.)

``--set`` takes the overrides the checkpoint was trained with (the corpus and the model must match).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils.data import Subset

from allinone_lab.data.text import DIRECTION_WORDS, load_tokenizer
from allinone_lab.eval import cloze_confusion
from allinone_lab.train.jobs import dataset, load_model, loader
from allinone_lab.train.presets import parse_overrides, preset


def direction_errors(model, cloze, count: int, tokenizer, batch_size: int = 64) -> dict[str, dict[str, float]]:
    """``{group: {"items": n, "all": %, word: %}}`` over the direction items among the first ``count`` of
    ``cloze``, with groups ``one`` (one moving object) and ``two`` (the first of two); accuracy per asked
    position (:func:`cloze_confusion`)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i in range(count):
        row = cloze.table[i]
        if row["kind"] == "direction":
            groups["two" if " and " in row["caption"] else "one"].append(i)
    ids = {word: tokenizer.convert_tokens_to_ids(word) for word in DIRECTION_WORDS}
    result = {}
    for group, rows in sorted(groups.items()):
        counts = cloze_confusion(model, loader(Subset(cloze, rows), batch_size))
        right = {w: counts.get(i, {}).get(i, 0) for w, i in ids.items()}
        asked = {w: sum(counts.get(i, {}).values()) for w, i in ids.items()}
        result[group] = {"items": len(rows), "all": round(100.0 * sum(right.values()) / sum(asked.values()), 1),
                         **{w: round(100.0 * right[w] / asked[w], 1) for w in ids if asked[w]}}
    return result


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
    result = direction_errors(model, cloze, count, load_tokenizer(exp.data.tokenizer_path))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
