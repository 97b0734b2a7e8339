"""Batched NB201 passes (``Engine(batch=K)``) equal the one-arch path for every seed proxy: τ = 1, ≤ 1e-4 relative.

On CPU (torch 2.13) they are bitwise equal; the bound is the issue's, kept for backends that are not.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from proxykit import AZ_PARTS, EDGE_CASES, SAMPLE_CONFIG, SEED_PROXIES
from scipy.stats import kendalltau

from zcscore.bench.truth import sample_archs
from zcscore.engine import Engine, ScoreConfig
from zcscore.proxies.az_nb201_batched import draw, feature_shapes
from zcscore.proxies.catalog import Pass
from zcscore.proxies.nb201_wide import (
    ArchParams,
    WideNB201,
    conv_specs,
    default_params,
    module_name,
)
from zcscore.spaces.nb201 import NB201Arch
from zcscore.spaces.nb201_net import build_nb201

COMPONENTS = tuple(AZ_PARTS)
DIRECT = [p for p in SEED_PROXIES if p != "az_nas"] + AZ_PARTS  # az_nas: a rank aggregate of the parts


@pytest.mark.parametrize("num_classes", [10, 100, 120])
def test_default_params_are_the_built_networks_bits(num_classes: int) -> None:
    for text in [*sample_archs(5, 11), *EDGE_CASES]:
        arch = NB201Arch.parse(text)
        params, rng = default_params(arch, 7, num_classes)
        torch.manual_seed(7)
        net = build_nb201(arch, num_classes)
        assert torch.equal(rng, torch.get_rng_state())
        convs = [(n, m) for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)]
        assert [module_name(s.key) for s in conv_specs(arch)] == [n for n, _ in convs]
        for s, (_, m) in zip(conv_specs(arch), convs):
            assert torch.equal(params.convs[s.key], m.weight), s.key
        assert params.classifier is not None
        assert torch.equal(params.classifier[0], net.classifier.weight)
        assert torch.equal(params.classifier[1], net.classifier.bias)
        bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert [tuple(w.shape) for w, _ in params.bns.values()] == [tuple(m.weight.shape) for m in bns]
        n_params = sum(p.numel() for p in net.parameters())
        assert sum(t.numel() for t in params.tensors()) == n_params


def test_draws_follow_the_network_modules() -> None:
    arch = NB201Arch.parse(EDGE_CASES[2])
    net = build_nb201(arch)
    convs = [tuple(m.weight.shape) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [s.shape for s in conv_specs(arch)] == convs
    d = draw(arch, 1)
    assert d.x.shape == (64, 3, 32, 32) and len(d.signs) == 17
    assert [tuple(s.shape) for s in d.signs] == feature_shapes()[1:][::-1]


def _by_proxy(records: list, archs: list[str], proxies: list[str]) -> dict[str, list[float]]:
    table = {(r.arch, r.proxy): r for r in records}
    for r in records:
        assert r.error is None, (r.arch, r.proxy, r.error)
    return {p: [table[(a, p)].score for a in archs] for p in proxies}


def _check_equal(one: list[float], many: list[float], proxy: str) -> float:
    """Max relative error; non-finite sentinels must match exactly; Kendall τ over the finite values is 1."""
    worst = 0.0
    for a, b in zip(one, many):
        if not math.isfinite(a):
            assert a == b or (math.isnan(a) and math.isnan(b)), (proxy, a, b)
            continue
        worst = max(worst, abs(a - b) / max(abs(a), 1e-12))
    finite = [(a, b) for a, b in zip(one, many) if math.isfinite(a)]
    sign = [(x > y) - (x < y) for x, y in itertools.combinations([a for a, _ in finite], 2)]
    assert sign == [(x > y) - (x < y) for x, y in itertools.combinations([b for _, b in finite], 2)], proxy  # τ = 1
    assert kendalltau([a for a, _ in finite], [b for _, b in finite]).statistic == pytest.approx(1.0, abs=1e-12)
    return worst


def _batched_vs_one_arch(seed_sample, proxies: list[str], n_sampled: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Score ``n_sampled`` sample archs + the edge cases batched (groups of 7) against the shared one-arch scores."""
    sampled, table = seed_sample  # the one-arch scores (tests/service/conftest.py)
    archs = [*sampled[:n_sampled], *EDGE_CASES]
    records = Engine(proxies, ScoreConfig(**SAMPLE_CONFIG), batch=7).score_archs(archs)
    assert {r.provenance.get("batched") for r in records if r.proxy != "az_complexity"} == {7}
    many = _by_proxy(records, archs, proxies)
    one = {p: [table[(a, p)].score for a in archs] for p in proxies}
    errors = {p: _check_equal(one[p], many[p], p) for p in proxies}
    print({p: f"{e:.2e}" for p, e in errors.items()})
    assert all(e <= 1e-4 for e in errors.values()), errors
    return errors


