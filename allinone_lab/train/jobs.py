"""Jobs that compose the model, the data and the loop: pre-train, fine-tune, evaluate.

The command line (``python -m allinone_lab.train``) and the notebooks call these same functions. Each
writes into its run directory: ``config.json``, ``environment.json``, ``metrics.jsonl``,
``checkpoints/last.pt`` and, when it evaluates, ``results.json`` (atomically).

Data: the built-in corpus when ``Experiment.data_root`` is None, else a dataset prepared by
``python -m allinone_lab.data.prepare`` (its ``manifest.json`` names it). The jobs ask for the splits
``train``, ``val`` and ``test``; the registry (:mod:`allinone_lab.data.registry`, ``job_splits``; here
:data:`DEFAULT_SPLITS`) maps them to each dataset's own split names (override with
``splits={"train": "train_7k"}``).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..data import collate, corpus_dataset
from ..data.registry import DATASETS, SERVED_BY
from ..data.roots import dataset_root, find_datasets, read_manifest, single_dataset
from ..eval import (
    encode_sharded,
    encode_texts,
    encode_videos,
    evaluate_cloze,
    evaluate_multiple_choice,
    evaluate_open_ended_qa,
    evaluate_retrieval_sharded,
    extract_features,
    linear_probe,
    rerank_with_vtm,
    retrieval_metrics,
)
from ..io import atomic_save, atomic_write_json
from ..model import AllInOne, build_model
from .distributed import init_from_env, is_main, world_size
from .distributed import rank as get_rank
from .loop import train
from .objectives import MultipleChoice, OpenEndedQA, Pretraining, Retrieval
from .presets import Experiment
from .rundir import claim
from .state import load_checkpoint

# Data: the built-in corpus or a prepared dataset ----------------------------------------------------------
JOB_SPLITS = ("train", "val", "test")

# The jobs' splits -> each prepared dataset's split names: the registry's job split maps (see docs/data.md).
DEFAULT_SPLITS: dict[str, dict[str, str]] = {name: spec.job_splits for name, spec in DATASETS.items()}

# The paper's zero-shot multiple-choice benchmarks for pre-trained models (its ablation metric, Tables 6-11).
ZERO_SHOT_MC: tuple[str, ...] = ("lsmdc-mc", "msrvtt-mc")


class MissingSplitError(ValueError):
    """The data has no split of that name for the jobs (e.g. no ``val``: it is then held out of ``train``)."""


def split_map(name: str, splits: dict[str, str] | None = None) -> dict[str, str]:
    """The jobs' split names -> dataset ``name``'s split names, ``splits`` overriding the defaults."""
    defaults = DATASETS[name].job_splits if name in DATASETS else {}
    mapping = {**defaults, **(splits or {})}
    unknown = sorted(set(mapping) - set(JOB_SPLITS))
    if unknown:
        raise ValueError(f"splits: unknown job split(s) {unknown}; expected keys among {list(JOB_SPLITS)}")
    return mapping


def dataset(exp: Experiment, task: str, split: str, train: bool | None = None, subtask: str | None = None,
            splits: dict[str, str] | None = None, paint_masks: bool = True, name: str | None = None):
    """A dataset of the experiment's data for ``task`` (pairs | retrieval | mc | qa | cloze | vcr |
    classification) and the job split ``split`` (train | val | test).

    The built-in corpus when ``exp.data_root`` is None; else the prepared dataset ``name`` under
    ``exp.data_root`` (:func:`~allinone_lab.data.roots.find_datasets`: the root itself or one of its
    sub-directories), or the root's only dataset when ``name`` is None. Pre-training pairs with
    ``exp.data.pretrain_datasets`` set come from :func:`pretraining_pairs` instead.
    ``subtask`` picks TGIF-QA's action | transition | frameqa (frameqa is the default for ``qa``) and VCR's
    qa (Q->A, the default) | qar (QA->R). ``paint_masks=False`` (VCR only) gives the plain images, without
    the referenced people painted. ``train`` (default: ``split == "train"``) turns on random frames and
    crops. Raises :class:`MissingSplitError` when the data has no such split.
    """
    if split not in JOB_SPLITS:
        raise ValueError(f"split={split!r}: expected one of {list(JOB_SPLITS)}")
    _check_paint_masks(task, paint_masks)
    train = (split == "train") if train is None else train
    if exp.data_root is None:
        if name is not None and name != "corpus":
            raise ValueError(f"dataset {name!r} needs data_root: a directory holding it, prepared by "
                             f"`python -m allinone_lab.data.prepare {name} --out ROOT/{name} ...`")
        return _corpus(exp, task, split, train)
    if name is None:
        name, root = single_dataset(exp.data_root)
    else:
        root = dataset_root(exp.data_root, name)
    return _prepared(exp, task, split, train, subtask, splits, paint_masks, root)


def _check_paint_masks(task: str, paint_masks: bool) -> None:
    if not isinstance(paint_masks, bool):
        raise ValueError(f"paint_masks={paint_masks!r}: expected True or False")
    if not paint_masks and task != "vcr":
        raise ValueError(f"paint_masks=False: only task 'vcr' paints masks (on its images); task {task!r} has none")


def _corpus(exp: Experiment, task: str, split: str, train: bool, root: Path | None = None):
    from ..data.corpus import CORPUS_TASKS

    if split not in ("train", "test"):
        raise MissingSplitError(f"the built-in corpus has no {split!r} split (it has train and test)")
    corpus_task = corpus_stand_in(task)
    if corpus_task not in CORPUS_TASKS:
        raise ValueError(f"the built-in corpus has no {task!r} items; it offers {list(CORPUS_TASKS)}")
    if root is not None:  # a corpus directory given as data_root: check its files, naming what is missing
        _need_file(root / "annotations" / f"{corpus_task}_{split}.jsonl", root, "corpus")
        listing = {"qa": "answers.json", "classification": "classes.json"}.get(corpus_task)
        if listing is not None:
            _need_file(root / "annotations" / listing, root, "corpus")
    return corpus_dataset(corpus_task, split, exp.data, exp.corpus, train=train, seed=exp.train.seed, root=root)


def corpus_stand_in(task: str) -> str:
    """The built-in corpus's items for a job task: VCR uses the corpus's own ``vcr`` items where it has them,
    else its multiple-choice items (a video, not an image with painted people: a stand-in, reported as such)."""
    from ..data.corpus import CORPUS_TASKS

    if task == "vcr" and "vcr" not in CORPUS_TASKS:
        return "mc"
    return task


def _need_file(path: Path, root: Path, name: str) -> Path:
    if not path.is_file():
        command = ("python -m allinone_lab.data.prepare corpus --cache-dir DIR ..." if name == "corpus"
                   else f"python -m allinone_lab.data.prepare {name} --out {root} ...")
        raise FileNotFoundError(
            f"{name} at data_root {str(root)!r}: {str(path)!r} not found; expected the file that "
            f"`{command}` writes (docs/data.md)"
        )
    return path


def _prepared(exp: Experiment, task: str, split: str, train: bool, subtask: str | None,
              splits: dict[str, str] | None, paint_masks: bool, root: Path):
    from ..data.datasets import PairsDataset
    from ..data.prepare import build_dataset

    name = read_manifest(root)["dataset"]
    if name == "corpus":
        return _corpus(exp, task, split, train, root)
    spec = DATASETS[name]
    if task not in SERVED_BY:
        raise ValueError(f"task={task!r}: prepared datasets serve {list(SERVED_BY)}")
    # TGIF-QA and VCR hold several kinds of item (the registry's subtasks); the others take none.
    subtask = spec.subtask_for(task, subtask, where=f"{name} at {root}")
    served = spec.items(subtask)
    if served not in SERVED_BY[task]:
        raise ValueError(f"{str(root)!r} holds {name} ({served} items); task {task!r} needs a dataset "
                         f"with {' or '.join(SERVED_BY[task])} items")
    mapping = split_map(name, splits)
    if split not in mapping:
        raise MissingSplitError(
            f"{name} at {root}: no {split!r} split for the jobs (split map {mapping}; prepared splits "
            f"{sorted(spec.splits)}); pass splits={{{split!r}: <a prepared split>}} if it has one"
        )
    real = mapping[split]
    key = real if subtask is None else f"{subtask}_{real}"
    if key not in spec.splits:
        raise ValueError(f"{name} at {root}: split {split!r} -> {key!r}, which is not one of {sorted(spec.splits)}")
    ann = _need_file(root / "annotations" / spec.splits[key], root, name)
    if spec.vocab and served in ("qa", "classification"):
        _need_file(root / "annotations" / spec.vocab, root, name)
    if task == "pairs":
        ds = PairsDataset(ann, exp.data, video_root=root, train=train, seed=exp.train.seed)
    else:
        extra = {"paint_masks": paint_masks} if served == "vcr" else {}
        ds = build_dataset(name, root, real, exp.data, train=train, subtask=subtask, seed=exp.train.seed,
                           **extra)
    if exp.data.on_error == "raise":
        media = ds.video_path(0)
        if not media.exists():
            raise FileNotFoundError(
                f"{name} at data_root {str(root)!r}: {str(media)!r} (row 0 of {ann.name}) not found; prepare "
                f"writes annotations only: put (or symlink) the media under {root} at the paths the annotations "
                f"name (docs/data.md), or set data.on_error='skip'"
            )
    return ds


def loader(ds, batch_size: int, workers: int = 0) -> DataLoader:
    return DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate)


def load_model(exp: Experiment, checkpoint: str | Path | None = None, strict: bool = True) -> AllInOne:
    """The experiment's model, with weights from a training checkpoint (``checkpoints/last.pt``) if given.

    ``strict=False`` lets a pre-trained checkpoint initialise a model with new task heads (reported)."""
    torch.manual_seed(exp.train.seed)
    # Weights from a checkpoint replace any image initialisation: the model starts from scratch before them.
    model = build_model(exp.model if checkpoint is None else exp.model.replace(init="scratch", init_file=None))
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
    run_dir = Path(run_dir)
    preflight(exp, run_dir, pretraining_needs(exp) + (evaluation_needs(exp) if eval_every else []),
              run_config=exp.to_dict())
    with claim(run_dir):  # this process's alone from here on, curves included
        model = load_model(exp)
        objective = Pretraining(model, exp.train.loss_weights, exp.data.vtm_neg_prob)
        pairs = pretraining_pairs(exp)
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


def pretraining_pairs(exp: Experiment):
    """The pre-training pairs: the mixture ``exp.data.pretrain_datasets`` of prepared pair datasets under
    ``data_root`` (each item drawn in its stated share of every epoch), else the built-in corpus or the
    root's only dataset."""
    from ..data.mixture import MixtureDataset

    mix = exp.data.pretrain_datasets
    if exp.data.pretrain_shards is not None:
        return pretraining_shards(exp)
    if mix is None:
        return dataset(exp, "pairs", "train", train=True)
    if exp.data_root is None:
        raise ValueError(f"data.pretrain_datasets={mix} needs data_root: a directory holding "
                         f"{sorted(mix)} prepared by `python -m allinone_lab.data.prepare <dataset> --out ROOT/<dataset>`")
    shares = {name: share for name, share in mix.items() if share > 0}
    sources = {name: dataset(exp, "pairs", "train", train=True, name=name) for name in shares}
    return MixtureDataset(sources, shares, seed=exp.train.seed)


