"""Static proxies counted from the module: parameters and FLOPs (NATS-Bench convention)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from zcscore.proxies.catalog import Pass
from zcscore.proxies.registry import pass_runner, proxy

if TYPE_CHECKING:  # the engine imports the registry: no runtime import back
    from zcscore.engine import ArchContext, PassOutputs


def count_flops(net: nn.Module, input_shape: tuple[int, ...] = (1, 3, 32, 32)) -> float:
    """FLOPs (M) of one forward as xautodl ``get_model_infos`` counts them (the NATS-Bench API value).

    Conv2d: ``k_h*k_w*C_in*C_out/groups*H_out*W_out`` (+ ``C_out*H_out*W_out`` with bias); Linear:
    ``in*out + out``. Pooling, BN, ReLU and additions are not counted. Divided by the batch size.
    """
    total = 0.0

    def conv_hook(mod: nn.Conv2d, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = mod.kernel_size
        per_pos = kh * kw * mod.in_channels * mod.out_channels / mod.groups
        positions = out.shape[0] * out.shape[2] * out.shape[3]
        total += per_pos * positions + (mod.out_channels * positions if mod.bias is not None else 0)

    def linear_hook(mod: nn.Linear, inp: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        nonlocal total
        rows = inp[0].numel() // mod.in_features
        total += rows * (mod.in_features * mod.out_features + (mod.out_features if mod.bias is not None else 0))

    handles = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = net.training
    try:
        net.eval()
        param = next(net.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            net(torch.zeros(input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    return total / input_shape[0] / 1e6


def count_params(net: nn.Module) -> float:
    """Parameters (M), BN affine parameters included (NATS-Bench ``params``)."""
    return sum(p.numel() for p in net.parameters()) / 1e6


@pass_runner(Pass.STATIC)
def static_pass(ctx: ArchContext) -> dict[str, float]:
    """Params and FLOPs of the network (no randomness, no gradients)."""
    flops = None
    if ctx.space is not None:  # a closed form where the space has one (NB201: identical to the hook count, tested)
        flops = ctx.space.flops_m(ctx.arch, ctx.config.num_classes)
    if flops is None:
        shape = ctx.space.input_shape_for(ctx.arch) if ctx.space is not None else (3, 32, 32)
        flops = count_flops(ctx.net, (1, *shape))
    return {"params": count_params(ctx.net), "flops": flops}


@proxy("params")
def params(outputs: PassOutputs) -> float:
    """Number of parameters in millions."""
    static: dict[str, float] = outputs[Pass.STATIC]
    return static["params"]


@proxy("flops")
def flops(outputs: PassOutputs) -> float:
    """FLOPs in millions (NATS-Bench convention)."""
    static: dict[str, float] = outputs[Pass.STATIC]
    return static["flops"]


@proxy("az_complexity")
def az_complexity(outputs: PassOutputs) -> float:
    """AZ-NAS complexity term: FLOPs, as the official notebook takes them from the NATS API."""
    static: dict[str, float] = outputs[Pass.STATIC]
    return static["flops"]
