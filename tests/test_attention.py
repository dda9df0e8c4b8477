"""Attention capture: the explicit path equals the fused one, records what it should, leaves nothing behind."""

import pytest
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Attention

from allinone_lab.model import TEMPORAL_MODES, AllInOne, ModelConfig
from allinone_lab.model.attention import (
    attention_maps,
    capture_attention,
    explicit_attention,
    is_capturing,
    rolled_positions,
)
from allinone_lab.model.temporal import roll_positions


def tiny(**overrides) -> ModelConfig:
    base = dict(variant="tiny", width=64, heads=2, depth=3, image_size=64, max_text_len=8, vocab_size=100,
                drop_path_rate=0.0)
    base.update(overrides)
    return ModelConfig(**base)


def inputs(cfg: ModelConfig, batch: int = 2, text_len: int = 6):
    gen = torch.Generator().manual_seed(1)
    video = torch.randn(batch, cfg.num_frames, 3, cfg.image_size, cfg.image_size, generator=gen)
    ids = torch.randint(5, cfg.vocab_size, (batch, text_len), generator=gen)
    mask = torch.ones_like(ids)
    mask[0, -2:] = 0
    return video, ids, mask


@pytest.mark.parametrize("temporal", TEMPORAL_MODES)
def test_explicit_path_gives_the_fused_outputs_for_every_temporal_mode(temporal):
    model = AllInOne(tiny(temporal=temporal)).eval()
    video, ids, mask = inputs(model.config)
    with torch.no_grad():
        fused = model(video, ids, mask)
        with capture_attention(model) as record:
            explicit = model(video, ids, mask)
    for name in ("text_tokens", "video_frame_tokens", "pooled"):
        torch.testing.assert_close(getattr(explicit, name), getattr(fused, name), atol=1e-5, rtol=1e-5)
    assert sorted(record.joint) == list(range(model.config.num_layers))
    expected_extra = {"timesformer": {"temporal_attn"}, "decoupled": {"text_attn", "video_attn"}}.get(temporal, set())
    assert set(record.extra) == expected_extra
    for weights in record.joint.values():
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-5, rtol=1e-5)


def test_recorded_joint_weights_have_the_layout_and_hide_padding():
    cfg = tiny()
    model = AllInOne(cfg).eval()
    video, ids, mask = inputs(cfg)
    with torch.no_grad(), capture_attention(model) as record:
        model(video, ids, mask)
    length = ids.shape[1] + cfg.visual_len
    weights = record.joint[0]
    assert weights.shape == (2 * cfg.num_frames, cfg.num_heads, length, length)
    # Item 0's last two text tokens are padding: nobody attends to them, in any frame.
    assert weights[: cfg.num_frames, :, :, 4:6].abs().max() == 0
    assert weights[cfg.num_frames :, :, :, 4:6].min() > 0


def test_flatten_records_one_sequence_per_clip():
    cfg = tiny(temporal="flatten")
    model = AllInOne(cfg).eval()
    video, ids, mask = inputs(cfg)
    with torch.no_grad(), capture_attention(model) as record:
        model(video, ids, mask)
    length = ids.shape[1] + cfg.num_frames * cfg.visual_len
    assert record.joint[0].shape == (2, cfg.num_heads, length, length)
    assert record.extra == {}


def test_explicit_attention_matches_sdpa_with_boolean_and_additive_masks():
    torch.manual_seed(0)
    attn = Attention(32, num_heads=4, qkv_bias=True).eval()
    x = torch.randn(3, 7, 32)
    keep = torch.ones(3, 1, 1, 7, dtype=torch.bool)
    keep[1, ..., 5:] = False
    with torch.no_grad():
        for mask in (None, keep, torch.zeros(3, 1, 1, 7).masked_fill(~keep, float("-inf"))):
            out, weights = explicit_attention(attn, x, mask)
            torch.testing.assert_close(out, attn(x, attn_mask=mask), atol=1e-5, rtol=1e-5)
        assert weights[1, :, :, 5:].abs().max() == 0
        q, k, _ = attn.qkv(x).reshape(3, 7, 3, 4, 8).permute(2, 0, 3, 1, 4)
        torch.testing.assert_close(weights[0], F.softmax(q[0] @ k[0].transpose(-1, -2) / 8**0.5, dim=-1))
    with pytest.raises(ValueError, match="is_causal"):
        explicit_attention(attn, x, is_causal=True)


