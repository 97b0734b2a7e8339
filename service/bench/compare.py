"""Agreement between two score files: Kendall tau per proxy over the archs both files score.

Either file may be long format (``arch,proxy,score,...`` as ``zcscore score`` writes) or wide (an
``arch`` column plus one column per proxy, e.g. ``/work/shared/data/nb201_zc_scores.csv``). Proxies pair
by name, or explicitly with ``A=B`` mappings (``epsinas=epsinas_cifar10``). ``filters`` (``COL=VALUE``) keep
only the rows of a file that has column COL with that value (e.g. ``source=A_zc_nasbench201_json`` and
``dataset=cifar10`` for ``nb201_zc_naslib_subset.csv``); text columns are not scores. Archs where either score
is NaN are left out (counted); -inf is kept and ranks lowest. ``max_rel_diff`` compares finite values.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from zcscore.bench.metrics import EXCLUDE, rank_correlation

Table = dict[str, dict[str, float]]
NON_SCORE_COLUMNS = {"arch", "index"}


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def load_scores(path: Path, filters: Sequence[tuple[str, str]] = ()) -> Table:
    """``{proxy_or_column: {arch: score}}`` from a long or wide score file (rows matching ``filters``)."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        if "arch" not in fields:
            raise ValueError(f"{path}: no 'arch' column")
        own = [(col, value) for col, value in filters if col in fields]
        rows = [r for r in reader if all(r[col] == value for col, value in own)]
    table: Table = {}
    if {"proxy", "score"} <= set(fields):
        for r in rows:
            table.setdefault(r["proxy"], {}).setdefault(r["arch"], _num(r["score"]))
        return table
    text = {col for col, _ in filters} | NON_SCORE_COLUMNS
    for c in (c for c in fields if c not in text):
        column = {r["arch"]: _num(r[c]) for r in rows}
        if any(not math.isnan(v) for v in column.values()) or all(r[c] in ("", "nan") for r in rows):
            table[c] = column
    return table


def parse_mappings(items: Sequence[str], option: str = "--map") -> list[tuple[str, str]]:
    """``["a=b", ...]`` -> ``[("a", "b"), ...]``; raises ``ValueError`` on a bad item."""
    out = []
    for item in items:
        left, sep, right = item.partition("=")
        if not sep or not left or not right:
            raise ValueError(f"{option} expects A=B, got {item!r}")
        out.append((left.strip(), right.strip()))
    return out


def agreement(a: dict[str, float], b: dict[str, float]) -> dict[str, Any]:
    """tau/rho between two ``{arch: score}`` maps over their common archs (NaN pairs left out)."""
    common = [arch for arch in a if arch in b]
    xa = np.array([a[c] for c in common], dtype=np.float64)
    xb = np.array([b[c] for c in common], dtype=np.float64)
    both = ~np.isnan(xa) & ~np.isnan(xb)
    corr = rank_correlation(xa[both], xb[both], EXCLUDE)
    fin = np.isfinite(xa) & np.isfinite(xb)
    denom = np.maximum(np.abs(xa[fin]), np.abs(xb[fin]))
    rel = np.abs(xa[fin] - xb[fin]) / np.where(denom > 0, denom, 1.0)
    return {
        "common": len(common),
        "n": corr.n,
        "kendall": corr.kendall,
        "spearman": corr.spearman,
        "nan_a": int(np.isnan(xa).sum()),
        "nan_b": int(np.isnan(xb).sum()),
        "max_rel_diff": float(rel.max()) if rel.size else math.nan,
    }


def compare_files(
    path_a: Path, path_b: Path, mappings: Sequence[str] = (), filters: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Agreement rows for each proxy pair (explicit mappings, else the names both files share)."""
    where = parse_mappings(filters, "--filter")
    ta, tb = load_scores(path_a, where), load_scores(path_b, where)
    pairs = parse_mappings(mappings) or [(p, p) for p in ta if p in tb]
    rows = []
    for pa, pb in pairs:
        for name, table, path in ((pa, ta, path_a), (pb, tb, path_b)):
            if name not in table:
                raise ValueError(f"{path}: no proxy/column {name!r} (has: {', '.join(table)})")
        rows.append({"proxy_a": pa, "proxy_b": pb, **agreement(ta[pa], tb[pb])})
    return rows


def write_agreement(rows: Sequence[dict[str, Any]], out: TextIO) -> None:
    """Print the agreement table as CSV."""
    cols = ["proxy_a", "proxy_b", "common", "n", "kendall", "spearman", "nan_a", "nan_b", "max_rel_diff"]
    writer = csv.writer(out)
    writer.writerow(cols)
    for r in rows:
        writer.writerow([f"{r[c]:.6g}" if isinstance(r[c], float) else r[c] for c in cols])
