"""SWAP: pattern counting against torch.unique, hand-checked nets, the size prior, and runs on other spaces."""

from __future__ import annotations

import math

import proxykit
import pytest
import torch
from torch import nn

from zcscore.data import ArrayData
from zcscore.engine import Engine, ScoreConfig
from zcscore.proxies.swap import MU_K, SIGMA_K, PatternCounter, count_parameters_k, regular_factor, swap_value
from zcscore.spaces.mbv2 import MBV2Space

CHEAP_ARCH = "|skip_connect~0|+|none~0|avg_pool_3x3~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_1x1~2|"


def random_data(n: int = 16) -> ArrayData:
    return proxykit.random_data(n, seed=7)


def test_pattern_count_equals_unique_rows_of_the_sign_matrix() -> None:
    g = torch.Generator().manual_seed(0)
    acts = [torch.relu(torch.randn(16, 3, 4, 4, generator=g)), torch.relu(torch.randn(16, 2, 3, 3, generator=g) - 1)]
    counter = PatternCounter(16, torch.device("cpu"))
    for a in acts:
        counter.add(a)
    matrix = torch.cat([a.reshape(16, -1) for a in acts], 1)
    assert counter.count() == torch.unique(torch.sign(matrix).T, dim=0).shape[0]  # the official count


def test_hand_checked_relu_patterns() -> None:
    # 3 samples, 1 channel, 1x2 pixels: neuron patterns (1,0,1) and (1,0,1) again -> 1 distinct; then a third neuron
    x = torch.tensor([[[[1.0, 2.0]]], [[[-1.0, -3.0]]], [[[4.0, 5.0]]]])
    assert swap_value(nn.Sequential(nn.ReLU()), x) == 1.0
    x[1, 0, 0, 1] = 1.0  # second neuron now (1,1,1)
    assert swap_value(nn.Sequential(nn.ReLU()), x) == 2.0
    assert swap_value(nn.Sequential(nn.Flatten(), nn.ReLU()), x) == 0.0  # 2-D ReLU input: not hooked
    x[0, 0, 0, 0] = math.nan
    assert math.isnan(swap_value(nn.Sequential(nn.ReLU()), x))


def test_size_prior() -> None:
    assert regular_factor(MU_K) == 1.0
    assert regular_factor(MU_K + 1000.0) == pytest.approx(math.exp(-1e6 / SIGMA_K))
    net = nn.Sequential(nn.Linear(10, 100), nn.Module())
    net[1].auxiliary = nn.Linear(10, 10)  # type: ignore[assignment]  # "auxiliary" parameters are not counted
    assert count_parameters_k(net) == pytest.approx(1.1)


def test_engine_scores_nb201_nb101_and_dag() -> None:
    config = ScoreConfig(data=random_data())
    (rec,) = Engine(["swap"], config).score_archs([CHEAP_ARCH])
    assert rec.error is None and rec.score > 0
    parts = rec.components
    assert 1 <= parts["swap_raw"] <= 2**16 and rec.score == pytest.approx(parts["swap_raw"] * parts["factor"])
    assert Engine(["swap"], ScoreConfig(data=random_data())).score_archs([CHEAP_ARCH])[0].score == rec.score
    for space, arch in (("dag", proxykit.TINY_DAG),):  # nb101: checked by hand (slow), see the issue-11 report
        (got,) = Engine(["swap"], config).score_archs([arch], space=space)
        assert got.error is None and math.isfinite(got.score), got.error
    assert MBV2Space().unsupported("swap") is not None
