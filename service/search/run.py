"""One entry point for every algorithm: :func:`search` (in process or through a service) and seed reports."""

from __future__ import annotations

import csv
import math
import statistics
import time
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from zcscore.search.evolution import az_evo, intrain_evo, rea, warmup_rea
from zcscore.search.prune import prune_search
from zcscore.search.random_search import random_search, warmup_random
from zcscore.search.result import SearchResult
from zcscore.search.scorer import BaseScorer, EngineScorer, ServiceScorer
from zcscore.spaces import Space, get_space

ALGOS: tuple[str, ...] = ("random", "rea", "warmup-random", "warmup-rea", "az-evo", "intrain-evo", "prune")
ALIASES: dict[str, str] = {"evolution": "rea", "ageing": "rea", "az": "az-evo", "intrain": "intrain-evo"}
ACCURACY_COLUMNS: tuple[str, ...] = ("cifar10_test", "cifar100_test", "imagenet16_test")
# defaults of each algorithm's own knobs (``options`` overrides them)
DEFAULTS: dict[str, dict[str, Any]] = {
    "random": {},
    "rea": {"population": 20, "sample": 5},
    "warmup-random": {"train_budget": 0},
    "warmup-rea": {"pool": None, "population": 20, "sample": 5},
    "az-evo": {"topk": 10},
    "intrain-evo": {"population": 16},
    "prune": {},
}


def canonical_algo(name: str) -> str:
    """The algorithm ``name`` stands for (aliases: ``evolution`` = ``rea``); raises ``ValueError``."""
    algo = ALIASES.get(name, name)
    if algo not in ALGOS:
        raise ValueError(f"unknown algorithm {name!r} (known: {', '.join(ALGOS)})")
    return algo


def make_scorer(
    proxy: str,
    space: str | Space = "nb201",
    *,
    api: str | None = None,
    client: Any = None,
    cache: str | Path | None = None,
    score_seed: int = 1,
    device: str = "cpu",
    threads: int = 1,
    num_classes: int | None = None,
) -> BaseScorer:
    """An :class:`EngineScorer` (optionally with a persistent ``cache`` file) or, with ``api``/``client``, a
    :class:`ServiceScorer`; ``num_classes`` defaults to the space's own (MBV2: 1000) or 10."""
    sp = get_space(space) if isinstance(space, str) else space
    classes = num_classes if num_classes is not None else int(getattr(sp, "num_classes", 10))
    if api is not None or client is not None:
        return ServiceScorer(proxy, sp, client=client, url=api, seed=score_seed, num_classes=classes)
    return EngineScorer(proxy, sp, cache=cache, seed=score_seed, device=device, threads=threads, num_classes=classes)


def search(
    algo: str,
    proxy: str,
    space: str = "nb201",
    budget: int = 100,
    seed: int = 0,
    flops_max: float | None = None,
    scorer: BaseScorer | None = None,
    *,
    api: str | None = None,
    client: Any = None,
    cache: str | Path | None = None,
    score_seed: int | None = None,
    device: str = "cpu",
    threads: int = 1,
    data_dir: Path | None = None,
    oracle: Callable[[str], float] | None = None,
    **options: Any,
) -> SearchResult:
    """Run ``algo`` with ``proxy`` as fitness on ``space``; reproducible from ``seed``.

    ``budget`` counts distinct archs scored. ``score_seed`` seeds the proxies (default 1; the pruning search,
    which draws nothing at random, uses ``seed``). The scorer is made here unless given: in process (``cache``:
    a SQLite file reused across runs) or through the service at ``api``/``client``. With ``data_dir`` holding
    ``nb201.csv`` an NB201 result carries the found arch's test accuracies.
    """
    algo = canonical_algo(algo)
    opts = {**DEFAULTS[algo], **options}
    if algo == "prune" and space != "nb201":
        raise ValueError("the pruning search is defined on nb201 (it prunes the nb201_super supernet)")
    scored_space = "nb201_super" if algo == "prune" else space
    if score_seed is None:
        score_seed = seed if algo == "prune" else 1
    own = scorer is None
    if scorer is None:
        scorer = make_scorer(
            proxy,
            scored_space,
            api=api,
            client=client,
            cache=cache,
            score_seed=score_seed,
            device=device,
            threads=threads,
        )
    notes: list[str] = []
    t0 = time.perf_counter()
    try:
        best, best_text = _run(algo, scorer, budget, seed, flops_max, opts, oracle, notes)
        trace_archs = scorer.scored
        fitness = scorer.fitness(trace_archs)
        best_score = fitness[trace_archs.index(best_text)] if best_text in trace_archs else math.nan
    finally:
        if own:
            scorer.close()
    seconds = time.perf_counter() - t0
    sp = get_space(space)
    stats = scorer.stats
    result = SearchResult(
        algo=algo,
        proxy=proxy,
        space=space,
        seed=seed,
        best_arch=best,
        best_score=best_score,
        trace=list(zip(trace_archs, fitness)),
        archs=stats["archs"],
        proxy_calls=stats["proxy_calls"],
        computed=stats["computed"],
        seconds=round(seconds, 3),
        options={"budget": budget, "flops_max": flops_max, "score_seed": score_seed, **opts},
        notes=notes,
    )
    result.flops_m, result.params_m = arch_costs(sp, best)
    if space == "nb201" and data_dir is not None:
        result.accuracy = nb201_accuracy(best, data_dir)
    return result


