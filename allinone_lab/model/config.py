"""Model configuration: one dataclass, one entry per paper variant.

Every architectural hyper-parameter of the All-in-one Transformer lives here. Variants follow the
paper's Table 1 (tiny/small/base) plus ViT-L for Fig. 7.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..configbase import ConfigBase

TemporalMode = Literal["roll", "none", "channel_shift", "flatten", "timesformer", "decoupled"]
RollSelection = Literal["block", "random", "varying", "alternating"]
Initialization = Literal["scratch", "imagenet", "imagenet21k"]

TEMPORAL_MODES: tuple[str, ...] = ("roll", "none", "channel_shift", "flatten", "timesformer", "decoupled")
ROLL_SELECTIONS: tuple[str, ...] = ("block", "random", "varying", "alternating")
INITIALIZATIONS: tuple[str, ...] = ("scratch", "imagenet", "imagenet21k")
POS_EMBED_INITS: tuple[str, ...] = ("random", "sincos")


@dataclass(frozen=True)
class Variant:
    """Backbone width/depth of one named variant."""

    width: int
    heads: int
    depth: int
    mlp_ratio: float = 4.0


VARIANTS: dict[str, Variant] = {
    "tiny": Variant(width=192, heads=3, depth=12),  # DeiT-Ti
    "small": Variant(width=384, heads=6, depth=12),  # DeiT-S
    "base": Variant(width=768, heads=12, depth=12),  # ViT-B/16
    "large": Variant(width=1024, heads=16, depth=24),  # ViT-L/16
}


@dataclass
class ModelConfig(ConfigBase):
    """Hyper-parameters of the All-in-one Transformer.

    The backbone shape comes from ``variant`` unless ``width``/``heads``/``depth`` override it (small
    custom backbones for CPU experiments).
    """

    variant: str = "base"
    width: int | None = None
    heads: int | None = None
    depth: int | None = None
    mlp_ratio: float | None = None

    # Inputs.
    image_size: int = 224
    patch_size: int = 16
    num_frames: int = 3
    max_text_len: int = 40
    vocab_size: int = 30522
    in_chans: int = 3

    # Regularisation.
    drop_path_rate: float = 0.1
    dropout: float = 0.0

    # Temporal modelling (Tables 8a, 8b, 9, 11a, 11b).
    temporal: str = "roll"
    roll_ratio: float = 0.25
    first_temporal_block: int = 1  # 1-based, as in Table 11a ("from block 1, 3 or 6")
    roll_selection: str = "block"
    roll_seed: int = 0  # fixes the `random` selection used in eval mode
    shuffle_patches: bool = False  # released checkpoints: permute each frame's patches before rolling
    # Apply rolling / channel shift to video-only input too. The released code only rolls joint video-text
    # input (its video-only retrieval features come from independent frames), so its checkpoints load
    # with this off.
    roll_unimodal: bool = True

    # Input embeddings (Table 10).
    use_spe: bool = True  # spatio-temporal position embedding for video tokens
    use_mte: bool = True  # modality-type embedding (0 text, 1 video)
    distilled: bool = False  # DeiT distillation token after the video CLS (released small checkpoints)
    # Add ``temporal_embed`` to the patch tokens (part of SPE). The released distilled small model never
    # does (its DeiT ``visual_embed`` skips it), so its checkpoints load with this off.
    use_temporal_embed: bool = True
    # Starting values of the spatial and temporal position embeddings (both stay learnable): "random"
    # (truncated normal, std 0.02, as timm's ViT) or "sincos" (fixed-frequency sine/cosine of the patch's
    # row and column and of the frame index, as MAE), which gives neighbouring positions similar vectors.
    pos_embed_init: str = "random"
    text_layernorm_eps: float = 1e-12  # BERT's embedding LayerNorm
    layernorm_eps: float = 1e-6  # blocks and final norm (timm ViT)

    # Heads.
    vtc_dim: int = 512
    vtc_temperature: float = 0.05
    vtc_learnable_temperature: bool = False
    num_answers: int = 0  # open-ended QA head over this many answers (0: no head)
    mc_head: bool = False  # small multiple-choice scoring head (else the VTM "match" logit is used)

    # Initialisation (Table 6).
    init: str = "scratch"
    init_file: str | None = None  # local timm checkpoint; None: the local Hugging Face cache (never downloaded)

    def __post_init__(self) -> None:
        self.validate()

    # Resolved backbone shape -------------------------------------------------------------------
    @property
    def embed_dim(self) -> int:
        return self.width if self.width is not None else VARIANTS[self.variant].width

    @property
    def num_heads(self) -> int:
        return self.heads if self.heads is not None else VARIANTS[self.variant].heads

    @property
    def num_layers(self) -> int:
        return self.depth if self.depth is not None else VARIANTS[self.variant].depth

    @property
    def mlp_ratio_(self) -> float:
        return self.mlp_ratio if self.mlp_ratio is not None else VARIANTS[self.variant].mlp_ratio

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    @property
    def num_prefix_tokens(self) -> int:
        """Visual tokens before the patches: the video CLS, plus the distillation token if any."""
        return 2 if self.distilled else 1

    @property
    def visual_len(self) -> int:
        """Visual tokens per frame (CLS [+ dist] + patches): 197 at 224 px, patch 16."""
        return self.num_prefix_tokens + self.num_patches

    def roll_k(self, visual_len: int | None = None) -> int:
        """Positions rolled on each side: ``floor(L * ratio / 2)`` with L the visual tokens per frame, at least
        one for a positive ratio (:func:`~allinone_lab.model.temporal.rolled_per_side`)."""
        from .temporal import rolled_per_side

        return rolled_per_side(self.visual_len if visual_len is None else visual_len, self.roll_ratio)

    def validate(self) -> None:
        def bad(field: str, expected: str) -> ValueError:
            return ValueError(f"ModelConfig.{field}={getattr(self, field)!r}: expected {expected}")

        if self.variant not in VARIANTS:
            raise bad("variant", f"one of {sorted(VARIANTS)}")
        if self.temporal not in TEMPORAL_MODES:
            raise bad("temporal", f"one of {list(TEMPORAL_MODES)}")
        if self.roll_selection not in ROLL_SELECTIONS:
            raise bad("roll_selection", f"one of {list(ROLL_SELECTIONS)}")
        if self.init not in INITIALIZATIONS:
            raise bad("init", f"one of {list(INITIALIZATIONS)}")
        if self.pos_embed_init not in POS_EMBED_INITS:
            raise bad("pos_embed_init", f"one of {list(POS_EMBED_INITS)}")
        if self.patch_size not in (8, 14, 16, 32):
            raise bad("patch_size", "16 (default), 32, 14 or 8")
        if self.image_size <= 0 or self.image_size % self.patch_size:
            raise bad("image_size", f"a positive multiple of patch_size={self.patch_size}")
        if self.num_frames < 1:
            raise bad("num_frames", "an integer >= 1")
        if self.max_text_len < 1:
            raise bad("max_text_len", "an integer >= 1")
        if not 0.0 <= self.roll_ratio <= 1.0:
            raise bad("roll_ratio", "a fraction in [0, 1]")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise bad("drop_path_rate", "a probability in [0, 1)")
        if self.embed_dim % self.num_heads:
            raise bad("width", f"a multiple of heads={self.num_heads}")
        if not 1 <= self.first_temporal_block <= self.num_layers:
            raise bad("first_temporal_block", f"a 1-based block index in [1, {self.num_layers}]")
        if self.vtc_temperature <= 0:
            raise bad("vtc_temperature", "a positive number")
        if self.num_answers < 0:
            raise bad("num_answers", "an integer >= 0")

