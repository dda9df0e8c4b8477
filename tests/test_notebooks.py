"""Every notebook in notebooks/ and reproductions/: committed clean (no outputs, a parameters cell of
literals, thin cells), in the reproduction shape where it reproduces a table or figure, and executable
through papermill: the tutorials at scale="smoke", every reproduction at scale="rehearsal" (the paper's
code path on release-format fixtures, writing results.json in the paper's columns)."""

import ast
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import papermill
import pytest

from allinone_lab import repro
from allinone_lab.data import build_corpus
from allinone_lab.data.fixtures import build_release_root
from allinone_lab.train.presets import preset

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REPRODUCTIONS = sorted((ROOT / "reproductions").glob("*.ipynb"))
NOTEBOOKS = TUTORIALS + REPRODUCTIONS
MAX_CELL_LINES = 15  # notebooks stay thin: anything longer belongs in the library


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def _read(path: Path):
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    return nb


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _parameters(cell) -> dict:
    """The parameters cell's assignments; each must be ``name = <literal>``."""
    values = {}
    for node in ast.parse(cell.source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), (
            f"parameters cell: only 'name = literal' lines, found {ast.unparse(node)!r}")
        try:
            values[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            pytest.fail(f"parameters cell: {ast.unparse(node)!r} is not a literal")
    return values


def test_notebooks_exist():
    assert {p.stem for p in TUTORIALS} >= {"quickstart", "pretraining"}
    assert {p.stem for p in REPRODUCTIONS} >= {"table1", "table14", "fig3", "fig7", "fig9", "table6", "table8a",
                                               "table8b", "table9", "table10", "table11a", "table11b"}


def test_every_registered_reproduction_has_a_notebook():
    missing = sorted(set(repro.REPRODUCTIONS) - {p.stem for p in REPRODUCTIONS})
    assert not missing, f"reproductions without a notebook in reproductions/: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_hygiene(path):
    nb = _read(path)
    cells = _code_cells(nb)
    assert cells, f"{path.name}: no code cells"
    for cell in cells:
        assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: committed with outputs"
        assert len(cell.source.splitlines()) <= MAX_CELL_LINES or "parameters" in cell.metadata.get("tags", []), (
            f"{path.name}: a code cell of {len(cell.source.splitlines())} lines; move it into the library")
    assert "parameters" in cells[0].metadata.get("tags", []), f"{path.name}: first code cell not tagged parameters"
    assert all("parameters" not in c.metadata.get("tags", []) for c in cells[1:])
    params = _parameters(cells[0])
    assert {"scale", "output_dir"} <= set(params), f"{path.name}: scale and output_dir must be parameters"
    assert params["scale"] in ("smoke", "cpu", "rehearsal", "paper")
    unread = sorted(set(params) - set(papermill.inspect_notebook(str(path))))
    assert not unread, f"{path.name}: papermill cannot read parameter(s) {unread}; simplify their comments"


@pytest.mark.parametrize("path", REPRODUCTIONS, ids=_id)
def test_reproduction_notebook_shape(path):
    name = path.stem
    assert name in repro.REPRODUCTIONS, f"{path.name}: no registered reproduction named {name!r}"
    reproduction = repro.REPRODUCTIONS[name]
    cells = _code_cells(_read(path))
    assert len(cells) == 4, f"{path.name}: expected 4 code cells (parameters, check, run, show), got {len(cells)}"
    params = _parameters(cells[0])
    assert params == reproduction.defaults(), f"{path.name}: parameters differ from the registered defaults"
    assert f'repro.check_parameters("{name}"' in cells[1].source
    for p in reproduction.all_params:
        assert f"{p.name}={p.name}" in cells[1].source, f"{path.name}: {p.name} is not passed to check_parameters"
    assert cells[2].source.strip() == f'result = repro.run_reproduction("{name}", params)'
    lines = cells[3].source.strip().splitlines()
    assert lines[0] == "repro.show(result)"
    assert lines[1:] == (["repro.plot(result)"] if reproduction.plot is not None else [])


def scale_of(path: Path) -> str:
    """The scale a notebook is executed at here."""
    return "rehearsal" if path.parent.name == "reproductions" else "smoke"


def _workers() -> int:
    """Notebooks executed at once: each kernel is its own process and smoke runs use one torch thread."""
    try:
        return max(1, min(2, len(os.sched_getaffinity(0))))
    except AttributeError:
        return 1


KERNEL_START_SECONDS = 180  # two kernels starting side by side on a loaded 2-core machine can take over a minute


def _kernel_did_not_start(error: Exception) -> bool:
    """A kernel that never answered (before any cell ran) is the machine, not the notebook: start it once more."""
    message = str(error)
    return isinstance(error, RuntimeError) and message.startswith(("Kernel didn't respond", "Kernel died before"))


@pytest.fixture(scope="session")
def executed(request, tmp_path_factory):
    """Execute every selected notebook once (``_workers()`` at a time), tutorials at scale="smoke" and
    reproductions at scale="rehearsal", with an output_dir in a temporary directory; maps each path to (run
    directory, seconds, exception or None)."""
    root = tmp_path_factory.mktemp("executed")
    build_corpus(preset("smoke").corpus)  # once, before kernels that would otherwise build it side by side
    build_release_root()
    selected = [item.callspec.params["path"] for item in request.session.items
                if item.originalname == "test_executes"]

    def run(path: Path):
        where = root / f"{path.parent.name}-{path.stem}"
        where.mkdir()
        start = time.perf_counter()
        error = None
        for _attempt in range(2):
            try:
                papermill.execute_notebook(str(path), str(where / path.name), kernel_name="python3",
                                           progress_bar=False, start_timeout=KERNEL_START_SECONDS,
                                           parameters={"scale": scale_of(path), "output_dir": str(where / "out")},
                                           cwd=str(where))
                error = None
                break
            except Exception as exc:  # reported by the notebook's own test
                error = exc
                if not _kernel_did_not_start(exc):
                    break
        return path, (where, time.perf_counter() - start, error)

    workers = _workers()
    threads = os.environ.get("OMP_NUM_THREADS")
    if workers > 1:  # kernels side by side: one compute thread each, so they do not oversubscribe the cores
        os.environ["OMP_NUM_THREADS"] = "1"
    try:
        with ThreadPoolExecutor(workers) as pool:
            return dict(pool.map(run, selected))
    finally:
        if threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = threads


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_executes(path, executed):
    where, seconds, error = executed[path]
    if error is not None:
        raise error
    out = where / "out"
    notebook = nbformat.read(str(where / path.name), as_version=4)
    errors = [o for c in _code_cells(notebook) for o in c.outputs if o.output_type == "error"]
    assert not errors
    if path.parent.name == "reproductions":
        record = json.loads((out / repro.RESULTS_FILE).read_text())
        assert set(record) == set(repro.RESULT_FIELDS)
        assert record["name"] == path.stem
        assert record["params"]["scale"] == "rehearsal" and record["params"]["output_dir"] == str(out)
        assert record["rows"] or record["metrics"], f"{path.name}: measured nothing"
        assert record["paper"] is not None and record["wall_seconds"] > 0
    elif path.stem == "pretraining":
        metrics = json.loads((out / "results.json").read_text())
        assert {"cloze_acc_all", "mc_accuracy"} <= set(metrics)
    elif path.stem == "quickstart":
        summary = json.loads((out / "summary.json").read_text())
        assert summary["gflops_counted"] == pytest.approx(summary["gflops_analytic"])
        assert summary["video_shape"][:2] == [1, 3]
    print(f"{_id(path)}: {seconds:.1f} s")


@pytest.mark.parametrize("path", TUTORIALS, ids=_id)
def test_tutorial_refuses_undeclared_parameters_first(path):
    cells = _code_cells(_read(path))
    assert "repro.check_notebook_parameters()" in cells[1].source, (
        f"{path.name}: the cell after the parameters must call repro.check_notebook_parameters()")


@pytest.mark.slow
@pytest.mark.parametrize("path", [ROOT / "notebooks" / "quickstart.ipynb", ROOT / "reproductions" / "table8b.ipynb"],
                         ids=_id)
def test_an_undeclared_parameter_stops_the_notebook_before_any_work(path, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(papermill.PapermillExecutionError) as caught:
        papermill.execute_notebook(str(path), str(tmp_path / path.name), kernel_name="python3", progress_bar=False,
                                   start_timeout=KERNEL_START_SECONDS, cwd=str(tmp_path),
                                   parameters={"scale": "smoke", "rato": 0.25, "output_dir": str(out)})
    error = caught.value
    assert error.ename == "ParameterError" and "unknown parameter(s) ['rato']" in error.evalue
    assert "'scale'" in error.evalue and "'output_dir'" in error.evalue  # the declared ones are named
    # the third cell run (parameters, papermill's injected cell, then the check): nothing else ran
    assert error.exec_count == 3 and not out.exists()
