"""The seed proxies' passes for a group of NB201 archs at once (``Engine(batch=K)``, ``--batch K``).

Each runner returns, per arch, the object the one-arch pass returns (so the proxies read it unchanged), from
one :class:`~zcscore.proxies.nb201_wide.WideNB201` pass over the K archs:

* ``Pass.AZ`` (AZ-NAS): :mod:`zcscore.proxies.az_nb201_batched`.
* ``Pass.REAL_GRADS`` (ZiCo, xi-GSNR): default init, the same real batches for every arch (the wide input is
  the batch repeated K times), one backward of the sum of the K mean CE losses (the sum's backward hands
  each arch exactly its own loss's gradient) per batch; a :class:`RealGrads` per arch.
* ``Pass.INTRAIN``: default init; per arch the RNG restored to "seeded, built", then its Gaussian input and
  random labels; covariance statistics of every conv/linear output per arch (the same rows, so the same
  bits), one backward of the summed losses; an :class:`InTrainStats` per arch.
* ``Pass.EPSINAS``: the two constant-weight forwards of the shared batch of 256 (NCHW, batch-statistic BN,
  the 1-unit head), without gradients; the two output vectors per arch.

Random draws and parameters are made on the CPU generator exactly as the engine's "seed, build, restore"
makes them (:func:`~zcscore.proxies.nb201_wide.default_params`), and the wide network computes each arch with
the per-arch kernels' bits where it groups work (:func:`~zcscore.proxies.nb201_wide.grouped_conv_is_exact`).
``tests/service/test_batched.py`` checks every seed proxy against the one-arch path (≤ 1e-4 relative, τ = 1).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from zcscore.proxies.catalog import Pass
from zcscore.proxies.epsinas import BATCH_ROWS, output_vector
from zcscore.proxies.gradients import BATCH_SIZE, RealGrads
from zcscore.proxies.intrain import (
    BATCH,
    RESOLUTION,
    CovarianceStats,
    InTrainStats,
    gradient_health,
    participation_ratio,
)
from zcscore.proxies.nb201_wide import (
    WIDTH,
    ArchParams,
    Key,
    WideNB201,
    conv_specs,
    default_params,
    module_name,
    wide_input,
)
from zcscore.spaces.nb201 import NB201Arch

if TYPE_CHECKING:
    from zcscore.engine import ScoreConfig

BatchedRunner = Callable[[Sequence[NB201Arch], "ScoreConfig", dict[str, Any]], list[Any]]


def _fmt(cl: bool) -> torch.memory_format:
    return torch.channels_last if cl else torch.contiguous_format


def _layer_keys(arch: NB201Arch) -> list[Key]:
    """Conv2d keys then the classifier: the Conv2d/Linear modules of ``TinyNetwork`` in ``named_modules`` order."""
    return [s.key for s in conv_specs(arch)] + [("classifier",)]


def _layer_weight(p: ArchParams, key: Key) -> torch.Tensor:
    if key == ("classifier",):
        assert p.classifier is not None
        return p.classifier[0]
    return p.convs[key]


def real_grads_batched(
    archs: Sequence[NB201Arch], seed: int, device: torch.device, cl: bool, num_classes: int, data: Any, batches: int = 2
) -> list[RealGrads]:
    """``gradients.real_grads_pass`` of each arch: per-batch Conv2d/Linear weight gradients on real batches."""
    params = [default_params(a, seed, num_classes)[0].to(device, _fmt(cl), requires_grad=True) for a in archs]
    wide = WideNB201(archs, params, device, cl, grads=True)
    keys = [_layer_keys(a) for a in archs]
    weights = [[_layer_weight(p, key) for key in ks] for p, ks in zip(params, keys)]
    sizes = [tuple(w.numel() for w in ws) for ws in weights]
    bufs = [torch.zeros((batches, sum(s)), device=device) for s in sizes]
    present: list[tuple[bool, ...]] = []
    for j in range(batches):
        x, y = data.batch(j, BATCH_SIZE)
        y = y.to(device, non_blocking=True)
        logits = wide.logits(wide.lay(wide_input([x] * len(archs))))
        loss = torch.stack([F.cross_entropy(out, y) for out in logits]).sum()
        flat = [w for ws in weights for w in ws]
        grads = iter(torch.autograd.grad(loss, flat, allow_unused=True))
        for a, ws in enumerate(weights):
            mine = [next(grads) for _ in ws]
            if j == 0:
                present.append(tuple(g is not None for g in mine))
            offset = 0
            for g, n in zip(mine, sizes[a]):
                if g is not None:
                    bufs[a][j, offset : offset + n].view(g.shape).copy_(g)
                offset += n
    return [
        RealGrads(buf, tuple(module_name(k) for k in ks), s, pr) for buf, ks, s, pr in zip(bufs, keys, sizes, present)
    ]


def intrain_batched(
    archs: Sequence[NB201Arch], seed: int, device: torch.device, cl: bool, num_classes: int
) -> list[InTrainStats]:
    """``intrain.intrain_pass`` of each arch: PR of every conv/linear output and h of every parameter tensor."""
    params, xs, labels = [], [], []
    for a in archs:
        p, rng_after_build = default_params(a, seed, num_classes)
        torch.set_rng_state(rng_after_build)  # the engine's restore: "seeded, then freshly built"
        random.seed(seed)
        np.random.seed(seed)
        xs.append(torch.randn(BATCH, 3, RESOLUTION, RESOLUTION))
        labels.append(torch.randint(0, num_classes, (BATCH,)))  # drawn after the forward, which draws nothing
        params.append(p.to(device, _fmt(cl), requires_grad=True))
    stats: list[dict[Key, CovarianceStats]] = [{} for _ in archs]

    def on_conv(key: Key, members: Sequence[int], out: torch.Tensor) -> None:
        for part, k in zip(out.detach().chunk(len(members), 1), members):
            stats[k].setdefault(key, CovarianceStats()).add(part)

    wide = WideNB201(archs, params, device, cl, grads=True, on_conv=on_conv)
    logits = wide.logits(wide.lay(wide_input(xs)))
    for k, out in enumerate(logits):
        stats[k].setdefault(("classifier",), CovarianceStats()).add(out)
    loss = torch.stack([F.cross_entropy(out, y.to(device)) for out, y in zip(logits, labels)]).sum()
    tensors = [p.tensors() for p in params]
    grads = iter(torch.autograd.grad(loss, [t for ts in tensors for t in ts], allow_unused=True))
    results = []
    for k, (arch, p, ts) in enumerate(zip(archs, params, tensors)):
        weight_ids = {id(_layer_weight(p, key)) for key in _layer_keys(arch)}
        h, hu, is_w = [], [], []
        for t in ts:
            g = next(grads)
            if g is None:
                continue
            h.append(gradient_health(g))
            hu.append(gradient_health(g, unbiased=False))
            is_w.append(id(t) in weight_ids)
        pr = [participation_ratio(stats[k][key].covariance()) for key in _layer_keys(arch)]
        results.append(InTrainStats(pr, h, hu, is_w))
    return results


def epsinas_batched(
    archs: Sequence[NB201Arch], device: torch.device, data: Any, weights: Sequence[float]
) -> list[list[np.ndarray]]:
    """``epsinas.epsinas_pass`` of each arch: the 1-unit outputs under each constant weight (NCHW, no grads)."""
    x = data.rows(*BATCH_ROWS)[0].to(device)
    outs: list[list[np.ndarray]] = [[] for _ in archs]
    with torch.inference_mode():
        xw = wide_input([x] * len(archs))
        for w in weights:
            params = [_constant_params(a, w, device) for a in archs]
            wide = WideNB201(archs, params, device, cl=False, running_stats=False)
            for k, out in enumerate(wide.logits(xw)):
                outs[k].append(output_vector(out))
    return outs


def _constant_params(arch: NB201Arch, w: float, device: torch.device) -> ArchParams:
    """epsinas' init: every weight (BN gamma included) ``w``, every bias 0."""
    convs = {s.key: torch.full(s.shape, w, device=device) for s in conv_specs(arch)}
    bns = {}
    for s in conv_specs(arch):
        if s.key[-1] != "down":
            bns[s.key] = (torch.full((s.shape[0],), w, device=device), torch.zeros(s.shape[0], device=device))
    bns[("lastact",)] = (torch.full((WIDTH,), w, device=device), torch.zeros(WIDTH, device=device))
    head = (torch.full((1, WIDTH), w, device=device), torch.zeros(1, device=device))  # the 1-unit head
    return ArchParams(convs, bns, head)


