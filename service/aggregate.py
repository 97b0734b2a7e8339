"""Population rank aggregation: proxies whose score is relative to the set of archs scored together."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from zcscore.proxies.catalog import ProxySpec
from zcscore.records import ScoreRecord


def _column(values: Sequence[float], higher_is_better: bool = True) -> np.ndarray:
    """A score column ready for ascending ranking: NaN as -inf (ranked lowest), lower-is-better negated."""
    col = np.asarray(values, dtype=np.float64)
    col = col if higher_is_better else -col
    return np.where(np.isnan(col), -np.inf, col)


def log_rank_sum(columns: Sequence[Sequence[float]]) -> np.ndarray:
    """AZ-NAS non-linear aggregation: ``sum_k log(rankdata(column_k) / m)``.

    Ranks are ascending with average ties (``scipy.stats.rankdata``); NaN is treated as -inf (the
    official code maps NaN sub-scores to -inf), so degenerate archs rank lowest. Higher is better.
    """
    if not columns:
        raise ValueError("no columns to aggregate")
    total: np.ndarray = np.sum([np.log(rankdata(_column(c)) / len(c)) for c in columns], axis=0)
    return total


def rank_sum(columns: Sequence[Sequence[float]]) -> np.ndarray:
    """TE-NAS aggregation (AZ-NAS ``tss_general.ipynb``): ``sum_k rankdata(column_k)``, NaN ranked lowest."""
    if not columns:
        raise ValueError("no columns to aggregate")
    total: np.ndarray = np.sum([rankdata(_column(c)) for c in columns], axis=0)
    return total


def vkdnw_single(columns: Sequence[Sequence[float]]) -> np.ndarray:
    """VKDNW_single: ``log`` of the dense rank of the tuple ``(vkdnw_dim, vkdnw_entropy)``, ascending.

    Lexicographic: the number of parameter tensors first, the entropy only breaks ties (``tss_utils.get_scores``).
    """
    dim, entropy = _column(columns[0]), _column(columns[1])
    pairs = sorted(set(zip(dim.tolist(), entropy.tolist())))
    dense = {pair: i + 1 for i, pair in enumerate(pairs)}
    return np.log(np.array([dense[p] for p in zip(dim.tolist(), entropy.tolist())], dtype=np.float64))


def vkdnw_aggregated(columns: Sequence[Sequence[float]]) -> np.ndarray:
    """VKDNW_agg (``vkdnw_comb_rank``): VKDNW_single plus ``log`` of the average rank (not divided by m) of the rest."""
    total = vkdnw_single(columns[:2])
    for col in columns[2:]:
        total = total + np.log(rankdata(_column(col)))
    return total


AGGREGATIONS: dict[str, Callable[[Sequence[Sequence[float]]], np.ndarray]] = {
    "log_rank": log_rank_sum,
    "rank_sum": rank_sum,
    "vkdnw": vkdnw_single,
    "vkdnw_agg": vkdnw_aggregated,
}


def aggregate(spec: ProxySpec, columns: Mapping[str, Sequence[float]]) -> np.ndarray:
    """Population scores of ``spec`` from its per-arch component ``columns`` (``{component: scores}``)."""
    if spec.aggregation == "ensemble":
        return _ensemble(spec, columns)
    try:
        fn = AGGREGATIONS[spec.aggregation]
    except KeyError:
        raise ValueError(f"{spec.name}: unknown aggregation {spec.aggregation!r}") from None
    return fn([columns[c] for c in spec.components])


def _ensemble(spec: ProxySpec, columns: Mapping[str, Sequence[float]]) -> np.ndarray:
    """``sum_k log(rank_k/m)`` over the ensemble's terms (see :mod:`zcscore.proxies.ensembles`)."""
    from zcscore.proxies.catalog import get_spec
    from zcscore.proxies.ensembles import members_of

    terms: list[np.ndarray] = []
    for member in map(get_spec, members_of(spec.name)):
        if not member.population:
            terms.append(_column(columns[member.name], member.higher_is_better))
        elif member.aggregation == "log_rank":  # its components are terms of the same sum
            terms.extend(_column(columns[c], get_spec(c).higher_is_better) for c in member.components)
        else:
            terms.append(_column(aggregate(member, columns).tolist()))
    total: np.ndarray = np.sum([np.log(rankdata(t) / len(t)) for t in terms], axis=0)
    return total


def population_records(
    spec: ProxySpec, archs: Sequence[str], table: Mapping[tuple[str, str], ScoreRecord], provenance: dict[str, Any]
) -> list[ScoreRecord]:
    """Records of population proxy ``spec`` over the distinct ``archs``, from their component records."""
    distinct = list(dict.fromkeys(archs))
    agg = aggregate(spec, {c: [table[(a, c)].score for a in distinct] for c in spec.components})
    out = []
    for i, arch in enumerate(distinct):
        parts = [table[(arch, c)] for c in spec.components]
        errors = [p.error for p in parts if p.error]
        out.append(
            ScoreRecord(
                arch=arch,
                proxy=spec.name,
                score=float(agg[i]),
                seconds=math.fsum(p.seconds for p in parts),
                components={c: p.score for c, p in zip(spec.components, parts)},
                provenance={**provenance, "population_size": len(distinct)},
                error=errors[0] if errors else None,
            )
        )
    return out
