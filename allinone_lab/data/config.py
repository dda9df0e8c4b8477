"""Data configuration: how clips and texts are turned into tensors.

The data half knows nothing of the model: normalisation statistics are plain values (copy them from the
backbone's config, e.g. ``timm`` ``pretrained_cfg["mean"]``), not a model object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..configbase import ConfigBase

ON_ERROR_MODES: tuple[str, ...] = ("raise", "skip")

# ImageNet statistics (timm / torchvision default) and the (0.5, 0.5, 0.5) of ViT-B/16 AugReg checkpoints.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
INCEPTION_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
INCEPTION_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)


@dataclass
class DataConfig(ConfigBase):
    """How a sample becomes tensors.

    Clips come out as float ``(S, C, H, W)`` with ``S = num_frames`` and ``H = W = image_size``; texts as
    ``input_ids (L,)`` int64 padded to ``L = max_text_len``.
    """

    num_frames: int = 3  # S: TSN segments, one frame per segment
    image_size: int = 224  # square crop size
    resize_scale: float = 1.0  # resize the short side to image_size * resize_scale before cropping
    max_text_len: int = 40
    mirror_prob: float = 0.0  # pre-training pairs: mirror a clip left-right, "left" and "right" swapped in its text
    mean: tuple[float, ...] = field(default=IMAGENET_MEAN)
    std: tuple[float, ...] = field(default=IMAGENET_STD)
    # Text objectives.
    mlm_prob: float = 0.15
    whole_word_mask: bool = False
    temporal_word_mask_prob: float = 0.0  # extra probability that a temporal word (left, right...) is masked
    vtm_neg_prob: float = 0.5  # fraction of VTM pairs whose video is replaced by another item's video
    temporal_negatives: bool = False  # corpus: negatives that differ from the caption only in a temporal word
    # Bad inputs.
    on_error: str = "raise"  # "raise" or "skip"
    max_skips_per_item: int = 10  # on_error="skip": replacements tried for one item before giving up
    tokenizer_path: str | None = None  # explicit vocab.txt / tokenizer directory (first in the offline order)
    # Pre-training mixture: prepared pair datasets under data_root and their shares of each epoch, e.g.
    # {"webvid": 0.5, "howto100m": 0.5}; None: the built-in corpus, or data_root's only dataset.
    pretrain_datasets: dict[str, float] | None = None

    def __post_init__(self) -> None:
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        self.validate()

    def validate(self) -> None:
        def bad(name: str, expected: str) -> ValueError:
            return ValueError(f"DataConfig.{name}={getattr(self, name)!r}: expected {expected}")

        if not isinstance(self.num_frames, int) or self.num_frames < 1:
            raise bad("num_frames", "an integer >= 1")
        if not isinstance(self.image_size, int) or self.image_size < 1:
            raise bad("image_size", "an integer >= 1 (pixels)")
        if self.resize_scale < 1.0:
            raise bad("resize_scale", "a number >= 1.0 (the short side is resized to image_size * scale)")
        if not isinstance(self.max_text_len, int) or self.max_text_len < 3:
            raise bad("max_text_len", "an integer >= 3 ([CLS], one token, [SEP])")
        if len(self.mean) != 3:
            raise bad("mean", "3 values (R, G, B) in [0, 1]")
        if len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise bad("std", "3 positive values (R, G, B)")
        for name in ("mlm_prob", "temporal_word_mask_prob", "vtm_neg_prob", "mirror_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise bad(name, "a probability in [0, 1]")
        if self.on_error not in ON_ERROR_MODES:
            raise bad("on_error", f"one of {list(ON_ERROR_MODES)}")
        if self.max_skips_per_item < 1:
            raise bad("max_skips_per_item", "an integer >= 1")
        mix = self.pretrain_datasets
        if mix is not None and (not isinstance(mix, dict) or not mix
                                or any(not isinstance(k, str) or not isinstance(v, int | float) or v < 0
                                       for k, v in mix.items())
                                or not any(v > 0 for v in mix.values())):
            raise bad("pretrain_datasets", "None or a dict {dataset name: non-negative share}, one share positive")

