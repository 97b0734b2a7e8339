"""A generic DAG of standard layers, written as JSON: scores models that belong to no named space.

Torch-free (parse, validate, canonicalise, hash); the network is :mod:`zcscore.spaces.dag_net`.

Format
------
One JSON object::

    {"input": [3, 32, 32],
     "nodes": [{"id": "c1", "op": "conv", "in": ["input"], "out": 16, "k": 3, "stride": 1},
               {"id": "b1", "op": "bn", "in": ["c1"]},
               {"id": "r1", "op": "relu", "in": ["b1"]},
               {"id": "g", "op": "gap", "in": ["r1"]},
               {"id": "fc", "op": "linear", "in": ["g"], "out": 10}],
     "output": "fc"}

* ``input``: one image ``[C, H, W]`` (1 <= C <= 4096, 1 <= H, W <= 1024); the node id ``"input"`` reads it.
* ``nodes``: 1..200 nodes in topological order: every id in ``in`` names ``"input"`` or an earlier node,
  so the graph cannot have a cycle. Ids match ``[A-Za-z][A-Za-z0-9_-]{0,63}`` and are unique.
* ``output``: the id of the node whose value the network returns (default: the last node).

Ops (a node carries ``id``, ``op``, ``in`` and only the keys of its op; integers are JSON integers):

==========  ======  ====================================================================================
op          inputs  keys (default) and meaning
==========  ======  ====================================================================================
conv        1       ``out`` (1..4096), ``k`` (1..15), ``stride`` (1), ``padding`` (k//2), ``groups`` (1),
                    ``bias`` (false): ``Conv2d`` on a ``[C, H, W]`` value; ``groups`` divides C and out
bn          1       ``BatchNorm2d`` on ``[C, H, W]`` (``BatchNorm1d`` on a ``[F]`` vector)
relu        1       ``ReLU`` (any shape)
maxpool     1       ``k`` (1..15), ``stride`` (1), ``padding`` (k//2, at most k//2): ``MaxPool2d``
avgpool     1       as maxpool: ``AvgPool2d(count_include_pad=False)``, the NB201 convention
gap         1       global average pool and flatten: ``[C, H, W]`` -> ``[C]``
flatten     1       ``[C, H, W]`` -> ``[C*H*W]`` (a vector is left as it is)
linear      1       ``out`` (1..4096), ``bias`` (true): ``Linear`` on a ``[F]`` vector
add         >= 2    sum of values of one shape (inputs are unordered)
concat      >= 2    concatenation along channels (``[C, H, W]`` values of one H, W; or vectors)
==========  ======  ====================================================================================

Spatial sizes follow PyTorch: ``H' = (H + 2*padding - k) // stride + 1``, which must stay >= 1. Note the
pooling defaults (stride 1, padding k//2) keep the size for an odd ``k``; write ``"stride": 2`` to reduce.
Shapes are inferred through the whole graph at parse time, so a conv on a vector, an ``add`` of two shapes,
a ``linear`` on a ``[C, H, W]`` value (missing ``gap``/``flatten``) or a pool larger than its input is a
:class:`SpaceError` whose ``field`` names the node (``nodes[3].in[1]``, ``nodes[3].k``, ...). Nodes that
do not reach the output are validated too. Size limits: 200 nodes, ``out`` <= 4096, 100M parameters,
2**24 elements per node value (and input) and 2**27 for all node values together, per image at the
declared input; a non-``linear`` output at most 65536 wide (the appended classifier reads it).

Output and classes: when the output node is a ``linear``, it is the classifier (exposed as the built
module's ``classifier``) and its ``out`` is the number of classes: ``build``'s ``num_classes`` is ignored.
Otherwise ``build`` appends a head, global average pooling for a ``[C, H, W]`` output then a
``Linear(C, num_classes)`` (that head is the ``classifier``).

Proxies draw their own inputs (AZ-NAS 3x32x32, InTrain 3x64x64, data proxies real 3-channel images), so
a scored DAG should read 3 channels and be resolution-agnostic: prefer ``gap`` to ``flatten`` before a
``linear`` (a ``flatten``'s width is fixed by ``input``). FLOPs are counted from the built network at
:meth:`DagSpace.input_shape_for` (``flops_m`` is None).

Canonical form
--------------
:meth:`DagSpace.canonical` drops the nodes that are not on a path to the output, writes every default
key, orders each ``add``'s inputs, and renames the nodes ``n0, n1, ...`` in a deterministic topological
order: Kahn's algorithm that picks, among the ready nodes, the smallest ``(op, keys and values,
positions of its inputs in the new order)`` (``"input"`` at -1), then the earlier node of the given
list. Renaming ids, listing independent nodes in another order, reordering an ``add``'s inputs and
adding dead nodes therefore leave the canonical form and the hash unchanged. It is canonical only up
to this ordering: two isomorphic DAGs whose ready nodes tie on that key (identical op, keys and inputs)
but are used differently downstream may be ordered differently and hash apart (they are then scored
twice, never confused).
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zcscore.spaces.base import Space, SpaceError

if TYPE_CHECKING:
    from torch import nn

MAX_NODES = 200
MAX_OUT = 4096
MAX_KERNEL = 15
MAX_STRIDE = 8
MAX_GROUPS = 4096
MAX_INPUTS = 64
MAX_INPUT_CHANNELS = 4096
MAX_INPUT_SIZE = 1024
MAX_PARAMS = 100_000_000
MAX_VALUE_ELEMENTS = 1 << 24  # elements of one node's value (and of the input), per image
MAX_TOTAL_ELEMENTS = 1 << 27  # elements of all node values together, per image
MAX_HEAD_WIDTH = 1 << 16  # width of a non-linear output node (the appended head's input)
MAX_ARCH_LENGTH = 100_000
INPUT = "input"
ID_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")

Shape = tuple[int, ...]  # (C, H, W) or (F,), without the batch
Value = int | bool

_REQUIRED = object()


@dataclass(frozen=True)
class _Key:
    kind: type  # int or bool
    default: Any  # a value, _REQUIRED, or a callable of the parsed keys
    lo: int = 0
    hi: int = 0


def _half_k(values: Mapping[str, Value]) -> int:
    return int(values["k"]) // 2


_POOL_KEYS = {
    "k": _Key(int, _REQUIRED, 1, MAX_KERNEL),
    "stride": _Key(int, 1, 1, MAX_STRIDE),
    "padding": _Key(int, _half_k, 0, MAX_KERNEL),
}
OP_KEYS: dict[str, dict[str, _Key]] = {
    "conv": {
        "out": _Key(int, _REQUIRED, 1, MAX_OUT),
        "k": _Key(int, _REQUIRED, 1, MAX_KERNEL),
        "stride": _Key(int, 1, 1, MAX_STRIDE),
        "padding": _Key(int, _half_k, 0, MAX_KERNEL),
        "groups": _Key(int, 1, 1, MAX_GROUPS),
        "bias": _Key(bool, False),
    },
    "bn": {},
    "relu": {},
    "maxpool": _POOL_KEYS,
    "avgpool": _POOL_KEYS,
    "gap": {},
    "flatten": {},
    "linear": {"out": _Key(int, _REQUIRED, 1, MAX_OUT), "bias": _Key(bool, True)},
    "add": {},
    "concat": {},
}
OPS: tuple[str, ...] = tuple(OP_KEYS)
MULTI_INPUT_OPS = frozenset({"add", "concat"})
FEATURE_OPS = frozenset({"relu", "add", "concat"})  # AZ-NAS features of a DAG (see dag_net)


@dataclass(frozen=True)
class DagNode:
    """One node: its id, op, input ids and every key of its op (defaults written out), sorted by key."""

    id: str
    op: str
    inputs: tuple[str, ...]
    params: tuple[tuple[str, Value], ...] = ()

    def get(self, key: str) -> int:
        """An integer (or boolean) key of this node."""
        return int(dict(self.params)[key])

    def flag(self, key: str) -> bool:
        """A boolean key of this node."""
        return bool(dict(self.params)[key])

    def to_obj(self) -> dict[str, Any]:
        """The JSON object of this node."""
        return {"id": self.id, "op": self.op, "in": list(self.inputs), **dict(self.params)}


@dataclass(frozen=True)
class DagArch:
    """A validated DAG: input image shape, nodes in topological order, output node id."""

    input: tuple[int, int, int]
    nodes: tuple[DagNode, ...]
    output: str

    def to_obj(self) -> dict[str, Any]:
        """The JSON object of this DAG."""
        return {"input": list(self.input), "nodes": [n.to_obj() for n in self.nodes], "output": self.output}

    def encode(self) -> str:
        """Compact JSON with sorted keys."""
        return json.dumps(self.to_obj(), sort_keys=True, separators=(",", ":"))

    def node(self, node_id: str) -> DagNode:
        """The node called ``node_id``."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def shapes(self) -> dict[str, Shape]:
        """The inferred shape of every node's value (and of ``"input"``), without the batch dimension."""
        shapes, _ = infer_shapes(self.input, self.nodes)
        return {INPUT: self.input, **{n.id: s for n, s in zip(self.nodes, shapes)}}

    def live(self) -> DagArch:
        """The same DAG without the nodes that do not reach the output (ids and order kept)."""
        needed = {self.output}
        for n in reversed(self.nodes):
            if n.id in needed:
                needed.update(n.inputs)
        return DagArch(self.input, tuple(n for n in self.nodes if n.id in needed), self.output)

    def canonical(self) -> DagArch:
        """The canonical representative (see the module docstring)."""
        return canonicalise(self)


