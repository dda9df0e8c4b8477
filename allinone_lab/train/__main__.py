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

Every flag either does what its help says for the job given, or the job refuses it before any work and
says which flag to use instead: ``--steps`` is the job's optimizer steps (pre-training for ``pretrain`` and
``experiment``, fine-tuning for ``finetune``), the same as ``--set train.max_steps=N``.

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
    ZERO_SHOT_TASKS,
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m allinone_lab.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", choices=JOBS)
    parser.add_argument("--preset", choices=PRESETS, default="cpu")
    parser.add_argument("--variant", default=None, help="paper preset: tiny | small | base | large")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--data-root", default=None, help="a prepared dataset (default: the built-in corpus)")
    parser.add_argument("--split", dest="splits", nargs="*", default=[], metavar="JOBSPLIT=SPLIT",
                        help="finetune: map the jobs' train/val/test to the dataset's splits, e.g. train=train_7k")
    parser.add_argument("--subtask", default=None,
                        help="finetune: tgif-qa's action | transition | frameqa; vcr's qa | qar")
    parser.add_argument("--no-paint-masks", dest="paint_masks", action="store_false",
                        help="finetune --task vcr: the plain images, without the referenced people painted")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="pretrain: leave after this many steps (a later call on the same --run-dir resumes)")
    parser.add_argument("--retrieval-steps", type=int, default=0,
                        help="experiment: fine-tune retrieval for this many steps after pre-training")
    parser.add_argument("--task", choices=list(FINETUNE_TASKS), default="retrieval", help="finetune: the task")
    parser.add_argument("--zero-shot", action="store_true",
                        help=f"finetune: evaluate --init on test without training ({' | '.join(ZERO_SHOT_TASKS)})")
    parser.add_argument("--objectives", nargs="*", default=None, metavar="NAME=WEIGHT",
                        help=f"finetune --task retrieval: loss weights among {list(RETRIEVAL_OBJECTIVES)}, "
                             f"e.g. vtc=1 vtm=0")
    parser.add_argument("--rerank-top-k", type=int, default=0,
                        help="finetune --task retrieval: re-score the top k with VTM")
    parser.add_argument("--probe-lrs", type=float, nargs="*", default=[1e-3, 1e-2, 1e-1],
                        help="finetune --task linear_probe: learning rates chosen among on validation")
    parser.add_argument("--probe-epochs", type=int, default=100, help="finetune --task linear_probe: epochs")
    parser.add_argument("--init", default=None, help="finetune: the checkpoint to start from")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimizer steps of the job (pre-training for pretrain and experiment, fine-tuning "
                             "for finetune); the same as --set train.max_steps=N")
    parser.add_argument("--eval-every", type=int, default=None, help="finetune: validate every this many steps")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="finetune: validation share held out of train when the data has no val split")
    parser.add_argument("--no-progress", action="store_true")
    return parser


JOBS = ("pretrain", "experiment", "finetune", "evaluate")

# The jobs that use each optional flag (by its argparse dest); a flag given to any other job is refused.
_EXPERIMENT_JOBS = ("pretrain", "experiment", "finetune")
FLAG_JOBS: dict[str, tuple[str, ...]] = {
    "preset": _EXPERIMENT_JOBS, "variant": _EXPERIMENT_JOBS, "overrides": _EXPERIMENT_JOBS,
    "data_root": _EXPERIMENT_JOBS, "steps": _EXPERIMENT_JOBS, "no_progress": JOBS, "run_dir": JOBS,
    "stop_after": ("pretrain",), "retrieval_steps": ("experiment",),
    **{dest: ("finetune",) for dest in ("splits", "subtask", "paint_masks", "task", "zero_shot", "objectives",
                                        "rerank_top_k", "probe_lrs", "probe_epochs", "init", "eval_every",
                                        "val_fraction")},
}
# Within finetune: the tasks (and whether zero-shot) that use a flag.
_TRAINED = {"retrieval", "mc", "qa", "vcr"}
FLAG_TASKS: dict[str, tuple[set[str], bool | None]] = {  # dest -> (tasks, zero_shot it needs; None = either)
    "steps": (_TRAINED, False), "eval_every": (_TRAINED, False),
    "val_fraction": (_TRAINED | {"linear_probe"}, False),
    "objectives": ({"retrieval"}, False), "rerank_top_k": ({"retrieval"}, None),
    "probe_lrs": ({"linear_probe"}, None), "probe_epochs": ({"linear_probe"}, None),
    "paint_masks": ({"vcr"}, None), "zero_shot": (set(ZERO_SHOT_TASKS), None),
}
# What to use instead, where another flag does the job.
INSTEAD = {
    "init": "pre-training starts from the preset's model.init (e.g. --set model.init=scratch); to continue a "
            "stopped run give the same --run-dir",
    "stop_after": "only pretrain stops early and resumes; run `pretrain --stop-after N` first, then this job",
    "retrieval_steps": "to fine-tune retrieval use `finetune --task retrieval --steps N`",
    "steps": "the evaluation reads the run's config.json; nothing trains",
    "preset": "the evaluation reads the run's config.json (its preset and overrides)",
    "variant": "the evaluation reads the run's config.json (its preset and overrides)",
    "overrides": "the evaluation reads the run's config.json (its preset and overrides)",
    "data_root": "the evaluation reads the run's config.json (its data_root)",
}


