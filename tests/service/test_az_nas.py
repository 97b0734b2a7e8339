"""AZ-NAS pass: hand-checked pieces, sentinels, determinism, and agreement with the official code."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from scipy.stats import kendalltau
from torch import nn

from zcscore.engine import Engine, ScoreConfig, seed_everything
from zcscore.proxies import az_nas
from zcscore.spaces.nb201 import NB201Arch
from zcscore.spaces.nb201_net import Zero, build_nb201

AZ = ["az_expressivity", "az_progressivity", "az_trainability"]
# Canonical rows of nb201_reference_official.csv: plain archs, NaN-entropy archs (-inf expressivity and
# progressivity: a tiny negative eigenvalue, 3, 23), an identity cell (-inf trainability, 6) and an
# all-zero cell (20).
REFERENCE_ROWS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 20, 23, 41]


def _scores(records) -> dict[str, float]:
    assert all(r.error is None for r in records), [r.error for r in records]
    return {r.proxy: r.score for r in records}


def test_eigen_entropy_of_known_covariances():
    sigmas = torch.stack([torch.eye(4), torch.diag(torch.tensor([1.0, 1.0, 2.0, 0.0]))])
    got = az_nas.eigen_entropy(sigmas).tolist()
    p = [0.0, 0.25, 0.25, 0.5]
    expected = -sum(q * math.log(q + 1e-8) for q in p)
    assert got[0] == pytest.approx(math.log(4), rel=1e-6)
    assert got[1] == pytest.approx(expected, rel=1e-6)


def test_eigen_entropy_degenerate_is_nan_not_an_error():
    zero = torch.zeros(1, 3, 3)
    bad = torch.full((1, 3, 3), math.inf)
    assert math.isnan(az_nas.eigen_entropy(zero).item())
    assert math.isnan(az_nas.eigen_entropy(bad).item())


def test_batched_entropies_equal_one_by_one():
    feats = [torch.randn(8, c, s, s) for c, s in ((4, 6), (8, 3), (4, 6), (8, 3), (16, 4))]
    one_by_one = [az_nas.eigen_entropy(az_nas.feature_covariance(f)[None]).item() for f in feats]
    assert az_nas._entropies(feats) == one_by_one


def test_feature_covariance_matches_definition():
    feat = torch.randn(2, 3, 4, 5)
    x = feat.permute(0, 2, 3, 1).reshape(-1, 3).double()
    x = x - x.mean(0)
    assert torch.allclose(az_nas.feature_covariance(feat).double(), x.T @ x / x.shape[0], atol=1e-6)


def test_block_score_is_zero_at_one_and_penalises_both_sides():
    assert az_nas.block_score(1.0) == pytest.approx(0.0, abs=1e-5)
    assert az_nas.block_score(0.0) == pytest.approx(-1e6 + 2)
    assert az_nas.block_score(2.0) == pytest.approx(-0.5, abs=1e-5)
    assert az_nas.block_score(0.5) == pytest.approx(-0.5, abs=1e-5)


def test_top_singular_value_hand_cases():
    g_out = torch.tensor([[1.0, 1.0], [1.0, -1.0]]).view(2, 2, 1, 1)  # orthogonal columns: GᵀG/N = I
    assert az_nas.top_singular_value(3.0 * g_out, g_out).item() == pytest.approx(3.0)
    g_in = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)  # reduction: unshuffled to (1, 4, 1, 1)
    g_red = torch.tensor([1.0, -1.0]).view(1, 2, 1, 1)
    assert az_nas.top_singular_value(g_in, g_red).item() == pytest.approx(math.sqrt(30) * math.sqrt(2))
    assert math.isnan(az_nas.top_singular_value(torch.full((2, 2, 1, 1), math.nan), g_out).item())
    assert az_nas.top_singular_value(torch.ones(1, 1, 5, 5), torch.ones(1, 1, 2, 2)) is None


def test_rademacher_reads_the_rng_exactly_as_bernoulli():
    shapes = [torch.Size((4, 8, 5, 5)), torch.Size((4, 16, 3, 3)), torch.Size((3,))]
    torch.manual_seed(11)
    expected = [(torch.bernoulli(torch.ones(s) * 0.5) - 0.5) * 2 for s in shapes]
    state_after = torch.get_rng_state()
    for channels_last in (False, True):
        torch.manual_seed(11)
        got = az_nas.rademacher(shapes, channels_last)
        assert all(torch.equal(a, b) for a, b in zip(got, expected))
        assert torch.equal(torch.get_rng_state(), state_after)
    assert got[0].is_contiguous(memory_format=torch.channels_last)


def test_unshuffled_rows_is_pixel_unshuffle_then_rows():
    g = torch.randn(2, 3, 8, 6)
    expected = az_nas.rows(nn.functional.pixel_unshuffle(g, 2))
    for layout in (torch.contiguous_format, torch.channels_last):
        assert torch.equal(az_nas.unshuffled_rows(g.contiguous(memory_format=layout), 2, 2), expected)
    assert az_nas.unshuffled_rows(g, 4, 2).shape == (2 * 2 * 3, 3 * 8)


def test_reinit_follows_model_apply_order_whatever_the_layout():
    arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    seed_everything(5)
    plain = build_nb201(arch)
    state = torch.get_rng_state()
    official = build_nb201(arch)
    official.load_state_dict(plain.state_dict())
    torch.set_rng_state(state)

    def init(m: nn.Module) -> None:  # the official rule, applied in place on contiguous CPU weights
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    official.apply(init)
    after = torch.randn(3)
    torch.set_rng_state(state)
    az_nas.reinit_kaiming_fanin(plain.to(memory_format=torch.channels_last))
    assert torch.equal(torch.randn(3), after)
    for (k, a), b in zip(plain.state_dict().items(), official.state_dict().values()):
        assert torch.equal(a, b), k


def _reference_rows(data_dir: Path) -> list[dict[str, str]]:
    with open(data_dir / "nb201_reference_official.csv") as fh:
        rows = list(csv.DictReader(fh))
    picked = [rows[i] for i in REFERENCE_ROWS]
    assert all(NB201Arch.parse(r["arch"]).canonical().to_str() == r["arch"] for r in picked)
    return picked


def test_matches_official_code_on_canonical_archs(data_dir: Path):
    rows = _reference_rows(data_dir)
    engine = Engine(AZ, ScoreConfig(seed=1, channels_last=False))
    got = {name: [] for name in AZ}
    for row in rows:
        scores = _scores(engine.score_archs([row["arch"]]))
        for name in AZ:
            ref, val = float(row[name]), scores[name]
            got[name].append(val)
            if math.isinf(ref):
                assert val == ref, (name, row["arch"])
            elif name == "az_progressivity":  # a difference of float32 entropies of about 3
                assert val == pytest.approx(ref, abs=2e-6), (name, row["arch"])
            elif name == "az_trainability":  # the CPU's float32 kernels (AVX2 vs AVX-512) can flip a ReLU mask
                assert val == pytest.approx(ref, rel=1e-4), (name, row["arch"])  # 1.7e-5 seen on an AVX2 EPYC
            else:
                assert val == pytest.approx(ref, rel=1e-5), (name, row["arch"])
    for name in AZ:
        ref = [float(r[name]) for r in rows]
        assert kendalltau(got[name], ref).statistic >= 0.9, name


def test_sentinels_identity_and_all_zero_blocks_never_raise():
    identity = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Identity(), nn.ReLU())
    scores = _scores(Engine(AZ, ScoreConfig(channels_last=False)).score_module(identity))
    assert scores["az_trainability"] == -math.inf
    assert math.isfinite(scores["az_expressivity"])
    zero = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), Zero(), nn.Conv2d(8, 8, 1))
    scores = _scores(Engine(AZ, ScoreConfig()).score_module(zero))
    assert scores["az_expressivity"] == -math.inf and scores["az_progressivity"] == -math.inf
    seed_everything(1)  # what the engine does before the pass (the module is built already)
    parts = az_nas.az_scores(zero, torch.device("cpu"), channels_last=True)
    assert parts["block_scores"][1] == pytest.approx(-1e6 + 2)  # blocks L..1: the zero block's VJP is 0
    assert math.isfinite(parts["block_scores"][0])
    assert scores["az_trainability"] == sum(parts["block_scores"]) / 2


def test_generic_module_with_reductions_and_a_head():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )  # fmt: skip
    scores = _scores(Engine(AZ, ScoreConfig()).score_module(net))
    assert all(math.isfinite(v) for v in scores.values()), scores


def test_same_seed_same_scores_and_module_left_unchanged():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    first = _scores(Engine(AZ, ScoreConfig(seed=3)).score_module(net))
    again = _scores(Engine(AZ, ScoreConfig(seed=3)).score_module(net))
    other = _scores(Engine(AZ, ScoreConfig(seed=4)).score_module(net))
    assert first == again and first != other
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_channels_last_agrees_with_contiguous():
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    plain = _scores(Engine(AZ, ScoreConfig(channels_last=False)).score_archs([arch]))
    fast = _scores(Engine(AZ, ScoreConfig(channels_last=True)).score_archs([arch]))
    for name in AZ:
        assert fast[name] == pytest.approx(plain[name], rel=1e-3, abs=1e-4), name


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_scores_match_cpu():
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    cpu = _scores(Engine(AZ, ScoreConfig(channels_last=False)).score_archs([arch]))
    cuda = _scores(Engine(AZ, ScoreConfig(device="cuda")).score_archs([arch]))
    for name in AZ:  # same random draws; only the arithmetic differs (cuDNN, TF32 by default)
        assert cuda[name] == pytest.approx(cpu[name], rel=1e-2), name
