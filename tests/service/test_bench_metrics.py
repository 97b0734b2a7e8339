"""Correlations and the NaN/-inf policies of ``zcscore bench`` on small tables with known answers."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from zcscore.bench.metrics import EXCLUDE, RANK_LAST, count_nonfinite, percentile_ms, policy_for, rank_correlation
from zcscore.bench.scorefile import Row
from zcscore.bench.summary import SUMMARY_COLUMNS, summarize


def test_hand_computed_tau_and_rho() -> None:
    # pairs: 10, discordant (2,3) and (4,5): tau = (8 - 2) / 10; rho = 1 - 6*4 / (5*24)
    c = rank_correlation([1, 2, 3, 4, 5], [1, 3, 2, 5, 4])
    assert (c.n, c.kendall, c.spearman) == (5, pytest.approx(0.6), pytest.approx(0.8))
    assert rank_correlation([1, 2, 3], [3, 2, 1]).kendall == pytest.approx(-1.0)


def test_matches_scipy_on_finite_data() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=50), rng.normal(size=50)
    x[:5] = x[0]  # ties
    c = rank_correlation(x, y)
    assert c.kendall == pytest.approx(kendalltau(x, y).statistic)
    assert c.spearman == pytest.approx(spearmanr(x, y).statistic)


def test_rank_last_ties_nan_with_neginf_at_the_bottom() -> None:
    # x ranks (1.5, 1.5, 3, 4): one tied pair, five concordant -> tau_b = 5 / sqrt(5 * 6)
    c = rank_correlation([math.nan, -math.inf, 1.0, 2.0], [1, 2, 3, 4], RANK_LAST)
    assert c.n == 4
    assert c.kendall == pytest.approx(5 / math.sqrt(30))
    # a degenerate arch that is in fact good pulls tau down: it is ranked last, not dropped
    bad = rank_correlation([math.nan, 1.0, 2.0, 3.0], [4, 1, 2, 3], RANK_LAST)
    assert bad.kendall == pytest.approx(0.0)


def test_exclude_drops_nan_and_counts() -> None:
    c = rank_correlation([math.nan, 1.0, 2.0, 3.0], [4, 1, 2, 3], EXCLUDE)
    assert (c.n, c.kendall) == (3, pytest.approx(1.0))
    assert count_nonfinite([math.nan, -math.inf, -math.inf, 1.0, math.inf]) == (1, 2)
    assert policy_for("epsinas") == EXCLUDE and policy_for("az_nas") == RANK_LAST


def test_missing_targets_dropped_and_orientation() -> None:
    c = rank_correlation([1.0, 2.0, 3.0, 4.0], [1.0, math.nan, 3.0, 4.0])
    assert (c.n, c.kendall) == (3, pytest.approx(1.0))
    # lower-is-better: NaN still ends up worst after flipping
    c = rank_correlation([3.0, 2.0, 1.0, math.nan], [2, 3, 4, 1], RANK_LAST, higher_is_better=False)
    assert c.kendall == pytest.approx(1.0)


def test_degenerate_inputs_give_nan_not_errors() -> None:
    assert math.isnan(rank_correlation([1.0], [1.0]).kendall)
    assert math.isnan(rank_correlation([2.0, 2.0, 2.0], [1, 2, 3]).kendall)
    assert math.isnan(rank_correlation([math.nan] * 3, [1, 2, 3], EXCLUDE).spearman)
    assert math.isnan(percentile_ms([], 50)) and percentile_ms([0.001, 0.003], 50) == pytest.approx(2.0)


def _row(arch: str, proxy: str, score: float, seconds: float = 0.01) -> Row:
    return Row([arch, proxy, repr(score), f"{seconds}", "", "", "{}"])


def test_summarize_synthetic_table(tmp_path: Path) -> None:
    archs = [f"a{i}" for i in range(5)]
    with open(tmp_path / "nb201.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch", "index", "cifar10_test", "cifar100_test", "imagenet16_test"])
        for i, a in enumerate(archs):
            w.writerow([a, i, 90 + i, 70 + i, 40 - i])
    good = [1.0, 2.0, 3.0, 4.0, 5.0]
    eps = [math.nan, math.nan, 3.0, 4.0, 5.0]
    az = [-math.inf, math.nan, 3.0, 4.0, 5.0]
    rows = [_row(a, "az_nas", az[i], 0.002 * (i + 1)) for i, a in enumerate(archs)]
    rows += [_row(a, "epsinas", eps[i]) for i, a in enumerate(archs)]
    rows += [_row(a, "params", good[i]) for i, a in enumerate(archs)]
    summary = {r["proxy"]: r for r in summarize(rows, archs, tmp_path)}
    assert list(summary["params"]) == list(SUMMARY_COLUMNS)
    p = summary["params"]
    taus = (p["kendall_cifar10"], p["kendall_cifar100"], p["kendall_imagenet16"])
    assert p["n"] == 5 and taus == pytest.approx((1.0, 1.0, -1.0))
    e = summary["epsinas"]
    assert (e["n"], e["nan_count"], e["neginf_count"]) == (3, 2, 0)
    assert e["kendall_cifar10"] == pytest.approx(1.0)
    z = summary["az_nas"]  # -inf and NaN tie at the bottom: tau_b = 9 / sqrt(9 * 10)
    assert (z["n"], z["nan_count"], z["neginf_count"]) == (5, 1, 1)
    assert z["kendall_cifar10"] == pytest.approx(9 / math.sqrt(90))
    assert z["median_ms_per_arch"] == pytest.approx(6.0)
    assert z["p90_ms_per_arch"] == pytest.approx(9.2)
