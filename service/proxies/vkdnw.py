"""VKDNW (Týbl & Neumann, CVPR 2025): Fisher-spectrum entropy, parameter-tensor count and the fork's jacov.

Follows ``NB201/ZeroShotProxy/compute_vkdnw_score.py`` and ``compute_jacov_score.py`` of ondratybl/VKDNW with the
driver ``NB201/tss_general_.py`` at 19cad2f (``--batch_size 64 --params_grad_len 128``, ``p = 1``):

* ``vkdnw_entropy`` (:data:`Pass.VKDNW`): train mode, kaiming-normal fan-in re-init (the AZ-NAS helper, same RNG
  consumption), ``torch.randn(64, 3, 32, 32)`` drawn after the init, then **eval mode**: BN uses the fresh running
  stats (mean 0, var 1). ``J[b]`` is the Jacobian of sample b's logits w.r.t. element 0 of each of the first 128
  tensors of ``named_parameters()`` (BN weights and biases count). ``L[b]`` is the closed-form lower Cholesky factor
  of ``diag(p) - p pᵀ`` of the smoothed softmax ``p = softmax·(1-α) + α/K`` with ``α = float16(0.05)`` (so
  ``1-α`` and ``α/K`` are float16 values and ``Σp ≠ 1``, as in the official code). ``F = mean_b J_bᵀ L_bᵀ L_b J_b``
  (the code's ``Lᵀ L``, not the paper's ``L Lᵀ``), ``λ`` = singular values of F, ``q`` = its 9 deciles
  (``torch.quantile``, linear), ``t = q/(‖q‖₁ + 1e-10)``, entropy ``-Σ t log(t + 1e-10)``.
* ``vkdnw_dim``: ``len(list(named_parameters()))``, the number of parameter tensors (no network pass).
* ``vkdnw_jacov`` (:data:`Pass.VKDNW_JACOV`): train mode, kaiming re-init, the real batch ``ctx.data.batch(0, 64)``,
  ``J = ∂Σlogits/∂x`` per sample (flattened), ``-Σ[log(v+1e-5) + 1/(v+1e-5)]`` over the eigenvalues of
  ``np.corrcoef(J)`` (float64 ``np.linalg.eigh``). Any failure, or a NaN from a negative eigenvalue, is NaN.

Choices and differences from the official code:

* the official Jacobian writes into a view of a detached captured parameter inside ``jacrev``, which torch >= 2.1
  rejects; we compute the intended ``d logits / d θ_sel`` with ``torch.func`` on ``θ + δ·e₀`` at ``δ = 0``
  (``vmap`` over samples, ``jacrev`` over the P scalars), which is exactly that derivative;
* the Gaussian input is drawn on the CPU generator and moved to the device (the official code draws it on CUDA), so
  the scores do not depend on the device; the engine restores "seed, then freshly built" before each pass, where the
  official driver runs vkdnw, az_nas and jacov one after the other on one network and RNG stream;
* a non-finite Fisher gives the official SVD-failure sentinel ``λ = zeros(2)`` (entropy 0) instead of depending on
  whether LAPACK raises; on a rank-deficient Fisher (e.g. a zero cell output) the deciles are float noise and the
  entropy is close to ln 9 (see the notes, "degenerate-net pathology"): that is kept, as in the official code;
* a module output that is a tuple/list is read as ``(..., logits)`` (the xautodl convention of our NB201 network);
  a network with no parameter tensor has an empty Jacobian, so F is 0x0 and the entropy is the SVD-failure 0.

Our NB201 network is the official one (same module order, no conv biases), so ``named_parameters()`` and therefore
the 128 selected tensors are the official ones.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from zcscore.proxies.az_nas import reinit_kaiming_fanin
from zcscore.proxies.catalog import Pass
from zcscore.proxies.registry import pass_runner, proxy

if TYPE_CHECKING:  # the engine imports the registry: no runtime import back
    from zcscore.engine import ArchContext, PassOutputs

BATCH, RESOLUTION = 64, 32
PARAMS_GRAD_LEN = 128  # the driver's --params_grad_len: first 128 parameter tensors
ALPHA = 0.05  # softmax smoothing, taken as a float16 value (0.0500030517578125) as in the official code
JACOV_K = 1e-5


def _logits(out: Any) -> torch.Tensor:
    """Logits of a module output: the tensor itself, or the last item of a tuple/list."""
    logits: torch.Tensor = out[-1] if isinstance(out, (tuple, list)) else out
    return logits


def cholesky_factor(logits: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factors ``(B, K, K)`` of ``diag(p) - ppᵀ`` of the smoothed softmax, in the official closed form.

    ``p = softmax·(1-α) + α/K`` with ``α`` a float16 0.05; with ``q_j = 1 - Σ_{i<=j} p_i`` (``q_{K-1} = 0``) and
    ``d_j = sqrt(p_j q_j / q_{j-1})`` (``q_{-1} = 1``): ``L_jj = d_j`` and ``L_ij = -p_i d_j / q_j`` for ``i > j``
    (0 where ``q_j = 0``).
    """
    alpha = torch.tensor(ALPHA, dtype=torch.float16, device=logits.device)
    k = logits.shape[1]
    prob = torch.softmax(logits, dim=1) * (1 - alpha) + alpha / k  # float16 scalars, float32 result
    q = 1.0 - torch.cumsum(prob, dim=1)
    q[:, -1] = 0.0
    q_prev = torch.roll(q, shifts=1, dims=1)
    q_prev[:, 0] = 1.0
    d = torch.sqrt(prob * q / q_prev)
    lower = torch.nan_to_num(-(prob.unsqueeze(2) * (1 / q).unsqueeze(1)), neginf=0.0)  # -p_i/q_j; q_j = 0 -> 0
    eye = torch.eye(k, dtype=logits.dtype, device=logits.device)
    lower = torch.tril(lower, diagonal=-1) + eye  # unit diagonal, zero upper triangle
    return lower * d.unsqueeze(1)  # multiply column j by d_j


