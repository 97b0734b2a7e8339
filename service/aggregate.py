"""Population rank aggregation: proxies whose score is relative to the set of archs scored together."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from zcscore.proxies.catalog import ProxySpec
from zcscore.records import ScoreRecord


def log_rank_sum(columns: Sequence[Sequence[float]]) -> np.ndarray:
    """AZ-NAS non-linear aggregation: ``sum_k log(rankdata(column_k) / m)``.

    Ranks are ascending with average ties (``scipy.stats.rankdata``); NaN is treated as -inf (the
    official code maps NaN sub-scores to -inf), so degenerate archs rank lowest. Higher is better.
    """
    total: np.ndarray | None = None
    for col in columns:
        values = np.asarray(col, dtype=np.float64)
        values = np.where(np.isnan(values), -np.inf, values)
        term = np.log(rankdata(values) / len(values))
        total = term if total is None else total + term
    if total is None:
        raise ValueError("no columns to aggregate")
    return total


def population_records(
    spec: ProxySpec, archs: Sequence[str], table: Mapping[tuple[str, str], ScoreRecord], provenance: dict[str, Any]
) -> list[ScoreRecord]:
    """Records of population proxy ``spec`` over the distinct ``archs``, from their component records."""
    distinct = list(dict.fromkeys(archs))
    columns = [[table[(a, c)].score for a in distinct] for c in spec.components]
    agg = log_rank_sum(columns)
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
