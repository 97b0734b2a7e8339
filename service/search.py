"""Training-free search on NB201 with proxy scores as the fitness.

Two algorithms, both counting a distinct arch scored as one unit of budget:

- ``random``: score ``budget`` distinct random archs at once and keep the best (population proxies such
  as ``az_nas`` are aggregated over that whole set, as their papers do);
- ``evolution``: regularized (aging) evolution (Real et al., 2019) with a direct proxy as fitness:
  a population of ``population`` archs, tournaments of ``sample``, the winner mutated on one edge.

The result carries the NB201 test accuracies of the chosen arch when the benchmark table is available,
so a search can be judged without training.
"""

from __future__ import annotations

import csv
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from zcscore.proxies.catalog import get_spec
from zcscore.spaces import Space, get_space

ScoreFn = Callable[[list[str]], list[float]]


@dataclass
class SearchResult:
    """The chosen arch, its score, and the history of (arch, score) in evaluation order."""

    best_arch: str
    best_score: float
    history: list[tuple[str, float]] = field(default_factory=list)
    accuracy: dict[str, float] = field(default_factory=dict)


def _fitness(score: float) -> float:
    """Order scores with NaN treated as the worst value."""
    return -math.inf if math.isnan(score) else score


def random_search(score_fn: ScoreFn, budget: int, seed: int = 0, space: Space | None = None) -> SearchResult:
    """Score ``budget`` distinct random archs together and return the best."""
    sp = space or get_space("nb201")
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    while len(seen) < min(budget, sp.size or budget):
        seen.setdefault(sp.encode(sp.sample(rng)), None)
    archs = list(seen)
    scores = score_fn(archs)
    history = list(zip(archs, scores))
    best = max(history, key=lambda item: _fitness(item[1]))
    return SearchResult(best[0], best[1], history)


def evolution_search(
    score_fn: ScoreFn, budget: int, seed: int = 0, population: int = 20, sample: int = 5, space: Space | None = None
) -> SearchResult:
    """Regularized evolution with ``budget`` distinct arch evaluations."""
    sp = space or get_space("nb201")
    rng = random.Random(seed)
    cache: dict[str, float] = {}
    history: list[tuple[str, float]] = []

    def evaluate(arch: object) -> float:
        text = sp.encode(arch)
        if text not in cache:
            cache[text] = score_fn([text])[0]
            history.append((text, cache[text]))
        return cache[text]

    pop: deque[tuple[object, float]] = deque()
    while len(pop) < population and len(cache) < budget:
        arch = sp.sample(rng)
        pop.append((arch, evaluate(arch)))
    stalls = 0
    while len(cache) < budget and stalls < 100 * budget:
        contenders = rng.sample(list(pop), min(sample, len(pop)))
        parent = max(contenders, key=lambda item: _fitness(item[1]))[0]
        child = sp.mutate(parent, rng)
        before = len(cache)
        pop.append((child, evaluate(child)))
        pop.popleft()
        stalls = stalls + 1 if len(cache) == before else 0
    best = max(history, key=lambda item: _fitness(item[1]))
    return SearchResult(best[0], best[1], history)


def engine_score_fn(proxy: str, space: str = "nb201", **config: object) -> ScoreFn:
    """A score function backed by the engine (one proxy, fixed config)."""
    from zcscore.engine import Engine, ScoreConfig

    engine = Engine([proxy], ScoreConfig(**config))  # type: ignore[arg-type]
    return lambda archs: [r.score for r in engine.score_archs(archs, space=space)]


def run_search(
    proxy: str,
    algorithm: str,
    budget: int,
    search_seed: int = 0,
    score_fn: ScoreFn | None = None,
    accuracy_table: Path | None = None,
    space: str = "nb201",
    **config: object,
) -> SearchResult:
    """Search ``space`` with ``proxy`` as fitness; ``config`` goes to the engine's ScoreConfig.

    Population proxies (``az_nas``) only support ``random``: their score is defined over a set.
    """
    spec = get_spec(proxy)
    if algorithm == "evolution" and spec.population:
        raise ValueError(f"{proxy!r} is a population proxy: its score is only defined over a set; use random")
    sp = get_space(space)
    fn = score_fn or engine_score_fn(proxy, sp.name, **config)
    if algorithm == "random":
        result = random_search(fn, budget, search_seed, space=sp)
    elif algorithm == "evolution":
        result = evolution_search(fn, budget, search_seed, space=sp)
    else:
        raise ValueError(f"unknown algorithm {algorithm!r} (random, evolution)")
    if sp.name == "nb201" and accuracy_table is not None and accuracy_table.exists():
        result.accuracy = lookup_accuracy(result.best_arch, accuracy_table)
    return result


def lookup_accuracy(arch: str, table: Path) -> dict[str, float]:
    """NB201 test accuracies of ``arch`` from ``nb201.csv``."""
    with open(table, newline="") as fh:
        for row in csv.DictReader(fh):
            if row["arch"] == arch:
                cols = ("cifar10_test", "cifar100_test", "imagenet16_test")
                return {c: float(row[c]) for c in cols}
    return {}
