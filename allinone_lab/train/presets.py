"""Experiments: the model, data, corpus and training configurations of one run, and the named presets.

- ``smoke``: seconds, for tests and CI (a tiny model on the smallest built-in corpus).
- ``cpu``: minutes on a 2-core laptop, on the built-in corpus, sized so that direction words are learned
  (benchmarks/RESULTS.md: the main job and the learning check, rolling against the time average and a
  single frame).
- ``paper``: the paper's settings (Sec. 4.1): pre-training on WebVid2.5M + HowTo100M prepared under one
  ``data_root``, 200K steps at batch 16 per GPU for small/base (100K at 32 for tiny) on 32 GPUs (a global
  batch of 512, or 1,024 for tiny, reached on any number of processes by gradient accumulation), AdamW lr
  1e-4, weight decay 0.01, 10% warm-up then linear decay, 3 frames at 224 px, 40 text tokens, mixed
  precision, ImageNet initialisation from a local file or cache; fine-tuning 20 epochs at batch 256, VCR
  100 epochs at batch 512.
- ``rehearsal``: exactly the ``paper`` path (the same data, evaluation, preflight and result columns) with
  only the budget cut: the tiny variant unless a table names another, two steps at a global batch of two
  (gradient accumulation over two micro-batches), the first six items of each evaluation split, so that a
  reproduction finishes in about a minute on two CPU cores, on the fixtures or on real data. Run it on the real data root before spending
  GPU time on ``paper``.

Budgets that a reproduction needs beyond a preset's own (the ``cpu`` pre-training steps of a quick look,
fine-tuning schedules, Table 8b's protocol) are here too: :func:`pretrain_budget`, :func:`finetune_budget`.
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..data import CorpusConfig, DataConfig
from ..model import ModelConfig
from ..model.pretrained import image_normalization
from .config import TrainConfig

PRESETS = ("smoke", "cpu", "rehearsal", "paper")
PAPER_SCALES = ("rehearsal", "paper")  # the scales that run the paper's protocol on prepared datasets

# Fine-tuning schedules of the paper (Sec. 4.1.2): epochs and global batch size per task family.
PAPER_FINETUNE: dict[str, dict[str, int]] = {
    "default": {"epochs": 20, "global_batch_size": 256},
    "vcr": {"epochs": 100, "global_batch_size": 512},
}
# The paper's pre-training data (Sec. 4.1): WebVid2.5M + HowTo100M. It does not state how the two are mixed;
# here each supplies half of every epoch.
PAPER_PRETRAIN_DATA: dict[str, float] = {"webvid": 0.5, "howto100m": 0.5}
PAPER_GPUS = 32  # Sec. 4.1, footnote 3: 32 GPUs (7 days), so a global batch of 32 x the per-GPU batch

# Pre-training steps of a reproduction's arm at scale="cpu": about four minutes on two CPU cores, where rolling
# at 0.25 passes 90% cloze on direction words (benchmarks/RESULTS.md, main job); the preset's full 1,500 steps
# go further (learning check).
CPU_PRETRAIN_STEPS = 1100
# Fine-tuning steps and batch size at scale="cpu": multiple choice runs every option through the joint model,
# so its batches are smaller.
CPU_FINETUNE: dict[str, tuple[int, int]] = {"retrieval": (200, 32), "qa": (200, 32), "mc": (100, 8),
                                             "vcr": (100, 8)}
# The rehearsal's cut of the paper's fine-tuning: the same schedule code, a small global batch, few steps.
REHEARSAL_FINETUNE = {"global_batch_size": 2, "max_steps": 2}
# Pre-training protocols that differ from the preset's (paper Sec. 4.4.2: Table 8b pre-trains at a global
# batch of 1,024 for 100K steps); the rehearsal keeps its own budget.
PAPER_PROTOCOLS: dict[str, dict[str, Any]] = {
    "default": {},
    "table8b": {"train.max_steps": 100_000, "train.global_batch_size": 1024},
}


@dataclass
class Experiment:
    """Everything one run needs. ``data_root`` is a prepared dataset directory; None uses the built-in corpus."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    data_root: str | None = None

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """The model and the data must agree on frames, frame size and text length."""
        pairs = (("num_frames", "num_frames"), ("image_size", "image_size"), ("max_text_len", "max_text_len"))
        for model_field, data_field in pairs:
            a, b = getattr(self.model, model_field), getattr(self.data, data_field)
            if a != b:
                raise ValueError(f"model.{model_field}={a} but data.{data_field}={b}: they must be equal")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model.to_dict(), "data": self.data.to_dict(), "train": self.train.to_dict(),
                "corpus": dataclasses.asdict(self.corpus), "data_root": self.data_root}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Experiment:
        return cls(model=ModelConfig.from_dict(values["model"]), data=DataConfig.from_dict(values["data"]),
                   train=TrainConfig.from_dict(values["train"]), corpus=CorpusConfig(**values["corpus"]),
                   data_root=values.get("data_root"))

    def override(self, **changes: Any) -> Experiment:
        """A copy with dotted overrides applied, e.g. ``override(**{"model.roll_ratio": 0.5})``.

        ``model.num_frames``, ``model.image_size`` and ``model.max_text_len`` also set the data's value,
        so that one change keeps the two in step.
        """
        sections: dict[str, dict[str, Any]] = {"model": {}, "data": {}, "train": {}, "corpus": {}}
        root: dict[str, Any] = {}
        for key, value in changes.items():
            section, _, name = key.partition(".")
            if not name:
                if key != "data_root":
                    raise ValueError(f"override {key!r}: expected 'section.field' with section in {list(sections)}")
                root[key] = value
                continue
            if section not in sections:
                raise ValueError(f"override {key!r}: unknown section {section!r}; expected one of {list(sections)}")
            target = getattr(self, section)
            if name not in {f.name for f in dataclasses.fields(target)}:
                raise ValueError(f"override {key!r}: {type(target).__name__} has no field {name!r}")
            sections[section][name] = value
        for name in ("num_frames", "image_size", "max_text_len"):
            if name in sections["model"] and name not in sections["data"]:
                sections["data"][name] = sections["model"][name]
        return Experiment(
            model=self.model.replace(**sections["model"]),
            data=self.data.replace(**sections["data"]),
            train=self.train.replace(**sections["train"]),
            corpus=dataclasses.replace(self.corpus, **sections["corpus"]),
            data_root=root.get("data_root", self.data_root),
        )


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["model.roll_ratio=0.5", "train.loss_weights={'vtm': 1}"]`` -> dict; values are Python literals
    (a bare word stays a string)."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r}: expected key=value")
        try:
            out[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key.strip()] = text
    return out


