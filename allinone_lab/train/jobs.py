"""Jobs that compose the model, the data and the loop: pre-train, fine-tune for retrieval, evaluate.

The command line (``python -m allinone_lab.train``) and the notebooks call these same functions. Each
writes into its run directory: ``config.json``, ``environment.json``, ``metrics.jsonl``,
``checkpoints/last.pt`` and, when it evaluates, ``results.json`` (atomically).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..data import collate, corpus_dataset
from ..eval import evaluate_cloze, evaluate_multiple_choice, evaluate_open_ended_qa, evaluate_retrieval
from ..io import atomic_save, atomic_write_json
from ..model import AllInOne, build_model
from .distributed import is_main
from .loop import train
from .objectives import MultipleChoice, OpenEndedQA, Pretraining, Retrieval
from .presets import Experiment
from .state import load_checkpoint


def dataset(exp: Experiment, task: str, split: str, train: bool | None = None):
    """A dataset of the experiment's data: the built-in corpus unless ``exp.data_root`` is set."""
    if exp.data_root is not None:
        raise NotImplementedError(
            "prepared datasets are loaded with allinone_lab.data (see docs/data.md); the jobs run on the "
            "built-in corpus (data_root=None) for now"
        )
    return corpus_dataset(task, split, exp.data, exp.corpus, train=train, seed=exp.train.seed)


def loader(ds, batch_size: int, workers: int = 0) -> DataLoader:
    return DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate)


def load_model(exp: Experiment, checkpoint: str | Path | None = None, strict: bool = True) -> AllInOne:
    """The experiment's model, with weights from a training checkpoint (``checkpoints/last.pt``) if given.

    ``strict=False`` lets a pre-trained checkpoint initialise a model with new task heads (reported)."""
    torch.manual_seed(exp.train.seed)
    model = build_model(exp.model)
    if checkpoint is not None:
        state = load_checkpoint(checkpoint)["model"]
        state = {k.removeprefix("model."): v for k, v in state.items()}
        if not strict:
            ours = model.state_dict()
            state = {k: v for k, v in state.items() if k in ours and ours[k].shape == v.shape}
        missing, _ = model.load_state_dict(state, strict=strict)
        if missing:
            print(f"kept at initialisation (not in {checkpoint}): {missing}")
    return model


def pretrain(exp: Experiment, run_dir: str | Path, stop_after: int | None = None, progress: bool = True,
             eval_every: int | None = None) -> Path:
    """Pre-train with VTM + MLM (+ VTC) on the pairs split; returns the checkpoint path.

    With ``eval_every``, the model is also evaluated (cloze, zero-shot multiple choice) on the test split
    every ``eval_every`` steps and the numbers appended to ``run_dir/curve.jsonl``: learning curves only,
    never used to pick a checkpoint.
    """
    model = load_model(exp)
    objective = Pretraining(model, exp.train.loss_weights, exp.data.vtm_neg_prob)
    pairs = dataset(exp, "pairs", "train", train=True)
    run_dir = Path(run_dir)
    curve_path = run_dir / "curve.jsonl"
    done = 0
    while True:
        chunk = eval_every
        if stop_after is not None:
            chunk = stop_after - done if not eval_every else min(eval_every, stop_after - done)
        before = _last_step(run_dir)
        result = train(objective, pairs, exp.train, run_dir, collate_fn=collate, resolved_config=exp.to_dict(),
                       stop_after=chunk, progress=progress)
        done += result.step - before
        if eval_every and result.step > before and is_main():
            curve = {"step": result.step, **evaluate_pretrained(exp, model)}
            model.train()
            with curve_path.open("a") as handle:
                handle.write(json.dumps(curve) + "\n")
        finished = result.step >= exp.train.max_steps or (stop_after is not None and done >= stop_after)
        if not eval_every or finished or result.step == before:
            return result.checkpoint


def _last_step(run_dir: Path) -> int:
    path = run_dir / "checkpoints" / "last.pt"
    return int(load_checkpoint(path)["step"]) if path.is_file() else 0


