"""NASWOT (Mellor et al., ICML 2021): ``hook_logdet``, the v2 score of ``BayesWatch/nas-without-training``.

Protocol of ``score_networks.py`` + ``scores.py::hooklogdet`` (master b3a82a6, ``scorehook.sh``), on our networks:

* one real batch of 128 (rows 0..127 of the shared CIFAR-10 subset; the official run draws its 128 images
  from the 25k train split with its own seeded sampler), default init, train-mode BN;
* a forward hook on every module whose class name contains ``'ReLU'``: the official test is on
  ``str(type(module))``, which also holds the module path; the name alone is used here so that a package
  name can never switch hooks on. On NB201 this matches ``nn.ReLU`` *and* the ``ReLUConvBN`` wrapper,
  whose input is the same tensor as its inner ReLU's: **every conv-op input is counted twice**, as in the
  official code (arch 0: 69 hooked calls, ``K[0,0] = 651,264``). Suite-Zero's ``nwot`` counts each once;
* each hooked call adds ``c cᵀ + (1-c)(1-c)ᵀ`` for the binary code ``c = (input.reshape(B, -1) > 0)``
  of its **input** (``B - Hamming distance`` form); computed as ``2 c cᵀ - s_i - s_j + N`` with one float32
  matmul, which is exact (integers below 2**24; wider inputs are split) and accumulated in float64;
* score = ``np.linalg.slogdet(K)[1]`` (log |det|, sign ignored); NaN if slogdet raises.

The official driver first runs ``y.backward(ones)`` with backward hooks that mark the hooked modules, and
only marked modules add to ``K`` in the second forward. A module is marked iff its output's ``grad_fn``
runs in that backward, i.e. its (first tensor) output reaches the output in the autograd graph (with
``x.requires_grad_(True)``, as the official ``get_batch_jacobian``). We collect per-module contributions
in a no-grad forward of the batch and keep those of modules whose output ``grad_fn`` is reachable from
the logits' ``grad_fn`` in a 2-sample forward with grad enabled (a graph walk instead of a backward; the
graph's structure does not depend on the batch). On NB201, NB101 and DAG nets every hooked module
reaches the output (``none`` is ``x.mul(0)`` and keeps the graph; dead nodes are pruned), so the gating
changes nothing there; it drops e.g. an auxiliary branch computed and then discarded by a generic module.
A second forward is not needed: in train mode BN uses batch statistics, so it gives the same codes.

Differences from the official run and what they do: our weights are drawn after the per-arch seed (the
official net is built before it, so its init depends on the arch's position) and our 128 images differ;
both are draws of the same distributions (seed-level noise). The official net has ``num_classes=1``: the
classifier is built last and has no ReLU after it, so the hooked codes do not depend on it. The official
hook uses ``inp.view`` (it would fail silently on channels-last tensors); we use ``reshape``.

Sentinel: ``-inf`` for a singular ``K`` (two identical codes over every hooked unit; no hooked module
reaching the output gives ``K = 0``, as the official zero-initialised ``K``); NaN if ``slogdet`` fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from zcscore.proxies.catalog import Pass
from zcscore.proxies.features import forward_hooked
from zcscore.proxies.registry import pass_runner, proxy

if TYPE_CHECKING:  # the engine imports the registry: no runtime import back
    from zcscore.engine import ArchContext, PassOutputs

BATCH = 128
_EXACT_COLUMNS = 1 << 23  # float32 sums of 0/1 products stay exact below 2**24


def is_hooked(module: nn.Module) -> bool:
    """Whether NASWOT hooks ``module``: its class name contains ``'ReLU'`` (``ReLUConvBN`` included)."""
    return "ReLU" in type(module).__name__


def code_kernel(inp: torch.Tensor) -> torch.Tensor:
    """``c cᵀ + (1-c)(1-c)ᵀ`` (float64, exact) for ``c = (inp.reshape(B, -1) > 0)``."""
    c = (inp.detach().reshape(inp.shape[0], -1) > 0).to(torch.float32)
    n = c.shape[1]
    cc = torch.zeros((c.shape[0], c.shape[0]), dtype=torch.float64, device=c.device)
    for part in torch.split(c, _EXACT_COLUMNS, dim=1):
        cc += torch.mm(part, part.t()).double()
    s = c.sum(1, dtype=torch.float64)
    return 2 * cc - s[:, None] - s[None, :] + n


def _first_tensor(out: Any) -> torch.Tensor | None:
    """The tensor an old-style module backward hook attaches to: the output, or its first item (recursively)."""
    while isinstance(out, (tuple, list)) and out:
        out = out[0]
    if isinstance(out, dict) and out:
        return _first_tensor(next(iter(out.values())))
    return out if isinstance(out, torch.Tensor) else None


def _reachable(root: Any) -> set[int]:
    """ids of the autograd nodes reachable from ``root`` (the ones a backward from it would run)."""
    seen: set[int] = set()
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(fn for fn, _ in node.next_functions if fn is not None)
    return seen


def _logits(out: Any) -> torch.Tensor | None:
    """The network output the official backward starts from: the tensor, or the last item of a tuple/list."""
    if isinstance(out, (tuple, list)):
        out = out[-1] if out else None
    return out if isinstance(out, torch.Tensor) else None


def _visited_modules(net: nn.Module, x: torch.Tensor, hooked: list[nn.Module]) -> set[int]:
    """ids of the ``hooked`` modules whose output reaches the network output in the autograd graph.

    Found on a 2-sample forward with grad enabled (the graph's structure does not depend on the batch; a
    full batch of 128 would keep every activation of the graph alive).
    """
    grad_fns: dict[int, list[Any]] = {}

    def hook(module: nn.Module, _inp: Any, out: Any) -> None:
        o = _first_tensor(out)
        if o is not None and o.grad_fn is not None:
            grad_fns.setdefault(id(module), []).append(o.grad_fn)

    handles = [m.register_forward_hook(hook) for m in hooked]
    try:
        probe = x[: min(2, x.shape[0])].detach().requires_grad_(True)
        with torch.enable_grad():
            y = _logits(net(probe))
    finally:
        for h in handles:
            h.remove()
    reach = _reachable(y.grad_fn if y is not None else None)
    return {key for key, fns in grad_fns.items() if any(id(fn) in reach for fn in fns)}


def naswot_kernel(net: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, dict[str, int]]:
    """One forward of ``x`` with NASWOT hooks; ``K`` (float64, B x B) over the modules reaching the output.

    Also returns counts: ``hooked`` modules, ``calls`` of them in the forward, ``visited`` modules that
    reach the output (the official backward gating).
    """
    b = x.shape[0]
    kernels: dict[int, torch.Tensor] = {}  # per module: its summed contributions
    calls = 0
    last: list[Any] = [None, -1, None]  # (input, its version, its kernel): a wrapper sees its inner ReLU's input

    def hook(module: nn.Module, inp: Any, _out: Any) -> None:
        nonlocal calls
        t = inp[0] if isinstance(inp, tuple) and inp else inp
        if not isinstance(t, torch.Tensor) or t.dim() == 0 or t.shape[0] != b:
            return  # the official hook swallows such failures
        calls += 1
        if last[0] is t and last[1] == t._version:
            k = last[2]
        else:
            k = code_kernel(t)
            last[:] = [t, t._version, k]
        key = id(module)
        kernels[key] = kernels[key] + k if key in kernels else k

    hooked = [m for m in net.modules() if is_hooked(m)]
    forward_hooked(net, x, hooked, hook, grad=False)
    visited = _visited_modules(net, x, hooked) if kernels else set()
    total = torch.zeros((b, b), dtype=torch.float64, device=x.device)
    for key in visited & kernels.keys():
        total += kernels[key]
    counts = {"hooked": len(hooked), "calls": calls, "visited": len(visited & kernels.keys())}
    return total.cpu().numpy(), counts


def hooklogdet(kernel: np.ndarray) -> float:
    """The official ``hooklogdet``: ``log|det K|`` (sign ignored); NaN if ``slogdet`` raises."""
    try:
        with np.errstate(invalid="ignore", divide="ignore"):
            _, logdet = np.linalg.slogdet(kernel)
    except (np.linalg.LinAlgError, ValueError):
        return float("nan")
    return float(logdet)


@pass_runner(Pass.NASWOT)
def naswot_pass(ctx: ArchContext) -> dict[str, Any]:
    """Real rows 0..127, default init, train mode: the NASWOT kernel and its hook counts."""
    x, _ = ctx.data.batch(0, BATCH)
    ctx.net.train()
    kernel, counts = naswot_kernel(ctx.net, ctx.to_device(x))
    return {"kernel": kernel, **counts}


@proxy("naswot")
def naswot(outputs: PassOutputs) -> tuple[float, dict[str, float]]:
    """NASWOT v2: ``log|det K|`` of the hook kernel (higher is better)."""
    out: dict[str, Any] = outputs[Pass.NASWOT]
    return hooklogdet(out["kernel"]), {"hooked_calls": float(out["calls"]), "visited_modules": float(out["visited"])}
