"""Helpers of the downstream tutorial notebooks (``notebooks/retrieval.ipynb``, ``video_qa.ipynb``,
``multiple_choice.ipynb``): the context a notebook works in, a retrieval index built and queried, and tables
of predictions.

Training and evaluation go through :mod:`allinone_lab.train.jobs` (via :mod:`.downstream`); these functions
only load and display.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..eval import EmbeddingIndex, encode_videos
from ..model import AllInOne
from ..train import jobs
from ..train.presets import PRESETS
from .run import seed_everything
from .show import Markdown, markdown_table
from .spec import Context, ParameterError, resolve_device


def context(scale: str, data_root: str | None = None, output_dir: str | Path = "results", seed: int = 0,
            device: str = "auto") -> Context:
    """The context a notebook works in (as a reproduction's ``run`` receives it), with every generator seeded."""
    if scale not in PRESETS:
        raise ParameterError(f"parameter scale={scale!r}: expected one of {list(PRESETS)}")
    seed_everything(seed)
    params = {"scale": scale, "data_root": data_root, "output_dir": str(output_dir), "seed": seed, "device": device}
    return Context(params=params, device=resolve_device(device), scale=scale, output_dir=Path(output_dir), seed=seed,
                   data_root=data_root, progress=scale != "smoke")


# Retrieval -----------------------------------------------------------------------------------------------------
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
                         "fine-tuned QA run's checkpoints/best.pt (jobs.load_model)")
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
