"""Helpers shared by the search algorithms: constrained sampling and mutation, the best of a set."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from zcscore.search.scorer import Scorer
from zcscore.spaces import Space, SpaceError

MAX_TRIES = 10_000  # draws before a FLOPs budget is declared unsatisfiable
STALL_FACTOR = 50  # an algorithm stops after STALL_FACTOR * budget steps that find no new arch


def flops_of(space: Space, arch: object) -> float:
    """FLOPs (M) of ``arch``: the space's closed form, else counted from the built network."""
    value = space.flops_m(arch)
    if value is None:
        from zcscore.engine import Engine

        rec = Engine(["flops"]).score_archs([space.encode(arch)], space=space)[0]
        value = rec.score
    return float(value)


def constrained(space: Space, flops_max: float | None) -> Space:
    """The space that sampling/mutation use: MBV2 takes the budget itself; others are filtered by FLOPs."""
    with_budget = getattr(space, "with_budget", None)
    if flops_max is not None and callable(with_budget):
        budgeted: Space = with_budget(flops_max)
        return budgeted
    return space


def fits(space: Space, arch: object, flops_max: float | None) -> bool:
    return flops_max is None or flops_of(space, arch) <= flops_max


def sample_arch(space: Space, rng: random.Random, flops_max: float | None = None) -> str:
    """A random arch of ``space`` within ``flops_max`` (millions), as a string."""
    for _ in range(MAX_TRIES):
        arch = space.sample(rng)
        if fits(space, arch, flops_max):
            return space.encode(arch)
    raise SpaceError(f"no arch within {flops_max}M FLOPs after {MAX_TRIES} draws", field="budget")


def mutate_arch(space: Space, arch: str, rng: random.Random, flops_max: float | None = None) -> str:
    """One mutation of ``arch`` within ``flops_max``, as a string."""
    parsed = space.parse(arch)
    for _ in range(MAX_TRIES):
        child = space.mutate(parsed, rng)
        if fits(space, child, flops_max):
            return space.encode(child)
    raise SpaceError(f"no mutation of {arch} within {flops_max}M FLOPs after {MAX_TRIES} tries", field="budget")


def distinct_samples(
    scorer: Scorer, space: Space, rng: random.Random, count: int, flops_max: float | None = None
) -> list[str]:
    """``count`` random archs whose canonical classes are new to ``scorer`` and to each other.

    Every algorithm draws its random archs through this function from ``random.Random(seed)``, so runs with the
    same seed start from the same archs (and share their cached scores).
    """
    out: list[str] = []
    seen: set[str] = set()
    limit = space.size
    tries = 0
    while len(out) < count and tries < STALL_FACTOR * max(count, 1) + MAX_TRIES:
        tries += 1
        arch = sample_arch(space, rng, flops_max)
        canon = space.encode(space.canonical(space.parse(arch)))
        if canon in seen or scorer_has(scorer, arch):
            if limit is not None and len(seen) + len(scorer.scored) >= limit:
                break
            continue
        seen.add(canon)
        out.append(arch)
    return out


def scorer_has(scorer: Scorer, arch: str) -> bool:
    is_scored = getattr(scorer, "is_scored", None)
    if callable(is_scored):
        return bool(is_scored(arch))
    return arch in scorer.scored


def argbest(archs: Sequence[str], fitness: Sequence[float]) -> int:
    """Index of the highest fitness (NaN lowest; the first on ties)."""
    best, best_value = 0, -math.inf
    for i, value in enumerate(fitness):
        v = -math.inf if math.isnan(value) else value
        if i == 0 or v > best_value:
            best, best_value = i, v
    return best
