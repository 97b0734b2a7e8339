"""Optuna integration: a zero-cost objective for studies that already drive NAS with Optuna.

    import optuna
    from zcscore.search import optuna_objective
    objective = optuna_objective("az_nas", space="nb201", cache="scores.sqlite")
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=200)
    best = study.best_trial.user_attrs["arch"]

Each trial suggests an arch (NB201: one categorical per edge; MBV2: stem, per-stage e/k/d/w, last width, under
``flops_max`` where an over-budget trial is pruned) and returns its fitness. Population proxies (``az_nas``,
ensembles) are ranked over every arch scored so far, so a trial's value is relative to the trials before it;
rank ``objective.scorer.fitness(objective.scorer.scored)`` at the end for the final order. Needs ``pip install
'zcscore[search]'`` (optuna).
"""

from __future__ import annotations

from typing import Any

from zcscore.search.scorer import BaseScorer
from zcscore.spaces import Space, get_space


def suggest_arch(trial: Any, space: Space) -> str:
    """An arch of ``space`` (``nb201`` or ``mbv2``) from ``trial.suggest_categorical`` calls."""
    if space.name == "nb201":
        from zcscore.spaces.nb201 import EDGES, OPS, NB201Arch

        ops = tuple(trial.suggest_categorical(f"edge_{s}_{d}", list(OPS)) for s, d in EDGES)
        return NB201Arch(ops).to_str()
    if space.name == "mbv2":
        from zcscore.spaces.mbv2 import KERNELS, LAST_WIDTHS, SEARCH_STAGES, STEM_WIDTHS, MBV2Arch, Stage

        stages = tuple(
            Stage(
                expansion=trial.suggest_categorical(f"s{i}_e", list(r.expansions)),
                kernel=trial.suggest_categorical(f"s{i}_k", list(KERNELS)),
                stride=r.stride,
                depth=trial.suggest_categorical(f"s{i}_d", list(r.depths)),
                width=trial.suggest_categorical(f"s{i}_w", list(r.widths)),
                se=False,
            )
            for i, r in enumerate(SEARCH_STAGES)
        )
        stem = trial.suggest_categorical("stem", list(STEM_WIDTHS))
        last = trial.suggest_categorical("last", list(LAST_WIDTHS))
        return MBV2Arch(stem, stages, last, int(getattr(space, "resolution", 224))).encode()
    raise ValueError(f"no Optuna encoding for space {space.name!r} (nb201, mbv2)")


class OptunaObjective:
    """``objective(trial) -> fitness``; ``scorer`` holds every score (``scorer.scored``, ``scorer.fitness``)."""

    def __init__(self, scorer: BaseScorer, flops_max: float | None = None) -> None:
        self.scorer = scorer
        self.flops_max = flops_max

    def __call__(self, trial: Any) -> float:
        from zcscore.search.common import fits

        space = self.scorer.space
        arch = suggest_arch(trial, space)
        trial.set_user_attr("arch", arch)
        if not fits(space, space.parse(arch), self.flops_max):
            import optuna

            raise optuna.TrialPruned(f"over {self.flops_max}M FLOPs")
        return float(self.scorer.score([arch])[0])


def optuna_objective(
    proxy: str,
    space: str = "nb201",
    flops_max: float | None = None,
    scorer: BaseScorer | None = None,
    **scorer_options: Any,
) -> OptunaObjective:
    """An Optuna objective maximising ``proxy`` on ``space``; ``scorer_options`` go to
    :func:`zcscore.search.make_scorer` (``cache=``, ``api=``, ``score_seed=``, ...)."""
    from zcscore.search.run import make_scorer

    get_space(space)
    return OptunaObjective(scorer or make_scorer(proxy, space, **scorer_options), flops_max)
