"""Released checkpoints: key mapping, faithful numerics against an independent reference, safe loading,
conversion to safetensors and back, clear errors for bad files. Every file is made here (no download)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from allinone_lab.model import (
    AllInOne,
    CheckpointError,
    ModelConfig,
    from_checkpoint,
    infer_config,
    load_checkpoint,
    read_checkpoint,
    save_converted,
    to_released_state_dict,
)
from allinone_lab.model.checkpoint import released_to_ours
from allinone_lab.model.convert import main as convert_main

HEADS = 2


def small_config(**overrides) -> ModelConfig:
    base = dict(variant="tiny", width=64, heads=HEADS, depth=2, image_size=64, max_text_len=8, vocab_size=100,
                drop_path_rate=0.0)
    base.update(overrides)
    return ModelConfig(**base)


def random_model(cfg: ModelConfig, seed: int = 0) -> AllInOne:
    """A model whose every tensor is random (biases, tokens and norms included), so a misplaced tensor shows."""
    model = AllInOne(cfg).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            if name.endswith("norm.weight") or ".norm1.weight" in name or ".norm2.weight" in name:
                param.copy_(1.0 + 0.1 * noise)
            else:
                param.copy_(0.05 * noise if param.ndim > 1 else 0.1 * noise)
    return model


def inputs(cfg: ModelConfig, batch: int = 2, frames: int | None = None, size: int | None = None, text_len: int = 6):
    gen = torch.Generator().manual_seed(1)
    s, px = frames or cfg.num_frames, size or cfg.image_size
    video = torch.randn(batch, s, 3, px, px, generator=gen)
    ids = torch.randint(5, cfg.vocab_size, (batch, text_len), generator=gen)
    mask = torch.ones_like(ids)
    mask[0, -2:] = 0  # padding in the first item
    return video, ids, mask


def save_released(path: Path, state: dict, position_ids: bool = True, module_prefix: bool = False,
                  hparams: dict | None = None) -> Path:
    """Write ``state`` (released names) the way PyTorch-Lightning does: ``{"state_dict": ..., ...}``."""
    state = dict(state)
    if position_ids:
        rows = state["text_embeddings.position_embeddings.weight"].shape[0]
        state["text_embeddings.position_ids"] = torch.arange(rows)[None]
    if module_prefix:
        state = {f"module.{k}": v for k, v in state.items()}
    torch.save({"epoch": 9, "global_step": 1000, "pytorch-lightning_version": "1.5.0", "state_dict": state,
                "optimizer_states": [], "lr_schedulers": [],
                "hyper_parameters": {"config": hparams or {"num_heads": HEADS, "vit": "custom"}}}, path)
    return path


def outputs(model: AllInOne, video, ids, mask) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = model(video, ids, mask)
        return {"text": out.text_tokens, "video": out.video_tokens, "frames": out.video_frame_tokens,
                "pooled": out.pooled, "vtm": model.vtm_logits(out), "mlm": model.mlm_logits(out)}


# An independent reference: the released model's forward pass in plain torch, from released names ------
def released_forward(sd: dict, video, ids, mask, heads: int, perm=None) -> dict[str, torch.Tensor]:
    """What the released code computes (patch permutation given explicitly by ``perm`` ``(B*S, N)``).

    ``ids=None`` is its video-only path and ``video=None`` its text-only path: neither rolls tokens.
    """
    # Text only: the released code repeats the text per frame and averages, which is one frame.
    batch, frames = (ids.shape[0], 1) if video is None else video.shape[:2]
    dim = sd["text_embeddings.word_embeddings.weight"].shape[1]
    m = ids.shape[1] if ids is not None else 0
    distilled = "transformer.dist_token" in sd
    prefix = 2 if distilled else 1
    bs = batch * frames

    # BERT text embedding (token type always 0), LayerNorm eps 1e-12, then the modality-type row 0.
    text = torch.zeros(bs, 0, dim)
    keep_text = torch.ones(bs, 0, dtype=torch.bool)
    if ids is not None:
        text = (sd["text_embeddings.word_embeddings.weight"][ids] + sd["text_embeddings.position_embeddings.weight"][:m]
                + sd["text_embeddings.token_type_embeddings.weight"][0])
        text = F.layer_norm(text, (dim,), sd["text_embeddings.LayerNorm.weight"], sd["text_embeddings.LayerNorm.bias"],
                            eps=1e-12)
        text = (text + sd["token_type_embeddings.weight"][0]).repeat_interleave(frames, 0)
        keep_text = mask.bool().repeat_interleave(frames, 0)
    if video is None:
        return _released_blocks(sd, text, keep_text, batch, frames, m, heads, roll=False)

    # Patches + spatial positions (+ the temporal row of their frame, never for the distilled model).
    chans, height, width = video.shape[2:]
    proj = sd["transformer.patch_embed.proj.weight"]
    patches = F.conv2d(video.reshape(bs, chans, height, width), proj, sd["transformer.patch_embed.proj.bias"],
                       stride=proj.shape[-1]).flatten(2).transpose(1, 2)
    pos = sd["transformer.pos_embed"]
    patches = patches + pos[:, prefix:]
    if not distilled and "transformer.temporal_embed" in sd:
        patches = patches + sd["transformer.temporal_embed"][0, :frames].repeat(batch, 1)[:, None]
    if perm is not None:
        patches = torch.gather(patches, 1, perm[..., None].expand(-1, -1, dim))
    lead = [sd["transformer.cls_token"].expand(bs, -1, -1) + pos[:, :1]]
    if distilled:
        lead.append(sd["transformer.dist_token"].expand(bs, -1, -1) + pos[:, 1:2])
    visual = torch.cat(lead + [patches], dim=1) + sd["token_type_embeddings.weight"][1]
    x = torch.cat((text, visual), dim=1)
    keep = torch.cat((keep_text, torch.ones(bs, visual.shape[1], dtype=torch.bool)), dim=1)
    return _released_blocks(sd, x, keep, batch, frames, m, heads, roll=ids is not None)


def _released_blocks(sd: dict, x, keep, batch: int, frames: int, m: int, heads: int, roll: bool) -> dict:
    """Blocks (rolling only for joint input, as the released ``infer``), final norm, frame mean, heads."""
    bs, dim = x.shape[0], x.shape[-1]
    length = x.shape[1] - m
    fold = length // 8  # TemporalRoll(n_div=8, v=0): 1..fold from frame t-1, the last fold from t+1
    depth = len({k.split(".")[2] for k in sd if k.startswith("transformer.blocks.")})
    head_dim = dim // heads
    for i in range(depth):
        p = f"transformer.blocks.{i}."
        if roll:
            vis = x[:, m:].reshape(batch, frames, length, dim)
            rolled = vis.clone()
            rolled[:, :, 1 : fold + 1] = torch.roll(vis[:, :, 1 : fold + 1], 1, 1)
            rolled[:, :, -fold:] = torch.roll(vis[:, :, -fold:], -1, 1)
            x = torch.cat((x[:, :m], rolled.reshape(bs, length, dim)), dim=1)
        tokens = x.shape[1]
        h = F.layer_norm(x, (dim,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps=1e-6)
        qkv = F.linear(h, sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"])
        q, k, v = qkv.reshape(bs, tokens, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) * head_dim**-0.5
        att = att.masked_fill(~keep[:, None, None, :], float("-inf")).softmax(dim=-1)
        att_out = (att @ v).transpose(1, 2).reshape(bs, tokens, dim)
        x = x + F.linear(att_out, sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
        h = F.layer_norm(x, (dim,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps=1e-6)
        h = F.linear(F.gelu(F.linear(h, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])),
                     sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
        x = x + h
    x = F.layer_norm(x, (dim,), sd["transformer.norm.weight"], sd["transformer.norm.bias"], eps=1e-6)
    x = x.reshape(batch, frames, -1, dim)
    frame_visual = x[:, :, m:]
    x = x.mean(dim=1)
    out = {"text": x[:, :m], "video": x[:, m:], "frames": frame_visual}
    if "vid_proj.weight" in sd:  # the retrieval features (compared after normalisation, as sim_matrix does)
        out["vid_proj"] = F.normalize(F.linear(x[:, 0], sd["vid_proj.weight"], sd["vid_proj.bias"]), dim=-1)
        out["txt_proj"] = F.normalize(F.linear(x[:, 0], sd["txt_proj.weight"], sd["txt_proj.bias"]), dim=-1)
    if m == 0:
        return out
    pooled = torch.tanh(F.linear(x[:, 0], sd["pooler.dense.weight"], sd["pooler.dense.bias"]))
    head = "itm_score" if "itm_score.fc.weight" in sd else "vtm_score"
    vtm = F.linear(pooled, sd[f"{head}.fc.weight"], sd[f"{head}.fc.bias"])
    h = F.gelu(F.linear(x[:, :m], sd["mlm_score.transform.dense.weight"], sd["mlm_score.transform.dense.bias"]))
    h = F.layer_norm(h, (dim,), sd["mlm_score.transform.LayerNorm.weight"], sd["mlm_score.transform.LayerNorm.bias"],
                     eps=1e-12)
    mlm = F.linear(h, sd["mlm_score.decoder.weight"]) + sd["mlm_score.bias"]
    return dict(out, pooled=pooled, vtm=vtm, mlm=mlm)


# Key names ------------------------------------------------------------------------------------------------
def test_released_names_are_the_published_ones():
    model = AllInOne(small_config(distilled=True, vtc_dim=16, num_answers=5, mc_head=True))
    names = set(to_released_state_dict(model, matching_head="vtm_score"))
    block = {f"transformer.blocks.{i}.{layer}.{p}" for i in range(2)
             for layer in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2") for p in ("weight", "bias")}
    expected = block | {
        "text_embeddings.word_embeddings.weight", "text_embeddings.position_embeddings.weight",
        "text_embeddings.token_type_embeddings.weight", "text_embeddings.LayerNorm.weight",
        "text_embeddings.LayerNorm.bias", "token_type_embeddings.weight",
        "transformer.cls_token", "transformer.dist_token", "transformer.pos_embed", "transformer.temporal_embed",
        "transformer.patch_embed.proj.weight", "transformer.patch_embed.proj.bias",
        "transformer.norm.weight", "transformer.norm.bias", "pooler.dense.weight", "pooler.dense.bias",
        "mlm_score.transform.dense.weight", "mlm_score.transform.dense.bias", "mlm_score.transform.LayerNorm.weight",
        "mlm_score.transform.LayerNorm.bias", "mlm_score.decoder.weight", "mlm_score.bias",
        "vtm_score.fc.weight", "vtm_score.fc.bias", "txt_proj.weight", "txt_proj.bias", "vid_proj.weight",
        "vid_proj.bias", "vqa_classifier.1.weight", "vqa_classifier.1.bias", "vqa_classifier.2.weight",
        "vqa_classifier.2.bias", "vqa_classifier.4.weight", "vqa_classifier.4.bias", "mc_vqa_classifier.1.weight",
        "mc_vqa_classifier.1.bias", "mc_vqa_classifier.2.weight", "mc_vqa_classifier.2.bias",
        "mc_vqa_classifier.4.weight", "mc_vqa_classifier.4.bias",
    }
    assert names == expected
    state = to_released_state_dict(model)
    assert state["transformer.pos_embed"].shape == (1, 2 + 16, 64) and state["itm_score.fc.weight"].shape == (2, 64)


@pytest.mark.parametrize("variant,distilled,width,heads", [("tiny", False, 192, 3), ("small", True, 384, 6),
                                                           ("base", False, 768, 12)])
def test_config_is_inferred_from_shapes_of_the_released_variants(variant, distilled, width, heads):
    with torch.device("meta"):
        model = AllInOne(ModelConfig(variant=variant, distilled=distilled))
    ours, ignored, unexpected = released_to_ours(to_released_state_dict(model))
    assert ignored == [] and unexpected == []
    cfg = infer_config(ours, released=True)
    assert (cfg.variant, cfg.embed_dim, cfg.num_heads, cfg.num_layers) == (variant, width, heads, 12)
    assert (cfg.image_size, cfg.patch_size, cfg.num_frames, cfg.max_text_len, cfg.vocab_size) == (224, 16, 3, 40, 30522)
    assert cfg.distilled == distilled and cfg.use_temporal_embed == (not distilled) and cfg.visual_len == 197 + distilled
    assert cfg.shuffle_patches and cfg.init == "scratch"


# Faithful numerics -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["base", "distilled", "no_temporal_embed"])
def test_loaded_model_computes_what_the_released_model_computes(tmp_path, kind):
    # The distilled model is built *with* a temporal embedding so that its file carries one, as released
    # small checkpoints may: the loader must ignore it, and the reference never adds it.
    cfg = small_config(distilled=kind == "distilled")
    source = random_model(cfg, seed=3)
    state = to_released_state_dict(source)
    if kind == "no_temporal_embed":
        del state["transformer.temporal_embed"]
    path = save_released(tmp_path / "released.ckpt", state)

    model = from_checkpoint(path, shuffle_patches=False)
    report = model.load_report
    assert report.missing == [] and report.unexpected == [] and not model.training
    assert "text_embeddings.position_ids" in report.ignored
    if kind == "distilled":
        assert model.config.distilled and not model.config.use_temporal_embed and model.temporal_embed is None
        assert "transformer.temporal_embed" in report.ignored
    if kind == "no_temporal_embed":
        assert report.defaulted == ["temporal_embed"] and not model.temporal_embed.any()

    video, ids, mask = inputs(cfg)
    ours = outputs(model, video, ids, mask)
    with torch.no_grad():
        ref = released_forward(state, video, ids, mask, heads=HEADS)
    for key in ("text", "video", "frames", "pooled", "vtm", "mlm"):
        torch.testing.assert_close(ours[key], ref[key], atol=2e-5, rtol=1e-4, msg=f"{kind}: {key}")
    if kind == "distilled":  # the source model adds its temporal embedding: leaving it out is a real change
        assert not torch.allclose(outputs(source, video, ids, mask)["pooled"], ours["pooled"], atol=1e-4)


def test_released_patch_permutation_is_on_by_default_and_matches_the_reference(tmp_path):
    cfg = small_config()
    state = to_released_state_dict(random_model(cfg, seed=4))
    model = from_checkpoint(save_released(tmp_path / "r.ckpt", state))
    assert model.config.shuffle_patches
    assert any("permutation" in note for note in model.load_report.notes)
    video, ids, mask = inputs(cfg)
    batch, frames = video.shape[:2]
    torch.manual_seed(11)
    perm = torch.rand(batch, frames, cfg.num_patches).argsort(dim=-1)  # the draw the model makes
    torch.manual_seed(11)
    ours = outputs(model, video, ids, mask)
    with torch.no_grad():
        ref = released_forward(state, video, ids, mask, HEADS, perm=perm.flatten(0, 1))
        plain = released_forward(state, video, ids, mask, HEADS)
    for key in ("text", "pooled", "vtm", "mlm"):
        torch.testing.assert_close(ours[key], ref[key], atol=2e-5, rtol=1e-4, msg=key)
    # Our video tokens come back in raster order: permute them as the released model leaves them.
    gathered = torch.gather(ours["frames"][:, :, 1:], 2, perm[..., None].expand(-1, -1, -1, cfg.embed_dim))
    torch.testing.assert_close(gathered, ref["frames"][:, :, 1:], atol=2e-5, rtol=1e-4)
    assert not torch.allclose(ours["pooled"], plain["pooled"], atol=1e-4)  # the permutation does matter


def test_unimodal_retrieval_features_match_the_released_model(tmp_path):
    cfg = small_config(vtc_dim=16)
    state = to_released_state_dict(random_model(cfg, seed=8))
    ckpt = save_released(tmp_path / "r.ckpt", state)
    model = from_checkpoint(ckpt, shuffle_patches=False)
    assert not model.config.roll_unimodal
    given = from_checkpoint(ckpt, config=cfg)  # a config of ours gets the released behaviour too
    assert not given.config.roll_unimodal and given.config.shuffle_patches
    assert from_checkpoint(ckpt, config=cfg, roll_unimodal=True).config.roll_unimodal
    video, ids, mask = inputs(cfg)
    with torch.no_grad():
        video_ref = released_forward(state, video, None, None, HEADS)
        text_ref = released_forward(state, None, ids, mask, HEADS)
        video_out, text_out = model(video=video), model(text_ids=ids, text_mask=mask)
        torch.testing.assert_close(video_out.video_frame_tokens, video_ref["frames"], atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(model.encode_video(video), video_ref["vid_proj"], atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(text_out.text_tokens, text_ref["text"], atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(model.encode_text(ids, mask), text_ref["txt_proj"], atol=2e-5, rtol=1e-4)
        # Our own default rolls video-only input, which is a different function.
        rolling = AllInOne(model.config.replace(roll_unimodal=True)).eval()
        rolling.load_state_dict(model.state_dict())
        assert not torch.allclose(rolling(video=video).video_tokens, video_out.video_tokens, atol=1e-4)


# Round trips -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flavour", ["pretrain", "plus_finetuned"])
def test_released_to_model_to_safetensors_and_back_is_exact(tmp_path, flavour):
    plus = flavour == "plus_finetuned"
    cfg = small_config(vtc_dim=16)
    source = random_model(cfg, seed=5)
    state = to_released_state_dict(source, matching_head="vtm_score" if plus else "itm_score")
    if not plus:
        state = {k: v for k, v in state.items() if not k.startswith(("txt_proj.", "vid_proj."))}
    ckpt = save_released(tmp_path / "in.ckpt", state, module_prefix=plus, position_ids=not plus)

    loaded = from_checkpoint(ckpt, shuffle_patches=False)
    assert loaded.config.vtc_dim == (16 if plus else 512)  # from txt_proj's shape, else the default
    report = loaded.load_report
    assert report.missing == [] and report.unexpected == [] and report.resized == []
    assert report.heads_at_init == ([] if plus else ["vtc_head"])
    reference = source.state_dict()
    for key, value in loaded.state_dict().items():
        if not key.startswith("vtc_head.") or (plus and key != "vtc_head.log_scale"):
            assert torch.equal(value, reference[key]), key
    video, ids, mask = inputs(cfg)
    expected = outputs(source, video, ids, mask)
    for key, value in outputs(loaded, video, ids, mask).items():
        assert torch.equal(value, expected[key]), key

    assert convert_main([str(ckpt), str(tmp_path / "out"), "--no-shuffle-patches"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.json", "model.safetensors"]
    meta = json.loads((tmp_path / "out" / "config.json").read_text())
    assert meta["format"] == "allinone-lab" and meta["model_config"]["shuffle_patches"] is False
    assert meta["conversion"]["ignored"] == ([] if plus else ["text_embeddings.position_ids"])
    again = from_checkpoint(tmp_path / "out")
    assert again.load_report.format == "allinone-lab" and again.load_report.missing == []
    assert again.config == loaded.config
    for key, value in outputs(again, video, ids, mask).items():
        assert torch.equal(value, expected[key]), key
    # ... and back to the released names, tensor for tensor.
    back = to_released_state_dict(again, matching_head="vtm_score" if plus else "itm_score")
    if not plus:
        back = {k: v for k, v in back.items() if not k.startswith(("txt_proj.", "vid_proj."))}
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)


def test_safetensors_file_alone_loads_from_its_header(tmp_path):
    cfg = small_config(num_frames=4)
    source = random_model(cfg, seed=6)
    save_converted(source, tmp_path / "conv")
    alone = tmp_path / "alone.safetensors"
    alone.write_bytes((tmp_path / "conv" / "model.safetensors").read_bytes())
    model = from_checkpoint(alone)
    assert model.config == cfg and model.load_report.missing == []
    video, ids, mask = inputs(cfg)
    expected = outputs(source, video, ids, mask)
    assert all(torch.equal(v, expected[k]) for k, v in outputs(model, video, ids, mask).items())
    # Loading into an existing model works too.
    other = AllInOne(cfg)
    report = load_checkpoint(other, tmp_path / "conv")
    assert len(report.loaded) == len(other.state_dict()) and torch.equal(other.pos_embed, source.pos_embed)


def test_position_embeddings_are_resampled_for_other_frames_sizes_and_text_lengths(tmp_path):
    cfg = small_config()
    source = random_model(cfg, seed=7)
    ckpt = save_released(tmp_path / "r.ckpt", to_released_state_dict(source))
    model = from_checkpoint(ckpt, shuffle_patches=False, num_frames=5, image_size=96, max_text_len=6)
    report = model.load_report
    assert sorted(report.resized) == ["pos_embed", "temporal_embed", "text_embed.position_embeddings.weight"]
    assert model.pos_embed.shape == (1, 1 + 36, 64) and model.temporal_embed.shape == (1, 5, 64)
    torch.testing.assert_close(model.pos_embed[:, 0], source.pos_embed[:, 0])
    # Resampling at load time is what the source model does at run time on 5 frames of 96 px and 6 tokens.
    video, ids, mask = inputs(cfg, frames=5, size=96, text_len=6)
    expected = outputs(source, video, ids, mask)
    for key, value in outputs(model, video, ids, mask).items():
        torch.testing.assert_close(value, expected[key], atol=1e-5, rtol=1e-5, msg=key)
    longer = from_checkpoint(ckpt, max_text_len=12)
    table, original = longer.text_embed.position_embeddings.weight, source.text_embed.position_embeddings.weight
    assert table.shape == (12, 64)
    torch.testing.assert_close(table[[0, -1]], original[[0, -1]])


# Strictness and shapes --------------------------------------------------------------------------------------
def test_strict_by_default_and_relaxable(tmp_path):
    state = to_released_state_dict(random_model(small_config()))
    state.pop("transformer.blocks.1.mlp.fc2.bias")
    state["rank_output.weight"] = torch.zeros(1, 64)
    ckpt = save_released(tmp_path / "r.ckpt", state)
    with pytest.raises(CheckpointError, match=r"blocks\.1\.mlp\.fc2\.bias.*rank_output\.weight.*strict=False"):
        from_checkpoint(ckpt)
    model = from_checkpoint(ckpt, strict=False)
    assert model.load_report.missing == ["blocks.1.mlp.fc2.bias"]
    assert model.load_report.unexpected == ["rank_output.weight"]
    assert "missing (kept at init): 1" in str(model.load_report)


def test_every_shape_is_checked_and_named(tmp_path):
    state = to_released_state_dict(random_model(small_config()))
    ckpt = save_released(tmp_path / "r.ckpt", state)
    with pytest.raises(CheckpointError, match=r"text_embed\.word_embeddings\.weight: checkpoint \(100, 64\), "
                                              r"model expects \(120, 64\)"):
        from_checkpoint(ckpt, vocab_size=120)
    with pytest.raises(CheckpointError, match=r"blocks\.0\.mlp\.fc1\.weight"):
        from_checkpoint(ckpt, mlp_ratio=2.0)
    state["itm_score.fc.weight"] = torch.zeros(3, 64)
    with pytest.raises(CheckpointError, match=r"vtm_head\.fc\.weight: checkpoint \(3, 64\)"):
        from_checkpoint(save_released(tmp_path / "bad.ckpt", state))
    state["itm_score.fc.weight"] = torch.zeros(2, 64)
    with pytest.raises(CheckpointError, match=r"not used by the model: \['transformer\.dist_token'\]"):
        extra = dict(state, **{"transformer.dist_token": torch.zeros(1, 1, 64)})
        from_checkpoint(save_released(tmp_path / "dist.ckpt", extra), config=small_config())
    both = dict(state, **{"vtm_score.fc.weight": torch.zeros(2, 64)})
    with pytest.raises(CheckpointError, match="both itm_score"):
        from_checkpoint(save_released(tmp_path / "both.ckpt", both))


# Safety and bad files ------------------------------------------------------------------------------------------
CALLS: list[str] = []


def _record(value: str) -> str:
    CALLS.append(value)
    return value


class CodeOnLoad:
    """Unpickling this calls a function of the file author's choice (here a harmless recorder)."""

    def __reduce__(self):
        return (_record, ("code ran",))


