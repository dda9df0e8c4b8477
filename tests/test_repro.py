"""The reproduction core: parameters, runs and results.json, paper numbers beside measured ones, sweeps and
reports."""

import json
import os
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook

from allinone_lab import repro
from allinone_lab.repro import ablations, model_tables, paper, sweep
from allinone_lab.repro.__main__ import main as cli
from allinone_lab.repro.report import build_report, find_results, markdown_to_html, write_report
from allinone_lab.repro.show import comparison_rows

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake():
    """A registered reproduction keyed like Table 8b: it draws one random number (to check seeding)."""
    calls = []

    def run(params, ctx):
        calls.append(ctx)
        value = torch.rand(()).item()
        return repro.Result(metrics={"draw": value, "ratio_x2": 2 * params["ratio"]},
                            rows=[{"ratio": params["ratio"], "MC": 100 * value}], notes=["fake"])

    def plot(result):
        from matplotlib.figure import Figure

        fig = Figure()
        fig.subplots().plot([r["ratio"] for r in result.rows], [r["MC"] for r in result.rows])
        return fig

    reproduction = repro.register(repro.Reproduction(
        name="fake8b", title="Fake ratio table",
        params=(repro.Param("ratio", float, 0.25, bounds=(0.0, 1.0)), repro.Param("mode", str, "a", ("a", "b")),
                repro.Param("count", int, None), repro.Param("flag", bool, False)),
        run=run, paper_key="table8b", plot=plot))
    yield reproduction, calls
    repro.REPRODUCTIONS.pop("fake8b", None)


# Parameters ---------------------------------------------------------------------------------------------
def test_check_parameters_types_and_defaults(fake):
    values = repro.check_parameters("fake8b", ratio="0.5", count="3", flag="true", scale="smoke")
    assert values == {"scale": "smoke", "data_root": None, "output_dir": "results/fake8b", "seed": 0,
                      "device": "auto", "ratio": 0.5, "mode": "a", "count": 3, "flag": True}
    assert repro.check_parameters("fake8b", ratio=1, count=None)["ratio"] == 1.0
    assert [p.name for p in repro.COMMON_PARAMS] == ["scale", "data_root", "output_dir", "seed", "device"]


@pytest.mark.parametrize(("values", "message"), [
    ({"ratio": "abc"}, "parameter ratio='abc': expected a number in [0.0, 1.0]"),
    ({"ratio": 1.5}, "parameter ratio=1.5: expected a number in [0.0, 1.0]"),
    ({"ratio": True}, "parameter ratio=True"),
    ({"mode": "c"}, "parameter mode='c': expected one of ['a', 'b']"),
    ({"count": 2.5}, "parameter count=2.5: expected an integer or None"),
    ({"flag": "maybe"}, "parameter flag='maybe': expected true or false"),
    ({"scale": "huge"}, "parameter scale='huge': expected one of ['smoke', 'cpu', 'rehearsal', 'paper']"),
    ({"seed": None}, "parameter seed=None: expected an integer"),
    ({"device": "gpu"}, "parameter device='gpu': expected auto, cpu, cuda, cuda:N or mps"),
    ({"colour": 1}, "unknown parameter(s) ['colour']"),
])
def test_check_parameters_errors_name_parameter_value_and_expectation(fake, values, message):
    with pytest.raises(repro.ParameterError) as error:
        repro.check_parameters("fake8b", **values)
    assert message in str(error.value)
    assert str(error.value).startswith("fake8b")
    assert isinstance(error.value, ValueError)


def test_unknown_reproduction_and_bad_declarations():
    with pytest.raises(repro.ParameterError, match="unknown reproduction 'table99'.*table8b"):
        repro.check_parameters("table99")
    with pytest.raises(ValueError, match="common to all"):
        repro.Reproduction("x", "x", (repro.Param("seed", int, 1),), run=lambda p, c: None)
    with pytest.raises(ValueError, match="already registered"):
        repro.register(repro.Reproduction("table8b", "again", (), run=lambda p, c: None))
    with pytest.raises(TypeError, match="kind"):
        repro.Param("x", list, [])


