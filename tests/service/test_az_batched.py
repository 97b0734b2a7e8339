"""Batched AZ-NAS on NB201 (``Engine(batch=K)``) equals the one-arch path: τ = 1, ≤ 1e-4 relative per component."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy.stats import kendalltau

from zcscore.bench.truth import sample_archs
from zcscore.engine import Engine, ScoreConfig
from zcscore.proxies.az_nb201_batched import WideNB201, _advance_as_default_init, conv_specs, draw, feature_shapes
from zcscore.spaces.nb201 import NB201Arch
from zcscore.spaces.nb201_net import build_nb201

COMPONENTS = ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity")
EDGE_CASES = [
    "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",  # identity cells: trainability -inf
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # zero features: NaN entropies -> -inf
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_3x3~0|none~1|avg_pool_3x3~2|",
]


@pytest.mark.parametrize("num_classes", [10, 100])
def test_rng_after_simulated_default_init_equals_building_the_network(num_classes: int) -> None:
    for text in [*sample_archs(5, 11), *EDGE_CASES]:
        arch = NB201Arch.parse(text)
        torch.manual_seed(3)
        build_nb201(arch, num_classes)
        built = torch.get_rng_state()
        torch.manual_seed(3)
        _advance_as_default_init(conv_specs(arch), num_classes, 64)
        assert torch.equal(built, torch.get_rng_state()), text


def test_draws_follow_the_network_modules() -> None:
    arch = NB201Arch.parse(EDGE_CASES[2])
    net = build_nb201(arch)
    convs = [tuple(m.weight.shape) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [s.shape for s in conv_specs(arch)] == convs
    d = draw(arch, 1)
    assert d.x.shape == (64, 3, 32, 32) and len(d.signs) == 17
    assert [tuple(s.shape) for s in d.signs] == feature_shapes()[1:][::-1]


def _by_proxy(records: list, archs: list[str]) -> dict[str, list[float]]:
    table = {(r.arch, r.proxy): r for r in records}
    for r in records:
        assert r.error is None, (r.arch, r.proxy, r.error)
    return {p: [table[(a, p)].score for a in archs] for p in (*COMPONENTS, "az_nas")}


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


def test_batched_az_nas_equals_the_one_arch_path_on_20_archs() -> None:
    archs = [*sample_archs(17, 5), *EDGE_CASES]
    config = ScoreConfig(seed=1, device="cpu")
    one = _by_proxy(Engine(["az_nas", *COMPONENTS], config).score_archs(archs), archs)
    records = Engine(["az_nas", *COMPONENTS], config, batch=4).score_archs(archs)
    assert all(r.provenance.get("batched") == 4 for r in records if r.proxy in COMPONENTS[:3])
    many = _by_proxy(records, archs)
    errors = {p: _check_equal(one[p], many[p], p) for p in one}
    assert all(e <= 1e-4 for e in errors.values()), errors
    assert one["az_trainability"][-3] == -math.inf and one["az_expressivity"][-2] == -math.inf  # edge cases hit
    assert one["az_nas"] == many["az_nas"]  # the same ranks give the same aggregate
    print({p: f"{e:.2e}" for p, e in errors.items()})


def test_nchw_layout_is_equal_too() -> None:
    """NCHW (the CUDA layout): convs whose grouped kernel differs fall back to per-arch convs, bits kept."""
    archs = [*sample_archs(2, 8), *EDGE_CASES[1:]]
    config = ScoreConfig(seed=1, device="cpu", channels_last=False)
    one = _by_proxy(Engine(["az_nas", *COMPONENTS], config).score_archs(archs), archs)
    many = _by_proxy(Engine(["az_nas", *COMPONENTS], config, batch=4).score_archs(archs), archs)
    errors = {p: _check_equal(one[p], many[p], p) for p in one}
    assert errors["az_expressivity"] == errors["az_progressivity"] == 0.0  # bitwise features
    assert errors["az_trainability"] <= 1e-4, errors


@pytest.mark.parametrize("cl", [False, True])
def test_wide_conv_gives_each_arch_its_own_conv_bits(cl: bool) -> None:
    fmt = torch.channels_last if cl else torch.contiguous_format
    archs = [NB201Arch.parse(a) for a in EDGE_CASES]
    wide = WideNB201(archs, [draw(a, 1) for a in archs], torch.device("cpu"), cl)
    gen = torch.Generator().manual_seed(1)
    for ci, co, k in [(3, 16, 3), (64, 64, 1), (16, 16, 3)]:
        x = torch.randn(8, 3 * ci, 8, 8, generator=gen).contiguous(memory_format=fmt)
        w = torch.randn(3 * co, ci, k, k, generator=gen).contiguous(memory_format=fmt)
        got = wide._conv(x, w, 3, 1).chunk(3, 1)
        for a in range(3):
            xa = x[:, a * ci : (a + 1) * ci].contiguous(memory_format=fmt)
            want = torch.nn.functional.conv2d(xa, w[a * co : (a + 1) * co], padding=k // 2)
            assert torch.equal(got[a], want), (ci, co, k, cl)


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
def test_batched_az_nas_equals_the_one_arch_path_on_cuda() -> None:
    archs = [*sample_archs(20, 5), *EDGE_CASES]
    config = ScoreConfig(seed=1, device="cuda")
    one = _by_proxy(Engine(["az_nas", *COMPONENTS], config).score_archs(archs), archs)
    many = _by_proxy(Engine(["az_nas", *COMPONENTS], config, batch=16).score_archs(archs), archs)
    errors = {p: _check_equal(one[p], many[p], p) for p in one}
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
    from zcscore.proxies import az_nb201_batched

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(az_nb201_batched, "az_scores_batched", boom)
    archs = EDGE_CASES[1:]
    records = Engine(["az_trainability"], ScoreConfig(seed=1), batch=2).score_archs(archs)
    assert all(r.error is None and "batched" not in r.provenance for r in records)
    assert [r.score for r in records] == [r.score for r in Engine(["az_trainability"]).score_archs(archs)]