# -- parsing and validation


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_int(value: Any, field: str, lo: int, hi: int) -> int:
    if not _is_int(value):
        raise SpaceError(f"{field} must be an integer, got {json.dumps(value)}", field=field)
    if not lo <= value <= hi:
        raise SpaceError(f"{field} must be in {lo}..{hi}, got {value}", field=field)
    return int(value)


def _read_params(raw: Mapping[str, Any], op: str, where: str) -> tuple[tuple[str, Value], ...]:
    spec = OP_KEYS[op]
    values: dict[str, Value] = {}
    for key, ks in spec.items():  # explicit values first: defaults may depend on them
        if key not in raw:
            if ks.default is _REQUIRED:
                raise SpaceError(f"{where}: op {op!r} needs {key!r}", field=f"{where}.{key}")
            continue
        field = f"{where}.{key}"
        if ks.kind is bool:
            if not isinstance(raw[key], bool):
                raise SpaceError(f"{field} must be true or false, got {json.dumps(raw[key])}", field=field)
            values[key] = raw[key]
        else:
            values[key] = _read_int(raw[key], field, ks.lo, ks.hi)
    for key, ks in spec.items():
        if key not in values:
            values[key] = ks.default(values) if callable(ks.default) else ks.default
    return tuple(sorted(values.items()))


