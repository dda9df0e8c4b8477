"""Temporal token rolling and channel shift move exactly the right tokens between the right frames."""

import pytest
import torch

from allinone_lab.model import (
    AllInOne,
    ModelConfig,
    TokenRolling,
    restore_frame_order,
    roll_positions,
    roll_tokens,
    shift_channels,
)
from allinone_lab.model.temporal import roll_block_tokens, rolled_per_side


def labelled_tokens(batch: int, frames: int, text: int, visual: int, dim: int = 3) -> torch.Tensor:
    """Tokens whose first channels encode (video, frame, position) so that moves can be traced."""
    b, s, t = torch.meshgrid(torch.arange(batch), torch.arange(frames), torch.arange(text + visual), indexing="ij")
    x = torch.stack((b, s, t), dim=-1).float()
    x = torch.cat((x, torch.randn(batch, frames, text + visual, dim)), dim=-1)
    return x.flatten(0, 1)


def test_paper_default_rolls_24_of_196_patches_each_way():
    cfg = ModelConfig()
    assert cfg.visual_len == 197 and cfg.roll_k() == 24
    prev, nxt = roll_positions("block", 197, 24)
    assert prev.tolist() == list(range(1, 25)) and nxt.tolist() == list(range(173, 197))


def test_a_positive_ratio_rolls_at_least_one_token_each_way_on_a_small_grid():
    assert [rolled_per_side(17, r) for r in (0, 0.05, 0.1, 0.25, 0.5, 1.0)] == [0, 1, 1, 2, 4, 8]
    assert rolled_per_side(197, 0.1) == 9  # the paper's grid: floor alone
    cfg = ModelConfig(image_size=64, patch_size=16, roll_ratio=0.1)
    assert cfg.visual_len == 17 and cfg.roll_k() == 1
    x = labelled_tokens(2, 3, 4, 17)
    for selection in ("block", "alternating"):
        roll = TokenRolling(ratio=0.1, selection=selection, layer_offset=1).eval()
        prev, nxt = roll.positions(17)
        assert len(prev) == len(nxt) == 1
        assert not torch.equal(roll(x, 3, 4), x)  # not time averaging
    assert torch.equal(TokenRolling(ratio=0.0)(x, 3, 4), x)


@pytest.mark.parametrize("selection", ["block", "random", "varying", "alternating"])
def test_rolling_moves_exactly_the_selected_tokens(selection):
    batch, frames, text, visual = 2, 3, 5, 17
    x = labelled_tokens(batch, frames, text, visual)
    roll = TokenRolling(ratio=0.5, selection=selection, layer_offset=1).eval()
    out = roll(x, frames, text).view(batch, frames, text + visual, -1)
    prev, nxt = roll.positions(visual)
    assert len(prev) == len(nxt) == 4 and 0 not in prev.tolist() + nxt.tolist()
    assert len(set(prev.tolist()) | set(nxt.tolist())) == 8
    src = x.view(batch, frames, text + visual, -1)
    for s in range(frames):
        for pos in range(text + visual):
            vis = pos - text
            if vis in prev.tolist():
                expected = src[:, (s - 1) % frames, pos]
            elif vis in nxt.tolist():
                expected = src[:, (s + 1) % frames, pos]
            else:
                expected = src[:, s, pos]  # text, the CLS and unrolled patches are untouched
            torch.testing.assert_close(out[:, s, pos], expected)
    # A permutation: no value created or lost.
    torch.testing.assert_close(out.flatten(0, 2).sort(dim=0).values, src.flatten(0, 2).sort(dim=0).values)


def test_block_fast_path_matches_generic_positions():
    x = torch.randn(4 * 3, 40 + 197, 8)
    prev, nxt = roll_positions("block", 197, 24)
    torch.testing.assert_close(roll_block_tokens(x, 3, 40, 24), roll_tokens(x, 3, 40, prev, nxt))


