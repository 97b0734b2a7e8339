"""AZ-NAS on a group of NB201 archs in one kernel stream: the one-arch protocol, K archs side by side.

The network is :class:`~zcscore.proxies.nb201_wide.WideNB201` (the K archs side by side along channels).

Per arch, exactly as the one-arch path (``az_nas.az_scores`` after the engine's "seed, build, restore"):
the torch RNG is seeded, advanced by the default init of the network (drawn as the modules draw it, no
module built), then the kaiming fan-in weights of every Conv2d/Linear are drawn
in module order, then the Gaussian 64x3x32x32 input, then the Rademacher signs of blocks 17..1. The
covariances use the one-arch kernels per arch; ``eigvalsh``, the VJP matrices and ``svdvals`` run batched.

Equality with the one-arch path (CPU, measured): every component bitwise equal in both layouts
(``tests/service/test_batched.py``; the contract is ≤ 1e-4 relative and Kendall τ = 1: a last-bit difference
in a feature can flip a ReLU mask and move trainability by ~1e-4, which is why grouped convs are used only
where they are exact). On CPU the path is slower than one arch at a time (it exists for GPUs, where a
group's kernels replace K times as many small launches).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
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
from zcscore.proxies.nb201_wide import (
    CELLS,
    CHANNELS,
    WIDTH,
    ArchParams,
    WideNB201,
    conv_specs,
    default_params,
    wide_input,
)
from zcscore.spaces.nb201 import NB201Arch


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
    default_params(arch, seed, num_classes)  # seeds, then draws what building the network draws
    weights = {s.key: _kaiming(s.shape) for s in conv_specs(arch)}
    _kaiming((num_classes, WIDTH))  # the classifier's re-init draw (not a feature)
    x = torch.randn(BATCH, 3, RESOLUTION, RESOLUTION)
    shapes = feature_shapes()
    signs = rademacher([torch.Size(shapes[i]) for i in reversed(range(1, len(shapes)))])
    return ArchDraws(weights, x, signs)


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
        g_out = wide.lay(torch.cat([signs[a][j] for a in range(k)], 1))
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
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    params = [ArchParams(d.weights).to(device, fmt, requires_grad=False) for d in draws]
    wide = WideNB201(archs, params, device, channels_last)
    x = wide.lay(wide_input([d.x for d in draws])).requires_grad_(True)
    feats = wide.features(x)
    k = len(archs)
    ents = _entropies(feats, k)
    blocks = _trainability(feats, [d.signs for d in draws], wide)
    return [summarize(ents[a], blocks[a]) for a in range(k)]