def test_context_experiment_and_run_dir(tmp_path):
    ctx = repro.Context(params={}, device=torch.device("cpu"), scale="smoke", output_dir=tmp_path, seed=7)
    exp = ctx.experiment(**{"model.roll_ratio": 0.5})
    assert exp.train.seed == 7 and exp.train.device == "cpu" and exp.model.roll_ratio == 0.5
    assert exp.model.width == 64  # the smoke preset
    assert ctx.run_dir("arm").is_dir() and ctx.run_dir("arm") == tmp_path / "runs" / "smoke-seed7" / "arm"


def test_resolve_device():
    assert repro.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(repro.ParameterError, match="no CUDA device"):
            repro.resolve_device("cuda")


# Runs and results.json -----------------------------------------------------------------------------------
def test_run_reproduction_writes_results_json(fake, tmp_path):
    out = tmp_path / "out"
    result = repro.run_reproduction("fake8b", {"ratio": 0.25, "scale": "smoke", "output_dir": str(out),
                                               "device": "cpu"})
    record = json.loads((out / "results.json").read_text())
    assert set(record) == set(repro.RESULT_FIELDS)
    assert record["name"] == "fake8b" and record["params"]["ratio"] == 0.25 and record["params"]["seed"] == 0
    assert record["metrics"]["ratio_x2"] == 0.5 and record["rows"] == [{"ratio": 0.25, "MC": result.rows[0]["MC"]}]
    assert record["paper"]["key"] == "table8b" and record["paper"]["rows"][2] == {"ratio": 0.25, "LSMDC": 52.90,
                                                                                  "MSR-VTT": 76.44}
    env = record["environment"]
    assert env["device"] == "cpu" and env["cpu_count"] == os.cpu_count() and env["versions"]["torch"]
    assert env["device_name"]
    assert record["wall_seconds"] >= 0 and record["peak_memory_mb"] > 10
    assert result.path == out / "results.json" and result.name == "fake8b"
    assert [p.name for p in out.iterdir()] == ["results.json"]  # no temporary file left
    loaded = repro.load_result(out)
    assert loaded.metrics == result.metrics and loaded.params["scale"] == "smoke"


def test_same_seed_same_result_other_seed_differs(fake, tmp_path):
    def draw(seed, name):
        return repro.run_reproduction("fake8b", {"seed": seed, "output_dir": str(tmp_path / name),
                                                 "device": "cpu"}).metrics["draw"]

    assert draw(3, "a") == draw(3, "b") != draw(4, "c")


def test_smoke_runs_on_one_thread_and_restores_the_count(fake, tmp_path):
    seen = []
    inner = fake[0].run
    fake[0].run = lambda params, ctx: seen.append(torch.get_num_threads()) or inner(params, ctx)
    before = torch.get_num_threads()
    repro.run_reproduction("fake8b", {"scale": "smoke", "output_dir": str(tmp_path / "s"), "device": "cpu"})
    repro.run_reproduction("fake8b", {"scale": "cpu", "output_dir": str(tmp_path / "c"), "device": "cpu"})
    assert seen == [1, before] and torch.get_num_threads() == before


def test_list_command(capsys):
    assert cli(["list"]) == 0
    out = capsys.readouterr().out
    assert "table8b: Table 8b: ratio of rolled tokens (zero-shot) [ratio=0.25, steps=None]" in out


def test_failed_run_leaves_previous_results(fake, tmp_path):
    repro.run_reproduction("fake8b", {"output_dir": str(tmp_path), "device": "cpu"})
    before = (tmp_path / "results.json").read_bytes()

    def broken(params, ctx):
        raise RuntimeError("boom")

    fake[0].run = broken
    with pytest.raises(RuntimeError, match="boom"):
        repro.run_reproduction("fake8b", {"output_dir": str(tmp_path), "device": "cpu"})
    assert (tmp_path / "results.json").read_bytes() == before
    fake[0].run = lambda params, ctx: {"not": "a result"}
    with pytest.raises(TypeError, match="expected repro.Result"):
        repro.run_reproduction("fake8b", {"output_dir": str(tmp_path), "device": "cpu"})
    assert (tmp_path / "results.json").read_bytes() == before


def test_load_result_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        repro.load_result(tmp_path / "none.json")
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(ValueError, match="'metrics'"):
        repro.load_result(tmp_path)


# Show and paper numbers ---------------------------------------------------------------------------------
def _line(text, start):
    return next(line for line in text.splitlines() if line.startswith(start))


