"""Show a result beside the paper: one Markdown table per reproduction, and its figure where the paper has one."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import paper as paper_numbers
from .spec import REPRODUCTIONS, Result

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Markdown(str):
    """Markdown text; Jupyter renders it as Markdown."""

    def _repr_markdown_(self) -> str:
        return str(self)


class _Shown(Markdown):
    """Markdown already displayed by :func:`show`: displaying it again would print it twice."""

    def _ipython_display_(self) -> None:
        return None


def format_value(value: Any) -> str:
    """A table cell: floats with up to 4 significant decimals, booleans as ✓/✗, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value.is_integer() and abs(value) < 1e15:
            return f"{value:.1f}"
        return f"{value:.4g}" if abs(value) >= 1 else f"{value:.4f}".rstrip("0")
    return str(value).replace("|", "\\|")


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(format_value(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _norm(value: Any) -> Any:
    """A row key as compared: numbers by value, text case-, space- and x/× insensitive."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return round(float(value), 9)
    text = str(value).strip().lower().replace("×", "x").replace(" ", "")
    try:
        return round(float(text), 9)
    except ValueError:
        return text


def _matches(paper_row: dict[str, Any], measured: dict[str, Any], keys: tuple[str, ...]) -> bool:
    shared = [k for k in keys if k in measured]
    return bool(shared) and all(_norm(paper_row.get(k)) == _norm(measured[k]) for k in shared)


def comparison_rows(paper: dict[str, Any] | None, measured: list[dict[str, Any]]) -> tuple[list[str], list[list]]:
    """Header and rows of the side-by-side table: the key columns, then each paper column ``X (paper)`` next
    to the measured ``X (measured)``, then columns only measured. A measured row sits beside every paper row
    that agrees on the paper's match keys; measured rows that match none follow.

    A paper key outside the match keys that measured rows carry too (Table 6's ``steps``) is shown twice,
    ``X (paper)`` and ``X (measured)``, so that a measured row never takes the paper row's value. Such a
    measured row sits only beside the matching paper rows that also agree on it, or, when none does, beside
    the first of them (the paper lists its main setting first: Table 6's 200K steps)."""
    keys = list(paper["keys"]) if paper else []
    match = tuple(paper["match"]) if paper else ()
    paper_cols = [c for c in (paper["columns"] if paper else []) if c not in keys]
    measured_cols: list[str] = []
    for row in measured:
        measured_cols += [k for k in row if k not in measured_cols]
    split = [k for k in keys if k not in match and k in measured_cols]
    for k in measured_cols:
        if k not in keys and k in match:
            keys.append(k)
    extra_keys = [k for k in measured_cols if k not in keys and k not in paper_cols and _is_key(k, measured)]
    keys += extra_keys
    only_measured = [c for c in measured_cols if c not in keys and c not in paper_cols]
    header: list[str] = []
    layout: list[tuple[str, str]] = []
    for k in keys:
        if k in split:
            header += [f"{k} (paper)", f"{k} (measured)"]
            layout += [("paper", k), ("measured", k)]
        else:
            header.append(k)
            layout.append(("key", k))
    for col in paper_cols:
        header.append(f"{col} (paper)")
        layout.append(("paper", col))
        if any(col in r for r in measured):
            header.append(f"{col} (measured)")
            layout.append(("measured", col))
    for col in only_measured:
        header.append(f"{col} (measured)")
        layout.append(("measured", col))

    def line(paper_row: dict | None, measured_row: dict | None) -> list:
        out = []
        for source, col in layout:
            if source == "key":
                value = (measured_row or {}).get(col) if paper_row is None or col not in paper_row else paper_row[col]
                out.append(value if value is not None or measured_row is None else measured_row.get(col))
            elif source == "paper":
                out.append(None if paper_row is None else paper_row.get(col))
            else:
                out.append(None if measured_row is None else measured_row.get(col))
        return out

    paper_rows = list(paper["rows"]) if paper else []
    beside: list[set[int]] = [set() for _ in paper_rows]  # per paper row, the measured rows beside it
    for i, m in enumerate(measured):
        candidates = [j for j, p in enumerate(paper_rows) if match and _matches(p, m, match)]
        own = [k for k in split if k in m]
        if own and candidates:
            agree = [j for j in candidates if all(_norm(paper_rows[j].get(k)) == _norm(m[k]) for k in own)]
            candidates = agree or candidates[:1]
        for j in candidates:
            beside[j].add(i)

    table_rows: list[list] = []
    used: set[int] = set()
    for j, paper_row in enumerate(paper_rows):
        partners = sorted(beside[j])
        if not partners:
            table_rows.append(line(paper_row, None))
        for i in partners:
            used.add(i)
            table_rows.append(line(paper_row, measured[i]))
    table_rows += [line(None, m) for i, m in enumerate(measured) if i not in used]
    first = [row[0] for row in table_rows] if keys else []
    if first and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in first):
        table_rows.sort(key=lambda row: row[0])  # stable: paper row, then its measured partners
    return header, table_rows


def _is_key(column: str, rows: list[dict[str, Any]]) -> bool:
    """A measured column that names its row (text or boolean) rather than reports a number."""
    values = [r[column] for r in rows if column in r and r[column] is not None]
    return bool(values) and all(isinstance(v, (str, bool)) for v in values)


def _as_result(item: Any) -> tuple[Result, str | None]:
    from .run import load_result

    if isinstance(item, Result):
        return item, item.name
    if isinstance(item, (str, Path)) and (Path(item).is_dir() or str(item).endswith(".json")):
        result = load_result(item)
        return result, result.name
    if isinstance(item, str):
        return Result(metrics={}, rows=[]), item
    raise TypeError(f"show(): expected a repro.Result, a results.json path or a reproduction name, got {item!r}")


def render(item: Result | str | Path) -> str:
    """The Markdown for one result (or, given a reproduction or paper key, the paper's numbers alone)."""
    result, name = _as_result(item)
    reproduction = REPRODUCTIONS.get(name) if name else None
    key = reproduction.paper_key if reproduction is not None else name
    paper = paper_numbers.table_dict(key)
    title = reproduction.title if reproduction is not None else (paper["caption"].split(":")[0] if paper else name)
    parts = [f"### {title}"]
    if paper:
        parts.append(f"*Paper: {paper['caption']}*")
    if result.params:
        shown = ", ".join(f"{k}={v!r}" for k, v in result.params.items() if k != "output_dir")
        parts.append(f"Parameters: {shown}")
    if (paper and paper["rows"]) or result.rows:
        header, rows = comparison_rows(paper, result.rows)
        parts.append(markdown_table(header, rows))
    if result.metrics:
        parts.append(markdown_table(["metric", "measured"], [[k, v] for k, v in result.metrics.items()]))
    claims = paper["claims"] if paper else []
    if claims:
        parts.append("The paper states:\n" + "\n".join(f"- {c}" for c in claims))
    notes = list(paper["notes"] if paper else []) + list(result.notes)
    if notes:
        parts.append("Notes:\n" + "\n".join(f"- {n}" for n in notes))
    if result.wall_seconds is not None:
        env = result.environment or {}
        memory = "" if result.peak_memory_mb is None else f", peak memory {result.peak_memory_mb:.0f} MB"
        parts.append(f"Ran in {result.wall_seconds:.1f} s on {env.get('device', '?')} "
                     f"({env.get('device_name', '?')}){memory}.")
    return "\n\n".join(parts) + "\n"


def show(*items: Result | str | Path, display: bool = True) -> Markdown:
    """Markdown tables with the paper's numbers beside the measured ones, for each result, results.json path
    or reproduction name given. Displays them (rendered in Jupyter, printed elsewhere) unless
    ``display=False``; returns the text."""
    text = "\n".join(render(item) for item in items)
    if not display:
        return Markdown(text)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown as IPythonMarkdown
        from IPython.display import display as ipython_display
    except ImportError:
        get_ipython = None  # noqa: N806
    if get_ipython is not None and get_ipython() is not None:
        ipython_display(IPythonMarkdown(text))
    else:
        print(text)
    return _Shown(text)


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def notebook_figure(figure: Figure) -> Figure:
    """``figure`` made to show as a PNG when it is a cell's value (pyplot-free figures otherwise show as text)."""
    if not hasattr(figure, "_repr_png_"):
        figure._repr_png_ = lambda: _png(figure)
    return figure


def plot(result: Result) -> Figure | None:
    """The reproduction's figure for ``result`` (matplotlib), or None when it has none."""
    reproduction = REPRODUCTIONS.get(result.name) if result.name else None
    if reproduction is None or reproduction.plot is None:
        return None
    return notebook_figure(reproduction.plot(result))
