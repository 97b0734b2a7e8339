"""SynFlow (Tanaka et al., NeurIPS 2020) as a zero-cost proxy (zero-cost-nas / NAS-Bench-Suite-Zero), in log form.

Protocol (``foresight/pruners/measures/synflow.py`` @ a43bfbc, and NASLib's copy): on a copy of the network,
``|·|`` of every ``state_dict`` tensor (weights, biases, BN parameters and buffers), ``.double()``, train mode,
an all-ones input of batch 1 at the space's input shape (``ctx.space.input_shape_for``; 3x32x32 without a space),
``sum(output).backward()`` and ``S = Σ |W ⊙ ∂R/∂W|`` over every ``nn.Conv2d`` / ``nn.Linear`` weight (a layer
without a gradient counts 0), summed layer after layer in float64 (``sum_arr``). The engine's network is never
touched (we work on a deep copy), so there are no signs to restore.

BN convention. zero-cost-nas's ``synflow`` (``bn=False``) uses the generic ``copynet``, which turns the forward of
every ``BatchNorm1d/2d`` into the identity, for every model except its own NB201 model, whose ``get_prunable_copy``
drops the stem/cell/head BNs but (a bug: ``use_bn`` is never passed on) keeps the 4 BNs of the two reduction blocks.
NASLib (the published Suite-Zero values, stored as ``ln S``) uses ``copynet``: every BN is the identity. We follow
that generic convention, on every space: every ``_BatchNorm`` module (1d/2d/3d, SyncBatchNorm) is replaced by
``nn.Identity``; other norms (GroupNorm, LayerNorm) are kept with ``|·|`` parameters. Our NB201 TinyNetwork has no
conv bias (zero-cost-nas's model has cell conv biases, which are abs'd and active once the BN is gone), so its value
equals NASLib's up to the init draw.

Score = ``ln S`` (natural log, as Suite-Zero stores it): NB201 values are e^15 .. e^112 and grow with depth, so we
report logs. Overflow: with ``|W|`` and a positive input every pre-activation is ≥ 0, so a network of ReLU,
max/avg-pool, add, concat and conv/linear layers (BN gone) is positively homogeneous in (input, biases):
``R(c·x, c·b) = c·R(x, b)``, and ``∂R/∂out`` scales with the backward seed. When the plain float64 pass overflows
(an infinite or NaN ``S``), it is rerun with the input and every conv/linear bias scaled by ``2^-k`` and the backward
seed ``2^-k``, which scales every ``W ⊙ ∂R/∂W`` by exactly ``2^-2k`` (powers of two: no rounding), and
``ln S = ln S_k + 2k ln 2``. ``k`` = 256, 512, 768, 1000 are tried in turn, which covers ``S`` up to about
``2^2000`` (e^1386); where even that overflows the score is ``+inf``. The rescaled value equals the plain one
wherever the plain one is finite (a test pins this); for layers that are not positively homogeneous (ReLU6, sigmoid,
GroupNorm) it is only an approximation, used only where the plain computation gives no number at all. Per-layer
weight rescaling, the other idea, is not exact: with skip connections the path sum is multilinear but not
homogeneous in a single layer (``x + c·f(x)``), so a layer's factor cannot be taken out.

Sentinel: ``S = 0`` (no path from the input to the output, e.g. an NB201 cell made of ``none`` edges) scores
``ln 0 = -inf``. Suite-Zero stores 0 there, which collides with a genuine ``S = 1`` and would rank a network
without any path above any network with ``S < 1``; ``-inf`` ranks it last, where it belongs (on NB201 the two
agree in rank, since every other arch has ``ln S`` > 14). After an overflow, a rescaled sum of 0 (an underflow,
possible only in a network that is not positively homogeneous) gives NaN: there is no number to report.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from zcscore.proxies.catalog import Pass
from zcscore.proxies.classic import prunable_layers, sum_arr
from zcscore.proxies.registry import pass_runner, proxy

if TYPE_CHECKING:  # the engine imports the registry: no runtime import back
    from zcscore.engine import ArchContext, PassOutputs

RESOLUTION = 32
SCALE_EXPONENTS = (256, 512, 768, 1000)  # 2^-k for the input, biases and backward seed when float64 overflows
LN2 = math.log(2.0)


def linearised_copy(net: nn.Module) -> nn.Module:
    """A float64 copy of ``net`` with ``|·|`` of every state_dict tensor and every BatchNorm replaced by identity."""
    lin = copy.deepcopy(net)
    with torch.no_grad():
        for t in lin.state_dict().values():
            if t.is_floating_point():
                t.abs_()
    for mod in list(lin.modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, _BatchNorm):
                setattr(mod, child_name, nn.Identity())
    if isinstance(lin, _BatchNorm):
        lin = nn.Identity()
    lin.double()
    lin.train()
    lin.zero_grad(set_to_none=True)
    return lin


def _output_sum(out: Any) -> torch.Tensor:
    """``torch.sum(output)``: of the tensor, or of the last item of a tuple/list (the logits)."""
    logits: torch.Tensor = out[-1] if isinstance(out, (tuple, list)) else out
    return logits.sum()


def synflow_sum(lin: nn.Module, x: torch.Tensor, scale_exp: int = 0) -> float:
    """``Σ |W ⊙ ∂R/∂W|`` of a linearised copy for input ``x`` (float64), with input/biases/seed scaled by 2^-scale_exp.

    The returned sum is the scaled one (``2^-2k`` times the unscaled sum for positively homogeneous networks).
    """
    layers = prunable_layers(lin)
    weights = [m.weight for m in layers if m.weight.requires_grad]
    scale = 2.0 ** (-scale_exp)
    saved = []
    if scale_exp:
        with torch.no_grad():
            for m in layers:
                if m.bias is not None:
                    saved.append((m.bias, m.bias.detach().clone()))
                    m.bias.mul_(scale)
        x = x * scale
    try:
        r = _output_sum(lin(x))
        if not weights or not r.requires_grad:
            return 0.0
        seed = torch.full((), scale, dtype=r.dtype, device=r.device)
        grads = torch.autograd.grad(r, weights, grad_outputs=seed, allow_unused=True)
    finally:
        with torch.no_grad():
            for b, orig in saved:
                b.copy_(orig)
    terms = [(w.detach() * g).abs() for w, g in zip(weights, grads) if g is not None]
    return sum_arr(terms, torch.float64)


def log_synflow(
    net: nn.Module, input_shape: tuple[int, ...], device: torch.device, channels_last: bool = False
) -> float:
    """``ln S`` of ``net`` (never modified): plain float64, rescaled by powers of two on overflow; ``-inf`` for 0."""
    lin = linearised_copy(net)
    x = torch.ones((1, *input_shape), dtype=torch.float64).to(device)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    for k in (0, *SCALE_EXPONENTS):
        s = synflow_sum(lin, x, k)
        if math.isfinite(s):
            if s == 0.0:  # no path; after an overflow a scaled 0 is an underflow (non-homogeneous net): no number
                return -math.inf if k == 0 else math.nan
            return math.log(s) + 2 * k * LN2
    return math.inf


@pass_runner(Pass.SYNFLOW)
def synflow_pass(ctx: ArchContext) -> float:
    """The synflow pass: ``ln S`` on a linearised float64 copy of the restored network (all-ones input, batch 1)."""
    shape = ctx.space.input_shape_for(ctx.arch) if ctx.space is not None else (3, RESOLUTION, RESOLUTION)
    return log_synflow(ctx.net, tuple(shape), ctx.device, ctx.channels_last)


@proxy("synflow")
def synflow(outputs: PassOutputs) -> float:
    """SynFlow, natural log of Σ|W ⊙ ∂R/∂W| (|weights|, BN as identity, all-ones float64 input); -inf for no path."""
    value: float = outputs[Pass.SYNFLOW]
    return value