def pretraining_shards(exp: Experiment, rank: int | None = None, world: int | None = None):
    """The pre-training pairs streamed from ``exp.data.pretrain_shards`` (:class:`~allinone_lab.data.ShardDataset`,
    collated micro-batches of ``train.batch_size``), its streams placed for this process (``rank``/``world``
    default to the process group torchrun describes, joined here as the loop would) and the loop's accumulation,
    so that data parallelism equals accumulation."""
    from ..data.shards import ShardDataset, ShardSource

    t, packs = exp.train, exp.data.pretrain_shards
    if rank is None or world is None:
        init_from_env(t.device)
    rank = get_rank() if rank is None else rank
    world = world_size() if world is None else world
    per_step = t.batch_size * world
    accumulation = max(1, (t.global_batch_size or per_step) // per_step)  # the loop names a bad global batch
    shares = exp.data.pretrain_datasets or {name: 1 for name in packs}
    sources = {}
    for name, share in shares.items():
        if share > 0:
            pack = shard_pack(exp, name)
            sources[name] = ShardSource(pack["location"], url=pack.get("url"))
    mixed = len(packs) > 1 or exp.data.pretrain_datasets is not None
    return ShardDataset(sources if mixed else next(iter(sources.values())), exp.data,
                        weights={n: shares[n] for n in sources} if mixed else None, seed=t.seed,
                        batch_size=t.batch_size, collate_fn=collate, train=True, rank=rank, world_size=world,
                        streams_per_rank=accumulation * exp.data.shard_streams, accumulation=accumulation)


# Preflight: everything a job will read, checked before it spends compute ----------------------------------
Need = tuple[str, str, "str | None"]  # (task, job split, dataset name or None for the root's only one)


def pretraining_needs(exp: Experiment) -> list[Need]:
    """The data pre-training reads: the train split of every dataset of the mixture (or of the data)."""
    mix = exp.data.pretrain_datasets
    if exp.data.pretrain_shards is not None:
        return [("shards", "train", name) for name in exp.data.pretrain_shards if mix is None or mix[name] > 0]
    if mix is None:
        return [] if uses_corpus(exp) else [("pairs", "train", None)]
    return [("pairs", "train", name) for name, share in mix.items() if share > 0]


def evaluation_needs(exp: Experiment) -> list[Need]:
    """The data :func:`evaluate_pretrained` reads (nothing to check on the built-in corpus, which is built
    on demand)."""
    return [] if exp.data_root is None or uses_corpus(exp) else [("mc", "test", name) for name in ZERO_SHOT_MC]


def data_problems(exp: Experiment, needs: list[Need], sample: int = 2, source: dict[str, Any] | None = None) -> list[str]:
    """One line per problem with the data ``needs`` names: a dataset or split that is missing or empty, or a
    sample of its first ``sample`` media files that does not decode. ``source``: the ``subtask`` and
    ``splits`` the job reads the datasets with."""
    from .preflight import check_video_files

    files = [(task, split, name) for task, split, name in needs if task != "shards"]  # shards: their own check
    if exp.data_root is None and any(name not in (None, "corpus") for _, _, name in files):
        names = sorted({name for _, _, name in files if name})
        return [f"data_root is None, but the run reads the prepared datasets {names}: set data_root to a "
                f"directory holding them (`python -m allinone_lab.data.prepare <dataset> --out ROOT/<dataset>`)"]
    problems = []
    for task, split, name in dict.fromkeys(needs):
        if task == "shards":
            problems += shard_problems(exp, name)
            continue
        where = f"{name or 'data_root'} ({task}, job split {split!r})"
        try:
            ds = dataset(exp, task, split, train=False, name=name, **(source or {}))
        except (OSError, ValueError) as error:
            problems.append(f"{where}: {error}")
            continue
        if len(ds) == 0:
            problems.append(f"{where}: the split has no items")
            continue
        paths = [ds.video_path(i) for i in range(min(sample, len(ds)))]
        problems += [f"{where}: {p}" for p in check_video_files(paths, sample, decoder=exp.data.decoder)]
    return problems


def shard_pack(exp: Experiment, name: str) -> dict[str, str]:
    """``data.pretrain_shards[name]`` as ``{"location": ..., "url": ... (optional)}``."""
    pack = exp.data.pretrain_shards[name]
    return pack if isinstance(pack, dict) else {"location": pack}


def shard_problems(exp: Experiment, name: str) -> list[str]:
    """What is wrong with the pack ``data.pretrain_shards[name]``: its manifest unreadable, not pre-training
    pairs, or empty."""
    from ..data.shards import ShardSource

    pack = shard_pack(exp, name)
    where = f"data.pretrain_shards[{name!r}] ({pack['location']})"
    try:
        source = ShardSource(pack["location"], url=pack.get("url"))
    except (OSError, ValueError) as error:
        return [f"{where}: {error}"]
    kind = source.manifest.get("class")
    if kind != "PairsDataset":
        return [f"{where}: holds {kind} samples (split {source.manifest.get('split')!r}); expected pre-training "
                f"pairs (pack a pairs split: python -m allinone_lab.data.prepare shards --split ...)"]
    return [] if len(source) else [f"{where}: the pack holds no samples"]


def finetune_needs(exp: Experiment, task: str, zero_shot: bool = False,
                   source: dict[str, Any] | None = None) -> list[Need]:
    """The splits a fine-tuning job reads: test, and unless zero-shot train (and val where the data has
    one; else it is held out of train)."""
    data_task = FINETUNE_TASKS[task]
    if zero_shot:
        return [(data_task, "test", None)]
    if exp.data_root is None or uses_corpus(exp):
        return [(data_task, "train", None), (data_task, "test", None)]
    name, _ = single_dataset(exp.data_root)
    mapping = split_map(name, (source or {}).get("splits"))
    return [(data_task, split, None) for split in JOB_SPLITS if split in mapping or split != "val"]


def preflight(exp: Experiment, run_dir: str | Path, needs: list[Need], extra_models: tuple = (),
              source: dict[str, Any] | None = None, init: str | Path | None = None,
              run_config: dict[str, Any] | None = None) -> None:
    """Check everything a job will need before it spends compute, and raise one
    :class:`~allinone_lab.train.preflight.PreflightError` that lists every problem: the data ``needs``
    (present, non-empty, a sample decodes), the model's initial weights (``extra_models``: other model
    configurations the job will build; ``init``: a checkpoint it starts from), a writable ``run_dir`` that no
    other process is writing and, given the ``run_config`` the run will record, that holds no run of another
    configuration (:mod:`~allinone_lab.train.rundir`), and the free disk its checkpoints need."""
    from ..model import count_parameters
    from ..model.pretrained import check_init_weights
    from .preflight import Preflight, check_free_disk, check_output_dir, checkpoint_bytes
    from .rundir import run_dir_problems

    check = Preflight()
    if init is not None and not Path(init).is_file():
        check.add(f"init checkpoint {str(init)!r} does not exist; expected checkpoints/last.pt of a pre-training "
                  f"run (python -m allinone_lab.train pretrain ...)")
    for model_cfg in (exp.model, *extra_models) if init is None else extra_models:
        check.check(check_init_weights, model_cfg)
    check.check(check_output_dir, Path(run_dir))
    check.check(run_dir_problems, Path(run_dir), run_config)
    with torch.device("meta"):
        parameters = count_parameters(build_model(exp.model.replace(init="scratch", init_file=None)),
                                      exclude_pretraining_heads=False)
    check.check(check_free_disk, Path(run_dir), checkpoint_bytes(parameters))
    check.check(data_problems, exp, needs, 2, source)
    check.raise_if_any()


def _last_step(run_dir: Path) -> int:
    path = run_dir / "checkpoints" / "last.pt"
    return int(load_checkpoint(path)["step"]) if path.is_file() else 0


def evaluation_items(exp: Experiment, indices: np.ndarray) -> np.ndarray:
    """The first ``exp.train.max_eval_items`` of ``indices`` (all when None): the items an evaluation uses."""
    limit = exp.train.max_eval_items
    return np.asarray(indices) if limit is None else np.asarray(indices)[:limit]


def multiple_choice_accuracy(model: AllInOne, ds, batch_size: int = 16,
                             indices: np.ndarray | None = None) -> dict[str, float]:
    """Zero-shot multiple choice by the VTM match logit over the items ``indices`` (all by default):
    accuracy over all options, and over the answer and its temporal-only distractors when the annotation
    lists them (``temporal_distractors``)."""
    items = ds if indices is None else IndexSubset(ds, indices)
    result = evaluate_multiple_choice(model, (_with_temporal_subset(b, ds) for b in loader(items, batch_size)))
    out = {"mc_accuracy": result["accuracy"], "mc_chance": result["chance"]}
    if "subset_accuracy" in result:
        out["mc_temporal_accuracy"] = result["subset_accuracy"]
        out["mc_temporal_chance"] = result["subset_chance"]
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


def uses_corpus(exp: Experiment) -> bool:
    """Whether the experiment's data is the built-in corpus (no data_root, or a corpus directory)."""
    return exp.data_root is None or set(find_datasets(exp.data_root)) == {"corpus"}


def evaluate_pretrained(exp: Experiment, model: AllInOne, batch_size: int = 32) -> dict[str, float]:
    """Zero-shot evaluation of a pre-trained model.

    On prepared data: multiple choice by the VTM match logit on the test split of each of
    :data:`ZERO_SHOT_MC` under ``data_root`` (the paper's ablation metric), as ``<dataset>/mc_accuracy``.
    On the built-in corpus: cloze accuracy (temporal and static words) and zero-shot multiple choice on
    its test split."""
    if not uses_corpus(exp):
        results = {}
        for name in ZERO_SHOT_MC:
            test = dataset(exp, "mc", "test", train=False, name=name)
            mc = multiple_choice_accuracy(model, test, batch_size // 4 or 1,
                                          evaluation_items(exp, np.arange(len(test))))
            results.update({f"{name}/{key}": value for key, value in mc.items()})
            results[f"{name}/items"] = float(min(len(test), exp.train.max_eval_items or len(test)))
        return results
    results: dict[str, float] = {}
    cloze = dataset(exp, "cloze", "test", train=False)
    results.update(evaluate_cloze(model, (_with_kind(b, cloze) for b in loader(cloze, batch_size))))
    results.update(cloze_chance(cloze))
    results.update(multiple_choice_accuracy(model, dataset(exp, "mc", "test", train=False), batch_size // 4 or 1))
    return results


def cloze_chance(ds) -> dict[str, float]:
    """The cloze's chance levels (percent) per group of words: always answering the group's most frequent
    word among the items (a model that knows which kind of word is asked and how often each occurs, but not
    the video), as ``cloze_chance_<group>`` for ``temporal``, ``static`` and each ``kind``."""
    if "word" not in ds.table:
        return {}
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for i in range(len(ds)):
        word = str(ds.table.get(i, "word"))
        groups = []
        if "temporal" in ds.table:
            groups.append("temporal" if ds.table.get(i, "temporal") else "static")
        if "kind" in ds.table:
            groups.append(str(ds.table.get(i, "kind")))
        for group in groups:
            counts[group][word] += 1
    return {f"cloze_chance_{g}": 100.0 * max(c.values()) / sum(c.values()) for g, c in sorted(counts.items())}


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
    return retrieval_evaluation(model, dataset(exp, "retrieval", "test", train=False))


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


# Fine-tuning ---------------------------------------------------------------------------------------------
# Job task -> the data task it reads.
FINETUNE_TASKS: dict[str, str] = {"retrieval": "retrieval", "mc": "mc", "qa": "qa", "vcr": "vcr",
                                  "linear_probe": "classification"}
ZERO_SHOT_TASKS = ("retrieval", "mc", "vcr")
RETRIEVAL_OBJECTIVES = ("vtc", "vtm")


def retrieval_evaluation(model: AllInOne, ds, indices: np.ndarray | None = None, rerank_top_k: int = 0,
                         batch_size: int = 32) -> dict[str, float]:
    """Text-to-video and video-to-text R@1/5/10, MdR, MnR over the items ``indices`` of a retrieval dataset
    (all by default): dual-stream cosine similarity, each text and each unique video encoded once.

    Under a data-parallel process group (torchrun) every process encodes a contiguous share of the texts and
    of the videos and the embeddings are gathered (:func:`~allinone_lab.eval.evaluate_retrieval_sharded`):
    every process must call this, and all return the same metrics. ``rerank_top_k > 0`` then re-scores each
    text's top-k videos with the VTM match logit on the joint input, on every process (the other videos stay
    below them); video-to-text ranks by the same re-scored matrix."""
    indices = np.arange(len(ds)) if indices is None else np.asarray(indices)
    names = np.asarray([str(ds.table.get(int(i), "video")) for i in indices], dtype=object)
    _, first, text_to_video = np.unique(names.astype(str), return_index=True, return_inverse=True)
    texts, videos = IndexSubset(ds, indices), IndexSubset(ds, indices[first])
    targets = torch.as_tensor(text_to_video)
    if rerank_top_k <= 0:
        metrics = evaluate_retrieval_sharded(model, videos, texts, targets, collate, batch_size)
    else:
        similarity = (encode_sharded(encode_texts, model, texts, 2 * batch_size, collate)
                      @ encode_sharded(encode_videos, model, videos, batch_size, collate).t())
        clips = torch.cat([b["video"] for b in loader(videos, batch_size)])
        text_batches = [b for b in loader(texts, 2 * batch_size)]
        ids = torch.cat([b["input_ids"] for b in text_batches])
        mask = torch.cat([b["attention_mask"] for b in text_batches])
        similarity = rerank_with_vtm(model, similarity, clips, ids, mask, rerank_top_k)
        metrics = retrieval_metrics(similarity, targets)
    metrics["random_R@1"] = 100.0 / len(first)
    return metrics


def validate(task: str, model: AllInOne, ds, indices: np.ndarray, rerank_top_k: int = 0,
             by_kind: bool = False, per_item: bool = False) -> dict[str, Any]:
    """The selection metric of ``task`` on the items ``indices``: R@1 (text to video), multiple-choice
    accuracy (mc, vcr; with the temporal-subset accuracy where the annotation lists it) or QA accuracy.

    ``by_kind`` adds, for QA annotations with a ``kind`` column (the corpus: direction, shape, colour), the
    accuracy of each kind of question as ``accuracy_<kind>``. ``per_item`` (mc, vcr, qa) adds, in the order
    of ``indices``, each item's ``predictions``, whether it is ``correct`` and its row ``item_index``.
    A dataset of :class:`MultiClipDataset` averages every score over its clips."""
    if per_item and task not in ("mc", "vcr", "qa"):
        raise ValueError(f"per_item=True: task {task!r} has no per-item answers; expected mc, vcr or qa")
    subset = IndexSubset(ds, indices)
    if task == "qa" and by_kind and "kind" in ds.table:
        kinds = np.asarray([str(ds.table.get(int(i), "kind")) for i in indices])
        metrics = validate(task, model, ds, indices, per_item=per_item)
        for kind in sorted(set(kinds)):
            metrics[f"accuracy_{kind}"] = validate(task, model, ds, indices[kinds == kind])["accuracy"]
        return metrics
    if task == "retrieval":
        metrics = retrieval_evaluation(model, ds, indices, rerank_top_k)
        return {"score": metrics["t2v_R@1"], **metrics}
    if task in ("mc", "vcr"):
        metrics = evaluate_multiple_choice(model, (_with_temporal_subset(b, ds) for b in loader(subset, 8)),
                                           per_item=per_item)
    elif task == "qa":
        metrics = evaluate_open_ended_qa(model, loader(subset, 32), per_item=per_item)
    else:
        raise ValueError(f"task={task!r}: expected one of retrieval, mc, vcr, qa")
    if per_item:
        metrics["item_index"] = [int(i) for i in indices]
    return {"score": metrics["accuracy"], **metrics}


class MultiClipDataset(Dataset):
    """Multi-clip testing (the paper's "3 x 3" rows): the items of ``dataset``, read with ``clips x S``
    frames per video, with ``video`` reshaped to ``(clips, S, C, H, W)``.

    The wrapped dataset samples its ``clips x S`` frames as TSN segments (the middle frame of each at test
    time, :func:`~allinone_lab.data.video.sample_indices`), so clip ``k`` holds the segments ``k S ...
    (k + 1) S - 1``: S evenly spaced frames within the k-th of ``clips`` equal temporal segments of the video
    (or of the row's time window). The evaluation scores each clip on its own and averages the scores
    (:func:`~allinone_lab.eval.tasks.over_clips`). Other attributes (``table``, ``answers``, ...) are the
    wrapped dataset's."""

    def __init__(self, dataset, clips: int) -> None:
        if not isinstance(clips, int) or isinstance(clips, bool) or clips < 1:
            raise ValueError(f"clips={clips!r}: expected an integer >= 1")
        self.dataset, self.clips = dataset, clips

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.dataset[index])
        for key in ("video", "masks"):
            if key in item:
                frames = item[key].shape[0]
                if frames % self.clips:
                    raise ValueError(f"{type(self.dataset).__name__} item {index}: {frames} frames do not "
                                     f"split into clips={self.clips} clips of equal length")
                item[key] = item[key].reshape(self.clips, frames // self.clips, *item[key].shape[1:])
        return item

    def __getattr__(self, name: str) -> Any:
        if name in ("dataset", "clips"):  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)


def multi_clip_dataset(exp: Experiment, task: str, split: str, clips: int = 1, **source: Any):
    """The evaluation dataset of ``task`` and ``split`` (:func:`dataset` with ``train=False``; ``source``:
    its ``subtask``, ``splits``, ``paint_masks``), each video sampled as ``clips`` clips of
    ``exp.model.num_frames`` frames (:class:`MultiClipDataset`); ``clips=1`` is the plain dataset.

    Raises ValueError when the built-in corpus stores fewer frames per video than ``clips`` clips need (its
    clips would repeat frames rather than show other moments)."""
    if not isinstance(clips, int) or isinstance(clips, bool) or clips < 1:
        raise ValueError(f"test_clips={clips!r}: expected an integer >= 1")
    if clips == 1:
        return dataset(exp, task, split, train=False, **source)
    frames = exp.model.num_frames * clips
    if exp.data_root is None and frames > exp.corpus.num_frames:
        raise ValueError(f"test_clips={clips}: {clips} clips of {exp.model.num_frames} frames need {frames} "
                         f"frames per video, but the built-in corpus stores {exp.corpus.num_frames} "
                         f"(corpus.num_frames); expected test_clips <= "
                         f"{max(1, exp.corpus.num_frames // exp.model.num_frames)}, or a prepared dataset")
    wide = exp.override(**{"model.num_frames": frames})
    return MultiClipDataset(dataset(wide, task, split, train=False, **source), clips)


def validation_split(exp: Experiment, task: str, train_ds, val_fraction: float = 0.1, subtask: str | None = None,
                     splits: dict[str, str] | None = None,
                     paint_masks: bool = True) -> tuple[Any, np.ndarray, np.ndarray]:
    """``(val_ds, val_indices, train_indices)``: the data's own ``val`` split where it has one, else
    ``val_fraction`` of the training items (a seeded permutation), evaluated without augmentation. Never test."""
    data_task = FINETUNE_TASKS.get(task, task)
    source = {"subtask": subtask, "splits": splits, "paint_masks": paint_masks}
    try:
        val_ds = dataset(exp, data_task, "val", train=False, **source)
        return val_ds, np.arange(len(val_ds)), np.arange(len(train_ds))
    except MissingSplitError:
        pass
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction}: expected a fraction in (0, 1)")
    if len(train_ds) < 2:
        raise ValueError(f"{len(train_ds)} training item(s): too few to hold out a validation split")
    val_ds = dataset(exp, data_task, "train", train=False, **source)
    order = np.random.default_rng(exp.train.seed).permutation(len(train_ds))
    held_out = min(len(order) - 1, max(1, int(len(order) * val_fraction)))
    return val_ds, np.sort(order[:held_out]), np.sort(order[held_out:])


def _objective(task: str, model: AllInOne, objectives: dict[str, float] | None):
    if task == "retrieval":
        return Retrieval(model, objectives)
    return {"mc": MultipleChoice, "vcr": MultipleChoice, "qa": OpenEndedQA}[task](model)


def _check_objectives(task: str, objectives: dict[str, float] | None) -> None:
    if objectives is None:
        return
    if task != "retrieval":
        raise ValueError(f"objectives={objectives}: only task 'retrieval' takes objective weights")
    unknown = sorted(set(objectives) - set(RETRIEVAL_OBJECTIVES))
    if unknown or not any(float(w) > 0 for w in objectives.values()) or any(float(w) < 0 for w in objectives.values()):
        raise ValueError(f"objectives={objectives}: expected non-negative weights for {list(RETRIEVAL_OBJECTIVES)}, "
                         f"at least one positive")


def finetune(exp: Experiment, task: str, run_dir: str | Path, steps: int, init: str | Path | None = None,
             eval_every: int | None = None, val_fraction: float = 0.1, progress: bool = True, *,
             zero_shot: bool = False, objectives: dict[str, float] | None = None, rerank_top_k: int = 0,
             subtask: str | None = None, splits: dict[str, str] | None = None, paint_masks: bool = True,
             probe_lrs: tuple[float, ...] = (1e-3, 1e-2, 1e-1), probe_epochs: int = 100, test_clips: int = 1,
             per_item: bool = False) -> dict[str, Any]:
    """Fine-tune for ``task``, selecting the checkpoint on a validation split (the data's ``val`` split, or
    ``val_fraction`` held out of train; never test), then evaluate the selected model once on test.

    Tasks: ``retrieval`` (VTC + VTM, or the weights in ``objectives``, e.g. ``{"vtc": 1, "vtm": 0}``;
    dual-stream evaluation, VTM re-ranking of the top ``rerank_top_k``), ``mc`` and ``vcr`` (the candidates'
    VTM scores in one softmax; VCR is Q->A over images with the referenced people painted, or with
    ``paint_masks=False`` the plain images), ``qa``
    (open-ended, a classifier over the training answers) and ``linear_probe`` (see :func:`linear_probe_job`).
    ``zero_shot`` (retrieval, mc, vcr) trains nothing: the ``init`` model is evaluated on test.

    ``test_clips`` > 1 tests each video as that many clips (:func:`multi_clip_dataset`; validation keeps one
    clip), every score averaged over the clips: the paper's multi-clip test. ``per_item`` (mc, vcr, qa) keeps
    each test item's prediction and correctness in the test results (:func:`validate`).

    Writes ``validation.jsonl``, ``checkpoints/best.pt`` and ``results.json`` into ``run_dir``; a stopped
    run resumes (a finished one is only tested again).
    """
    if task not in FINETUNE_TASKS:
        raise ValueError(f"task={task!r}: expected one of {list(FINETUNE_TASKS)}")
    _check_objectives(task, objectives)
    _check_paint_masks(task, paint_masks)
    source: dict[str, Any] = {"subtask": subtask, "splits": splits}
    if task == "vcr":
        source["paint_masks"] = paint_masks
    if task == "linear_probe" and zero_shot:
        raise ValueError("task 'linear_probe' trains a linear layer: zero_shot does not apply")
    if task == "linear_probe" and (test_clips != 1 or per_item):
        raise ValueError(f"task 'linear_probe': test_clips={test_clips!r} and per_item={per_item!r} do not "
                         f"apply; expected test_clips=1 and per_item=False")
    preflight(exp, run_dir, finetune_needs(exp, task, zero_shot, source), source=source, init=init)
    with claim(run_dir):  # this process's alone from here on: training, selection and test
        return _finetune(exp, task, run_dir, steps, init, eval_every, val_fraction, progress, zero_shot,
                         objectives, rerank_top_k, source, probe_lrs, probe_epochs, test_clips, per_item)


def _finetune(exp: Experiment, task: str, run_dir: str | Path, steps: int, init, eval_every, val_fraction,
              progress, zero_shot, objectives, rerank_top_k, source, probe_lrs, probe_epochs, test_clips,
              per_item) -> dict[str, Any]:
    if task == "linear_probe":
        return linear_probe_job(exp, run_dir, init, val_fraction, probe_lrs, probe_epochs, **source)
    if zero_shot:
        return zero_shot_job(exp, task, run_dir, init, rerank_top_k, test_clips=test_clips, per_item=per_item,
                             **source)
    test_ds = multi_clip_dataset(exp, FINETUNE_TASKS[task], "test", test_clips, **source)  # checked first
    run_dir = Path(run_dir)
    train_ds = dataset(exp, FINETUNE_TASKS[task], "train", train=True, **source)
    if task == "qa":
        exp = exp.override(**{"model.num_answers": len(train_ds.answers)})
    val_ds, val_idx, train_idx = validation_split(exp, task, train_ds, val_fraction, **source)
    model = load_model(exp, init, strict=False)
    objective = _objective(task, model, objectives)
    cfg = exp.train.replace(max_steps=steps)
    eval_every = eval_every or max(1, steps // 4)
    best_path = run_dir / "checkpoints" / "best.pt"
    history_path = run_dir / "validation.jsonl"
    history = [json.loads(x) for x in history_path.read_text().splitlines()] if history_path.exists() else []
    step = history[-1]["step"] if history else 0
    resolved = {**exp.to_dict(), "task": task, "init": str(init), "objectives": objectives,
                "rerank_top_k": rerank_top_k, **source}
    if test_clips != 1:
        resolved["test_clips"] = test_clips
    while step < steps:
        result = train(objective, IndexSubset(train_ds, train_idx), cfg, run_dir, collate_fn=collate,
                       resolved_config=resolved, stop_after=min(eval_every, steps - step), progress=progress)
        step = result.step
        scores = validate(task, model, val_ds, evaluation_items(exp, val_idx), rerank_top_k)
        best_so_far = max((h["score"] for h in history), default=float("-inf"))
        history.append({"step": step, **scores})
        if is_main():
            if scores["score"] > best_so_far:
                atomic_save({"model": model.state_dict(), "step": step, "score": scores["score"]}, best_path)
            with history_path.open("a") as handle:
                handle.write(json.dumps(history[-1]) + "\n")
    best = load_checkpoint(best_path)
    model.load_state_dict(best["model"])
    test_idx = evaluation_items(exp, np.arange(len(test_ds)))  # QA: the training answers
    test = validate(task, model, test_ds, test_idx, rerank_top_k, by_kind=True, per_item=per_item)
    results = {"task": task, "selected_step": best["step"], "validation": best["score"], "test": test,
               "train_items": int(len(train_idx)), "val_items": int(len(evaluation_items(exp, val_idx))),
               "test_items": int(len(test_idx)), "test_clips": test_clips,
               "global_batch": cfg.global_batch_size or cfg.batch_size * world_size(), "steps": steps}
    if is_main():
        atomic_write_json({"config": resolved, "metrics": results}, run_dir / "results.json")
    return results


def zero_shot_job(exp: Experiment, task: str, run_dir: str | Path, init: str | Path | None = None,
                  rerank_top_k: int = 0, subtask: str | None = None, splits: dict[str, str] | None = None,
                  paint_masks: bool = True, test_clips: int = 1, per_item: bool = False) -> dict[str, Any]:
    """Evaluate the ``init`` model on the test split without training: multiple choice (mc, vcr) by the
    pre-trained VTM match logit, retrieval by the pre-trained VTC projections (and VTM re-ranking).
    ``test_clips`` and ``per_item`` as in :func:`finetune`. Writes ``results.json`` into ``run_dir``."""
    if task not in ZERO_SHOT_TASKS:
        raise ValueError(f"zero-shot task={task!r}: expected one of {list(ZERO_SHOT_TASKS)} (QA needs a trained head)")
    model = load_model(exp, init, strict=False).to(init_from_env(exp.train.device))
    source: dict[str, Any] = {"subtask": subtask, "splits": splits}
    if task == "vcr":
        source["paint_masks"] = paint_masks
    test_ds = multi_clip_dataset(exp, FINETUNE_TASKS[task], "test", test_clips, **source)
    test_idx = evaluation_items(exp, np.arange(len(test_ds)))
    test = validate(task, model, test_ds, test_idx, rerank_top_k, per_item=per_item)
    results = {"task": task, "zero_shot": True, "test": test, "test_items": int(len(test_idx)),
               "test_clips": test_clips}
    if is_main():
        resolved = {**exp.to_dict(), "task": task, "init": str(init), "zero_shot": True, "rerank_top_k": rerank_top_k,
                    **source, **({"test_clips": test_clips} if test_clips != 1 else {})}
        atomic_write_json({"config": resolved, "metrics": results}, Path(run_dir) / "results.json")
    return results


def linear_probe_job(exp: Experiment, run_dir: str | Path, init: str | Path | None = None, val_fraction: float = 0.1,
                     lrs: tuple[float, ...] = (1e-3, 1e-2, 1e-1), epochs: int = 100, subtask: str | None = None,
                     splits: dict[str, str] | None = None, batch_size: int = 32) -> dict[str, Any]:
    """Linear probe (the paper's Table 12): the backbone frozen, one linear layer on the frame-averaged video
    CLS feature of the last layer. The learning rate is chosen among ``lrs`` by top-1 on the validation
    split (the data's ``val``, or ``val_fraction`` held out of train), then top-1/5/10 reported on test.

    Writes ``validation.jsonl`` (one line per learning rate) and ``results.json`` into ``run_dir``."""
    if not lrs:
        raise ValueError("lrs: expected at least one learning rate")
    run_dir = Path(run_dir)
    model = load_model(exp, init, strict=False).to(init_from_env(exp.train.device))
    train_ds = dataset(exp, "classification", "train", train=False, subtask=subtask, splits=splits)
    val_ds, val_idx, train_idx = validation_split(exp, "linear_probe", train_ds, val_fraction, subtask, splits)
    test_ds = dataset(exp, "classification", "test", train=False, subtask=subtask, splits=splits)

    def features(ds, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return extract_features(model, loader(IndexSubset(ds, indices), batch_size))

    x_train, y_train = features(train_ds, evaluation_items(exp, train_idx))
    known = y_train >= 0  # a training label outside the class list cannot be learned
    x_train, y_train = x_train[known], y_train[known]
    x_val, y_val = features(val_ds, evaluation_items(exp, val_idx))
    x_test, y_test = features(test_ds, evaluation_items(exp, np.arange(len(test_ds))))
    classes = len(train_ds.classes)
    history = []
    for lr in lrs:
        scores = linear_probe(x_train, y_train, x_val, y_val, classes, epochs, lr, seed=exp.train.seed)
        history.append({"lr": lr, "score": scores["top1"], **scores})
    best = max(history, key=lambda h: h["score"])  # the first of equals wins
    test = linear_probe(x_train, y_train, x_test, y_test, classes, epochs, best["lr"], seed=exp.train.seed)
    results = {"task": "linear_probe", "selected_lr": best["lr"], "validation": best["score"], "test": test,
               "num_classes": classes, "feature_dim": int(x_train.shape[1]), "train_items": int(len(y_train)),
               "val_items": int(len(y_val)), "test_items": int(len(y_test))}
    if is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json({"config": {**exp.to_dict(), "task": "linear_probe", "init": str(init), "lrs": list(lrs),
                                      "epochs": epochs, "subtask": subtask, "splits": splits},
                           "metrics": results}, run_dir / "results.json")
        _atomic_write_lines(history, run_dir / "validation.jsonl")
    return results


def _atomic_write_lines(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Write ``rows`` as JSON lines, atomically."""
    from ..io import atomic_write_bytes

    atomic_write_bytes(path, lambda handle: handle.write("".join(json.dumps(r) + "\n" for r in rows).encode()))
