"""Zen-NAS (Lin et al., ICCV 2021): the Zen-score as AZ-NAS's NB201 port computes it.

Protocol of ``AZ-NAS/NB201/ZeroShotProxy/compute_zen_score.py`` (@ 5e6683a; the maths of
``idstcv/ZenNAS`` ``compute_zen_score.py``), ``repeat=1``, batch 64, everything under ``no_grad``:

1. re-init in ``net.modules()`` order: Conv2d and Linear weights N(0, 1) (not Kaiming), their biases 0;
   BatchNorm2d/GroupNorm gamma 1, beta 0; **running statistics are not reset** (fresh: mean 0, var 1);
2. ``x = randn(64, 3, R, R)``, ``x2 = randn(64, 3, R, R)``, ``x_mix = x + 0.01 * x2`` (drawn in that order,
   after the weights, all on the CPU generator and moved to the device, so scores do not depend on it);
3. train mode; ``Delta = mean_b sum_{c,h,w} |f(x) - f(x_mix)|`` (an L1 per image, not divided by gamma)
   with ``f`` = the features before global average pooling;
4. ``log_bn = sum over every BatchNorm2d of log(sqrt(mean_c running_var))``, read **after** the two
   forwards: with momentum 0.1 from var 1 this is ``0.81 + 0.09 v1 + 0.1 v2`` (unbiased batch variances of
   the two passes), the official quirk, kept;
5. score = ``log(Delta) + log_bn`` in float32, as the official torch arithmetic.

``f`` on our networks: hooks on every module keep the **last 4-D module output that is not a global
pooling** (an ``AdaptiveAvg/MaxPool2d``, or an ``Avg/MaxPool2d`` whose output is 1x1 from a larger input,
and any module returning that same tensor). On the NB201 TinyNetwork that is the output of ``lastact``
(BN + ReLU), exactly the official ``forward_pre_GAP`` (stem -> cells -> lastact; residuals kept); on NB101
the last cell (the head is a functional mean), on MobileNetV2 the head conv, on a DAG the last 4-D node.
A network with no 4-D module output uses its output (the last item of a tuple), summed over all
non-batch dims. The classifier also runs (the official port skips it): under ``no_grad`` and with no BN
after it, it changes nothing. A BatchNorm2d without running statistics adds 0 (the official code would fail).

Versus the published NB201 table (NAS-Bench-Suite-Zero, NASLib ``zen.py``: the same maths): the input is
Gaussian, so a score moves with the seed (arch 0: 181-185 over seeds vs 184.95 published).

Sentinel: ``-inf`` when ``Delta = 0`` (identical pre-GAP features, e.g. an NB201 cell whose output is always
0; ``log(0)`` as the official code computes it; Suite-Zero stores -1e8 for these 341 archs); NaN when the
features or BN statistics are not finite.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from zcscore.proxies.catalog import Pass
from zcscore.proxies.registry import pass_runner, proxy

if TYPE_CHECKING:  # the engine imports the registry: no runtime import back
    from zcscore.engine import ArchContext, PassOutputs

BATCH, RESOLUTION = 64, 32
MIXUP_GAMMA = 1e-2
_GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_POOLS = (nn.AvgPool2d, nn.MaxPool2d, nn.LPPool2d)


def _normal_cpu_(w: torch.Tensor) -> None:
    """``nn.init.normal_(w)`` drawn on the CPU generator in logical order, whatever the device or layout."""
    if w.device.type == "cpu" and w.is_contiguous():
        nn.init.normal_(w)
    else:
        w.copy_(torch.randn(w.shape, dtype=w.dtype))


def gaussian_init(net: nn.Module) -> nn.Module:
    """The official ``network_weight_gaussian_init`` (same module order and RNG consumption)."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                _normal_cpu_(m.weight)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None and m.bias is not None:
                m.weight.fill_(1.0)
                m.bias.zero_()
    return net


def _output_of(out: Any) -> torch.Tensor | None:
    if isinstance(out, (tuple, list)):
        out = out[-1] if out else None
    return out if isinstance(out, torch.Tensor) else None


