"""AZ-NAS (Lee & Ham, CVPR 2024): expressivity, progressivity and trainability from one shared pass.

Follows ``NB201/ZeroShotProxy/compute_az_nas_score.py`` of cvlab-yonsei/AZ-NAS @ 5e6683a: kaiming-normal
fan-in re-init (``model.apply`` order), ``torch.randn(64,3,32,32)`` drawn after the init, train-mode BN,
the 18 cell features, float32 ``eigvalsh``/``svdvals``, Rademacher VJPs for blocks 17..1, NaN -> -inf.

Choices beyond the official code (which only runs NB201 and crashes on non-finite matrices):

* every random draw is made on the CPU generator in the official order and moved to the device, so the
  scores do not depend on the device or on the memory layout;
* the Rademacher signs are drawn with ``torch.randint(0, 2**24)``, which reads the generator exactly as
  ``torch.bernoulli(0.5)`` does (one 32-bit word per element, success iff the low 24 bits < 2**23) and
  turned into ±1.0 by moving bit 23 into the float sign bit; a test pins the equivalence;
* a reduction block's VJP is unshuffled straight into ``(B*H*W, 4C)`` rows (one copy, PixelUnshuffle's
  channel order); generic modules may reduce H and W by different integer factors;
* a non-finite covariance or VJP matrix gives NaN for that feature/block (so -inf) instead of an error;
* modules without ``extract_cell_features`` use, as features, the outputs of their top-level children
  applied in sequence (``[x, module(x)]`` for a module with fewer than two children); outputs of rank 2
  or 3 are read as ``(B, C, L, 1)``; a reduction whose sizes do not divide evenly is left out of the mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from zcscore.proxies.catalog import Pass
from zcscore.proxies.features import feature_modules, hooked_features
from zcscore.proxies.registry import pass_runner, proxy

if TYPE_CHECKING:  # the engine imports the registry: no runtime import back
    from zcscore.engine import ArchContext, PassOutputs

BATCH, RESOLUTION = 64, 32
_HALF = 1 << 23  # randint(0, 2**24) < 2**23  <=>  bernoulli(0.5) == 1
_ONE_F32 = 0x3F800000  # bit pattern of float32 1.0


def _kaiming_fanin(m: nn.Module) -> None:
    """The official ``kaiming_normal_fanin_init``, with the weights drawn on the CPU generator."""
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        w = m.weight
        with torch.no_grad():
            if w.device.type == "cpu" and w.is_contiguous():
                nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu")
            else:  # draw in logical order on the CPU, whatever the device or layout
                w.copy_(nn.init.kaiming_normal_(torch.empty(w.shape), mode="fan_in", nonlinearity="relu"))
            if m.bias is not None:
                m.bias.zero_()
    elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.affine:
        with torch.no_grad():
            m.weight.fill_(1.0)
            m.bias.zero_()


def reinit_kaiming_fanin(net: nn.Module) -> nn.Module:
    """Re-initialise ``net`` as AZ-NAS does (same module order and RNG consumption as ``model.apply``)."""
    return net.apply(_kaiming_fanin)


def rademacher(shapes: list[torch.Size], channels_last: bool = False) -> list[torch.Tensor]:
    """±1 tensors, bit-identical to successive ``(torch.bernoulli(0.5*ones(s)) - 0.5) * 2`` on the CPU RNG."""
    sizes = [math.prod(s) for s in shapes]
    bits = torch.randint(0, 1 << 24, (sum(sizes),), dtype=torch.int32)
    out = []
    for chunk, shape in zip(torch.split(bits, sizes), shapes):
        word = chunk.view(shape)
        if channels_last and len(shape) == 4:
            word = word.contiguous(memory_format=torch.channels_last)
        # bit 23 set <=> bernoulli gave 0 <=> -1: move it to the sign bit of the float 1.0 (0x3F800000)
        word.bitwise_and_(_HALF).bitwise_left_shift_(8).bitwise_or_(_ONE_F32)
        out.append(word.view(torch.float32))
    return out


def as_bchw(t: torch.Tensor) -> torch.Tensor:
    """View a feature as ``(B, C, H, W)``: rank 2 -> ``(B, C, 1, 1)``, rank 3 -> ``(B, C, L, 1)``."""
    if t.dim() == 4:
        return t
    return t.reshape(t.shape[0], t.shape[1] if t.dim() > 1 else 1, -1, 1)


def rows(t: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B*H*W, C)`` (free for channels-last tensors)."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def feature_covariance(feat: torch.Tensor) -> torch.Tensor:
    """Channel covariance ``XᵀX/N`` of the centred ``(B*H*W, C)`` feature matrix, in the feature's dtype."""
    return rows_covariance(rows(as_bchw(feat.detach())))


