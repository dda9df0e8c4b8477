"""The steps of the downstream tutorial notebooks (``notebooks/retrieval.ipynb``, ``video_qa.ipynb``,
``multiple_choice.ipynb``): a context for a scale, the fine-tuned model of a run, dual-stream against re-ranked
retrieval, a retrieval index built and queried, and tables of predictions.

Training and evaluation go through :mod:`allinone_lab.train.jobs` (via :mod:`.downstream`); these functions
only load, compare and display.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..eval import EmbeddingIndex, encode_videos
from ..io import atomic_write_json
from ..model import AllInOne
from ..train import jobs
from ..train.presets import PRESETS, Experiment
from .run import seed_everything
from .show import Markdown, markdown_table, notebook_figure
from .spec import Context, ParameterError, resolve_device

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def context(scale: str, data_root: str | None = None, output_dir: str | Path = "results", seed: int = 0,
            device: str = "auto") -> Context:
    """The context a notebook works in (as a reproduction's ``run`` receives it), with every generator seeded."""
    if scale not in PRESETS:
        raise ParameterError(f"parameter scale={scale!r}: expected one of {list(PRESETS)}")
    seed_everything(seed)
    params = {"scale": scale, "data_root": data_root, "output_dir": str(output_dir), "seed": seed, "device": device}
    return Context(params=params, device=resolve_device(device), scale=scale, output_dir=Path(output_dir), seed=seed,
                   data_root=data_root, progress=scale != "smoke")


def selected_model(ctx: Context, run: str) -> tuple[AllInOne, Experiment]:
    """The checkpoint a fine-tuning run in ``output_dir/runs/<scale>/<run>`` selected on validation
    (``checkpoints/best.pt``), with the experiment it was trained as (QA: its answer head), in eval mode."""
    run_dir = ctx.run_dir(run)
    results = run_dir / "results.json"
    if not results.is_file():
        raise FileNotFoundError(f"{results} does not exist: fine-tune the run {run!r} first")
    exp = Experiment.from_dict(json.loads(results.read_text())["config"])
    model = jobs.load_model(exp, run_dir / "checkpoints" / "best.pt").to(ctx.device).eval()
    return model, exp


def metrics_table(metrics: dict[str, Any], skip: tuple[str, ...] = ("score",)) -> Markdown:
    """A two-column table of ``metrics`` (numbers only)."""
    rows = [[k, v] for k, v in metrics.items() if k not in skip and isinstance(v, (int, float))]
    return Markdown(markdown_table(["metric", "value"], rows))


def validation_figure(ctx: Context, run: str) -> Figure:
    """The validation score at each evaluation of a fine-tuning run (``validation.jsonl``) and the training
    loss (``metrics.jsonl``); the selected step is marked."""
    from matplotlib.figure import Figure

    run_dir = ctx.run_dir(run)

    def rows(name: str) -> list[dict[str, Any]]:
        path = run_dir / name
        return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []

    history, logs = rows("validation.jsonl"), rows("metrics.jsonl")
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    loss_ax, val_ax = fig.subplots(1, 2)
    loss_ax.plot([e["step"] for e in logs], [e["loss"] for e in logs])
    loss_ax.set(xlabel="step", title="training loss")
    if history:
        val_ax.plot([h["step"] for h in history], [h["score"] for h in history], marker="o")
        best = max(history, key=lambda h: h["score"])
        val_ax.axvline(best["step"], color="grey", linestyle=":", label=f"selected (step {best['step']})")
        val_ax.legend(fontsize=8)
    val_ax.set(xlabel="step", title="validation score (%)")
    for ax in (loss_ax, val_ax):
        ax.grid(alpha=0.3)
    return notebook_figure(fig)


# Retrieval -----------------------------------------------------------------------------------------------------
def scoring_comparison(model: AllInOne, ds, rerank_top_k: int) -> tuple[Markdown, dict[str, dict[str, float]]]:
    """Retrieval on ``ds`` scored dual-stream and, with ``rerank_top_k`` > 0, re-ranked by VTM: a table and the
    metrics of each scoring."""
    scorings = {"dual-stream": jobs.retrieval_evaluation(model, ds)}
    if rerank_top_k > 0:
        scorings[f"re-rank top {rerank_top_k}"] = jobs.retrieval_evaluation(model, ds, rerank_top_k=rerank_top_k)
    columns = [f"{d}_{m}" for d in ("t2v", "v2t") for m in ("R@1", "R@5", "R@10", "MdR")]
    table = markdown_table(["scoring", *columns], [[name, *(m[c] for c in columns)] for name, m in scorings.items()])
    return Markdown(table), scorings


def build_video_index(model: AllInOne, ds, path: str | Path, batch_size: int = 32) -> EmbeddingIndex:
    """Encode each unique video of a retrieval dataset once (``ds.videos`` order; ids are positions in it) and
    save the index at ``path`` (safetensors, atomically)."""
    videos = jobs.IndexSubset(ds, ds.video_rows())
    index = EmbeddingIndex(encode_videos(model, jobs.loader(videos, batch_size)))
    index.save(path)
    return index


@torch.no_grad()
def query_index(model: AllInOne, index: EmbeddingIndex, ds, text: str, k: int = 5) -> Markdown:
    """The top ``k`` videos of ``index`` for the query ``text`` (encoded once by the text stream), with their
    cosine similarity and the captions the dataset gives them (✓ where a caption is the query itself)."""
    model.eval()
    encoded = ds.text.encode(text)
    device = next(model.parameters()).device
    query = model.encode_text(encoded.input_ids[None].to(device), encoded.attention_mask[None].to(device)).float().cpu()
    scores, ids = index.search(query, k)
    captions: dict[int, list[str]] = {}
    for row, video in enumerate(ds.text_to_video.tolist()):
        captions.setdefault(video, []).append(str(ds.table.get(row, "caption")))
    rows = []
    for rank, (score, video) in enumerate(zip(scores[0].tolist(), ids[0].tolist(), strict=True), 1):
        said = captions.get(video, [])
        rows.append([rank, Path(str(ds.videos[video])).name, score, " / ".join(said), text in said])
    return Markdown(markdown_table(["rank", "video", "cosine", "caption(s)", "exact"], rows))


# QA and multiple choice ---------------------------------------------------------------------------------------
def comparison_table(named: dict[str, dict[str, Any]], skip: tuple[str, ...] = ("score",)) -> Markdown:
    """One row per metric, one column per named set of metrics (e.g. zero-shot against fine-tuned)."""
    keys: list[str] = []
    for metrics in named.values():
        keys += [k for k, v in metrics.items() if k not in keys and k not in skip and isinstance(v, (int, float))]
    rows = [[k, *(metrics.get(k) for metrics in named.values())] for k in keys]
    return Markdown(markdown_table(["metric", *named], rows))


def predictions(model: AllInOne, ds, count: int = 4) -> Markdown:
    """Predictions on the first ``count`` test items: :func:`qa_predictions` for open-ended QA,
    :func:`mc_predictions` for multiple choice (VCR included)."""
    from ..data.datasets import MultipleChoiceDataset, OpenQADataset

    if isinstance(ds, OpenQADataset):
        return qa_predictions(model, ds, count)
    if isinstance(ds, MultipleChoiceDataset):
        return mc_predictions(model, ds, count)
    raise TypeError(f"predictions: expected an open-ended QA or multiple-choice dataset, got {type(ds).__name__}")


@torch.no_grad()
def qa_predictions(model: AllInOne, ds, count: int = 8) -> Markdown:
    """The first ``count`` items of an open-ended QA dataset: question, answer, the model's answer."""
    if model.qa_head is None:
        raise ValueError("qa_predictions: the model has no answer head (ModelConfig.num_answers=0); load the "
                         "fine-tuned QA run with selected_model()")
    model.eval()
    device = next(model.parameters()).device
    batch = next(iter(jobs.loader(jobs.IndexSubset(ds, np.arange(min(count, len(ds)))), count)))
    out = model(batch["video"].to(device), batch["input_ids"].to(device), batch["attention_mask"].to(device))
    predicted = model.qa_head(out.pooled).argmax(1).cpu().tolist()
    rows = []
    for i, index in enumerate(batch["index"].tolist()):
        truth = str(ds.table.get(index, "answer"))
        rows.append([str(ds.table.get(index, "question")), truth, ds.answers[predicted[i]], ds.answers[predicted[i]] == truth])
    return Markdown(markdown_table(["question", "answer", "predicted", "right"], rows))


@torch.no_grad()
def mc_predictions(model: AllInOne, ds, count: int = 3) -> Markdown:
    """The first ``count`` multiple-choice items: every option with its score, the answer (✓ in ``answer``) and
    the model's choice (the highest score)."""
    model.eval()
    device = next(model.parameters()).device
    batch = next(iter(jobs.loader(jobs.IndexSubset(ds, np.arange(min(count, len(ds)))), count)))
    scores = model.choice_scores(batch["video"].to(device), batch["input_ids"].to(device),
                                 batch["attention_mask"].to(device)).float().cpu()
    rows = []
    for i, index in enumerate(batch["index"].tolist()):
        options = ds.table.get(index, "options")
        chosen = int(scores[i].argmax())
        for j, option in enumerate(options):
            rows.append([index, j, str(option), float(scores[i, j]), j == int(batch["answer"][i]), j == chosen])
    return Markdown(markdown_table(["item", "option", "text", "score", "answer", "chosen"], rows))


def write_results(output_dir: str | Path, values: dict[str, Any]) -> Path:
    """``values`` as ``output_dir/results.json``, atomically."""
    path = Path(output_dir) / "results.json"
    atomic_write_json(values, path)
    return path
