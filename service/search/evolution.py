"""Evolutionary searches with a zero-cost fitness; ``budget`` counts distinct archs scored.

- :func:`rea`: regularized (ageing) evolution (Real et al., AAAI'19): a population of ``population`` random
  archs; each step a tournament of ``sample`` members, the fittest mutated (one edit), the child joins and the
  oldest member leaves. The answer is the fittest arch ever scored.
- :func:`warmup_rea`: epsinas (Sec. 5.6, "ageing evolution with warm-up"): a pool of ``pool`` random archs is
  scored zero-cost and its ``population`` best form the initial population (the paper: 3,000 and 64), then
  :func:`rea`. Parents are chosen by the proxy ("with move"): training-free throughout.
- :func:`az_evo`: AZ-NAS Algorithm 1: start from one random arch; each iteration rank-aggregate the proxies
  over **every arch scored so far**, mutate one of the ``topk`` best (uniformly) within the FLOPs budget and
  score the child; the answer is the best of the history under the final aggregation.
- :func:`intrain_evo`: InTrain-NAS (Sec. 4.2): the evolution common in zero-shot NAS (Zen-NAS, ZiCo, AZ-NAS
  codes) under a FLOPs budget: a population of up to ``population`` archs, parent drawn uniformly, mutated
  within the budget, the worst member dropped when the population is full (elitist, not ageing).

Population proxies (``az_nas``, ensembles) are ranked over everything scored so far in every algorithm, and a
member's fitness is re-read at each step, since it changes as the history grows. A child that is an isomorph
of a scored arch costs nothing: it is reused (REA) or redrawn (AZ-NAS, InTrain-NAS, whose histories hold
distinct archs). Every algorithm draws its initial random archs in the same order for a seed, so runs share
their first archs (and cached scores).
"""

from __future__ import annotations

import random
from collections import deque

from zcscore.search.common import STALL_FACTOR, argbest, constrained, distinct_samples, mutate_arch
from zcscore.search.random_search import score_in_batches
from zcscore.search.scorer import Scorer
from zcscore.spaces import Space


def _best(scorer: Scorer) -> str:
    scored = scorer.scored
    return scored[argbest(scored, scorer.fitness(scored))]


def _running(scorer: Scorer, budget: int, stalls: int) -> bool:
    """Budget left, and not stuck on children that were all scored before."""
    return len(scorer.scored) < budget and stalls < STALL_FACTOR * budget


def _offspring(scorer: Scorer, space: Space, parent: str, rng: random.Random, filt: float | None) -> tuple[str, bool]:
    """Mutate ``parent`` and score the child; whether the child was a new (distinct) arch."""
    child = mutate_arch(space, parent, rng, filt)
    before = len(scorer.scored)
    scorer.score([child])
    return child, len(scorer.scored) > before


def _flops(scorer: Scorer, flops_max: float | None) -> tuple[Space, float | None]:
    space = constrained(scorer.space, flops_max)
    return space, (None if space is not scorer.space else flops_max)


def _ageing(
    scorer: Scorer,
    members: list[str],
    budget: int,
    rng: random.Random,
    sample: int,
    flops_max: float | None,
) -> str:
    space, filt = _flops(scorer, flops_max)
    pop: deque[str] = deque(members)
    stalls = 0
    while _running(scorer, budget, stalls) and pop:
        contenders = rng.sample(list(pop), min(sample, len(pop)))
        parent = contenders[argbest(contenders, scorer.fitness(contenders))]
        child, new = _offspring(scorer, space, parent, rng, filt)
        stalls = 0 if new else stalls + 1
        pop.append(child)
        pop.popleft()
    return _best(scorer)


def rea(
    scorer: Scorer,
    budget: int,
    seed: int = 0,
    population: int = 20,
    sample: int = 5,
    flops_max: float | None = None,
) -> str:
    """Regularized evolution with ``budget`` distinct archs; returns the best arch."""
    space, filt = _flops(scorer, flops_max)
    rng = random.Random(seed)
    members = distinct_samples(scorer, space, rng, min(population, budget), filt)
    scorer.score(members)
    return _ageing(scorer, members, budget, rng, sample, flops_max)


def warmup_rea(
    scorer: Scorer,
    budget: int,
    seed: int = 0,
    pool: int = 100,
    population: int = 20,
    sample: int = 5,
    flops_max: float | None = None,
) -> str:
    """epsinas' ageing evolution with a zero-cost warm-up pool (counted in ``budget``); returns the best arch."""
    space, filt = _flops(scorer, flops_max)
    rng = random.Random(seed)
    archs = distinct_samples(scorer, space, rng, min(pool, budget), filt)
    score_in_batches(scorer, archs)
    fitness = scorer.fitness(archs)
    top = sorted(sorted(range(len(archs)), key=lambda i: -fitness[i])[:population])  # pool order kept
    return _ageing(scorer, [archs[i] for i in top], budget, rng, sample, flops_max)


def az_evo(
    scorer: Scorer,
    budget: int,
    seed: int = 0,
    topk: int = 10,
    flops_max: float | None = None,
) -> str:
    """AZ-NAS Algorithm 1 for ``budget`` iterations (distinct archs); returns the best arch of the history.

    The paper runs T = 1e5 iterations with k = 1024 on MobileNetV2; for budgets of hundreds we default to
    k = 10 (our choice; ``topk``).
    """
    space, filt = _flops(scorer, flops_max)
    rng = random.Random(seed)
    scorer.score(distinct_samples(scorer, space, rng, 1, filt))
    stalls = 0
    while _running(scorer, budget, stalls):
        history = scorer.scored
        fitness = scorer.fitness(history)
        order = sorted(range(len(history)), key=lambda i: (-fitness[i], i))[:topk]
        _, new = _offspring(scorer, space, history[rng.choice(order)], rng, filt)
        stalls = 0 if new else stalls + 1
    return _best(scorer)


def intrain_evo(
    scorer: Scorer,
    budget: int,
    seed: int = 0,
    population: int = 16,
    flops_max: float | None = None,
) -> str:
    """InTrain-NAS evolution (elitist, FLOPs-constrained) for ``budget`` distinct archs; returns the best arch."""
    space, filt = _flops(scorer, flops_max)
    rng = random.Random(seed)
    members = distinct_samples(scorer, space, rng, min(population, budget), filt)
    scorer.score(members)
    stalls = 0
    while _running(scorer, budget, stalls):
        child, new = _offspring(scorer, space, rng.choice(members), rng, filt)
        if not new:
            stalls += 1
            continue
        stalls = 0
        members.append(child)
        if len(members) > population:
            fitness = scorer.fitness(members)
            del members[min(range(len(members)), key=lambda i: (fitness[i], -i))]
    return _best(scorer)
