"""MeCo (Jiang et al., NeurIPS 2023): minimum eigenvalue of the channel correlation of every module's feature map.

Follows the NB201 correlation script ``correlation/NAS_Bench_201.py`` of HamsterMimi/MeCo @ 0d830dd (``--measure
meco``, its defaults ``--batch_size 1 --init_w_type none --dataset cifar10 --seed 42``):

* input: **one** real CIFAR-10 training image (``next(iter(train_loader))`` with batch size 1); default PyTorch
  init; the network is never put in eval mode, so BN uses the batch statistics of that one image;
* a forward hook on **every** module of ``named_modules()`` (the network itself, containers and leaves; modules that
  are never called, such as a ``ModuleList``, contribute nothing, a module called twice contributes twice);
* per hooked output: its first sample ``out[0]`` reshaped to ``(n, -1)`` with ``n`` its first dimension (the
  channels of a ``C×H×W`` map), ``torch.corrcoef`` over the rows, NaN and ±inf entries set to 0, the minimum real
  part of ``torch.linalg.eig`` (the general, non-symmetric float32 solver);
* score = float32 sum of those minima after dropping NaN and ±inf ones. Higher is better.

So a constant channel gives a zero row/column and an eigenvalue 0; a per-sample vector output (logits, pooled
features: ``(C,)`` -> ``(C, 1)``, one value per row) has an all-NaN correlation and contributes exactly 0.

Choices and differences from the official code:

* the image is row 0 of ``ctx.data`` (CIFAR-10 train index 0, no augmentation, xautodl normalisation constants);
  the official one is a random augmented (crop + flip) training image drawn by the seed-42 shuffled loader, with
  the zero-cost-nas constants (std 0.2023, 0.1994, 0.2010);
* the official network is zero-cost-nas's ``NAS201Model``: cell convs with biases, non-affine cell BN without
  running stats, a ``top`` module (BN-ReLU-GAP) and a logits-only output. Ours is the xautodl ``TinyNetwork``:
  conv biases change nothing here (a per-channel constant leaves a correlation unchanged, and train-mode BN
  subtracts it), affine BN at its init (γ=1, β=0) computes the same map, but the default init draws different
  weights (the module creation order differs) and the module tree differs (``lastact`` and ``global_pooling``
  instead of ``top``; the root returns ``(pooled, logits)``), so the hooked set differs by a few modules whose
  per-sample outputs are vectors and contribute 0;
* a module output that is a tuple/list is read through its first tensor (the official ``data_output[0]`` on a
  tuple would take the whole first tensor and crash in ``eig`` for a batch of one); an output without a tensor, or
  whose first sample is a scalar, is skipped; a one-row sample (``n = 1``) is a 1x1 correlation (official
  ``corrcoef`` returns a scalar there and ``eig`` raises);
* the eigenvalues of equal-sized matrices are computed in one batched ``torch.linalg.eig`` call (LAPACK ``geev`` on
  each matrix, as one by one); hooks clone only the first sample, before in-place ops (``ReLU(inplace=True)``)
  can overwrite it, as the official ``clone()`` does.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from zcscore.proxies.catalog import Pass
from zcscore.proxies.features import first_tensor, forward_hooked
from zcscore.proxies.registry import pass_runner, proxy

if TYPE_CHECKING:  # the engine imports the registry: no runtime import back
    from zcscore.engine import ArchContext, PassOutputs

BATCH = 1  # the correlation script's --batch_size


def sample_rows(out: Any) -> torch.Tensor | None:
    """The first sample of a module output as an ``(n, m)`` float matrix (rows = first dim), or None to skip."""
    t = first_tensor(out)
    if t is None or t.dim() < 2 or not t.is_floating_point():
        return None
    fea = t[0].detach()
    return fea.reshape(fea.shape[0], -1).clone()


def min_correlation_eigenvalues(mats: list[torch.Tensor]) -> list[float]:
    """Per matrix: the minimum real eigenvalue (``torch.linalg.eig``) of its row correlation, NaN/inf zeroed."""
    out = [0.0] * len(mats)
    groups: dict[tuple[int, torch.dtype], list[int]] = {}
    corrs = []
    for i, m in enumerate(mats):
        with warnings.catch_warnings():  # one column (a vector sample): the official all-NaN correlation
            warnings.simplefilter("ignore", UserWarning)
            corr = torch.corrcoef(m).reshape(m.shape[0], m.shape[0])
        corr = torch.where(torch.isfinite(corr), corr, torch.zeros((), dtype=corr.dtype, device=corr.device))
        corrs.append(corr)
        groups.setdefault((corr.shape[0], corr.dtype), []).append(i)
    for idx in groups.values():
        stacked = torch.stack([corrs[i] for i in idx])
        values = torch.linalg.eig(stacked)[0].real.min(dim=-1).values  # eig, not eigvals: same LAPACK path
        for i, v in zip(idx, values.cpu().tolist()):
            out[i] = v
    return out


def meco_score(net: nn.Module, x: torch.Tensor) -> tuple[float, int]:
    """MeCo of ``net`` on the batch ``x``: sum of finite per-module minima; also how many outputs were read."""
    mats: list[torch.Tensor] = []

    def hook(_mod: nn.Module, _inp: Any, out: Any) -> None:
        rows = sample_rows(out)
        if rows is not None:
            mats.append(rows)

    forward_hooked(net, x, (m for _, m in net.named_modules()), hook, grad=False)
    values = torch.tensor(min_correlation_eigenvalues(mats), dtype=torch.float32)
    values = values[torch.isfinite(values)]
    return float(torch.sum(values).item()), len(mats)


@pass_runner(Pass.MECO)
def meco_pass(ctx: ArchContext) -> dict[str, float]:
    """MeCo on real row 0 (default init, train-mode BN as the engine restores it)."""
    x, _ = ctx.data.batch(0, BATCH)
    score, hooked = meco_score(ctx.net, ctx.to_device(x))
    return {"meco": score, "outputs": float(hooked)}


@proxy("meco")
def meco(outputs: PassOutputs) -> tuple[float, dict[str, float]]:
    """MeCo: sum over module outputs of the min eigenvalue of the channel correlation (component: outputs read)."""
    res: dict[str, float] = outputs[Pass.MECO]
    return res["meco"], {"outputs": res["outputs"]}
