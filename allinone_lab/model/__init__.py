"""The All-in-one Transformer: configuration, backbone, temporal modules, heads and measurements.

The model knows nothing of data files, training or notebooks.
"""

from .allinone import AllInOne, AllInOneOutput, TextEmbedding
from .attention import AttentionMaps, attention_maps, capture_attention, explicit_attention
from .checkpoint import (
    CheckpointError,
    CheckpointReport,
    from_checkpoint,
    infer_config,
    load_checkpoint,
    read_checkpoint,
    save_converted,
    to_released_state_dict,
)
from .config import INITIALIZATIONS, ROLL_SELECTIONS, TEMPORAL_MODES, VARIANTS, ModelConfig, Variant
from .measure import (
    analytic_flops,
    attention_score_flops,
    count_flops,
    count_parameters,
    dummy_inputs,
    throughput,
)
from .pretrained import (
    LoadReport,
    MissingWeightsError,
    image_normalization,
    initialize_from_timm,
    load_backbone_weights,
    require_init_weights,
    timm_tag,
)
from .temporal import (
    ChannelShift,
    TokenRolling,
    restore_frame_order,
    roll_positions,
    roll_tokens,
    shift_channels,
    token_origins,
)


def build_model(config: ModelConfig | None = None, **overrides) -> AllInOne:
    """Build an :class:`AllInOne` from ``config`` (default: ``ModelConfig()``) with field overrides, and
    initialise its backbone as ``config.init`` says (timm weights from ``config.init_file`` or the local
    Hugging Face cache; never downloaded: a missing file raises ``MissingWeightsError`` before the model is
    built, with the command that fetches it)."""
    config = (config or ModelConfig()).replace(**overrides) if overrides else (config or ModelConfig())
    if config.init != "scratch":
        require_init_weights(config)
    model = AllInOne(config)
    if config.init != "scratch":
        model.init_report = initialize_from_timm(model)
    return model


__all__ = [
    "AttentionMaps",
    "attention_maps",
    "capture_attention",
    "explicit_attention",
    "AllInOne",
    "AllInOneOutput",
    "ChannelShift",
    "CheckpointError",
    "CheckpointReport",
    "INITIALIZATIONS",
    "LoadReport",
    "ModelConfig",
    "ROLL_SELECTIONS",
    "TEMPORAL_MODES",
    "TextEmbedding",
    "TokenRolling",
    "VARIANTS",
    "Variant",
    "analytic_flops",
    "attention_score_flops",
    "build_model",
    "count_flops",
    "count_parameters",
    "dummy_inputs",
    "from_checkpoint",
    "image_normalization",
    "infer_config",
    "initialize_from_timm",
    "MissingWeightsError",
    "require_init_weights",
    "load_backbone_weights",
    "load_checkpoint",
    "read_checkpoint",
    "restore_frame_order",
    "roll_positions",
    "roll_tokens",
    "save_converted",
    "shift_channels",
    "token_origins",
    "throughput",
    "timm_tag",
    "to_released_state_dict",
]
