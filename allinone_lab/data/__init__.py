"""Data half of allinone_lab: video reading, text processing, datasets and the built-in corpus."""

from .config import IMAGENET_MEAN, IMAGENET_STD, INCEPTION_MEAN, INCEPTION_STD, DataConfig
from .corpus import CorpusConfig, build_corpus, corpus_dataset, load_report
from .datasets import (
    ClassificationDataset,
    ClozeDataset,
    MultipleChoiceDataset,
    OpenQADataset,
    PairsDataset,
    RetrievalDataset,
    VCRDataset,
    VideoDataset,
    build_answer_vocab,
    collate,
    load_answer_vocab,
)
from .mixture import MixtureDataset
from .shards import ShardDataset, ShardSource, pack_shards
from .table import AnnotationTable, iter_records
from .text import (
    DIRECTION_WORDS,
    TEMPORAL_WORDS,
    MaskedText,
    TextProcessor,
    load_tokenizer,
    mirror_text,
    vtm_partner,
)
from .video import (
    VideoReadError,
    draw_vcr_masks,
    example_clips,
    frames_to_tensor,
    load_clip,
    read_frames,
    sample_indices,
    transform_masks,
    write_video,
)

# From .prepare, imported on first use (so that `python -m allinone_lab.data.prepare` runs it only once).
# The submodule is `allinone_lab.data.prepare`; its `prepare()` function is exported as `prepare_dataset`.
_LAZY = {"DATASETS": "DATASETS", "build_dataset": "build_dataset", "prepare_dataset": "prepare"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(".prepare", __name__), _LAZY[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DATASETS",
    "build_dataset",
    "prepare_dataset",
    "AnnotationTable",
    "ClassificationDataset",
    "ClozeDataset",
    "CorpusConfig",
    "MultipleChoiceDataset",
    "MixtureDataset",
    "OpenQADataset",
    "PairsDataset",
    "RetrievalDataset",
    "ShardDataset",
    "ShardSource",
    "VCRDataset",
    "VideoDataset",
    "build_answer_vocab",
    "build_corpus",
    "collate",
    "corpus_dataset",
    "iter_records",
    "load_answer_vocab",
    "load_report",
    "pack_shards",
    "DIRECTION_WORDS",
    "TEMPORAL_WORDS",
    "MaskedText",
    "TextProcessor",
    "load_tokenizer",
    "mirror_text",
    "vtm_partner",
    "DataConfig",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INCEPTION_MEAN",
    "INCEPTION_STD",
    "VideoReadError",
    "draw_vcr_masks",
    "example_clips",
    "frames_to_tensor",
    "load_clip",
    "read_frames",
    "sample_indices",
    "transform_masks",
    "write_video",
]
