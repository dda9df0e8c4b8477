"""Every dataset known by name, with the facts about it in one place.

A :class:`DatasetSpec` says what a prepared dataset holds (its task and dataset class), where its splits are
(annotation files under ``ROOT/annotations``), which of them are for training, its answer or class
vocabulary, its subtasks (TGIF-QA's three kinds of question, VCR's Q->A and QA->R), which of its splits the
jobs read as ``train``, ``val`` and ``test``, and the name its rows carry in tables (``label``).

The functions that write these files from each release's own annotations, and their command-line options,
are in :mod:`allinone_lab.data.prepare` (:attr:`DatasetSpec.preparer` finds a dataset's one); this module
imports nothing of them, so that reading the facts never loads the preparers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .datasets import (
    ClassificationDataset,
    MultipleChoiceDataset,
    OpenQADataset,
    PairsDataset,
    RetrievalDataset,
    VCRDataset,
)

if TYPE_CHECKING:
    from .prepare import Preparer

# Which prepared-dataset task (``DatasetSpec.task``, or a subtask's) serves each job task.
SERVED_BY: dict[str, tuple[str, ...]] = {
    "pairs": ("pairs", "retrieval"),
    "retrieval": ("retrieval",),
    "mc": ("mc",),
    "qa": ("qa",),
    "vcr": ("vcr",),
    "classification": ("classification",),
}


@dataclass(frozen=True)
class Subtask:
    """One kind of item of a dataset that has several: the task its items serve, their dataset class, and
    what it is (for messages). Its split keys are ``<subtask>_<split>`` (``action_train``, ``qar_val``)."""

    task: str
    cls: type
    meaning: str


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset.

    Attributes:
        name: the dataset's name (``msrvtt``, ``lsmdc-mc``...), also the directory it is prepared into.
        label: how tables name it (``MSR-VTT``, ``LSMDC``).
        task: the items it holds: pairs | retrieval | mc | qa | classification | vcr (``mc|qa``: by subtask).
        cls: the dataset class of its items (a subtask may have its own).
        splits: split name -> annotation file under ``ROOT/annotations``.
        job_splits: the jobs' split (train | val | test) -> its split. A dataset without a ``val`` entry
            gets its validation items held out of ``train``; where test labels are not public, the public
            validation set is the test split, as the papers that report on it do (VCR, Kinetics,
            ActivityNet val1, Ego4D). With subtasks, the subtask prefixes the split (``qa_train``).
        vocab: the answer or class list under ``ROOT/annotations``, built from the training split.
        train_splits: the splits read with training augmentation by default.
        subtasks: subtask name -> :class:`Subtask` (TGIF-QA, VCR).
        default_subtask: the subtask a job reads when none is given and several serve its task.
    """

    name: str
    label: str
    task: str
    cls: type
    splits: dict[str, str]
    job_splits: dict[str, str]
    vocab: str | None = None
    train_splits: tuple[str, ...] = ("train",)
    subtasks: dict[str, Subtask] = field(default_factory=dict)
    default_subtask: str | None = None

    @property
    def preparer(self) -> Preparer:
        """The preparer that writes this dataset's annotation files, with its command-line options."""
        from .prepare import PREPARERS  # prepare.py imports this module: looked up on use

        return PREPARERS[self.name]

    def items(self, subtask: str | None = None) -> str:
        """The task the items of ``subtask`` (None: of the whole dataset) serve."""
        return self.task if subtask is None else self.subtasks[subtask].task

    def dataset_class(self, subtask: str | None = None) -> type:
        """The dataset class of the items of ``subtask`` (None: of the whole dataset)."""
        return self.cls if subtask is None else self.subtasks[subtask].cls

    def subtask_choices(self) -> str:
        """The subtasks grouped by what they are, for messages: ``'qa' (Q->A) or 'qar' (QA->R)``."""
        groups: dict[str, list[str]] = {}
        for name, subtask in self.subtasks.items():
            groups.setdefault(subtask.meaning, []).append(repr(name))
        return " or ".join(f"{' or '.join(names)} ({meaning})" for meaning, names in groups.items())

    def subtask_for(self, task: str, subtask: str | None, where: str | None = None) -> str | None:
        """The subtask a job of ``task`` reads: ``subtask`` once checked; if None, the only subtask whose
        items serve ``task``, else :attr:`default_subtask`. None for a dataset without subtasks. Errors
        start with ``where`` (default: the name)."""
        where = where or self.name
        if not self.subtasks:
            if subtask is not None:
                having = " and ".join(name for name, spec in DATASETS.items() if spec.subtasks)
                raise ValueError(f"{where}: subtask={subtask!r}, but only {having} take a subtask")
            return None
        if subtask is None:
            serving = [name for name, s in self.subtasks.items() if s.task in SERVED_BY.get(task, ())]
            subtask = serving[0] if len(serving) == 1 else self.default_subtask
            if subtask is None:
                raise ValueError(f"{where}: task {task!r} needs subtask {self.subtask_choices()}; got None")
        if subtask not in self.subtasks:
            raise ValueError(f"{where}: subtask={subtask!r}; expected {self.subtask_choices()}")
        return subtask

    def locate(self, split: str, subtask: str | None = None) -> tuple[str, str | None]:
        """``(key of splits, subtask)`` of ``split``: ``("action_test", "action")`` for ``("test",
        "action")``; without ``subtask``, a key that names its subtask (``qa_val``) stands alone."""
        if subtask is not None:
            self.subtask_for(self.items(), subtask)  # checks it, or that the dataset takes none
            key = f"{subtask}_{split}"
        else:
            key = split
            subtask = next((name for name in self.subtasks if split.startswith(f"{name}_")), None)
            if self.subtasks and subtask is None:
                raise ValueError(f"{self.name}: subtask=None for split {split!r}; expected subtask "
                                 f"{self.subtask_choices()}, or a split named with its subtask "
                                 f"(one of {sorted(self.splits)})")
        if key not in self.splits:
            raise ValueError(f"{self.name}: split={key!r}: expected one of {sorted(self.splits)}")
        return key, subtask