def test_batched_az_nas_and_zico_equal_the_one_arch_path_on_20_archs(seed_sample) -> None:  # type: ignore[no-untyped-def]
    _batched_vs_one_arch(seed_sample, [*AZ_PARTS, "zico"], 17)
    table = seed_sample[1]
    assert table[(EDGE_CASES[0], "az_trainability")].score == -math.inf  # edge cases hit
    assert table[(EDGE_CASES[1], "az_expressivity")].score == -math.inf


def test_batched_intrain_xi_gsnr_epsinas_equal_the_one_arch_path(seed_sample) -> None:  # type: ignore[no-untyped-def]
    """The dearer passes on 5 archs here (one group); all 20 with every seed proxy: ``pytest -m slow`` (below)."""
    _batched_vs_one_arch(seed_sample, [p for p in DIRECT if p not in AZ_PARTS and p != "zico"], 2)
    assert math.isnan(seed_sample[1][(EDGE_CASES[1], "epsinas")].score)


@pytest.mark.slow
def test_batched_equals_the_one_arch_path_for_every_seed_proxy_on_20_archs(seed_sample) -> None:  # type: ignore[no-untyped-def]
    """Every seed proxy (and AZ-NAS's parts), 17 sampled + 3 edge-case archs; ~5 min on 2 cores."""
    errors = _batched_vs_one_arch(seed_sample, DIRECT, 17)
    assert set(errors) == set(DIRECT)


def test_nchw_layout_is_equal_too() -> None:
    """NCHW (the CUDA layout): convs whose grouped kernel differs fall back to per-arch convs, bits kept."""
    archs = [*sample_archs(2, 8), *EDGE_CASES[1:]]
    config = ScoreConfig(seed=1, device="cpu", channels_last=False)
    proxies = ["az_nas", *COMPONENTS]
    one = _by_proxy(Engine(proxies, config).score_archs(archs), archs, proxies)
    many = _by_proxy(Engine(proxies, config, batch=4).score_archs(archs), archs, proxies)
    errors = {p: _check_equal(one[p], many[p], p) for p in one}
    assert errors["az_expressivity"] == errors["az_progressivity"] == 0.0  # bitwise features
    assert errors["az_trainability"] <= 1e-4, errors