def _read_node(raw: Any, index: int, known: dict[str, int], ids_later: set[str]) -> DagNode:
    where = f"nodes[{index}]"
    if not isinstance(raw, dict):
        raise SpaceError(f"{where} must be an object", field=where)
    for key in ("id", "op", "in"):
        if key not in raw:
            raise SpaceError(f"{where} needs {key!r}", field=f"{where}.{key}")
    node_id = raw["id"]
    if not isinstance(node_id, str) or not ID_PATTERN.fullmatch(node_id) or node_id == INPUT:
        raise SpaceError(
            f"{where}.id must be a string matching {ID_PATTERN.pattern} other than {INPUT!r}, "
            f"got {json.dumps(node_id)}",
            field=f"{where}.id",
        )
    if node_id in known:
        raise SpaceError(f"{where}.id {node_id!r} is already used by nodes[{known[node_id]}]", field=f"{where}.id")
    op = raw["op"]
    if not isinstance(op, str) or op not in OP_KEYS:
        raise SpaceError(f"{where}.op: unknown op {json.dumps(op)} (ops: {', '.join(OPS)})", field=f"{where}.op")
    allowed = {"id", "op", "in", *OP_KEYS[op]}
    for key in raw:
        if key not in allowed:
            keys = ", ".join(sorted(OP_KEYS[op])) or "none"
            raise SpaceError(f"{where}: unknown key {key!r} for op {op!r} (its keys: {keys})", field=f"{where}.{key}")
    inputs = raw["in"]
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise SpaceError(f"{where}.in must be a list of node ids", field=f"{where}.in")
    if op in MULTI_INPUT_OPS:
        if not 2 <= len(inputs) <= MAX_INPUTS:
            raise SpaceError(f"{where}: {op} takes 2..{MAX_INPUTS} inputs, got {len(inputs)}", field=f"{where}.in")
    elif len(inputs) != 1:
        raise SpaceError(f"{where}: {op} takes exactly 1 input, got {len(inputs)}", field=f"{where}.in")
    for j, ref in enumerate(inputs):
        if ref == INPUT or ref in known:
            continue
        field = f"{where}.in[{j}]"
        if ref == node_id or ref in ids_later:
            raise SpaceError(
                f"{field}: {ref!r} is not defined before {node_id!r} (list nodes in topological order; "
                "cycles are not allowed)",
                field=field,
            )
        raise SpaceError(f"{field}: unknown input {ref!r}", field=field)
    return DagNode(node_id, op, tuple(inputs), _read_params(raw, op, where))


