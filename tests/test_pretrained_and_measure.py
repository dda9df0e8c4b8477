"""ImageNet initialisation from a local timm file, FLOP counting, throughput."""

import pickle

import huggingface_hub
import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

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
from allinone_lab.model.pretrained import (
    MissingWeightsError,
    check_init_weights,
    find_init_weights,
    hub_repo_id,
    initialize_from_timm,
    write_timm_weights,
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
    for key in ("pos_embed", "blocks.11.attn.qkv.weight", "blocks.3.mlp.fc2.bias", "norm.weight",
                "patch_embed.proj.weight"):
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


@pytest.fixture
def no_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline mode, and any download attempt turned into a test failure."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args} {kwargs}")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    monkeypatch.setattr(timm.models._hub, "hf_hub_download", refuse)
    return cache


def _fake_hub_cache(cache, tag, weights_file):
    """The layout huggingface_hub leaves behind: models--timm--<tag>/{refs/main, snapshots/<hash>/...}."""
    folder = cache / ("models--" + hub_repo_id(tag).replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    (snapshot / "model.safetensors").write_bytes(weights_file.read_bytes())
    return snapshot / "model.safetensors"


def test_offline_init_without_file_or_cache_names_the_tag_and_the_fetch_command(no_hub):
    cfg = ModelConfig(variant="tiny", init="imagenet")
    tag = "deit_tiny_patch16_224.fb_in1k"
    assert find_init_weights(cfg) is None
    with pytest.raises(MissingWeightsError) as caught:
        build_model(cfg)
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    assert f"timm tag {tag}" in message and "variant='tiny'" in message and "init='imagenet'" in message
    assert f"hf download timm/{tag} model.safetensors --local-dir weights/{tag}" in message
    assert f"--set model.init_file=weights/{tag}/model.safetensors" in message
    assert str(no_hub / f"models--timm--{tag}") in message  # where it looked
    assert len(message.splitlines()) <= 8
    assert str(pickle.loads(pickle.dumps(caught.value))) == message
    problems = check_init_weights(cfg)
    assert len(problems) == 1 and f"hf download timm/{tag}" in problems[0]


def test_written_timm_weights_initialise_a_tiny_model_exactly(tmp_path, no_hub):
    path = write_timm_weights("deit_tiny_patch16_224.fb_in1k", tmp_path / "w" / "model.safetensors")
    reference = load_file(str(path))
    cfg = ModelConfig(variant="tiny", patch_size=16, init="imagenet", init_file=str(path))
    assert find_init_weights(cfg) == path and check_init_weights(cfg) == []
    model = build_model(cfg)
    report = model.init_report
    assert str(path) in report.source and report.missing == [] and report.unexpected == []
    expected = {"cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.11.mlp.fc2.weight"}
    assert expected <= set(report.loaded)
    for key in report.loaded:
        assert torch.equal(model.state_dict()[key], reference[key]), key


def test_imagenet21k_weights_in_timm_hub_format_load_from_a_file(tmp_path, no_hub):
    # timm describes these tags' original weights as .npz; the hub (and this file) hold a timm state dict.
    tag = "vit_tiny_patch16_224.augreg_in21k"
    path = write_timm_weights(tag, tmp_path / "in21k.safetensors", seed=1)
    model = build_model(ModelConfig(variant="tiny", init="imagenet21k", init_file=str(path)))
    key = "blocks.0.attn.qkv.weight"
    assert torch.equal(model.state_dict()[key], load_file(str(path))[key])


def test_a_file_in_the_local_hf_cache_is_found_and_used(tmp_path, no_hub, monkeypatch):
    tag = "deit_tiny_patch16_224.fb_in1k"
    written = write_timm_weights(tag, tmp_path / "written.safetensors")
    cached = _fake_hub_cache(no_hub, tag, written)
    cfg = ModelConfig(variant="tiny", init="imagenet")
    assert find_init_weights(cfg) == cached
    model = build_model(cfg)
    assert str(cached) in model.init_report.source and len(model.init_report.loaded) == 4 + 12 * 12 + 2
    # HF_HOME/hub is the cache when HF_HUB_CACHE is not set, as huggingface_hub resolves it.
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert find_init_weights(cfg) is None
    moved = _fake_hub_cache(tmp_path / "home" / "hub", tag, written)
    assert find_init_weights(cfg) == moved
    # An explicit init_file that does not exist is not silently replaced by the cached file.
    assert find_init_weights(cfg.replace(init_file=str(tmp_path / "gone.safetensors"))) is None


def test_check_init_weights_reports_unusable_files_and_never_raises(tmp_path, no_hub):
    assert check_init_weights(ModelConfig(init="scratch")) == []
    assert find_init_weights(ModelConfig(init="scratch")) is None
    small = write_timm_weights("deit_small_patch16_224.fb_in1k", tmp_path / "small.safetensors")
    wrong = check_init_weights(ModelConfig(variant="tiny", init="imagenet", init_file=str(small)))
    assert len(wrong) == 1 and "patch_embed.proj.weight" in wrong[0] and "another model" in wrong[0]
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(small.read_bytes()[:100])
    broken = check_init_weights(ModelConfig(variant="small", init="imagenet", init_file=str(cut)))
    assert len(broken) == 1 and str(cut) in broken[0] and "safetensors" in broken[0]
    empty = tmp_path / "empty.bin"
    empty.touch()
    assert "empty" in check_init_weights(ModelConfig(variant="small", init="imagenet",
                                                     init_file=str(empty)))[0]
    custom = check_init_weights(ModelConfig(variant="tiny", depth=2, init="imagenet"))
    assert len(custom) == 1 and "named variant" in custom[0]


def test_initialize_from_timm_with_an_explicit_missing_file_raises(tmp_path, no_hub):
    model = AllInOne(ModelConfig(variant="tiny", init="imagenet"))
    with pytest.raises(MissingWeightsError, match="nope.safetensors"):
        initialize_from_timm(model, tmp_path / "nope.safetensors")
    with pytest.raises(ValueError, match=r"\.safetensors"):
        write_timm_weights("deit_tiny_patch16_224.fb_in1k", tmp_path / "w.pth")


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
    flatten = analytic_flops(ModelConfig(variant="base", temporal="flatten"))
    assert flatten < analytic_flops(ModelConfig(variant="base"))


def test_throughput_counts_videos_per_second():
    cfg = ModelConfig(variant="tiny", depth=1, image_size=32)
    model = AllInOne(cfg).eval()
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    rate = throughput(model, dummy_inputs(cfg, 2), iters=3, warmup=1)
    assert len(calls) == 4 and 0 < rate < float("inf")