def test_normal_forward_is_untouched_after_capture_even_on_error():
    model = AllInOne(tiny(temporal="decoupled")).eval()
    video, ids, mask = inputs(model.config)
    attention_modules = [m for m in model.modules() if isinstance(m, Attention)]
    hooks_before = [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in attention_modules]
    with pytest.raises(RuntimeError, match="boom"), capture_attention(model):
        assert is_capturing(model)
        raise RuntimeError("boom")
    assert not is_capturing(model)
    assert all("forward" not in vars(m) for m in attention_modules)
    assert [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in attention_modules] == hooks_before
    # The fused path is the class's own forward again: no explicit call happens outside the context.
    calls = []
    import allinone_lab.model.attention as module

    original = module.explicit_attention
    module.explicit_attention = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        with torch.no_grad():
            model(video, ids, mask)
    finally:
        module.explicit_attention = original
    assert calls == []


def test_nested_capture_is_refused():
    model = AllInOne(tiny()).eval()
    with capture_attention(model), pytest.raises(RuntimeError, match="already being captured"):
        with capture_attention(model):
            pass
    assert not is_capturing(model)


@pytest.mark.parametrize("selection", ["block", "random", "varying", "alternating"])
def test_rolled_positions_are_the_temporal_modules_positions(selection):
    cfg = tiny(roll_selection=selection, first_temporal_block=2, roll_ratio=0.25)
    model = AllInOne(cfg).eval()
    rolled = rolled_positions(model)
    assert sorted(rolled) == [1, 2]  # block 1 (0-based 0) has no temporal module
    k = cfg.roll_k()
    for prev, nxt in rolled.values():
        assert len(prev) == len(nxt) == k and 0 not in prev.tolist() + nxt.tolist()
    if selection == "block":
        expected = roll_positions("block", cfg.visual_len, k)
        assert all(torch.equal(rolled[i][0], expected[0]) and torch.equal(rolled[i][1], expected[1]) for i in rolled)
    if selection in ("varying", "alternating"):
        assert not torch.equal(rolled[1][0], rolled[2][0])  # the block moves (or turns) with the layer


def test_attention_maps_restore_mode_and_report_layout():
    cfg = tiny(roll_selection="random")
    model = AllInOne(cfg).train()
    video, ids, mask = inputs(cfg)
    maps = attention_maps(model, video, ids, mask)
    assert model.training and not is_capturing(model)
    assert (maps.frames, maps.text_len, maps.visual_len, maps.temporal) == (3, 6, cfg.visual_len, "roll")
    assert maps.num_layers == cfg.num_layers and set(maps.rolled) == {0, 1, 2}
    # Eval-mode random positions are fixed by the seed, so a second call agrees.
    again = rolled_positions(model.eval())
    assert all(torch.equal(maps.rolled[i][0], again[i][0]) for i in again)
    # Where every token came from, block by block: random rolling's eval-mode positions, as the maps used.
    assert maps.origins.shape == (cfg.num_layers, 3, cfg.visual_len)
    assert torch.equal(maps.origins, model.token_origins(3)) and (maps.origins[:, :, 0] == torch.arange(3)).all()
    no_roll = attention_maps(AllInOne(tiny(roll_ratio=0.0)).eval(), video, ids, mask)
    assert no_roll.rolled == {}
    assert torch.equal(no_roll.origins, torch.arange(3)[None, :, None].expand(cfg.num_layers, 3, cfg.visual_len))
