"""Sweep a notebook's parameters: one papermill execution per grid point, in parallel, then one table and
one plot over all points.

    python -m allinone_lab.repro sweep reproductions/table8b.ipynb --grid ratio=0,0.125,0.25,0.5 \\
        -p scale=smoke --out sweeps/ratio

Each point runs into ``OUT/<point>/`` (the executed notebook and, through the notebook's ``output_dir``
parameter, its ``results.json``); a point whose ``results.json`` exists is skipped, so an interrupted sweep
resumes. Parameter names the notebook does not declare are refused before anything runs.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io import atomic_write_bytes
from .run import RESULTS_FILE
from .show import format_value, markdown_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TABLE_FILE = "table.md"
PLOT_FILE = "plot.png"
FAILED_FILE = "failed.txt"


class SweepError(ValueError):
    """A sweep was asked for something the notebook cannot do (unknown parameter, bad grid)."""


def parse_value(text: str) -> Any:
    """A command-line value: a Python literal (``0.25``, ``True``, ``None``, ``'x'``) or else the bare text."""
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_assignments(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise SweepError(f"{what} {item!r}: expected name=value")
        if name.strip() in out:
            raise SweepError(f"{what} {name.strip()!r} is given twice")
        out[name.strip()] = value
    return out


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["ratio=0,0.25", "seed=0,1"]`` -> ``{"ratio": [0, 0.25], "seed": [0, 1]}``."""
    grid = {}
    for name, text in parse_assignments(items, "--grid").items():
        values = [parse_value(v) for v in text.split(",") if v.strip()]
        if not values:
            raise SweepError(f"--grid {name}=: expected one or more comma-separated values")
        if len(set(map(repr, values))) != len(values):
            raise SweepError(f"--grid {name}={text}: a value is repeated")
        grid[name] = values
    return grid


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["scale=smoke", "seed=1"]`` -> ``{"scale": "smoke", "seed": 1}``."""
    return {name: parse_value(text) for name, text in parse_assignments(items, "-p").items()}


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of the grid, in the order given (last parameter fastest)."""
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(grid[n] for n in names))]


def point_name(point: dict[str, Any]) -> str:
    """A directory name for one grid point: ``ratio=0.25`` or ``ratio=0.25__seed=1``."""

    def clean(value: Any) -> str:
        text = str(value)
        return "".join(c if c.isalnum() or c in ".-+" else "_" for c in text) or "_"

    return "__".join(f"{clean(k)}={clean(v)}" for k, v in point.items())


