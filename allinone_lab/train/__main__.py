"""Command line: ``python -m allinone_lab.train JOB --preset NAME [--set section.field=value ...]``.

Jobs:
  pretrain     pre-train (VTM + MLM) on the built-in corpus or --data-root; resumes a stopped run in --run-dir
  experiment   pre-train, evaluate cloze and zero-shot multiple choice, fine-tune retrieval, write results.json
  finetune     fine-tune --task retrieval | mc | qa | vcr | linear_probe from --init CHECKPOINT, selecting on a
               validation split (never test); --zero-shot evaluates --init on test without training
               (retrieval, mc, vcr)
  evaluate     evaluate the checkpoint of an existing --run-dir (its config.json says what it is)

Data: the built-in corpus, or a prepared dataset with --data-root ROOT (python -m allinone_lab.data.prepare);
--split train=train_7k maps the jobs' train/val/test to the dataset's splits, --subtask picks TGIF-QA's
action | transition | frameqa or VCR's qa | qar.

Works under torchrun: ``torchrun --nproc_per_node=2 -m allinone_lab.train pretrain --preset cpu ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .jobs import (
    FINETUNE_TASKS,
    RETRIEVAL_OBJECTIVES,
    evaluate_pretrained,
    finetune,
    load_model,
    pretrain,
    run_experiment,
)
from .presets import PRESETS, Experiment, parse_overrides, preset


def _pairs(items: list[str], flag: str, cast=str) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise SystemExit(f"{flag} {item!r}: expected NAME=VALUE")
        try:
            out[key.strip()] = cast(value.strip())
        except ValueError:
            raise SystemExit(f"{flag} {item!r}: {value!r} is not a number") from None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m allinone_lab.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", choices=["pretrain", "experiment", "finetune", "evaluate"])
    parser.add_argument("--preset", choices=PRESETS, default="cpu")
    parser.add_argument("--variant", default=None, help="paper preset: tiny | small | base | large")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--data-root", default=None, help="a prepared dataset (default: the built-in corpus)")
    parser.add_argument("--split", dest="splits", nargs="*", default=[], metavar="JOBSPLIT=SPLIT",
                        help="map the jobs' train/val/test to the dataset's splits, e.g. train=train_7k")
    parser.add_argument("--subtask", default=None, help="tgif-qa: action | transition | frameqa; vcr: qa | qar")
    parser.add_argument("--no-paint-masks", dest="paint_masks", action="store_false",
                        help="vcr: the plain images, without the referenced people painted")
    parser.add_argument("--stop-after", type=int, default=None, help="leave after this many steps (resumable)")
    parser.add_argument("--retrieval-steps", type=int, default=0)
    parser.add_argument("--task", choices=list(FINETUNE_TASKS), default="retrieval")
    parser.add_argument("--zero-shot", action="store_true", help="evaluate --init on test without training")
    parser.add_argument("--objectives", nargs="*", default=None, metavar="NAME=WEIGHT",
                        help=f"retrieval loss weights among {list(RETRIEVAL_OBJECTIVES)}, e.g. vtc=1 vtm=0")
    parser.add_argument("--rerank-top-k", type=int, default=0, help="retrieval: re-score the top k with VTM")
    parser.add_argument("--probe-lrs", type=float, nargs="*", default=[1e-3, 1e-2, 1e-1],
                        help="linear_probe: learning rates chosen among on validation")
    parser.add_argument("--probe-epochs", type=int, default=100)
    parser.add_argument("--init", default=None, help="checkpoint to start fine-tuning from")
    parser.add_argument("--steps", type=int, default=None, help="fine-tuning steps (default: train.max_steps)")
    parser.add_argument("--eval-every", type=int, default=None)
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="validation share held out of train when the data has no val split")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    run_dir = Path(args.run_dir)
    if args.job == "evaluate":
        config = json.loads((run_dir / "pretrain" / "config.json").read_text())
        exp = Experiment.from_dict(config)
        model = load_model(exp, run_dir / "pretrain" / "checkpoints" / "last.pt")
        print(json.dumps(evaluate_pretrained(exp, model), indent=2))
        return 0
    exp = preset(args.preset, args.variant).override(**parse_overrides(args.overrides))
    if args.data_root is not None:
        exp = exp.override(data_root=args.data_root)
    if args.job == "pretrain":
        print(pretrain(exp, run_dir / "pretrain", stop_after=args.stop_after, progress=not args.no_progress))
    elif args.job == "finetune":
        objectives = None if args.objectives is None else _pairs(args.objectives, "--objectives", float)
        results = finetune(exp, args.task, run_dir, args.steps or exp.train.max_steps, args.init, args.eval_every,
                           args.val_fraction, progress=not args.no_progress, zero_shot=args.zero_shot,
                           objectives=objectives, rerank_top_k=args.rerank_top_k, subtask=args.subtask,
                           splits=_pairs(args.splits, "--split") or None, paint_masks=args.paint_masks,
                           probe_lrs=tuple(args.probe_lrs), probe_epochs=args.probe_epochs)
        print(json.dumps(results, indent=2))
    else:
        results = run_experiment(exp, run_dir, args.retrieval_steps, progress=not args.no_progress)
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
