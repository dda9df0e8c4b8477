"""Compile every ``results.json`` under a directory into one page: per reproduction, the paper's numbers
beside the measured ones, the parameters, time, memory and machine (Markdown, optionally HTML)."""

from __future__ import annotations

import base64
import html
import json
import os
import re
from pathlib import Path

from ..io import atomic_write_bytes
from . import paper as paper_numbers
from .run import RESULTS_FILE, load_result
from .show import comparison_rows, markdown_table, render
from .spec import REPRODUCTIONS, Result
from .sweep import PLOT_FILE

PAPER_TITLE = "All in One: Exploring Unified Video-Language Pre-training"


def find_results(root: str | os.PathLike) -> list[Path]:
    """Every ``results.json`` under ``root`` (recursively), sorted by path. Only files a reproduction
    wrote (they name the reproduction and have metrics and rows) are kept."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"results directory {str(root)!r} does not exist")
    found = []
    for path in sorted(root.rglob(RESULTS_FILE)):
        try:
            record = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            continue
        if isinstance(record, dict) and {"name", "metrics", "rows"} <= set(record):
            found.append(path)
    return found


def build_report(root: str | os.PathLike) -> tuple[str, list[tuple[Path, Result]]]:
    """The Markdown page for every result under ``root``, grouped by reproduction (in registry order, then
    by name), with each result's figure (``plot.png`` beside it, if any) linked."""
    root = Path(root)
    results = [(path, load_result(path)) for path in find_results(root)]
    groups: dict[str, list[tuple[Path, Result]]] = {}
    for path, result in results:
        groups.setdefault(result.name or "?", []).append((path, result))
    lines = [f"# Reproduction report: {PAPER_TITLE}", "",
             f"{len(results)} result(s) from `{root}` covering {len(groups)} reproduction(s).", ""]
    if groups:
        lines += ["| reproduction | runs | scales | wall time (s) |", "| --- | --- | --- | --- |"]
        for name, items in sorted(groups.items(), key=lambda kv: _order(kv[0])):
            scales = sorted({str(r.params.get("scale", "?")) for _, r in items})
            wall = sum(r.wall_seconds or 0.0 for _, r in items)
            lines.append(f"| {name} | {len(items)} | {', '.join(scales)} | {wall:.1f} |")
        lines.append("")
    for name, items in sorted(groups.items(), key=lambda kv: _order(kv[0])):
        lines += section(name, items, root)
    return "\n".join(lines) + "\n", results


def _differing(items: list[tuple[Path, Result]]) -> list[str]:
    names = list(dict.fromkeys(k for _, r in items for k in r.params if k != "output_dir"))
    return [n for n in names if len({repr(r.params.get(n)) for _, r in items}) > 1]


def section(name: str, items: list[tuple[Path, Result]], root: Path) -> list[str]:
    """One reproduction's part of the report: with one run, :func:`render`; with several (a sweep), one
    comparison table with a ``run`` column, then a table of the runs (differing parameters, time, memory,
    machine), one of their metrics, and the sweep's plot where the runs are the points of a sweep."""
    if len(items) == 1:
        path, result = items[0]
        lines = [f"## {name}", "", f"Run `{_rel(path, root)}`", "", render(result)]
        return lines + _images(path, root)
    reproduction = REPRODUCTIONS.get(name)
    paper = paper_numbers.table_dict(reproduction.paper_key if reproduction else name)
    title = reproduction.title if reproduction else name
    lines = [f"## {name}", "", f"### {title}", ""]
    if paper:
        lines += [f"*Paper: {paper['caption']}*", ""]
    rows = [{**row, "run": _rel(path, root)} for path, result in items for row in result.rows]
    if rows or (paper and paper["rows"]):
        header, table = comparison_rows(paper, rows)
        lines += [markdown_table(header, table), ""]
    varied = _differing(items)
    lines += [markdown_table(["run", *varied, "scale", "wall_seconds", "peak_memory_mb", "device"],
                             [[_rel(p, root), *[r.params.get(v) for v in varied], r.params.get("scale"),
                               r.wall_seconds, r.peak_memory_mb, (r.environment or {}).get("device_name")]
                              for p, r in items]), ""]
    metrics = list(dict.fromkeys(k for _, r in items for k in r.metrics))
    if metrics:
        lines += [markdown_table(["run", *metrics], [[_rel(p, root), *[r.metrics.get(m) for m in metrics]]
                                                     for p, r in items]), ""]
    if paper and paper["claims"]:
        lines += ["The paper states:", *[f"- {c}" for c in paper["claims"]], ""]
    notes = list(dict.fromkeys([*(paper["notes"] if paper else []), *(n for _, r in items for n in r.notes)]))
    if notes:
        lines += ["Notes:", *[f"- {n}" for n in notes], ""]
    for sweep in sorted({path.parent.parent for path, _ in items}):  # a sweep's plot of all its points
        plot = sweep / PLOT_FILE
        if plot.is_file() and (sweep == root or root in sweep.parents):
            lines += [f"![sweep of {name}]({plot.relative_to(root)})", ""]
    for path, _ in items:
        lines += _images(path, root)
    return lines


