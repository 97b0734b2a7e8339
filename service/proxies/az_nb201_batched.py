"""AZ-NAS on a group of NB201 archs in one kernel stream: the one-arch protocol, K archs side by side.

Design ("wide" network): the K archs' tensors are laid side by side along the channel axis,
``(B, K*C, H, W)``, arch ``k`` owning channels ``[k*C, (k+1)*C)``. Every conv is one grouped conv
(``groups=K``, the K archs' weights stacked), every BN one train-mode ``batch_norm`` over ``K*C`` channels
(per-channel statistics, so per arch). On a cell edge the archs differ in their op: the channels of the archs
using each op are gathered, that op runs once for them (a grouped conv for ``nor_conv_*``), and the pieces
are put back in arch order, so each arch computes only its own ops. Node sums keep the official order.

Per arch, exactly as the one-arch path (``az_nas.az_scores`` after the engine's "seed, build, restore"):
the torch RNG is seeded, advanced by the default init of the network (simulated: the same ``uniform_``
draws over the same shapes, no module built), then the kaiming fan-in weights of every Conv2d/Linear are drawn
in module order, then the Gaussian 64x3x32x32 input, then the Rademacher signs of blocks 17..1. The
covariances use the one-arch kernels per arch; ``eigvalsh``, the VJP matrices and ``svdvals`` run batched.

Equality with the one-arch path (CPU, measured): features, covariances and so expressivity and
progressivity are bitwise equal in both layouts. A grouped conv is used only where the backend gives each
group the per-arch conv's bits (checked once per shape, :func:`grouped_conv_is_exact`; else one conv per
arch): a last-bit difference in a feature can flip a ReLU mask and move trainability by ~1e-4. The VJPs of a
grouped conv's backward differ in the last float32 bits, which moves trainability by ~1e-7 relative
(``tests/service/test_az_batched.py`` pins ≤ 1e-4 and Kendall τ = 1). On CPU the path is slower than one
arch at a time (it exists for GPUs, where a group's kernels replace K times as many small launches).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zcscore.proxies.az_nas import (
    BATCH,
    RESOLUTION,
    block_score,
    eigen_entropy,
    rademacher,
    rows_covariance,
    summarize,
)
from zcscore.spaces.nb201 import EDGES, NB201Arch

CHANNELS, CELLS = 16, 5
CONV_OPS = {"nor_conv_3x3": 3, "nor_conv_1x1": 1}


@dataclass
class ConvSpec:
    """One Conv2d of the NB201 network, in module order: its place (``key``) and weight shape."""

    key: tuple[Any, ...]
    shape: tuple[int, int, int, int]


def conv_specs(arch: NB201Arch) -> list[ConvSpec]:
    """Every Conv2d of ``TinyNetwork(arch)`` in construction (= ``model.apply``) order."""
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


def _advance_as_default_init(specs: Sequence[ConvSpec], num_classes: int, width: int) -> None:
    """Consume the torch RNG as building the network does (``reset_parameters`` of each Conv2d, then the Linear)."""
    for s in specs:
        torch.empty(s.shape).uniform_()
    torch.empty(num_classes, width).uniform_()
    torch.empty(num_classes).uniform_()


def _kaiming(shape: Sequence[int]) -> torch.Tensor:
    return nn.init.kaiming_normal_(torch.empty(*shape), mode="fan_in", nonlinearity="relu")


@dataclass
class ArchDraws:
    """One arch's random draws, in the one-arch path's order: conv weights by key, input, Rademacher signs."""

    weights: dict[tuple[Any, ...], torch.Tensor]
    x: torch.Tensor
    signs: list[torch.Tensor]  # blocks 17..1, each of its feature's (B, C, H, W) shape


def feature_shapes(batch: int = BATCH) -> list[tuple[int, int, int, int]]:
    """Shapes of the 18 NB201 cell features (stem, 5 cells, block, 5 cells, block, 5 cells)."""
    out = []
    c, r = CHANNELS, RESOLUTION
    out.append((batch, c, r, r))
    for stage in range(3):
        if stage > 0:
            c, r = 2 * c, r // 2
            out.append((batch, c, r, r))
        out += [(batch, c, r, r)] * CELLS
    return out


def draw(arch: NB201Arch, seed: int, num_classes: int = 10) -> ArchDraws:
    """Seed, advance past the network's default init, and draw what ``az_scores`` draws (CPU generator)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    specs = conv_specs(arch)
    width = CHANNELS * 4
    _advance_as_default_init(specs, num_classes, width)
    weights = {s.key: _kaiming(s.shape) for s in specs}
    _kaiming((num_classes, width))  # the classifier's re-init draw (not a feature)
    x = torch.randn(BATCH, 3, RESOLUTION, RESOLUTION)
    shapes = feature_shapes()
    signs = rademacher([torch.Size(shapes[i]) for i in reversed(range(1, len(shapes)))])
    return ArchDraws(weights, x, signs)


