"""Visualisations: the Fig. 4 attention distribution, cloze with optimal transport, the explorer (headless)."""

import json

import numpy as np
import pytest
import torch

from allinone_lab.data import collate, corpus_dataset, load_tokenizer
from allinone_lab.data.corpus import COLOURS, DIRECTIONS, MOTION_TEMPLATES, SHAPES, SIZES
from allinone_lab.io import atomic_save
from allinone_lab.model import AllInOne, save_converted
from allinone_lab.model.attention import AttentionMaps, AttentionRecord, attention_maps
from allinone_lab.model.temporal import roll_positions
from allinone_lab.train.presets import preset
from allinone_lab.viz import (
    Clip,
    attention_profile,
    cloze_alignment,
    encode_caption,
    figure_png,
    frame_patches,
    load_bundle,
    load_corpus_clip,
    mask_caption,
    mass_in_mask,
    patch_coverage,
    plot_attention_profiles,
    plot_cloze,
    plot_text,
    predictions_table,
    rolled_mask,
    run_cloze,
    select_words,
    source_tokens,
    text_to_video_distribution,
    threshold_plan,
    uniform_mass_in_mask,
    word_class,
    word_kind,
    word_patch_plans,
    word_plan,
)
from allinone_lab.viz.words import CORPUS_VERBS


@pytest.fixture(scope="module")
def smoke():
    return preset("smoke")


@pytest.fixture(scope="module")
def bundle(smoke):
    return load_bundle(None, experiment=smoke, seed=0)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


# Fig. 4 -----------------------------------------------------------------------------------------------------
def fake_maps(weights: dict[int, torch.Tensor], text_len: int, visual_len: int, frames: int, temporal="roll",
              text_mask=None, rolled=None) -> AttentionMaps:
    return AttentionMaps(record=AttentionRecord(joint=weights), output=None, frames=frames, text_len=text_len,
                         visual_len=visual_len, temporal=temporal, rolled=rolled or {},
                         origins=torch.arange(frames)[None, :, None].expand(len(weights), frames, visual_len),
                         text_mask=text_mask)


def test_distribution_renormalises_text_rows_over_visual_keys_and_weights_real_tokens():
    # 1 clip, 2 frames, 2 text tokens (the second is padding), 3 visual tokens, 1 head.
    weights = torch.zeros(2, 1, 5, 5)
    weights[0, 0, 0] = torch.tensor([0.5, 0.0, 0.25, 0.25, 0.0])  # frame 1, real token: visual [0.5, 0.5, 0]
    weights[1, 0, 0] = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0])  # frame 2, real token: visual [0, 0, 1]
    weights[:, 0, 1] = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0])  # padding token: must not count
    maps = fake_maps({0: weights}, text_len=2, visual_len=3, frames=2, text_mask=torch.tensor([[1, 0]]))
    dist = text_to_video_distribution(maps)
    torch.testing.assert_close(dist, torch.tensor([[[0.25, 0.25, 0.5]]]))
    no_cls = text_to_video_distribution(maps, include_cls=False)
    torch.testing.assert_close(no_cls, torch.tensor([[[0.5, 0.5]]]))