def preset(name: str, variant: str | None = None) -> Experiment:
    """The named preset (``smoke`` | ``cpu`` | ``rehearsal`` | ``paper``); ``variant`` picks
    tiny/small/base/large for ``paper`` (default base, with the paper's per-variant batch and steps) and
    ``rehearsal`` (default tiny)."""
    if name == "smoke":
        model = ModelConfig(variant="tiny", width=64, heads=2, depth=2, image_size=32, patch_size=8,
                            num_frames=3, max_text_len=16, drop_path_rate=0.0)
        return Experiment(
            model=model,
            data=_data_for(model, mlm_prob=0.15, temporal_word_mask_prob=0.5),
            train=TrainConfig(max_steps=4, batch_size=4, lr=1e-3, warmup_ratio=0.25, checkpoint_every=2,
                              log_every=1, num_workers=0, precision="auto"),
            corpus=CorpusConfig(size="smoke", image_size=32, num_frames=8),
        )
    if name == "cpu":
        # 1,500 VTM + MLM + word-patch OT steps: about 6.5 minutes of training on two CPU cores (0.26 s a step),
        # plus the curve evaluations (benchmarks/RESULTS.md, CPU learning check). What makes direction words
        # learnable at this budget: each sampled frame moves the object by more than a 16-px patch (3 stored
        # frames, 21-px steps at 64 px), objects stay inside the frame (bounded motion), sine-cosine starting
        # positions, few blocks with many heads, rolling at 0.5 that alternates between the top/bottom patch
        # rows and the left/right patch columns of the 4x4 grid (block rows alone never tell left from right),
        # one moving object per clip, the direction word always masked, and VTM negatives that give the clip
        # another direction (any of the three, as multiple choice asks). Width 128 with 8 heads and 10 text
        # tokens (the corpus's captions have at most 9) halve the step of width 192 with 16 tokens and learn
        # direction in about as many samples at lr 2e-3 (lab note 2026-12-04).
        # The word-patch optimal-transport term (weight 0.1, as in UNITER and ViLT; not in the paper's
        # pre-training) makes the cloze pictures of masked words land on the object (RESULTS, Cloze alignment).
        model = ModelConfig(variant="tiny", width=128, heads=8, depth=3, image_size=64, patch_size=16,
                            num_frames=3, max_text_len=10, drop_path_rate=0.0, roll_ratio=0.5,
                            roll_selection="alternating", pos_embed_init="sincos")
        return Experiment(
            model=model,
            data=_data_for(model, mlm_prob=0.15, temporal_word_mask_prob=1.0, temporal_negatives=True),
            train=TrainConfig(max_steps=1500, batch_size=32, lr=2e-3, warmup_ratio=0.05, weight_decay=0.01,
                              loss_weights={"vtm": 1.0, "mlm": 1.0, "ot": 0.1}, checkpoint_every=250, log_every=25,
                              num_workers=None, precision="auto"),
            corpus=CorpusConfig(size="cpu", num_clips=6000, image_size=64, num_frames=3, motion="bounded",
                                speed=0.33, event_probs=(0.85, 0.05, 0.05, 0.05), two_object_prob=0.0),
        )
    if name == "paper":
        variant = variant or "base"
        model = ModelConfig(variant=variant, image_size=224, patch_size=16, num_frames=3, max_text_len=40,
                            init="imagenet21k" if variant in ("tiny", "small") else "imagenet")
        tiny = variant == "tiny"
        per_gpu = 32 if tiny else 16
        return Experiment(
            model=model,
            data=_data_for(model, pretrain_datasets=dict(PAPER_PRETRAIN_DATA)),
            train=TrainConfig(max_steps=100_000 if tiny else 200_000, batch_size=per_gpu,
                              global_batch_size=per_gpu * PAPER_GPUS, lr=1e-4, weight_decay=0.01,
                              betas=(0.9, 0.98), warmup_ratio=0.1, precision="auto",
                              loss_weights={"vtm": 1.0, "mlm": 1.0}, checkpoint_every=5000, log_every=100,
                              num_workers=8),
            corpus=CorpusConfig(size="smoke", image_size=224, num_frames=16),
        )
    if name == "rehearsal":
        exp = preset("paper", variant or "tiny")
        return exp.override(**{"train.max_steps": 2, "train.batch_size": 1, "train.global_batch_size": 2,
                               "train.checkpoint_every": 1, "train.log_every": 1, "train.num_workers": 0,
                               "train.max_eval_items": 6})
    raise ValueError(f"preset {name!r}: expected one of {list(PRESETS)}")


