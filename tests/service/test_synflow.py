"""SynFlow: hand-checked chains, BN as identity, the engine's net untouched, exact power-of-two rescaling, sentinels,
agreement with NAS-Bench-Suite-Zero, other spaces."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau
from torch import nn

from zcscore.engine import Engine, ScoreConfig, seed_everything
from zcscore.proxies.synflow import linearised_copy, log_synflow, synflow_sum
from zcscore.spaces.dag import EXAMPLE as DAG_EXAMPLE
from zcscore.spaces.nb201_net import build_nb201

# Suite-Zero (source A, cifar10) archs with at most one 3x3 conv, spread over the published ln-synflow range
SUITE_ZERO_ARCHS = (
    "|none~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|nor_conv_1x1~0|none~1|none~2|",
    "|skip_connect~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|avg_pool_3x3~2|",
    "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|",
    "|nor_conv_1x1~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_1x1~0|none~1|skip_connect~2|",
    "|none~0|+|nor_conv_1x1~0|none~1|+|nor_conv_1x1~0|skip_connect~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_1x1~2|",
)
NO_PATH_ARCH = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|"  # cell output identically 0


def score(build, proxy: str = "synflow") -> float:  # type: ignore[no-untyped-def]
    (rec,) = Engine([proxy], ScoreConfig()).score_module(build)
    assert rec.error is None, rec.error
    return rec.score


class FirstThree(nn.Module):
    """``body`` applied to the first 3 input values (all ones under synflow)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x.flatten(1)[:, :3])
        return out


def test_chain_with_bn_and_biases_hand_checked() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    net.eval()  # the proxy must not care: BN is the identity, whatever its mode and statistics
    with torch.no_grad():
        net[1].running_mean.fill_(5.0)
        net[1].weight.fill_(-3.0)
    w1, b1 = (net[0].weight.detach().double().abs().numpy(), net[0].bias.detach().double().abs().numpy())
    w2 = net[3].weight.detach().double().abs().numpy()
    # R = 1ᵀ(|W2|(|W1|1 + |b1|) + |b2|): dR/dW1_ij = (1ᵀ|W2|)_i, dR/dW2_ki = h_i with h = |W1|1 + |b1|
    h = w1.sum(1) + b1
    s = float((w1 * w2.sum(0)[:, None]).sum() + (w2 * h[None, :]).sum())
    assert score(FirstThree(net)) == pytest.approx(math.log(s), rel=1e-12)


class Chain(nn.Module):
    """``depth`` Linear(1, 1) layers without bias, weight ``w`` (signed): R = |w|^depth, S = depth·R."""

    def __init__(self, depth: int, w: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(*(nn.Linear(1, 1, bias=False) for _ in range(depth)))
        with torch.no_grad():
            for i, layer in enumerate(self.layers):
                layer.weight.fill_(w if i % 2 else -w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1)[:, :1])


def test_chain_is_depth_times_path_sum() -> None:
    assert score(Chain(7, 3.0)) == pytest.approx(math.log(7) + 7 * math.log(3.0), rel=1e-12)


def test_overflowing_chain_is_rescaled_exactly() -> None:
    # S = 120 * 2^1200 overflows float64 (max ~2^1024): the rescaled pass recovers ln S
    net = Chain(120, 1024.0)
    lin = linearised_copy(net)
    assert math.isinf(synflow_sum(lin, torch.ones(1, 3, 32, 32, dtype=torch.float64)))
    assert score(net) == pytest.approx(math.log(120) + 1200 * math.log(2), rel=1e-12)
    assert score(Chain(300, 1024.0)) == math.inf  # 2^3000, beyond 2^2000: no number, ranked first


def test_rescaled_equals_plain_float64_bit_for_bit_on_nb201() -> None:
    seed_everything(1)
    lin = linearised_copy(build_nb201(SUITE_ZERO_ARCHS[-1]))
    x = torch.ones(1, 3, 32, 32, dtype=torch.float64)
    plain = synflow_sum(lin, x)
    assert math.isfinite(plain) and plain > 1e30
    for k in (256, 512):
        assert math.ldexp(synflow_sum(lin, x, k), 2 * k) == plain


def test_network_is_left_untouched() -> None:
    seed_everything(1)
    net = build_nb201(SUITE_ZERO_ARCHS[1])
    before = {k: v.clone() for k, v in net.state_dict().items()}
    value = log_synflow(net, (3, 32, 32), torch.device("cpu"))
    assert math.isfinite(value)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # signs, dtype and BN buffers as built
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert all(p.grad is None for p in net.parameters())


class Constant(nn.Module):
    """A Linear whose output never depends on the input: no path, S = 0."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.new_zeros(x.shape[0], 4))


def test_no_path_gives_minus_inf() -> None:
    assert score(Constant()) == -math.inf
    (rec,) = Engine(["synflow"], ScoreConfig()).score_archs([NO_PATH_ARCH])
    assert rec.error is None and rec.score == -math.inf


@pytest.fixture(scope="module")
def suite_zero(data_dir) -> dict[str, float]:  # type: ignore[no-untyped-def]
    with (data_dir / "nb201_zc_naslib_subset.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["source"].startswith("A") and r["dataset"] == "cifar10"]
    return {r["arch"]: float(r["synflow"]) for r in rows}


def test_matches_suite_zero(suite_zero: dict[str, float]) -> None:
    archs = [*SUITE_ZERO_ARCHS, NO_PATH_ARCH]
    got = {r.arch: r.score for r in Engine(["synflow"], ScoreConfig(seed=1)).score_archs(archs)}
    ours = [got[a] for a in SUITE_ZERO_ARCHS]
    ref = [suite_zero[a] for a in SUITE_ZERO_ARCHS]
    # same protocol (NASLib's BN-free copy), only the init draw differs: within a few tenths of a nat
    assert ours == pytest.approx(ref, abs=0.5)
    assert kendalltau(ours, ref)[0] >= 0.9
    assert suite_zero[NO_PATH_ARCH] == 0.0 and got[NO_PATH_ARCH] == -math.inf  # Suite-Zero's 0 is our ln 0


def test_runs_on_other_spaces() -> None:
    nb101_small = json.dumps(
        {
            "matrix": [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
            "ops": ["input", "conv1x1-bn-relu", "maxpool3x3", "output"],
        }
    )
    mbv2 = "r64-s16-[e1k3s1d1w16][e4k5s2d2w24se][e2k7s2d2w32][e6k3s1d1w32se]-l256"
    for space, arch in (("nb101", nb101_small), ("mbv2", mbv2), ("dag", json.dumps(DAG_EXAMPLE))):
        (rec,) = Engine(["synflow"], ScoreConfig()).score_archs([arch], space=space)
        assert rec.error is None, (space, rec.error)
        assert np.isfinite(rec.score), (space, rec.score)
