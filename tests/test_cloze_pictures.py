"""Cloze pictures (Fig. 6): drawing, the object outline, example items chosen in the open, the per-frame
alignment measure and the block whose features are transported."""

import math

import matplotlib.colors
import numpy as np
import pytest
import torch
from matplotlib.path import Path as MplPath

from allinone_lab.model import AllInOne
from allinone_lab.train.presets import preset
from allinone_lab.viz import frame_patches, load_bundle, load_corpus_clip
from allinone_lab.viz.cloze import (
    MASS_LABEL,
    OUTLINE_COLOUR,
    HeatmapRow,
    choose_layer,
    dimmed_grey,
    draw_heatmaps,
    figure_png,
    item_measure,
    layer_features,
    resolve_layer,
    run_cloze,
    typical_items,
)


@pytest.fixture(scope="module")
def smoke():
    return preset("smoke")


@pytest.fixture(scope="module")
def bundle(smoke):
    return load_bundle(None, experiment=smoke, seed=0)


def inner_clip(bundle):
    """A corpus test clip whose first object stays off the frame border in every frame (a closed outline)."""
    for index in range(40):
        clip = load_corpus_clip(index, bundle.data, bundle.corpus)
        mask = clip.object_mask(1).numpy()
        border = np.zeros(mask.shape[1:], dtype=bool)
        border[[0, -1], :] = border[:, [0, -1]] = True
        if mask.reshape(mask.shape[0], -1).any(axis=1).all() and not (mask & border).any():
            return clip
    pytest.skip("no clip of the smoke corpus keeps its object off the border")


def outline_paths(ax):
    """The object outline's paths drawn on a frame panel (the contour in the outline colour)."""
    target = matplotlib.colors.to_rgba(OUTLINE_COLOUR)
    paths = []
    for collection in ax.collections:
        colours = collection.get_edgecolor()
        if len(colours) and np.allclose(colours[0], target):
            paths += list(collection.get_paths())
    return paths


# Drawing ----------------------------------------------------------------------------------------------------
def test_drawing_has_a_grey_frame_heat_outline_and_measure_per_panel_and_a_labelled_colour_bar(bundle):
    clip = inner_clip(bundle)
    frames, (height, width) = clip.frames.shape[0], clip.frames.shape[1:3]
    size = bundle.model.config.patch_size
    grid = (height // size, width // size)
    patches = grid[0] * grid[1]
    mask = clip.object_mask(1).numpy()
    plan = torch.full((frames, patches), 1.0 / patches)
    plan[:, 0] = 4.0 / patches  # one hot patch per frame, renormalised
    plan = plan / plan.sum(-1, keepdim=True)
    rows = [HeatmapRow(clip.frames, plan, grid, "predicted: left (0.90)", "direction: [left]", True, mask,
                       "typical direction item (median): rank 2 of 3"),
            HeatmapRow(clip.frames, plan.flip(-1), grid, "predicted: red (0.50)", "colour: [red]", False, mask,
                       "typical colour item (median): rank 1 of 1")]
    fig = draw_heatmaps(rows, threshold=0.5)
    panels = fig.axes[: 2 * frames]
    assert all(len(ax.images) == 2 for ax in panels)  # the grey frame and the heat
    assert [panels[r * frames].get_title(loc="left") for r in range(2)] == [r.title for r in rows]
    assert [panels[r * frames].get_ylabel() for r in range(2)] == [r.label for r in rows]
    grey, heat = panels[0].images[0].get_array(), panels[0].images[1].get_array()
    assert grey.ndim == 2 and grey.max() <= 0.5 + 1e-6  # grey and dimmed, never the clip's own colours
    np.testing.assert_allclose(grey, dimmed_grey(clip.frames[0]), rtol=1e-6)
    assert heat.shape == (*grid, 4)
    alpha = np.asarray(heat[..., 3])
    assert alpha[0, 0] > 0 and (alpha.flatten()[1:] == 0).all()  # below half the peak: transparent
    assert panels[0].get_xlabel().startswith("in object ") and "uniform" in panels[0].get_xlabel()
    assert all(f"frame {f + 1}" in [t.get_text() for t in panels[f].texts] for f in range(frames))
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("rank 2 of 3" in t for t in texts) and any("rank 1 of 1" in t for t in texts)
    bars = [ax for ax in fig.axes if MASS_LABEL in ax.get_xlabel()]
    assert len(bars) == 1 and "uniform" in [t.get_text() for t in bars[0].texts]
    assert bars[0].get_xlim()[1] == pytest.approx(float(plan.max()))
    assert figure_png(fig)[:4] == b"\x89PNG"


def test_the_outline_coincides_with_the_corpus_mask(bundle):
    clip = inner_clip(bundle)
    frames, (height, width) = clip.frames.shape[0], clip.frames.shape[1:3]
    mask = clip.object_mask(1).numpy()
    fig = draw_heatmaps([HeatmapRow(clip.frames, None, (1, 1), mask=mask)])
    ys, xs = np.mgrid[0:height, 0:width]
    centres = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], axis=1)
    for f, ax in enumerate(fig.axes[:frames]):
        paths = outline_paths(ax)
        assert paths, f"frame {f}: no outline"
        inside = np.zeros(height * width, dtype=bool)
        for path in paths:
            for polygon in path.to_polygons():
                inside ^= MplPath(polygon).contains_points(centres)
        np.testing.assert_array_equal(inside.reshape(height, width), mask[f], err_msg=f"frame {f}")


