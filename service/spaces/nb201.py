"""NAS-Bench-201 architectures: parsing, validation, canonical hashing and cost formulas.

Torch-free on purpose: the API validates and hashes archs without importing torch. The network
itself lives in :mod:`zcscore.spaces.nb201_net`.

A cell is a 4-node DAG; node ``j`` sums ``op(i->j)(node_i)`` over ``i < j`` and node 3 is the output.
The arch string lists the six edges in the order ``0->1 | 0->2 1->2 | 0->3 1->3 2->3``::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|
"""

from __future__ import annotations

import csv
import hashlib
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zcscore.spaces.base import Space, SpaceError

if TYPE_CHECKING:
    from torch import nn

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
NUM_ARCHS = 15625
EXAMPLE_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


class ArchError(SpaceError):
    """An arch string that is not a valid NAS-Bench-201 cell; the message names the bad token."""


@dataclass(frozen=True)
class NB201Arch:
    """One NB201 cell: ``ops[k]`` is the op on edge ``EDGES[k]``."""

    ops: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> NB201Arch:
        """Parse and validate an arch string; raises :class:`ArchError` naming the bad token."""
        return cls(parse_ops(text))

    def to_str(self) -> str:
        """The canonical NATS/NASLib string of this cell (same edge order as parsed)."""
        o = self.ops
        return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"

    def op_on(self, src: int, dst: int) -> str:
        """The op on edge ``src -> dst``."""
        return self.ops[EDGES.index((src, dst))]

    def count(self, op: str) -> int:
        """How many edges carry ``op``."""
        return sum(1 for o in self.ops if o == op)

    def swapped(self) -> NB201Arch:
        """The same cell with intermediate nodes 1 and 2 renamed (valid only if edge 1->2 is none)."""
        o = self.ops
        return NB201Arch((o[1], o[0], o[2], o[3], o[5], o[4]))

    def canonical(self) -> NB201Arch:
        """The representative of this cell's isomorphism class.

        Two cells are isomorphic when they have the same ops and wiring up to a renaming of the
        intermediate nodes. Nodes 1 and 2 can only be exchanged when no edge runs between them
        (``1->2`` is ``none``); the 15,625 NB201 cells then form 14,125 classes.
        """
        if self.ops[2] != "none":
            return self
        other = self.swapped()
        return min(self, other, key=lambda a: a.ops)

    def canonical_hash(self) -> str:
        """A stable hex key shared by all isomorphs (sha256 of the canonical string)."""
        return hashlib.sha256(("nb201:" + self.canonical().to_str()).encode()).hexdigest()

    def output_is_zero(self) -> bool:
        """True when the cell output is identically zero (no op path from node 0 to node 3)."""
        live = {0}
        for dst in (1, 2, 3):
            if any(src in live and self.op_on(src, dst) != "none" for src in range(dst)):
                live.add(dst)
        return 3 not in live


