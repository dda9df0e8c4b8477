"""Command line for reproductions.

    python -m allinone_lab.repro sweep NOTEBOOK --grid ratio=0,0.125,0.25,0.5 [--grid seed=0,1] \\
        [-p scale=smoke ...] --out DIR [--jobs N]
    python -m allinone_lab.repro report DIR [--out report.md] [--html report.html]
    python -m allinone_lab.repro list
    python -m allinone_lab.repro check [--scale paper] [--data-root ROOT] [NAME ...]
"""

from __future__ import annotations

import argparse
import sys

from .report import write_report
from .sweep import SweepError, parse_grid, parse_params, run_sweep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m allinone_lab.repro", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sweep = sub.add_parser("sweep", help="run a notebook once per grid point (papermill), then tabulate and plot")
    sweep.add_argument("notebook")
    sweep.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                       help="a swept parameter (repeat for a cartesian product)")
    sweep.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                       help="a fixed parameter for every point")
    sweep.add_argument("--out", required=True, help="sweep directory: OUT/<point>/, OUT/table.md, OUT/plot.png")
    sweep.add_argument("--jobs", type=int, default=None, help="parallel executions (default: GPUs, else CPUs)")
    sweep.add_argument("--timeout", type=float, default=None, help="seconds per point (default: none)")
    sweep.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")

    report = sub.add_parser("report", help="compile every results.json under DIR into one page")
    report.add_argument("dir")
    report.add_argument("--out", default=None, help="Markdown file (default: DIR/report.md)")
    report.add_argument("--html", default=None, help="also write a self-contained HTML page here")

    sub.add_parser("list", help="list the registered reproductions and their parameters")

    check = sub.add_parser("check", help="preflight every reproduction on one data root without training: one "
                                         "line each, ready or what is missing")
    check.add_argument("names", nargs="*", help="reproductions to check (default: all)")
    check.add_argument("--scale", default="paper", help="the scale to check (default: paper)")
    check.add_argument("--data-root", default=None, help="directory of prepared datasets (rehearsal without one: "
                                                         "the release-format fixtures)")
    check.add_argument("--device", default="auto")
    check.add_argument("--output-dir", default=None, help="where the runs would write, checked for space and "
                                                          "writability (default: a temporary directory)")

    args = parser.parse_args(argv)
    try:
        if args.command == "sweep":
            if args.jobs is not None and args.jobs < 1:
                raise SweepError(f"--jobs {args.jobs}: expected an integer >= 1")
            result = run_sweep(args.notebook, parse_grid(args.grid), args.out, parse_params(args.param),
                               jobs=args.jobs, timeout=args.timeout, kernel=args.kernel)
            counts = {s: sum(r.status == s for r in result.runs) for s in ("done", "skipped", "failed")}
            print(f"{counts['done']} ran, {counts['skipped']} skipped, {counts['failed']} failed; table: "
                  f"{result.table}, plot: {result.plot}")
            if result.failed:
                print(f"failures are described in {args.out}/failed.txt", file=sys.stderr)
                return 1
            return 0
        if args.command == "report":
            md, html = write_report(args.dir, args.out, args.html)
            print(f"wrote {md}" + (f" and {html}" if html else ""))
            return 0
        from . import REPRODUCTIONS

        if args.command == "check":
            return _check(args, REPRODUCTIONS)

        for name, reproduction in sorted(REPRODUCTIONS.items()):
            knobs = ", ".join(f"{p.name}={p.default!r}" for p in reproduction.params)
            print(f"{name}: {reproduction.title}" + (f" [{knobs}]" if knobs else ""))
        return 0
    except (SweepError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _check(args: argparse.Namespace, reproductions: dict) -> int:
    """One line per reproduction: ready, or what is missing; exit status 1 when any is not ready."""
    import tempfile

    from .run import check_reproduction

    names = args.names or sorted(reproductions)
    unknown = sorted(set(names) - set(reproductions))
    if unknown:
        raise ValueError(f"unknown reproduction(s) {unknown}; expected some of {sorted(reproductions)}")
    width = max(len(n) for n in names)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="allinone-check-") as scratch:
        for name in names:
            params = {"scale": args.scale, "data_root": args.data_root, "device": args.device,
                      "output_dir": f"{args.output_dir or scratch}/{name}"}
            line = check_reproduction(name, params)
            failed += not line.startswith("ready")
            print(f"{name:<{width}}  {line}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