def _flag(parser: argparse.ArgumentParser, dest: str) -> str:
    for action in parser._actions:  # argparse keeps no public map from dest to option string
        if action.dest == dest and action.option_strings:
            return action.option_strings[0]
    return dest


def given_flags(argv: list[str] | None) -> set[str]:
    """The dests of the optional flags written on the command line (whatever their value)."""
    probe = build_parser()
    for action in probe._actions:  # every optional flag absent unless written
        if action.option_strings:
            action.default = argparse.SUPPRESS
    return set(vars(probe.parse_args(argv))) - {"job"}


def check_flags(parser: argparse.ArgumentParser, args: argparse.Namespace, given: set[str]) -> None:
    """Refuse any flag the job (or, for finetune, the task) would not use, naming what to use instead."""
    problems = []
    for dest in sorted(given):
        jobs = FLAG_JOBS.get(dest, JOBS)
        flag = _flag(parser, dest)
        if args.job not in jobs:
            hint = INSTEAD.get(dest, f"it is read by {' and '.join(jobs)} only")
            if dest == "steps" and args.job == "evaluate":
                hint = INSTEAD["steps"]
            problems.append(f"{flag} does not apply to `{args.job}`: {hint}")
        elif args.job == "finetune" and dest in FLAG_TASKS:
            tasks, zero_shot = FLAG_TASKS[dest]
            if args.task not in tasks:
                hint = " (the probe trains --probe-epochs epochs)" if args.task == "linear_probe" else ""
                problems.append(f"{flag} does not apply to --task {args.task}: it is read by --task "
                                f"{' | '.join(sorted(tasks))} only{hint}")
            elif zero_shot is False and args.zero_shot:
                problems.append(f"{flag} does not apply with --zero-shot: nothing trains")
    if "steps" in given and args.job != "evaluate":
        set_steps = parse_overrides(args.overrides).get("train.max_steps")
        if set_steps is not None and set_steps != args.steps:
            problems.append(f"--steps {args.steps} and --set train.max_steps={set_steps} disagree; give one")
    if problems:
        raise SystemExit(f"python -m allinone_lab.train {args.job}: refused before any work:\n"
                         + "\n".join(f"  - {problem}" for problem in problems))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_flags(parser, args, given_flags(argv))

    run_dir = Path(args.run_dir)
    if args.job == "evaluate":
        config = json.loads((run_dir / "pretrain" / "config.json").read_text())
        exp = Experiment.from_dict(config)
        model = load_model(exp, run_dir / "pretrain" / "checkpoints" / "last.pt")
        print(json.dumps(evaluate_pretrained(exp, model), indent=2))
        return 0
    exp = preset(args.preset, args.variant).override(**parse_overrides(args.overrides))
    if args.steps is not None:
        exp = exp.override(**{"train.max_steps": args.steps})
    if args.data_root is not None:
        exp = exp.override(data_root=args.data_root)
    if args.job == "pretrain":
        print(pretrain(exp, run_dir / "pretrain", stop_after=args.stop_after, progress=not args.no_progress))
    elif args.job == "finetune":
        objectives = None if args.objectives is None else _pairs(args.objectives, "--objectives", float)
        results = finetune(exp, args.task, run_dir, exp.train.max_steps, args.init, args.eval_every,
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
