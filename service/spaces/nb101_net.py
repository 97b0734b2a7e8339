"""The NAS-Bench-101 network: a PyTorch reimplementation of the official ``nasbench/lib/model_builder.py``.

Skeleton (CIFAR-10 defaults of the release): stem conv3x3-BN-ReLU with 128 channels; 3 stacks of 3 cells; a
2x2 max-pool (stride 2) before stacks 2 and 3, after which the first cell doubles the channels; global average
pool and a dense head ``classifier`` (``nn.Linear`` with bias).

Inside a cell (``build_module``): vertex channels follow ``compute_vertex_channels``
(:func:`zcscore.spaces.nb101.vertex_channels`); a vertex sums its interior predecessors, truncated to its
channel count (they can have at most one channel more), and a separate 1x1 conv-BN-ReLU projection of the cell
input when the input feeds it; then applies its op (conv3x3/conv1x1-BN-ReLU, or a 3x3 max-pool with stride 1
and padding 1, which keeps the channels). The cell output concatenates the vertices feeding the output, in
vertex order, plus a projection of the input when the input connects straight to the output (the projection
alone when no interior vertex is left).

Differences from the TF release, all outside the parameter count (which is exact, see the tests): PyTorch
default initialisation instead of TF variance scaling; PyTorch BN defaults (momentum 0.1, eps 1e-5) where the
release uses decay 0.997 (PyTorch momentum 0.003) and eps 1e-5. Convolutions have no bias (BN follows).
"""

from __future__ import annotations

import torch
from torch import nn

from zcscore.spaces.nb101 import (
    CELLS_PER_STACK,
    CONV1X1,
    CONV3X3,
    MAXPOOL3X3,
    NUM_STACKS,
    STEM_CHANNELS,
    NB101Spec,
    parse_spec,
    prune,
    vertex_channels,
)


class ConvBnRelu(nn.Sequential):
    """Conv (no bias, 'same' padding) -> BN -> ReLU, the NB101 ``conv_bn_relu``."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride=1, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=False),
        )


def make_op(name: str, channels: int) -> nn.Module:
    """One NB101 vertex op with ``channels`` in and out."""
    if name == CONV3X3:
        return ConvBnRelu(channels, channels, 3)
    if name == CONV1X1:
        return ConvBnRelu(channels, channels, 1)
    if name == MAXPOOL3X3:
        return nn.MaxPool2d(3, stride=1, padding=1)
    raise ValueError(f"unknown NB101 op {name!r}")


class NB101Cell(nn.Module):
    """One NB101 cell (``model_builder.build_module``) from ``in_channels`` to ``out_channels``."""

    def __init__(self, spec: NB101Spec, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.matrix = spec.matrix
        self.num_vertices = spec.num_vertices
        self.vertex_channels = vertex_channels(in_channels, out_channels, spec.matrix)
        n = self.num_vertices
        self.projections = nn.ModuleDict()
        self.vertex_ops = nn.ModuleDict()
        for t in range(1, n):
            if spec.matrix[0][t]:
                self.projections[str(t)] = ConvBnRelu(in_channels, self.vertex_channels[t], 1)
            if t < n - 1:
                self.vertex_ops[str(t)] = make_op(spec.ops[t], self.vertex_channels[t])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, m, ch = self.num_vertices, self.matrix, self.vertex_channels
        tensors: list[torch.Tensor] = [x]
        concat: list[torch.Tensor] = []
        for t in range(1, n - 1):
            add_in = [tensors[s][:, : ch[t]] for s in range(1, t) if m[s][t]]
            if m[0][t]:
                add_in.append(self.projections[str(t)](x))
            total = add_in[0]
            for extra in add_in[1:]:
                total = total + extra
            tensors.append(self.vertex_ops[str(t)](total))
            if m[t][n - 1]:
                concat.append(tensors[t])
        if not concat:
            out: torch.Tensor = self.projections[str(n - 1)](x)
            return out
        out = concat[0] if len(concat) == 1 else torch.cat(concat, dim=1)
        if m[0][n - 1]:
            out = out + self.projections[str(n - 1)](x)
        return out


class NB101Network(nn.Module):
    """The NB101 CIFAR network: stem, 3 stacks x 3 cells with max-pool downsampling, GAP and ``classifier``."""

    def __init__(self, spec: NB101Spec, num_classes: int = 10) -> None:
        super().__init__()
        c = STEM_CHANNELS
        self.stem = ConvBnRelu(3, c, 3)
        self.downsample = nn.MaxPool2d(2, stride=2)
        cells: list[nn.Module] = []
        self.downsample_before: tuple[int, ...] = tuple(s * CELLS_PER_STACK for s in range(1, NUM_STACKS))
        for stack in range(NUM_STACKS):
            c_in = c
            if stack > 0:
                c *= 2
            for _ in range(CELLS_PER_STACK):
                cells.append(NB101Cell(spec, c_in, c))
                c_in = c
        self.cells = nn.ModuleList(cells)
        self.classifier = nn.Linear(c, num_classes)

    def extract_cell_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stem output followed by every cell output (10 tensors), as AZ-NAS reads them."""
        feats = [self.stem(x)]
        for i, cell in enumerate(self.cells):
            inp = self.downsample(feats[-1]) if i in self.downsample_before else feats[-1]
            feats.append(cell(inp))
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.stem(x)
        for i, cell in enumerate(self.cells):
            if i in self.downsample_before:
                feat = self.downsample(feat)
            feat = cell(feat)
        logits: torch.Tensor = self.classifier(feat.mean(dim=(2, 3)))
        return logits


def build_nb101(spec: NB101Spec | str, num_classes: int = 10) -> NB101Network:
    """Build the NB101 network of ``spec`` (a parsed spec or its JSON string), pruning it first."""
    if isinstance(spec, str):
        spec = parse_spec(spec)
    pruned = prune(spec.matrix, spec.ops)
    if pruned is None:
        raise ValueError("NB101 spec has no path from the input to the output vertex")
    return NB101Network(pruned, num_classes=num_classes)
