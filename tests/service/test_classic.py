"""Classic zero-cost-nas proxies (grad_norm, snip, grasp, fisher, jacov): hand-checked tiny nets, the shared pass
against the separate official loops, independence of what else is asked for, sentinels, the bias-free network,
agreement with NAS-Bench-Suite-Zero, other spaces."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import kendalltau
from torch import nn

from zcscore.data import ArrayData
from zcscore.engine import ArchContext, Engine, ScoreConfig, seed_everything
from zcscore.proxies.classic import classic_pass, classic_scores, jacov_score
from zcscore.spaces.dag import EXAMPLE as DAG_EXAMPLE
from zcscore.spaces.mbv2 import MBV2Space
from zcscore.spaces.nb201_net import build_nb201

CLASSIC = ["grad_norm", "snip", "grasp", "fisher", "jacov"]
CHEAP_ARCH = "|nor_conv_1x1~0|+|skip_connect~0|none~1|+|skip_connect~0|avg_pool_3x3~1|none~2|"
NO_PATH_ARCH = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|"  # cell output identically 0
# node 2 only receives `none` edges, so the conv 2->3 reads an identically zero input (cell output still live)
ZERO_INPUT_CONV_ARCH = "|skip_connect~0|+|none~0|none~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_1x1~2|"


def scores(build, data: ArrayData | None = None, proxies: list[str] = CLASSIC) -> dict[str, float]:  # type: ignore[no-untyped-def]
    records = Engine(proxies, ScoreConfig(data=data)).score_module(build)
    assert all(r.error is None for r in records), [r.error for r in records]
    return {r.proxy: r.score for r in records}


class Scalar(nn.Module):
    """Linear(1 -> 2 classes, no bias) on the first input value."""

    def __init__(self, w: tuple[float, float]) -> None:
        super().__init__()
        self.fc = nn.Linear(1, 2, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor(w).view(2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(x.flatten(1)[:, :1])
        return out


def test_scalar_linear_hand_checked() -> None:
    x, w = 1.5, np.array([0.3, -0.2])
    data = ArrayData(torch.full((64, 1), x), torch.zeros(64, dtype=torch.int64), "hand")
    got = scores(Scalar((0.3, -0.2)), data)
    z = w * x
    p = np.exp(z) / np.exp(z).sum()
    d = p - np.array([1.0, 0.0])  # dL/dz of every (identical) sample
    g = d * x  # dL/dw (mean over identical samples)
    hg = x * x * (np.diag(p) - np.outer(p, p)) @ g  # H = x² (diag p - ppᵀ)
    assert got["grad_norm"] == pytest.approx(np.linalg.norm(g), rel=1e-6)
    assert got["snip"] == pytest.approx(np.abs(w * g).sum(), rel=1e-6)
    assert got["grasp"] == pytest.approx(-(w * hg).sum(), rel=1e-5)
    # per sample and class g_nk = z_k · (dL/dz_k / 64) (mean loss); fan-in 1
    assert got["fisher"] == pytest.approx((0.5 * (z * d / 64) ** 2).sum(), rel=1e-5)
    assert math.isnan(got["jacov"])  # identical 1-element Jacobian rows: corrcoef is NaN, eig raises (official)


class Squares(nn.Module):
    """logits = W (x ⊙ x) on 4 input values: J_n = 2 x_n ⊙ Wᵀ1."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.flatten(1)
        out: torch.Tensor = self.fc(v * v)
        return out


def test_jacov_hand_checked() -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(64, 4, generator=gen)
    data = ArrayData(images, torch.randint(0, 3, (64,), generator=gen), "hand")
    torch.manual_seed(0)
    net = Squares()
    jac = 2 * images.double().numpy() * net.fc.weight.detach().double().sum(0).numpy()[None, :]
    v = np.linalg.eigvalsh(np.corrcoef(jac))
    expected = -np.sum(np.log(v + 1e-5) + 1 / (v + 1e-5))
    assert scores(net, data, ["jacov"])["jacov"] == pytest.approx(expected, rel=1e-4)
    assert math.isnan(jacov_score(np.zeros((4, 5))))  # zero Jacobian: NaN (Suite-Zero stores -1e8)


def fresh_context(arch: str) -> ArchContext:
    seed_everything(1)
    return ArchContext(build_nb201(arch), ScoreConfig(seed=1, channels_last=False), torch.get_rng_state())


def layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def official_loops(ctx: ArchContext) -> dict[str, float]:
    """Each measure with its own forward, as the zero-cost-nas measures run (rewritten from the notes)."""
    x, y = ctx.data.batch(0, 64)
    out: dict[str, float] = {}
    net = ctx.restore()  # grad_norm: backward, per-layer norms
    F.cross_entropy(net(x)[1], y).backward()
    out["grad_norm"] = sum(float(m.weight.grad.norm()) for m in layers(net))
    net = ctx.restore()  # snip: gradient of a ones mask on every weight
    names = [n for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    masks = {f"{n}.weight": torch.ones_like(net.get_submodule(n).weight, requires_grad=True) for n in names}
    params = {k: net.get_parameter(k).detach() * m for k, m in masks.items()}
    F.cross_entropy(torch.func.functional_call(net, params, (x,))[1], y).backward()
    out["snip"] = sum(float(m.grad.abs().sum()) for m in masks.values())
    net = ctx.restore()  # grasp: g without a graph, second forward with one, z.backward()
    weights = [m.weight for m in layers(net)]
    g = torch.autograd.grad(F.cross_entropy(net(x)[1], y), weights)
    g_f = torch.autograd.grad(F.cross_entropy(net(x)[1], y), weights, create_graph=True)
    sum((a * b).sum() for a, b in zip(g, g_f)).backward()  # type: ignore[union-attr]
    out["grasp"] = sum(float((-w.detach() * w.grad).sum()) for w in weights)
    net = ctx.restore()  # fisher: activation x its gradient at every conv/linear output
    acts: list[tuple[nn.Module, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda m, i, o: acts.append((m, o))) for m in layers(net)]
    loss = F.cross_entropy(net(x)[1], y)
    for h in hooks:
        h.remove()
    grads = torch.autograd.grad(loss, [a for _, a in acts])
    total = 0.0
    for (m, a), ga in zip(acts, grads):
        g_nk = (a * ga).sum(dim=(2, 3)) if a.dim() == 4 else a * ga
        total += float(g_nk.detach().pow(2).mean(0).mul(0.5).sum()) * math.prod(m.weight.shape[1:])
    out["fisher"] = total
    net = ctx.restore()  # jacob_cov: x.grad of sum(logits)
    xj = x.clone().requires_grad_(True)
    logits = net(xj)[1]
    logits.backward(torch.ones_like(logits))
    jac = xj.grad.reshape(64, -1).numpy()
    v, _ = np.linalg.eig(np.corrcoef(jac))
    out["jacov"] = float(-np.sum(np.log(v + 1e-5) + 1.0 / (v + 1e-5)))
    return out


def test_shared_pass_equals_the_separate_official_loops() -> None:
    ctx = fresh_context(CHEAP_ARCH)
    ref = official_loops(ctx)
    ctx.restore()
    got = classic_pass(ctx, hessian=1, fisher=1, jacobian=1)
    for name, value in ref.items():
        assert getattr(got, name) == pytest.approx(value, rel=1e-5), name


def test_each_proxy_is_independent_of_the_others() -> None:
    config = ScoreConfig(seed=1)
    together = {r.proxy: r.score for r in Engine(CLASSIC, config).score_archs([CHEAP_ARCH])}
    for name in ("grad_norm", "fisher", "jacov"):  # grasp alone is covered by the official-loop test
        (alone,) = Engine([name], config).score_archs([CHEAP_ARCH])
        assert alone.score == together[name], name
    assert all(math.isfinite(v) for v in together.values())


class NoWeights(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 10)


def test_degenerate_networks_give_the_official_sentinels() -> None:
    got = scores(NoWeights)
    assert {k: got[k] for k in ("grad_norm", "snip", "grasp", "fisher")} == dict.fromkeys(
        ("grad_norm", "snip", "grasp", "fisher"), 0.0
    )
    assert math.isnan(got["jacov"])
    # NB201 with a constant cell output: every weight gradient is 0, jacov NaN; fisher is the classifier's
    # alone: logits = its bias b, dL/dz = (softmax(b) - onehot)/64, fan-in 64
    ctx = fresh_context(NO_PATH_ARCH)
    x, y = ctx.data.batch(0, 64)
    res = classic_scores(ctx.restore(), x, y, hessian=True, fisher=True, jacobian=True)
    assert (res.grad_norm, res.snip, res.grasp) == (0.0, 0.0, 0.0) and math.isnan(res.jacov or 0.0)
    b = ctx.net.classifier.bias.detach().double()
    d = (torch.softmax(b, 0)[None, :] - F.one_hot(y, 10).double()) / 64
    assert res.fisher == pytest.approx(float((0.5 * (b * d).pow(2).mean(0)).sum() * 64), rel=1e-5)


def test_zero_input_conv_contributes_nothing_without_a_bias() -> None:
    """Our bias-free conv on an identically zero input adds 0 to fisher; zero-cost-nas's biased one blows it up."""
    ctx = fresh_context(ZERO_INPUT_CONV_ARCH)
    x, y = ctx.data.batch(0, 64)
    ours = classic_scores(ctx.restore(), x, y, fisher=True)
    net = ctx.restore()
    # cell edges in order (0,1) (0,2) (1,2) (0,3) (1,3) (2,3): layers[5] is ReLU-conv-BN on node 2 = 0
    zero_in = [cell.layers[5][1] for cell in net.cells if hasattr(cell, "layers")]
    assert len(zero_in) == 15 and all(isinstance(c, nn.Conv2d) for c in zero_in)
    torch.manual_seed(0)
    for conv in zero_in:  # zero-cost-nas style: the cell conv has a bias, default init U(±1/sqrt(fan_in))
        bound = 1 / math.sqrt(conv.in_channels)
        conv.bias = nn.Parameter(torch.empty(conv.out_channels).uniform_(-bound, bound))
    biased = classic_scores(net, x, y, fisher=True)
    # weight gradients barely move (BN of a float constant leaves rounding residue x 1/sqrt(eps))
    assert ours.grad_norm == pytest.approx(biased.grad_norm, rel=1e-3)
    assert ours.fisher is not None and biased.fisher is not None
    assert biased.fisher > 30 * ours.fisher  # the BN backward at zero variance: x 1/sqrt(eps) on b * grad


@pytest.fixture(scope="module")
def suite_zero(data_dir) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    with (data_dir / "nb201_zc_naslib_subset.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["source"].startswith("A") and r["dataset"] == "cifar10"]
    return {r["arch"]: {p: float(r[p]) for p in CLASSIC} for r in rows}


# Suite-Zero (source A, cifar10) archs without 3x3 convs, spread over the published grad_norm range
SUITE_ZERO_ARCHS = (
    "|skip_connect~0|+|none~0|skip_connect~1|+|skip_connect~0|skip_connect~1|none~2|",
    "|none~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|avg_pool_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_1x1~2|",
    "|skip_connect~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|avg_pool_3x3~1|none~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|skip_connect~1|+|nor_conv_1x1~0|none~1|none~2|",
    "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|nor_conv_1x1~0|nor_conv_1x1~1|none~2|",
    "|nor_conv_1x1~0|+|nor_conv_1x1~0|none~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|",
)
# Suite-Zero ran batch 32 of augmented, differently normalised images with another init draw; on 152 archs
# Kendall tau(ours, Suite-Zero) is 0.91 / 0.90 / 0.85 / 0.81, as close as Suite-Zero's own two runs (0.90 / 0.90 /
# 0.86 / 0.79). grasp (tau 0.44, runs 0.53) is pinned by the official-loop test instead: too noisy for 8 archs.
MIN_TAU = {"grad_norm": 0.85, "snip": 0.85, "fisher": 0.7, "jacov": 0.6}


def test_agrees_with_suite_zero(suite_zero: dict[str, dict[str, float]]) -> None:
    archs = list(SUITE_ZERO_ARCHS)
    got = {(r.arch, r.proxy): r.score for r in Engine(list(MIN_TAU), ScoreConfig(seed=1)).score_archs(archs)}
    for name, floor in MIN_TAU.items():
        ours = np.array([got[(a, name)] for a in archs])
        ref = np.array([suite_zero[a][name] for a in archs])
        assert kendalltau(ours, ref)[0] >= floor, name
        ratio = ref / ours  # mean losses: gradients alike; fisher squares 1/B (B = 32 vs 64): about 4x theirs
        low, high = {"fisher": (1.5, 12.0), "jacov": (0.05, 1.0)}.get(name, (0.5, 3.0))
        assert np.all((ratio > low) & (ratio < high)), (name, ratio)


def test_runs_on_other_spaces() -> None:
    nb101_small = json.dumps(
        {
            "matrix": [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
            "ops": ["input", "conv1x1-bn-relu", "maxpool3x3", "output"],
        }
    )
    mbv2 = "r32-s16-[e1k3s1d1w16][e4k5s2d2w24se][e2k3s2d1w32]-l128"
    DAG = json.dumps(DAG_EXAMPLE)
    assert MBV2Space().unsupported("snip") is not None  # declared unsupported there (real CIFAR-10 data) ...
    cases = (("nb101", nb101_small, ["grad_norm", "fisher"]), ("mbv2", mbv2, CLASSIC), ("dag", DAG, CLASSIC))
    for space, arch, proxies in cases:  # NB101 is the costly one: one backward (grasp/jacov checked elsewhere)
        records = Engine(proxies, ScoreConfig()).score_archs([arch], space=space)  # ... but runs at 32x32
        for r in records:
            assert r.error is None, (space, r.proxy, r.error)
            assert math.isfinite(r.score), (space, r.proxy, r.score)
