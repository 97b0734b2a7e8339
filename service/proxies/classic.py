"""The classic zero-cost proxies of SamsungLabs/zero-cost-nas (Abdelfattah et al., ICLR 2021) from ONE shared pass.

``grad_norm``, ``snip``, ``grasp``, ``fisher`` and ``jacov`` read one forward of ONE real batch
(``Pass.CLASSIC``: batch 0 = rows 0..63, default init, train-mode BN as the engine restores it, mean
cross-entropy). Following ``foresight/pruners`` @ a43bfbc (= v1.0.0):

* "layers" are every ``nn.Conv2d`` / ``nn.Linear`` of ``net.modules()``; only their weights count (no biases,
  no BN parameters); a layer without a gradient contributes zeros; per-layer sums are accumulated in the
  weights' dtype, layer after layer, as the official ``sum_arr`` does (``0. + torch.sum(arr[i])``);
* ``grad_norm`` = Σ_layers ‖∂L/∂W‖₂ (per-layer Frobenius norms, summed);
* ``snip`` = Σ |W ⊙ ∂L/∂W| (the official mask gradient ``∂L/∂mask`` at mask = 1 is that same product);
* ``grasp`` = Σ −W ⊙ (H g): ``g`` = ∂L/∂W without a graph, then ``z = Σ g ⊙ ∂L/∂W`` with ``create_graph`` and
  ``H g = ∂z/∂W`` (T = 1, one iteration); signed, as the official code (sign flipped to correlate positively);
* ``fisher`` (mode 'channel'): per output channel k of each layer, ``g_nk = Σ_space act ⊙ ∂L/∂act`` of the
  layer's output (pre-BN), ``Δ_k = ½ mean_n g_nk²``, and the official broadcast quirk: each ``Δ_k`` is
  counted once per weight of its channel, i.e. multiplied by the fan-in ``prod(W.shape[1:])``;
* ``jacov`` (``jacob_cov``): ``J_n = ∂(Σ_c logits_nc)/∂x_n`` flattened, ``C = np.corrcoef(J)`` (float64),
  ``v = np.linalg.eig(C)`` (general ``eig``) and ``−Σ [log(v + 1e-5) + 1/(v + 1e-5)]``; any failure (NaN in
  ``corrcoef`` for a zero or constant Jacobian row makes ``eig`` raise) gives NaN, as the official ``except``.

One forward serves all five. The official harness runs each measure on its own copy with its own forward of the
same batch; in train mode (batch statistics) a second forward of the same batch on the same weights is bit-for-bit
the first (the running-stat updates are never read), so one graph gives the same numbers: ``∂L/∂W`` and ``∂L/∂act``
(fisher) come from one backward; jacov's input Jacobian is a second backward of ``Σ logits`` on the same graph;
GraSP's ``∂L/∂W`` with ``create_graph`` and the Hessian-gradient product are two more, only when ``grasp`` is asked
for (``pass_args`` ``hessian``; ``fisher`` / ``jacobian`` likewise switch their hooks and backward on). What is
computed never depends on what else was asked for: ``g`` (and so grad_norm/snip) always comes from the plain
backward, as the official GraSP's first pass does. A test pins the shared pass against the separate official loops.

Choices beyond the official code (which only runs its own NB201 model):

* a network output that is a tuple/list is read as ``(..., logits)`` (xautodl ``(pooled, logits)``), a tensor as
  the logits; the input shape is whatever the data holds (the CIFAR-10 batch; MobileNetV2 declares these
  proxies unsupported, as they read real data);
* a Conv2d/Linear called more than once per forward (the official fisher hook would crash on its ``del
  layer.act``) sums its per-call ``g_nk`` before squaring (the gradient of one channel mask shared by the
  calls); frozen weights (``requires_grad=False``) count as "no gradient";
* a loss that does not require grad (no trainable weight reached) gives zero gradients, so 0 for grad_norm,
  snip, grasp and fisher (the official sums of zero arrays); non-finite gradients propagate (NaN), as officially;
* ``np.linalg.eig`` may return complex eigenvalues for a nearly degenerate symmetric ``C``; they come in conjugate
  pairs, so the score is the real part of the (officially complex) sum.

Network variant. The zero-cost-nas NB201 model (``foresight/models/nasbench2.py``) differs from our exact xautodl
TinyNetwork: its cell convs have a **bias** and its cell BNs are non-affine, and it builds all 5 candidate ops on
every edge (unused ones have no gradient: zeros, but they shift the init RNG). We define every proxy on OUR network
(no conv bias). 2,290 of the 15,625 archs have a cell conv whose input is identically zero (its source node only
receives ``none`` edges or zero nodes); in 2,120 of them the cell output is still live. There the two differ for
fisher: with a bias the conv output is a non-zero constant ``b`` (BN of a constant is 0, so the forward is
unchanged), and the BN backward at zero batch variance multiplies the gradient by ``1/sqrt(eps) ≈ 316``, so
``g_nk = b · Σ_s ∂L/∂act`` is huge and that layer dominates: emulating the biases on our network raised fisher 49- to
866-fold on 8 such archs (about 1x on others). Without a bias ``act = 0`` and the layer adds exactly 0 (the gradient
through it dies at the ReLU of the zero node). NASLib's graph (the Suite-Zero values we compare against) has no
cell conv bias either: on those archs its fisher / ours is 3.8 (median), as elsewhere (4.0, the 1/B² of batch 32 vs
64), so zero-cost-nas's own release values for them are inflated by the bias term and cannot be matched on our
network. The other proxies barely move: a zero-input conv has a zero weight gradient with or without a bias.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zcscore.proxies.catalog import Pass
from zcscore.proxies.registry import pass_runner, proxy

if TYPE_CHECKING:  # the engine imports the registry: no runtime import back
    from zcscore.engine import ArchContext, PassOutputs

BATCH_SIZE = 64
JACOV_K = 1e-5  # the official ``k`` in ``log(v + k) + 1/(v + k)``


@dataclass(frozen=True)
class ClassicScores:
    """The scores of one classic pass; a proxy whose part was not computed (pass arg off) is ``None``."""

    grad_norm: float
    snip: float
    grasp: float | None = None
    fisher: float | None = None
    jacov: float | None = None


def _logits(out: Any) -> torch.Tensor:
    """Logits of a module output: the tensor itself, or the last item of a tuple/list."""
    logits: torch.Tensor = out[-1] if isinstance(out, (tuple, list)) else out
    return logits


def prunable_layers(net: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    """Every ``nn.Conv2d`` / ``nn.Linear`` in ``net.modules()`` order (each once), as ``get_layer_metric_array``."""
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def sum_arr(values: list[torch.Tensor], dtype: torch.dtype = torch.float32) -> float:
    """The official ``sum_arr``: per-layer ``torch.sum``, accumulated layer after layer in ``dtype``; 0 if empty."""
    if not values:
        return 0.0
    sums = torch.stack([v.detach().sum().to(dtype) for v in values]).cpu().numpy()
    total = sums.dtype.type(0)
    for s in sums:
        total = total + s
    return float(total)


def jacov_score(jacobian: np.ndarray, k: float = JACOV_K) -> float:
    """``-Σ[log(v+k) + 1/(v+k)]`` over the eigenvalues of ``np.corrcoef`` of the ``(B, D)`` Jacobian; NaN on failure."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # corrcoef of a constant row: NaN, as officially
            corrs = np.corrcoef(jacobian)
            v, _ = np.linalg.eig(corrs)
            score = -np.sum(np.log(v + k) + 1.0 / (v + k))
    except (np.linalg.LinAlgError, ValueError):  # NaN/inf in corrcoef: the official ``except`` gives NaN
        return math.nan
    return float(np.real(score))