def test_flatten_distribution_folds_frames_onto_positions():
    weights = torch.zeros(1, 1, 7, 7)  # 1 text token, 2 frames of 3 visual tokens
    weights[0, 0, 0] = torch.tensor([0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    maps = fake_maps({0: weights}, text_len=1, visual_len=3, frames=2, temporal="flatten")
    torch.testing.assert_close(text_to_video_distribution(maps), torch.full((1, 1, 3), 1 / 3))


def test_real_model_distribution_sums_to_one_and_rolled_positions_are_marked(smoke):
    ds = corpus_dataset("retrieval", "test", smoke.data, smoke.corpus, train=False)
    batch = collate([ds[i] for i in range(3)])
    cfg = smoke.model.replace(roll_ratio=0.5, depth=3, first_temporal_block=2)
    model = AllInOne(cfg).eval()
    maps = attention_maps(model, batch["video"], batch["input_ids"], batch["attention_mask"])
    dist = text_to_video_distribution(maps)
    assert dist.shape == (3, cfg.num_heads, cfg.visual_len)
    torch.testing.assert_close(dist.sum(-1), torch.ones(3, cfg.num_heads), atol=1e-5, rtol=1e-5)
    profile = attention_profile(model, [batch], "rolling")
    torch.testing.assert_close(profile.distribution, dist, atol=1e-6, rtol=1e-5)
    prev, nxt = roll_positions("block", cfg.visual_len, cfg.roll_k())
    expected = torch.zeros(cfg.visual_len, dtype=torch.bool)
    expected[prev], expected[nxt] = True, True
    assert not profile.rolled[0].any()  # block 1 has no rolling
    assert torch.equal(profile.rolled[1], expected) and torch.equal(profile.rolled[2], expected)
    assert rolled_mask(maps.rolled, 3, cfg.visual_len, include_cls=False).shape == (3, cfg.visual_len - 1)
    baseline = attention_profile(AllInOne(cfg.replace(roll_ratio=0.0)).eval(), [batch], "no rolling")
    assert not baseline.rolled.any()
    fig = plot_attention_profiles([profile, baseline])
    bars = [p for p in fig.axes[0].patches if p.get_height() > 0]
    orange = [p for p in bars if p.get_facecolor()[:3] == pytest.approx((1.0, 0.498, 0.055), abs=1e-2)]
    assert len(bars) == cfg.visual_len and len(orange) == int(expected.sum())
    assert figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


# Words ------------------------------------------------------------------------------------------------------
def test_word_classes_cover_the_corpus_vocabulary():
    assert all(word_class(w) == "noun" and word_kind(w) == "shape" for w in SHAPES)
    assert all(word_class(w) == "adjective" and word_kind(w) == "colour" for w in COLOURS)
    assert all(word_class(w) == "adjective" and word_kind(w) == "size" for w in SIZES)
    assert all(word_class(w) == "adverb" and word_kind(w) == "direction" for w in DIRECTIONS)
    assert all(word_class(w) == "verb" for w in CORPUS_VERBS)
    template_words = {w for t in MOTION_TEMPLATES for w in t.replace("{", " ").replace("}", " ").split()}
    template_words -= {"adj", "shape", "dir"}
    assert {w: word_class(w) for w in template_words} == {"a": "function", "the": "function", "is": "function",
                                                           "moves": "verb", "moving": "verb", "goes": "verb"}
    assert [word_class(w) for w in ("jumping", "quickly", "wooden", "...")] == ["verb", "adverb", "noun", "function"]


def test_default_words_are_nouns_and_verbs_and_users_pick_any(tokenizer):
    caption = encode_caption("the big red circle moves left", 16, tokenizer)
    assert [w.text for w in caption.words] == ["the", "big", "red", "circle", "moves", "left"]
    assert select_words(caption) == [3, 4]
    assert select_words(caption, ["LEFT", 1]) == [1, 5]
    with pytest.raises(ValueError, match="'blue' is not in the caption"):
        select_words(caption, ["blue"])
    with pytest.raises(ValueError, match="word index 9"):
        select_words(caption, [9])
    pieces = encode_caption("a skateboarder waves", 16, tokenizer)
    long_word = pieces.words[1]
    assert long_word.text == "skateboarder" and len(long_word.pieces) > 1
    with pytest.raises(ValueError, match="caption"):
        encode_caption("   ", 16, tokenizer)


# Cloze ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus_clip(bundle):
    return load_corpus_clip(0, bundle.data, bundle.corpus)


def test_cloze_masks_the_chosen_words_and_predicts_sorted_top_k(bundle, corpus_clip, tokenizer):
    result = run_cloze(bundle.model, corpus_clip, words=None, top_k=4, tokenizer=tokenizer)
    nouns_verbs = [w.index for w in result.caption.words if w.word_class in ("noun", "verb")]
    assert result.masked == nouns_verbs and len(result.predictions) == len(nouns_verbs)
    # Recompute what the model should have seen: the chosen words' pieces replaced by [MASK].
    ids = result.caption.input_ids.clone()
    positions = [p for i in result.masked for p in result.caption.words[i].pieces]
    ids[positions] = tokenizer.mask_token_id
    with torch.no_grad():
        out = bundle.model(corpus_clip.video[None], ids[None], result.caption.attention_mask[None],
                           shuffle_patches=False)
        probs = bundle.model.mlm_logits(out)[0].softmax(-1)
    for pred in result.predictions:
        for position, candidates in zip(pred.word.pieces, pred.candidates, strict=True):
            assert len(candidates) == 4
            values = [p for _, p in candidates]
            assert values == sorted(values, reverse=True)
            best = probs[position].topk(4)
            assert [tokenizer.convert_ids_to_tokens(int(i)) for i in best.indices] == [t for t, _ in candidates]
            assert values == pytest.approx(best.values.tolist(), rel=1e-5)
    table = predictions_table(result, top_k=2)
    assert [row["word"] for row in table] == [pred.word.text for pred in result.predictions]
    assert all(row["top_k"].count(",") == 1 for row in table)
    user = run_cloze(bundle.model, corpus_clip, words=[result.caption.words[2].text], tokenizer=tokenizer)
    assert [p.word.text for p in user.predictions][0] == result.caption.words[2].text


def test_plans_are_per_frame_distributions_that_follow_the_features():
    # Word i has exactly the features of patch i (in every frame): the exact plan maps word i onto patch i.
    torch.manual_seed(0)
    basis = torch.linalg.qr(torch.randn(8, 8))[0][:3]
    patches = basis.expand(2, 2, 3, 8).clone()  # (B, S, N, D)
    words = torch.cat((basis, torch.randn(1, 8)))[None].expand(2, 4, 8)  # 3 aligned words + 1 non-source
    sources = torch.tensor([[True, True, True, False]] * 2)
    plans = word_patch_plans(words, sources, patches, solver="emd")
    assert plans.shape == (2, 4, 2, 3)
    torch.testing.assert_close(plans[:, :3], torch.eye(3)[None, :, None, :].expand(2, 3, 2, 3))
    assert plans[:, 3].abs().sum() == 0
    ipot = word_patch_plans(words, sources, patches, solver="ipot", beta=0.05, iters=500)
    torch.testing.assert_close(ipot.sum(-1)[:, :3], torch.ones(2, 3, 2), atol=1e-5, rtol=1e-5)
    assert (ipot[:, :3].argmax(-1) == torch.arange(3)[None, :, None]).all()
    clip = word_patch_plans(words, sources, patches, solver="ipot", scope="clip")
    torch.testing.assert_close(clip.sum(dim=(-2, -1))[:, :3], torch.ones(2, 3), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="scope"):
        word_patch_plans(words, sources, patches, scope="video")


def test_cloze_takes_each_patch_from_the_frame_its_token_came_from(smoke, corpus_clip, tokenizer):
    # Blocks that add nothing leave the backbone's output = the final norm of the rolled input, so each
    # frame's own patch tokens are known; rolling twice over three frames leaves them in other frames' slots.
    model = AllInOne(smoke.model.replace(roll_ratio=0.5, roll_selection="block", first_temporal_block=1)).eval()
    for block in model.blocks:
        for layer in (block.attn.proj, block.mlp.fc2):
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
    video = corpus_clip.video[None]
    encoded = encode_caption(corpus_clip.caption, model.config.max_text_len, tokenizer)
    out = model(video, encoded.input_ids[None], encoded.attention_mask[None], shuffle_patches=False)
    own = model.norm(model.embed_video(video))[:, :, model.config.num_prefix_tokens :]
    assert not torch.equal(out.video_frame_tokens[:, :, model.config.num_prefix_tokens :], own)
    torch.testing.assert_close(frame_patches(model, out), own)
    result = run_cloze(model, corpus_clip, words=[0], tokenizer=tokenizer)
    ids = mask_caption(encoded, [0], tokenizer.mask_token_id)[None]
    masked = model(video, ids, encoded.attention_mask[None], shuffle_patches=False)
    sources = source_tokens(ids, encoded.attention_mask[None], tokenizer.cls_token_id, tokenizer.sep_token_id)
    plans = word_patch_plans(masked.text_tokens, sources, model.norm(model.embed_video(video))[:, :, 1:])[0]
    torch.testing.assert_close(result.plans[0], word_plan(plans, encoded.words[0].pieces))


def test_threshold_keeps_entries_above_a_fraction_of_the_peak():
    plan = torch.tensor([[[0.1, 0.4], [0.2, 0.3]], [[0.5, 0.05], [0.25, 0.2]]])  # (words, S, N)
    kept = threshold_plan(plan, 0.5)
    assert torch.equal(kept[0], torch.tensor([[0.0, 0.4], [0.2, 0.3]]))
    assert torch.equal(kept[1], torch.tensor([[0.5, 0.0], [0.25, 0.0]]))
    assert torch.equal(threshold_plan(plan, 0.0), plan)
    assert (threshold_plan(plan, 1.0) > 0).sum() == 2
    with pytest.raises(ValueError, match="threshold"):
        threshold_plan(plan, 1.5)


def test_mass_in_mask_against_the_uniform_plan():
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)  # 2 frames, 4x4-px patches on a 2x2 grid
    masks[0, :4, :4] = True  # all of patch 0
    masks[1, 4:, 6:] = True  # half of patch 3
    torch.testing.assert_close(patch_coverage(masks, 4), torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 0.5]]))
    on_object = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0]])
    spread = torch.tensor([[0.5, 0.5, 0, 0], [0.25, 0.25, 0.25, 0.25]])
    torch.testing.assert_close(mass_in_mask(torch.stack((on_object, spread)), masks),
                               torch.tensor([[1.0, 0.5], [0.5, 0.125]]))
    torch.testing.assert_close(uniform_mass_in_mask(masks, 4), torch.tensor([0.25, 0.125]))
    torch.testing.assert_close(mass_in_mask(torch.ones(2, 4), masks), uniform_mass_in_mask(masks, 4))
    assert torch.isnan(mass_in_mask(torch.zeros(2, 4), masks)).all()
    with pytest.raises(ValueError, match="square patches"):
        mass_in_mask(torch.ones(2, 5), masks)


