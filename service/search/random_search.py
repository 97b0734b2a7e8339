"""Random search and epsinas' random search with warm-up.

- :func:`random_search`: ``budget`` distinct random archs, the best by fitness (population proxies ranked over
  all of them, as AZ-NAS Table 1 scores its 3,000 random archs).
- :func:`warmup_random`: epsinas (Sec. 5.6, "random search with warm-up"): a pool of random archs ranked
  zero-cost, then archs are "trained" in decreasing proxy order until ``train_budget``; the one with the best
  trained accuracy wins. Training is an ``oracle`` (e.g. NB201's CIFAR-10 validation accuracy: our choice, the
  paper reads test accuracies); without one the search is training-free and picks the pool's best.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from zcscore.search.common import argbest, constrained, distinct_samples
from zcscore.search.scorer import Scorer

BATCH = 100  # archs per scoring call (one service job each)


def score_in_batches(scorer: Scorer, archs: list[str], batch: int = BATCH) -> None:
    """Score ``archs`` in chunks (one engine call / service job per chunk)."""
    for i in range(0, len(archs), batch):
        scorer.score(archs[i : i + batch])


def random_search(scorer: Scorer, budget: int, seed: int = 0, flops_max: float | None = None) -> str:
    """Score ``budget`` distinct random archs (within ``flops_max``) and return the best."""
    space = constrained(scorer.space, flops_max)
    rng = random.Random(seed)
    archs = distinct_samples(scorer, space, rng, budget, None if space is not scorer.space else flops_max)
    score_in_batches(scorer, archs)
    scored = scorer.scored
    return scored[argbest(scored, scorer.fitness(scored))]


def warmup_random(
    scorer: Scorer,
    budget: int,
    seed: int = 0,
    flops_max: float | None = None,
    oracle: Callable[[str], float] | None = None,
    train_budget: int = 300,
) -> tuple[str, list[str]]:
    """epsinas' warm-up random search over a pool of ``budget`` archs; returns (best, the archs "trained")."""
    best = random_search(scorer, budget, seed, flops_max)
    if oracle is None:
        return best, []
    scored = scorer.scored
    fitness = scorer.fitness(scored)
    order = sorted(range(len(scored)), key=lambda i: (-fitness[i], i))[:train_budget]
    trained = [scored[i] for i in order]
    accuracies = [oracle(a) for a in trained]
    return trained[argbest(trained, accuracies)], trained
