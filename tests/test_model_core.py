"""Behaviour of the All-in-one backbone: timm equivalence, layouts, masks, variants, gradients."""

import pytest
import torch
from timm.models.vision_transformer import Block, VisionTransformer

from allinone_lab.model import TEMPORAL_MODES, AllInOne, ModelConfig, count_parameters


def tiny_config(**overrides) -> ModelConfig:
    base = dict(variant="tiny", width=64, heads=2, depth=2, image_size=64, max_text_len=8, vocab_size=100,
                drop_path_rate=0.0)
    base.update(overrides)
    return ModelConfig(**base)


def inputs(cfg: ModelConfig, batch: int = 2, frames: int | None = None, text_len: int = 6):
    gen = torch.Generator().manual_seed(1)
    s = cfg.num_frames if frames is None else frames
    video = torch.randn(batch, s, 3, cfg.image_size, cfg.image_size, generator=gen)
    ids = torch.randint(5, cfg.vocab_size, (batch, text_len), generator=gen)
    mask = torch.ones_like(ids)
    mask[0, -2:] = 0
    return video, ids, mask


def test_video_path_equals_timm_vision_transformer():
    cfg = tiny_config(variant="tiny", width=None, heads=None, depth=None, num_frames=1, use_mte=False)
    model = AllInOne(cfg).eval()
    with torch.no_grad():
        model.temporal_embed.zero_()
    vit = VisionTransformer(img_size=64, patch_size=16, embed_dim=192, depth=12, num_heads=3, num_classes=0,
                            global_pool="").eval()
    backbone = {k: v for k, v in model.state_dict().items() if k in vit.state_dict()}
    assert set(backbone) == set(vit.state_dict()), "our backbone must use timm's parameter names"
    vit.load_state_dict(backbone, strict=True)
    video = torch.randn(2, 1, 3, 64, 64)
    with torch.no_grad():
        ours = model(video=video).video_frame_tokens[:, 0]
        ref = vit.forward_features(video[:, 0])
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_joint_sequence_layout_and_frame_average():
    cfg = tiny_config(temporal="none")
    model = AllInOne(cfg).eval()
    video, ids, mask = inputs(cfg)
    with torch.no_grad():
        out = model(video, ids, mask)
        # Each frame alone (with the same frame embedding) gives that frame's tokens: no cross-frame mixing.
        per_frame = []
        for t in range(cfg.num_frames):
            x = torch.cat((model.embed_text(ids), model.embed_video(video)[:, t]), dim=1)
            keep = torch.cat((mask.bool(), torch.ones(2, cfg.visual_len, dtype=torch.bool)), dim=1)
            for blk in model.blocks:
                x = Block.forward(blk, x, attn_mask=keep[:, None, None, :])
            per_frame.append(model.norm(x))
    stacked = torch.stack(per_frame, dim=1)
    torch.testing.assert_close(out.text_tokens, stacked[:, :, :6].mean(1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.video_frame_tokens, stacked[:, :, 6:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.video_tokens, stacked[:, :, 6:].mean(1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.pooled, torch.tanh(model.pooler.dense(out.text_tokens[:, 0])))
    assert out.text_tokens.shape == (2, 6, 64) and out.video_tokens.shape == (2, cfg.visual_len, 64)


def test_padding_is_masked():
    cfg = tiny_config()
    model = AllInOne(cfg).eval()
    video, ids, mask = inputs(cfg)
    changed = ids.clone()
    changed[0, -2:] = 7  # padded positions of item 0
    with torch.no_grad():
        a = model(video, ids, mask)
        b = model(video, changed, mask)
    torch.testing.assert_close(a.video_tokens, b.video_tokens)
    torch.testing.assert_close(a.text_tokens[:, :4], b.text_tokens[:, :4])
    torch.testing.assert_close(a.pooled, b.pooled)


def test_flatten_is_one_joint_attention_over_all_frames():
    cfg = tiny_config(temporal="flatten")
    model = AllInOne(cfg).eval()
    video, ids, mask = inputs(cfg)
    with torch.no_grad():
        out = model(video, ids, mask)
        visual = model.embed_video(video)  # (B, S, L, D)
        x = torch.cat((model.embed_text(ids), visual.flatten(1, 2)), dim=1)
        keep = torch.cat((mask.bool(), torch.ones(2, visual.shape[1] * visual.shape[2], dtype=torch.bool)), dim=1)
        for blk in model.blocks:
            x = Block.forward(blk, x, attn_mask=keep[:, None, None, :])
        x = model.norm(x)
    torch.testing.assert_close(out.text_tokens, x[:, :6], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.video_frame_tokens, x[:, 6:].reshape(2, 3, cfg.visual_len, -1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("temporal,interacts", [("none", False), ("roll", True), ("channel_shift", True),
                                                 ("flatten", True), ("timesformer", True), ("decoupled", True)])
def test_which_variants_exchange_information_across_frames(temporal, interacts):
    cfg = tiny_config(temporal=temporal)
    model = AllInOne(cfg).eval()
    for block in model.blocks:  # the TimeSformer's zero-initialised temporal projection would hide it
        if hasattr(block, "temporal_fc"):
            torch.nn.init.normal_(block.temporal_fc.weight, std=0.1)
    video, _, _ = inputs(cfg)
    other = video.clone()
    other[:, 2] = torch.randn_like(other[:, 2])
    with torch.no_grad():
        first_a = model(video=video).video_frame_tokens[:, 0]
        first_b = model(video=other).video_frame_tokens[:, 0]
    assert torch.allclose(first_a, first_b, atol=1e-6) != interacts


@pytest.mark.parametrize("temporal", TEMPORAL_MODES)
def test_every_variant_trains_every_parameter(temporal):
    cfg = tiny_config(temporal=temporal, num_answers=5, mc_head=True, vtc_learnable_temperature=True)
    model = AllInOne(cfg).train()
    for block in model.blocks:
        if hasattr(block, "temporal_fc"):
            torch.nn.init.normal_(block.temporal_fc.weight, std=0.1)
    video, ids, mask = inputs(cfg)
    out = model(video, ids, mask)
    loss = (model.vtm_logits(out).logsumexp(-1).sum() + model.mlm_logits(out).logsumexp(-1).sum()
            + model.qa_head(out.pooled).sum() + model.mc_head(out.pooled).sum())
    text_emb, video_emb = model.encode_text(ids, mask), model.encode_video(video)
    loss = loss + model.vtc_head.logits(text_emb, video_emb).logsumexp(-1).sum()
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # Row 1 of the BERT token-type table is never used, but the tensor still learns through row 0.
    assert no_grad == [], f"parameters without gradient: {no_grad}"
    assert out.video_tokens.shape == (2, cfg.visual_len, 64)


def test_parameter_counts_match_table1():
    # Paper Table 1 (without the MLM/VTM heads): tiny 12M, small 33M, base 110M.
    for variant, paper in (("tiny", 12e6), ("small", 33e6), ("base", 110e6)):
        with torch.device("meta"):
            model = AllInOne(ModelConfig(variant=variant))
        count = count_parameters(model)
        assert abs(count - paper) / paper < 0.05, (variant, count)


def test_spe_and_mte_switches():
    cfg = tiny_config(use_spe=False, use_mte=False)
    model = AllInOne(cfg)
    names = {n for n, _ in model.named_parameters()}
    assert "pos_embed" not in names and "temporal_embed" not in names and "modality_embed.weight" not in names
    video, ids, mask = inputs(cfg)
    assert model(video, ids, mask).pooled.shape == (2, 64)
    with_mte = AllInOne(tiny_config()).eval()
    video_only = with_mte(video=video).video_tokens
    with torch.no_grad():
        with_mte.modality_embed.weight[1].add_(1.0)
    assert not torch.allclose(video_only, with_mte(video=video).video_tokens)


def test_temporal_embedding_is_added_to_patches_only_and_resampled():
    cfg = tiny_config(temporal="none")
    model = AllInOne(cfg).eval()
    video = torch.zeros(1, 3, 3, 64, 64)
    visual = model.embed_video(video)
    # Frames differ only by the temporal embedding, which never touches the CLS.
    torch.testing.assert_close(visual[:, 0, 0], visual[:, 1, 0])
    torch.testing.assert_close(visual[0, 1, 1:] - visual[0, 0, 1:],
                               (model.temporal_embed[0, 1] - model.temporal_embed[0, 0]).expand(cfg.num_patches, -1))
    # Other clip lengths work: S=1 takes the middle frame's embedding, S=5 interpolates.
    torch.testing.assert_close(model.frame_embedding(1)[0], model.temporal_embed[0, 1])
    assert model(video=torch.randn(1, 5, 3, 64, 64)).video_frame_tokens.shape[1] == 5


def test_other_frame_sizes_resample_position_embeddings():
    model = AllInOne(tiny_config()).eval()
    out = model(video=torch.randn(1, 3, 3, 96, 80))
    assert out.video_tokens.shape == (1, 1 + 6 * 5, 64)
    with pytest.raises(ValueError, match="patch_size"):
        model(video=torch.randn(1, 3, 3, 70, 64))


def test_unimodal_paths_do_not_depend_on_the_other_modality():
    model = AllInOne(tiny_config()).eval()
    video, ids, mask = inputs(model.config, batch=3)
    with torch.no_grad():
        text = model.encode_text(ids, mask)
        vids = model.encode_video(video)
        single = model.encode_video(video[1:2])
    torch.testing.assert_close(vids[1:2], single, atol=1e-5, rtol=1e-5)  # one forward per item suffices
    assert text.shape == (3, 512) and vids.shape == (3, 512)
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(vids.norm(dim=-1), torch.ones(3))
    assert model.vtc_head.temperature == pytest.approx(0.05)


def test_patch_shuffle_is_exact_without_rolling_and_seeded_with_it():
    video, ids, mask = inputs(tiny_config())
    plain = AllInOne(tiny_config(temporal="none")).eval()
    with torch.no_grad():
        a = plain(video, ids, mask, shuffle_patches=False)
        b = plain(video, ids, mask, shuffle_patches=True)
    # Attention is permutation-equivariant once positions are embedded: shuffling then restoring is exact.
    torch.testing.assert_close(a.video_frame_tokens, b.video_frame_tokens, atol=1e-5, rtol=1e-5)
    rolled = AllInOne(tiny_config(temporal="roll", shuffle_patches=True)).eval()
    with torch.no_grad():
        torch.manual_seed(3)
        c = rolled(video, ids, mask)
        torch.manual_seed(3)
        d = rolled(video, ids, mask)
        e = rolled(video, ids, mask, shuffle_patches=False)
    torch.testing.assert_close(c.pooled, d.pooled)
    assert not torch.allclose(c.pooled, e.pooled)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="temporal"):
        ModelConfig(temporal="lstm")
    with pytest.raises(ValueError, match="image_size"):
        ModelConfig(image_size=200)
    with pytest.raises(ValueError, match="first_temporal_block"):
        ModelConfig(first_temporal_block=13)
    with pytest.raises(ValueError, match="pos_embed_init"):
        ModelConfig(pos_embed_init="learned")
    with pytest.raises(ValueError, match="unknown field"):
        ModelConfig.from_dict({"ratio": 0.3})
    cfg = ModelConfig(variant="small", roll_ratio=0.5)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    model = AllInOne(tiny_config())
    with pytest.raises(ValueError, match="max_text_len"):
        model(text_ids=torch.ones(1, 9, dtype=torch.long))


def test_sincos_position_embeddings_order_positions():
    """With ``pos_embed_init="sincos"`` a patch's embedding is closer to its neighbours' than to far patches',
    row and column each take half the channels, frames get the 1-D code, and the prefix tokens start at zero."""
    cfg = tiny_config(pos_embed_init="sincos")
    model = AllInOne(cfg)
    grid, prefix = cfg.grid_size, cfg.num_prefix_tokens
    pos = model.pos_embed[0, prefix:].detach().view(grid, grid, -1)
    assert torch.count_nonzero(model.pos_embed[0, :prefix]) == 0
    dist = lambda a, b: (pos[a] - pos[b]).norm().item()  # noqa: E731
    assert dist((0, 0), (0, 1)) < dist((0, 0), (0, grid - 1))
    assert dist((0, 0), (1, 0)) < dist((0, 0), (grid - 1, 0))
    half = cfg.embed_dim // 2
    torch.testing.assert_close(pos[:, :, :half], pos[:, :1, :half].expand(-1, grid, -1))  # rows: first half
    torch.testing.assert_close(pos[:, :, half:], pos[:1, :, half:].expand(grid, -1, -1))  # columns: second half
    assert not torch.allclose(pos[0, 0], pos[1, 1])
    frames = model.temporal_embed[0].detach()
    assert cfg.num_frames == 3
    torch.testing.assert_close(frames[0], torch.cat([torch.zeros(half), torch.ones(half)]))
    assert (frames[1] - frames[0]).norm() < (frames[2] - frames[0]).norm()
    random_init = AllInOne(tiny_config()).pos_embed[0, prefix:].detach()
    assert random_init.std() < 0.05 < pos.std()