def test_heatmap_figure_has_a_row_per_masked_word_titled_with_the_prediction(bundle, corpus_clip, tokenizer):
    result = run_cloze(bundle.model, corpus_clip, words=["big", 3], tokenizer=tokenizer)
    fig = plot_cloze(result, threshold=0.2)
    frames = corpus_clip.frames.shape[0]
    assert len([ax for ax in fig.axes if ax.images]) == len(result.predictions) * frames
    titles = [fig.axes[r * frames].get_title(loc="left") for r in range(len(result.predictions))]
    assert titles == [plot_text(f"{p.top} ({p.probability:.2f})") for p in result.predictions]
    single = plot_cloze(result, frames=[1])
    assert len([ax for ax in single.axes if ax.images]) == len(result.predictions)
    with pytest.raises(ValueError, match="frame 7"):
        plot_cloze(result, frames=[7])
    assert figure_png(fig)[:4] == b"\x89PNG"
    # A clip without masks (a path or a real clip) draws too, without outlines.
    plain = Clip(corpus_clip.video, corpus_clip.frames, corpus_clip.caption, "plain")
    assert plot_cloze(run_cloze(bundle.model, plain, tokenizer=tokenizer)).axes


def test_corpus_measurement_agrees_with_the_single_clip_path(bundle):
    ds = corpus_dataset("cloze", "test", bundle.data, bundle.corpus, train=False, with_masks=True)
    stats = cloze_alignment(bundle.model, ds, num_items=6, batch_size=4)
    assert sum(r["items"] for r in stats["rows"] if r["kind"] != "all") == 6
    overall = next(r for r in stats["rows"] if r["kind"] == "all")
    assert 0 < overall["uniform"] < 1 and 0 <= overall["mass_in_mask"] <= 1
    item = stats["items"][0]
    clip = load_corpus_clip(item["index"], bundle.data, bundle.corpus, task="cloze")
    result = run_cloze(bundle.model, clip, words=[item["word"]])
    visible = clip.object_mask(1).flatten(1).any(1)
    assert item["mass_in_mask"] == pytest.approx(float(result.mass_in_mask()[0][visible].mean()), abs=1e-5)
    assert item["uniform"] == pytest.approx(float(result.uniform_mass_in_mask()[visible].mean()), abs=1e-6)
    # Every patch receives the same mass, so over all the caption's words (masked and unmasked) the object's
    # share is exactly the uniform one: the unmasked words' rows account for every other caption token.
    visible = stats["visible_rows"]
    assert {r["kind"] for r in visible} <= {"shape", "colour", "size", "direction", "event", "function", "other"}
    total = sum(it["mass_in_mask"] for it in stats["items"]) + sum(r["words"] * r["mass_in_mask"] for r in visible)
    share = sum(it["uniform"] for it in stats["items"]) + sum(r["words"] * r["uniform"] for r in visible)
    assert total == pytest.approx(share, rel=1e-3)
    with pytest.raises(ValueError, match="no items of kinds"):
        cloze_alignment(bundle.model, ds, kinds=("adverb",))


