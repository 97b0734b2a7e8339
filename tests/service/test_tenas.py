"""TE-NAS (AZ-NAS per-arch port): NTK by hand and against the official backward loop, exact linear regions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from zcscore.engine import Engine, ScoreConfig
from zcscore.proxies.tenas import (
    NAN_CONDITION,
    linear_regions,
    ntk_condition,
    ntk_score,
    per_sample_weight_grads,
    relu_codes,
)
from zcscore.spaces.dag import EXAMPLE
from zcscore.spaces.mbv2 import MBV2Space

CHEAP = "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|none~0|skip_connect~1|avg_pool_3x3~2|"  # no cell conv
NB101_TINY = '{"matrix": [[0,1],[0,0]], "ops": ["input","output"]}'
MBV2_TINY = "r32-s16-[e1k3s1d1w16][e6k3s2d1w24se]-l64"


def _random_data(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_ntk_of_a_linear_model_by_hand():
    """logits = W x + b: d sum_k logits[i, k] / dW = 1 x_iᵀ, so NTK = K X Xᵀ (the bias is not a 'weight')."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x = torch.randn(5, 3, 2, 2)
    grads = per_sample_weight_grads(net, x)
    flat = x.flatten(1)
    assert torch.allclose(grads, flat.repeat(1, 3), atol=1e-6)
    ntk = 3 * flat @ flat.T
    eig = torch.linalg.eigvalsh(ntk)
    assert ntk_condition(grads) == pytest.approx((eig[-1] / eig[0]).item(), rel=1e-3)


def _official_grads(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The port's loop: one forward, ``logit[i:i+1].backward(ones, retain_graph)``, '*weight*' grads, zero_grad."""
    net.zero_grad()
    logit = net(x)
    rows = []
    for i in range(len(x)):
        logit[i : i + 1].backward(torch.ones_like(logit[i : i + 1]), retain_graph=True)
        rows.append(
            torch.cat([w.grad.view(-1) for n, w in net.named_parameters() if "weight" in n and w.grad is not None])
        )
        net.zero_grad()
    return torch.stack(rows)


def test_per_sample_grads_equal_the_official_loop_through_batch_stat_bn():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).train()
    x = torch.randn(6, 3, 5, 5)
    ours = per_sample_weight_grads(net, x)
    assert ours.shape == (6, 4 * 27 + 4 + 3 * 4)  # conv, BN gamma, linear weight
    assert torch.equal(ours, _official_grads(net, x))
    alone = per_sample_weight_grads(net, x[:1].repeat(2, 1, 1, 1))[0]
    assert not torch.allclose(ours[0], alone)  # BN couples the samples: not the gradient of a lone sample


def test_ntk_sentinels():
    assert ntk_score(math.nan) == -NAN_CONDITION
    assert ntk_score(math.inf) == -np.finfo(np.float64).max  # np.nan_to_num's posinf
    assert ntk_score(-4.0) == 4.0  # a negative lambda_min is kept, as in the port
    assert math.isnan(ntk_condition(torch.zeros(4, 3)))  # 0/0
    no_weights = nn.Sequential(nn.Flatten())
    assert per_sample_weight_grads(no_weights, torch.randn(3, 2)).shape == (3, 0)


def test_linear_regions_are_the_exact_official_count():
    rng = np.random.default_rng(0)
    patterns = rng.integers(0, 2, (5, 40)).astype(bool)
    codes = patterns[[0, 0, 1, 2, 2, 2, 3, 4, 4]]
    packed = np.packbits(codes, axis=1)
    a = codes.astype(np.float64)  # the port's formula, in exact arithmetic
    hamming = a @ (1 - a).T + (1 - a) @ a.T
    official = (1 / (1 - np.sign(hamming)).sum(1)).sum()
    assert linear_regions(packed) == pytest.approx(official) and linear_regions(packed) == 5.0


class TwoReLUs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.act, self.act6, self.flat_act = nn.ReLU(), nn.ReLU6(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.act6(x)  # not an nn.ReLU: not counted
        self.flat_act(x.flatten(1))  # 2-D input: not counted
        out: torch.Tensor = self.act(x)
        return out


def test_relu_codes_by_hand():
    x = torch.tensor([[1.0, -1.0], [2.0, -3.0], [-1.0, 1.0], [0.0, 0.0]]).view(4, 2, 1, 1)
    packed, finite, units = relu_codes(TwoReLUs(), x)
    assert finite and units == 2 and packed[:, 0].tolist() == [0b10000000, 0b10000000, 0b01000000, 0]
    assert linear_regions(packed) == 3.0
    none, finite, units = relu_codes(nn.Sequential(nn.Conv2d(2, 2, 1)), x)
    assert finite and units == 0 and linear_regions(none) == 1.0  # no ReLU: one linear region


def test_engine_population_and_spaces():
    config = ScoreConfig(threads=1, data=_random_data())
    records = Engine(["tenas", "tenas_ntk", "tenas_lr"], config).score_archs([CHEAP])
    assert all(r.error is None for r in records), [r.error for r in records]
    by = {r.proxy: r.score for r in records}
    assert by["tenas_ntk"] < 0 and 1 <= by["tenas_lr"] <= 64 and by["tenas"] == 2.0  # one arch: rank 1 + 1
    recs = Engine(["tenas_ntk", "tenas_lr"], config).score_archs([json.dumps(EXAMPLE)], space="dag")
    assert all(r.error is None and math.isfinite(r.score) for r in recs), [r.error for r in recs]
    for space, arch in (("nb101", NB101_TINY), ("mbv2", MBV2_TINY)):
        (rec,) = Engine(["tenas_lr"], config).score_archs([arch], space=space)
        assert rec.error is None and 1 <= rec.score <= 64, (space, rec.error)
    assert MBV2Space().unsupported("tenas_ntk") is not None and MBV2Space().unsupported("tenas_lr") is None