def _az(archs: Sequence[NB201Arch], config: ScoreConfig, _args: dict[str, Any]) -> list[Any]:
    from zcscore.proxies.az_nb201_batched import az_scores_batched

    return az_scores_batched(archs, config.seed, config.device, config.use_channels_last(), config.num_classes)


def _real_grads(archs: Sequence[NB201Arch], config: ScoreConfig, args: dict[str, Any]) -> list[Any]:
    device, cl = torch.device(config.device), config.use_channels_last()
    return real_grads_batched(archs, config.seed, device, cl, config.num_classes, config.real_data(), **args)


def _intrain(archs: Sequence[NB201Arch], config: ScoreConfig, _args: dict[str, Any]) -> list[Any]:
    device, cl = torch.device(config.device), config.use_channels_last()
    return intrain_batched(archs, config.seed, device, cl, config.num_classes)


def _epsinas(archs: Sequence[NB201Arch], config: ScoreConfig, _args: dict[str, Any]) -> list[Any]:
    from zcscore.spaces import get_space

    weights = get_space("nb201").epsinas_weights
    return epsinas_batched(archs, torch.device(config.device), config.real_data(), weights)


BATCHED: dict[Pass, BatchedRunner] = {
    Pass.AZ: _az,
    Pass.REAL_GRADS: _real_grads,
    Pass.INTRAIN: _intrain,
    Pass.EPSINAS: _epsinas,
}


def batched_runner(kind: Pass, config: ScoreConfig) -> BatchedRunner | None:
    """The NB201 batched runner of pass ``kind`` under ``config``, or None (custom feature/layer modules)."""
    if kind == Pass.AZ and config.feature_modules is not None:
        return None
    if kind == Pass.INTRAIN and config.layer_modules is not None:
        return None
    return BATCHED.get(kind)