def test_arbitrary_objects_are_never_unpickled_without_consent(tmp_path):
    state = to_released_state_dict(random_model(small_config()))
    path = tmp_path / "r.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": {"config": {"num_heads": HEADS}}, "callback": CodeOnLoad()},
               path)
    CALLS.clear()
    with pytest.raises(CheckpointError, match=r"(?s)_record.*arbitrary code execution.*trust_pickle=True"):
        from_checkpoint(path)
    assert CALLS == []  # refused before anything ran
    assert convert_main([str(path), str(tmp_path / "out")]) == 1 and not (tmp_path / "out").exists()
    model = from_checkpoint(path, trust_pickle=True)
    assert CALLS == ["code ran"] and model.load_report.missing == []


def test_corrupted_truncated_and_foreign_files_give_clear_errors(tmp_path):
    cfg = small_config()
    ckpt = save_released(tmp_path / "r.ckpt", to_released_state_dict(random_model(cfg)))
    data = ckpt.read_bytes()

    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.ckpt.*truncated or corrupted"):
        read_checkpoint(truncated)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match=r"garbage\.ckpt: unknown file type"):
        read_checkpoint(garbage)
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        from_checkpoint(tmp_path / "nope.ckpt")

    vit = timm.create_model("deit_tiny_patch16_224", pretrained=False, depth=1).state_dict()
    torch.save(vit, tmp_path / "vit.pth")
    with pytest.raises(CheckpointError, match=r"vit\.pth: not an All-in-one checkpoint.*image ViT/DeiT"):
        from_checkpoint(tmp_path / "vit.pth")
    save_file(vit, str(tmp_path / "vit.safetensors"))
    with pytest.raises(CheckpointError, match="not an All-in-one checkpoint"):
        from_checkpoint(tmp_path / "vit.safetensors")
    torch.save({"state_dict": {"text_embeddings.word_embeddings.weight": "words"}}, tmp_path / "odd.ckpt")
    with pytest.raises(CheckpointError, match=r"'text_embeddings\.word_embeddings\.weight' is a str"):
        read_checkpoint(tmp_path / "odd.ckpt")

    model = from_checkpoint(ckpt)
    weights, _ = save_converted(model, tmp_path / "conv")
    raw = bytearray(weights.read_bytes())
    raw[-100] ^= 0xFF  # flip a byte of tensor data: only the recorded checksum can tell
    weights.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"SHA-256 differs from the one recorded in .*config\.json"):
        from_checkpoint(tmp_path / "conv")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(CheckpointError, match=r"cut\.safetensors: cannot be read as a safetensors file"):
        read_checkpoint(cut)


def test_converter_writes_atomically_and_runs_as_a_module(tmp_path, capsys):
    cfg = small_config()
    ckpt = save_released(tmp_path / "r.ckpt", to_released_state_dict(random_model(cfg)))
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("stale")
    result = subprocess.run([sys.executable, "-m", "allinone_lab.model.convert", str(ckpt), str(out),
                             "--num-frames", "4"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "tensors loaded" in result.stdout and "temporal_embed" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]  # no temp files left
    meta = json.loads((out / "config.json").read_text())
    assert meta["model_config"]["num_frames"] == 4 and meta["model_config"]["shuffle_patches"] is True
    assert meta["conversion"]["resized"] == ["temporal_embed"]
    assert from_checkpoint(out).temporal_embed.shape == (1, 4, 64)
    assert convert_main([str(tmp_path / "none.ckpt"), str(tmp_path / "o2")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "none.ckpt" in err and "does not exist" in err
    assert not (tmp_path / "o2").exists()
