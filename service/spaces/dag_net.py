"""The network of a :mod:`zcscore.spaces.dag` arch: one module per node, run in node order.

* Modules live in ``DagNet.layers``, an ``nn.ModuleDict`` keyed by node id (an id that clashes with a
  ``ModuleDict`` attribute, such as ``pop`` or ``train``, gets trailing underscores: see ``DagNet.module_keys``),
  created in node order, so the default initialisation depends only on the torch RNG state. Every node
  has a module, ``add`` and ``concat`` included, so forward hooks can read any node
  (``zcscore.proxies.features``: ``feature_modules(net, ["layers.r1"])``).
* Nodes that do not reach the output are not built.
* A 1x1 conv with stride > 1 is a plain ``Conv2d``; the engine runs such networks in NCHW on CPU (torch
  2.13's channels-last weight gradient of that conv crashes the process, ``zcscore.engine``).
* ``classifier``: the output node when it is a ``linear``; otherwise a head appended after the output
  node, global average pooling (for a ``[C, H, W]`` output) and ``Linear(C, num_classes)``, created last.
* ``forward(x)`` returns the classifier's logits ``(B, K)``; values are dropped after their last use.
* ``extract_cell_features(x)``: the AZ-NAS features of a generic DAG (what ``collect_features`` reads),
  the output of every ``relu``, ``add`` and ``concat`` node whose value is 4-D, in node order; when
  fewer than two qualify, every 4-D node output; when still fewer than two, ``[x, forward(x)]``.
  Consecutive features need not depend on each other (parallel branches): AZ-NAS trainability then
  sees a zero VJP for that step.
"""

from __future__ import annotations

import torch
from torch import nn

from zcscore.spaces.dag import FEATURE_OPS, INPUT, DagArch, DagNode, Shape, parse_dag


class Add(nn.Module):
    """Sum of its inputs (an ``add`` node)."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for t in xs[1:]:
            out = out + t
        return out


class Concat(nn.Module):
    """Concatenation of its inputs along dimension 1 (a ``concat`` node)."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=1)


class GlobalAvgPool(nn.Module):
    """Global average pooling and flatten: ``(B, C, H, W) -> (B, C)`` (a ``gap`` node)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


def node_module(node: DagNode, inputs: list[Shape]) -> nn.Module:
    """The module of one node, given the shapes of its inputs."""
    op, shape = node.op, inputs[0]
    if op == "conv":
        return nn.Conv2d(
            shape[0],
            node.get("out"),
            node.get("k"),
            stride=node.get("stride"),
            padding=node.get("padding"),
            groups=node.get("groups"),
            bias=node.flag("bias"),
        )
    if op == "bn":
        return nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0])
    if op == "relu":
        return nn.ReLU()  # never in place: features and residual inputs are read after it
    if op == "maxpool":
        return nn.MaxPool2d(node.get("k"), node.get("stride"), node.get("padding"))
    if op == "avgpool":
        return nn.AvgPool2d(node.get("k"), node.get("stride"), node.get("padding"), count_include_pad=False)
    if op == "gap":
        return GlobalAvgPool()
    if op == "flatten":
        return nn.Flatten(1)
    if op == "linear":
        return nn.Linear(shape[0], node.get("out"), bias=node.flag("bias"))
    if op == "add":
        return Add()
    if op == "concat":
        return Concat()
    raise ValueError(f"unknown op {op!r}")


def _module_keys(ids: list[str]) -> dict[str, str]:
    """ModuleDict key per node id: the id, or the id with trailing ``_`` where it clashes with an attribute."""
    probe = nn.ModuleDict()
    keys: dict[str, str] = {}
    used: set[str] = set()
    for node_id in ids:
        key = node_id
        while hasattr(probe, key) or key in used:
            key += "_"
        keys[node_id] = key
        used.add(key)
    return keys


class DagNet(nn.Module):
    """Executes a DAG arch: ``layers[id]`` per live node, in node order, then the classifier."""

    def __init__(self, arch: DagArch | str, num_classes: int = 10) -> None:
        super().__init__()
        if isinstance(arch, str):
            arch = parse_dag(arch)
        live = arch.live()
        shapes = live.shapes()
        self.arch = live
        self.output_id = live.output
        self.module_keys = _module_keys([n.id for n in live.nodes])
        self.layers = nn.ModuleDict()
        for node in live.nodes:
            self.layers[self.module_keys[node.id]] = node_module(node, [shapes[ref] for ref in node.inputs])
        self.output_op = live.node(live.output).op
        self.head: nn.Module | None = None
        if self.output_op != "linear":
            out_shape = shapes[live.output]
            linear = nn.Linear(out_shape[0], num_classes)
            self.head = nn.Sequential(GlobalAvgPool(), linear) if len(out_shape) == 3 else linear
        # plan: (id, module key, inputs, values freed after this node)
        last_use: dict[str, int] = {}
        for i, node in enumerate(live.nodes):
            for ref in node.inputs:
                last_use[ref] = i
        self._plan: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = []
        for i, node in enumerate(live.nodes):
            free = tuple(r for r in dict.fromkeys(node.inputs) if last_use[r] == i and r != live.output)
            self._plan.append((node.id, self.module_keys[node.id], node.inputs, free))
        self._feature_ids = [n.id for n in live.nodes if n.op in FEATURE_OPS]

    @property
    def classifier(self) -> nn.Linear:
        """The final ``Linear``: the output node when it is a linear, else the appended head's."""
        if self.head is None:
            mod = self.layers[self.module_keys[self.output_id]]
        else:
            mod = self.head[-1] if isinstance(self.head, nn.Sequential) else self.head
        assert isinstance(mod, nn.Linear)
        return mod

    def run_nodes(self, x: torch.Tensor, keep: bool = False) -> dict[str, torch.Tensor]:
        """Every node's value (all of them with ``keep``; else only the output's survives)."""
        values: dict[str, torch.Tensor] = {INPUT: x}
        for node_id, key, inputs, free in self._plan:
            values[node_id] = self.layers[key](*(values[ref] for ref in inputs))
            if not keep:
                for ref in free:
                    del values[ref]
        return values

    def _logits(self, out: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            return out
        logits: torch.Tensor = self.head(out)
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits(self.run_nodes(x)[self.output_id])

    def extract_cell_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """4-D outputs of the relu/add/concat nodes in node order (fallbacks in the module docstring)."""
        values = self.run_nodes(x, keep=True)
        feats = [values[i] for i in self._feature_ids if values[i].dim() == 4]
        if len(feats) < 2:
            feats = [values[n.id] for n in self.arch.nodes if values[n.id].dim() == 4]
        if len(feats) < 2:
            feats = [x, self._logits(values[self.output_id])]
        return feats

    def extra_repr(self) -> str:
        return f"output={self.output_id!r}"


def build_dag(arch: DagArch | str, num_classes: int = 10) -> DagNet:
    """The :class:`DagNet` of ``arch`` (a parsed arch or its JSON string)."""
    return DagNet(arch, num_classes)


__all__ = ["Add", "Concat", "DagNet", "GlobalAvgPool", "build_dag", "node_module"]
