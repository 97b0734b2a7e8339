"""Zen-NAS (AZ-NAS NB201 port): init, the momentum quirk by hand, pre-GAP features, sentinel, published values."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from torch import nn

from zcscore.engine import Engine, ScoreConfig, seed_everything
from zcscore.proxies.zen import MIXUP_GAMMA, gaussian_init, pre_gap_features, zen_score
from zcscore.spaces.dag import EXAMPLE
from zcscore.spaces.dag_net import build_dag
from zcscore.spaces.nb101_net import build_nb101
from zcscore.spaces.nb201_net import build_nb201

# NB201 index 0 and 1, and an arch whose cell output is always 0 (Suite-Zero: -1e8)
ARCH0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
ARCH1 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
DEAD = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"
NB101_TINY = '{"matrix": [[0,1],[0,0]], "ops": ["input","output"]}'
MBV2_TINY = "r32-s16-[e1k3s1d1w16][e6k3s2d1w24se]-l64"


def test_gaussian_init_matches_the_official_loop_and_keeps_running_stats():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    net[1].running_var.fill_(2.0)
    ref = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    torch.manual_seed(5)
    gaussian_init(net.to(memory_format=torch.channels_last))  # type: ignore[call-overload]
    torch.manual_seed(5)
    for m in ref.modules():  # the official network_weight_gaussian_init
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight)
    for a, b in ((net[0], ref[0]), (net[4], ref[4])):
        assert torch.equal(a.weight, b.weight) and bool((a.bias == 0).all())
    assert bool((net[1].weight == 1).all()) and bool((net[1].bias == 0).all())
    assert bool((net[1].running_var == 2).all())  # not reset


def test_score_by_hand_with_the_momentum_quirk():
    net = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False), nn.BatchNorm2d(2), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    torch.manual_seed(3)
    out = zen_score(net, torch.device("cpu"), (3, 4, 4), batch=8)
    torch.manual_seed(3)
    w = torch.randn(2, 3, 1, 1)
    x, x2 = torch.randn(8, 3, 4, 4), torch.randn(8, 3, 4, 4)
    mix = x + MIXUP_GAMMA * x2
    assert torch.equal(net[0].weight, w)

    def f(inp: torch.Tensor) -> torch.Tensor:
        z = torch.nn.functional.conv2d(inp, w)
        mean, var = z.mean((0, 2, 3), keepdim=True), z.var((0, 2, 3), unbiased=False, keepdim=True)
        return torch.relu((z - mean) / torch.sqrt(var + 1e-5))

    delta = (f(x) - f(mix)).abs().sum((1, 2, 3)).mean()
    v1 = torch.nn.functional.conv2d(x, w).var((0, 2, 3), unbiased=True)
    v2 = torch.nn.functional.conv2d(mix, w).var((0, 2, 3), unbiased=True)
    running = 0.81 + 0.09 * v1 + 0.1 * v2  # momentum 0.1 twice, from 1
    assert torch.allclose(net[1].running_var, running, rtol=1e-5)
    expected = math.log(delta.item()) + math.log(math.sqrt(running.mean().item()))
    assert out["zen"] == pytest.approx(expected, rel=1e-5)
    assert out["delta"] == pytest.approx(delta.item(), rel=1e-5)


def test_pre_gap_features_are_the_official_forward_pre_gap():
    seed_everything(0)
    net = build_nb201(ARCH1).train()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        feat = net.stem(x)
        for cell in net.cells:
            feat = cell(feat)
        expected = net.lastact(feat)
        assert torch.equal(pre_gap_features(net, x), expected)
        nb101 = build_nb101(NB101_TINY).train()
        assert torch.equal(pre_gap_features(nb101, x), nb101.extract_cell_features(x)[-1])
        dag = build_dag(json.dumps(EXAMPLE)).train()
        assert torch.equal(pre_gap_features(dag, x), dag.run_nodes(x, keep=True)["r2"])
        flat = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 5))
        assert pre_gap_features(flat, x).shape == (4, 5)  # no 4-D output: the network output


def _published() -> dict[str, float]:
    from zcscore.settings import get_settings

    data_dir = get_settings().data_dir
    if data_dir is None or not (data_dir / "nb201_zc_scores.csv").exists():
        pytest.skip("shared data not found")
    with open(data_dir / "nb201_zc_scores.csv") as fh:
        return {r["arch"]: float(r["zen_cifar10"]) for r in csv.DictReader(fh)}


def test_agrees_with_published_values_and_degenerate_is_minus_inf():
    published = _published()
    records = Engine(["zen"], ScoreConfig(threads=1)).score_archs([ARCH0, ARCH1, DEAD])
    assert all(r.error is None for r in records)
    ours = {r.arch: r.score for r in records}
    for arch in (ARCH0, ARCH1):  # Gaussian input: seed noise of about 2 % (notes §4: 181-185 vs 184.95)
        assert ours[arch] == pytest.approx(published[arch], rel=0.03)
    assert published[DEAD] == -1e8 and ours[DEAD] == -math.inf


def test_deterministic_and_runs_on_other_spaces():
    a = Engine(["zen"], ScoreConfig(threads=1)).score_archs([ARCH0])[0]
    b = Engine(["zen"], ScoreConfig(threads=1, channels_last=False)).score_archs([ARCH0])[0]
    assert a.score == pytest.approx(b.score, rel=1e-5)  # the draws do not depend on the layout
    for space, arch in (("nb101", NB101_TINY), ("dag", json.dumps(EXAMPLE)), ("mbv2", MBV2_TINY)):
        (rec,) = Engine(["zen"], ScoreConfig(threads=1)).score_archs([arch], space=space)
        assert rec.error is None and math.isfinite(rec.score), (space, rec.error)