def pretrain_budget(scale: str, protocol: str = "default") -> dict[str, Any]:
    """Overrides of the ``scale`` preset for a reproduction's pre-training arm under ``protocol``
    (:data:`PAPER_PROTOCOLS`): at ``cpu`` :data:`CPU_PRETRAIN_STEPS`; at ``paper`` the protocol's batch
    and steps; ``smoke`` and ``rehearsal`` keep their presets' budgets."""
    if protocol not in PAPER_PROTOCOLS:
        raise ValueError(f"protocol {protocol!r}: expected one of {list(PAPER_PROTOCOLS)}")
    if scale == "cpu":
        return {"train.max_steps": CPU_PRETRAIN_STEPS}
    if scale == "paper":
        return dict(PAPER_PROTOCOLS[protocol])
    return {}


def finetune_budget(scale: str, task: str) -> dict[str, int | None]:
    """The fine-tuning budget of ``task`` at ``scale``: ``max_steps`` (None: from the epochs), ``epochs``,
    ``global_batch_size`` (None: per process) and ``batch_size`` (None: the preset's)."""
    if scale == "smoke":
        return {"max_steps": preset("smoke").train.max_steps, "epochs": None, "global_batch_size": None,
                "batch_size": None}
    if scale == "cpu":
        steps, batch = CPU_FINETUNE[task]
        return {"max_steps": steps, "epochs": None, "global_batch_size": None, "batch_size": batch}
    schedule = PAPER_FINETUNE["vcr" if task == "vcr" else "default"]
    if scale == "rehearsal":
        return {"max_steps": REHEARSAL_FINETUNE["max_steps"], "epochs": schedule["epochs"],
                "global_batch_size": REHEARSAL_FINETUNE["global_batch_size"], "batch_size": None}
    return {"max_steps": None, "epochs": schedule["epochs"], "global_batch_size": schedule["global_batch_size"],
            "batch_size": None}


def _data_for(model: ModelConfig, **changes: Any) -> DataConfig:
    mean, std = image_normalization(model)
    return DataConfig(num_frames=model.num_frames, image_size=model.image_size, max_text_len=model.max_text_len,
                      mean=mean, std=std, **changes)
