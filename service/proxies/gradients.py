"""ZiCo and xi-GSNR from one shared pass of per-batch weight gradients on real data (``Pass.REAL_GRADS``).

The pass runs ``batches`` forward/backward passes (batch ``j`` = rows ``64j .. 64j+63``, mean CE loss,
default init, train-mode BN, as the engine restores it) and keeps the gradient ``g_j`` of every
Conv2d/Linear weight (no BN parameters, no biases) in one flat ``(batches, n_weights)`` buffer on the device.

* ZiCo's NB201 port (AZ-NAS ``compute_zico_score.py``) zeroes the grads before each batch: it reads ``g_0, g_1``.
* xi-GSNR's official loop (``run_gsnr.py``) never zeroes them, so it reads the cumulative gradients
  ``G_j = G_{j-1} + g_j``. Autograd accumulation (``grad += g_j`` in float32) is exactly that running sum,
  so both proxies are served by one pass; asking for both costs what xi-GSNR alone costs.

Numerics follow the official NumPy float32 code: element-wise steps are bit-identical (means and variances
as row sums then a division, square roots rounded from float64 as NumPy's correctly rounded ``sqrt``), the
per-layer element sums are float32 torch reductions (NumPy sums pairwise, so the last bits may differ) and
the per-layer ``log``/accumulation runs in NumPy float32 as the official code does. Gradients come from
``torch.autograd.grad`` on the weights, bit-identical to ``.backward()`` but skipping BN/bias grads.

Choices beyond the official code (which only ever sees NB201): a module output that is a tuple/list is
taken as ``(..., logits)`` (the xautodl ``(pooled, logits)`` convention); a weight whose gradient is
``None`` in batch 0 (unused layer) is left out, as the official code leaves it out of its dict, and a later
``None`` counts as a zero gradient; a loss that does not require grad (no trainable weight reached) gives
all-``None`` gradients and so the sentinel 0.

Layout and device move ZiCo, not the ranking protocol: it divides by ``|g_0 - g_1|``, so last-bit changes of
the gradients move it by up to a few %. Against the official CPU scores (10 canonical archs,
wave 1; ``zcscore bench --compare`` re-runs it): contiguous CPU within 3e-5 (xi-GSNR 1e-7); channels_last CPU
within 2e-2 (xi-GSNR 5e-4); CUDA (cuDNN, TF32 convolutions by default) within 4e-2 (xi-GSNR 5e-4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zcscore.proxies.catalog import Pass, get_spec
from zcscore.proxies.registry import pass_runner, proxy

if TYPE_CHECKING:  # the engine imports the registry: no runtime import back
    from zcscore.engine import ArchContext, PassOutputs

BATCH_SIZE = 64
XI = 1e-8  # xi-GSNR's ``random_xi`` for NB201 (README command and paper)


@dataclass(frozen=True)
class RealGrads:
    """Per-batch weight gradients ``grads[j]`` (flat, layer after layer) of the Conv2d/Linear layers."""

    grads: torch.Tensor  # (batches, n_weights), on the device
    names: tuple[str, ...]
    sizes: tuple[int, ...]
    present: tuple[bool, ...]  # gradient defined in batch 0 (the official dict keys)

    @property
    def batches(self) -> int:
        """How many batches were run."""
        return int(self.grads.shape[0])

    def cumulative(self, batches: int) -> torch.Tensor:
        """The never-zeroed ``.grad`` after each of the first ``batches``: ``G_j = G_{j-1} + g_j`` (float32)."""
        g = self.grads[:batches]
        out = torch.empty_like(g)
        out[0].copy_(g[0])
        for j in range(1, batches):
            torch.add(out[j - 1], g[j], out=out[j])
        return out

    def layer_values(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Split a ``(n_weights,)`` tensor into per-layer pieces."""
        return list(torch.split(flat, list(self.sizes)))


def _logits(out: Any) -> torch.Tensor:
    """Logits of a module output: the tensor itself, or the last item of a tuple/list."""
    logits: torch.Tensor = out[-1] if isinstance(out, (tuple, list)) else out
    return logits


