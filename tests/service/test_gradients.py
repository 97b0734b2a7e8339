"""ZiCo and xi-GSNR: hand-checked tiny nets, official NumPy semantics, the shared pass, official scores."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import kendalltau
from torch import nn

from zcscore.data import ArrayData
from zcscore.engine import ArchContext, Engine, ScoreConfig, seed_everything
from zcscore.proxies.gradients import RealGrads, real_grads_pass, xi_gsnr_score, zico_score
from zcscore.spaces.nb201 import NB201Arch
from zcscore.spaces.nb201_net import build_nb201

CHEAP_ARCH = "|skip_connect~0|+|none~0|avg_pool_3x3~1|+|avg_pool_3x3~0|skip_connect~1|skip_connect~2|"
# Canonical archs of nb201_reference_official.csv with well separated official scores, cheap ones first;
# the 3rd has a constant output (official sentinel 0 for both proxies).
REFERENCE_ARCHS = (
    CHEAP_ARCH,
    "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|none~0|none~1|none~2|",
    "|avg_pool_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|nor_conv_1x1~0|avg_pool_3x3~1|skip_connect~2|",
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|skip_connect~1|nor_conv_1x1~2|",
    "|skip_connect~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|",
    "|skip_connect~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_1x1~2|",
    "|nor_conv_1x1~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|nor_conv_1x1~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|skip_connect~0|skip_connect~1|nor_conv_1x1~2|",
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|",
)


def hand_data(xs: list[float], ys: list[int]) -> ArrayData:
    """Batch j = 64 copies of the 1-feature input ``xs[j]`` with label ``ys[j]``."""
    images = torch.tensor(xs, dtype=torch.float32).repeat_interleave(64).view(-1, 1)
    labels = torch.tensor(ys, dtype=torch.int64).repeat_interleave(64)
    return ArrayData(images, labels, "hand")


def zero_linear() -> nn.Module:
    """Linear(1 -> 2 classes), no bias, zero weight: softmax stays (1/2, 1/2), so g = (p - onehot) * x."""
    net = nn.Linear(1, 2, bias=False)
    nn.init.zeros_(net.weight)
    return net


def scores(proxies: list[str], config: ScoreConfig, build) -> dict[str, float]:  # type: ignore[no-untyped-def]
    records = Engine(proxies, config).score_module(build)
    assert all(r.error is None for r in records), [r.error for r in records]
    return {r.proxy: r.score for r in records}


def test_zico_hand_checked() -> None:
    # g0 = (1/2 - 1, 1/2) * 1 = (-1/2, 1/2); g1 = (1/2, 1/2 - 1) * 2 = (1, -1)
    # mean|g| = 3/4, std = |g0 - g1| / 2 = 3/4 per weight -> S = 1 + 1 -> ZiCo = ln 2
    got = scores(["zico"], ScoreConfig(data=hand_data([1, 2], [0, 1])), zero_linear)
    assert got["zico"] == pytest.approx(math.log(2), rel=1e-6)


def test_xi_gsnr_hand_checked() -> None:
    # every batch: x = 1, label 0 -> g_j = (-1/2, 1/2); never zeroed: G_j = (j+1) * g, j = 0..7
    # mean = 4.5 * g, var = 5.25 * g^2 (variance of 1..8) -> per weight 4.5^2 / 5.25 = 27/7 -> xi-GSNR = 54/7
    got = scores(["xi_gsnr", "zico"], ScoreConfig(data=hand_data([1] * 8, [0] * 8)), zero_linear)
    assert got["xi_gsnr"] == pytest.approx(54 / 7, rel=1e-6)
    assert got["zico"] == 0.0  # g0 == g1: zero std everywhere, every layer skipped (official sentinel)


def test_xi_gsnr_uses_cumulative_not_per_batch_gradients() -> None:
    xs, ys = [1, 2, 1, 1, 1, 1, 1, 1], [0, 1, 0, 0, 0, 0, 0, 0]
    g = np.array([[(0.5 - (y == 0)) * x, (0.5 - (y == 1)) * x] for x, y in zip(xs, ys)], dtype=np.float64)
    cum = np.cumsum(g, axis=0)
    expected = np.sum(cum.mean(0) ** 2 / (cum.var(0) + 1e-8))
    per_batch = np.sum(g.mean(0) ** 2 / (g.var(0) + 1e-8))
    got = scores(["xi_gsnr", "zico"], ScoreConfig(data=hand_data(xs, ys)), zero_linear)
    assert got["xi_gsnr"] == pytest.approx(expected, rel=1e-6)
    assert got["xi_gsnr"] != pytest.approx(per_batch, rel=1e-2)
    assert got["zico"] == pytest.approx(math.log(2), rel=1e-6)  # the first 2 batches of the shared pass


# Official NumPy float32 code paths, rewritten from the notes (ZiCo: caculate_zico; xi-GSNR: caculate_gradsq_gradvar).
def numpy_zico(layers: list[np.ndarray]) -> float:
    total = 0
    for g in layers:
        std = np.std(g, axis=0)
        keep = np.nonzero(std)[0]
        s = np.sum(np.mean(np.abs(g), axis=0)[keep] / std[keep])
        if s != 0:
            total += np.log(s)
    return float(total)


def numpy_xi_gsnr(layers: list[np.ndarray]) -> float:
    total = 0
    for g in layers:
        var = np.var(g, axis=0)
        if var.any():
            total += np.sum(np.mean(g, axis=0) ** 2 / (var + 1e-8))
    return float(total)


def random_grads(batches: int) -> RealGrads:
    gen = torch.Generator().manual_seed(0)
    sizes = (7, 300, 1, 50, 4000)
    g = torch.randn(batches, sum(sizes), generator=gen) * 1e-3
    g[:, 7:307] = 0.0  # a dead layer: sentinel path
    g[:, 400:420] = g[0, 400:420]  # equal across batches: zero std / var elements
    g[:, 310:320] *= 1e-20  # tiny magnitudes
    return RealGrads(g, tuple(f"l{i}" for i in range(len(sizes))), sizes, (True,) * len(sizes))


def test_zico_matches_official_numpy_float32() -> None:
    rg = random_grads(2)
    layers = [p.numpy() for p in rg.grads.split(list(rg.sizes), dim=1)]
    assert zico_score(rg) == pytest.approx(numpy_zico(layers), rel=1e-6)


def test_xi_gsnr_matches_official_numpy_float32() -> None:
    rg = random_grads(8)
    cum = rg.cumulative(8)
    official = np.cumsum(rg.grads.numpy(), axis=0, dtype=np.float32)  # float32 running sum, as .grad +=
    assert np.array_equal(cum.numpy(), official)
    layers = [p.numpy() for p in cum.split(list(rg.sizes), dim=1)]
    assert xi_gsnr_score(rg) == pytest.approx(numpy_xi_gsnr(layers), rel=1e-6)


def fresh_context(arch: str, channels_last: bool = False) -> ArchContext:
    seed_everything(1)
    net = build_nb201(arch)
    return ArchContext(net, ScoreConfig(seed=1, channels_last=channels_last), torch.get_rng_state())


def test_pass_reproduces_official_loops_bit_for_bit() -> None:
    ctx = fresh_context(CHEAP_ARCH)
    ctx.restore()
    rg = real_grads_pass(ctx, 3)  # the identities hold for any number of batches; 3 keeps it quick
    weights = [m.weight for m in ctx.net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert rg.sizes == tuple(w.numel() for w in weights)
    # xi-GSNR's loop: never zeroed, snapshot (copied) after every batch
    net = ctx.restore()
    snapshots = []
    for j in range(3):
        x, y = ctx.data.batch(j, 64)
        F.cross_entropy(net(x)[1], y).backward()
        snapshots.append(torch.cat([w.grad.reshape(-1) for w in weights]))
    assert torch.equal(rg.cumulative(3), torch.stack(snapshots))
    # ZiCo's loop: zero_grad(set_to_none=True) before each batch
    net = ctx.restore()
    for j in range(2):
        net.zero_grad(set_to_none=True)
        x, y = ctx.data.batch(j, 64)
        F.cross_entropy(net(x)[1], y).backward()
        assert torch.equal(rg.grads[j], torch.cat([w.grad.reshape(-1) for w in weights]))


def test_zico_alone_equals_zico_with_xi_gsnr_and_repeats() -> None:
    config = ScoreConfig(seed=1)
    alone = Engine(["zico"], config).score_archs([CHEAP_ARCH])[0].score
    again = Engine(["zico"], config).score_archs([CHEAP_ARCH])[0].score
    both = {r.proxy: r.score for r in Engine(["xi_gsnr", "zico"], config).score_archs([CHEAP_ARCH])}
    assert alone == again == both["zico"]
    assert math.isfinite(both["xi_gsnr"]) and both["xi_gsnr"] > 0


class NoWeights(nn.Module):
    """Constant logits: no Conv2d/Linear at all, the loss does not require grad."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 10)