_EXACT: dict[tuple[Any, ...], bool] = {}


def grouped_conv_is_exact(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    groups: int,
    stride: int,
    fmt: torch.memory_format,
    device: torch.device,
) -> bool:
    """Whether a ``groups``-grouped conv of these shapes gives each group the bits of its own conv here.

    Backends pick kernels by shape and layout: on CPU (torch 2.13, one thread) channels-last grouped convs
    match every per-arch NB201 conv, NCHW ones do not for the 3-channel stem and the 64-channel 1x1 convs
    (~1e-5 apart, enough to flip ReLU masks and move trainability by 1e-4). Measured once per shape on random
    data (different kernels disagree on it) and cached for the process.
    """
    key = (x_shape, w_shape, groups, stride, fmt, str(device))
    if key not in _EXACT:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(x_shape, generator=gen).to(device).contiguous(memory_format=fmt)
        w = torch.randn(w_shape, generator=gen).to(device).contiguous(memory_format=fmt)
        pad = w_shape[-1] // 2
        with torch.no_grad():
            whole = F.conv2d(x, w, stride=stride, padding=pad, groups=groups)
            parts = [
                F.conv2d(xa.contiguous(memory_format=fmt), wa, stride=stride, padding=pad)
                for xa, wa in zip(x.chunk(groups, 1), w.chunk(groups, 0))
            ]
        _EXACT[key] = all(torch.equal(a, b) for a, b in zip(whole.chunk(groups, 1), parts))
    return _EXACT[key]


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