def _weights(net: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Trainable Conv2d/Linear weights, in ``named_modules`` order (the official dict order)."""
    found = []
    for name, mod in net.named_modules():
        weight = getattr(mod, "weight", None) if isinstance(mod, (nn.Conv2d, nn.Linear)) else None
        if isinstance(weight, torch.Tensor) and weight.requires_grad:
            found.append((name, weight))
    return found


@pass_runner(Pass.REAL_GRADS)
def real_grads_pass(ctx: ArchContext, batches: int = 2) -> RealGrads:
    """Run ``batches`` real batches (CE, default init, train mode); keep each batch's weight gradients."""
    net: nn.Module = ctx.net
    named = _weights(net)
    weights = [w for _, w in named]
    sizes = tuple(w.numel() for w in weights)
    dtype = weights[0].dtype if weights else torch.float32
    buf = torch.zeros((batches, sum(sizes)), dtype=dtype, device=ctx.device)
    present: tuple[bool, ...] = ()
    grads: tuple[torch.Tensor | None, ...]
    for j in range(batches):
        x, y = ctx.data.batch(j, BATCH_SIZE)
        x, y = ctx.to_device(x), y.to(ctx.device, non_blocking=True)
        loss = F.cross_entropy(_logits(net(x)), y)
        if weights and loss.requires_grad:
            grads = torch.autograd.grad(loss, weights, allow_unused=True)
        else:
            grads = (None,) * len(weights)
        if j == 0:
            present = tuple(g is not None for g in grads)
        offset = 0
        for g, n in zip(grads, sizes):
            if g is not None:  # buffer rows start at zero: a None gradient stays a zero gradient
                buf[j, offset : offset + n].view(g.shape).copy_(g)
            offset += n
    return RealGrads(buf, tuple(name for name, _ in named), sizes, present)


def _mean_var(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``np.mean(g, 0)`` and ``np.var(g, 0)`` with NumPy's float32 operation order (two-pass)."""
    n = g.shape[0]
    mean = g.sum(0) / n
    dev = g - mean
    return mean, (dev * dev).sum(0) / n


def _to_numpy(values: list[torch.Tensor]) -> np.ndarray:
    """Stack per-layer scalars and bring them to the host in one transfer."""
    if not values:
        return np.zeros(0, dtype=np.float32)
    return torch.stack(values).cpu().numpy()


def zico_score(rg: RealGrads, batches: int = 2) -> float:
    """ZiCo: sum over layers of ``log(sum_{std>0} mean|g|/std(g))`` over the first ``batches``; 0 if none."""
    if rg.batches < batches:
        raise ValueError(f"zico needs {batches} batches, the pass ran {rg.batches}")
    g = rg.grads[:batches]
    mean_abs = g.abs().sum(0) / batches
    _, var = _mean_var(g)
    std = var.double().sqrt().to(var.dtype)  # correctly rounded, as NumPy's float32 sqrt
    ratio = torch.where(std != 0, mean_abs / std, torch.zeros((), dtype=g.dtype, device=g.device))
    sums = _to_numpy([s.sum() for s in rg.layer_values(ratio)])
    total: Any = 0
    for used, s in zip(rg.present, sums):
        if used and s != 0:
            total += np.log(s)
    return float(total)


def xi_gsnr_score(rg: RealGrads, batches: int = 8, xi: float = XI) -> float:
    """xi-GSNR: sum over layers of ``sum mean(G)^2/(var(G)+xi)`` over cumulative grads (all-zero var: 0)."""
    if rg.batches < batches:
        raise ValueError(f"xi_gsnr needs {batches} batches, the pass ran {rg.batches}")
    mean, var = _mean_var(rg.cumulative(batches))
    ratio = mean * mean / (var + xi)
    pieces = zip(rg.layer_values(ratio), rg.layer_values(var))
    stats = _to_numpy([torch.stack([r.sum(), (v != 0).any().to(r.dtype)]) for r, v in pieces])
    total: Any = 0
    for used, (s, any_var) in zip(rg.present, stats):
        if used and any_var:
            total += s
    return float(total)


@proxy("zico")
def zico(outputs: PassOutputs) -> float:
    """ZiCo (Li et al., ICLR 2023; NB201 port in AZ-NAS): per-batch grads of 2 real batches."""
    return zico_score(outputs[Pass.REAL_GRADS], get_spec("zico").pass_args["batches"])


@proxy("xi_gsnr")
def xi_gsnr(outputs: PassOutputs) -> float:
    """xi-GSNR (Sun et al., ICCV 2023): never-zeroed grads of 8 real batches, xi = 1e-8."""
    return xi_gsnr_score(outputs[Pass.REAL_GRADS], get_spec("xi_gsnr").pass_args["batches"])
