"""What the cloze explorer opens by default, and predictions that are always readable.

- ``load_bundle("auto")`` / ``latest_trained_run``: the most recently finished pre-training run under the
  roots (run directories written by the training loop itself, on a tiny smoke model), unfinished runs and
  fine-tuning runs ignored, runs on the built-in corpus first; None when there is none, and then an untrained
  model whose summary names the commands that make a trained one.
- ``readable_text``: a character the plotting font cannot draw is shown as its code point.
"""

import json
import os
import re
import shutil
import warnings

import pytest
import torch
from torch import nn

from allinone_lab.train.loop import train
from allinone_lab.train.presets import preset
from allinone_lab.viz import (
    TRAIN_COMMANDS,
    WordPrediction,
    finished_runs,
    latest_trained_run,
    load_bundle,
    load_corpus_clip,
    plot_cloze,
    plot_text,
    predictions_table,
    readable_text,
    run_cloze,
    search_roots,
    untrained_message,
)
from allinone_lab.viz.glyphs import drawable, text_fonts


class TinyObjective(nn.Module):
    """The smallest objective the training loop takes: a loss on the model's text embedding."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch):
        weights = self.model.text_embed.word_embeddings.weight
        loss = weights.float().pow(2).mean() * batch["x"].float().mean()
        return loss, {}


def write_run(smoke, run_dir, max_steps: int = 2, stop_after: int | None = None):
    """A pre-training run directory written by the training loop (config.json, checkpoints/last.pt)."""
    from allinone_lab.model import AllInOne

    torch.manual_seed(0)
    config = smoke.train.replace(max_steps=max_steps, checkpoint_every=max_steps, device="cpu", log_every=1)
    data = [{"x": torch.ones(1)} for _ in range(8)]
    result = train(TinyObjective(AllInOne(smoke.model)), data, config, run_dir, resolved_config=smoke.to_dict(),
                   stop_after=stop_after, progress=False)
    return result.checkpoint


@pytest.fixture(scope="module")
def smoke():
    return preset("smoke")


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory, smoke):
    """Several run directories, as the pre-training command, the main job and the learning check lay them out:

    - ``runs/cpu/pretrain`` finished, oldest;
    - ``results/table8b/runs/cpu/ratio_0.25/pretrain`` finished, on the built-in corpus;
    - ``runs/lc/roll`` finished, newest of all but on prepared data (data_root set);
    - ``runs/stopped/pretrain`` stopped after 1 of its 2 steps, newer still (unfinished);
    - ``runs/mc`` a fine-tuning run (its config records a task).
    """
    base = tmp_path_factory.mktemp("roots")
    finished = base / "runs" / "cpu" / "pretrain"
    write_run(smoke, finished)
    write_run(smoke, base / "runs" / "stopped" / "pretrain", stop_after=1)
    main_job = base / "results" / "table8b" / "runs" / "cpu" / "ratio_0.25" / "pretrain"
    prepared = base / "runs" / "lc" / "roll"
    tuned = base / "runs" / "mc"
    for copy in (main_job, prepared, tuned):
        shutil.copytree(finished, copy)
    values = json.loads((prepared / "config.json").read_text())
    (prepared / "config.json").write_text(json.dumps({**values, "data_root": str(base / "prepared")}))
    (tuned / "config.json").write_text(json.dumps({**values, "task": "mc"}))
    day = 86_400
    times = {finished: 1_700_000_000, main_job: 1_700_000_000 + day, prepared: 1_700_000_000 + 2 * day,
             tuned: 1_700_000_000 + 3 * day, base / "runs" / "stopped" / "pretrain": 1_700_000_000 + 4 * day}
    for run, when in times.items():
        os.utime(run / "checkpoints" / "last.pt", (when, when))
    return base, {"finished": finished, "main_job": main_job, "prepared": prepared}


def test_the_newest_finished_run_on_the_corpus_is_picked(runs_root):
    base, runs = runs_root
    roots = [base / "runs", base / "results"]
    found = finished_runs(roots)
    assert [r.run_dir for r in found] == [runs["prepared"], runs["main_job"], runs["finished"]]  # newest first
    assert [r.corpus for r in found] == [False, True, True]
    assert all(r.steps == 2 for r in found)
    picked = latest_trained_run(roots)
    assert picked.run_dir == runs["main_job"] and picked.checkpoint == runs["main_job"] / "checkpoints" / "last.pt"
    line = picked.describe()
    assert str(runs["main_job"]) in line and "2 steps on the built-in corpus" in line and "\n" not in line
    assert re.search(r"finished \d{4}-\d\d-\d\d \d\d:\d\d", line)
    # Only runs on prepared data: the newest of them.
    assert latest_trained_run([runs["prepared"].parent]).run_dir == runs["prepared"]
    # Unfinished and fine-tuning runs alone: nothing.
    assert latest_trained_run([base / "runs" / "stopped", base / "runs" / "mc"]) is None


def test_auto_loads_the_picked_run_with_its_own_configuration(runs_root, smoke):
    base, runs = runs_root
    other = smoke.override(**{"model.num_frames": 1})  # the untrained fallback's configuration: not used
    bundle = load_bundle("auto", experiment=other, roots=[base / "results"])
    assert bundle.trained and bundle.source == str(runs["main_job"])
    assert bundle.model.config.num_frames == smoke.model.num_frames == bundle.data.num_frames
    assert bundle.summary.startswith("trained model: ") and str(runs["main_job"]) in bundle.summary
    weights = torch.load(runs["main_job"] / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert torch.equal(bundle.model.text_embed.word_embeddings.weight,
                       weights["model.text_embed.word_embeddings.weight"])


def test_nothing_found_gives_none_and_an_untrained_model_that_says_how_to_train(tmp_path, smoke):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert latest_trained_run([empty, tmp_path / "missing"]) is None
    assert finished_runs(None) == [] and search_roots([tmp_path / "missing"]) == []
    bundle = load_bundle("auto", experiment=smoke, roots=[empty])
    assert not bundle.trained and bundle.source == "untrained"
    first = bundle.summary.splitlines()[0]
    assert first.startswith("UNTRAINED model") and "noise" in first and str(empty) in first
    for command, _ in TRAIN_COMMANDS:
        assert command in bundle.summary
    assert "papermill reproductions/table8b.ipynb out.ipynb -p ratio 0.25" in bundle.summary
    assert "python -m allinone_lab.train pretrain --preset cpu --run-dir runs/cpu" in bundle.summary
    assert any("no finished pre-training run" in n for n in bundle.notes)
    # checkpoint=None is untrained too, and says so.
    assert load_bundle(None, experiment=smoke).summary == untrained_message()
    with pytest.raises(ValueError, match="checkpoint='auto' found no finished pre-training run"):
        load_bundle("auto", roots=[empty])
    with pytest.raises(TypeError, match="roots=3"):
        latest_trained_run(3)


def test_relative_roots_are_found_from_a_subfolder_of_the_repository(runs_root, monkeypatch):
    base, runs = runs_root
    (base / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (base / "notebooks").mkdir(exist_ok=True)
    monkeypatch.chdir(base / "notebooks")  # where JupyterLab starts a notebook's kernel
    try:
        assert search_roots(["runs", "results"]) == [base / "runs", base / "results"]
        assert latest_trained_run(["runs", "results"]).run_dir == runs["main_job"]
    finally:
        (base / "pyproject.toml").unlink()


# Readable predictions ----------------------------------------------------------------------------------------
def test_display_form_of_pieces_the_font_cannot_draw():
    assert not drawable("中") and drawable("a") and drawable("é")  # DejaVu Sans has Latin-1, not CJK
    assert readable_text("中") == "U+4E2D"
    assert readable_text("##中") == "##U+4E2D"
    assert readable_text("中国") == "U+4E2D U+56FD"
    assert readable_text("a中b") == "a U+4E2D b"
    for text in ("dog", "##ing", "[MASK]", "café", "", "a b"):
        assert readable_text(text) == text
    assert plot_text("$$") == r"\$\$" and plot_text("中 $") == r"U+4E2D \$"
    assert text_fonts()  # the font files matplotlib draws with


def test_plots_and_the_table_show_cjk_predictions_readably(smoke):
    bundle = load_bundle(None, experiment=smoke)
    clip = load_corpus_clip(0, bundle.data, bundle.corpus)
    result = run_cloze(bundle.model, clip)
    first = result.predictions[0]
    result.predictions[0] = WordPrediction(first.word, [[("中", 0.5), ("$", 0.3)]] + first.candidates[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph or a mathtext error would raise here
        fig = plot_cloze(result)
        fig.canvas.draw()
    title = fig.axes[0].get_title(loc="left")
    assert title.startswith("U+4E2D") and "中" not in title
    raw, shown = predictions_table(result)[0], predictions_table(result, readable=True)[0]
    assert raw["prediction"].startswith("中") and raw["top_k"] == "中 0.50, $ 0.30"
    assert shown["prediction"].startswith("U+4E2D") and shown["top_k"] == "U+4E2D 0.50, $ 0.30"


def test_an_untrained_explorer_says_how_to_get_a_trained_model(smoke, runs_root, tmp_path):
    from allinone_lab.viz.explorer import ClozeExplorer

    base, runs = runs_root
    empty = tmp_path / "nothing"
    explorer = ClozeExplorer(load_bundle("auto", experiment=smoke, roots=[empty]), checkpoint_root=[empty])
    status = explorer.status.value
    assert explorer.error is None and "cloze-untrained" in status and "untrained model" in status
    for command, _ in TRAIN_COMMANDS:
        assert command in status
    # A CJK prediction in the table: the code point shown, the raw piece in the tooltip.
    first = explorer.result.predictions[0]
    explorer.result.predictions[0] = WordPrediction(first.word, [[("中", 0.5)]] + first.candidates[1:])
    table = explorer.predictions_html(explorer.result)
    assert "<b>U+4E2D" in table and "title='中" in table
    saved = json.loads((explorer.save(tmp_path / "saved") / "cloze.json").read_text())
    assert saved["trained"] is False
    assert saved["predictions"][0]["prediction"].startswith("中")
    assert saved["predictions"][0]["prediction_shown"].startswith("U+4E2D")
    # "auto" in the checkpoint box finds the run; the status line then no longer says untrained.
    explorer.checkpoint_root = [base / "results"]
    explorer.checkpoint.value = "auto"
    explorer.on_load_checkpoint()
    assert explorer.error is None and explorer.bundle.source == str(runs["main_job"])
    assert "cloze-untrained" not in explorer.status.value
    assert str(runs["main_job"]) in explorer._checkpoint_options()
