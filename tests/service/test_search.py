"""Search algorithms: budgets, determinism, population-relative fitness, caches, CLI (cheap proxies only)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from zcscore.search import (
    EngineScorer,
    FunctionScorer,
    az_evo,
    intrain_evo,
    optuna_objective,
    prune_search,
    random_search,
    rea,
    search,
    warmup_random,
    warmup_rea,
)
from zcscore.spaces import get_space
from zcscore.spaces.nb201 import NB201Arch
from zcscore.spaces.nb201_super import FULL, SuperState, parse_state

SPACE = get_space("nb201")


def conv_count(archs: list[str]) -> list[float]:
    """A transparent fitness: number of 3x3 convs (max 6 at the all-conv cell)."""
    return [float(NB201Arch.parse(a).count("nor_conv_3x3")) for a in archs]


def scorer() -> FunctionScorer:
    return FunctionScorer(conv_count)


def test_mutate_changes_exactly_one_edge() -> None:
    rng = random.Random(0)
    arch = SPACE.sample(rng)
    for _ in range(50):
        child = SPACE.mutate(arch, rng)
        assert sum(a != b for a, b in zip(arch.ops, child.ops)) == 1


def test_random_search_scores_budget_distinct_classes() -> None:
    s = scorer()
    best = random_search(s, budget=40, seed=1)
    canon = {SPACE.encode(SPACE.canonical(SPACE.parse(a))) for a in s.scored}
    assert len(s.scored) == len(canon) == 40 and s.stats["proxy_calls"] == 40
    assert conv_count([best])[0] == max(conv_count(s.scored))


@pytest.mark.parametrize(("algo", "options"), [(rea, {}), (warmup_rea, {"pool": 40}), (az_evo, {}), (intrain_evo, {})])
def test_evolutions_respect_budget_climb_and_repeat(algo, options) -> None:  # type: ignore[no-untyped-def]
    s = scorer()
    best = algo(s, 120, seed=3, **options)
    assert len(s.scored) == 120 and conv_count([best]) == [6.0]
    again = scorer()
    assert algo(again, 120, seed=3, **options) == best and again.scored == s.scored


def test_every_algorithm_starts_from_the_same_random_archs() -> None:
    first = scorer()
    random_search(first, 20, seed=5)
    second = scorer()
    rea(second, 30, seed=5, population=20)
    assert second.scored[:20] == first.scored


def test_flops_budget_holds_on_nb201() -> None:
    s = scorer()
    best = intrain_evo(s, 40, seed=0, flops_max=100.0)
    assert all(SPACE.flops_m(SPACE.parse(a)) <= 100.0 for a in s.scored)
    assert SPACE.flops_m(SPACE.parse(best)) <= 100.0


def test_population_fitness_is_relative_to_everything_scored() -> None:
    s = EngineScorer("ensemble:params+flops")
    a, b = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", NB201Arch(("nor_conv_3x3",) * 6).to_str()
    assert s.score([a]) == [0.0]  # log(1/1) + log(1/1)
    s.score([b])
    assert s.fitness([b]) == [0.0] and s.fitness([a])[0] < 0  # a fell to rank 1 of 2
    assert s.stats["archs"] == 2 and s.components == ["params", "flops"]


def test_warmup_random_trains_in_proxy_order() -> None:
    s = scorer()
    trained_order: list[str] = []

    def oracle(arch: str) -> float:
        trained_order.append(arch)
        return -float(NB201Arch.parse(arch).count("nor_conv_3x3"))  # prefers fewer convs

    best, trained = warmup_random(s, 50, seed=0, oracle=oracle, train_budget=5)
    assert len(trained) == 5 and conv_count(trained) == sorted(conv_count(trained), reverse=True)
    assert best == trained[-1] or conv_count([best])[0] == min(conv_count(trained))


def test_supernet_states_parse_and_prune_to_a_cell() -> None:
    full = SuperState(FULL)
    assert parse_state(full.encode()) == full and full.without(0, "none").edges[0][0] == "skip_connect"
    s = FunctionScorer(lambda archs: [float(a.count("nor_conv_3x3")) for a in archs], "nb201_super")
    arch, final = prune_search(s)
    assert arch == NB201Arch(("nor_conv_3x3",) * 6).to_str()  # pruning keeps what the score likes
    assert len(s.scored) == 85 and final == arch


def test_a_one_op_supernet_state_scores_as_its_cell() -> None:
    from zcscore.engine import Engine

    arch = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|"
    engine = Engine(["synflow", "params"])
    as_cell = engine.score_archs([arch])
    as_state = engine.score_archs([arch], space="nb201_super")
    assert [r.score for r in as_cell] == pytest.approx([r.score for r in as_state], rel=1e-9)


def test_engine_search_with_a_persistent_cache_computes_nothing_twice(tmp_path: Path, data_dir: Path) -> None:
    cache = tmp_path / "scores.sqlite"
    first = search("rea", "synflow", budget=12, seed=2, cache=cache, data_dir=data_dir, population=6)
    second = search("random", "synflow", budget=6, seed=2, cache=cache)  # the same first six archs
    again = search("rea", "synflow", budget=12, seed=2, cache=cache, population=6)
    assert first.computed == 12 and second.computed == 0 and again.computed == 0
    assert again.trace == first.trace and again.best_arch == first.best_arch
    assert set(first.accuracy) == {"cifar10_test", "cifar100_test", "imagenet16_test"}
    assert first.flops_m is not None and first.params_m is not None and first.proxy_calls == 12


def test_optuna_objective_drives_a_study() -> None:
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objective = optuna_objective("params", flops_max=150.0)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=15)
    best = study.best_trial.user_attrs["arch"]
    assert SPACE.flops_m(SPACE.parse(best)) <= 150.0
    assert study.best_value == max(objective.scorer.fitness(objective.scorer.scored))


def test_cli_writes_the_result_and_accepts_the_old_algorithm_flag(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "r.json"
    cmd = [sys.executable, "-m", "zcscore.cli", "search", "--algorithm", "evolution", "--proxy", "params"]
    args = ["--budget", "15", "--seeds", "1,2", "--report", "--cache", str(tmp_path / "c.sqlite"), "--out", str(out)]
    done = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    body = json.loads(out.read_text())
    assert [r["seed"] for r in body["runs"]] == [1, 2] and body["runs"][0]["algo"] == "rea"
    run = body["runs"][0]
    assert {"best_arch", "best_score", "flops_m", "params_m", "trace"} <= set(run) and len(run["trace"]) == 15
    assert set(body["summary"]["cifar10_test"]) == {"mean", "std"}
    bad = subprocess.run([*cmd[:-2], "--proxy", "nope", "--out", "-"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "nope" in bad.stderr


def test_mbv2_search_stays_under_the_macs_budget() -> None:
    from zcscore.spaces.mbv2 import MBV2Space

    result = search("intrain-evo", "params", "mbv2", budget=4, seed=0, flops_max=450.0, population=2)
    space = MBV2Space()
    assert result.archs == 4 and result.flops_m is not None and result.flops_m <= 450.0
    assert all(space.flops_m(space.parse(a)) <= 450.0 for a, _ in result.trace)


def test_an_ensemble_after_its_member_computes_only_the_new_member(tmp_path: Path) -> None:
    from zcscore.search import ScoreCache

    cache = tmp_path / "c.sqlite"
    search("random", "params", budget=5, seed=1, cache=cache)
    scorer = EngineScorer("ensemble:params+flops", cache=cache)
    random_search(scorer, 5, seed=1)
    assert list(scorer._engines) == [("params", "flops"), ("flops",)]  # params came from the cache
    scorer.close()
    assert len(ScoreCache(cache)) == 10
