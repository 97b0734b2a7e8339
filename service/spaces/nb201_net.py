"""The NAS-Bench-201 network, built exactly as the official xautodl ``TinyNetwork``.

Module creation order, shapes and defaults match xautodl (and the copies in AZ-NAS, ZiCo's NB201 port
and xi-GSNR), so a network built after ``torch.manual_seed(s)`` has bit-identical default weights.
``forward`` returns ``(pooled_features, logits)`` (the xautodl convention); ``none`` is ``x.mul(0.)``
so gradients through it are exact zeros, not ``None``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from zcscore.spaces.nb201 import NB201Arch


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias) -> BN(affine, tracking), the NB201 ``nor_conv_kxk`` op."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The ``none`` op: multiply by zero, keeping the autograd graph."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, channels: int) -> nn.Module:
    """One NB201 edge op for ``channels`` in and out, stride 1."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NB201 op {name!r}")


class InferCell(nn.Module):
    """A 4-node NB201 cell; node j = sum over i<j of op(i->j)(node_i), output = node 3."""

    def __init__(self, arch: NB201Arch, channels: int) -> None:
        super().__init__()
        self.edges: list[tuple[int, int]] = []
        layers = []
        for dst in (1, 2, 3):
            for src in range(dst):
                layers.append(make_op(arch.op_on(src, dst), channels))
                self.edges.append((src, dst))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        k = 0
        for dst in (1, 2, 3):
            total = self.layers[k](nodes[0])
            k += 1
            for src in range(1, dst):
                total = total + self.layers[k](nodes[src])
                k += 1
            nodes.append(total)
        return nodes[3]


class ResNetBasicBlock(nn.Module):
    """The NB201 reduction block: two ReLUConvBN 3x3 (first stride 2) + AvgPool/1x1-conv shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.downsample(x) + self.conv_b(self.conv_a(x))
        return out


class TinyNetwork(nn.Module):
    """NB201 macro skeleton: stem, 3 stages of N cells joined by 2 ResNet blocks, BN-ReLU-GAP-Linear head."""

    def __init__(self, arch: NB201Arch, num_classes: int = 10, channels: int = 16, cells_per_stage: int = 5):
        super().__init__()
        self.arch = arch
        self._build(lambda c: InferCell(arch, c), num_classes, channels, cells_per_stage)

    def _build(
        self, make_cell: Callable[[int], nn.Module], num_classes: int, channels: int, cells_per_stage: int
    ) -> None:
        """The skeleton around ``make_cell(channels)``, modules created in xautodl's order (so its default init)."""
        c = channels
        self.stem = nn.Sequential(nn.Conv2d(3, c, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(c))
        cells: list[nn.Module] = []
        for stage in range(3):
            if stage > 0:
                cells.append(ResNetBasicBlock(c, 2 * c))
                c *= 2
            cells.extend(make_cell(c) for _ in range(cells_per_stage))
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def extract_cell_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stem output followed by every cell/block output (18 tensors for N=5), as AZ-NAS reads them."""
        feats = [self.stem(x)]
        for cell in self.cells:
            feats.append(cell(feats[-1]))
        return feats

    def head(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """BN-ReLU-GAP-Linear on the last cell output; returns ``(pooled, logits)``."""
        out = self.lastact(features)
        pooled = self.global_pooling(out).flatten(1)
        return pooled, self.classifier(pooled)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.stem(x)
        for cell in self.cells:
            feat = cell(feat)
        return self.head(feat)


def build_nb201(arch: NB201Arch | str, num_classes: int = 10) -> TinyNetwork:
    """Build the CIFAR-style NB201 network (C=16, N=5) for ``num_classes`` (10, 100 or 120)."""
    if isinstance(arch, str):
        arch = NB201Arch.parse(arch)
    return TinyNetwork(arch, num_classes=num_classes)
