"""DDAMFN, Dual-Direction Attention Mixed Feature Network (Zhang et al., Electronics 2023): second baseline.

MixedFeatureNet trunk (B x 512 x 7 x 7 at 112 px) -> dual-direction attention (DDA) module with two
heads; each head builds a height gate and a width gate from direction-wise global depthwise convs
(kernel 1 x w and h x 1), their product is the head's attention map; the element-wise maximum over
the heads multiplies the features -> global depthwise conv (GDConv, kernel h x w) -> 512-d -> Linear.
Trained with cross-entropy + 0.1 x the attention loss between heads: criterion ``"ddamfn"``.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from fer_lib.models import InputSpec, ModelOutput, register_model
from fer_lib.models.layers import sigmoid32
from fer_lib.models.mixed_feature_net import LinearBlock, MixedFeatureNet, hard_swish, load_mfn_weights


def mfn_feature_size(image_size: int) -> int:
    """Side of the MixedFeatureNet map: four stride-2 stages, each ceil(n / 2); 112 -> 7."""
    side = image_size
    for _ in range(4):
        side = (side + 1) // 2
    return side


class DualDirectionHead(nn.Module):
    """One DDA head: GDConv along each direction, shared 1x1 conv + BN + h-swish, then a sigmoid gate per direction."""

    def __init__(self, channels: int, height: int, width: int, reduction: int = 32):
        super().__init__()
        mid = max(8, channels // reduction)
        self.Linear_h = LinearBlock(channels, channels, (1, width), groups=channels)  # one token per row
        self.Linear_w = LinearBlock(channels, channels, (height, 1), groups=channels)  # one token per column
        self.conv1 = nn.Conv2d(channels, mid, 1)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, channels, 1)
        self.conv3 = nn.Conv2d(mid, channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h, w = x.shape[2:]
        rows = self.Linear_h(x)  # B x C x h x 1
        cols = self.Linear_w(x).transpose(2, 3)  # B x C x w x 1
        y = hard_swish(self.bn1(self.conv1(torch.cat([rows, cols], dim=2))))
        y_h, y_w = torch.split(y, [h, w], dim=2)
        a_h = sigmoid32(self.conv2(y_h))  # B x C x h x 1
        a_w = sigmoid32(self.conv3(y_w.transpose(2, 3)))  # B x C x 1 x w
        return a_h * a_w, a_h, a_w  # the head's attention map, B x C x h x w


@register_model("ddamfn")
class DDAMFN(nn.Module):
    """DDAMFN baseline.

    Args:
        num_classes: classifier outputs.
        image_size: square input side (the paper uses 112; the GDConv kernels follow from it).
        num_heads: DDA heads (the paper's default 2).
        pretrained: local MixedFeatureNet state dict (see :func:`load_mfn_weights`); None = random init.
    """

    criterion = "ddamfn"

    def __init__(
        self,
        num_classes: int = 7,
        image_size: int = 112,
        num_heads: int = 2,
        pretrained: str | os.PathLike | None = None,
    ):
        super().__init__()
        self.input_spec = InputSpec(size=image_size)
        side = mfn_feature_size(image_size)
        self.features = MixedFeatureNet()
        if pretrained:
            load_mfn_weights(self.features, pretrained)
        self.heads = nn.ModuleList(DualDirectionHead(512, side, side) for _ in range(num_heads))
        self.gdconv = LinearBlock(512, 512, (side, side), groups=512)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        x_f = self.features(x)
        maps = [head(x_f)[0] for head in self.heads]
        attention = maps[0]
        for m in maps[1:]:
            attention = torch.maximum(attention, m)  # the heads are fused by their element-wise maximum
        features = self.gdconv(x_f * attention).flatten(1)  # B x 512
        stacked = torch.stack(maps, dim=1)  # B x N x C x h x w
        return ModelOutput(
            logits=self.fc(features),
            features=features,
            head_maps=stacked.mean(dim=2),  # B x N x h x w: channel mean of each head's a_h x a_w
            # The attention loss compares the heads' full C x h x w maps (mean squared difference),
            # so each head is handed over flattened: B x N x (C*h*w).
            heads=stacked.flatten(2),
            extras={"x": x_f},
        )