def parse_ops(text: str) -> tuple[str, ...]:
    """Split and validate an arch string into the six edge ops (see module docstring)."""
    if not isinstance(text, str):
        raise ArchError(f"arch must be a string, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise ArchError("arch is empty")
    nodes = stripped.split("+")
    if len(nodes) != 3:
        raise ArchError(f"arch must have 3 node groups separated by '+', got {len(nodes)} in {stripped!r}")
    ops: list[str] = []
    for node_idx, group in enumerate(nodes, start=1):
        if not (group.startswith("|") and group.endswith("|")) or len(group) < 2:
            raise ArchError(f"node group {group!r} must be enclosed in '|'")
        tokens = group[1:-1].split("|")
        if len(tokens) != node_idx:
            raise ArchError(f"node {node_idx} needs {node_idx} input edge(s), got {len(tokens)} in {group!r}")
        for src, token in enumerate(tokens):
            name, sep, idx = token.partition("~")
            if not sep or name not in OPS:
                raise ArchError(f"unknown op token {token!r} (ops: {', '.join(OPS)})")
            if idx != str(src):
                raise ArchError(f"token {token!r} must read from node {src} ('{name}~{src}')")
            ops.append(name)
    return tuple(ops)


def canonical_hash(text: str) -> str:
    """Canonical isomorphism hash of an arch string."""
    return NB201Arch.parse(text).canonical_hash()


# Closed-form costs of the CIFAR-10 TinyNetwork (C=16, N=5). Each conv edge costs the same in every
# cell, so FLOPs and params are linear in the op counts. FLOPs follow the NATS-Bench/xautodl convention
# (conv and linear multiply-adds incl. bias, pooling/BN/ReLU not counted); the network-based counter in
# zcscore.proxies.cost computes the same number from any module and is tested against these.
NATS_FLOPS_SKELETON_M = 7.7824  # stem + 2 ResNet blocks (convs only)
NATS_FLOPS_PER_CONV1x1_M = 3.93216
NATS_FLOPS_PER_CONV3x3_M = 35.38944


def nats_flops_m(arch: NB201Arch, num_classes: int = 10) -> float:
    """FLOPs (M) at 32x32 as the NATS-Bench API reports them (xautodl ``get_model_infos``)."""
    base = NATS_FLOPS_SKELETON_M + (64 * num_classes + num_classes) / 1e6  # + classifier with bias
    return (
        base
        + NATS_FLOPS_PER_CONV1x1_M * arch.count("nor_conv_1x1")
        + NATS_FLOPS_PER_CONV3x3_M * arch.count("nor_conv_3x3")
    )


@cache
def _index_table(path: str) -> tuple[tuple[str, ...], dict[str, int]]:
    with open(path, newline="") as fh:
        rows = [(int(r["index"]), r["arch"]) for r in csv.DictReader(fh)]
    archs = [""] * len(rows)
    for idx, arch in rows:
        archs[idx] = arch
    return tuple(archs), {a: i for i, a in enumerate(archs)}


def arch_from_index(index: int, data_dir: Path | str) -> str:
    """The arch string at NB201/NATS index ``index`` (0..15624), from ``nb201.csv`` in ``data_dir``."""
    archs, _ = _index_table(str(Path(data_dir) / "nb201.csv"))
    if not 0 <= index < len(archs):
        raise ArchError(f"index {index} out of range 0..{len(archs) - 1}")
    return archs[index]


def index_of(arch: str, data_dir: Path | str) -> int:
    """The NB201/NATS index of an arch string."""
    _, lookup = _index_table(str(Path(data_dir) / "nb201.csv"))
    return lookup[NB201Arch.parse(arch).to_str()]


class NB201Space(Space):
    """NAS-Bench-201: 5 ops on the 6 edges of a 4-node cell, in the CIFAR TinyNetwork (C=16, N=5)."""

    name = "nb201"
    description = "NAS-Bench-201 cell (xautodl TinyNetwork, C=16, N=5)"
    example = EXAMPLE_ARCH
    max_arch_length = 200
    size = NUM_ARCHS

    def parse(self, text: str) -> NB201Arch:
        """Parse and validate an arch string (:class:`ArchError` names the bad token)."""
        return NB201Arch.parse(text)

    def encode(self, arch: Any) -> str:
        """The NATS/NASLib arch string."""
        return str(arch.to_str())

    def canonical(self, arch: Any) -> NB201Arch:
        """The isomorphism-class representative (nodes 1 and 2 swapped when they are unconnected)."""
        canon: NB201Arch = arch.canonical()
        return canon

    def build(self, arch: Any, num_classes: int = 10) -> nn.Module:
        """The xautodl TinyNetwork of ``arch``."""
        from zcscore.spaces.nb201_net import build_nb201

        return build_nb201(arch, num_classes)

    def flops_m(self, arch: Any, num_classes: int = 10) -> float | None:
        """NATS-Bench FLOPs in closed form (equal to the hook count, tested)."""
        return nats_flops_m(arch, num_classes)

    def sample(self, rng: random.Random) -> NB201Arch:
        """A uniformly random cell."""
        return NB201Arch(tuple(rng.choice(OPS) for _ in range(len(EDGES))))

    def mutate(self, arch: Any, rng: random.Random) -> NB201Arch:
        """The op on one random edge changed to a different op."""
        ops = list(arch.ops)
        edge = rng.randrange(len(ops))
        ops[edge] = rng.choice([o for o in OPS if o != ops[edge]])
        return NB201Arch(tuple(ops))
