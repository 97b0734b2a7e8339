"""``DIR/summary.csv``: one row per proxy with its rank correlations on three datasets and its cost."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zcscore.bench.metrics import count_nonfinite, percentile_ms, policy_for, rank_correlation
from zcscore.bench.scorefile import Row, scores_by_proxy, seconds_by_proxy
from zcscore.bench.truth import DATASETS, accuracies, target_columns

SUMMARY_COLUMNS: tuple[str, ...] = (
    "proxy",
    "n",
    *(f"{m}_{d}" for d in DATASETS for m in ("kendall", "spearman")),
    "median_ms_per_arch",
    "p90_ms_per_arch",
    "nan_count",
    "neginf_count",
)


def _higher_is_better(proxy: str) -> bool:
    from zcscore.proxies.catalog import get_spec

    try:
        return get_spec(proxy).higher_is_better
    except KeyError:
        return True


def summarize(
    rows: Sequence[Row], archs: Sequence[str], data_dir: Path | None = None, space: str = "nb201"
) -> list[dict[str, Any]]:
    """Summary rows for every proxy in ``rows``, over the distinct ``archs`` (file order of proxies).

    A dataset without a ground-truth column in ``space`` gets NaN correlations.
    """
    distinct = list(dict.fromkeys(archs))
    scores = scores_by_proxy(rows)
    seconds = seconds_by_proxy(rows)
    columns = target_columns(space)
    nan = [math.nan] * len(distinct)
    truth = {d: accuracies(distinct, columns[d], data_dir, space) if d in columns else nan for d in DATASETS}
    out = []
    for proxy, by_arch in scores.items():
        values = [by_arch.get(a, math.nan) for a in distinct]
        policy, hib = policy_for(proxy), _higher_is_better(proxy)
        row: dict[str, Any] = {"proxy": proxy}
        for d in DATASETS:
            corr = rank_correlation(values, truth[d], policy, hib)
            row.setdefault("n", corr.n)
            row[f"kendall_{d}"], row[f"spearman_{d}"] = corr.kendall, corr.spearman
        nan_count, neginf_count = count_nonfinite(values)
        row["median_ms_per_arch"] = percentile_ms(seconds.get(proxy, []), 50)
        row["p90_ms_per_arch"] = percentile_ms(seconds.get(proxy, []), 90)
        row["nan_count"], row["neginf_count"] = nan_count, neginf_count
        out.append({k: row[k] for k in SUMMARY_COLUMNS})
    return out


def paper_target_kendall(
    rows: Sequence[Row], archs: Sequence[str], proxy: str, column: str, data_dir: Path | None = None
) -> float:
    """Kendall tau of ``proxy`` against ``nb201.csv`` column ``column`` (the paper's own target)."""
    distinct = list(dict.fromkeys(archs))
    by_arch = scores_by_proxy(rows).get(proxy, {})
    values = [by_arch.get(a, math.nan) for a in distinct]
    targets = accuracies(distinct, column, data_dir)
    corr = rank_correlation(values, targets, policy_for(proxy), _higher_is_better(proxy))
    return corr.kendall


def fmt(value: Any, digits: int = 4) -> str:
    """CSV/Markdown text of a summary cell (floats rounded, NaN as ``nan``)."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def write_summary(path: Path, summary: Sequence[dict[str, Any]]) -> None:
    """Write ``summary.csv``."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(SUMMARY_COLUMNS)
        for row in summary:
            writer.writerow([fmt(row[c], 6) for c in SUMMARY_COLUMNS])


def read_summary(path: Path) -> list[dict[str, Any]]:
    """Read ``summary.csv`` back (numbers as floats, counts as ints)."""
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for r in rows:
        conv: dict[str, Any] = {"proxy": r["proxy"]}
        for c in SUMMARY_COLUMNS[1:]:
            conv[c] = int(r[c]) if c in ("n", "nan_count", "neginf_count") else float(r[c])
        out.append(conv)
    return out