def notebook_parameters(notebook: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The parameters the notebook's ``parameters`` cell declares (``papermill.inspect_notebook``)."""
    import papermill

    path = Path(notebook)
    if not path.is_file():
        raise SweepError(f"notebook {str(path)!r} does not exist")
    declared = papermill.inspect_notebook(str(path))
    if not declared:
        raise SweepError(f"notebook {path}: no cell tagged 'parameters' declares any parameter")
    return declared


def check_sweep(notebook: str | os.PathLike, grid: dict[str, list[Any]], params: dict[str, Any]) -> None:
    """Refuse parameters the notebook does not declare, overlaps between grid and fixed parameters, and
    an ``output_dir`` set by hand (the sweep sets it per point)."""
    declared = notebook_parameters(notebook)
    if "output_dir" not in declared:
        raise SweepError(f"notebook {notebook}: it declares no 'output_dir' parameter, so a sweep cannot place "
                         f"each point's results; declared: {sorted(declared)}")
    both = sorted(set(grid) & set(params))
    if both:
        raise SweepError(f"parameter(s) {both} given both as --grid and -p")
    if "output_dir" in grid or "output_dir" in params:
        raise SweepError("output_dir is set by the sweep (OUT/<point>/); do not pass it")
    unknown = sorted((set(grid) | set(params)) - set(declared))
    if unknown:
        raise SweepError(f"notebook {notebook} does not declare parameter(s) {unknown}; it declares {sorted(declared)}")
    if not grid:
        raise SweepError("a sweep needs at least one --grid name=v1,v2,...")


@dataclass
class PointRun:
    name: str
    point: dict[str, Any]
    directory: Path
    status: str  # "done" (ran now), "skipped" (results existed), "failed"
    error: str = ""


@dataclass
class SweepResult:
    out: Path
    runs: list[PointRun] = field(default_factory=list)
    table: Path | None = None
    plot: Path | None = None

    @property
    def failed(self) -> list[PointRun]:
        return [r for r in self.runs if r.status == "failed"]


def default_jobs() -> int:
    """Parallel executions the machine allows: one per GPU where there are GPUs, else one per usable CPU."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.device_count()
    except ImportError:
        pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _execute(notebook: Path, run: PointRun, params: dict[str, Any], env: dict[str, str], timeout: float | None,
             kernel: str | None) -> PointRun:
    run.directory.mkdir(parents=True, exist_ok=True)
    values = {**params, **run.point, "output_dir": str(run.directory.resolve())}
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=run.directory, delete=False) as handle:
        json.dump(values, handle)  # JSON is YAML: papermill keeps the types
        param_file = handle.name
    command = [sys.executable, "-m", "papermill", str(notebook), str(run.directory / notebook.name),
               "-f", param_file, "--cwd", str(notebook.resolve().parent), "--no-progress-bar"]
    if kernel:
        command += ["-k", kernel]
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        ok = proc.returncode == 0 and (run.directory / RESULTS_FILE).is_file()
        if not ok:
            tail = (proc.stderr or proc.stdout or "")[-3000:]
            reason = f"exit code {proc.returncode}" if proc.returncode else f"no {RESULTS_FILE} written"
            run.status, run.error = "failed", f"{reason}\n{tail}"
        else:
            run.status = "done"
    except subprocess.TimeoutExpired:
        run.status, run.error = "failed", f"timed out after {timeout} s"
    finally:
        Path(param_file).unlink(missing_ok=True)
    return run


def run_sweep(notebook: str | os.PathLike, grid: dict[str, list[Any]], out: str | os.PathLike,
              params: dict[str, Any] | None = None, jobs: int | None = None, timeout: float | None = None,
              kernel: str | None = None, log=print) -> SweepResult:
    """Execute ``notebook`` once per grid point into ``out/<point>/`` (``jobs`` at a time), skipping points
    that already have a ``results.json``, then write ``out/table.md`` and ``out/plot.png``.

    Each execution gets ``OMP_NUM_THREADS`` = usable CPUs / jobs and, on a GPU machine, its own GPU
    (``CUDA_VISIBLE_DEVICES``, round robin)."""
    notebook = Path(notebook)
    params = dict(params or {})
    check_sweep(notebook, grid, params)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = max(1, jobs or default_jobs())
    points = grid_points(grid)
    runs = [PointRun(point_name(p), p, out / point_name(p), "pending") for p in points]
    pending = []
    for run in runs:
        if (run.directory / RESULTS_FILE).is_file():
            run.status = "skipped"
            log(f"skip {run.name}: {RESULTS_FILE} exists")
        else:
            pending.append(run)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    gpus = _gpu_count()
    threads = max(1, cpus // min(jobs, max(1, len(pending))))

    def env_for(index: int) -> dict[str, str]:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if gpus > 1:
            env["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
        return env

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_execute, notebook, run, params, env_for(i), timeout, kernel)
                   for i, run in enumerate(pending)]
        for future in futures:
            run = future.result()
            log(f"{run.status} {run.name}" + (f": {run.error.splitlines()[0]}" if run.error else ""))
    result = SweepResult(out=out, runs=runs)
    failed = result.failed
    failed_path = out / FAILED_FILE
    if failed:
        text = "\n\n".join(f"## {r.name}\n{r.error}" for r in failed) + "\n"
        atomic_write_bytes(failed_path, lambda h: h.write(text.encode()))
    else:
        failed_path.unlink(missing_ok=True)
    result.table, result.plot = gather(out, list(grid))
    return result


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:
        return 0


def collect(out: str | os.PathLike) -> list[dict[str, Any]]:
    """Every ``results.json`` directly under ``out/*/``, in directory order."""
    records = []
    for path in sorted(Path(out).glob(f"*/{RESULTS_FILE}")):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
        record["_dir"] = path.parent.name
        records.append(record)
    return records


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def sweep_table(records: list[dict[str, Any]], swept: list[str]) -> tuple[list[str], list[list[Any]]]:
    """One row per point: the swept parameters, then every numeric metric, wall time and peak memory."""
    metrics: list[str] = []
    for record in records:
        metrics += [k for k, v in record.get("metrics", {}).items() if _numeric(v) and k not in metrics]
    header = list(swept) + metrics + ["wall_seconds", "peak_memory_mb"]
    rows = []
    for record in records:
        params = record.get("params", {})
        rows.append([params.get(name) for name in swept] + [record.get("metrics", {}).get(m) for m in metrics]
                    + [record.get("wall_seconds"), record.get("peak_memory_mb")])
    return header, rows


def gather(out: str | os.PathLike, swept: list[str] | None = None) -> tuple[Path | None, Path | None]:
    """Write ``out/table.md`` (all points, sorted by the swept parameters; over a swept ``seed``, the mean,
    min and max of each headline column per condition) and ``out/plot.png`` (the reproduction's headline
    columns against the first swept condition, :func:`claim_figure`; else each varying metric). ``swept`` defaults to the
    parameters that differ between points. Returns the two paths (None where there is nothing to write)."""
    out = Path(out)
    records = collect(out)
    if not records:
        return None, None
    if swept is None:
        names = sorted({k for r in records for k in r.get("params", {}) if k != "output_dir"})
        swept = [n for n in names if len({repr(r["params"].get(n)) for r in records}) > 1]
    records.sort(key=lambda r: tuple(_sort_key(r.get("params", {}).get(n)) for n in swept))
    header, rows = sweep_table(records, swept)
    names = sorted({r.get("name", "?") for r in records})
    text = f"# Sweep over {', '.join(swept) or 'nothing'} ({', '.join(names)})\n\n" + markdown_table(header, rows)
    paper = next((r.get("paper") for r in records if r.get("paper")), None) or _paper_for(names)
    if paper:
        text += f"\n\nPaper: {paper['caption']}\n\n" + markdown_table(
            list(paper["keys"]) + [c for c in paper["columns"] if c not in paper["keys"]],
            [[row.get(c) for c in list(paper["keys"]) + [c for c in paper["columns"] if c not in paper["keys"]]]
             for row in paper["rows"]])
    headline = _headline_for(names)
    columns = [h.column for h in headline if any(_numeric(r.get("rows", [{}])[0].get(h.column))
                                                  for r in records if len(r.get("rows", [])) == 1)]
    if SEED in swept and columns:
        spread_header, spread_rows = spread_table(records, swept, columns)
        text += "\n\nOver the seeds (mean, min, max):\n\n" + markdown_table(spread_header, spread_rows)
    table_path = out / TABLE_FILE
    atomic_write_bytes(table_path, lambda h: h.write((text + "\n").encode()))
    figure = claim_figure(records, swept, headline, paper) if headline else None
    if figure is None:
        figure = sweep_figure(header, rows, swept)
    if figure is None:
        return table_path, None
    plot_path = out / PLOT_FILE
    atomic_write_bytes(plot_path, lambda h: figure.savefig(h, format="png", dpi=110, bbox_inches="tight"))
    return table_path, plot_path


def _paper_for(names: list[str]) -> dict[str, Any] | None:
    """The paper's numbers for the one reproduction a sweep ran (by its registered paper key)."""
    from . import paper as paper_numbers
    from .spec import REPRODUCTIONS

    if len(names) != 1:
        return None
    reproduction = REPRODUCTIONS.get(names[0])
    return paper_numbers.table_dict(reproduction.paper_key if reproduction else names[0])


def _headline_for(names: list[str]) -> tuple:
    """The headline columns of the one reproduction a sweep ran (none for several or an unknown one)."""
    from .spec import REPRODUCTIONS

    reproduction = REPRODUCTIONS.get(names[0]) if len(names) == 1 else None
    return reproduction.headline if reproduction else ()


def _sort_key(value: Any) -> tuple:
    return (0, float(value), "") if _numeric(value) else (1, 0.0, str(value))


SEED = "seed"  # a swept seed is a repeat, not a condition: points of several seeds are summarised together
# Metrics that describe the run rather than measure the model (never plotted).
NOT_MEASURED = ("wall_seconds", "peak_memory_mb", "pretrain_seconds", "steps", "global batch", "Params (M)",
                "PT time (s)")


def _conditions(swept: list[str]) -> tuple[str | None, list[str]]:
    """The swept parameter drawn on the x axis (the first that is not the seed) and the others that
    split lines (the seed never does)."""
    conditions = [n for n in swept if n != SEED]
    return (conditions[0] if conditions else None), conditions[1:]


def spread_table(records: list[dict[str, Any]], swept: list[str], columns: list[str]) -> tuple[list[str],
                                                                                              list[list[Any]]]:
    """Over the seeds of each condition: mean, min, max and the number of seeds of each of ``columns`` (row
    values of single-row results)."""
    x_name, others = _conditions(swept)
    keys = [n for n in (x_name, *others) if n is not None]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in records:
        if len(record.get("rows", [])) == 1:
            params = record.get("params", {})
            groups.setdefault(tuple(params.get(k) for k in keys), []).append(record["rows"][0])
    header = [*keys, "seeds"] + [f"{c} ({stat})" for c in columns for stat in ("mean", "min", "max")]
    rows = []
    for key, members in sorted(groups.items(), key=lambda kv: tuple(_sort_key(v) for v in kv[0])):
        row: list[Any] = [*key, len(members)]
        for column in columns:
            values = [m[column] for m in members if _numeric(m.get(column))]
            row += [sum(values) / len(values), min(values), max(values)] if values else [None, None, None]
        rows.append(row)
    return header, rows


def claim_figure(records: list[dict[str, Any]], swept: list[str], headline, paper: dict[str, Any] | None
                 ) -> Figure | None:
    """One panel per ``headline`` column present in the results: the column (labelled in words) against
    the swept condition, each seed a dot and the mean a line (the spread over seeds visible), chance a
    dashed line, and where the paper measured the same quantity its numbers as a second line. Results of
    more than one row per run are not drawn here (None)."""
    from matplotlib.figure import Figure

    x_name, others = _conditions(swept)
    single = [r for r in records if len(r.get("rows", [])) == 1]
    if x_name is None or not single or len(single) != len(records):
        return None
    panels = [h for h in headline if any(_numeric(r["rows"][0].get(h.column)) for r in single)]
    if not panels:
        return None
    xs_all = [r["params"].get(x_name) for r in single]
    numeric_x = all(_numeric(x) for x in xs_all)
    categories = list(dict.fromkeys(format_value(x) for x in xs_all))

    def position(x: Any) -> float:
        return float(x) if numeric_x else float(categories.index(format_value(x)))

    fig = Figure(figsize=(4.6 * len(panels), 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False).ravel()
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in single:
        groups.setdefault(tuple(record["params"].get(n) for n in others), []).append(record)
    seeds = len({repr(r["params"].get(SEED)) for r in single})
    scales = sorted({str(r["params"].get("scale")) for r in single if r["params"].get("scale")})
    ours = "ours" + (f", scale {scales[0]}" if len(scales) == 1 else "")
    for ax, head in zip(axes, panels, strict=True):
        for key, members in groups.items():
            label = ", ".join([ours, *(f"{n}={format_value(v)}" for n, v in zip(others, key, strict=True))])
            by_x: dict[float, list[float]] = {}
            for record in members:
                value = record["rows"][0].get(head.column)
                if _numeric(value):
                    by_x.setdefault(position(record["params"].get(x_name)), []).append(float(value))
            xs = sorted(by_x)
            line = ax.plot(xs, [sum(by_x[x]) / len(by_x[x]) for x in xs], marker="o",
                           label=label + (f", mean of {seeds} seeds" if seeds > 1 else ""))[0]
            if seeds > 1:
                ax.scatter([x for x in xs for _ in by_x[x]], [v for x in xs for v in by_x[x]], s=12, alpha=0.5,
                           color=line.get_color())
        chances = {head.chance_in(r.get("metrics", {})) for r in single} - {None}
        if len(chances) == 1:
            ax.axhline(chances.pop(), color="grey", linestyle="--", linewidth=1, label=head.chance_label)
        if paper and head.paper and x_name in paper.get("keys", ()):
            points = sorted((position(row[x_name]), row[head.paper]) for row in paper["rows"]
                            if _numeric(row.get(head.paper)) and (numeric_x or format_value(row[x_name]) in categories))
            if points:
                ax.plot(*zip(*points, strict=True), marker="s", linestyle=":", color="black", label="the paper")
        if not numeric_x:
            ax.set_xticks(range(len(categories)), categories, rotation=30)
        ax.set_xlabel(x_name)
        ax.set_title(head.label, fontsize=9)
        if head.label.endswith("(%)"):
            ax.set_ylim(0, 100)  # every percentage on the same scale, chance and ceiling in view
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def sweep_figure(header: list[str], rows: list[list[Any]], swept: list[str]) -> Figure | None:
    """Each measured metric that varies between points against the first swept parameter (categorical if
    not numeric): the figure of a reproduction that declares no headline columns. Constants (a chance
    level, a step count) and timings are left out."""
    from matplotlib.figure import Figure

    if not swept or not rows:
        return None
    x_name, others = swept[0], swept[1:]
    metric_cols = [i for i, h in enumerate(header) if h not in swept and h not in NOT_MEASURED
                   and any(_numeric(r[i]) for r in rows) and len({repr(r[i]) for r in rows}) > 1]
    if not metric_cols:
        return None
    xs_raw = [r[0] for r in rows]
    numeric_x = all(_numeric(x) for x in xs_raw)
    categories = list(dict.fromkeys(format_value(x) for x in xs_raw))
    cols = min(3, len(metric_cols))
    lines = (len(metric_cols) + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols, 3.2 * lines), layout="constrained")
    axes = fig.subplots(lines, cols, squeeze=False).ravel()
    groups: dict[tuple, list[list[Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[1:len(swept)]), []).append(row)
    for ax, col in zip(axes, metric_cols, strict=False):
        for key, members in groups.items():
            xs = [r[0] if numeric_x else categories.index(format_value(r[0])) for r in members]
            ys = [r[col] if _numeric(r[col]) else float("nan") for r in members]
            label = ", ".join(f"{n}={format_value(v)}" for n, v in zip(others, key, strict=True)) or None
            ax.plot(xs, ys, marker="o", label=label)
        if not numeric_x:
            ax.set_xticks(range(len(categories)), categories, rotation=30)
        ax.set_xlabel(x_name)
        ax.set_title(header[col], fontsize=9)
        ax.grid(alpha=0.3)
        if others:
            ax.legend(fontsize=7)
    for ax in axes[len(metric_cols):]:
        ax.set_visible(False)
    return fig