def _zeros_if_none(grads: tuple[torch.Tensor | None, ...], like: list[torch.Tensor]) -> list[torch.Tensor]:
    return [torch.zeros_like(w) if g is None else g for g, w in zip(grads, like)]


def classic_scores(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    hessian: bool = False,
    fisher: bool = False,
    jacobian: bool = False,
) -> ClassicScores:
    """Run the shared classic pass of ``net`` (in its current mode and weights) on one batch ``(x, y)``."""
    layers = prunable_layers(net)
    trainable = [m for m in layers if m.weight.requires_grad]
    weights = [m.weight for m in trainable]
    acts: dict[int, list[torch.Tensor]] = {id(m): [] for m in layers}
    hooks = []
    if fisher:

        def keep(mod: nn.Module, _inp: Any, out: Any) -> None:
            if isinstance(out, torch.Tensor) and out.requires_grad:
                acts[id(mod)].append(out)

        hooks = [m.register_forward_hook(keep) for m in layers]
    if jacobian:
        x = x.detach().requires_grad_(True)
    try:
        logits = _logits(net(x))
    finally:
        for h in hooks:
            h.remove()
    loss = F.cross_entropy(logits, y)
    live = loss.requires_grad
    flat_acts = [a for m in layers for a in acts[id(m)]]
    n_w = len(weights)
    grads: tuple[torch.Tensor | None, ...]
    if live and (weights or flat_acts):
        grads = torch.autograd.grad(loss, weights + flat_acts, allow_unused=True, retain_graph=jacobian or hessian)
    else:
        grads = (None,) * (n_w + len(flat_acts))
    g = _zeros_if_none(grads[:n_w], weights)
    dtype = weights[0].dtype if weights else torch.float32
    zero = [torch.zeros((), dtype=dtype, device=x.device)] * (len(layers) - n_w)  # frozen layers: zeros
    out: dict[str, float | None] = {
        "grad_norm": sum_arr([gi.norm() for gi in g] + zero),
        "snip": sum_arr([(w * gi).abs() for w, gi in zip(weights, g)] + zero),
    }
    if fisher:
        act_grads = dict(zip(map(id, flat_acts), grads[n_w:]))
        per_layer = []
        for m in layers:
            g_nk: torch.Tensor | None = None
            for a in acts[id(m)]:
                ga = act_grads[id(a)]
                if ga is None:
                    continue
                prod = (a.detach() * ga).sum(dim=tuple(range(2, a.dim()))) if a.dim() > 2 else a.detach() * ga
                g_nk = prod if g_nk is None else g_nk + prod
            if g_nk is None:
                per_layer.append(torch.zeros((), dtype=dtype, device=x.device))
            else:
                delta = g_nk.pow(2).mean(0).mul(0.5).abs()
                per_layer.append(delta * math.prod(m.weight.shape[1:]))  # broadcast to the channel's weights
        out["fisher"] = sum_arr(per_layer)
    if jacobian:
        jx: torch.Tensor | None = None
        if logits.requires_grad:
            (jx,) = torch.autograd.grad(logits.sum(), x, retain_graph=hessian, allow_unused=True)
        jx = torch.zeros_like(x) if jx is None else jx
        out["jacov"] = jacov_score(jx.detach().reshape(jx.shape[0], -1).cpu().numpy())
    if hessian:
        out["grasp"] = sum_arr(_grasp_terms(loss, weights, grads[:n_w]) + zero)
    return ClassicScores(**out)  # type: ignore[arg-type]  # the two required keys are always set