@pytest.mark.parametrize("cl", [False, True])
@pytest.mark.parametrize("grads", [False, True])
def test_wide_conv_gives_each_arch_its_own_conv_bits(cl: bool, grads: bool) -> None:
    """Grouped where the backend is exact, per arch elsewhere: every arch gets its own conv's output and gradients."""
    fmt = torch.channels_last if cl else torch.contiguous_format
    archs = [NB201Arch.parse(a) for a in EDGE_CASES]
    gen = torch.Generator().manual_seed(1)
    for ci, co, k in [(3, 16, 3), (64, 64, 1), (16, 16, 3), (32, 64, 1)]:
        ws = [torch.randn(co, ci, k, k, generator=gen).contiguous(memory_format=fmt) for _ in archs]
        params = [ArchParams({("c",): w}).to(torch.device("cpu"), fmt, requires_grad=grads) for w in ws]
        wide = WideNB201(archs, params, torch.device("cpu"), cl, grads=grads)
        x = torch.randn(8, 3 * ci, 8, 8, generator=gen).contiguous(memory_format=fmt).requires_grad_(grads)
        got = wide._conv(x, ("c",), range(3), 1)
        if grads:
            g_out = torch.randn(got.shape, generator=gen)
            gx, *gw = torch.autograd.grad(got, [x, *(p.convs[("c",)] for p in params)], g_out)
        for a in range(3):
            xa = x.detach()[:, a * ci : (a + 1) * ci].contiguous(memory_format=fmt).requires_grad_(grads)
            wa = ws[a].clone().requires_grad_(grads)
            want = torch.nn.functional.conv2d(xa, wa, padding=k // 2)
            assert torch.equal(got[:, a * co : (a + 1) * co], want), (ci, co, k, cl)
            if grads:
                gxa, gwa = torch.autograd.grad(
                    want, [xa, wa], g_out[:, a * co : (a + 1) * co].contiguous(memory_format=fmt)
                )
                assert torch.equal(gx[:, a * ci : (a + 1) * ci], gxa) and torch.equal(gw[a], gwa), (ci, co, k, cl)


def test_other_passes_and_single_archs_run_one_at_a_time() -> None:
    eng = Engine(["az_trainability", "params"], ScoreConfig(seed=1), batch=4)
    assert eng._batched_passes(eng_space(), [EDGE_CASES[2]]) == {}  # a group of one: nothing to batch
    assert Engine(["params"], ScoreConfig(seed=1), batch=4)._batched_passes(eng_space(), EDGE_CASES) == {}
    custom = Engine(["az_trainability"], ScoreConfig(seed=1, feature_modules=("stem",)), batch=4)
    assert custom._batched_passes(eng_space(), EDGE_CASES) == {}


def eng_space():  # type: ignore[no-untyped-def]
    from zcscore.spaces import get_space

    return get_space("nb201")


@pytest.mark.gpu
def test_batched_equals_the_one_arch_path_on_cuda() -> None:
    archs = [*sample_archs(20, 5), *EDGE_CASES]
    config = ScoreConfig(seed=1, device="cuda")
    one = _by_proxy(Engine(DIRECT, config).score_archs(archs), archs, DIRECT)
    many = _by_proxy(Engine(DIRECT, config, batch=16).score_archs(archs), archs, DIRECT)
    errors = {p: _check_equal(one[p], many[p], p) for p in DIRECT}
    print({p: f"{e:.2e}" for p, e in errors.items()})
    assert all(e <= 1e-4 for e in errors.values()), errors


def test_bench_batch_option_reaches_the_engine(tmp_path, data_dir) -> None:  # type: ignore[no-untyped-def]
    import json

    from zcscore.bench.scorefile import read_rows
    from zcscore.cli import main

    args = ["bench", "--proxies", "az_trainability", "--sample", "2", "--seed", "4", "--no-progress", "--no-plots"]
    assert main([*args, "--batch", "2", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "run.json").read_text())["batch"] == 2
    assert [r.provenance.get("batched") for r in read_rows(tmp_path / "scores.csv")] == [2, 2]
    assert main([*args, "--workers", "1,2", "--out", str(tmp_path / "x")]) == 2  # lists: --throughput only


def test_workers_argument_of_serve_and_dispatcher() -> None:
    import argparse

    from zcscore.workers.cli_dispatcher import workers_arg

    assert workers_arg("3") == 3 and workers_arg("AUTO") == "auto"
    with pytest.raises(argparse.ArgumentTypeError):
        workers_arg("0")


def test_a_failing_batched_pass_falls_back_to_one_arch_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from zcscore.proxies import nb201_batched

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setitem(nb201_batched.BATCHED, Pass.AZ, boom)
    archs = EDGE_CASES[1:]
    proxies = ["az_trainability", "zico"]
    records = Engine(proxies, ScoreConfig(seed=1), batch=2).score_archs(archs)
    assert all(r.error is None for r in records)
    assert ["batched" in r.provenance for r in records] == [False, True, False, True]  # zico's pass still batched
    assert [r.score for r in records] == [r.score for r in Engine(proxies).score_archs(archs)]


def test_the_batched_passes_are_the_keyed_ones() -> None:
    """A batched pass's scores carry the batch in their cache key (storage is torch-free, so the set is listed)."""
    from zcscore.proxies.nb201_batched import BATCHED
    from zcscore.storage.keys import BATCHED_PASSES

    assert set(BATCHED) == BATCHED_PASSES
