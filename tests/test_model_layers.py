"""LayerNorm and patch embedding: torch's and timm's arithmetic, with CPU gradients that do not depend on the
number of threads, so that training is the same on one thread and on two."""

import os

import pytest
import torch
from test_train_loop import Pairs
from timm.layers import PatchEmbed as TimmPatchEmbed
from torch import nn

from allinone_lab.model import AllInOne, ModelConfig
from allinone_lab.model.layers import LayerNorm, PatchEmbed
from allinone_lab.train import Pretraining, TrainConfig, load_checkpoint, train

TWO_CPUS = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")


def test_layer_norm_computes_what_torch_computes():
    ours, theirs = LayerNorm(48, eps=1e-6), nn.LayerNorm(48, eps=1e-6)
    with torch.no_grad():
        ours.weight.normal_(), ours.bias.normal_()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(4, 7, 48)
    grad = torch.randn(4, 7, 48)
    outputs = []
    for module in (ours, theirs):
        y = module(x.clone().requires_grad_())
        y.backward(grad)
        outputs.append((y, module.weight.grad, module.bias.grad))
    for a, b in zip(*outputs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_patch_embedding_computes_what_the_convolution_computes():
    ours = PatchEmbed(32, 8, 3, 40, strict_img_size=False)
    theirs = TimmPatchEmbed(32, 8, 3, 40, strict_img_size=False)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(5, 3, 32, 48)  # not the configured size: strict_img_size=False allows any multiple of 8
    grad = torch.randn(5, 24, 40)
    outputs = []
    for module in (ours, theirs):
        y = module(x)
        y.backward(grad)
        outputs.append((y, module.proj.weight.grad, module.proj.bias.grad))
    for a, b in zip(*outputs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"30x32 px do not divide into 8x8 patches"):
        ours(torch.randn(1, 3, 30, 32))


def _with_threads(threads: int, fn):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


@TWO_CPUS
def test_layer_norm_and_patch_gradients_are_the_same_on_one_thread_and_two():
    torch.manual_seed(0)
    norm, embed = LayerNorm(128), PatchEmbed(64, 16, 3, 128, strict_img_size=False)
    x, video = torch.randn(6000, 128), torch.randn(96, 3, 64, 64)

    def grads():
        norm.zero_grad(), embed.zero_grad()
        (norm(x).square().sum() + embed(video).square().sum()).backward()
        return [p.grad.clone() for p in (*norm.parameters(), *embed.parameters())]

    for a, b in zip(_with_threads(1, grads), _with_threads(2, grads), strict=True):
        assert torch.equal(a, b)


@TWO_CPUS
def test_training_gives_the_same_weights_on_one_thread_and_two(tmp_path):
    def run(threads: int):
        torch.manual_seed(0)
        model = AllInOne(ModelConfig(variant="tiny", width=64, heads=4, depth=2, image_size=32, max_text_len=8,
                                     vocab_size=50, drop_path_rate=0.0))
        cfg = TrainConfig(max_steps=3, batch_size=24, lr=1e-3, checkpoint_every=3, log_every=1, num_workers=0,
                          loss_weights={"vtm": 1.0, "mlm": 1.0})
        result = _with_threads(threads, lambda: train(Pretraining(model, cfg.loss_weights), Pairs(size=72), cfg,
                                                      tmp_path / f"threads{threads}", progress=False))
        return load_checkpoint(result.checkpoint)["model"]

    one, two = run(1), run(2)
    assert one.keys() == two.keys()
    for key in one:
        assert torch.equal(one[key], two[key]), key
