"""LayerNorm and patch embedding whose CPU gradients do not depend on the number of threads.

On the CPU, torch's fused LayerNorm backward sums the scale and shift gradients over rows in an order that
depends on the thread count, and so does the convolution behind a patch embedding for its weight gradient:
the same step on one thread and on two gives gradients that differ in the last bits (about 1e-9), and over a
thousand steps that moves a result as much as another seed. The modules here compute those two gradients
from element-wise operations and a matrix product instead, which gave the same bits on one thread and on two
(tests/test_model_layers.py), so a sweep that runs each point on one thread reproduces the standalone run on
two (docs/lab-notes/2026-12-04-same-numbers-on-one-or-two-threads.md). On CUDA they run torch's and timm's
own kernels.

Parameters, their names and their initialisation are those of ``nn.LayerNorm`` and timm's ``PatchEmbed``:
checkpoints load either way.
"""

from __future__ import annotations

import torch.nn.functional as F
from timm.layers import PatchEmbed as TimmPatchEmbed
from torch import Tensor, nn


class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm``; on the CPU the affine step is its own operation (``x_hat * weight + bias``)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu" or self.weight is None or self.bias is None:
            return super().forward(x)
        return F.layer_norm(x, self.normalized_shape, None, None, self.eps) * self.weight + self.bias


class PatchEmbed(TimmPatchEmbed):
    """timm's ``PatchEmbed``; on the CPU the patch projection is one matrix product over flattened patches
    (the same arithmetic as the strided convolution: ``(B, C, H, W) -> (B, N, D)``)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu" or not self.flatten or self.dynamic_img_pad:
            return super().forward(x)
        batch, chans, height, width = x.shape
        ph, pw = self.patch_size
        if height % ph or width % pw:
            raise ValueError(f"frames of {height}x{width} px do not divide into {ph}x{pw} patches")
        if self.strict_img_size and (height, width) != tuple(self.img_size):
            raise ValueError(f"frames of {height}x{width} px; the model expects {self.img_size[0]}x{self.img_size[1]}")
        rows, cols = height // ph, width // pw
        patches = x.reshape(batch, chans, rows, ph, cols, pw).permute(0, 2, 4, 1, 3, 5)
        patches = patches.reshape(batch, rows * cols, chans * ph * pw)
        weight = self.proj.weight.reshape(self.proj.weight.shape[0], -1)  # (D, C * ph * pw), the conv's order
        return self.norm(F.linear(patches, weight, self.proj.bias))