def test_drawing_checks_its_arguments(bundle):
    clip = load_corpus_clip(0, bundle.data, bundle.corpus)
    row = HeatmapRow(clip.frames, None, (1, 1))
    with pytest.raises(ValueError, match="at least one row"):
        draw_heatmaps([])
    with pytest.raises(ValueError, match="threshold"):
        draw_heatmaps([row], threshold=1.5)
    with pytest.raises(ValueError, match="frame 9"):
        draw_heatmaps([row], frames=[9])
    assert len(draw_heatmaps([row], frames=[1]).axes) == 1


# The alignment measure ----------------------------------------------------------------------------------------
def masks_2x2():
    """3 frames of 8x8 px on a 2x2 grid of 4-px patches; the object fills patch 0, then patch 3, then is gone."""
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[0, :4, :4] = True
    masks[1, 4:, 4:] = True
    return masks


def test_item_measure_on_constructed_plans():
    masks = masks_2x2()
    on_object = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0], [0.25, 0.25, 0.25, 0.25]])
    exact = item_measure(on_object, masks)
    assert exact["mass_in_mask"] == 1.0 and exact["uniform"] == 0.25 and exact["ratio"] == 4.0
    assert exact["frames_visible"] == 2 and exact["frames_above_uniform"] == 2
    assert exact["in_object"][:2] == [1.0, 1.0] and math.isnan(exact["in_object"][2])
    assert exact["uniform_per_frame"][:2] == [0.25, 0.25] and math.isnan(exact["uniform_per_frame"][2])
    uniform = item_measure(torch.full((3, 4), 0.25), masks)
    assert uniform["ratio"] == pytest.approx(1.0) and uniform["frames_above_uniform"] == 0
    off = item_measure(torch.tensor([[0, 1.0, 0, 0], [0, 0, 1.0, 0], [1.0, 0, 0, 0]]), masks)
    assert off["mass_in_mask"] == 0.0 and off["frames_above_uniform"] == 0
    half = item_measure(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]]), masks)
    assert half["frames_above_uniform"] == 1 and half["mass_in_mask"] == pytest.approx(0.5)
    never = item_measure(torch.full((3, 4), 0.25), torch.zeros(3, 8, 8, dtype=torch.bool))
    assert math.isnan(never["mass_in_mask"]) and never["frames_visible"] == 0


