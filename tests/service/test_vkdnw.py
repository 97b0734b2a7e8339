"""VKDNW: Cholesky factor, Jacobian paths, decile entropy, jacov, dim, and runs on other spaces."""

from __future__ import annotations

import json
import math

import numpy as np
import proxykit
import pytest
import torch
from torch import nn

from zcscore.data import ArrayData
from zcscore.engine import Engine, ScoreConfig
from zcscore.proxies.vkdnw import (
    cholesky_factor,
    fast_selected_jacobian,
    fisher_entropy,
    jacov_score,
    selected_jacobian,
)
from zcscore.spaces.dag import DagSpace
from zcscore.spaces.mbv2 import MBV2Space
from zcscore.spaces.nb201 import NB201Arch
from zcscore.spaces.nb201_net import build_nb201

CHEAP_ARCH = "|skip_connect~0|+|none~0|avg_pool_3x3~1|+|avg_pool_3x3~0|skip_connect~1|skip_connect~2|"


def random_data(n: int = 64) -> ArrayData:
    return proxykit.random_data(n, seed=3)


def test_cholesky_factor_reproduces_the_smoothed_covariance() -> None:
    logits = torch.randn(5, 10, generator=torch.Generator().manual_seed(0)) * 3
    low = cholesky_factor(logits)
    alpha = torch.tensor(0.05, dtype=torch.float16)
    p = torch.softmax(logits, 1) * (1 - alpha) + alpha / 10
    assert abs(float(1 - alpha) - 0.9501953125) < 1e-12  # the float16 quirk: the smoothed p does not sum to 1
    cov = torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)
    assert torch.equal(low, torch.tril(low))
    assert torch.allclose(low @ low.transpose(1, 2), cov, atol=1e-3)  # the official back-test tolerance


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=True)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 5, 3, stride=1, padding=0, bias=False)
        self.fc = nn.Linear(5, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.conv2(torch.relu(self.bn(self.conv(x)))))
        pooled = h.mean((2, 3))
        return pooled, self.fc(pooled)


def test_closed_form_jacobian_matches_torch_func_and_finite_differences() -> None:
    torch.manual_seed(0)
    net = Tiny().double()
    with torch.no_grad():  # non-trivial running stats for the eval-mode BN
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
    net.eval()
    x = torch.randn(6, 3, 9, 9, dtype=torch.float64)
    fast = fast_selected_jacobian(net, x.clone())
    ref = selected_jacobian(net, x.clone())
    assert fast is not None and fast.shape == ref.shape == (6, 10, 7)
    assert torch.allclose(fast, ref, atol=1e-10)
    # a finite difference on element 0 of conv2.weight (4th tensor)
    eps = 1e-6
    with torch.no_grad():
        base = net(x)[1]
        net.conv2.weight.view(-1)[0] += eps
        moved = net(x)[1]
    assert torch.allclose((moved - base) / eps, ref[:, :, 4], atol=1e-4)


def test_closed_form_falls_back_for_other_modules() -> None:
    net = nn.Sequential(nn.Flatten(), nn.LayerNorm(12), nn.Linear(12, 10)).eval()
    assert fast_selected_jacobian(net, torch.randn(2, 3, 2, 2)) is None
    assert selected_jacobian(net, torch.randn(2, 3, 2, 2)).shape == (2, 10, 4)


def test_fisher_entropy_of_known_spectrum_and_sentinels() -> None:
    lam = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.1], dtype=np.float32)
    ent, deciles = fisher_entropy(torch.diag(torch.from_numpy(lam)))
    q = np.quantile(np.sort(lam), np.arange(1, 10) / 10)  # linear interpolation, as torch.quantile
    t = q / (np.abs(q).sum() + 1e-10)
    assert len(deciles) == 9 and np.allclose(deciles, q, rtol=1e-5)
    assert ent == pytest.approx(float(-(t * np.log(t + 1e-10)).sum()), rel=1e-5)
    assert 0.0 < ent <= math.log(9) + 1e-6
    assert fisher_entropy(torch.full((3, 3), math.nan))[0] == 0.0  # the official SVD-failure zeros(2)
    assert fisher_entropy(torch.zeros((0, 0)))[0] == 0.0


def test_jacov_score_hand_checked() -> None:
    k = 1e-5
    orthogonal = np.array([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, 1.0]])
    assert jacov_score(orthogonal) == pytest.approx(-3 * (math.log(1 + k) + 1 / (1 + k)))
    same = np.tile(np.array([[0.0, 1.0, 2.0]]), (2, 1))  # correlation all ones: eigenvalues 0 and 2
    assert jacov_score(same) == pytest.approx(-(math.log(k) + 1 / k + math.log(2 + k) + 1 / (2 + k)), rel=1e-6)
    assert math.isnan(jacov_score(np.ones((3, 4))))  # constant rows: corrcoef NaN


def test_dim_counts_parameter_tensors() -> None:
    arch = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    convs = sum(op.startswith("nor_conv") for op in NB201Arch.parse(arch).ops)
    (rec,) = Engine(["vkdnw_dim"]).score_archs([arch])
    assert rec.score == 21 + 3 * convs * 15 == len(list(build_nb201(arch).parameters()))


def test_engine_scores_nb201_nb101_and_dag() -> None:
    config = ScoreConfig(data=random_data())
    (ent, jac) = Engine(["vkdnw_entropy", "vkdnw_jacov"], config).score_archs([CHEAP_ARCH])
    assert ent.error is None and 0.0 <= ent.score <= math.log(9) + 1e-6 and len(ent.components) == 9
    assert jac.error is None and math.isfinite(jac.score)
    again = Engine(["vkdnw_entropy"], ScoreConfig(data=random_data())).score_archs([CHEAP_ARCH])[0]
    assert again.score == ent.score  # seeded and restored: reproducible
    small_dag = {
        "input": [3, 16, 16],
        "nodes": [
            {"id": "c", "op": "conv", "in": ["input"], "out": 4, "k": 3},
            {"id": "b", "op": "bn", "in": ["c"]},
            {"id": "r", "op": "relu", "in": ["b"]},
            {"id": "g", "op": "gap", "in": ["r"]},
            {"id": "fc", "op": "linear", "in": ["g"], "out": 10},
        ],
        "output": "fc",
    }
    text = json.dumps(small_dag)
    recs = Engine(["vkdnw_entropy", "vkdnw_jacov", "vkdnw_dim"], config).score_archs([text], space="dag")
    assert all(r.error is None for r in recs), [r.error for r in recs]
    space = DagSpace()
    assert math.isfinite(recs[0].score) and recs[2].score == len(list(space.build(space.parse(text)).parameters()))


def test_mbv2_declares_jacov_unsupported() -> None:
    space = MBV2Space()
    assert space.unsupported("vkdnw_jacov") is not None
    assert space.unsupported("vkdnw_entropy") is None and space.unsupported("vkdnw_dim") is None
