"""DAN, "Distract your Attention" (Wen et al., Biomimetics 2023): the first baseline of Figures 5-7.

ResNet18 trunk -> N cross-attention heads (spatial unit then channel unit) -> attention fusion
(log-softmax across heads, summed) -> Linear -> BatchNorm1d. Trained with cross-entropy, the
affinity loss (on GAP of the trunk) and the partition loss (on the heads): criterion ``"dan"``.
Built from the paper's description; the choices its text leaves open are listed in docs/baselines.md.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from fer_lib.models import InputSpec, ModelOutput, register_model
from fer_lib.models.backbone import build_trunk
from fer_lib.models.layers import sigmoid32


def _conv_bn(c_in: int, c_out: int, kernel: tuple[int, int]) -> nn.Sequential:
    """Convolution with 'same' padding followed by BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=(kernel[0] // 2, kernel[1] // 2)), nn.BatchNorm2d(c_out)
    )


class SpatialUnit(nn.Module):
    """DAN's spatial attention unit: 1x1 reduce, parallel 3x3 / 1x3 / 3x1 convs, ReLU of the sum, channel sum."""

    def __init__(self, channels: int = 512, reduced: int = 256):
        super().__init__()
        self.reduce = _conv_bn(channels, reduced, (1, 1))
        self.branches = nn.ModuleList(_conv_bn(reduced, channels, k) for k in ((3, 3), (1, 3), (3, 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.reduce(x)
        y = F.relu(sum(branch(y) for branch in self.branches))
        spatial_map = y.sum(dim=1, keepdim=True)  # one map per head: B x 1 x h x w
        return x * spatial_map, spatial_map.squeeze(1)


class ChannelUnit(nn.Module):
    """DAN's channel attention unit on the pooled vector: Linear -> BN -> ReLU -> Linear -> sigmoid, as a gate."""

    def __init__(self, channels: int = 512, hidden: int = 32):
        super().__init__()
        self.gate = nn.Sequential(
            nn.Linear(channels, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3))
        return pooled * sigmoid32(self.gate(pooled))


class CrossAttentionHead(nn.Module):
    """One DAN head: spatial unit, then channel unit. Returns the B x C vector and the B x h x w spatial map."""

    def __init__(self, channels: int = 512):
        super().__init__()
        self.spatial = SpatialUnit(channels)
        self.channel = ChannelUnit(channels)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.001)  # small start so every head begins near "no gating"
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attended, spatial_map = self.spatial(x)
        return self.channel(attended), spatial_map


@register_model("dan")
class DAN(nn.Module):
    """DAN baseline.

    Args:
        num_classes: classifier outputs.
        image_size: square input side (the paper uses 224).
        num_heads: number of cross-attention heads (DAN's default 4).
        pretrained: local ResNet18 weights (DAN's ``resnet18_msceleb.pth``); None = random initialisation.
        partition_on: ``"fused"`` (default) gives the partition loss the log-softmax outputs across heads,
            as DAN's public training code does; ``"raw"`` gives it the head vectors before the fusion.
    """

    criterion = "dan"

    def __init__(
        self,
        num_classes: int = 7,
        image_size: int = 224,
        num_heads: int = 4,
        pretrained: str | os.PathLike | None = None,
        partition_on: str = "fused",
    ):
        super().__init__()
        if partition_on not in ("fused", "raw"):
            raise ValueError(f"partition_on must be 'fused' or 'raw', not {partition_on!r}")
        self.input_spec = InputSpec(size=image_size)
        self.partition_on = partition_on
        self.trunk = build_trunk(pretrained)
        self.heads = nn.ModuleList(CrossAttentionHead(512) for _ in range(num_heads))
        self.fc = nn.Linear(512, num_classes)
        self.bn = nn.BatchNorm1d(num_classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        x_f = self.trunk(x)
        vectors, maps = zip(*(head(x_f) for head in self.heads))
        heads = torch.stack(vectors, dim=1)  # B x N x 512
        # Attention fusion: log-softmax across the heads (skipped for a single head, as in DAN).
        fused = F.log_softmax(heads, dim=1) if heads.shape[1] > 1 else heads
        logits = self.bn(self.fc(fused.sum(dim=1)))
        return ModelOutput(
            logits=logits,
            features=x_f.mean(dim=(2, 3)),  # what the affinity loss pulls towards the class centres
            head_maps=torch.stack(maps, dim=1),
            heads=fused if self.partition_on == "fused" else heads,
            extras={"x": x_f, "heads_raw": heads},
        )