def rows_covariance(x: torch.Tensor) -> torch.Tensor:
    """``XᵀX/N`` of the centred ``(N, C)`` matrix ``x`` (the batched path calls it per arch, for equal bits)."""
    x = x - x.mean(dim=0, keepdim=True)
    return torch.mm(x.t(), x) / x.shape[0]


def _finite_or_zero(mats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-finite matrices replaced by zeros, plus the per-matrix finiteness flags (no device sync)."""
    ok = torch.isfinite(mats).flatten(-2).all(-1)
    return torch.where(ok[..., None, None], mats, torch.zeros((), dtype=mats.dtype, device=mats.device)), ok


def eigen_entropy(sigmas: torch.Tensor) -> torch.Tensor:
    """``-Σ p log(p + 1e-8)`` with ``p = λ/Σλ`` per covariance ``(..., C, C)``; negative λ kept (official)."""
    safe, ok = _finite_or_zero(sigmas)
    try:
        s = torch.linalg.eigvalsh(safe)
    except RuntimeError:  # LAPACK did not converge: retry one by one, NaN for the failures
        if sigmas.shape[0] == 1:
            return torch.full((1,), math.nan)
        return torch.cat([eigen_entropy(m[None]) for m in sigmas])
    p = s / s.sum(dim=-1, keepdim=True)
    ent = ((-p) * torch.log(p + 1e-8)).sum(dim=-1)
    return torch.where(ok, ent, math.nan)


def unshuffled_rows(g: torch.Tensor, rh: int, rw: int) -> torch.Tensor:
    """``rows(pixel_unshuffle(g))`` in one copy: ``(B*H/rh*W/rw, C*rh*rw)``, PixelUnshuffle's channel order."""
    b, c, h, w = g.shape
    blocks = g.reshape(b, c, h // rh, rh, w // rw, rw).permute(0, 2, 4, 1, 3, 5)
    return blocks.reshape(-1, c * rh * rw)


def top_singular_value(g_in: torch.Tensor, g_out: torch.Tensor) -> torch.Tensor | None:
    """Largest singular value of ``G_inᵀ G_out / (B*H*W)``; reduction blocks unshuffled to the output size.

    ``None`` when the input's spatial size is not a multiple of the output's (generic modules only).
    """
    g_in, g_out = as_bchw(g_in), as_bchw(g_out)
    (hi, wi), (ho, wo) = g_in.shape[2:], g_out.shape[2:]
    if hi % ho or wi % wo:
        return None
    x = rows(g_in) if (hi, wi) == (ho, wo) else unshuffled_rows(g_in, hi // ho, wi // wo)
    mat = torch.mm(x.t(), rows(g_out)) / (g_out.shape[0] * ho * wo)
    if mat.shape[0] < mat.shape[1]:
        mat = mat.t()
    safe, ok = _finite_or_zero(mat)
    return torch.where(ok, torch.linalg.svdvals(safe).max(), math.nan)


def block_score(sigma: float) -> float:
    """AZ-NAS trainability of one block: ``-σ - 1/(σ + 1e-6) + 2`` (0 at σ = 1)."""
    return -sigma - 1.0 / (sigma + 1e-6) + 2.0


def collect_features(net: nn.Module, x: torch.Tensor, names: Sequence[str] | None = None) -> list[torch.Tensor]:
    """Cell features: the outputs of the modules called ``names`` (hooks) when given; else
    ``extract_cell_features`` where defined; else the top-level children applied in sequence."""
    if names:
        return hooked_features(net, x, feature_modules(net, names))
    extract = getattr(net, "extract_cell_features", None)
    if callable(extract):
        return list(extract(x))
    children = list(net.children())
    if len(children) < 2:
        return [x, net(x)]
    feats = [children[0](x)]
    for child in children[1:]:
        feats.append(child(feats[-1]))
    return feats


def _entropies(feats: list[torch.Tensor]) -> list[float]:
    """Eigen-entropy of each feature; covariances of equal size share one batched ``eigvalsh``."""
    sigmas = [feature_covariance(f) for f in feats]
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(sigmas):
        groups.setdefault(s.shape[0], []).append(i)
    out = [math.nan] * len(sigmas)
    for idx in groups.values():
        for i, e in zip(idx, eigen_entropy(torch.stack([sigmas[i] for i in idx])).tolist()):
            out[i] = e
    return out


def _trainability(feats: list[torch.Tensor], device: torch.device, channels_last: bool) -> list[float]:
    """Score of blocks L..1 (in that order, as the RNG is consumed): σ-score, or -inf for identity blocks."""
    order = list(reversed(range(1, len(feats))))
    signs = rademacher([feats[i].shape for i in order], channels_last)
    sigmas: list[torch.Tensor] = []
    identity: list[bool] = []
    for i, g_out in zip(order, signs):
        g_out = g_out.to(device, non_blocking=True)
        (g_in,) = torch.autograd.grad(feats[i], feats[i - 1], grad_outputs=g_out, allow_unused=True)
        g_in = torch.zeros_like(feats[i - 1]) if g_in is None else g_in
        ident = g_in.shape == g_out.shape and torch.equal(g_in, g_out)
        sigma = None if ident else top_singular_value(g_in, g_out)
        if ident or sigma is not None:  # blocks that cannot be compared are left out
            identity.append(ident)
            sigmas.append(torch.zeros((), device=device) if sigma is None else sigma.float())
        del g_in, g_out
    values = torch.stack(sigmas).cpu().tolist() if sigmas else []
    return [-math.inf if ident else block_score(s) for s, ident in zip(values, identity)]


def _finite_or_neg_inf(value: float) -> float:
    return -math.inf if math.isnan(value) else float(value)


def az_scores(
    net: nn.Module,
    device: torch.device,
    channels_last: bool = False,
    input_shape: Sequence[int] = (3, RESOLUTION, RESOLUTION),
    feature_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Re-init ``net`` (train mode), draw the input and return the three AZ-NAS sub-scores and their parts.

    The Gaussian batch has the space's input shape (NB201/NB101: 3x32x32; MobileNetV2: 3xRxR, the papers'
    ImageNet protocol).
    """
    net.train()
    reinit_kaiming_fanin(net)
    x = torch.randn(BATCH, *input_shape).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)  # features stay differentiable even for parameter-free modules
    feats = collect_features(net, x, feature_names)
    ent = _entropies(feats)
    blocks = _trainability(feats, device, channels_last)
    del feats
    return summarize(ent, blocks)


def summarize(ent: list[float], blocks: list[float]) -> dict[str, Any]:
    """The pass's result from the feature entropies and the block scores (shared with the batched path)."""
    steps = [b - a for a, b in pairwise(ent)]
    trainability = sum(blocks) / len(blocks) if blocks else math.nan  # NaN and -inf propagate as in np.mean
    progressivity = math.nan if not steps or any(math.isnan(s) for s in steps) else min(steps)
    return {
        "expressivity": _finite_or_neg_inf(sum(ent)),
        "progressivity": _finite_or_neg_inf(progressivity),
        "trainability": _finite_or_neg_inf(trainability),
        "entropies": ent,
        "block_scores": blocks,
    }


@pass_runner(Pass.AZ)
def az_pass(ctx: ArchContext) -> dict[str, Any]:
    """The shared AZ-NAS pass on a freshly restored context (the engine restores the network afterwards)."""
    shape = ctx.space.input_shape_for(ctx.arch) if ctx.space is not None else (3, RESOLUTION, RESOLUTION)
    return az_scores(ctx.net, ctx.device, ctx.channels_last, shape, ctx.config.feature_modules)


@proxy("az_expressivity")
def az_expressivity(outputs: PassOutputs) -> float:
    """AZ-NAS expressivity: sum over the features of their eigen-entropy (-inf if NaN)."""
    az: dict[str, float] = outputs[Pass.AZ]
    return az["expressivity"]


@proxy("az_progressivity")
def az_progressivity(outputs: PassOutputs) -> float:
    """AZ-NAS progressivity: minimum entropy increase between consecutive features (-inf if NaN)."""
    az: dict[str, float] = outputs[Pass.AZ]
    return az["progressivity"]


@proxy("az_trainability")
def az_trainability(outputs: PassOutputs) -> float:
    """AZ-NAS trainability: mean block score over the Rademacher VJPs (-inf for an identity block)."""
    az: dict[str, float] = outputs[Pass.AZ]
    return az["trainability"]