def _owners(net: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """Parameter name -> (owning module, attribute); shared parameters are listed once (first owner)."""
    out: dict[str, tuple[nn.Module, str]] = {}
    for mod_name, mod in net.named_modules():
        for attr, _ in mod.named_parameters(recurse=False):
            out.setdefault(f"{mod_name}.{attr}" if mod_name else attr, (mod, attr))
    return out


def _fast_supported(mod: nn.Module) -> bool:
    """Modules whose element-0 derivative has a closed form here (eval-mode norms must use running stats)."""
    if isinstance(mod, nn.Conv2d):
        return mod.padding_mode == "zeros" and not isinstance(mod.padding, str)
    if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return not mod.training and mod.running_mean is not None and mod.running_var is not None
    return isinstance(mod, nn.Linear)


def _element0_derivative(mod: nn.Module, attr: str, inp: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Per-sample ``d(Σ out·g)/d θ[0]`` for parameter ``attr`` of ``mod``, from its input and output gradient."""
    b = g.shape[0]
    if isinstance(mod, nn.Linear):
        g0 = g[..., 0]
        return (g0 if attr == "bias" else g0 * inp[..., 0]).reshape(b, -1).sum(1)
    if isinstance(mod, nn.Conv2d):
        g0 = g[:, 0]
        if attr == "bias":
            return g0.reshape(b, -1).sum(1)
        assert not isinstance(mod.padding, str)  # string padding is routed to the generic path
        (ph, pw), (sh, sw) = mod.padding, mod.stride
        x0 = torch.nn.functional.pad(inp[:, 0], (pw, pw, ph, ph))  # kernel tap (0, 0) of input channel 0
        ho, wo = g0.shape[-2:]
        tap = x0[:, : sh * (ho - 1) + 1 : sh, : sw * (wo - 1) + 1 : sw]
        return (g0 * tap).reshape(b, -1).sum(1)
    g0 = g[:, 0]  # eval-mode BatchNorm: y = (x - mean) / sqrt(var + eps) * weight + bias
    if attr == "bias":
        return g0.reshape(b, -1).sum(1)
    assert isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)) and mod.running_mean is not None
    assert mod.running_var is not None
    xhat = (inp[:, 0] - mod.running_mean[0]) / torch.sqrt(mod.running_var[0] + mod.eps)
    return (g0 * xhat).reshape(b, -1).sum(1)


def fast_selected_jacobian(net: nn.Module, x: torch.Tensor, count: int = PARAMS_GRAD_LEN) -> torch.Tensor | None:
    """:func:`selected_jacobian` from K ordinary backward passes (eval mode: samples are independent).

    Each output gradient of an owning Conv2d/Linear/eval-BN module gives the per-sample derivative w.r.t. its
    element 0 in closed form. None when a selected parameter belongs to another module type, is shared, or its
    module runs other than exactly once (the caller then uses the generic ``torch.func`` path).
    """
    owners = _owners(net)
    chosen = [name for name, _ in net.named_parameters()][:count]
    mods: dict[int, nn.Module] = {}
    for name in chosen:
        mod, _ = owners[name]
        if not _fast_supported(mod) or sum(1 for m, _ in owners.values() if m is mod) != len(
            list(mod.parameters(recurse=False))
        ):
            return None
        mods[id(mod)] = mod
    seen: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def hook(mod: nn.Module, inp: Any, out: Any) -> None:
        seen.setdefault(id(mod), []).append((inp[0].detach(), out))

    handles = [m.register_forward_hook(hook) for m in mods.values()]
    try:
        logits = _logits(net(x.requires_grad_(True)))
    finally:
        for h in handles:
            h.remove()
    if any(len(seen.get(key, [])) != 1 for key in mods):
        return None
    keys = list(mods)
    outs = [seen[key][0][1] for key in keys]
    jac = torch.zeros(x.shape[0], logits.shape[1], len(chosen), dtype=logits.dtype, device=logits.device)
    for k in range(logits.shape[1]):
        grads = torch.autograd.grad(logits[:, k].sum(), outs, retain_graph=True, allow_unused=True)
        by_mod = dict(zip(keys, grads))
        for i, name in enumerate(chosen):
            mod, attr = owners[name]
            g = by_mod[id(mod)]
            if g is not None:
                jac[:, k, i] = _element0_derivative(mod, attr, seen[id(mod)][0][0], g)
    return jac.detach()


def selected_jacobian(net: nn.Module, x: torch.Tensor, count: int = PARAMS_GRAD_LEN) -> torch.Tensor:
    """``(B, K, P)``: per-sample Jacobian of the logits w.r.t. element 0 of each of the first ``count`` parameters.

    Generic ``torch.func`` path (``vmap`` over samples of ``jacrev`` over ``θ + δ·e₀``), for any module.
    """
    params = {name: p.detach() for name, p in net.named_parameters()}
    buffers = {name: b.detach() for name, b in net.named_buffers()}
    chosen = list(params)[:count]
    units = {}
    for name in chosen:
        unit = torch.zeros_like(params[name]).flatten()
        unit[0] = 1.0
        units[name] = unit.view(params[name].shape)

    def logits_of(delta: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        moved = dict(params)
        for i, name in enumerate(chosen):
            moved[name] = params[name] + delta[i] * units[name]
        return _logits(functional_call(net, (moved, buffers), (sample.unsqueeze(0),))).squeeze(0)

    delta = torch.zeros(len(chosen), dtype=x.dtype, device=x.device)
    jac: torch.Tensor = vmap(jacrev(logits_of), in_dims=(None, 0))(delta, x)
    return jac.detach()


def fisher_entropy(fisher: torch.Tensor) -> tuple[float, list[float]]:
    """Entropy of the 9 L1-normalised deciles of F's singular values, and the deciles (official formula)."""
    lambdas: torch.Tensor | None = None
    if fisher.numel() and bool(torch.isfinite(fisher).all()):
        try:
            lambdas = torch.linalg.svd(fisher, full_matrices=False).S
        except RuntimeError:  # torch.linalg.LinAlgError: the official fallback below
            lambdas = None
    if lambdas is None:
        lambdas = torch.zeros(2, dtype=torch.float32, device=fisher.device)
    levels = torch.arange(0.1, 1.0, 0.1, device=lambdas.device)
    quantiles = torch.quantile(lambdas, levels)
    t = quantiles / (torch.linalg.norm(quantiles, ord=1).item() + 1e-10)
    entropy = -(t * torch.log(t + 1e-10)).sum()
    return float(entropy.item()), quantiles.cpu().tolist()


def vkdnw_scores(
    net: nn.Module, device: torch.device, input_shape: tuple[int, ...] = (3, RESOLUTION, RESOLUTION)
) -> dict[str, Any]:
    """Re-init ``net`` (kaiming fan-in), draw the Gaussian batch, then the eval-mode Fisher and its entropy."""
    net.train()
    reinit_kaiming_fanin(net)
    x = torch.randn(BATCH, *input_shape).to(device)
    net.eval()
    with torch.no_grad():
        chol = cholesky_factor(_logits(net(x)).float())
    jac = fast_selected_jacobian(net, x)
    if jac is None:
        jac = selected_jacobian(net, x)
    if jac.shape[-1] == 0:
        fisher = torch.zeros((0, 0), device=device)
    else:
        jc = torch.matmul(chol, jac)  # (B, K, P)
        fisher = torch.mean(torch.matmul(jc.transpose(1, 2), jc), dim=0)
    entropy, deciles = fisher_entropy(fisher)
    return {"entropy": entropy, "deciles": deciles, "n_selected": int(jac.shape[-1])}


@pass_runner(Pass.VKDNW)
def vkdnw_pass(ctx: ArchContext) -> dict[str, Any]:
    """The VKDNW Fisher pass on a freshly restored context (NCHW: functorch and eval BN need no layout)."""
    shape = ctx.space.input_shape_for(ctx.arch) if ctx.space is not None else (3, RESOLUTION, RESOLUTION)
    return vkdnw_scores(ctx.net, ctx.device, tuple(shape))


def jacov_score(jacobians: np.ndarray) -> float:
    """``-Σ[log(v+k) + 1/(v+k)]`` over the eigenvalues v of ``np.corrcoef`` of the rows (NaN on failure)."""
    with np.errstate(all="ignore"):
        try:
            corrs = np.corrcoef(jacobians)
            v = np.linalg.eigh(corrs)[0]
        except (np.linalg.LinAlgError, ValueError):
            return math.nan
        return float(-np.sum(np.log(v + JACOV_K) + 1.0 / (v + JACOV_K)))


@pass_runner(Pass.VKDNW_JACOV)
def vkdnw_jacov_pass(ctx: ArchContext) -> float:
    """The fork's jacov: kaiming re-init, train mode, input Jacobian of Σlogits on real batch 0 of 64."""
    net: nn.Module = ctx.net
    net.train()
    reinit_kaiming_fanin(net)
    x, _ = ctx.data.batch(0, BATCH)
    x = ctx.to_device(x).requires_grad_(True)
    logits = _logits(net(x))
    (grad,) = torch.autograd.grad(logits, x, grad_outputs=torch.ones_like(logits), allow_unused=True)
    if grad is None:  # the output does not depend on the input: every row constant -> corrcoef NaN
        grad = torch.zeros_like(x)
    jac = grad.detach().reshape(grad.shape[0], -1).cpu().numpy()
    if not np.isfinite(jac).all():
        return math.nan
    return jacov_score(jac)


@proxy("vkdnw_dim")
def vkdnw_dim(outputs: PassOutputs) -> float:
    """VKDNW dim: the number of parameter tensors of the network."""
    return float(len(list(outputs.ctx.net.named_parameters())))


@proxy("vkdnw_entropy")
def vkdnw_entropy(outputs: PassOutputs) -> tuple[float, dict[str, float]]:
    """VKDNW entropy of the Fisher-spectrum deciles (components: the 9 deciles)."""
    res: dict[str, Any] = outputs[Pass.VKDNW]
    parts = {f"lambda_{i}": float(v) for i, v in enumerate(res["deciles"])}
    return float(res["entropy"]), parts


@proxy("vkdnw_jacov")
def vkdnw_jacov(outputs: PassOutputs) -> float:
    """The VKDNW fork's jacov on one real batch (NaN on failure)."""
    return float(outputs[Pass.VKDNW_JACOV])