def test_show_puts_paper_beside_measured_for_the_same_row(fake, tmp_path, capsys):
    result = repro.run_reproduction("fake8b", {"ratio": 0.25, "output_dir": str(tmp_path), "device": "cpu"})
    text = repro.show(result)
    assert capsys.readouterr().out.strip() == text.strip()  # printed outside Jupyter
    header = _line(text, "| ratio")
    assert header == "| ratio | LSMDC (paper) | MSR-VTT (paper) | MC (measured) |"
    measured = f"{result.rows[0]['MC']:.4g}"
    assert _line(text, "| 0.25 |") == f"| 0.25 | 52.9 | 76.44 | {measured} |"
    assert _line(text, "| 0.5 |") == "| 0.5 | 50.47 | 74.89 | - |"
    rows = [line for line in text.splitlines() if line.startswith("| 0")]
    assert [r.split("|")[1].strip() for r in rows] == ["0.0", "0.1", "0.25", "0.5", "0.75"]
    assert "fake" in text and "Excessive ratio" in text
    quiet = repro.show(result, display=False)
    assert quiet == text and capsys.readouterr().out == ""
    assert quiet._repr_markdown_() == text


def test_show_unmatched_rows_and_paper_only(capsys):
    paper8a = paper.table_dict("table8a")
    header, rows = comparison_rows(paper8a, [{"method": "Token Rolling", "zero-shot MC": 40.0},
                                             {"method": "Something new", "zero-shot MC": 30.0}])
    assert header == ["method", "PF (paper)", "DF (paper)", "LSMDC (paper)", "MSR-VTT (paper)",
                      "zero-shot MC (measured)"]
    assert rows[5] == ["Token Rolling", 3, 3, 52.75, 75.42, 40.0]
    assert rows[6] == ["Something new", None, None, None, None, 30.0]
    assert rows[0][-1] is None
    text = repro.show("table14", display=False)
    assert "| MSR | 1000 | 33.16 | 12.05 | 1.51 |" in text
    fig = repro.show("fig4", display=False)
    assert "The paper states:" in fig and "centr" in fig
    capsys.readouterr()


def test_show_matches_on_match_keys_and_case_and_frame_notation():
    table6 = paper.table_dict("table6")
    _, rows = comparison_rows(table6, [{"init": "Scratch", "steps": 40, "zero-shot MC": 25.0}])
    matched = [r for r in rows if r[-1] == 25.0]
    # once, beside the paper's first (200K) scratch row, with the steps it ran beside the paper's
    assert [r[:3] for r in matched] == [["scratch", 200_000, 40]]
    table4 = paper.table_dict("table4")
    _, rows = comparison_rows(table4, [{"dataset": "LSMDC", "method": "All-in-one-B", "frames": "3 × 3",
                                        "Accuracy": 50.0}])
    assert ["LSMDC", "All-in-one-B", "3x3", 83.5, 50.0] in rows


EXPECTED_KEYS = [f"table{i}" for i in (1, 2, 3, 4, 5, 6, 7, 9, 10, 12, 13, 14)] + [
    "table8a", "table8b", "table11a", "table11b", "fig3", "fig4", "fig6", "fig7", "fig9"]


def test_paper_has_every_table_and_figure_and_rows_are_complete():
    assert sorted(paper.PAPER) == sorted(EXPECTED_KEYS)
    for key, table in paper.PAPER.items():
        assert table.caption.split(":")[0].lower().replace("figure ", "fig").replace("table ", "table") in key
        for row in table.rows:
            assert set(table.keys) <= set(row), (key, row)
            assert set(row) <= set(table.keys) | set(table.columns), (key, row)
        identities = [tuple(row[k] for k in table.keys) for row in table.rows]
        assert len(set(identities)) == len(identities), f"{key}: two rows share their keys"
        assert table.rows or table.claims, key
    with pytest.raises(KeyError, match="known keys"):
        paper.table("table15")