# Models -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, smoke):
    """A training run directory as the training loop writes it (another seed than the bundle's model)."""
    root = tmp_path_factory.mktemp("run")
    torch.manual_seed(7)
    model = AllInOne(smoke.model)
    (root / "checkpoints").mkdir()
    atomic_save({"model": {f"model.{k}": v for k, v in model.state_dict().items()}, "step": 4},
                root / "checkpoints" / "last.pt")
    (root / "config.json").write_text(json.dumps({"train": smoke.train.to_dict(), **smoke.to_dict()}))
    return root, model


def test_load_bundle_reads_run_dirs_checkpoint_files_and_converted_models(run_dir, tmp_path, smoke):
    root, model = run_dir
    for path in (root, root / "checkpoints" / "last.pt"):
        loaded = load_bundle(path)
        assert loaded.source == str(path) and not loaded.model.training
        assert all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(), model.state_dict().values(), strict=True))
        assert loaded.data == smoke.data and loaded.corpus == smoke.corpus
    save_converted(model, tmp_path / "converted")
    converted = load_bundle(tmp_path / "converted")
    assert torch.equal(converted.model.text_embed.word_embeddings.weight, model.text_embed.word_embeddings.weight)
    assert converted.data.image_size == smoke.model.image_size
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_bundle(tmp_path / "missing")
    with pytest.raises(ValueError, match="model_config or experiment"):
        load_bundle(None)
    bad = tmp_path / "bad" / "checkpoints"
    bad.mkdir(parents=True)
    (bad / "last.pt").write_bytes(b"not a checkpoint")
    (bad.parent / "config.json").write_text(json.dumps(smoke.to_dict()))
    with pytest.raises(ValueError, match="could not be read"):
        load_bundle(bad.parent)