# Example items ------------------------------------------------------------------------------------------------
def test_typical_items_are_the_median_of_each_kind_with_their_ranks():
    ratios = {"direction": [3.0, 0.5, 2.0, 1.0, 4.0], "colour": [0.2, 5.0, 1.5, 0.7], "shape": [float("nan"), 0.9]}
    items = [{"index": 10 * k + i, "kind": kind, "ratio": r, "frames_above_uniform": 2, "frames_visible": 3}
             for k, (kind, values) in enumerate(ratios.items()) for i, r in enumerate(values)]
    picks = typical_items(items)
    direction = picks["direction"]  # ratios 4, 3, 2, 1, 0.5: the median is 2.0, third of five
    assert direction.item["ratio"] == 2.0 and (direction.rank, direction.count) == (3, 5)
    # over all 10 measured items (the NaN one left out): 5, 4, 3, 2, 1.5, 1, 0.9, 0.7, 0.5, 0.2
    assert (direction.overall_rank, direction.overall) == (4, 10)
    colour = picks["colour"]  # 5, 1.5, 0.7, 0.2: an even count takes the upper middle, second of four
    assert colour.item["ratio"] == 1.5 and (colour.rank, colour.count, colour.overall_rank) == (2, 4, 5)
    shape = picks["shape"]
    assert shape.item["ratio"] == 0.9 and (shape.rank, shape.count) == (1, 1)
    note = direction.note()
    assert "median" in note and "rank 3 of 5 direction items" in note and "4 of 10 in all" in note
    assert "2.00x uniform" in note and "2 of 3 frames" in note and f"#{direction.item['index']}" in note
    assert typical_items(items, kinds=("size",)) == {}


# Which block's features -------------------------------------------------------------------------------------
def test_resolve_and_choose_layer(smoke):
    model = AllInOne(smoke.model.replace(depth=3))
    assert [resolve_layer(model, x) for x in (None, -1, -3, 1, 3)] == [3, 3, 1, 1, 3]
    with pytest.raises(ValueError, match="blocks 1..3"):
        resolve_layer(model, 4)
    with pytest.raises(ValueError, match="blocks 1..3"):
        resolve_layer(model, 0)
    rows = [{"layer": 1, "kind": "direction", "items_in_several_frames": 0.8},
            {"layer": 2, "kind": "direction", "items_in_several_frames": 0.8},
            {"layer": 3, "kind": "direction", "items_in_several_frames": 0.5},
            {"layer": 3, "kind": "colour", "items_in_several_frames": 0.9}]
    assert choose_layer(rows) == 2  # a tie goes to the block nearer the output
    assert choose_layer(rows, kind="colour") == 3
    with pytest.raises(ValueError, match="no rows of kind"):
        choose_layer(rows, kind="shape")


def test_layer_features_restore_every_block_s_rolling(bundle, smoke):
    # Blocks that add nothing: every block's output is the rolled input, so the frame each patch came from
    # is known; alternating rolling over three blocks leaves tokens of other frames in most slots.
    cfg = smoke.model.replace(depth=3, roll_ratio=0.5, roll_selection="alternating", first_temporal_block=1)
    model = AllInOne(cfg).eval()
    for block in model.blocks:
        for layer in (block.attn.proj, block.mlp.fc2):
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
    clip = load_corpus_clip(0, bundle.data, bundle.corpus)
    ids = torch.randint(1000, 2000, (1, cfg.max_text_len))
    out, features = layer_features(model, clip.video[None], ids, torch.ones_like(ids), [1, 2, None])
    own = model.norm(model.embed_video(clip.video[None]))[:, :, cfg.num_prefix_tokens :]
    assert sorted(features) == [1, 2, 3]
    for block, (text, patches) in features.items():
        torch.testing.assert_close(patches, own, msg=f"block {block}")
        assert text.shape == (1, cfg.max_text_len, cfg.embed_dim)
    torch.testing.assert_close(features[3][0], out.text_tokens)
    torch.testing.assert_close(features[3][1], frame_patches(model, out))
    assert not torch.equal(out.video_frame_tokens[:, :, cfg.num_prefix_tokens :], own)


def test_run_cloze_reads_the_chosen_block(bundle):
    clip = load_corpus_clip(0, bundle.data, bundle.corpus, task="cloze")
    word = [str(clip.info["word"])]
    last = run_cloze(bundle.model, clip, words=word)
    assert last.layer == len(bundle.model.blocks)
    torch.testing.assert_close(run_cloze(bundle.model, clip, words=word, layer=-1).plans, last.plans)
    first = run_cloze(bundle.model, clip, words=word, layer=1)
    assert first.layer == 1 and first.plans.shape == last.plans.shape
    assert [p.top for p in first.predictions] == [p.top for p in last.predictions]  # the same forward pass
    torch.testing.assert_close(first.plans.sum(-1), torch.ones(first.plans.shape[:-1]), atol=1e-5, rtol=1e-5)
