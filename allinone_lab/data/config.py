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


# The decoders a video can be read with (``DataConfig.decoder``). decord is the default the paper's design names;
# torchcodec (PyTorch's FFmpeg decoder; it needs FFmpeg's shared libraries) numbers and samples frames the same
# way. Either falls back to PyAV for a file it cannot read. benchmarks/decode_rate.py measures them.
VIDEO_DECODERS: tuple[str, ...] = ("decord", "torchcodec")


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
    decoder: str = "decord"  # video decoder: one of VIDEO_DECODERS (PyAV reads what it cannot)
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
    # Pre-training pairs streamed from packed WebDataset shards (allinone_lab.data.shards) instead of files:
    # {name: pack} where a pack is its directory, shards.json, an http(s) URL of it, or {"location": ...,
    # "url": template with {name}} (a pipe: command); shares from pretrain_datasets (the same names) or equal.
    pretrain_shards: dict[str, str | dict[str, str]] | None = None
    shard_streams: int = 8  # streams per micro-batch of a step; loader workers must divide accumulation x this

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
        if self.decoder not in VIDEO_DECODERS:
            raise bad("decoder", f"one of {list(VIDEO_DECODERS)}")
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
        packs = self.pretrain_shards
        if packs is not None:
            def is_pack(v: object) -> bool:
                return (isinstance(v, str) and bool(v)) or (
                    isinstance(v, dict) and set(v) <= {"location", "url"} and isinstance(v.get("location"), str))

            if not isinstance(packs, dict) or not packs or any(not isinstance(k, str) or not is_pack(v)
                                                               for k, v in packs.items()):
                raise bad("pretrain_shards", 'None or a dict {name: pack directory, shards.json or URL, or '
                          '{"location": ..., "url": ...}}')
            if mix is not None and set(mix) != set(packs):
                raise bad("pretrain_shards", f"the same names as pretrain_datasets {sorted(mix)} (their shares)")
        if isinstance(self.shard_streams, bool) or not isinstance(self.shard_streams, int) or self.shard_streams < 1:
            raise bad("shard_streams", "an integer >= 1")