def test_varying_moves_with_the_layer_and_random_is_seeded_in_eval():
    first = roll_positions("varying", 17, 2, layer_offset=0)
    second = roll_positions("varying", 17, 2, layer_offset=1)
    assert torch.cat(first).tolist() == [1, 2, 3, 4] and torch.cat(second).tolist() == [5, 6, 7, 8]
    layer = TokenRolling(0.5, "random", seed=7).eval()
    assert torch.equal(torch.cat(layer.positions(17)), torch.cat(layer.positions(17)))
    layer.train()
    draws = {tuple(torch.cat(layer.positions(17)).tolist()) for _ in range(5)}
    assert len(draws) > 1  # training draws new positions every call


def test_alternating_rolls_top_and_bottom_rows_then_left_and_right_columns():
    # A 4x4 grid behind the CLS: raster positions 1..16, row r and column c at 1 + 4r + c.
    rows = [roll_positions("alternating", 17, 4, layer_offset=o) for o in (0, 2)]
    columns = roll_positions("alternating", 17, 4, layer_offset=1)
    for prev, nxt in rows:
        assert prev.tolist() == [1, 2, 3, 4] and nxt.tolist() == [13, 14, 15, 16]
    assert columns[0].tolist() == [1, 5, 9, 13] and columns[1].tolist() == [4, 8, 12, 16]
    # Behind a CLS and a distillation token the columns skip both prefix tokens.
    prev, nxt = roll_positions("alternating", 18, 4, layer_offset=1, num_prefix=2)
    assert prev.tolist() == [2, 6, 10, 14] and nxt.tolist() == [5, 9, 13, 17]
    with pytest.raises(ValueError, match="square patch grid"):
        roll_positions("alternating", 13, 2, layer_offset=1)


def test_alternating_layers_of_a_model_follow_the_block_index():
    cfg = ModelConfig(variant="tiny", depth=4, image_size=64, roll_ratio=0.5, roll_selection="alternating",
                      first_temporal_block=2)
    model = AllInOne(cfg)
    offsets = [blk.temporal.layer_offset for blk in model.blocks if blk.temporal is not None]
    assert offsets == [0, 1, 2]
    x = labelled_tokens(1, 3, 2, 17)
    out = model.blocks[2].temporal(x, 3, 2).view(3, 19, -1)
    assert out[1, 2 + 5, 1].item() == 0 and out[1, 2 + 8, 1].item() == 2  # column 0 from t-1, column 3 from t+1
    assert out[1, 2 + 2, 1].item() == 1  # row 0, column 1 stays in its frame in a column layer


@pytest.mark.parametrize("selection", ["block", "random", "varying", "alternating"])
def test_every_selection_encodes_text_alone_and_video_alone(selection):
    # Dual-stream retrieval runs the backbone on text only (no visual tokens to roll) and on video only.
    cfg = ModelConfig(variant="tiny", width=64, heads=2, depth=2, image_size=64, max_text_len=8, vocab_size=100,
                      roll_ratio=0.5, roll_selection=selection)
    model = AllInOne(cfg).eval()
    with torch.no_grad():
        text = model.encode_text(torch.randint(1, 100, (2, 8)))
        video = model.encode_video(torch.randn(2, 3, 3, 64, 64))
    assert text.shape == video.shape == (2, cfg.vtc_dim)


def test_ratio_zero_is_exactly_the_time_average_model():
    cfg = dict(variant="tiny", width=64, heads=2, depth=2, image_size=64, max_text_len=8, vocab_size=100)
    rolled = AllInOne(ModelConfig(**cfg, temporal="roll", roll_ratio=0.0)).eval()
    average = AllInOne(ModelConfig(**cfg, temporal="none")).eval()
    average.load_state_dict(rolled.state_dict())
    video, ids = torch.randn(2, 3, 3, 64, 64), torch.randint(0, 100, (2, 8))
    with torch.no_grad():
        a, b = rolled(video, ids), average(video, ids)
    assert torch.equal(a.pooled, b.pooled) and torch.equal(a.video_tokens, b.video_tokens)