def _out_size(size: int, k: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - k) // stride + 1


def _node_shape(node: DagNode, ins: list[Shape], where: str) -> tuple[Shape, int]:
    """Output shape and parameter count of ``node`` given its input shapes; raises naming the field."""
    op = node.op
    shape = ins[0]
    if op in ("conv", "maxpool", "avgpool"):
        if len(shape) != 3:
            raise SpaceError(
                f"{where}: {op} needs a [C, H, W] input, got a vector of {shape[0]} (after gap/flatten/linear)",
                field=f"{where}.in[0]",
            )
        c, h, w = shape
        k, stride, padding = node.get("k"), node.get("stride"), node.get("padding")
        if op != "conv" and padding > k // 2:
            raise SpaceError(f"{where}.padding must be at most k//2 = {k // 2} for {op}", field=f"{where}.padding")
        oh, ow = _out_size(h, k, stride, padding), _out_size(w, k, stride, padding)
        if oh < 1 or ow < 1:
            raise SpaceError(
                f"{where}: kernel {k} (padding {padding}) is larger than its {h}x{w} input", field=f"{where}.k"
            )
        if op != "conv":
            return (c, oh, ow), 0
        out, groups = node.get("out"), node.get("groups")
        if c % groups:
            raise SpaceError(f"{where}.groups {groups} does not divide the {c} input channels", field=f"{where}.groups")
        if out % groups:
            raise SpaceError(f"{where}.groups {groups} does not divide out = {out}", field=f"{where}.groups")
        params = out * (c // groups) * k * k + (out if node.flag("bias") else 0)
        return (out, oh, ow), params
    if op == "bn":
        return shape, 2 * shape[0]
    if op == "relu":
        return shape, 0
    if op == "gap":
        if len(shape) != 3:
            raise SpaceError(f"{where}: gap needs a [C, H, W] input, got a vector", field=f"{where}.in[0]")
        return (shape[0],), 0
    if op == "flatten":
        return (math.prod(shape),), 0
    if op == "linear":
        if len(shape) != 1:
            raise SpaceError(
                f"{where}: linear needs a vector input, got [C, H, W] = {list(shape)} (add a gap or flatten node)",
                field=f"{where}.in[0]",
            )
        out = node.get("out")
        return (out,), shape[0] * out + (out if node.flag("bias") else 0)
    if op == "add":
        for j, s in enumerate(ins[1:], start=1):
            if s != shape:
                raise SpaceError(
                    f"{where}: add of different shapes: {node.inputs[0]!r} is {list(shape)}, "
                    f"{node.inputs[j]!r} is {list(s)}",
                    field=f"{where}.in[{j}]",
                )
        return shape, 0
    # concat
    for j, s in enumerate(ins[1:], start=1):
        if len(s) != len(shape) or s[1:] != shape[1:]:
            raise SpaceError(
                f"{where}: concat needs inputs of one rank and spatial size: {node.inputs[0]!r} is {list(shape)}, "
                f"{node.inputs[j]!r} is {list(s)}",
                field=f"{where}.in[{j}]",
            )
    return (sum(s[0] for s in ins), *shape[1:]), 0


def infer_shapes(input_shape: Shape, nodes: Sequence[DagNode]) -> tuple[list[Shape], int]:
    """Shape of every node's value and the graph's parameter count; raises :class:`SpaceError` naming the node."""
    known: dict[str, Shape] = {INPUT: tuple(input_shape)}
    shapes: list[Shape] = []
    total = elements = 0
    for i, node in enumerate(nodes):
        where = f"nodes[{i}]"
        shape, params = _node_shape(node, [known[ref] for ref in node.inputs], where)
        total += params
        elements += math.prod(shape)
        if total > MAX_PARAMS:
            raise SpaceError(
                f"{where}: the graph exceeds {MAX_PARAMS // 1_000_000}M parameters ({total} so far)", field=where
            )
        if math.prod(shape) > MAX_VALUE_ELEMENTS:
            raise SpaceError(
                f"{where}: its value {list(shape)} has more than {MAX_VALUE_ELEMENTS} elements per image", field=where
            )
        if elements > MAX_TOTAL_ELEMENTS:
            raise SpaceError(f"{where}: the node values exceed {MAX_TOTAL_ELEMENTS} elements per image", field=where)
        known[node.id] = shape
        shapes.append(shape)
    return shapes, total


def arch_from_obj(obj: Any) -> DagArch:
    """Validate a decoded JSON object into a :class:`DagArch`; raises :class:`SpaceError` naming the field."""
    if not isinstance(obj, dict):
        raise SpaceError("a DAG arch must be a JSON object with 'input', 'nodes' and 'output'", field="arch")
    for key in obj:
        if key not in ("input", "nodes", "output"):
            raise SpaceError(f"unknown key {key!r} (keys: input, nodes, output)", field=key)
    if "input" not in obj:
        raise SpaceError("a DAG arch needs 'input': [C, H, W]", field="input")
    raw_input = obj["input"]
    if not isinstance(raw_input, list) or len(raw_input) != 3:
        raise SpaceError(f"input must be [C, H, W], got {json.dumps(raw_input)}", field="input")
    limits = (MAX_INPUT_CHANNELS, MAX_INPUT_SIZE, MAX_INPUT_SIZE)
    c, h, w = (_read_int(v, f"input[{i}]", 1, hi) for i, (v, hi) in enumerate(zip(raw_input, limits)))
    if c * h * w > MAX_VALUE_ELEMENTS:
        raise SpaceError(f"input {[c, h, w]} has more than {MAX_VALUE_ELEMENTS} elements", field="input")
    raw_nodes = obj.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise SpaceError("nodes must be a non-empty list of node objects", field="nodes")
    if len(raw_nodes) > MAX_NODES:
        raise SpaceError(f"at most {MAX_NODES} nodes, got {len(raw_nodes)}", field="nodes")
    all_ids: set[str] = {n["id"] for n in raw_nodes if isinstance(n, dict) and isinstance(n.get("id"), str)}
    known: dict[str, int] = {}
    nodes: list[DagNode] = []
    for i, raw in enumerate(raw_nodes):
        node = _read_node(raw, i, known, all_ids - set(known))
        known[node.id] = i
        nodes.append(node)
    output = obj.get("output", nodes[-1].id)
    if not isinstance(output, str) or output not in known:
        raise SpaceError(f"output must be the id of a node, got {json.dumps(output)}", field="output")
    shapes, _ = infer_shapes((c, h, w), nodes)
    out_index = known[output]
    if nodes[out_index].op != "linear" and shapes[out_index][0] > MAX_HEAD_WIDTH:
        raise SpaceError(
            f"output {output!r} is {shapes[out_index][0]} wide: the classifier appended to a non-linear output "
            f"reads at most {MAX_HEAD_WIDTH} features (add a gap, or end with a linear)",
            field="output",
        )
    return DagArch((c, h, w), tuple(nodes), output)


def parse_dag(text: str) -> DagArch:
    """Parse and validate a JSON DAG (see the module docstring); raises :class:`SpaceError` naming the field."""
    if not isinstance(text, str):
        raise SpaceError(f"a DAG arch must be a JSON string, got {type(text).__name__}", field="arch")
    if len(text) > MAX_ARCH_LENGTH:
        raise SpaceError(f"arch is longer than {MAX_ARCH_LENGTH} characters", field="arch")
    if not text.strip():
        raise SpaceError("arch is empty", field="arch")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpaceError(f"arch is not valid JSON: {exc}", field="arch") from None
    except RecursionError:
        raise SpaceError("arch is nested too deeply", field="arch") from None
    return arch_from_obj(obj)


# -- canonical form


def canonicalise(arch: DagArch) -> DagArch:
    """Live nodes only, renamed ``n0..`` in the tie-broken Kahn order of the module docstring."""
    live = arch.live()
    consumers: dict[str, list[int]] = {n.id: [] for n in live.nodes}
    waiting: list[int] = []
    for i, n in enumerate(live.nodes):
        producers = {ref for ref in n.inputs if ref != INPUT}
        waiting.append(len(producers))
        for ref in producers:
            consumers[ref].append(i)
    position: dict[str, int] = {INPUT: -1}
    ready = [i for i, w in enumerate(waiting) if w == 0]

    def positions(n: DagNode) -> tuple[int, ...]:
        pos = tuple(position[ref] for ref in n.inputs)
        return tuple(sorted(pos)) if n.op == "add" else pos

    def key(i: int) -> tuple[Any, ...]:
        n = live.nodes[i]
        return (n.op, n.params, positions(n), i)

    order: list[int] = []
    while ready:
        best = min(ready, key=key)
        ready.remove(best)
        position[live.nodes[best].id] = len(order)
        order.append(best)
        for c in consumers[live.nodes[best].id]:
            waiting[c] -= 1
            if waiting[c] == 0:
                ready.append(c)
    assert len(order) == len(live.nodes), "a validated DAG has no cycle"
    name = {INPUT: INPUT, **{live.nodes[i].id: f"n{k}" for k, i in enumerate(order)}}
    nodes = []
    for i in order:
        n = live.nodes[i]
        refs = [name[ref] for ref in n.inputs]
        if n.op == "add":
            refs.sort(key=lambda r: -1 if r == INPUT else int(r[1:]))
        nodes.append(DagNode(name[n.id], n.op, tuple(refs), n.params))
    return DagArch(arch.input, tuple(nodes), name[arch.output])


# -- the space

EXAMPLE: dict[str, Any] = {
    "input": [3, 32, 32],
    "nodes": [
        {"id": "c1", "op": "conv", "in": ["input"], "out": 16, "k": 3},
        {"id": "b1", "op": "bn", "in": ["c1"]},
        {"id": "r1", "op": "relu", "in": ["b1"]},
        {"id": "c2", "op": "conv", "in": ["r1"], "out": 16, "k": 3},
        {"id": "b2", "op": "bn", "in": ["c2"]},
        {"id": "a2", "op": "add", "in": ["r1", "b2"]},
        {"id": "r2", "op": "relu", "in": ["a2"]},
        {"id": "g", "op": "gap", "in": ["r2"]},
        {"id": "fc", "op": "linear", "in": ["g"], "out": 10},
    ],
    "output": "fc",
}
SAMPLE_WIDTHS: tuple[int, ...] = (8, 16, 24, 32)
MUTATE_WIDTHS: tuple[int, ...] = (8, 16, 24, 32, 48, 64)
KERNELS: tuple[int, ...] = (1, 3, 5, 7)
MAX_MUTATE_TRIES = 64


class DagSpace(Space):
    """Any DAG of conv/bn/relu/pool/gap/flatten/linear/add/concat nodes, as JSON (see the module docstring)."""

    name = "dag"
    description = "generic JSON DAG of standard layers (conv, bn, relu, pools, gap, flatten, linear, add, concat)"
    example = json.dumps(EXAMPLE, sort_keys=True, separators=(",", ":"))
    max_arch_length = MAX_ARCH_LENGTH
    size = None
    input_shape: tuple[int, ...] = (3, 32, 32)

    def parse(self, text: str) -> DagArch:
        """Parse and validate a JSON DAG (:class:`SpaceError` names the bad field, e.g. ``nodes[3].out``)."""
        return parse_dag(text)

    def encode(self, arch: Any) -> str:
        """Compact JSON with sorted keys and every default written out."""
        return str(arch.encode())

    def canonical(self, arch: Any) -> DagArch:
        """Live nodes renamed ``n0..`` in a tie-broken topological order (canonical up to that order)."""
        return canonicalise(arch)

    def input_shape_for(self, arch: Any) -> tuple[int, ...]:
        """The arch's own input image ``(C, H, W)``."""
        return tuple(arch.input)

    def build(self, arch: Any, num_classes: int = 10) -> nn.Module:
        """The :class:`~zcscore.spaces.dag_net.DagNet` of ``arch`` (``num_classes`` unused with a linear output)."""
        from zcscore.spaces.dag_net import DagNet

        return DagNet(arch, num_classes)

    def flops_m(self, arch: Any, num_classes: int = 10) -> float | None:
        """None: FLOPs are counted from the built network (at :meth:`input_shape_for`)."""
        return None

    def params_m(self, arch: Any, num_classes: int = 10) -> float:
        """Parameters (M) of the built network, from the inferred shapes (head included)."""
        live: DagArch = arch.live()
        shapes, total = infer_shapes(live.input, live.nodes)
        out = live.node(live.output)
        if out.op != "linear":
            width = shapes[[n.id for n in live.nodes].index(live.output)][0]
            total += width * num_classes + num_classes
        return total / 1e6

    def sample(self, rng: random.Random) -> DagArch:
        """A stem conv-bn-relu, 1..3 conv-bn-relu blocks (some residual, some strided), gap and a 10-way linear."""
        width = rng.choice(SAMPLE_WIDTHS)
        nodes: list[dict[str, Any]] = []

        def conv_bn(src: str, tag: str, out: int, k: int, stride: int) -> str:
            nodes.append({"id": f"c{tag}", "op": "conv", "in": [src], "out": out, "k": k, "stride": stride})
            nodes.append({"id": f"b{tag}", "op": "bn", "in": [f"c{tag}"]})
            return f"b{tag}"

        def relu(src: str, tag: str) -> str:
            nodes.append({"id": f"r{tag}", "op": "relu", "in": [src]})
            return f"r{tag}"

        cur = relu(conv_bn(INPUT, "0", width, 3, 1), "0")
        for b in range(1, rng.randint(1, 3) + 1):
            k = rng.choice(KERNELS[:3])
            if rng.random() < 0.5:  # residual block: conv-bn-relu-conv-bn + identity, relu
                mid = relu(conv_bn(cur, f"{b}a", width, k, 1), f"{b}a")
                last = conv_bn(mid, f"{b}b", width, k, 1)
                nodes.append({"id": f"a{b}", "op": "add", "in": [cur, last]})
                cur = relu(f"a{b}", str(b))
            else:
                width = rng.choice(SAMPLE_WIDTHS)
                stride = 2 if rng.random() < 0.5 else 1
                cur = relu(conv_bn(cur, str(b), width, k, stride), str(b))
        nodes.append({"id": "gap", "op": "gap", "in": [cur]})
        nodes.append({"id": "fc", "op": "linear", "in": ["gap"], "out": 10})
        return arch_from_obj({"input": list(self.input_shape), "nodes": nodes, "output": "fc"})

    def mutate(self, arch: Any, rng: random.Random) -> DagArch:
        """One conv's ``out`` or ``k`` changed (a new ``k`` resets ``padding`` to k//2), retried until valid."""
        convs = [i for i, n in enumerate(arch.nodes) if n.op == "conv"]
        if not convs:
            raise SpaceError("the DAG has no conv node to mutate", field="nodes")
        obj = arch.to_obj()
        for _ in range(MAX_MUTATE_TRIES):
            i = rng.choice(convs)
            node = dict(obj["nodes"][i])
            key = rng.choice(("out", "k"))
            choices = [v for v in (MUTATE_WIDTHS if key == "out" else KERNELS) if v != node[key]]
            node[key] = rng.choice(choices)
            if key == "k":
                node["padding"] = node["k"] // 2
            nodes = list(obj["nodes"])
            nodes[i] = node
            try:
                return arch_from_obj({**obj, "nodes": nodes})
            except SpaceError:
                continue
        raise SpaceError(f"no valid mutation found after {MAX_MUTATE_TRIES} tries", field="nodes")
