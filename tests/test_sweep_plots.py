"""A sweep's plot and table show the columns that carry the table's claim: labelled in words, chance marked,
the paper's numbers beside ours, the spread over seeds; and the report shows the plot."""

from __future__ import annotations

import json

from allinone_lab.repro import paper as paper_numbers
from allinone_lab.repro import sweep
from allinone_lab.repro.report import build_report, markdown_to_html
from allinone_lab.repro.spec import REPRODUCTIONS


def _write(out, ratio, seed, mc_temporal, scale="cpu"):
    point = out / f"ratio={ratio}__seed={seed}"
    point.mkdir(parents=True)
    row = {"ratio": ratio, "zero-shot MC": 40.0 + seed, "zero-shot MC (temporal)": mc_temporal,
           "cloze (temporal)": 2 * mc_temporal - 50, "VTM": 80.0, "PT time (s)": 200.0, "steps": 400}
    record = {"name": "table8b", "title": "t", "params": {"scale": scale, "ratio": ratio, "seed": seed,
                                                          "output_dir": str(point)},
              "metrics": {"mc_accuracy": 40.0 + seed, "mc_chance": 20.0, "mc_temporal_accuracy": mc_temporal,
                          "mc_temporal_chance": 25.0, "cloze_chance_temporal": 27.0,
                          "pretrain_seconds": 200.0 + seed},
              "rows": [row], "notes": [], "wall_seconds": 250.0}
    (point / "results.json").write_text(json.dumps(record))


def _sweep(tmp_path):
    out = tmp_path / "sweep"
    for seed, (flat, rolled) in enumerate([(24.0, 80.0), (27.0, 86.0), (25.5, 83.0)]):
        _write(out, 0.0, seed, flat)
        _write(out, 0.25, seed, rolled)
    return out


def test_the_claim_figure_draws_the_headline_columns_with_chance_the_paper_and_every_seed(tmp_path):
    out = _sweep(tmp_path)
    records = sweep.collect(out)
    figure = sweep.claim_figure(records, ["ratio", "seed"], REPRODUCTIONS["table8b"].headline,
                                paper_numbers.table_dict("table8b"))
    titles = [ax.get_title() for ax in figure.axes]
    # Only the columns the results hold; none of the constants or timings; labelled in words.
    assert titles == ["multiple choice: answer vs its direction-only distractors (%)",
                      "cloze: masked temporal words predicted (%)", "zero-shot multiple choice, all options (%)"]
    temporal = figure.axes[0]
    mean_line = temporal.lines[0]
    assert list(mean_line.get_xdata()) == [0.0, 0.25]
    assert list(mean_line.get_ydata()) == [25.5, 83.0]  # the mean over the three seeds
    assert "mean of 3 seeds" in mean_line.get_label()
    assert len(temporal.collections[0].get_offsets()) == 6  # every seed's point
    chance = [line for line in temporal.lines if line.get_label() == "chance"]
    assert chance and chance[0].get_ydata()[0] == 25.0
    assert [line.get_label() for line in figure.axes[2].lines if line.get_label() == "chance"]
    cloze = [line.get_ydata()[0] for line in figure.axes[1].lines if line.get_label().startswith("chance")]
    assert cloze == [27.0]  # the cloze's chance: always the most frequent temporal word of the test items
    assert "chance: the most frequent temporal word" in [line.get_label() for line in figure.axes[1].lines]


def test_the_paper_column_is_drawn_beside_ours_where_the_paper_measured_it(tmp_path):
    out = tmp_path / "sweep"
    for ratio, measured in ((0.0, 40.0), (0.25, 45.0)):
        point = out / f"ratio={ratio}"
        point.mkdir(parents=True)
        (point / "results.json").write_text(json.dumps({
            "name": "table8b", "params": {"scale": "rehearsal", "ratio": ratio}, "metrics": {},
            "rows": [{"ratio": ratio, "LSMDC": measured, "MSR-VTT": measured + 1}]}))
    figure = sweep.claim_figure(sweep.collect(out), ["ratio"], REPRODUCTIONS["table8b"].headline,
                                paper_numbers.table_dict("table8b"))
    lsmdc = figure.axes[0]
    assert lsmdc.get_title() == "zero-shot multiple choice on LSMDC (%)"
    paper = [line for line in lsmdc.lines if line.get_label() == "the paper"][0]
    assert list(paper.get_xdata()) == [0.0, 0.1, 0.25, 0.5, 0.75]
    assert list(paper.get_ydata()) == [47.21, 48.52, 52.9, 50.47, 44.55]
    assert [line.get_ydata()[0] for line in lsmdc.lines if line.get_label() == "chance"] == [20.0]


def test_gather_writes_the_spread_over_seeds_and_the_report_shows_the_plot(tmp_path):
    out = _sweep(tmp_path)
    table, plot = sweep.gather(out, ["ratio", "seed"])
    text = table.read_text()
    spread = text.split("Over the seeds (mean, min, max):")[1]
    assert "| ratio | seeds | zero-shot MC (temporal) (mean) | zero-shot MC (temporal) (min) |" in spread
    assert "| 0.25 | 3 | 83.0 | 80.0 | 86.0 |" in spread
    assert plot.read_bytes()[:4] == b"\x89PNG"
    report, _ = build_report(out)
    assert "![sweep of table8b](plot.png)" in report
    assert "data:image/png;base64," in markdown_to_html(report, base=out)


def test_without_headline_columns_constants_and_timings_are_not_plotted():
    header = ["ratio", "score", "mc_chance", "pretrain_seconds", "wall_seconds", "peak_memory_mb"]
    rows = [[0.1, 1.0, 20.0, 5.0, 9.0, 100.0], [0.5, 2.0, 20.0, 6.0, 10.0, 120.0]]
    figure = sweep.sweep_figure(header, rows, ["ratio"])
    assert [ax.get_title() for ax in figure.axes if ax.get_visible()] == ["score"]
