"""Training-free architecture search with zero-cost proxies as the fitness (``zcscore search``).

Algorithms (one module per family): random search and epsinas' warm-up (:mod:`.random_search`); regularized
evolution, epsinas' warm-up REA, AZ-NAS Algorithm 1 and InTrain-NAS (:mod:`.evolution`); the TE-NAS / xi-GSNR
pruning search on NB201 (:mod:`.prune`). Each takes a :class:`Scorer`: :class:`EngineScorer` (in process, with
an optional persistent SQLite cache) or :class:`ServiceScorer` (a running service through ``zcscore.Client``),
so the same code and seed give the same result either way. :func:`search` runs any of them by name and
returns a :class:`SearchResult`; :func:`optuna_objective` plugs a proxy into Optuna. See ``docs/search.md``.
"""

from __future__ import annotations

from zcscore.search.evolution import az_evo, intrain_evo, rea, warmup_rea
from zcscore.search.optuna_bridge import OptunaObjective, optuna_objective, suggest_arch
from zcscore.search.prune import prune_search
from zcscore.search.random_search import random_search, warmup_random
from zcscore.search.result import SearchResult
from zcscore.search.run import (
    ALGOS,
    arch_costs,
    canonical_algo,
    make_scorer,
    nb201_accuracy,
    nb201_oracle,
    search,
    summarize,
)
from zcscore.search.scorer import (
    BaseScorer,
    EngineScorer,
    FunctionScorer,
    ScoreCache,
    Scorer,
    ServiceScorer,
)

__all__ = [
    "ALGOS",
    "BaseScorer",
    "EngineScorer",
    "FunctionScorer",
    "OptunaObjective",
    "ScoreCache",
    "Scorer",
    "SearchResult",
    "ServiceScorer",
    "arch_costs",
    "az_evo",
    "canonical_algo",
    "intrain_evo",
    "make_scorer",
    "nb201_accuracy",
    "nb201_oracle",
    "optuna_objective",
    "prune_search",
    "random_search",
    "rea",
    "search",
    "suggest_arch",
    "summarize",
    "warmup_random",
    "warmup_rea",
]
