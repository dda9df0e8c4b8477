"""Command line for reproductions.

    python -m allinone_lab.repro sweep NOTEBOOK --grid ratio=0,0.125,0.25,0.5 [--grid seed=0,1] \\
        [-p scale=smoke ...] --out DIR [--jobs N]
    python -m allinone_lab.repro report DIR [--out report.md] [--html report.html]
    python -m allinone_lab.repro list
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

        for name, reproduction in sorted(REPRODUCTIONS.items()):
            knobs = ", ".join(f"{p.name}={p.default!r}" for p in reproduction.params)
            print(f"{name}: {reproduction.title}" + (f" [{knobs}]" if knobs else ""))
        return 0
    except (SweepError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
