"""NAS-Bench-101 architectures: parsing, validation, pruning, canonical form, graph hash and parameter count.

Torch-free on purpose (the API validates and hashes archs without importing torch); the network lives in
:mod:`zcscore.spaces.nb101_net`.

A cell is a DAG of at most 7 vertices given by an upper-triangular 0/1 adjacency matrix (``matrix[i][j] = 1``
means an edge ``i -> j``) and one op per vertex: ``input`` first, ``output`` last, and
``conv3x3-bn-relu`` / ``conv1x1-bn-relu`` / ``maxpool3x3`` in between. The arch string is JSON::

    {"matrix": [[0,1,0,0,1,1,0], ..., [0,0,0,0,0,0,0]], "ops": ["input", "conv3x3-bn-relu", ..., "output"]}

Validation follows the NB101 release (``nasbench/api.py`` ``ModelSpec`` and ``NASBench._check_spec``): the raw
matrix must be square, 0/1, upper-triangular and at most 7x7, with one known op per vertex; vertices that are
not on an input->output path are then pruned (an input->output path must remain), and the **pruned** graph
may have at most 9 edges. The edge limit applies after pruning, as in NB101: random 7-vertex samples such as
NASLib's (and all but one row of ``nb101_sample.csv``) often have more than 9 raw edges.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from zcscore.spaces.base import Space, SpaceError

if TYPE_CHECKING:
    from torch import nn

INPUT = "input"
OUTPUT = "output"
CONV3X3 = "conv3x3-bn-relu"
CONV1X1 = "conv1x1-bn-relu"
MAXPOOL3X3 = "maxpool3x3"
OPS: tuple[str, ...] = (CONV3X3, CONV1X1, MAXPOOL3X3)  # NB101 ``available_ops``; the hash labels are indices
KERNEL: dict[str, int] = {CONV3X3: 3, CONV1X1: 1}
MAX_VERTICES = 7
MAX_EDGES = 9
NUM_ARCHS = 423_624  # unique (non-isomorphic, pruned) cells in the NB101 release

# The official CIFAR-10 network (nasbench ``config.py`` defaults).
STEM_CHANNELS = 128
NUM_STACKS = 3
CELLS_PER_STACK = 3

# NB101 hash 00005c142e6f48ac74fdcf73e3439874 (8,555,530 trainable parameters in the release).
EXAMPLE_ARCH = (
    '{"matrix":[[0,1,0,0,1,1,0],[0,0,1,0,0,0,0],[0,0,0,1,0,0,1],[0,0,0,0,0,1,0],[0,0,0,0,0,1,0],'
    '[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]],"ops":["input","conv3x3-bn-relu","maxpool3x3","conv3x3-bn-relu",'
    '"conv3x3-bn-relu","conv1x1-bn-relu","output"]}'
)

Matrix = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class NB101Spec:
    """One NB101 cell: adjacency ``matrix`` (upper-triangular 0/1) and one op per vertex."""

    matrix: Matrix
    ops: tuple[str, ...]

    @property
    def num_vertices(self) -> int:
        """Number of vertices, input and output included."""
        return len(self.ops)

    @property
    def num_edges(self) -> int:
        """Number of edges."""
        return sum(sum(row) for row in self.matrix)

    def to_json(self) -> str:
        """Compact JSON with sorted keys and no spaces (the encoding the space uses)."""
        return json.dumps(
            {"matrix": [list(row) for row in self.matrix], "ops": list(self.ops)},
            sort_keys=True,
            separators=(",", ":"),
        )


def _check_matrix(raw: Any) -> Matrix:
    """Shape, 0/1 values and upper-triangularity of a raw JSON matrix."""
    if not isinstance(raw, list) or not raw:
        raise SpaceError("matrix must be a non-empty list of lists", field="matrix")
    n = len(raw)
    if n < 2:
        raise SpaceError("matrix needs at least 2 vertices (input and output)", field="matrix")
    if n > MAX_VERTICES:
        raise SpaceError(f"matrix has {n} vertices, at most {MAX_VERTICES} are allowed", field="matrix")
    rows: list[tuple[int, ...]] = []
    for i, row in enumerate(raw):
        if not isinstance(row, list) or len(row) != n:
            raise SpaceError(f"matrix row {i} must be a list of {n} entries (square matrix)", field=f"matrix[{i}]")
        for j, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int) or value not in (0, 1):
                raise SpaceError(f"matrix entries must be 0 or 1, got {value!r}", field=f"matrix[{i}][{j}]")
            if value and j <= i:
                raise SpaceError(
                    f"matrix must be strictly upper-triangular (a DAG in vertex order): edge {i}->{j}",
                    field=f"matrix[{i}][{j}]",
                )
        rows.append(tuple(row))
    return tuple(rows)


def _check_ops(raw: Any, n: int) -> tuple[str, ...]:
    """Length and names of a raw JSON op list for an ``n``-vertex matrix."""
    if not isinstance(raw, list):
        raise SpaceError("ops must be a list of op names", field="ops")
    if len(raw) != n:
        raise SpaceError(f"ops has {len(raw)} entries but the matrix has {n} vertices", field="ops")
    for k, op in enumerate(raw):
        if k == 0:
            if op != INPUT:
                raise SpaceError(f"the first op must be {INPUT!r}, got {op!r}", field="ops[0]")
        elif k == n - 1:
            if op != OUTPUT:
                raise SpaceError(f"the last op must be {OUTPUT!r}, got {op!r}", field=f"ops[{k}]")
        elif op not in OPS:
            raise SpaceError(f"unknown op {op!r} (ops: {', '.join(OPS)})", field=f"ops[{k}]")
    return tuple(raw)


def prune(matrix: Matrix, ops: tuple[str, ...]) -> NB101Spec | None:
    """Drop vertices not on an input->output path (NB101 ``ModelSpec._prune``); None if no such path."""
    n = len(ops)
    from_input = {0}
    for v in range(1, n):
        if any(matrix[u][v] and u in from_input for u in range(v)):
            from_input.add(v)
    to_output = {n - 1}
    for v in range(n - 2, -1, -1):
        if any(matrix[v][w] and w in to_output for w in range(v + 1, n)):
            to_output.add(v)
    keep = sorted(from_input & to_output)
    if 0 not in keep or n - 1 not in keep:
        return None
    return NB101Spec(tuple(tuple(matrix[a][b] for b in keep) for a in keep), tuple(ops[k] for k in keep))


def spec_from_lists(matrix: Any, ops: Any) -> NB101Spec:
    """Validate a raw matrix and op list and return the pruned spec; raises :class:`SpaceError`."""
    mat = _check_matrix(matrix)
    op_names = _check_ops(ops, len(mat))
    spec = prune(mat, op_names)
    if spec is None:
        raise SpaceError("no path from the input to the output vertex", field="matrix")
    if spec.num_edges > MAX_EDGES:
        raise SpaceError(f"the pruned cell has {spec.num_edges} edges, at most {MAX_EDGES} are allowed", field="matrix")
    return spec


def parse_spec(text: str) -> NB101Spec:
    """Parse and validate an arch JSON string into its pruned spec; raises :class:`SpaceError`."""
    if not isinstance(text, str):
        raise SpaceError(f"arch must be a string, got {type(text).__name__}", field="arch")
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise SpaceError(f"arch is not valid JSON: {exc}", field="arch") from None
    if not isinstance(obj, dict):
        raise SpaceError('arch must be a JSON object {"matrix": ..., "ops": ...}', field="arch")
    for key in obj:
        if key not in ("matrix", "ops"):
            raise SpaceError(f"unknown key {key!r} (expected 'matrix' and 'ops')", field=str(key))
    for key in ("matrix", "ops"):
        if key not in obj:
            raise SpaceError(f"arch has no {key!r}", field=key)
    return spec_from_lists(obj["matrix"], obj["ops"])


def _permuted(spec: NB101Spec, order: tuple[int, ...]) -> NB101Spec:
    """The spec with new vertex ``k`` = old vertex ``order[k]``."""
    return NB101Spec(
        tuple(tuple(spec.matrix[a][b] for b in order) for a in order),
        tuple(spec.ops[a] for a in order),
    )


def edge_bits(matrix: Matrix) -> int:
    """The matrix as NB101 ``generate_graphs.py`` numbers it: bit ``x + y(y-1)/2`` set for each edge ``x -> y``."""
    n = len(matrix)
    return sum(1 << (x + y * (y - 1) // 2) for y in range(n) for x in range(y) if matrix[x][y])


@lru_cache(maxsize=65536)
def canonical_spec(spec: NB101Spec) -> NB101Spec:
    """The pruned spec relabelled as the NB101 release stores its isomorphism class (its ``module_adjacency``).

    Among all vertex orders that keep the matrix upper-triangular (input first, output last, at most 5! = 120
    of them), take the one with the smallest ``(edge_bits(matrix), op labels)``: ``generate_graphs.py``
    enumerates matrices by increasing ``bits`` and, for each, labellings in ``itertools.product`` order, and
    keeps the first one of each hash, so this minimum is the release's representative (checked on three
    release rows, one of them a non-trivial relabelling). Isomorphisms fix the input and output (their ops are
    unique), so isomorphic cells have the same set of orderings and the minimum is exact: isomorphic <=> equal.
    The order matters beyond the key: NB101 gives the channel remainder to the lowest-numbered vertices, so
    isomorphic labellings can have slightly different networks and parameter counts.
    """
    pruned = prune(spec.matrix, spec.ops)
    if pruned is None:
        raise SpaceError("no path from the input to the output vertex", field="matrix")
    n = pruned.num_vertices
    edges = [(a, b) for a in range(n) for b in range(n) if pruned.matrix[a][b]]
    best: tuple[tuple[int, tuple[int, ...]], NB101Spec] | None = None
    for interior in itertools.permutations(range(1, n - 1)):
        order = (0, *interior, n - 1)
        pos = {v: k for k, v in enumerate(order)}
        if any(pos[a] > pos[b] for a, b in edges):
            continue
        bits = sum(1 << (pos[a] + pos[b] * (pos[b] - 1) // 2) for a, b in edges)
        key = (bits, tuple(OPS.index(pruned.ops[v]) for v in interior))
        if best is None or key < best[0]:
            best = (key, _permuted(pruned, order))
    assert best is not None  # the identity order is always topological
    return best[1]


def graph_hash(spec: NB101Spec) -> str:
    """The NB101 release's isomorphism-invariant md5 graph hash of the pruned spec (its ``module_hash``).

    As ``nasbench/lib/graph_util.py`` ``hash_module`` with the labels of ``ModelSpec.hash_spec``: each vertex
    starts as ``md5(str((out_degree, in_degree, label)))`` with label -1 for input, -2 for output and the index
    in ``OPS`` otherwise; then, ``num_vertices`` times, every vertex becomes
    ``md5(sorted in-neighbour hashes joined + "|" + sorted out-neighbour hashes joined + "|" + own hash)``;
    the fingerprint is ``md5(str(sorted(vertex hashes)))``. It is a Weisfeiler-Lehman-style invariant: equal for
    isomorphs, and the release found no collisions among its 423,624 cells, but it is not a proof of
    non-isomorphism in general, so the space's keys use :func:`canonical_spec`.
    """
    pruned = prune(spec.matrix, spec.ops)
    if pruned is None:
        raise SpaceError("no path from the input to the output vertex", field="matrix")
    m, n = pruned.matrix, pruned.num_vertices
    labels = [-1] + [OPS.index(op) for op in pruned.ops[1:-1]] + [-2]
    in_deg = [sum(m[u][v] for u in range(n)) for v in range(n)]
    out_deg = [sum(m[v]) for v in range(n)]
    hashes = [hashlib.md5(str((out_deg[v], in_deg[v], labels[v])).encode()).hexdigest() for v in range(n)]
    for _ in range(n):
        new_hashes = []
        for v in range(n):
            ins = "".join(sorted(hashes[u] for u in range(n) if m[u][v]))
            outs = "".join(sorted(hashes[w] for w in range(n) if m[v][w]))
            new_hashes.append(hashlib.md5(f"{ins}|{outs}|{hashes[v]}".encode()).hexdigest())
        hashes = new_hashes
    return hashlib.md5(str(sorted(hashes)).encode()).hexdigest()


def vertex_channels(in_channels: int, out_channels: int, matrix: Matrix) -> tuple[int, ...]:
    """Per-vertex channels of a cell, as NB101 ``model_builder.compute_vertex_channels``.

    The output channels are split evenly among the vertices feeding the output (the remainder goes one each to
    the first of them); every other interior vertex takes the max over its interior successors, going backwards.
    Vertex 0 has ``in_channels`` and the output ``out_channels``.
    """
    n = len(matrix)
    channels = [0] * n
    channels[0] = in_channels
    channels[n - 1] = out_channels
    if n == 2:
        return tuple(channels)
    fan_in = sum(matrix[v][n - 1] for v in range(1, n - 1))  # in-degree of the output, ignoring the input
    base, extra = divmod(out_channels, fan_in)
    for v in range(1, n - 1):
        if matrix[v][n - 1]:
            channels[v] = base + (1 if extra > 0 else 0)
            extra -= 1
    for v in range(n - 3, 0, -1):
        if not matrix[v][n - 1]:
            for w in range(v + 1, n - 1):
                if matrix[v][w]:
                    channels[v] = max(channels[v], channels[w])
    return tuple(channels)


def cell_params(spec: NB101Spec, in_channels: int, out_channels: int) -> int:
    """Trainable parameters of one cell: conv weights (no bias) plus BN gamma and beta."""
    m, n = spec.matrix, spec.num_vertices
    ch = vertex_channels(in_channels, out_channels, m)
    total = 0
    for t in range(1, n - 1):
        k = KERNEL.get(spec.ops[t])
        if k is not None:
            total += k * k * ch[t] * ch[t] + 2 * ch[t]
    for t in range(1, n):
        if m[0][t]:  # 1x1 conv-BN-ReLU projection of the cell input
            total += in_channels * ch[t] + 2 * ch[t]
    return total


def nb101_params(spec: NB101Spec, num_classes: int = 10) -> int:
    """Trainable parameters of the official NB101 network (as the release's ``trainable_parameters``)."""
    pruned = prune(spec.matrix, spec.ops)
    if pruned is None:
        raise SpaceError("no path from the input to the output vertex", field="matrix")
    c = STEM_CHANNELS
    total = 3 * 3 * 3 * c + 2 * c  # stem conv3x3 + BN
    for stack in range(NUM_STACKS):
        c_in = c
        if stack > 0:
            c *= 2
        for _ in range(CELLS_PER_STACK):
            total += cell_params(pruned, c_in, c)
            c_in = c
    return total + c * num_classes + num_classes  # dense head with bias


def _random_raw(rng: random.Random) -> tuple[list[list[int]], list[str]]:
    """A random 7x7 upper-triangular 0/1 matrix (each edge with probability 1/2) and random interior ops."""
    n = MAX_VERTICES
    matrix = [[rng.randint(0, 1) if j > i else 0 for j in range(n)] for i in range(n)]
    ops = [INPUT] + [rng.choice(OPS) for _ in range(n - 2)] + [OUTPUT]
    return matrix, ops


def _padded(spec: NB101Spec, rng: random.Random) -> tuple[list[list[int]], list[str]]:
    """``spec`` embedded in 7 vertices: extra dead vertices (random ops, random in-edges, no way out) before the output.

    The padding is pruned away, so the raw lists parse back to ``spec``; one edge flip can then bring a dead
    vertex to life, so a mutation can also grow the cell.
    """
    n = spec.num_vertices
    size = MAX_VERTICES
    pad = size - n
    matrix = [[0] * size for _ in range(size)]
    for a in range(n - 1):
        for b in range(n - 1):
            matrix[a][b] = spec.matrix[a][b]
        matrix[a][size - 1] = spec.matrix[a][n - 1]
    for v in range(n - 1, size - 1):  # dead vertices: inputs from anything earlier, no edge to the output
        for u in range(v):
            matrix[u][v] = rng.randint(0, 1)
    ops = list(spec.ops[:-1]) + [rng.choice(OPS) for _ in range(pad)] + [OUTPUT]
    return matrix, ops


class NB101Space(Space):
    """NAS-Bench-101: a DAG cell of <= 7 vertices and <= 9 edges over 3 ops, in the official CIFAR network."""

    name = "nb101"
    description = "NAS-Bench-101 cell (<=7 vertices, <=9 edges; official 3x3-cell network, 128 stem channels)"
    example = EXAMPLE_ARCH
    max_arch_length = 1000
    epsinas_weights = (1e-4, 10.0)  # the official NB101 constants (epsinas NAS-Bench-101/Reproduce.ipynb)
    size = NUM_ARCHS

    max_attempts = 10_000  # rejection-sampling bound for sample and mutate

    def parse(self, text: str) -> NB101Spec:
        """Parse, validate and prune an arch JSON string (:class:`SpaceError` names the bad field)."""
        return parse_spec(text)

    def encode(self, arch: Any) -> str:
        """Compact canonical JSON (sorted keys, no spaces) of the spec as given."""
        return str(arch.to_json())

    def canonical(self, arch: Any) -> NB101Spec:
        """The pruned spec in the NB101 release's vertex order for its class (isomorphic <=> equal)."""
        return canonical_spec(arch)

    def build(self, arch: Any, num_classes: int = 10) -> nn.Module:
        """The official NB101 network of ``arch`` (PyTorch reimplementation)."""
        from zcscore.spaces.nb101_net import build_nb101

        return build_nb101(arch, num_classes)

    def sample(self, rng: random.Random) -> NB101Spec:
        """A random valid cell, by NASLib's rejection sampler (uniform raw 7x7 matrix and ops until valid).

        Uniform over valid raw (labelled, unpruned) 7-vertex cells, not over isomorphism classes: small pruned
        cells are over-represented, as in NASLib's samples (``nb101_sample.csv``).
        """
        for _ in range(self.max_attempts):
            matrix, ops = _random_raw(rng)
            try:
                return spec_from_lists(matrix, ops)
            except SpaceError:
                continue
        raise SpaceError("could not sample a valid NB101 cell")  # pragma: no cover - probability ~0

    def mutate(self, arch: Any, rng: random.Random) -> NB101Spec:
        """A non-isomorphic neighbour: one edge flipped or one interior op changed in a 7-vertex embedding."""
        start = canonical_spec(arch)
        n = MAX_VERTICES
        edges = [(a, b) for a in range(n) for b in range(a + 1, n)]
        for _ in range(self.max_attempts):
            matrix, ops = _padded(start, rng)
            move = rng.randrange(len(edges) + n - 2)
            if move < len(edges):
                a, b = edges[move]
                matrix[a][b] = 1 - matrix[a][b]
            else:
                v = move - len(edges) + 1
                ops[v] = rng.choice([op for op in OPS if op != ops[v]])
            try:
                child = spec_from_lists(matrix, ops)
            except SpaceError:
                continue
            if canonical_spec(child) != start:
                return child
        raise SpaceError("no valid neighbour found")  # pragma: no cover - every cell has one