def test_first_temporal_block_controls_where_rolling_starts():
    cfg = ModelConfig(variant="tiny", first_temporal_block=6)
    model = AllInOne(cfg)
    rolled = [i + 1 for i, blk in enumerate(model.blocks) if blk.temporal is not None]
    assert rolled == list(range(6, 13))


def test_channel_shift_moves_one_eighth_each_way_with_zero_padding():
    frames, text, visual, dim = 3, 2, 5, 16
    x = torch.randn(frames, text + visual, dim)
    out = shift_channels(x, frames, text).view(frames, text + visual, dim)
    torch.testing.assert_close(out[:, : text + 1], x[:, : text + 1])  # text and CLS untouched
    p = text + 1
    torch.testing.assert_close(out[1:, p:, :2], x[:-1, p:, :2])
    torch.testing.assert_close(out[0, p:, :2], torch.zeros(visual - 1, 2))
    torch.testing.assert_close(out[:-1, p:, 2:4], x[1:, p:, 2:4])
    torch.testing.assert_close(out[-1, p:, 2:4], torch.zeros(visual - 1, 2))
    torch.testing.assert_close(out[:, p:, 4:], x[:, p:, 4:])


def test_too_large_a_ratio_is_refused():
    with pytest.raises(ValueError, match="roll_ratio"):
        roll_positions("random", 5, 3)


def rolling_only(cfg: ModelConfig) -> AllInOne:
    """A model whose blocks add nothing to the residual stream: its output is the final norm of its input,
    permuted by the rolling layers alone."""
    model = AllInOne(cfg).eval()
    for block in model.blocks:
        for layer in (block.attn.proj, block.mlp.fc2):
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
    return model


@pytest.mark.parametrize("selection", ["block", "random", "varying", "alternating"])
@pytest.mark.parametrize("first_temporal_block", [1, 2])
def test_token_origins_trace_where_the_model_leaves_every_token(selection, first_temporal_block):
    cfg = ModelConfig(variant="tiny", width=32, heads=2, depth=4, image_size=64, max_text_len=8, vocab_size=100,
                      drop_path_rate=0.0, roll_ratio=0.5, roll_selection=selection,
                      first_temporal_block=first_temporal_block)
    model = rolling_only(cfg)
    video = torch.randn(2, 3, 3, 64, 64)
    ids = torch.randint(0, 100, (2, 6))
    out = model(video, ids, shuffle_patches=False)
    own = model.norm(model.embed_video(video))  # (B, S, L, D): every frame's own tokens
    origins = model.token_origins(3)
    assert origins.shape == (4, 3, cfg.visual_len)
    frames = torch.arange(3)[:, None].expand(3, cfg.visual_len)
    # The output is in frame order exactly when the origins say every token is back home (three rolls of the
    # same block positions over three frames); otherwise rolled tokens sit in other frames' slots.
    assert torch.equal(out.video_frame_tokens, own) == torch.equal(origins[-1], frames)
    assert torch.equal(origins[-1], frames) == (selection == "block" and first_temporal_block == 2)
    if first_temporal_block == 2:
        assert torch.equal(origins[0], frames)  # the first block does not roll
    torch.testing.assert_close(restore_frame_order(out.video_frame_tokens, origins[-1]), own)
    alone = model(video, shuffle_patches=False).video_frame_tokens
    torch.testing.assert_close(restore_frame_order(alone, model.token_origins(3, with_text=False)[-1]), own)
    # Without roll_unimodal (the released behaviour) video alone is not rolled: its origins are the identity.
    model.config = cfg.replace(roll_unimodal=False)
    assert torch.equal(model.token_origins(3, with_text=False)[-1], frames)
    torch.testing.assert_close(model(video, shuffle_patches=False).video_frame_tokens, own)


def test_restore_frame_order_refuses_origins_of_another_layout():
    with pytest.raises(ValueError, match="do not match 3 frames of 17 tokens"):
        restore_frame_order(torch.zeros(1, 3, 17, 4), torch.zeros(2, 17, dtype=torch.long))
