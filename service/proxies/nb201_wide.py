"""K NB201 archs as one wide network: the batched passes' shared network code (``Engine(batch=K)``).

The K archs' tensors lie side by side along the channel axis, ``(B, K*C, H, W)``, arch ``k`` owning channels
``[k*C, (k+1)*C)``. Every conv is one grouped conv (``groups=K``, the K archs' weights stacked), every BN one
train-mode ``batch_norm`` over ``K*C`` channels (per-channel statistics, so per arch). On a cell edge the
archs differ in their op: the channels of the archs using each op are gathered, that op runs once for them,
and the pieces are put back in arch order, so each arch computes only its own ops. Node sums keep the
official order; the head (BN-ReLU-GAP-Linear) runs per arch on dense slices.

Equality with the one-arch path is by construction plus one measured rule: a grouped conv is used only where
the backend gives each group the per-arch conv's bits, forward and (when the pass differentiates) both
gradients (:func:`grouped_conv_is_exact`; else one conv per arch). On CPU (torch 2.13) 3x3 convs are exact
in both layouts, the 1x1 convs' weight gradients are not and run per arch.

Parameters are per arch (:class:`ArchParams`), drawn on the CPU generator exactly as building
``TinyNetwork`` after ``seed_everything(seed)`` draws them (:func:`default_params`), so no network is built.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zcscore.engine import seed_everything
from zcscore.spaces.nb201 import EDGES, NB201Arch

CHANNELS, CELLS = 16, 5
WIDTH = CHANNELS * 4  # channels of the last stage (the head's input)
CONV_OPS = {"nor_conv_3x3": 3, "nor_conv_1x1": 1}

Key = tuple[Any, ...]
ConvHook = Callable[[Key, Sequence[int], torch.Tensor], None]


@dataclass
class ConvSpec:
    """One Conv2d of the NB201 network, in module order: its place (``key``) and weight shape."""

    key: Key
    shape: tuple[int, int, int, int]


def conv_specs(arch: NB201Arch) -> list[ConvSpec]:
    """Every Conv2d of ``TinyNetwork(arch)`` in construction (= ``named_modules``) order."""
    specs = [ConvSpec(("stem",), (CHANNELS, 3, 3, 3))]
    c = CHANNELS
    cell = 0
    for stage in range(3):
        if stage > 0:
            specs += [
                ConvSpec(("res", stage, "a"), (2 * c, c, 3, 3)),
                ConvSpec(("res", stage, "b"), (2 * c, 2 * c, 3, 3)),
                ConvSpec(("res", stage, "down"), (2 * c, c, 1, 1)),
            ]
            c *= 2
        for _ in range(CELLS):
            for e, op in enumerate(arch.ops):
                if op in CONV_OPS:
                    k = CONV_OPS[op]
                    specs.append(ConvSpec(("cell", cell, e), (c, c, k, k)))
            cell += 1
    return specs


def module_name(key: Key) -> str:
    """The ``named_modules`` name of the Conv2d (or ``("classifier",)``) at ``key`` in ``TinyNetwork``."""
    if key[0] == "stem":
        return "stem.0"
    if key[0] == "classifier":
        return "classifier"
    if key[0] == "res":
        part = {"a": "conv_a.1", "b": "conv_b.1", "down": "downsample.1"}[key[2]]
        return f"cells.{key[1] * (CELLS + 1) - 1}.{part}"
    cell, e = key[1], key[2]
    return f"cells.{cell + cell // CELLS}.layers.{e}.1"


def bn_keys(arch: NB201Arch) -> list[Key]:
    """The key of every BatchNorm2d (that of the conv it follows; ``("lastact",)`` for the head's)."""
    return [s.key for s in conv_specs(arch) if s.key[-1] != "down"] + [("lastact",)]


@dataclass
class ArchParams:
    """One arch's parameters by key: conv weights, BN affine pairs (absent: weight 1, bias 0, no gradient), head."""

    convs: dict[Key, torch.Tensor]
    bns: dict[Key, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    classifier: tuple[torch.Tensor, torch.Tensor] | None = None

    def tensors(self) -> list[torch.Tensor]:
        """Every parameter tensor (conv weights, BN weight and bias, classifier weight and bias)."""
        out = list(self.convs.values())
        for w, b in self.bns.values():
            out += [w, b]
        if self.classifier is not None:
            out += list(self.classifier)
        return out

    def to(self, device: torch.device, fmt: torch.memory_format, requires_grad: bool) -> ArchParams:
        """Device leaves (conv weights in ``fmt``, as the built network lays them out)."""

        def leaf(t: torch.Tensor, layout: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
            out = t.detach().to(device).contiguous(memory_format=layout)
            return out.requires_grad_(requires_grad)

        return ArchParams(
            {k: leaf(w, fmt) for k, w in self.convs.items()},
            {k: (leaf(w), leaf(b)) for k, (w, b) in self.bns.items()},
            None if self.classifier is None else (leaf(self.classifier[0]), leaf(self.classifier[1])),
        )


def default_params(arch: NB201Arch, seed: int, num_classes: int = 10) -> tuple[ArchParams, torch.Tensor]:
    """``TinyNetwork(arch)``'s default init after seeding, drawn without building it; and the RNG state after.

    The same calls as the modules' ``reset_parameters`` (kaiming-uniform with ``a = sqrt(5)``; the Linear
    bias uniform in ``±1/sqrt(fan_in)``), in construction order, so the bits are those of the built network.
    """
    seed_everything(seed)
    convs = {}
    for s in conv_specs(arch):
        convs[s.key] = nn.init.kaiming_uniform_(torch.empty(s.shape), a=math.sqrt(5))
    weight = nn.init.kaiming_uniform_(torch.empty(num_classes, WIDTH), a=math.sqrt(5))
    bound = 1 / math.sqrt(WIDTH)
    bias = nn.init.uniform_(torch.empty(num_classes), -bound, bound)
    bns = {k: (torch.ones(_bn_width(k)), torch.zeros(_bn_width(k))) for k in bn_keys(arch)}
    return ArchParams(convs, bns, (weight, bias)), torch.get_rng_state()


def _bn_width(key: Key) -> int:
    if key[0] == "stem":
        return CHANNELS
    if key[0] == "lastact":
        return WIDTH
    stage = int(key[1]) if key[0] == "res" else int(key[1]) // CELLS
    return int(CHANNELS * 2**stage)


_EXACT: dict[tuple[Any, ...], tuple[bool, bool, bool]] = {}


def grouped_conv_is_exact(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    groups: int,
    stride: int,
    fmt: torch.memory_format,
    device: torch.device,
    grads: bool = False,
) -> bool:
    """Whether a ``groups``-grouped conv of these shapes gives each group the bits of its own conv here.

    ``grads``: also the input and weight gradients. Backends pick kernels by shape and layout: on CPU (torch
    2.13, one thread) the channels-last forward matches every per-arch NB201 conv, the NCHW one does not for
    the 3-channel stem and the 64-channel 1x1 convs (~1e-5 apart, enough to flip ReLU masks), and the 1x1
    convs' weight gradients differ in both layouts. Measured once per shape on random data (different kernels
    disagree on it) and cached for the process, per CPU thread count.
    """
    key = (x_shape, w_shape, groups, stride, fmt, str(device), torch.get_num_threads())  # threads pick kernels too
    if key not in _EXACT:
        with torch.inference_mode(False), torch.enable_grad():  # callers may run without autograd
            _EXACT[key] = _measure_exact(x_shape, w_shape, groups, stride, fmt, device)
    fwd, g_in, g_w = _EXACT[key]
    return fwd and (not grads or (g_in and g_w))


def _measure_exact(*shape_and_kernel: Any) -> tuple[bool, bool, bool]:
    """Forward, input-gradient and weight-gradient exactness of one grouped conv (the args of the check above)."""
    x_shape, w_shape, groups, stride, fmt, device = shape_and_kernel
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(x_shape, generator=gen).to(device).contiguous(memory_format=fmt).requires_grad_()
    w = torch.randn(w_shape, generator=gen).to(device).contiguous(memory_format=fmt).requires_grad_()
    pad = w_shape[-1] // 2
    whole = F.conv2d(x, w, stride=stride, padding=pad, groups=groups)
    g_out = torch.randn(whole.shape, generator=gen).to(device).contiguous(memory_format=fmt)
    gx, gw = torch.autograd.grad(whole, (x, w), g_out)
    fwd = g_in = g_w = True
    for xa, wa, ga, ya, gxa_want, gwa_want in zip(
        x.detach().chunk(groups, 1),
        w.detach().chunk(groups, 0),
        g_out.chunk(groups, 1),
        whole.detach().chunk(groups, 1),
        gx.chunk(groups, 1),
        gw.chunk(groups, 0),
    ):
        xa = xa.contiguous(memory_format=fmt).requires_grad_()
        wa = wa.contiguous(memory_format=fmt).requires_grad_()
        out = F.conv2d(xa, wa, stride=stride, padding=pad)
        gxa, gwa = torch.autograd.grad(out, (xa, wa), ga.contiguous(memory_format=fmt))
        fwd &= torch.equal(out, ya)
        g_in &= torch.equal(gxa, gxa_want)
        g_w &= torch.equal(gwa, gwa_want)
    return fwd, g_in, g_w


class _GradLayout(torch.autograd.Function):
    """Identity whose backward makes the gradient dense in the given memory format (torch's CPU BN backward
    takes a ~10x slower path on the strided gradients that the arch-axis ``cat`` hands back)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, fmt: torch.memory_format) -> torch.Tensor:
        ctx.fmt = fmt
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grads[0].contiguous(memory_format=ctx.fmt), None


def dense_grad(x: torch.Tensor, fmt: torch.memory_format) -> torch.Tensor:
    """``x``, with its gradient made dense in ``fmt`` on the way back (:class:`_GradLayout`)."""
    out: torch.Tensor = _GradLayout.apply(x, fmt)  # type: ignore[no-untyped-call]  # torch stubs leave apply untyped
    return out


@dataclass(frozen=True)
class _ArchAxis:
    """Views of a wide ``(B, K*C, H, W)`` tensor with an arch axis: ``(B, H, W, K, C)`` channels-last (dense
    there), else ``(B, K, C, H, W)``; gathers and scatters of whole archs run along it."""

    c: int
    cl: bool

    @property
    def dim(self) -> int:
        return 3 if self.cl else 1

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, kc, h, w = x.shape
        if self.cl:
            return x.permute(0, 2, 3, 1).reshape(b, h, w, kc // self.c, self.c)
        return x.reshape(b, kc // self.c, self.c, h, w)

    def join(self, v: torch.Tensor) -> torch.Tensor:
        if self.cl:
            b, h, w, k, c = v.shape
            return v.reshape(b, h, w, k * c).permute(0, 3, 1, 2)
        b, k, c, h, w = v.shape
        return v.reshape(b, k * c, h, w)

    def index(self, members: Sequence[int], device: torch.device) -> torch.Tensor:
        return torch.tensor(list(members), device=device)

    def scatter(self, out: torch.Tensor, members: Sequence[int], v: torch.Tensor) -> None:
        """``out[arch members[j]] = v[j]`` along the arch axis (per-arch copies: CPU ``index_copy_`` is slow)."""
        for j, k in enumerate(members):
            out.select(self.dim, k).copy_(v.select(self.dim, j))


class _Gather(torch.autograd.Function):
    """Split a wide tensor into the archs of each group (one copy); backward writes the groups' gradients
    back into one tensor (each arch's gradient is exactly its group's: no zero-filled sums)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, axis: _ArchAxis, groups: list[list[int]]) -> tuple[torch.Tensor, ...]:
        v = axis.split(x)
        ctx.axis, ctx.shape, ctx.groups = axis, v.shape, groups
        ctx.idx = [axis.index(g, x.device) for g in groups]
        return tuple(axis.join(v.index_select(axis.dim, i)) for i in ctx.idx)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor, None, None]:
        axis = ctx.axis
        ref = next(g for g in grads if g is not None)
        out = torch.empty(ctx.shape, dtype=ref.dtype, device=ref.device)
        for g, members in zip(grads, ctx.groups):
            if g is None:
                for k in members:
                    out.select(axis.dim, k).zero_()
            else:
                axis.scatter(out, members, axis.split(g))
        return axis.join(out), None, None


class _Assemble(torch.autograd.Function):
    """Put the groups' outputs back in arch order (one copy); backward gathers each group's gradient."""

    @staticmethod
    def forward(ctx: Any, axis: _ArchAxis, groups: list[list[int]], *pieces: torch.Tensor) -> torch.Tensor:
        vs = [axis.split(p) for p in pieces]
        shape = list(vs[0].shape)
        shape[axis.dim] = sum(len(g) for g in groups)
        out = torch.empty(shape, dtype=pieces[0].dtype, device=pieces[0].device)
        ctx.axis, ctx.idx = axis, [axis.index(g, out.device) for g in groups]
        for v, members in zip(vs, groups):
            axis.scatter(out, members, v)
        return axis.join(out)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        axis = ctx.axis
        v = axis.split(grad.contiguous(memory_format=_fmt_of(axis)))
        return (None, None, *(axis.join(v.index_select(axis.dim, i)) for i in ctx.idx))


def _fmt_of(axis: _ArchAxis) -> torch.memory_format:
    return torch.channels_last if axis.cl else torch.contiguous_format


class WideNB201:
    """The K archs' NB201 networks (train-mode BN, the given parameters) as one wide network on ``device``.

    ``params`` must already be device leaves (:meth:`ArchParams.to`). ``grads``: the pass differentiates
    (then only grouped convs whose gradients are exact are grouped). ``running_stats=False`` calls BN as a
    module with ``track_running_stats=False`` does. ``on_conv(key, members, out)`` sees every conv output.
    """

    def __init__(
        self,
        archs: Sequence[NB201Arch],
        params: Sequence[ArchParams],
        device: torch.device,
        cl: bool,
        grads: bool = False,
        running_stats: bool = True,
        on_conv: ConvHook | None = None,
    ) -> None:
        self.archs, self.params, self.device, self.cl = list(archs), list(params), device, cl
        self.grads, self.running_stats, self.on_conv = grads, running_stats, on_conv
        self.fmt = torch.channels_last if cl else torch.contiguous_format
        self._bn_const: dict[int, tuple[torch.Tensor, ...]] = {}

    def lay(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` on the device, in the network's layout."""
        return t.to(self.device, non_blocking=True).contiguous(memory_format=self.fmt)

    def _weight(self, key: Key, members: Sequence[int]) -> torch.Tensor:
        ws = [self.params[k].convs[key] for k in members]
        return ws[0] if len(ws) == 1 else torch.cat(ws).contiguous(memory_format=self.fmt)

    def _conv_bn(self, x: torch.Tensor, key: Key, members: Sequence[int], stride: int) -> torch.Tensor:
        """ReLU -> grouped conv -> train-mode BN, as ``ReLUConvBN`` per arch."""
        return self._bn(self._conv(F.relu(x), key, members, stride), key, members)

    def _conv(self, x: torch.Tensor, key: Key, members: Sequence[int], stride: int) -> torch.Tensor:
        """The archs' convs at ``key`` (``same`` padding): one grouped conv where the backend computes it with the
        per-arch conv's bits (:func:`grouped_conv_is_exact`), else one conv per arch on a dense slice."""
        w = self._weight(key, members)
        groups = len(members)
        pad = w.shape[-1] // 2
        exact = grouped_conv_is_exact(tuple(x.shape), tuple(w.shape), groups, stride, self.fmt, self.device, self.grads)
        if groups == 1 or exact:
            out = F.conv2d(x, w, stride=stride, padding=pad, groups=groups)
        else:
            outs = []
            for xa, k in zip(x.chunk(groups, 1), members):
                xa = xa.contiguous(memory_format=self.fmt)
                outs.append(dense_grad(F.conv2d(xa, self.params[k].convs[key], None, stride, pad), self.fmt))
            out = torch.cat(outs, 1).contiguous(memory_format=self.fmt)
        if self.on_conv is not None:
            self.on_conv(key, members, out)
        return out

    def _bn(self, y: torch.Tensor, key: Key, members: Sequence[int]) -> torch.Tensor:
        """Train-mode ``BatchNorm2d`` as the module runs it, with each arch's affine pair (or weight 1, bias 0)."""
        n = y.shape[1]
        if key in self.params[members[0]].bns:
            pairs = [self.params[k].bns[key] for k in members]
            weight = pairs[0][0] if len(pairs) == 1 else torch.cat([w for w, _ in pairs])
            bias = pairs[0][1] if len(pairs) == 1 else torch.cat([b for _, b in pairs])
            running: tuple[torch.Tensor | None, ...] = self._running(n)
        else:
            mean, var, weight, bias = self._constants(n)
            running = (mean, var)
        if not self.running_stats:
            running = (None, None)
        return F.batch_norm(y, running[0], running[1], weight, bias, training=True, momentum=0.1, eps=1e-5)

    def _constants(self, n: int) -> tuple[torch.Tensor, ...]:
        """Running buffers and a (1, 0) affine pair that takes gradients (torch's CPU backward is ~10x slower
        without them; the train-mode output depends on neither)."""
        if n not in self._bn_const:
            ones, zeros = torch.ones(n, device=self.device), torch.zeros(n, device=self.device)
            self._bn_const[n] = (zeros.clone(), ones.clone(), ones.requires_grad_(), zeros.requires_grad_())
        return self._bn_const[n]

    def _running(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh running buffers (train-mode outputs ignore them; the update is thrown away)."""
        return torch.zeros(n, device=self.device), torch.ones(n, device=self.device)

    def _edge(self, x: torch.Tensor, cell: int, e: int, c: int) -> torch.Tensor:
        """Every arch's op on edge ``e`` of ``cell``, each arch computing its own op, back in arch order."""
        by_op: dict[str, list[int]] = {}
        for k, arch in enumerate(self.archs):
            by_op.setdefault(arch.ops[e], []).append(k)
        groups = list(by_op.values())
        layout = _ArchAxis(c, self.cl)
        subs = [x] if len(groups) == 1 else _Gather.apply(x, layout, groups)  # type: ignore[no-untyped-call]
        pieces = []
        for op, members, sub in zip(by_op, groups, subs):
            if op in CONV_OPS:
                out = self._conv_bn(sub, ("cell", cell, e), members, 1)
            elif op == "avg_pool_3x3":
                out = F.avg_pool2d(sub, 3, stride=1, padding=1, count_include_pad=False)
            elif op == "skip_connect":
                out = sub
            else:  # none: x * 0 keeps the graph, as the official Zero op
                out = sub.mul(0.0)
            pieces.append(dense_grad(out.contiguous(memory_format=self.fmt), self.fmt))
        if len(pieces) == 1:
            return pieces[0]
        whole: torch.Tensor = _Assemble.apply(layout, groups, *pieces)  # type: ignore[no-untyped-call]
        return whole

    def _cell(self, x: torch.Tensor, cell: int, c: int) -> torch.Tensor:
        nodes = [x]
        for dst in (1, 2, 3):
            total: torch.Tensor | None = None
            for src in range(dst):
                out = self._edge(nodes[src], cell, EDGES.index((src, dst)), c)
                total = out if total is None else total + out
            assert total is not None
            nodes.append(total)
        return nodes[3]

    def _res(self, x: torch.Tensor, stage: int) -> torch.Tensor:
        every = range(len(self.archs))
        b = self._conv_bn(self._conv_bn(x, ("res", stage, "a"), every, 2), ("res", stage, "b"), every, 1)
        down = self._conv(F.avg_pool2d(x, 2, stride=2), ("res", stage, "down"), every, 1)
        return down + b

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The 18 wide cell features of the wide input ``x`` ``(B, K*3, H, W)`` (stem, cells and blocks)."""
        every = range(len(self.archs))
        feats = [self._bn(self._conv(x, ("stem",), every, 1), ("stem",), every)]
        c, cell = CHANNELS, 0
        for stage in range(3):
            if stage > 0:
                feats.append(self._res(feats[-1], stage))
                c *= 2
            for _ in range(CELLS):
                feats.append(self._cell(feats[-1], cell, c))
                cell += 1
        return feats

    def head(self, features: torch.Tensor, linear: Callable[[int, torch.Tensor], torch.Tensor]) -> list[torch.Tensor]:
        """BN-ReLU on the wide last feature, then per arch GAP and ``linear(k, pooled)``: the K logits."""
        every = range(len(self.archs))
        out = F.relu(self._bn(features, ("lastact",), every))
        logits = []
        for k, part in enumerate(out.chunk(len(self.archs), 1)):
            pooled = F.adaptive_avg_pool2d(dense_grad(part.contiguous(memory_format=self.fmt), self.fmt), 1)
            logits.append(linear(k, pooled.flatten(1)))
        return logits

    def classify(self, k: int, pooled: torch.Tensor) -> torch.Tensor:
        """Arch ``k``'s classifier (``nn.Linear``) on its pooled features."""
        head = self.params[k].classifier
        assert head is not None
        return F.linear(pooled, head[0], head[1])

    def logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The K archs' logits of the wide input ``x``."""
        return self.head(self.features(x)[-1], self.classify)


def wide_input(xs: Sequence[torch.Tensor]) -> torch.Tensor:
    """The archs' input batches side by side: ``(B, K*3, H, W)``."""
    return xs[0] if len(xs) == 1 else torch.cat(list(xs), 1)
