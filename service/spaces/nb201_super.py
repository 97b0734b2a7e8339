"""NB201 supernet states for pruning-based search (TE-NAS / xi-GSNR): every edge keeps a set of ops.

A state lists, per edge, the ops not pruned yet; ``|nor_conv_3x3+skip_connect~0|+|...|`` (ops joined by ``+``
inside an edge, edges as in NB201). The full supernet keeps all five ops on every edge; a state with one op
per edge is a plain NB201 cell. The network is the NB201 TinyNetwork whose every edge outputs the mean of its
kept ops (the DARTS/TE-NAS mixed op under equal architecture weights, i.e. softmax over equal alphas: our
choice, as the papers give no formula). Torch-free; the network lives in :mod:`zcscore.spaces.nb201_super_net`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zcscore.spaces.base import Space, SpaceError
from zcscore.spaces.nb201 import EDGES, OPS, NB201Arch

if TYPE_CHECKING:
    from torch import nn

FULL: tuple[tuple[str, ...], ...] = tuple(OPS for _ in EDGES)


@dataclass(frozen=True)
class SuperState:
    """Kept ops per edge (``edges[k]`` for ``EDGES[k]``), each in :data:`OPS` order."""

    edges: tuple[tuple[str, ...], ...]

    def encode(self) -> str:
        e = ["+".join(ops) for ops in self.edges]
        return f"|{e[0]}~0|+|{e[1]}~0|{e[2]}~1|+|{e[3]}~0|{e[4]}~1|{e[5]}~2|"

    def without(self, edge: int, op: str) -> SuperState:
        """This state with ``op`` pruned from ``edge``."""
        edges = list(self.edges)
        edges[edge] = tuple(o for o in edges[edge] if o != op)
        return SuperState(tuple(edges))

    def is_single_path(self) -> bool:
        return all(len(ops) == 1 for ops in self.edges)

    def to_arch(self) -> NB201Arch:
        """The NB201 cell of a single-path state."""
        if not self.is_single_path():
            raise ValueError("only a single-path state is an NB201 cell")
        return NB201Arch(tuple(ops[0] for ops in self.edges))


def parse_state(text: str) -> SuperState:
    """Parse ``|a+b~0|+|c~0|d~1|+|...|``; raises :class:`SpaceError` naming the bad token."""
    nodes = text.strip().split("+|")
    parts = [p for node in text.strip().strip("|").split("|+|") for p in node.split("|")]
    if len(nodes) != 3 or len(parts) != len(EDGES):
        raise SpaceError(f"expected 6 edges in 3 nodes, got {text!r}", field="arch")
    edges: list[tuple[str, ...]] = []
    for k, part in enumerate(parts):
        ops_text, _, src = part.rpartition("~")
        if src != str(EDGES[k][0]):
            raise SpaceError(f"edge {k}: expected source ~{EDGES[k][0]} in {part!r}", field="arch")
        ops = ops_text.split("+")
        for op in ops:
            if op not in OPS:
                raise SpaceError(f"unknown op {op!r} (known: {', '.join(OPS)})", field="arch")
        if len(set(ops)) != len(ops):
            raise SpaceError(f"edge {k} names an op twice: {part!r}", field="arch")
        edges.append(tuple(o for o in OPS if o in ops))
    return SuperState(tuple(edges))


class NB201SuperSpace(Space):
    """NB201 supernet states (sets of ops per edge) for pruning-based search; not sampled by other algorithms."""

    name = "nb201_super"
    description = "NB201 supernet states for pruning search (TE-NAS / xi-GSNR): a set of ops per edge, mixed by mean"
    example = SuperState(FULL).encode()
    max_arch_length = 600
    size = 31**6  # non-empty op subsets on each of 6 edges

    def parse(self, text: str) -> SuperState:
        return parse_state(text)

    def encode(self, arch: Any) -> str:
        return str(arch.encode())

    def build(self, arch: Any, num_classes: int = 10) -> nn.Module:
        from zcscore.spaces.nb201_super_net import build_supernet

        return build_supernet(arch, num_classes)

    def sample(self, rng: random.Random) -> SuperState:
        """A random state: a non-empty random subset of ops per edge."""
        edges = []
        for _ in EDGES:
            ops = tuple(o for o in OPS if rng.random() < 0.5)
            edges.append(ops or (rng.choice(OPS),))
        return SuperState(tuple(edges))

    def mutate(self, arch: Any, rng: random.Random) -> SuperState:
        """One op pruned from a random edge that keeps more than one (the pruning move)."""
        choices = [(k, o) for k, ops in enumerate(arch.edges) if len(ops) > 1 for o in ops]
        if not choices:
            return arch  # type: ignore[no-any-return]
        k, op = rng.choice(choices)
        return arch.without(k, op)  # type: ignore[no-any-return]