def test_paper_spot_values():
    rows = {r["model"]: r for r in paper.table("table1").rows}
    assert [rows[m]["Throughput (videos/s)"] for m in ("All-in-one-Ti", "All-in-one-S", "All-in-one-B")] == [745, 285, 89]
    assert {r["ratio"]: r["LSMDC"] for r in paper.table("table8b").rows} == {0.0: 47.21, 0.1: 48.52, 0.25: 52.90,
                                                                             0.5: 50.47, 0.75: 44.55}
    assert [r["Similarity Ranking (ms)"] for r in paper.table("table14").rows] == [1.51, 143.25]
    t3 = [r for r in paper.table("table3").rows if r["dataset"] == "DiDeMo" and r["frames"] == "3x3"]
    assert t3 == [{"dataset": "DiDeMo", "method": "All-in-one-B", "frames": "3x3", "R@1": 32.7, "R@5": 61.4,
                   "R@10": 73.5, "MdR": 3.0, "PT Data": None}]
    t10 = {(r["SPE"], r["MTE"]): r["MSR-VTT"] for r in paper.table("table10").rows}
    assert t10 == {(False, False): 74.4, (True, False): 76.1, (True, True): 78.2}


def test_every_registered_reproduction_has_paper_numbers_and_valid_defaults():
    for name, reproduction in repro.REPRODUCTIONS.items():
        if name.startswith("fake"):
            continue
        assert reproduction.paper_key in paper.PAPER, name
        assert repro.check_parameters(name)["output_dir"] == f"results/{name}"


def test_plot_returns_a_figure_that_renders(fake, tmp_path):
    result = repro.run_reproduction("fake8b", {"output_dir": str(tmp_path), "device": "cpu"})
    fig = repro.plot(result)
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    assert repro.plot(repro.Result(metrics={}, rows=[], name="table8b")) is None


# Reproductions that need no training --------------------------------------------------------------------
def test_fig3_rolling_costs_one_over_s_without_text(tmp_path):
    result = repro.run_reproduction("fig3", repro.check_parameters(
        "fig3", scale="smoke", frames="1,3,8", measure_time=False, output_dir=str(tmp_path), device="cpu"))
    rows = {r["frames"]: r for r in result.rows}
    for s in (1, 3, 8):
        assert rows[s]["rolling / flatten attention cost (no text)"] == pytest.approx(1 / s)
        assert rows[s]["rolling / flatten attention cost"] >= 1 / s  # the text is seen by every frame
    assert rows[3]["rolling / flatten attention cost"] == pytest.approx(3 * 237**2 / (40 + 3 * 197) ** 2)
    assert "rolling / flatten wall time" not in rows[3]


def test_list_parameters_errors():
    with pytest.raises(repro.ParameterError, match="parameter frames='1,x': 'x' is not int"):
        model_tables.parse_list("frames", "1,x", int)
    with pytest.raises(repro.ParameterError, match="not one of"):
        model_tables.parse_list("variants", "tiny,huge", allowed=("tiny", "small"))


def test_fig9_refuses_more_frames_than_the_corpus_stores(tmp_path):
    with pytest.raises(repro.ParameterError, match=r"frames='1,64': \[64\] outside 1..8"):
        repro.run_reproduction("fig9", {"scale": "smoke", "frames": "1,64", "output_dir": str(tmp_path),
                                        "device": "cpu"})


def test_table6_without_weights_reports_not_available_and_downloads_nothing(tmp_path, monkeypatch):
    import timm

    def no_download(*args, **kwargs):
        raise AssertionError("timm.create_model must not be called")

    monkeypatch.setattr(timm, "create_model", no_download)
    result = repro.run_reproduction("table6", {"scale": "smoke", "init": "imagenet21k",
                                               "output_dir": str(tmp_path), "device": "cpu"})
    assert result.rows == [{"init": "imagenet21k", "status": "not available: set init_file_21k to a local timm file"}]
    assert any("never downloaded" in n and "vit_tiny_patch16_224.augreg_in21k" in n for n in result.notes)


def test_ablation_arms_map_to_model_settings():
    arms = ablations.table8a_arms(3)
    assert arms["time_average"].name == arms["single_frame"].name  # one pre-training, two evaluations
    assert arms["time_average"].eval_overrides == {"model.num_frames": 3}
    assert arms["single_frame"].overrides == {"model.num_frames": 1, "model.temporal": "none"}
    assert [ablations.first_block(p, 12) for p in (1, 3, 6)] == [1, 3, 6]
    assert [ablations.first_block(p, 6) for p in (1, 3, 6)] == [1, 2, 3]