def multiple_choice_accuracy(model: AllInOne, ds, batch_size: int = 16) -> dict[str, float]:
    """Zero-shot multiple choice by the VTM match logit: accuracy over all options, and over the answer
    and its temporal-only distractors when the annotation lists them (``temporal_distractors``)."""
    result = evaluate_multiple_choice(model, (_with_temporal_subset(b, ds) for b in loader(ds, batch_size)))
    out = {"mc_accuracy": result["accuracy"], "mc_chance": result["chance"]}
    if "subset_accuracy" in result:
        out["mc_temporal_accuracy"] = result["subset_accuracy"]
    return out


def _with_temporal_subset(batch: dict[str, Any], ds) -> dict[str, Any]:
    """Add ``subset (B, K)``: the answer and its temporal-only distractors, when the annotation lists them."""
    if "temporal_distractors" not in ds.table:
        return batch
    subset = torch.zeros(batch["input_ids"].shape[:2], dtype=torch.bool)
    for row, index in enumerate(batch["index"].tolist()):
        distractors = ds.table.get(index, "temporal_distractors")
        if not distractors:
            return batch  # an item without temporal distractors: this batch has no subset
        subset[row, [int(batch["answer"][row])] + [int(t) for t in distractors]] = True
    batch["subset"] = subset
    return batch


