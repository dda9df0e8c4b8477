"""Command line: ``python -m allinone_lab.train JOB --preset NAME [--set section.field=value ...]``.

Jobs:
  pretrain     pre-train (VTM + MLM) on the built-in corpus; resumes a stopped run in --run-dir
  experiment   pre-train, evaluate cloze and zero-shot multiple choice, fine-tune retrieval, write results.json
  finetune     fine-tune --task retrieval | mc | qa from --init CHECKPOINT, selecting on a validation split
  evaluate     evaluate the checkpoint of an existing --run-dir (its config.json says what it is)

Works under torchrun: ``torchrun --nproc_per_node=2 -m allinone_lab.train pretrain --preset cpu ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .jobs import evaluate_pretrained, finetune, load_model, pretrain, run_experiment
from .presets import PRESETS, Experiment, parse_overrides, preset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m allinone_lab.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", choices=["pretrain", "experiment", "finetune", "evaluate"])
    parser.add_argument("--preset", choices=PRESETS, default="cpu")
    parser.add_argument("--variant", default=None, help="paper preset: tiny | small | base | large")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--stop-after", type=int, default=None, help="leave after this many steps (resumable)")
    parser.add_argument("--retrieval-steps", type=int, default=0)
    parser.add_argument("--task", choices=["retrieval", "mc", "qa"], default="retrieval")
    parser.add_argument("--init", default=None, help="checkpoint to start fine-tuning from")
    parser.add_argument("--steps", type=int, default=None, help="fine-tuning steps (default: train.max_steps)")
    parser.add_argument("--eval-every", type=int, default=None)
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
    if args.job == "pretrain":
        print(pretrain(exp, run_dir / "pretrain", stop_after=args.stop_after, progress=not args.no_progress))
    elif args.job == "finetune":
        results = finetune(exp, args.task, run_dir, args.steps or exp.train.max_steps, args.init, args.eval_every,
                           progress=not args.no_progress)
        print(json.dumps(results, indent=2))
    else:
        results = run_experiment(exp, run_dir, args.retrieval_steps, progress=not args.no_progress)
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
