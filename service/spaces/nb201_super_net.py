"""The NB201 supernet network: TinyNetwork whose edges output the mean of their kept ops."""

from __future__ import annotations

import torch
from torch import nn

from zcscore.spaces.nb201_net import InferCell, TinyNetwork, make_op
from zcscore.spaces.nb201_super import SuperState


class MixedOp(nn.Module):
    """The mean of several NB201 ops on one edge (DARTS mixed op with equal weights)."""

    def __init__(self, ops: tuple[str, ...], channels: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(make_op(o, channels) for o in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total: torch.Tensor = self.ops[0](x)
        for op in self.ops[1:]:
            total = total + op(x)
        return total / len(self.ops) if len(self.ops) > 1 else total


class SuperCell(InferCell):
    """A 4-node NB201 cell with a :class:`MixedOp` on every edge (the cell's forward, node sums in its order)."""

    def __init__(self, state: SuperState, channels: int) -> None:
        nn.Module.__init__(self)
        self.edges = [(src, dst) for dst in (1, 2, 3) for src in range(dst)]
        self.layers = nn.ModuleList(MixedOp(ops, channels) for ops in state.edges)


class SuperNetwork(TinyNetwork):
    """The NB201 macro skeleton (stem, 3x5 cells, 2 ResNet blocks, head) with supernet cells."""

    def __init__(self, state: SuperState, num_classes: int = 10, channels: int = 16, cells_per_stage: int = 5):
        nn.Module.__init__(self)
        self._build(lambda c: SuperCell(state, c), num_classes, channels, cells_per_stage)


def build_supernet(state: SuperState | str, num_classes: int = 10) -> SuperNetwork:
    """The supernet of ``state`` (a :class:`SuperState` or its string)."""
    if isinstance(state, str):
        from zcscore.spaces.nb201_super import parse_state

        state = parse_state(state)
    return SuperNetwork(state, num_classes)
