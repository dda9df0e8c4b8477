"""ImageNet initialisation from a local timm file, FLOP counting, throughput."""

import pytest
import timm
import torch
from safetensors.torch import save_file

from allinone_lab.model import (
    AllInOne,
    ModelConfig,
    analytic_flops,
    attention_score_flops,
    build_model,
    count_flops,
    dummy_inputs,
    image_normalization,
    throughput,
    timm_tag,
)


@pytest.fixture(scope="module")
def deit_tiny_file(tmp_path_factory):
    """A deit_tiny checkpoint in timm's format, made here with random weights (no download)."""
    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_patch16_224", pretrained=False)
    path = tmp_path_factory.mktemp("weights") / "deit_tiny.safetensors"
    save_file(model.state_dict(), str(path))
    return path, model.state_dict()


def test_imagenet_init_loads_timm_weights_one_to_one(deit_tiny_file):
    path, reference = deit_tiny_file
    model = build_model(ModelConfig(variant="tiny", init="imagenet", init_file=str(path)))
    report = model.init_report
    assert report.unexpected == [] and report.missing == [] and report.resized == []
    assert len(report.loaded) == 4 + 12 * 12 + 2  # cls, pos, patch proj w/b; 12 tensors per block; final norm
    for key in ("pos_embed", "blocks.11.attn.qkv.weight", "blocks.3.mlp.fc2.bias", "norm.weight", "patch_embed.proj.weight"):
        assert torch.equal(model.state_dict()[key], reference[key]), key
    assert "temporal_embed" not in report.loaded  # ours, kept at init


def test_imagenet_init_resamples_positions_for_other_frame_sizes(deit_tiny_file):
    path, reference = deit_tiny_file
    model = build_model(ModelConfig(variant="tiny", init="imagenet", init_file=str(path), image_size=112))
    assert model.init_report.resized == ["pos_embed"]
    pos = model.pos_embed
    assert pos.shape == (1, 1 + 49, 192)
    torch.testing.assert_close(pos[:, 0], reference["pos_embed"][:, 0])  # the CLS position is kept as is
    assert "resized" in str(model.init_report)


def test_init_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="init_file"):
        build_model(ModelConfig(variant="tiny", init="imagenet", init_file=str(tmp_path / "nope.pth")))
    with pytest.raises(ValueError, match="patch_size=32"):
        timm_tag(ModelConfig(variant="tiny", patch_size=32, init="imagenet21k"))
    assert timm_tag(ModelConfig(variant="base", init="imagenet21k")) == "vit_base_patch16_224.augreg_in21k"
    assert image_normalization(ModelConfig(variant="tiny", init="imagenet"))[0] == (0.485, 0.456, 0.406)


@pytest.mark.parametrize("temporal", ["roll", "flatten", "timesformer", "decoupled"])
def test_counted_flops_match_the_analytic_count(temporal):
    cfg = ModelConfig(variant="tiny", depth=2, image_size=64, temporal=temporal)
    model = AllInOne(cfg).eval()
    inputs = dummy_inputs(cfg, batch_size=2)
    counted, analytic = count_flops(model, inputs), analytic_flops(cfg, batch_size=2)
    assert abs(counted - analytic) / analytic < 0.01, (counted, analytic)


def test_flatten_attention_costs_about_s_times_rolling():
    roll = attention_score_flops(ModelConfig(variant="base"))
    flat = attention_score_flops(ModelConfig(variant="base", temporal="flatten"))
    assert flat / roll == pytest.approx((40 + 3 * 197) ** 2 / (3 * (40 + 197) ** 2))
    no_text = attention_score_flops(ModelConfig(variant="base", temporal="flatten"), text_len=0)
    assert no_text / attention_score_flops(ModelConfig(variant="base"), text_len=0) == pytest.approx(3.0)
    # The whole forward is another matter: the MLP is linear in tokens and flatten sees the text once.
    assert analytic_flops(ModelConfig(variant="base", temporal="flatten")) < analytic_flops(ModelConfig(variant="base"))


def test_throughput_counts_videos_per_second():
    cfg = ModelConfig(variant="tiny", depth=1, image_size=32)
    model = AllInOne(cfg).eval()
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    rate = throughput(model, dummy_inputs(cfg, 2), iters=3, warmup=1)
    assert len(calls) == 4 and 0 < rate < float("inf")
