"""The MobileNetV2-style network of an :class:`~zcscore.spaces.mbv2.MBV2Arch`.

Layout (torchvision ``mobilenet_v2`` without dropout, generalised per stage):

* stem: conv 3x3 stride 2 -> BN -> ReLU6;
* per stage, ``depth`` inverted-residual blocks, the first with the stage stride: 1x1 expand conv -> BN ->
  ReLU6 (only when the expansion is not 1), kxk depthwise conv (padding k // 2) -> BN -> ReLU6, optional
  squeeze-excite, 1x1 project conv -> BN (linear bottleneck); the input is added when the stride is 1 and
  the widths match;
* head: 1x1 conv to ``last_width`` -> BN -> ReLU6, global average pool, ``classifier = nn.Linear``.

Squeeze-excite (stages with ``se``): global average pool, 1x1 conv to ``se_channels(hidden)`` (a quarter
of the expanded width, at least 8) with bias, ReLU, 1x1 conv back with bias, sigmoid, multiply. All other
convs have no bias. Weights keep PyTorch's default initialisation, so they depend only on the torch RNG
state at build time. :func:`zcscore.spaces.mbv2.params` and :func:`~zcscore.spaces.mbv2.macs` count this
network exactly (tested against its parameters and ``FlopCounterMode``).
"""

from __future__ import annotations

import torch
from torch import nn

from zcscore.spaces.mbv2 import BlockSpec, MBV2Arch, blocks, parse_arch, se_channels


class ConvBNAct(nn.Sequential):
    """Conv (no bias, padding k // 2) -> BN, followed by ReLU6 when ``act``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Channel gate: GAP -> 1x1 conv (reduce, bias) -> ReLU -> 1x1 conv (expand, bias) -> sigmoid -> scale."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeeze = se_channels(channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale: torch.Tensor = self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
        return x * scale


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expand] -> kxk depthwise -> [SE] -> 1x1 linear project, residual if shapes match."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        hidden = spec.hidden
        layers: list[nn.Module] = []
        if spec.expansion != 1:
            layers.append(ConvBNAct(spec.c_in, hidden, 1))
        layers.append(ConvBNAct(hidden, hidden, spec.kernel, stride=spec.stride, groups=hidden))
        if spec.se:
            layers.append(SqueezeExcite(hidden))
        layers.append(ConvBNAct(hidden, spec.c_out, 1, act=False))
        self.conv = nn.Sequential(*layers)
        self.use_residual = spec.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(x)
        return x + out if self.use_residual else out


class MBV2Net(nn.Module):
    """Stem, one ``nn.Sequential`` of blocks per stage, 1x1 head conv, GAP and a Linear ``classifier``."""

    def __init__(self, arch: MBV2Arch, num_classes: int = 1000) -> None:
        super().__init__()
        self.arch = arch
        self.stem = ConvBNAct(3, arch.stem_width, 3, stride=2)
        specs = list(blocks(arch))
        stages: list[nn.Module] = []
        start = 0
        for st in arch.stages:
            stages.append(nn.Sequential(*(InvertedResidual(s) for s in specs[start : start + st.depth])))
            start += st.depth
        self.stages = nn.ModuleList(stages)
        self.head_conv = ConvBNAct(arch.stages[-1].width, arch.last_width, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(arch.last_width, num_classes)

    def extract_cell_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stem output, each stage's output, then the head conv output (``len(stages) + 2`` tensors)."""
        feats = [self.stem(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        feats.append(self.head_conv(feats[-1]))
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stem(x)
        for stage in self.stages:
            out = stage(out)
        out = self.pool(self.head_conv(out)).flatten(1)
        logits: torch.Tensor = self.classifier(out)
        return logits


def build_mbv2(arch: MBV2Arch | str, num_classes: int = 1000) -> MBV2Net:
    """Build the network of ``arch`` (an :class:`MBV2Arch` or its compact/JSON string)."""
    if isinstance(arch, str):
        arch = parse_arch(arch)
    return MBV2Net(arch, num_classes)