def _run(
    algo: str,
    scorer: BaseScorer,
    budget: int,
    seed: int,
    flops_max: float | None,
    opts: dict[str, Any],
    oracle: Callable[[str], float] | None,
    notes: list[str],
) -> tuple[str, str]:
    """(best arch of the search space, the text the scorer knows it by)."""
    if budget < 1:
        raise ValueError(f"budget must be at least 1, got {budget}")
    if algo == "random":
        best = random_search(scorer, budget, seed, flops_max)
    elif algo == "warmup-random":
        best, trained = warmup_random(scorer, budget, seed, flops_max, oracle, int(opts["train_budget"]) or 300)
        if trained:
            notes.append(f"{len(trained)} archs 'trained' (the oracle read) in decreasing proxy order")
    elif algo == "rea":
        best = rea(scorer, budget, seed, int(opts["population"]), int(opts["sample"]), flops_max)
    elif algo == "warmup-rea":
        pool = int(opts["pool"]) if opts["pool"] else max(budget // 2, int(opts["population"]))
        opts["pool"] = pool
        best = warmup_rea(scorer, budget, seed, pool, int(opts["population"]), int(opts["sample"]), flops_max)
    elif algo == "az-evo":
        best = az_evo(scorer, budget, seed, int(opts["topk"]), flops_max)
    elif algo == "intrain-evo":
        best = intrain_evo(scorer, budget, seed, int(opts["population"]), flops_max)
    else:
        if flops_max is not None:
            notes.append("flops_max is ignored by the pruning search")
        notes.append("budget is fixed by the pruning schedule: 84 supernet states + the final cell")
        arch, final = prune_search(scorer)
        return arch, final
    if len(scorer.scored) < budget:
        notes.append(f"stopped at {len(scorer.scored)} distinct archs: no new arch found (space exhausted)")
    return best, best


def arch_costs(space: Space, arch: str) -> tuple[float | None, float | None]:
    """(FLOPs, params) in millions of ``arch``: closed forms where the space has them, else counted."""
    parsed = space.parse(arch)
    classes = int(getattr(space, "num_classes", 10))
    flops = space.flops_m(parsed, classes)
    params_fn = getattr(space, "params_m", None)
    params = float(params_fn(parsed, classes)) if callable(params_fn) else None
    if flops is None or params is None:
        from zcscore.engine import Engine, ScoreConfig

        recs = {
            r.proxy: r.score
            for r in Engine(["flops", "params"], ScoreConfig(num_classes=classes)).score_archs([arch], space=space)
        }
        flops = recs["flops"] if flops is None else flops
        params = recs["params"] if params is None else params
    return round(float(flops), 4), round(float(params), 6)


@cache
def _nb201_table(path: str) -> dict[str, dict[str, float]]:
    with open(path, newline="") as fh:
        return {row["arch"]: {c: float(row[c]) for c in ACCURACY_COLUMNS if row.get(c)} for row in csv.DictReader(fh)}


def nb201_accuracy(arch: str, data_dir: Path) -> dict[str, float]:
    """NB201 test accuracies (CIFAR-10, CIFAR-100, ImageNet16-120) of ``arch`` from ``nb201.csv``."""
    path = Path(data_dir) / "nb201.csv"
    if not path.exists():
        return {}
    return dict(_nb201_table(str(path)).get(arch, {}))


def nb201_oracle(data_dir: Path, column: str = "cifar10_valid") -> Callable[[str], float]:
    """A 'training' oracle for epsinas' warm-up random search: an NB201 accuracy column (validation by default)."""
    with open(Path(data_dir) / "nb201.csv", newline="") as fh:
        table = {row["arch"]: float(row[column]) if row.get(column) else math.nan for row in csv.DictReader(fh)}
    return lambda arch: table.get(arch, math.nan)


def summarize(results: Sequence[SearchResult]) -> dict[str, Any]:
    """Mean and sample std over runs (seeds) of the found archs' accuracies and of the costs."""
    out: dict[str, Any] = {"runs": len(results), "seeds": [r.seed for r in results]}
    for column in ACCURACY_COLUMNS:
        values = [r.accuracy[column] for r in results if column in r.accuracy]
        if values:
            out[column] = {
                "mean": round(statistics.fmean(values), 3),
                "std": round(statistics.stdev(values), 3) if len(values) > 1 else 0.0,
            }
    for key in ("proxy_calls", "archs", "computed", "seconds"):
        out[f"mean_{key}"] = round(statistics.fmean(float(getattr(r, key)) for r in results), 3)
    return out
