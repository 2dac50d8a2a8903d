"""Plain ResNet18 classifier: the trunk, global average pooling and a linear layer."""

from __future__ import annotations

import os

import torch
from torch import nn

from fer_lib.models import InputSpec, ModelOutput, register_model
from fer_lib.models.backbone import build_trunk


@register_model("resnet18")
class ResNet18(nn.Module):
    """ResNet18 baseline: x_F -> GAP -> Linear. Trained with plain cross-entropy."""

    criterion = "ce"

    def __init__(self, num_classes: int = 7, image_size: int = 224, pretrained: str | os.PathLike | None = None):
        super().__init__()
        self.input_spec = InputSpec(size=image_size)
        self.trunk = build_trunk(pretrained)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        features = self.trunk(x).mean(dim=(2, 3))
        return ModelOutput(logits=self.fc(features), features=features)
