"""The image task's models: ``resnet_small`` and torchvision classifiers by name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut, as in ResNet-18."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.downsample(x))


class SmallResNet(nn.Module):
    """A ResNet for small images with torchvision's parameter names (conv1, layerN, fc).

    ``conv1`` (3x3, stride ``stem_stride``) maps ``in_channels`` to
    ``widths[0]``; stage i holds ``blocks[i]`` BasicBlocks of ``widths[i]``
    channels, the first of them with stride 2 for i > 0. With the defaults a
    28x28 image runs at 14, 7 and 4 pixels through stages of 64, 128 and 256
    channels, whose 3x3 convs have GEMM views of 64x576, 128x1152 and 256x2304:
    big enough that their sparsity matters, small enough for a 2-core CPU.
    Input ``float[B, in_channels, H, W]``, output logits ``float[B, num_classes]``.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        widths: Sequence[int] = (64, 128, 256),
        blocks: Sequence[int] = (1, 1, 1),
        stem_stride: int = 2,
    ) -> None:
        super().__init__()
        if len(widths) != len(blocks) or not widths or min(*widths, *blocks, stem_stride) < 1:
            raise ValueError(
                f"resnet_small needs as many positive widths as blocks and stem_stride >= 1; "
                f"got widths={list(widths)}, blocks={list(blocks)}, stem_stride={stem_stride}"
            )
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stem_stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        channels = widths[0]
        for stage, (width, count) in enumerate(zip(widths, blocks, strict=True), start=1):
            layers = []
            for index in range(count):
                stride = 2 if stage > 1 and index == 0 else 1
                layers.append(BasicBlock(channels, width, stride))
                channels = width
            self.add_module(f"layer{stage}", nn.Sequential(*layers))
        self.stages = len(widths)
        self.fc = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        # Zero-init the last BN of each block: every block starts as identity (Goyal et al.).
        for module in self.modules():
            if isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        for stage in range(1, self.stages + 1):
            x = getattr(self, f"layer{stage}")(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def build_classifier(
    name: str, num_classes: int, in_channels: int, model_args: Mapping[str, Any]
) -> nn.Module:
    """``resnet_small`` or any torchvision classification model, randomly initialised.

    torchvision models are built with ``weights=None`` (nothing downloads) and
    expect 3-channel input.
    """
    try:
        if name == "resnet_small":
            return SmallResNet(num_classes, in_channels, **model_args)
        if name not in torchvision.models.list_models(module=torchvision.models):
            raise ValueError(
                f"model={name!r} is unknown; accepted: resnet_small or a torchvision "
                "classification model name (resnet18, resnet50, wide_resnet50_2, ...)"
            )
        if in_channels != 3:
            raise ValueError(
                f"model={name!r} is a torchvision model for 3-channel images but the dataset "
                f"has {in_channels} channel(s); use model=resnet_small"
            )
        return torchvision.models.get_model(
            name, weights=None, num_classes=num_classes, **model_args
        )
    except TypeError as err:  # an unknown or mistyped keyword in model_args
        raise ValueError(
            f"task.model_args={dict(model_args)!r} do not fit model {name!r} ({err}); accepted: "
            "the keyword arguments of its builder (resnet_small: widths, blocks, stem_stride)"
        ) from err