def evaluate_pretrained(exp: Experiment, model: AllInOne, batch_size: int = 32) -> dict[str, float]:
    """Cloze accuracy (temporal and static words) and zero-shot multiple choice on the test split."""
    results: dict[str, float] = {}
    cloze = dataset(exp, "cloze", "test", train=False)
    results.update(evaluate_cloze(model, (_with_kind(b, cloze) for b in loader(cloze, batch_size))))
    results.update(multiple_choice_accuracy(model, dataset(exp, "mc", "test", train=False), batch_size // 4 or 1))
    return results


def _with_kind(batch: dict[str, Any], ds) -> dict[str, Any]:
    """Add each item's ``kind`` (direction, colour, shape, ...) from the annotation, when it has one."""
    if "kind" in ds.table:
        batch["kind"] = [str(ds.table.get(int(i), "kind")) for i in batch["index"]]
    return batch


def finetune_retrieval(exp: Experiment, model: AllInOne, run_dir: str | Path, steps: int,
                       progress: bool = True) -> dict[str, float]:
    """Fine-tune with VTC + VTM on the retrieval split, then evaluate dual-stream on the test split."""
    cfg = exp.train.replace(max_steps=steps, checkpoint_every=max(1, steps), log_every=max(1, min(25, steps)),
                            warmup_ratio=0.1)
    train(Retrieval(model), dataset(exp, "retrieval", "train", train=True), cfg, run_dir, collate_fn=collate,
          resolved_config=exp.to_dict(), progress=progress)
    test = dataset(exp, "retrieval", "test", train=False)
    videos = loader(test, 32)
    metrics = evaluate_retrieval(model, ({"video": b["video"]} for b in videos), loader(test, 64),
                                 torch.as_tensor(test.text_to_video))
    metrics["random_R@1"] = 100.0 / test.num_videos
    return metrics


def run_experiment(exp: Experiment, run_dir: str | Path, retrieval_steps: int = 0, progress: bool = True) -> dict:
    """Pre-train, evaluate cloze and zero-shot multiple choice, optionally fine-tune retrieval, and write
    ``results.json``. Resumes a stopped run in ``run_dir``."""
    run_dir = Path(run_dir)
    start = time.perf_counter()
    checkpoint = pretrain(exp, run_dir / "pretrain", progress=progress)
    model = load_model(exp, checkpoint)
    results: dict[str, Any] = {"pretrain_seconds": round(time.perf_counter() - start, 1)}
    results.update(evaluate_pretrained(exp, model))
    if retrieval_steps:
        results.update(finetune_retrieval(exp, model, run_dir / "retrieval", retrieval_steps, progress))
    results["wall_seconds"] = round(time.perf_counter() - start, 1)
    if is_main():
        atomic_write_json({"config": exp.to_dict(), "metrics": results}, run_dir / "results.json")
    return results


class IndexSubset(Dataset):
    """The items ``indices`` of ``dataset`` (epochs forwarded, so that randomness stays per item)."""

    def __init__(self, dataset, indices: np.ndarray) -> None:
        self.dataset, self.indices = dataset, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.dataset[int(self.indices[index])]

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


FINETUNE_TASKS = {"retrieval": "retrieval", "mc": "mc", "qa": "qa"}


def validate(task: str, model: AllInOne, ds, indices: np.ndarray) -> dict[str, float]:
    """The selection metric of ``task`` on the validation items: R@1 (text to video), MC or QA accuracy."""
    subset = IndexSubset(ds, indices)
    if task == "retrieval":
        names = [ds.table.get(int(i), "video") for i in indices]
        _, text_to_video = np.unique(np.asarray(names, dtype=object).astype(str), return_inverse=True)
        first = {v: j for j, v in reversed(list(enumerate(text_to_video.tolist())))}
        videos = IndexSubset(ds, indices[[first[v] for v in range(len(first))]])
        metrics = evaluate_retrieval(model, loader(videos, 32), loader(subset, 64), torch.as_tensor(text_to_video))
        return {"score": metrics["t2v_R@1"], **metrics}
    if task == "mc":
        metrics = evaluate_multiple_choice(model, loader(subset, 8))
    else:
        metrics = evaluate_open_ended_qa(model, loader(subset, 32))
    return {"score": metrics["accuracy"], **metrics}


def finetune(exp: Experiment, task: str, run_dir: str | Path, steps: int, init: str | Path | None = None,
             eval_every: int | None = None, val_fraction: float = 0.1, progress: bool = True) -> dict[str, Any]:
    """Fine-tune for ``task`` (retrieval | mc | qa), selecting the checkpoint on a validation split held
    out of the training split (never on test), then evaluate the selected model on the test split.

    Writes ``validation.jsonl``, ``checkpoints/best.pt`` and ``results.json`` into ``run_dir``; a stopped
    run resumes.
    """
    if task not in FINETUNE_TASKS:
        raise ValueError(f"task={task!r}: expected one of {list(FINETUNE_TASKS)}")
    run_dir = Path(run_dir)
    train_ds = dataset(exp, task, "train", train=True)
    val_ds = dataset(exp, task, "train", train=False)
    if task == "qa":
        exp = exp.override(**{"model.num_answers": len(train_ds.answers)})
    model = load_model(exp, init, strict=False)
    objective = {"retrieval": Retrieval, "mc": MultipleChoice, "qa": OpenEndedQA}[task](model)
    order = np.random.default_rng(exp.train.seed).permutation(len(train_ds))
    held_out = max(1, int(len(order) * val_fraction))
    val_idx, train_idx = np.sort(order[:held_out]), np.sort(order[held_out:])
    cfg = exp.train.replace(max_steps=steps)
    eval_every = eval_every or max(1, steps // 4)
    best_path = run_dir / "checkpoints" / "best.pt"
    history_path = run_dir / "validation.jsonl"
    history = [json.loads(x) for x in history_path.read_text().splitlines()] if history_path.exists() else []
    step = history[-1]["step"] if history else 0
    while step < steps:
        result = train(objective, IndexSubset(train_ds, train_idx), cfg, run_dir, collate_fn=collate,
                       resolved_config={**exp.to_dict(), "task": task, "init": str(init)},
                       stop_after=min(eval_every, steps - step), progress=progress)
        step = result.step
        scores = validate(task, model, val_ds, val_idx)
        best_so_far = max((h["score"] for h in history), default=float("-inf"))
        history.append({"step": step, **scores})
        if is_main():
            if scores["score"] > best_so_far:
                atomic_save({"model": model.state_dict(), "step": step, "score": scores["score"]}, best_path)
            with history_path.open("a") as handle:
                handle.write(json.dumps(history[-1]) + "\n")
    best = load_checkpoint(best_path)
    model.load_state_dict(best["model"])
    test_ds = dataset(exp, task, "test", train=False)  # QA: the training answers; others count wrong
    test = validate(task, model, test_ds, np.arange(len(test_ds)))
    results = {"task": task, "selected_step": best["step"], "validation": best["score"], "test": test}
    if is_main():
        atomic_write_json({"config": exp.to_dict(), "metrics": results}, run_dir / "results.json")
    return results