def pre_gap_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The features before global average pooling (see the module docstring): one forward with hooks."""
    pooled: list[torch.Tensor] = []  # global-pooling outputs (kept alive so their ids stay unique)
    last: list[torch.Tensor] = []

    def hook(module: nn.Module, inp: Any, out: Any) -> None:
        if not isinstance(out, torch.Tensor) or out.dim() != 4:
            return
        if any(out is p for p in pooled):
            return
        if isinstance(module, _GLOBAL_POOLS):
            pooled.append(out)
            return
        if isinstance(module, _POOLS) and out.shape[2:] == (1, 1):
            src = inp[0] if isinstance(inp, tuple) and inp else None
            if isinstance(src, torch.Tensor) and src.dim() == 4 and src.shape[2] * src.shape[3] > 1:
                pooled.append(out)
                return
        last[:] = [out]

    handles = [m.register_forward_hook(hook) for m in net.modules()]
    try:
        y = net(x)
    finally:
        for h in handles:
            h.remove()
    if last:
        return last[0]
    out = _output_of(y)
    if out is None:
        raise TypeError(f"{type(net).__name__} returned no tensor")
    return out


def bn_log_scale(net: nn.Module) -> torch.Tensor:
    """``sum over BatchNorm2d of log(sqrt(mean(running_var)))`` in float32 (0 without any)."""
    total = torch.zeros(())
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d) and m.running_var is not None:
            total = total.to(m.running_var.device) + torch.log(torch.sqrt(torch.mean(m.running_var)))
    return total


def zen_score(
    net: nn.Module,
    device: torch.device,
    input_shape: Sequence[int] = (3, RESOLUTION, RESOLUTION),
    channels_last: bool = False,
    batch: int = BATCH,
) -> dict[str, float]:
    """Re-init ``net``, draw the inputs, run the two forwards; the score and its two terms."""
    net.train()
    with torch.no_grad():
        gaussian_init(net)
        x = torch.randn(batch, *input_shape)
        x2 = torch.randn(batch, *input_shape)
        mix = x + MIXUP_GAMMA * x2
        feats = []
        for inp in (x, mix):
            inp = inp.to(device)
            if channels_last and inp.dim() == 4:
                inp = inp.contiguous(memory_format=torch.channels_last)
            feats.append(pre_gap_features(net, inp))
        f1, f2 = feats
        diff = torch.abs(f1 - f2)
        per_image = torch.sum(diff, dim=[1, 2, 3]) if diff.dim() == 4 else torch.sum(diff.flatten(1), dim=1)
        delta = torch.mean(per_image)
        log_bn = bn_log_scale(net)
        score = (torch.log(delta) + log_bn.to(delta.device)).item()
    return {"zen": score, "delta": delta.item(), "log_bn": log_bn.item()}


def _sentinel(value: float) -> float:
    """``-inf`` stays (log 0); any other non-finite value is NaN."""
    return value if math.isfinite(value) or value == -math.inf else math.nan


@pass_runner(Pass.ZEN)
def zen_pass(ctx: ArchContext) -> dict[str, float]:
    """N(0,1) re-init, Gaussian 64 x the space's input and its 1e-2 perturbation, train mode."""
    shape = ctx.space.input_shape_for(ctx.arch) if ctx.space is not None else (3, RESOLUTION, RESOLUTION)
    return zen_score(ctx.net, ctx.device, shape, ctx.channels_last)


@proxy("zen")
def zen(outputs: PassOutputs) -> tuple[float, dict[str, float]]:
    """Zen-score: ``log(Delta) + log_bn`` (-inf for identical pre-GAP features, NaN if non-finite)."""
    out: dict[str, float] = outputs[Pass.ZEN]
    score = _sentinel(out["zen"])
    if math.isnan(out["delta"]) or math.isnan(out["log_bn"]):
        score = math.nan
    return score, {"log_delta": math.log(out["delta"]) if out["delta"] > 0 else -math.inf, "log_bn": out["log_bn"]}
