"""NASWOT v2 (hook_logdet): hand-checked kernels, the official double counting and gating, sentinels, spaces."""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from torch import nn

from zcscore.engine import Engine, ScoreConfig, seed_everything
from zcscore.proxies.naswot import code_kernel, hooklogdet, is_hooked, naswot_kernel
from zcscore.spaces.dag import EXAMPLE
from zcscore.spaces.mbv2 import MBV2Space
from zcscore.spaces.nb201_net import ReLUConvBN, build_nb201

ARCH0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
NB101_TINY = '{"matrix": [[0,1],[0,0]], "ops": ["input","output"]}'


def _random_data(n: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_code_kernel_by_hand():
    inp = torch.tensor([[1.0, -1.0, 2.0], [0.0, 3.0, -1.0], [5.0, -2.0, 0.5], [1.0, 1.0, 1.0]])
    # codes 101, 010, 101, 111: K_ij = number of units where i and j agree
    expected = torch.tensor([[3, 0, 3, 2], [0, 3, 0, 1], [3, 0, 3, 2], [2, 1, 2, 3]], dtype=torch.float64)
    assert torch.equal(code_kernel(inp), expected)
    c = (inp > 0).double()
    assert torch.equal(code_kernel(inp.view(4, 1, 3, 1)), c @ c.T + (1 - c) @ (1 - c).T)
    assert hooklogdet(expected.numpy()) == -math.inf  # rows 0 and 2 share a code: singular


class ReLUBlock(nn.Module):
    """A wrapper whose class name contains 'ReLU': hooked too (the official substring test)."""

    def __init__(self) -> None:
        super().__init__()
        self.act = nn.ReLU()
        self.conv = nn.Conv2d(2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(self.act(x))
        return out


class WithDeadBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.block = ReLUBlock()
        self.dead = nn.ReLU()  # runs, but its output never reaches the logits
        self.head = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        self.dead(h * 2)
        out: torch.Tensor = self.head(self.block(h).mean((2, 3)))
        return out


def test_wrapper_counts_twice_and_dead_modules_are_gated():
    torch.manual_seed(0)
    net = WithDeadBranch().train()
    x = torch.randn(6, 3, 5, 5)
    kernel, counts = naswot_kernel(net, x)
    assert counts == {"hooked": 3, "calls": 3, "visited": 2}
    h = net.conv(x).detach()
    assert np.array_equal(kernel, (2 * code_kernel(h)).numpy())  # block and block.act see the same input
    assert kernel[0, 0] == 2 * 2 * 25


def test_official_hook_count_on_arch0():
    """Notes §3 (run of the official code): arch 0 has 69 hooked modules and K[0,0] = 651,264."""
    seed_everything(1)
    net = build_nb201(ARCH0).train()
    assert is_hooked(ReLUConvBN(2, 2, 1, 1, 0)) and is_hooked(nn.ReLU()) and not is_hooked(nn.Conv2d(1, 1, 1))
    kernel, counts = naswot_kernel(net, _random_data()[0])
    assert counts == {"hooked": 69, "calls": 69, "visited": 69}
    assert np.all(np.diag(kernel) == 651_264) and np.array_equal(kernel, kernel.T)
    score = hooklogdet(kernel)
    assert 1_000 < score < 128 * math.log(651_264)  # Hadamard bound of a PSD matrix with this diagonal


def test_sentinels_without_relu_or_with_nan():
    seed_everything(0)
    linear = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(2 * 30 * 30, 2))
    rec = Engine(["naswot"], ScoreConfig(threads=1, data=_random_data())).score_module(linear)[0]
    assert rec.error is None and rec.score == -math.inf  # K stays zero, as the official np.zeros
    assert math.isnan(hooklogdet(np.full((2, 2), np.nan)))


def test_engine_is_deterministic_and_runs_on_nb101_and_dag():
    config = ScoreConfig(threads=1, data=_random_data())
    a = Engine(["naswot"], config).score_archs([ARCH0])[0]
    b = Engine(["naswot"], config).score_archs([ARCH0])[0]
    assert a.error is None and a.score == b.score and a.components["visited_modules"] == 69
    for space, arch in (("nb101", NB101_TINY), ("dag", json.dumps(EXAMPLE))):
        (rec,) = Engine(["naswot"], config).score_archs([arch], space=space)
        assert rec.error is None and math.isfinite(rec.score), (space, rec.error)
    assert MBV2Space().unsupported("naswot") is not None  # real data: not defined on MobileNetV2
