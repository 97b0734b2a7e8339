"""Rank correlations between proxy scores and accuracies, with the papers' NaN/-inf handling.

Two policies, chosen per proxy the way its paper evaluates it:

* ``rank_last`` (default; AZ-NAS and every proxy whose paper says nothing): NaN is mapped to -inf and
  -inf ranks lowest, ties averaged (``scipy.stats.rankdata``), so a degenerate network stays in the
  sample as the worst candidate. This is what the AZ-NAS notebook does, and what a search must do.
* ``exclude`` (epsinas): archs whose score is NaN are dropped ("computed with NaN omitted", epsinas
  paper Sec. 4.2); ``n`` says how many were used and ``nan_count`` how many were dropped.

Archs without a ground-truth value are always dropped. Kendall's tau is tau-b (ties corrected, the
``scipy.stats.kendalltau`` default used by the official notebooks); Spearman's rho is Pearson on average
ranks. Both are NaN when fewer than two archs remain or one side is constant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import kendalltau, rankdata, spearmanr

RANK_LAST = "rank_last"
EXCLUDE = "exclude"
NAN_POLICY: dict[str, str] = {"epsinas": EXCLUDE}

Floats = Sequence[float] | np.ndarray  # scores or accuracies: a list or a float array


def policy_for(proxy: str) -> str:
    """The NaN policy used for ``proxy`` (see module docstring)."""
    return NAN_POLICY.get(proxy, RANK_LAST)


@dataclass(frozen=True)
class Correlation:
    """Kendall tau-b and Spearman rho over ``n`` archs."""

    n: int
    kendall: float
    spearman: float


def apply_policy(
    scores: Floats, targets: Floats, policy: str, higher_is_better: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and targets after the NaN policy (orientation: higher is better), missing targets dropped."""
    x = np.asarray(scores, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"{len(x)} scores but {len(y)} targets")
    if not higher_is_better:
        x = -x
    keep = ~np.isnan(y)
    if policy == EXCLUDE:
        keep &= ~np.isnan(x)
    elif policy == RANK_LAST:
        x = np.where(np.isnan(x), -np.inf, x)
    else:
        raise ValueError(f"unknown NaN policy {policy!r}")
    return x[keep], y[keep]


def rank_correlation(
    scores: Floats, targets: Floats, policy: str = RANK_LAST, higher_is_better: bool = True
) -> Correlation:
    """Kendall tau-b and Spearman rho of ``scores`` against ``targets`` under ``policy``."""
    x, y = apply_policy(scores, targets, policy, higher_is_better)
    n = len(x)
    if n < 2:
        return Correlation(n, math.nan, math.nan)
    rx, ry = rankdata(x), rankdata(y)  # -inf ranks lowest; ranks make tau/rho immune to infinities
    if np.all(rx == rx[0]) or np.all(ry == ry[0]):
        return Correlation(n, math.nan, math.nan)
    tau = float(kendalltau(rx, ry).statistic)
    rho = float(spearmanr(rx, ry).statistic)
    return Correlation(n, tau, rho)


def count_nonfinite(scores: Sequence[float]) -> tuple[int, int]:
    """``(nan_count, neginf_count)`` of raw scores."""
    x = np.asarray(scores, dtype=np.float64)
    return int(np.isnan(x).sum()), int(np.isneginf(x).sum())


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of per-arch times, in milliseconds (NaN when empty)."""
    finite = [s for s in seconds if math.isfinite(s)]
    return float(np.percentile(finite, q) * 1e3) if finite else math.nan
