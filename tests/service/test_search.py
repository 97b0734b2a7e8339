"""Training-free search: budgets, determinism, population-proxy rules, and a real engine-backed run."""

from __future__ import annotations

import random

import pytest

from zcscore.search import evolution_search, random_search, run_search
from zcscore.spaces import get_space
from zcscore.spaces.nb201 import NB201Arch

SPACE = get_space("nb201")


def conv_count(archs: list[str]) -> list[float]:
    """A transparent fitness: number of 3x3 convs (max 6 at the all-conv cell)."""
    return [float(NB201Arch.parse(a).count("nor_conv_3x3")) for a in archs]


def test_mutate_changes_exactly_one_edge():
    rng = random.Random(0)
    arch = SPACE.sample(rng)
    for _ in range(50):
        child = SPACE.mutate(arch, rng)
        assert sum(a != b for a, b in zip(arch.ops, child.ops)) == 1


def test_random_search_scores_budget_distinct_archs():
    result = random_search(conv_count, budget=40, seed=1)
    assert len({a for a, _ in result.history}) == 40
    assert result.best_score == max(s for _, s in result.history)


def test_evolution_respects_budget_and_climbs():
    result = evolution_search(conv_count, budget=150, seed=0)
    assert len(result.history) == 150
    assert result.best_score == 6.0
    assert evolution_search(conv_count, budget=150, seed=0).history == result.history


def test_population_proxy_cannot_drive_evolution():
    with pytest.raises(ValueError, match="population proxy"):
        run_search("az_nas", "evolution", 10, score_fn=conv_count)


def test_engine_backed_search_reports_accuracy(data_dir):
    result = run_search("params", "evolution", 30, accuracy_table=data_dir / "nb201.csv")
    assert len(result.history) == 30
    assert set(result.accuracy) == {"cifar10_test", "cifar100_test", "imagenet16_test"}
