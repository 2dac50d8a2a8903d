"""Layers shared by the models.

:class:`SmallMapConv2d` is ``nn.Conv2d`` computed as gather + matrix product when the output map is
at most 9 x 9 (layer3 and x_F at the cpu profile's 72 px are 5 x 5 and 3 x 3): the same function and parameters, but on the CPU
oneDNN's convolution backward at 3 x 3 with 512 channels runs 2-3x slower than the equivalent
matrix product (measured in ``docs/cpu_study.md``, "Precision"). Larger maps and other devices use ``F.conv2d``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Output maps with at most this many positions take the gather path on the CPU.
SMALL_MAP = 81


def sigmoid32(x: torch.Tensor) -> torch.Tensor:
    """An attention gate's sigmoid, computed in fp32 whatever the autocast dtype.

    In bfloat16 every value above about 0.998 rounds to 1.0, so a gate that opens that far gets a zero
    gradient (s (1 - s) = 0) and never closes again; under bf16 autocast DAF-MHSCA's gates saturated and
    its training collapsed to chance (docs/cpu_study.md). The gate's input may stay bf16; only the sigmoid
    and what it multiplies are fp32.
    """
    return torch.sigmoid(x.float())


class SmallMapConv2d(nn.Conv2d):
    """``nn.Conv2d`` (groups 1, zero padding) that switches to gather + matmul for tiny CPU maps.

    The padded input, channels last, is indexed once at every (output position, kernel tap): a
    B x L x (kh kw C) matrix times the kernel as a (kh kw C) x O matrix. Its backward is an
    index-add, cheaper here than oneDNN's convolution backward or unfold's col2im."""

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """Height and width of the output map for an ``h`` x ``w`` input."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        return (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        b, _, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        ho, wo = self.output_size(h, w)
        if x.device.type != "cpu" or ho * wo > SMALL_MAP:
            return super()._conv_forward(x, weight, bias)
        hp, wp = h + 2 * ph, w + 2 * pw
        dev = x.device
        rows = torch.arange(ho, device=dev).view(-1, 1, 1, 1) * sh + dh * torch.arange(kh, device=dev).view(1, 1, -1, 1)
        cols = torch.arange(wo, device=dev).view(1, -1, 1, 1) * sw + dw * torch.arange(kw, device=dev).view(1, 1, 1, -1)
        index = (rows * wp + cols).reshape(-1)  # (ho, wo, ki, kj) -> position in the padded map
        padded = F.pad(x, (pw, pw, ph, ph)).permute(0, 2, 3, 1).reshape(b, hp * wp, -1)  # B x P x C
        taps = padded[:, index].reshape(b, ho * wo, -1)  # B x L x (kh kw C)
        out = taps @ weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).t()  # B x L x O
        if bias is not None:
            out = out + bias
        return out.permute(0, 2, 1).reshape(b, -1, ho, wo)


def use_small_map_convs(module: nn.Module) -> nn.Module:
    """Turn every plain ``nn.Conv2d`` in ``module`` into a :class:`SmallMapConv2d` in place (weights and
    state-dict keys unchanged); grouped, depthwise and non-zero-padded convolutions stay as they are."""
    for m in module.modules():
        if type(m) is nn.Conv2d and m.groups == 1 and m.padding_mode == "zeros" and isinstance(m.padding, tuple):
            m.__class__ = SmallMapConv2d
    return module