def _rel(path: Path, root: Path) -> str:
    return str(path.parent.relative_to(root)) if path.parent != root else "."


def _images(path: Path, root: Path) -> list[str]:
    lines = []
    for image in sorted(path.parent.glob("*.png")):
        lines += [f"![{image.stem}]({image.relative_to(root)})", ""]
    return lines


def _order(name: str) -> tuple:
    match = re.match(r"(table|fig)(\d+)([a-z]?)$", name)
    if match:
        return (0 if match[1] == "table" else 1, int(match[2]), match[3])
    return (2, 0, name)


def write_report(root: str | os.PathLike, out: str | os.PathLike | None = None,
                 html_out: str | os.PathLike | None = None) -> tuple[Path, Path | None]:
    """Write the Markdown report (default ``root/report.md``) and, if asked, a self-contained HTML page
    with the figures embedded. Returns the paths written."""
    root = Path(root)
    text, _ = build_report(root)
    md_path = Path(out) if out is not None else root / "report.md"
    text = _relink(text, root, md_path.parent)
    atomic_write_bytes(md_path, lambda h: h.write(text.encode()))
    html_path = None
    if html_out is not None:
        html_path = Path(html_out)
        page = markdown_to_html(text, base=md_path.parent)
        atomic_write_bytes(html_path, lambda h: h.write(page.encode()))
    return md_path, html_path


def _relink(text: str, root: Path, where: Path) -> str:
    """Image links relative to the report's own directory."""

    def fix(match: re.Match) -> str:
        target = (root / match[2]).resolve()
        try:
            rel = os.path.relpath(target, where.resolve())
        except ValueError:
            rel = str(target)
        return f"![{match[1]}]({rel})"

    return re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", fix, text)


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"(?<![\w*])\*([^*]+)\*(?![\w*])", r"<em>\1</em>", text)
    return text


def markdown_to_html(text: str, base: Path | None = None) -> str:
    """The subset of Markdown the report uses (headings, tables, lists, paragraphs, images) as one HTML page;
    images are embedded as base64 PNG so the page stands alone."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        heading = re.match(r"(#{1,6}) (.*)", line)
        if heading:
            level = len(heading[1])
            out.append(f"<h{level}>{_inline(heading[2])}</h{level}>")
            i += 1
            continue
        image = re.fullmatch(r"!\[([^\]]*)\]\(([^)]+)\)", line.strip())
        if image:
            path = Path(image[2]) if base is None else base / image[2]
            if path.is_file():
                data = base64.b64encode(path.read_bytes()).decode()
                out.append(f'<p><img alt="{html.escape(image[1])}" src="data:image/png;base64,{data}"></p>')
            else:
                out.append(f"<p>[missing figure {html.escape(image[2])}]</p>")
            i += 1
            continue
        if line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            cells = [_split_row(r) for r in block if not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", r.strip())]
            head, body = cells[0], cells[1:]
            rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body)
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head)
                       + f"</tr></thead><tbody>{rows}</tbody></table>")
            continue
        if line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        paragraph = []
        while i < len(lines) and lines[i].strip() and not lines[i].startswith(("#", "|", "- ", "![")):
            paragraph.append(lines[i])
            i += 1
        if paragraph:
            out.append("<p>" + _inline(" ".join(paragraph)) + "</p>")
        else:
            out.append("<p>" + _inline(line) + "</p>")
            i += 1
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f2f2f2}"
             "img{max-width:100%}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(PAPER_TITLE)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n")


def _split_row(row: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", row.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]
