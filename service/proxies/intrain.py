"""InTrain (Zhou et al., CVPR 2026, arXiv 2606.18676): intrinsic trainability, plus its paper ablations.

No official code exists; this is a literal reading of the paper (Sec. 3 and 4.2). One pass serves all four
proxies: one forward with covariance hooks and one backward of the mean cross-entropy.

* Input: 64 images 3x64x64 ~ N(0,1) drawn on the CPU generator right after the engine's restore, then
  random labels ``randint(0, K)`` on the same generator (K = output width), moved to the device.
* Capacity ``gamma = sum_l log PR(C_l)``, ``PR = (tr C)^2 / tr(C^2)``, ``C_l`` the centred covariance of
  layer l's output over channels (N,C,H,W -> N*H*W x C), divided by N_eff, plus ``1e-10 * I`` (eq. 3).
  Traces are closed form (``tr C^2 = ||C||_F^2``), no eigendecomposition; hooks keep only C x C sums.
* Resilience ``o = sum_i min(1, std(g_i) / (max|g_i| + 1e-10))`` over parameter tensors with a gradient.
* ``intrain = gamma * (1 + o) / log(L + 1)`` with L = number of captured layers (eq. 8);
  ``intrain_pr = gamma``, ``intrain_grad = o``, ``intrain_add = gamma + o`` (Sec. 3.4 writes the additive
  form as "gamma + o", without the depth normaliser; ranking by ``(gamma + o)/log(L+1)`` is also reported).

Choices the paper leaves open, each decided by Kendall tau vs ``nb201.csv:cifar10_test`` on 80 NB201 archs
(``benchmarks/intrain_ablation.py``, ``benchmarks/reports/intrain_ablation/``; tau SE ~0.05). Paper: I 0.669,
PR-only 0.61, grad-only 0.63, additive 0.59. Ours, chosen protocol: I 0.686 (rho 0.864 vs the paper's 0.857),
PR-only 0.633, grad-only 0.583, gamma + o 0.665, (gamma + o)/log(L+1) 0.680.

* layers = every ``Conv2d``/``Linear`` output (L varies with the arch). Alternative, stem + 17 cell/block
  outputs (L = 18): I 0.716 but PR-only 0.488, far from the paper's 0.61.
* BN in train mode (batch statistics). Eval mode with fresh running stats: I 0.633, PR 0.518, grad 0.496.
* default PyTorch init. Kaiming-normal fan_in re-init: I 0.695, PR 0.640, grad 0.597, add 0.672.
* o over every parameter tensor (BN affine and biases included, the paper's "all parameters").
  Conv/Linear weights only: I 0.690, grad 0.593, add 0.640.
* unbiased std (``torch.std``'s default; a 1-element tensor counts h = 0). Population std: I 0.687.

Numerics: train-mode BN backward cancels heavily, so h moves by ~1 % per tensor between memory layouts
(I by ~0.2 %); PR is stable to 1e-5. Degenerate layers: a layer whose output is constant (e.g. behind an
all-zero cell) has ``C = 1e-10 I`` and PR = C (its channel count), as the paper's ridge implies, and its
parameters get h = 0; such nets score finite, low values (fewer live layers, o near 0). Sentinel: NaN for
every InTrain proxy when activations or gradients are not finite, or when no layer was captured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from zcscore.proxies.catalog import Pass
from zcscore.proxies.features import feature_modules
from zcscore.proxies.registry import pass_runner, proxy

if TYPE_CHECKING:  # the engine imports the registry: no runtime import back
    from zcscore.engine import ArchContext, PassOutputs

BATCH = 64
RESOLUTION = 64
RIDGE = 1e-10
GRAD_EPS = 1e-10


@dataclass
class CovarianceStats:
    """Running channel statistics of one layer's outputs: count, mean and centred cross-product (float64).

    Each call centres its own rows in float32 (one GEMM), then merges with Chan's parallel update, so
    nothing but a C x C matrix is kept and large means never cancel.
    """

    n: int = 0
    mean: torch.Tensor | None = None
    m2: torch.Tensor | None = None

    def add(self, out: torch.Tensor) -> None:
        """Accumulate one output tensor (N,C,...) as N*prod(...) samples of C channels."""
        x = out.detach()
        rows = x.movedim(1, -1).reshape(-1, x.shape[1]) if x.dim() > 2 else x.reshape(x.shape[0], -1)
        rows = rows.float()
        nb = rows.shape[0]
        shift = rows.mean(0)  # float32 pairwise mean: its rounding changes M2 only at second order (~1e-14)
        centred = rows - shift
        m2_b = (centred.T @ centred).double()
        mean_b = shift.double()
        if self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = nb, mean_b, m2_b
            return
        n = self.n + nb
        delta = mean_b - self.mean
        self.m2 = self.m2 + m2_b + torch.outer(delta, delta) * (self.n * nb / n)
        self.mean = self.mean + delta * (nb / n)
        self.n = n

    def covariance(self, ridge: float = RIDGE) -> torch.Tensor:
        """Centred covariance ``(X - mean)^T (X - mean) / N + ridge * I``."""
        assert self.m2 is not None
        cov = self.m2 / self.n
        return cov + ridge * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)


def participation_ratio(cov: torch.Tensor) -> float:
    """``(tr C)^2 / tr(C^2)`` of a symmetric matrix (eq. 1); NaN if not finite or tr(C^2) == 0."""
    tr = torch.diagonal(cov).sum()
    tr2 = (cov * cov).sum()
    if not (torch.isfinite(tr) and torch.isfinite(tr2)) or float(tr2) == 0.0:
        return math.nan
    return float(tr * tr / tr2)


def gradient_health(grad: torch.Tensor, unbiased: bool = True) -> float:
    """``h = min(1, std(g) / (max|g| + 1e-10))`` (eq. 4; ``torch.std``'s unbiased default); NaN if not finite."""
    g = grad.detach().reshape(-1).to(torch.float64)
    if g.numel() == 0:
        return 0.0
    if not bool(torch.isfinite(g).all()):
        return math.nan
    if unbiased and g.numel() < 2:
        return 0.0
    std = g.std(correction=1 if unbiased else 0)
    return float(min(1.0, float(std / (g.abs().max() + GRAD_EPS))))


def intrain_score(gamma: float, o: float, layers: int) -> float:
    """``I = gamma * (1 + o) / log(L + 1)`` (eq. 8); NaN for L = 0."""
    return gamma * (1.0 + o) / math.log(layers + 1) if layers > 0 else math.nan


def conv_linear_layers(net: nn.Module) -> list[nn.Module]:
    """Every ``Conv2d`` and ``Linear`` module, in registration order (the default 'layers')."""
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def cell_layers(net: nn.Module) -> list[nn.Module]:
    """NB201 stem and every cell/block (18 outputs); falls back to conv/linear for other modules."""
    stem, cells = getattr(net, "stem", None), getattr(net, "cells", None)
    if stem is None or cells is None:
        return conv_linear_layers(net)
    return [stem, *cells]


@dataclass
class InTrainStats:
    """Per-layer PR and per-tensor gradient statistics of one InTrain pass."""

    pr: list[float] = field(default_factory=list)
    h: list[float] = field(default_factory=list)
    h_pop: list[float] = field(default_factory=list)  # population std (ddof=0), for the ablation
    is_weight: list[bool] = field(default_factory=list)  # conv/linear weight (vs BN affine, bias)

    @property
    def layers(self) -> int:
        """L, the number of captured layers."""
        return len(self.pr)

    def gamma(self) -> float:
        """Capacity ``sum_l log PR_l`` (NaN if any PR is NaN)."""
        return math.fsum(math.log(p) if p > 0 else math.nan for p in self.pr) if self.pr else math.nan

    def resilience(self, weights_only: bool = False, unbiased: bool = True) -> float:
        """``o = sum_i h(theta_i)`` over all tensors (or conv/linear weights only)."""
        values = self.h if unbiased else self.h_pop
        return math.fsum(h for h, w in zip(values, self.is_weight) if w or not weights_only)

    def scores(self) -> dict[str, float]:
        """The four InTrain proxies under the default protocol."""
        gamma, o = self.gamma(), self.resilience()
        return {
            "intrain": intrain_score(gamma, o, self.layers),
            "intrain_pr": gamma,
            "intrain_grad": o,
            "intrain_add": gamma + o,
        }


def _logits(out: object) -> torch.Tensor:
    """The prediction of a forward: the tensor itself, or the last element of a tuple (xautodl order)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[-1], torch.Tensor):
        return out[-1]
    raise TypeError(f"cannot find the prediction in a forward output of type {type(out).__name__}")


def synthetic_loss(pred: torch.Tensor, generator: Callable[..., torch.Tensor]) -> torch.Tensor:
    """Random-target loss (Sec. 3.3): mean CE on random labels for (N,K); ``||y - t||^2`` for spatial outputs."""
    if pred.dim() == 2:
        labels = torch.randint(0, pred.shape[1], (pred.shape[0],))
        return nn.functional.cross_entropy(pred, labels.to(pred.device))
    target = generator(pred.shape)
    return ((pred - target.to(pred.device, pred.dtype)) ** 2).sum()


def run_intrain(
    net: nn.Module,
    x: torch.Tensor,
    layer_sets: dict[str, Iterable[nn.Module]],
) -> dict[str, InTrainStats]:
    """One forward (covariance hooks on each layer set) and one backward; returns stats per layer set.

    Labels are drawn on the CPU generator after the forward (the forward itself draws nothing). Gradients
    are read, then cleared; no graph or activation outlives the call.
    """
    sets = {name: list(mods) for name, mods in layer_sets.items()}
    stats = {name: [CovarianceStats() for _ in mods] for name, mods in sets.items()}
    handles = []
    for name, mods in sets.items():
        for mod, acc in zip(mods, stats[name]):
            handles.append(mod.register_forward_hook(lambda _m, _i, out, acc=acc: acc.add(_logits(out))))
    try:
        pred = _logits(net(x))
    finally:
        for handle in handles:
            handle.remove()
    loss = synthetic_loss(pred, lambda shape: torch.randn(shape))
    params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, [p for _, p in params], allow_unused=True)
    weight_ids = {id(m.weight) for m in conv_linear_layers(net)}
    h, hu, is_w = [], [], []
    for (_, p), g in zip(params, grads):
        if g is None:
            continue
        h.append(gradient_health(g))
        hu.append(gradient_health(g, unbiased=False))
        is_w.append(id(p) in weight_ids)
    out = {}
    for name, accs in stats.items():
        pr = [participation_ratio(a.covariance()) for a in accs if a.n > 0]
        out[name] = InTrainStats(pr, list(h), list(hu), list(is_w))
    return out


def gaussian_input(ctx: ArchContext, batch: int = BATCH, resolution: int = RESOLUTION) -> torch.Tensor:
    """The paper's synthetic batch, drawn on the CPU generator and moved to the device."""
    return ctx.to_device(torch.randn(batch, 3, resolution, resolution))


@pass_runner(Pass.INTRAIN)
def intrain_pass(ctx: ArchContext) -> InTrainStats:
    """Gaussian 64x3x64x64, random labels, default init, train-mode BN: PR per conv/linear output and h per tensor."""
    net = ctx.net
    x = gaussian_input(ctx)
    names = ctx.config.layer_modules
    layers = feature_modules(net, names) if names else conv_linear_layers(net)
    try:
        return run_intrain(net, x, {"conv": layers})["conv"]
    finally:
        ctx.restore()  # undo the train-mode BN running-stat update: the caller's module is left as it was


def _score(outputs: PassOutputs, name: str) -> float:
    st: InTrainStats = outputs[Pass.INTRAIN]
    value = st.scores()[name]
    return value if math.isfinite(value) else math.nan


@proxy("intrain")
def intrain(outputs: PassOutputs) -> tuple[float, dict[str, float]]:
    """InTrain: gamma * (1 + o) / log(L + 1)."""
    st: InTrainStats = outputs[Pass.INTRAIN]
    comps = {"gamma": st.gamma(), "o": st.resilience(), "layers": float(st.layers)}
    return _score(outputs, "intrain"), comps


@proxy("intrain_pr")
def intrain_pr(outputs: PassOutputs) -> float:
    """InTrain ablation: capacity gamma only."""
    return _score(outputs, "intrain_pr")


@proxy("intrain_grad")
def intrain_grad(outputs: PassOutputs) -> float:
    """InTrain ablation: resilience o only."""
    return _score(outputs, "intrain_grad")


@proxy("intrain_add")
def intrain_add(outputs: PassOutputs) -> float:
    """InTrain ablation: additive gamma + o."""
    return _score(outputs, "intrain_add")