def _files(*names: str) -> dict[str, str]:
    """Splits stored as ``<split>.jsonl``."""
    return {name: f"{name}.jsonl" for name in names}


_TGIF_SUBTASKS = {
    "action": Subtask("mc", MultipleChoiceDataset, "multiple choice"),
    "transition": Subtask("mc", MultipleChoiceDataset, "multiple choice"),
    "frameqa": Subtask("qa", OpenQADataset, "open-ended"),
}
_VCR_SUBTASKS = {"qa": Subtask("vcr", VCRDataset, "Q->A"), "qar": Subtask("vcr", VCRDataset, "QA->R")}

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("webvid", "WebVid", "pairs", PairsDataset, {"train": "train.tsv", "val": "val.tsv"},
                job_splits={"train": "train", "test": "val"}),
    DatasetSpec("howto100m", "HowTo100M", "pairs", PairsDataset, _files("train"),
                job_splits={"train": "train"}),
    DatasetSpec("yttemporal", "YT-Temporal", "pairs", PairsDataset, _files("train"),
                job_splits={"train": "train"}),
    DatasetSpec("msrvtt", "MSR-VTT", "retrieval", RetrievalDataset,
                _files("train_9k", "train_7k", "test_1ka"),
                job_splits={"train": "train_9k", "test": "test_1ka"}, train_splits=("train_9k", "train_7k")),
    DatasetSpec("msrvtt-mc", "MSR-VTT", "mc", MultipleChoiceDataset, _files("test"),
                job_splits={"test": "test"}),
    DatasetSpec("msrvtt-qa", "MSRVTT-QA", "qa", OpenQADataset, _files("train", "val", "test"),
                job_splits={"train": "train", "val": "val", "test": "test"}, vocab="answers.json"),
    DatasetSpec("msvd-qa", "MSVD-QA", "qa", OpenQADataset, _files("train", "val", "test"),
                job_splits={"train": "train", "val": "val", "test": "test"}, vocab="answers.json"),
    DatasetSpec("tgif-qa", "TGIF-QA", "mc|qa", MultipleChoiceDataset,
                _files(*(f"{t}_{s}" for t in _TGIF_SUBTASKS for s in ("train", "test"))),
                job_splits={"train": "train", "test": "test"}, vocab="frameqa_answers.json",
                train_splits=tuple(f"{t}_train" for t in _TGIF_SUBTASKS), subtasks=_TGIF_SUBTASKS),
    DatasetSpec("lsmdc-mc", "LSMDC", "mc", MultipleChoiceDataset, _files("train", "test"),
                job_splits={"train": "train", "test": "test"}),
    DatasetSpec("didemo", "DiDeMo", "retrieval", RetrievalDataset, _files("train", "val", "test"),
                job_splits={"train": "train", "val": "val", "test": "test"}),
    DatasetSpec("activitynet", "ActivityNet Captions", "retrieval", RetrievalDataset,
                _files("train", "val1", "val2"), job_splits={"train": "train", "test": "val1"}),
    DatasetSpec("kinetics400", "Kinetics-400", "classification", ClassificationDataset,
                _files("train", "val"),
                job_splits={"train": "train", "test": "val"}, vocab="classes.json"),
    DatasetSpec("hmdb51", "HMDB51", "classification", ClassificationDataset,
                _files(*(f"{s}{k}" for s in ("train", "test") for k in (1, 2, 3))),
                job_splits={"train": "train1", "test": "test1"}, vocab="classes.json",
                train_splits=("train1", "train2", "train3")),
    DatasetSpec("ego4d-mc", "Ego4D", "mc", MultipleChoiceDataset, _files("val"),
                job_splits={"test": "val"}),
    DatasetSpec("vcr", "VCR", "vcr", VCRDataset,
                _files(*(f"{m}_{s}" for m in _VCR_SUBTASKS for s in ("train", "val"))),
                job_splits={"train": "train", "test": "val"}, train_splits=("qa_train", "qar_train"),
                subtasks=_VCR_SUBTASKS, default_subtask="qa"),
)}  # fmt: skip
