"""InTrain: hand-checked PR and gradient health, the pass on real NB201 nets, determinism and sentinels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from zcscore.engine import Engine, ScoreConfig
from zcscore.proxies.intrain import (
    RIDGE,
    CovarianceStats,
    gradient_health,
    intrain_score,
    participation_ratio,
)

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
ZERO_CELL = "|none~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|none~1|none~2|"  # cell output is all zero
NAMES = ["intrain", "intrain_pr", "intrain_grad", "intrain_add"]


@pytest.mark.parametrize(
    ("diag", "expected"),
    [([1.0, 1.0, 1.0, 1.0], 4.0), ([1.0, 0.0, 0.0], 1.0), ([1.0, 1.0, 0.0, 0.0], 2.0), ([3.0, 1.0], 1.6)],
)
def test_pr_of_diagonal_covariances(diag, expected):
    assert participation_ratio(torch.diag(torch.tensor(diag, dtype=torch.float64))) == pytest.approx(expected)


def test_pr_is_rotation_invariant():
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    cov = q @ torch.diag(torch.tensor([3.0, 1.0, 0.0], dtype=torch.float64)) @ q.T
    assert participation_ratio(cov) == pytest.approx(16 / 10)


def test_pr_of_zero_covariance_with_ridge_is_channel_count():
    acc = CovarianceStats()
    acc.add(torch.zeros(2, 5, 3, 3))
    assert participation_ratio(acc.covariance()) == pytest.approx(5.0)
    assert math.isnan(participation_ratio(torch.zeros(3, 3, dtype=torch.float64)))


def test_covariance_is_centred_over_positions_and_incremental():
    x = torch.randn(6, 4, 5, 5, generator=torch.Generator().manual_seed(1)) + 3.0
    rows = x.permute(0, 2, 3, 1).reshape(-1, 4).double().numpy()
    expected = np.cov(rows, rowvar=False, bias=True) + RIDGE * np.eye(4)
    whole, parts = CovarianceStats(), CovarianceStats()
    whole.add(x)
    parts.add(x[:2])
    parts.add(x[2:])
    np.testing.assert_allclose(whole.covariance().numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(parts.covariance().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_gradient_health_on_known_gradients():
    assert gradient_health(torch.tensor([1.0, -1.0]), unbiased=False) == pytest.approx(1.0)
    assert gradient_health(torch.tensor([1.0, -1.0])) == 1.0  # unbiased std sqrt(2), capped at 1
    assert gradient_health(torch.tensor([0.0, 0.0, 0.0, 4.0])) == pytest.approx(0.5)  # std 2 (ddof 1), max 4
    assert gradient_health(torch.tensor([0.0, 0.0, 0.0, 4.0]), unbiased=False) == pytest.approx(math.sqrt(3) / 4)
    assert gradient_health(torch.tensor([2.0, 2.0])) == 0.0  # no spread
    assert gradient_health(torch.zeros(7)) == 0.0  # dead tensor
    assert gradient_health(torch.tensor([5.0])) == 0.0  # one element: no unbiased std, counted as 0
    assert math.isnan(gradient_health(torch.tensor([1.0, float("nan")])))


def test_intrain_formula():
    assert intrain_score(10.0, 3.0, 7) == pytest.approx(10.0 * 4.0 / math.log(8))
    assert math.isnan(intrain_score(1.0, 1.0, 0))


def _scores(arch: str, **config) -> dict[str, object]:
    records = Engine(NAMES, ScoreConfig(threads=1, **config)).score_archs([arch])
    return {r.proxy: r for r in records}


def test_pass_on_nb201_is_consistent_and_deterministic():
    first, second = _scores(ARCH), _scores(ARCH)
    for name in NAMES:
        assert first[name].error is None
        assert math.isfinite(first[name].score)
        assert first[name].score == second[name].score  # seeded: bit-identical
    comps = first["intrain"].components
    gamma, o, layers = comps["gamma"], comps["o"], int(comps["layers"])
    assert layers == 1 + 15 * 3 + 2 * 3 + 1  # stem + 3 convs/cell x 15 + 2x(2 convs + shortcut) + classifier
    assert first["intrain_pr"].score == gamma and first["intrain_grad"].score == o
    assert first["intrain"].score == pytest.approx(gamma * (1 + o) / math.log(layers + 1))
    assert first["intrain_add"].score == pytest.approx(gamma + o)
    assert 0 < gamma <= sum(math.log(c) for c in [16] * 16 + [32] * 18 + [64] * 18 + [10])


def test_memory_layout_moves_the_score_only_by_rounding():
    # train-mode BN backward cancels heavily, so per-tensor h moves by ~1% between layouts (0.16% on I here)
    a, b = _scores(ARCH, channels_last=True), _scores(ARCH, channels_last=False)
    assert a["intrain_pr"].score == pytest.approx(b["intrain_pr"].score, rel=1e-5)
    assert a["intrain"].score == pytest.approx(b["intrain"].score, rel=1e-2)


def test_zero_cell_arch_is_finite_not_an_error():
    rec = _scores(ZERO_CELL)
    for name in NAMES:
        assert rec[name].error is None and math.isfinite(rec[name].score)
    assert rec["intrain_grad"].score < _scores(ARCH)["intrain_grad"].score


def test_pass_leaves_no_gradients_and_weights_unchanged():
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    )
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rec = {r.proxy: r for r in Engine(NAMES, ScoreConfig(threads=1)).score_module(net)}
    assert all(math.isfinite(rec[n].score) for n in NAMES)
    assert rec["intrain"].components["layers"] == 2
    assert all(p.grad is None for p in net.parameters())
    for k, v in before.items():
        assert torch.equal(net.state_dict()[k], v)


class _Exploding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        self.fc = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean((2, 3)) * float("inf"))


def test_non_finite_network_gives_nan_sentinel():
    rec = {r.proxy: r for r in Engine(NAMES, ScoreConfig(threads=1)).score_module(_Exploding())}
    for name in ("intrain", "intrain_pr", "intrain_add"):
        assert rec[name].error is None and math.isnan(rec[name].score)
