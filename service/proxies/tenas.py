"""TE-NAS (Chen et al., ICLR 2021) as a per-arch score: AZ-NAS's NB201 port, two components and a rank sum.

The official TE-NAS prunes a supernet; AZ-NAS ports it to single networks in
``NB201/ZeroShotProxy/compute_te_nas_score.py`` (@ 5e6683a) and combines the two terms by ranks in
``NB201/tss_general.ipynb``. Faithful to that port, on our networks:

* ``tenas_ntk`` (``Pass.TENAS_NTK``): default init (no re-init), train-mode BN, one real batch of 64
  (rows 0..63; the port takes ``next(iter(trainloader))``). **One** forward of the whole batch, then for
  each sample ``i`` the gradient of ``sum_k logits[i, k]`` (``logit[i:i+1].backward(ones)``, graph
  retained) with respect to every parameter whose **name contains** ``'weight'`` (conv, BN gamma, linear;
  no biases) and has a gradient, concatenated in ``named_parameters`` order. The gradient of sample ``i``
  flows through the batch-statistics BN, so it depends on the other samples, as in the official code;
  it is computed with ``torch.autograd.grad`` and a one-hot ``grad_outputs`` (the tensor the slice's
  backward builds), one backward per sample: a vmapped backward (``is_grads_batched``) gives bit-identical
  gradients on CPU but is about 2x slower there. ``NTK = G Gᵀ`` (float32), ``torch.linalg.eigh``,
  ``cond = λ_max / λ_min``, ``np.nan_to_num(cond, nan=1e5)`` (so ``+inf`` becomes ``1.8e308``), and
  ``tenas_ntk = -cond``. A negative ``λ_min`` (float noise of a singular NTK) gives a negative ``cond``
  and so a large positive score: the official quirk, kept. No weight gradient at all gives an all-zero
  NTK (0/0: ``-1e5``; the official ``torch.cat([])`` raises); an ``eigh`` failure counts as NaN (``-1e5``).
* ``tenas_lr`` (``Pass.TENAS_LR``): ``randn(64, 3, R, R)`` on the CPU generator (the port draws it on the
  GPU after the NTK, which draws nothing), no grad, train mode; forward hooks on every ``nn.ReLU`` whose
  input is 4-D (``ReLU6`` is not an ``nn.ReLU``: MobileNetV2's activations are not counted, as in the
  official code); the sign of each output is a 0/1 unit, all units of a sample form its code, and
  ``n_LR = sum_i 1 / #{j : code_j = code_i}``. The port computes the Hamming distances with fp16 matmuls
  and sums the reciprocals in float32; here codes are packed into bytes and compared exactly, and the sum
  is evaluated exactly: it equals the number of distinct codes (an integer in ``1..64``), where the port
  can be off by float32 rounding (e.g. 63.99999). Codes are taken when each ReLU runs (the port reads the
  kept outputs after the forward: the same unless a later in-place op rewrites a ReLU output). No hooked
  ReLU: every code is empty, all samples share one region, ``n_LR = 1`` (the port raises); non-finite
  activations give NaN (as the port's NaN matmul).
* ``tenas`` (population): ``rankdata(tenas_ntk) + rankdata(tenas_lr)`` over the scored set.

Differences from the official per-arch runs: our net is xautodl's (as AZ-NAS's), our real batch is rows
0..63 (the port's loader is shuffled), and the Gaussian batch is a CPU draw: seed-level noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from zcscore.proxies.catalog import Pass
from zcscore.proxies.features import relu_outputs
from zcscore.proxies.registry import pass_runner, proxy

if TYPE_CHECKING:  # the engine imports the registry: no runtime import back
    from zcscore.engine import ArchContext, PassOutputs

BATCH, RESOLUTION = 64, 32
NAN_CONDITION = 1e5  # the port's np.nan_to_num(..., nan=100000.0)
_BIT_WEIGHTS = (128, 64, 32, 16, 8, 4, 2, 1)


def _logits(out: Any) -> torch.Tensor:
    """Logits of a module output: the tensor itself, or the last item of a tuple/list (xautodl's ``[1]``)."""
    logits: torch.Tensor = out[-1] if isinstance(out, (tuple, list)) else out
    return logits


def per_sample_weight_grads(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``G[i]`` = gradient of ``sum(logits[i])`` over the ``*weight*`` parameters, after one batch forward.

    Shape ``(B, n_weights)`` (``(B, 0)`` when no weight gets a gradient), float32 on ``x``'s device.
    """
    weights = [p for name, p in net.named_parameters() if "weight" in name and p.requires_grad]
    logits = _logits(net(x))
    b = x.shape[0]
    if not weights or not logits.requires_grad:
        return torch.zeros((b, 0), device=x.device)
    present: list[bool] = []
    buf: torch.Tensor | None = None
    for i in range(b):
        onehot = torch.zeros_like(logits)
        onehot[i] = 1.0
        grads = torch.autograd.grad(logits, weights, grad_outputs=onehot, retain_graph=i < b - 1, allow_unused=True)
        if buf is None:
            present = [g is not None for g in grads]
            n = sum(g.numel() for g in grads if g is not None)
            buf = torch.zeros((b, n), dtype=logits.dtype, device=x.device)
        offset = 0
        for g, used in zip(grads, present):
            if not used:
                continue
            n = g.numel() if g is not None else 0
            if g is not None:  # a weight unused by this sample only: zeros (the rows keep one layout)
                buf[i, offset : offset + n].view(g.shape).copy_(g)
            offset += n
    assert buf is not None
    return buf


def ntk_condition(grads: torch.Tensor) -> float:
    """``λ_max / λ_min`` of ``G Gᵀ`` (float32 ``eigh``, ascending), NaN if ``eigh`` fails."""
    ntk = torch.mm(grads, grads.t())
    try:
        eig = torch.linalg.eigh(ntk).eigenvalues
    except RuntimeError:  # non-finite NTK: LAPACK does not converge
        return math.nan
    return float((eig[-1] / eig[0]).item())


def ntk_score(cond: float) -> float:
    """``-np.nan_to_num(cond, nan=1e5)``: NaN -> -1e5, ±inf -> ∓1.8e308 (NumPy's defaults)."""
    return -float(np.nan_to_num(cond, nan=NAN_CONDITION))


def _pack(code: torch.Tensor) -> torch.Tensor:
    """``(B, U)`` bool -> ``(B, ceil(U/8))`` uint8, 8 units a byte (zero-padded)."""
    b, u = code.shape
    pad = (-u) % 8
    if pad:
        code = torch.cat([code, torch.zeros((b, pad), dtype=torch.bool, device=code.device)], 1)
    weights = torch.tensor(_BIT_WEIGHTS, dtype=torch.uint8, device=code.device)
    return (code.view(b, -1, 8).to(torch.uint8) * weights).sum(-1, dtype=torch.uint8)


def relu_codes(net: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, bool, int]:
    """Packed sign codes of every 4-D-input ``nn.ReLU`` output (one forward, no grad), a finiteness flag and
    the number of units."""
    b = x.shape[0]
    parts: list[torch.Tensor] = []
    finite = [True]
    units = [0]

    def keep(out: torch.Tensor) -> None:
        flat = out.detach().reshape(b, -1)
        if not bool(torch.isfinite(flat).all()):
            finite[0] = False
        parts.append(_pack(flat > 0))
        units[0] += flat.shape[1]

    relu_outputs(net, x, keep)
    if not parts:
        return np.zeros((b, 0), dtype=np.uint8), True, 0
    return torch.cat(parts, 1).cpu().numpy(), finite[0], units[0]


def linear_regions(codes: np.ndarray) -> float:
    """``sum_i 1/#{j: code_j = code_i}`` evaluated exactly: the number of distinct rows of ``codes``."""
    if codes.shape[0] == 0:
        return 0.0
    return float(len({row.tobytes() for row in codes}))


@pass_runner(Pass.TENAS_NTK)
def tenas_ntk_pass(ctx: ArchContext) -> dict[str, float]:
    """Real rows 0..63, default init, train mode: the NTK condition number."""
    x, _ = ctx.data.batch(0, BATCH)
    ctx.net.train()
    grads = per_sample_weight_grads(ctx.net, ctx.to_device(x))
    cond = ntk_condition(grads)
    return {"cond": cond, "n_weights": float(grads.shape[1])}


def lr_score(net: nn.Module, device: torch.device, input_shape: Sequence[int], channels_last: bool = False) -> float:
    """``randn(64, *input_shape)`` (CPU generator), train mode: TE-NAS linear regions (NaN if non-finite)."""
    net.train()
    x = torch.randn(BATCH, *input_shape).to(device)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    codes, finite, _ = relu_codes(net, x)
    return linear_regions(codes) if finite else math.nan


@pass_runner(Pass.TENAS_LR)
def tenas_lr_pass(ctx: ArchContext) -> float:
    """Gaussian 64 x the space's input, default init, train mode: the number of linear regions."""
    shape = ctx.space.input_shape_for(ctx.arch) if ctx.space is not None else (3, RESOLUTION, RESOLUTION)
    return lr_score(ctx.net, ctx.device, shape, ctx.channels_last)


@proxy("tenas_ntk")
def tenas_ntk(outputs: PassOutputs) -> tuple[float, dict[str, float]]:
    """TE-NAS NTK term: ``-cond(NTK)`` (higher is better; NaN condition -> -1e5)."""
    out: dict[str, float] = outputs[Pass.TENAS_NTK]
    return ntk_score(out["cond"]), {"condition": out["cond"]}


@proxy("tenas_lr")
def tenas_lr(outputs: PassOutputs) -> float:
    """TE-NAS linear-region term: distinct ReLU sign patterns over 64 Gaussian samples (higher is better)."""
    value: float = outputs[Pass.TENAS_LR]
    return value