class WideNB201:
    """The K archs' NB201 networks (train-mode BN, AZ-NAS weights) as one wide network on ``device``."""

    def __init__(self, archs: Sequence[NB201Arch], draws: Sequence[ArchDraws], device: torch.device, cl: bool) -> None:
        self.archs, self.draws, self.device, self.cl = list(archs), list(draws), device, cl
        self.fmt = torch.channels_last if cl else torch.contiguous_format
        self._bn_args: dict[int, tuple[torch.Tensor, ...]] = {}

    def _lay(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.device, non_blocking=True).contiguous(memory_format=self.fmt)

    def _weight(self, key: tuple[Any, ...], members: Sequence[int]) -> torch.Tensor:
        return self._lay(torch.cat([self.draws[k].weights[key] for k in members]))

    def _conv_bn(self, x: torch.Tensor, w: torch.Tensor, groups: int, stride: int, relu: bool = True) -> torch.Tensor:
        """[ReLU ->] grouped conv -> train-mode BN (weight 1, bias 0), as ``ReLUConvBN`` per arch."""
        if relu:
            x = F.relu(x)
        return self._bn(self._conv(x, w, groups, stride))

    def _conv(self, x: torch.Tensor, w: torch.Tensor, groups: int, stride: int) -> torch.Tensor:
        """The K archs' convs (``same`` padding): one grouped conv where the backend computes it with the
        per-arch conv's bits (:func:`grouped_conv_is_exact`), else one conv per arch on a dense slice."""
        pad = w.shape[-1] // 2
        if groups == 1 or grouped_conv_is_exact(tuple(x.shape), tuple(w.shape), groups, stride, self.fmt, self.device):
            return F.conv2d(x, w, stride=stride, padding=pad, groups=groups)
        outs = [
            F.conv2d(xa.contiguous(memory_format=self.fmt), wa, stride=stride, padding=pad)
            for xa, wa in zip(x.chunk(groups, 1), w.chunk(groups, 0))
        ]
        return torch.cat(outs, 1).contiguous(memory_format=self.fmt)

    def _bn(self, y: torch.Tensor) -> torch.Tensor:
        """Train-mode ``BatchNorm2d`` as the module runs it: affine (1, 0) parameters that take gradients and
        running buffers (torch's CPU backward is ~10x slower without them; the output does not depend on them)."""
        n = y.shape[1]
        if n not in self._bn_args:  # one set per width (train-mode output ignores the running buffers)
            ones, zeros = torch.ones(n, device=self.device), torch.zeros(n, device=self.device)
            self._bn_args[n] = (zeros.clone(), ones.clone(), ones.requires_grad_(), zeros.requires_grad_())
        mean, var, weight, bias = self._bn_args[n]
        return F.batch_norm(y, mean, var, weight, bias, training=True, momentum=0.1, eps=1e-5)

    def _split(self, x: torch.Tensor, c: int) -> torch.Tensor:
        """A free view with an arch axis: ``(B, H, W, K, C)`` channels-last, else ``(B, K, C, H, W)``."""
        b, kc, h, w = x.shape
        if self.cl:
            return x.permute(0, 2, 3, 1).reshape(b, h, w, kc // c, c)
        return x.reshape(b, kc // c, c, h, w)

    def _join(self, v: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`_split` (a view when ``v`` is contiguous)."""
        if self.cl:
            b, h, w, k, c = v.shape
            return v.reshape(b, h, w, k * c).permute(0, 3, 1, 2)
        b, k, c, h, w = v.shape
        return v.reshape(b, k * c, h, w)

    def _take(self, x: torch.Tensor, members: Sequence[int], c: int) -> torch.Tensor:
        """The channels of archs ``members`` (in that order), in the network's layout: one contiguous copy."""
        if list(members) == list(range(x.shape[1] // c)):
            return x
        idx = torch.tensor(list(members), device=self.device)
        return self._join(self._split(x, c).index_select(3 if self.cl else 1, idx))

    def _edge(self, x: torch.Tensor, cell: int, e: int, c: int) -> torch.Tensor:
        """Every arch's op on edge ``e`` of ``cell``, each arch computing its own op, back in arch order."""
        by_op: dict[str, list[int]] = {}
        for k, arch in enumerate(self.archs):
            by_op.setdefault(arch.ops[e], []).append(k)
        pieces, order = [], []
        for op, members in by_op.items():
            sub = self._take(x, members, c)
            if op in CONV_OPS:
                out = self._conv_bn(sub, self._weight(("cell", cell, e), members), len(members), 1)
            elif op == "avg_pool_3x3":
                out = F.avg_pool2d(sub, 3, stride=1, padding=1, count_include_pad=False)
            elif op == "skip_connect":
                out = sub
            else:  # none: x * 0 keeps the graph, as the official Zero op
                out = sub.mul(0.0)
            pieces.append(dense_grad(out.contiguous(memory_format=self.fmt), self.fmt))
            order += members
        if len(pieces) == 1:
            return pieces[0]
        inverse = [0] * len(order)
        for pos, k in enumerate(order):
            inverse[k] = pos
        return self._take(self._join(torch.cat([self._split(p, c) for p in pieces], 3 if self.cl else 1)), inverse, c)

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

    def _res(self, x: torch.Tensor, stage: int, c: int) -> torch.Tensor:
        k = len(self.archs)
        every = range(k)
        a = self._conv_bn(x, self._weight(("res", stage, "a"), every), k, 2)
        b = self._conv_bn(a, self._weight(("res", stage, "b"), every), k, 1)
        down = self._conv(F.avg_pool2d(x, 2, stride=2), self._weight(("res", stage, "down"), every), k, 1)
        return down + b

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The 18 wide cell features of the wide input ``x`` ``(B, K*3, 32, 32)``."""
        k = len(self.archs)
        stem_w = self._weight(("stem",), range(k))
        feats = [self._bn(self._conv(x, stem_w, k, 1))]
        c, cell = CHANNELS, 0
        for stage in range(3):
            if stage > 0:
                feats.append(self._res(feats[-1], stage, c))
                c *= 2
            for _ in range(CELLS):
                feats.append(self._cell(feats[-1], cell, c))
                cell += 1
        return feats


def per_arch_rows(t: torch.Tensor, k: int) -> torch.Tensor:
    """Wide ``(B, K*C, H, W)`` -> ``(K, B*H*W, C)``: each arch's ``rows`` (pixel-major, channel last)."""
    b, kc, h, w = t.shape
    return t.reshape(b, k, kc // k, h, w).permute(1, 0, 3, 4, 2).reshape(k, b * h * w, kc // k)


def per_arch_unshuffled(t: torch.Tensor, k: int, r: int) -> torch.Tensor:
    """Each arch's ``unshuffled_rows`` (reduction factor ``r``): ``(K, B*H/r*W/r, C*r*r)``."""
    b, kc, h, w = t.shape
    c = kc // k
    blocks = t.reshape(b, k, c, h // r, r, w // r, r).permute(1, 0, 3, 5, 2, 4, 6)
    return blocks.reshape(k, -1, c * r * r)


def _entropies(feats: list[torch.Tensor], k: int) -> list[list[float]]:
    """``[arch][feature]`` eigen-entropies; all covariances of one size share one batched ``eigvalsh``."""
    by_size: dict[int, list[tuple[int, torch.Tensor]]] = {}
    for i, f in enumerate(feats):
        x = per_arch_rows(f.detach(), k)
        cov = torch.stack([rows_covariance(x[a]) for a in range(k)])  # per arch: the one-arch kernels, equal bits
        by_size.setdefault(cov.shape[-1], []).append((i, cov))
    out = [[math.nan] * len(feats) for _ in range(k)]
    for items in by_size.values():
        ent = eigen_entropy(torch.cat([cov for _, cov in items])).view(len(items), k).tolist()
        for (i, _), row in zip(items, ent):
            for a in range(k):
                out[a][i] = row[a]
    return out


def _trainability(feats: list[torch.Tensor], signs: list[list[torch.Tensor]], wide: WideNB201) -> list[list[float]]:
    """``[arch][block]`` scores of blocks 17..1: one VJP per block for all archs, one batched ``svdvals``."""
    k = len(wide.archs)
    sigmas, idents = [], []
    for j, i in enumerate(reversed(range(1, len(feats)))):
        g_out = wide._lay(torch.cat([signs[a][j] for a in range(k)], 1))
        (g_in,) = torch.autograd.grad(feats[i], feats[i - 1], grad_outputs=g_out)
        rows_out = per_arch_rows(g_out, k)
        r = g_in.shape[-1] // g_out.shape[-1]
        rows_in = per_arch_rows(g_in, k) if r == 1 else per_arch_unshuffled(g_in, k, r)
        same = rows_in.shape == rows_out.shape
        no = torch.zeros(k, dtype=torch.bool, device=rows_out.device)
        idents.append((rows_in == rows_out).flatten(1).all(1) if same else no)
        mat = torch.bmm(rows_in.transpose(1, 2), rows_out) / rows_out.shape[1]
        if mat.shape[1] < mat.shape[2]:
            mat = mat.transpose(1, 2)
        ok = torch.isfinite(mat).flatten(1).all(1)
        safe = torch.where(ok[:, None, None], mat, torch.zeros((), dtype=mat.dtype, device=mat.device))
        sigmas.append(torch.where(ok, torch.linalg.svdvals(safe).max(dim=1).values, math.nan))
    sig = torch.stack(sigmas, 1).float().cpu().tolist()  # one device sync for the whole group
    ident = torch.stack(idents, 1).cpu().tolist()
    return [[-math.inf if d else block_score(s) for s, d in zip(sig[a], ident[a])] for a in range(k)]


def az_scores_batched(
    archs: Sequence[NB201Arch],
    seed: int,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    num_classes: int = 10,
) -> list[dict[str, Any]]:
    """``az_nas.az_scores`` of each NB201 arch (as the engine runs it), the K archs in one wide pass."""
    device = torch.device(device)
    draws = [draw(a, seed, num_classes) for a in archs]
    wide = WideNB201(archs, draws, device, channels_last)
    x = wide._lay(torch.cat([d.x for d in draws], 1)).requires_grad_(True)
    feats = wide.features(x)
    k = len(archs)
    ents = _entropies(feats, k)
    blocks = _trainability(feats, [d.signs for d in draws], wide)
    return [summarize(ents[a], blocks[a]) for a in range(k)]