# The explorer, driven headlessly -----------------------------------------------------------------------------
@pytest.fixture()
def explorer(bundle, smoke, run_dir):
    from allinone_lab.viz.explorer import ClozeExplorer

    return ClozeExplorer(bundle, checkpoint_root=run_dir[0].parent, experiment=smoke)


def test_explorer_starts_with_nouns_and_verbs_masked(explorer):
    words = [b.description for b in explorer.word_buttons]
    assert explorer.caption.value == explorer.clip.caption and words == explorer.caption.value.split()
    assert explorer.masked_words == [i for i, w in enumerate(words) if word_class(w) in ("noun", "verb")]
    assert explorer.predictions.value.count("cloze-row") == len(explorer.masked_words)
    assert explorer.heatmap.value[:4] == b"\x89PNG" and explorer.error is None
    assert str(run_dir_path(explorer)) in explorer.checkpoint.options


def run_dir_path(explorer):
    return next(o for o in explorer.checkpoint.options if o != "untrained")


def test_clicking_a_word_masks_it_and_updates_predictions_and_heatmap(explorer):
    words = [b.description for b in explorer.word_buttons]
    target = next(i for i, w in enumerate(words) if word_class(w) == "adjective")
    before_html, before_png = explorer.predictions.value, explorer.heatmap.value
    explorer.word_buttons[target].value = True  # what a click does
    assert target in explorer.masked_words
    assert explorer.predictions.value.count("cloze-row") == len(explorer.masked_words)
    assert f"<td>{words[target]}</td>" in explorer.predictions.value and explorer.predictions.value != before_html
    assert explorer.heatmap.value != before_png
    explorer.word_buttons[target].value = False
    assert f"<td>{words[target]}</td>" not in explorer.predictions.value


def test_sliders_redraw_without_recomputing_and_top_k_recomputes(explorer):
    result, png = explorer.result, explorer.heatmap.value
    explorer.threshold.value = 0.9
    assert explorer.result is result and explorer.heatmap.value != png
    png = explorer.heatmap.value
    explorer.frame.value = 1
    assert explorer.result is result and explorer.heatmap.value != png
    explorer.top_k.value = 2
    assert explorer.result is not result
    assert all(len(c) == 2 for p in explorer.result.predictions for c in p.candidates)


def test_caption_edit_rebuilds_the_word_buttons(explorer):
    explorer.caption.value = "a small green square moves left"
    assert [b.description for b in explorer.word_buttons] == "a small green square moves left".split()
    assert explorer.masked_words == [3, 4]
    assert [p.word.text for p in explorer.result.predictions] == ["square", "moves"]
    explorer.toggle("left")
    assert [p.word.text for p in explorer.result.predictions] == ["square", "moves", "left"]


