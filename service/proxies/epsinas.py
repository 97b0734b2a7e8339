"""epsinas (Gracheva): output spread of a network under two constant shared weights, as the official code does it.

Protocol of ``egracheva/epsinas`` ``NAS-Bench-201/epsinas_utils.py::compute_epsinas`` (not the paper):

* one real batch, rows 0..255 of the shared CIFAR-10 subset (labels unused), float32, no gradients, NCHW
  layout even when the engine runs channels-last (the official arithmetic: channels-last kernels move the
  w = 1 outputs enough to shift scores by up to 3e-4 relative; NCHW stays within 1e-6 of the reference
  except for near-zero scores, and costs about 2x on CPU);
* for each w in ``(1e-7, 1)`` (the space's ``epsinas_weights``: NB101 uses the official ``(1e-4, 10)``, every
  other space the NB201 pair): every module's bias := 0 and every ``weight`` := w, which includes BatchNorm
  gamma (the paper says BN gamma = 1; the code sets w); BN uses batch statistics (train mode here, as
  ``track_running_stats=False`` does there);
* output = logits of the official ``num_classes=1`` net. With a constant Linear weight and zero bias every
  unit computes the same sum, so a hook makes our K-class ``classifier`` compute only unit 0 with the
  1-column kernel the official net uses (bit-identical to building a 1-class net; column 0 of the
  K-column GEMM differs in the last bits, which moves the score by up to 1e-4 relative); a net without a
  Linear ``classifier`` has its whole output flattened, as the official ``flatten()`` does;
* ``p = (y - min y) / (max y - min y)`` over the flattened vector (one min-max per weight), in numpy
  float32; then every element equal to 0 becomes NaN (so a position that is the minimum of either row
  leaves the MAE, and that element leaves the mean); ``eps = nanmean(|p_1 - p_2|) / nanmean(p)``.

Measured (wave 1, CPU, 1 thread; re-run with ``zcscore bench --compare``, docs/benchmarks.md) against
``nb201_reference_official.csv``: all 150 archs,
NaN pattern identical (54/54), max |ours - official| 3.1e-7 (relative 2.5e-4, only on near-zero scores;
~1e-6 otherwise). Speed on 12 archs in one run: 2.32 s/arch vs a floor of 2.27 s/arch (two bare NCHW
forwards of 256; channels-last forwards would take 1.12 s but move scores by up to 3e-4 relative).

Sentinel: NaN when an output is constant (0/0; at w = 1e-7 every conv path underflows to exactly 0 in
float32, so about 40 % of NB201 archs are NaN) and when the score is exactly 0 (the drivers drop those).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from zcscore.proxies.catalog import Pass
from zcscore.proxies.registry import pass_runner, proxy

if TYPE_CHECKING:  # the engine imports the registry: no runtime import back
    from zcscore.engine import ArchContext, PassOutputs

WEIGHTS = (1e-7, 1.0)
BATCH_ROWS = (0, 256)


def set_constant_weights(net: nn.Module, weight: float) -> None:
    """Official init: bias := 0 where present, ``weight`` := constant where present (BN affine included)."""
    with torch.no_grad():
        for m in net.modules():
            bias = getattr(m, "bias", None)
            if isinstance(bias, torch.Tensor):
                bias.zero_()
            w = getattr(m, "weight", None)
            if isinstance(w, torch.Tensor) and getattr(m, "affine", True):
                w.fill_(weight)


def output_vector(out: object) -> np.ndarray:
    """The prediction (last element of a tuple output) flattened to one float32 vector."""
    pred = out[-1] if isinstance(out, (tuple, list)) else out
    assert isinstance(pred, torch.Tensor)
    return pred.detach().float().cpu().numpy().reshape(-1)


def one_unit_head(net: nn.Module) -> torch.utils.hooks.RemovableHandle | None:
    """Make a ``classifier`` Linear output only its first unit, the official ``num_classes=1`` head.

    Under constant weights every unit computes the same sum, so this is the 1-unit network's output computed
    by the same 1-column kernel (column 0 of a K-column GEMM can differ in the last bits). None if the net
    has no Linear ``classifier`` (then the whole output is flattened, as the official code does).
    """
    head = getattr(net, "classifier", None)
    if not isinstance(head, nn.Linear):
        return None

    def first_unit(mod: nn.Linear, inp: tuple[torch.Tensor, ...], _out: torch.Tensor) -> torch.Tensor:
        bias = None if mod.bias is None else mod.bias[:1]
        return nn.functional.linear(inp[0], mod.weight[:1], bias)

    return head.register_forward_hook(first_unit)


def epsinas_score(outputs: list[np.ndarray]) -> float:
    """``nanmean(|p1 - p2|) / nanmean(p)`` of the min-max normalised outputs, zeros dropped; NaN sentinel."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        preds = []
        for pred in outputs:
            lo, hi = np.nanmin(pred), np.nanmax(pred)
            preds.append((pred - lo) / (hi - lo))
        if len({pred.shape for pred in preds}) != 1:
            return float("nan")
        p = np.array(preds)
        p[p == 0] = np.nan
        score = float(np.nanmean(np.abs(p[0, :] - p[1, :])) / np.nanmean(p))
    return float("nan") if score == 0 else score


@pass_runner(Pass.EPSINAS)
def epsinas_pass(ctx: ArchContext) -> list[np.ndarray]:
    """Two forwards of rows 0..255 under the two constant weights (NCHW layout); returns the output vectors."""
    net = ctx.net
    weights = ctx.space.epsinas_weights if ctx.space is not None else WEIGHTS
    x = ctx.data.rows(*BATCH_ROWS)[0].to(ctx.device)
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    outs = []
    handle = one_unit_head(net)
    try:
        if ctx.channels_last:  # the official NCHW arithmetic (channels-last moves w=1 outputs by ~1e-4 rel)
            net.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]  # torch stubs lack it
        for m in bns:  # batch statistics, no running-stat update: the official BN call
            m.track_running_stats = False
        with torch.inference_mode():
            for w in weights:
                set_constant_weights(net, w)
                outs.append(output_vector(net(x)))
    finally:
        for m in bns:
            m.track_running_stats = True
        if handle is not None:
            handle.remove()
        if ctx.channels_last:
            net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch stubs lack it
        ctx.restore()  # leave the caller's module as it was (default weights)
    return outs


@proxy("epsinas")
def epsinas(outputs: PassOutputs) -> float:
    """epsinas: MAE over mean of the two min-max normalised constant-weight outputs (NaN: constant output)."""
    return epsinas_score(outputs[Pass.EPSINAS])