# Sweep ------------------------------------------------------------------------------------------------
def _fake_notebook(path: Path) -> Path:
    """A notebook that writes a results.json from its parameters (no model and no torch: it runs in a second)."""
    params = new_code_cell("scale = 'cpu'\nratio = 0.25\nmode = 'a'\noutput_dir = 'results/x'\nseed = 0")
    params.metadata["tags"] = ["parameters"]
    body = new_code_cell(
        "import json\n"
        "if ratio > 0.9:\n    raise ValueError('ratio too large')\n"
        "json.dump({'name': 'table8b', 'params': {'scale': scale, 'ratio': ratio, 'mode': mode, "
        "'output_dir': output_dir}, 'metrics': {'score': 10 * ratio + (mode == 'b')}, "
        "'rows': [{'ratio': ratio, 'score': 10 * ratio}], 'wall_seconds': 0.1, 'peak_memory_mb': 1.0}, "
        "open(output_dir + '/results.json', 'w'))")
    nb = new_notebook(cells=[params, body], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                     "language": "python"}})
    nbformat.write(nb, str(path))
    return path


def test_grid_parsing_and_points():
    grid = sweep.parse_grid(["ratio=0,0.125", "mode=a,b"])
    assert grid == {"ratio": [0, 0.125], "mode": ["a", "b"]}
    points = sweep.grid_points(grid)
    assert points == [{"ratio": 0, "mode": "a"}, {"ratio": 0, "mode": "b"}, {"ratio": 0.125, "mode": "a"},
                      {"ratio": 0.125, "mode": "b"}]
    assert sweep.point_name({"ratio": 0.125, "mode": "b/c"}) == "ratio=0.125__mode=b_c"
    assert sweep.parse_params(["scale=smoke", "flag=true", "x=None"]) == {"scale": "smoke", "flag": True, "x": None}
    for bad, message in ((["ratio"], "expected name=value"), (["ratio=1,1"], "repeated"), (["ratio="], "one or more"),
                         (["a=1", "a=2"], "given twice")):
        with pytest.raises(sweep.SweepError, match=message):
            sweep.parse_grid(bad)


def test_sweep_refuses_unknown_parameters_before_running(tmp_path, capsys):
    notebook = _fake_notebook(tmp_path / "fake.ipynb")
    out = tmp_path / "sweep"
    with pytest.raises(sweep.SweepError, match=r"does not declare parameter\(s\) \['colour'\]"):
        sweep.run_sweep(notebook, {"ratio": [0.1]}, out, {"colour": "red"})
    with pytest.raises(sweep.SweepError, match="output_dir is set by the sweep"):
        sweep.run_sweep(notebook, {"ratio": [0.1]}, out, {"output_dir": "x"})
    with pytest.raises(sweep.SweepError, match="both as --grid and -p"):
        sweep.run_sweep(notebook, {"ratio": [0.1]}, out, {"ratio": 0.2})
    assert not out.exists()
    assert cli(["sweep", str(notebook), "--grid", "depth=1,2", "--out", str(out)]) == 2
    assert "does not declare parameter(s) ['depth']" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_sweep_runs_points_skips_done_ones_and_gathers(tmp_path):
    notebook = _fake_notebook(tmp_path / "fake.ipynb")
    out = tmp_path / "sweep"
    done = out / "ratio=0.5__mode=a"
    done.mkdir(parents=True)
    (done / "results.json").write_text(json.dumps({"name": "table8b", "params": {"ratio": 0.5, "mode": "a"},
                                                   "metrics": {"score": -1.0}, "rows": []}))
    result = sweep.run_sweep(notebook, {"ratio": [0.25, 0.5], "mode": ["a", "b"]}, out, {"scale": "smoke"},
                             jobs=2, log=lambda line: None)
    status = {r.name: r.status for r in result.runs}
    assert status == {"ratio=0.25__mode=a": "done", "ratio=0.25__mode=b": "done", "ratio=0.5__mode=a": "skipped",
                      "ratio=0.5__mode=b": "done"}
    assert json.loads((done / "results.json").read_text())["metrics"]["score"] == -1.0  # not rerun
    record = json.loads((out / "ratio=0.25__mode=b" / "results.json").read_text())
    assert record["params"] == {"scale": "smoke", "ratio": 0.25, "mode": "b",
                                "output_dir": str((out / "ratio=0.25__mode=b").resolve())}
    assert (out / "ratio=0.25__mode=b" / "fake.ipynb").is_file()  # the executed notebook
    table = result.table.read_text()
    assert "| ratio | mode | score | wall_seconds | peak_memory_mb |" in table
    sweep_part, paper_part = table.split("Paper: ")
    lines = [line for line in sweep_part.splitlines() if line.startswith(("| 0.25", "| 0.5"))]
    assert [line.split("|")[3].strip() for line in lines] == ["2.5", "3.5", "-1.0", "6.0"]
    assert "| 0.25 | 52.9 | 76.44 |" in paper_part  # the paper's Table 8b below
    assert result.plot.read_bytes()[:4] == b"\x89PNG"
    # A failing point is reported and the others are kept.
    failed = sweep.run_sweep(notebook, {"ratio": [0.25, 0.95]}, out, {"mode": "a", "scale": "smoke"}, jobs=1,
                             log=lambda line: None)
    assert [r.status for r in failed.runs] == ["done", "failed"]
    assert "ratio too large" in failed.failed[0].error and (out / "failed.txt").is_file()