def test_sources_and_errors(explorer, tmp_path):
    explorer.corpus_index.value = 1
    assert explorer.clip.info["index"] == 1 and explorer.caption.value == explorer.clip.caption
    if explorer.real_clip.options:
        explorer.source.value = "real"
        assert explorer.clip.object_masks is None and explorer.result is not None
        assert explorer.corpus_index.layout.display == "none" and explorer.real_clip.layout.display is None
    explorer.source.value = "path"
    explorer.path.value = str(tmp_path / "nothing.mp4")
    assert explorer.error is not None and "nothing.mp4" in explorer.status.value
    image = (np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)
    from PIL import Image

    Image.fromarray(image).save(tmp_path / "still.png")
    explorer.caption.value = "a dog sits on the grass"
    explorer.path.value = str(tmp_path / "still.png")
    assert explorer.error is None and explorer.clip.name == "still.png"
    assert [p.word.text for p in explorer.result.predictions] == ["dog", "sits", "grass"]


def test_checkpoint_picker_loads_a_run_and_reports_bad_paths(explorer, run_dir):
    root, model = run_dir
    explorer.checkpoint.value = str(root)
    explorer.on_load_checkpoint()
    assert explorer.bundle.source == str(root) and explorer.error is None
    assert torch.equal(explorer.bundle.model.pos_embed, model.pos_embed)
    assert str(root) in explorer.status.value and "cloze-untrained" not in explorer.status.value
    explorer.checkpoint.value = str(root / "nowhere")
    explorer.on_load_checkpoint()
    assert "cannot load checkpoint" in explorer.status.value and explorer.bundle.source == str(root)
    explorer.checkpoint.value = "untrained"
    explorer.on_load_checkpoint()
    assert explorer.bundle.source == "untrained" and explorer.error is None
    assert "cloze-untrained" in explorer.status.value  # says so, with the commands that make a trained model



# Reproductions and dependencies -------------------------------------------------------------------------------
def test_figure_reproductions_run_on_given_checkpoints(run_dir, tmp_path):
    from allinone_lab import repro

    root, _ = run_dir
    params = repro.check_parameters("fig6", scale="smoke", output_dir=str(tmp_path / "fig6"), device="cpu",
                                    checkpoint=str(root), items=6, examples=2)
    result = repro.run_reproduction("fig6", params)
    assert [r["kind"] for r in result.rows][-1] == "all" and sum(r["items"] for r in result.rows[:-1]) == 6
    assert result.metrics["uniform_all"] == pytest.approx(result.rows[-1]["uniform plan"])
    assert {r["layer"] for r in result.rows} == {int(result.metrics["layer"])}
    assert 0 <= result.rows[-1]["items in 2+ frames"] <= 1
    assert any("training split" in n for n in result.notes) and any("median" in n for n in result.notes)
    fig = repro.plot(repro.load_result(tmp_path / "fig6"))
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 2 * 3  # 2 examples x 3 frames
    notes = [t.get_text() for ax in fig.axes for t in ax.texts if "(median)" in t.get_text()]
    assert len(notes) == 2 and all("rank" in n for n in notes)
    params = repro.check_parameters("fig4", scale="smoke", output_dir=str(tmp_path / "fig4"), device="cpu",
                                    roll_checkpoint=str(root), none_checkpoint=str(root), clips=4)
    result = repro.run_reproduction("fig4", params)
    assert [r["model"] for r in result.rows] == ["with rolling", "without rolling"]
    assert result.metrics["rolled_share_gain"] == pytest.approx(0.0, abs=1e-6)  # the same model twice
    assert 0 < result.metrics["rolled_share_roll"] < 1
    assert len(repro.plot(result).axes) == 2 * 2 + 2  # two panels per profile and two colour bars
    bad = repro.check_parameters("fig6", scale="smoke", output_dir=str(tmp_path / "bad"), device="cpu",
                                 checkpoint=str(root), threshold=2.0)
    with pytest.raises(repro.ParameterError, match="threshold=2.0"):
        repro.run_reproduction("fig6", bad)


def test_viz_never_imports_training_code():
    import ast
    from pathlib import Path

    import allinone_lab

    package = Path(allinone_lab.__file__).parent
    files = sorted((package / "viz").glob("*.py")) + [package / "model" / "attention.py"]
    assert len(files) >= 6
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert not any(n == "train" or n.startswith(("train.", "allinone_lab.train")) or ".train" in n
                           for n in names), f"{path.name} imports {names}"