class UnusedLayer(nn.Module):
    """A Linear that never runs next to one that does (the official dict leaves it out)."""

    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(3 * 32 * 32, 10)
        self.unused = nn.Linear(5, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.used(x.flatten(1))


def test_degenerate_networks_give_the_sentinel() -> None:
    assert scores(["zico", "xi_gsnr"], ScoreConfig(), NoWeights) == {"zico": 0.0, "xi_gsnr": 0.0}
    torch.manual_seed(0)
    net = UnusedLayer()
    with_unused = scores(["zico", "xi_gsnr"], ScoreConfig(), net)
    del net.unused
    without = scores(["zico", "xi_gsnr"], ScoreConfig(), net)
    assert with_unused == without
    assert all(math.isfinite(v) and v != 0 for v in without.values())


@pytest.fixture(scope="module")
def official(data_dir) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    with (data_dir / "nb201_reference_official.csv").open() as fh:
        rows = {r["arch"]: r for r in csv.DictReader(fh)}
    return {a: {p: float(rows[a][p]) for p in ("zico", "xi_gsnr")} for a in REFERENCE_ARCHS}


def test_matches_official_scores(official: dict[str, dict[str, float]]) -> None:
    assert all(NB201Arch.parse(a).canonical().to_str() == a for a in REFERENCE_ARCHS)
    # the official runs used contiguous tensors; channels_last moves ZiCo by ~1-2 % (see the module docs)
    records = Engine(["zico", "xi_gsnr"], ScoreConfig(seed=1, channels_last=False)).score_archs(REFERENCE_ARCHS)
    got = {(r.arch, r.proxy): r.score for r in records}
    for proxy, rel in (("zico", 0.03), ("xi_gsnr", 0.01)):
        ours = [got[(a, proxy)] for a in REFERENCE_ARCHS]
        ref = [official[a][proxy] for a in REFERENCE_ARCHS]
        assert ours == pytest.approx(ref, rel=rel)
        assert kendalltau(ours, ref)[0] >= 0.9
    constant = REFERENCE_ARCHS[2]
    assert got[(constant, "zico")] == 0.0 and got[(constant, "xi_gsnr")] == 0.0