# Report -----------------------------------------------------------------------------------------------
def test_report_compiles_every_result_with_paper_numbers(fake, tmp_path):
    root = tmp_path / "results"
    for ratio in (0.1, 0.5):
        repro.run_reproduction("fake8b", {"ratio": ratio, "output_dir": str(root / f"r{ratio}"), "device": "cpu"})
        fig = repro.plot(repro.load_result(root / f"r{ratio}"))
        fig.savefig(root / f"r{ratio}" / "plot.png")
    repro.run_reproduction("fig3", {"scale": "smoke", "frames": "2", "measure_time": False,
                                    "output_dir": str(root / "fig3"), "device": "cpu"})
    (root / "fig3" / "runs").mkdir()
    (root / "fig3" / "runs" / "results.json").write_text(json.dumps({"config": {}, "metrics": {"x": 1}}))
    assert len(find_results(root)) == 3  # the training job's results.json is not a reproduction's
    text, results = build_report(root)
    assert "| reproduction | runs | scales | wall time (s) |" in text
    assert text.index("## fig3") < text.index("## fake8b")  # paper figures first, in order
    assert "Run `fig3`" in text  # a single run is rendered whole
    # Two runs of one reproduction share one table, each measured row beside its paper row.
    assert _line(text, "| ratio | run |").startswith("| ratio | run | LSMDC (paper) | MSR-VTT (paper) | MC (measured)")
    assert _line(text, "| 0.5 |").startswith("| 0.5 | r0.5 | 50.47 | 74.89 |")
    assert _line(text, "| 0.25 |").startswith("| 0.25 | - | 52.9 | 76.44 | - |")
    assert _line(text, "| run | ratio | scale |").startswith("| run | ratio | scale | wall_seconds")
    assert _line(text, "| r0.1 | 0.1 | cpu |")
    assert "![plot](r0.1/plot.png)" in text
    md, html = write_report(root, tmp_path / "report.md", tmp_path / "report.html")
    assert "![plot](results/r0.1/plot.png)" in md.read_text()
    page = html.read_text()
    assert page.count("<table>") >= 4 and "data:image/png;base64," in page and "<td>50.47</td>" in page
    assert cli(["report", str(root), "--out", str(tmp_path / "r2.md")]) == 0
    assert (tmp_path / "r2.md").read_text() == md.read_text()
    assert cli(["report", str(tmp_path / "missing")]) == 2


def test_markdown_to_html_subset():
    page = markdown_to_html("# Title\n\nSome *text* with `code`.\n\n| a | b |\n| --- | --- |\n| 1 | x\\|y |\n\n- one\n- two\n")
    assert "<h1>Title</h1>" in page and "<em>text</em>" in page and "<code>code</code>" in page
    assert "<th>a</th><th>b</th>" in page and "<td>x|y</td>" in page and "<li>two</li>" in page


def test_table11b_alternating_arm_is_measured_beside_the_paper_rows_and_noted(tmp_path):
    result = repro.run_reproduction("table11b", repro.check_parameters(
        "table11b", scale="smoke", selection="alternating", steps=2, output_dir=str(tmp_path), device="cpu"))
    assert [row["method"] for row in result.rows] == ["Alternating rows and columns"]
    assert any("not in the paper" in note for note in result.notes)
    header, rows = comparison_rows(paper.table_dict("table11b"), result.rows)
    ours = [row for row in rows if row[0] == "Alternating rows and columns"]
    assert len(ours) == 1 and ours[0][header.index("LSMDC (paper)")] is None  # no paper number to sit beside
    assert len(rows) == 4  # the paper's three rows, then the measured-only row