def _grasp_terms(
    loss: torch.Tensor, weights: list[torch.Tensor], g: tuple[torch.Tensor | None, ...]
) -> list[torch.Tensor]:
    """Per layer ``-W ⊙ (H g)``: ``g`` without a graph, ``z = Σ g ⊙ ∂L/∂W`` with one, ``H g = ∂z/∂W``."""
    if not loss.requires_grad or not weights:
        return [torch.zeros_like(w) for w in weights]
    g_f = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
    terms = [(gi.detach() * gf).sum() for gi, gf in zip(g, g_f) if gi is not None and gf is not None]
    if not terms or not any(t.requires_grad for t in terms):
        return [torch.zeros_like(w) for w in weights]
    z = torch.stack(terms).sum() if len(terms) > 1 else terms[0]
    hg = torch.autograd.grad(z, weights, allow_unused=True)
    return [-w.detach() * h for w, h in zip(weights, _zeros_if_none(hg, weights))]


@pass_runner(Pass.CLASSIC)
def classic_pass(ctx: ArchContext, hessian: int = 0, fisher: int = 0, jacobian: int = 0) -> ClassicScores:
    """The shared classic pass: real batch 0 of 64, default init, train-mode BN (as the engine restores it), CE."""
    x, y = ctx.data.batch(0, BATCH_SIZE)
    x, y = ctx.to_device(x), y.to(ctx.device, non_blocking=True)
    return classic_scores(ctx.net, x, y, hessian=bool(hessian), fisher=bool(fisher), jacobian=bool(jacobian))


def _part(outputs: PassOutputs, name: str) -> float:
    value: float | None = getattr(outputs[Pass.CLASSIC], name)
    if value is None:
        raise RuntimeError(f"the classic pass ran without the {name} part (pass_args missing)")
    return value


@proxy("grad_norm")
def grad_norm(outputs: PassOutputs) -> float:
    """grad_norm: sum over conv/linear layers of the weight-gradient Frobenius norm (one real batch)."""
    return _part(outputs, "grad_norm")


@proxy("snip")
def snip(outputs: PassOutputs) -> float:
    """SNIP (Lee et al., ICLR 2019): sum of |W ⊙ ∂L/∂W| over conv/linear weights."""
    return _part(outputs, "snip")


@proxy("grasp")
def grasp(outputs: PassOutputs) -> float:
    """GraSP (Wang et al., ICLR 2020), sign-flipped as zero-cost-nas: sum of -W ⊙ Hg."""
    return _part(outputs, "grasp")


@proxy("fisher")
def fisher(outputs: PassOutputs) -> float:
    """Fisher (Theis et al. / Turner et al.): per-channel ½ mean (Σ act·grad)², times the fan-in, summed."""
    return _part(outputs, "fisher")


@proxy("jacov")
def jacov(outputs: PassOutputs) -> float:
    """jacob_cov (NASWOT v1): -Σ[log(v+1e-5) + 1/(v+1e-5)] over eig of corrcoef of the input Jacobians."""
    return _part(outputs, "jacov")
