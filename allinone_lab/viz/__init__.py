"""Visualisations that read a model's outputs: text-to-video attention over token positions (Fig. 4),
cloze with optimal transport (Fig. 6) and the interactive cloze explorer.

This package composes the model and the data; it never imports training code.
"""

from .attention import (
    AttentionProfile,
    attention_profile,
    plot_attention_profiles,
    rolled_mask,
    rolled_share,
    text_to_video_distribution,
)
from .cloze import (
    KINDS,
    SCOPES,
    ClozeResult,
    EncodedCaption,
    HeatmapRow,
    Word,
    WordPrediction,
    cloze_alignment,
    draw_heatmaps,
    encode_caption,
    figure_png,
    frame_patches,
    mask_caption,
    mass_in_mask,
    patch_coverage,
    plot_cloze,
    predictions_table,
    run_cloze,
    select_words,
    source_tokens,
    threshold_plan,
    top_k_tokens,
    uniform_mass_in_mask,
    word_patch_plans,
    word_plan,
)
from .sources import (
    EXAMPLE_CAPTIONS,
    Clip,
    ModelBundle,
    Table,
    corpus_pair_batches,
    data_config_for,
    display_frames,
    example_clip_names,
    find_checkpoints,
    load_bundle,
    load_corpus_clip,
    load_example_clip,
    load_video_clip,
    resolve_device,
)
from .words import WORD_CLASSES, is_default_cloze_word, word_class, word_kind


def __getattr__(name: str):
    if name == "ClozeExplorer":  # ipywidgets is imported only when the explorer is used
        from .explorer import ClozeExplorer

        return ClozeExplorer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AttentionProfile",
    "attention_profile",
    "Clip",
    "ClozeExplorer",
    "ClozeResult",
    "HeatmapRow",
    "EXAMPLE_CAPTIONS",
    "EncodedCaption",
    "KINDS",
    "ModelBundle",
    "Table",
    "SCOPES",
    "WORD_CLASSES",
    "Word",
    "WordPrediction",
    "cloze_alignment",
    "draw_heatmaps",
    "corpus_pair_batches",
    "data_config_for",
    "display_frames",
    "encode_caption",
    "example_clip_names",
    "figure_png",
    "find_checkpoints",
    "frame_patches",
    "is_default_cloze_word",
    "load_bundle",
    "load_corpus_clip",
    "load_example_clip",
    "load_video_clip",
    "mask_caption",
    "mass_in_mask",
    "patch_coverage",
    "plot_attention_profiles",
    "plot_cloze",
    "predictions_table",
    "resolve_device",
    "rolled_mask",
    "rolled_share",
    "run_cloze",
    "select_words",
    "source_tokens",
    "text_to_video_distribution",
    "threshold_plan",
    "top_k_tokens",
    "uniform_mass_in_mask",
    "word_class",
    "word_kind",
    "word_patch_plans",
    "word_plan",
]
