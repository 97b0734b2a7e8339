"""PNG plots of a bench run (matplotlib, Agg backend): score-vs-accuracy scatters and a tau bar chart."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zcscore.bench.published import primary
from zcscore.bench.truth import dataset_indices


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def scatter(path: Path, proxy: str, scores: Sequence[float], acc: Sequence[float], tau: float) -> Path:
    """Proxy score vs CIFAR-10 accuracy; non-finite scores are counted in the title, not drawn."""
    plt = _pyplot()
    x = np.asarray(scores, dtype=np.float64)
    y = np.asarray(acc, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    fig, ax = plt.subplots(figsize=(4.8, 3.6), dpi=110)
    ax.scatter(x[ok], y[ok], s=6, alpha=0.6, linewidths=0)
    if ok.any() and (x[ok] > 0).all() and x[ok].max() / max(x[ok].min(), 1e-300) > 1e3:
        ax.set_xscale("log")
    dropped = int((~np.isfinite(x)).sum())
    tau_txt = "nan" if math.isnan(tau) else f"{tau:.3f}"
    ax.set_title(f"{proxy}: Kendall tau {tau_txt} (n={int(ok.sum())}, non-finite {dropped})", fontsize=9)
    ax.set_xlabel(f"{proxy} score")
    ax.set_ylabel("CIFAR-10 test accuracy (%)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def tau_bars(path: Path, summary: Sequence[dict[str, Any]], space: str = "nb201") -> Path:
    """Grouped bars of Kendall tau per proxy and dataset of ``space``; black ticks mark the published CIFAR-10 tau."""
    plt = _pyplot()
    names = [r["proxy"] for r in summary]
    datasets = [d for _, d in dataset_indices(space)]
    idx = np.arange(len(names))
    width = 0.8 / len(datasets)
    first = -(len(datasets) - 1) / 2 * width  # offset of the CIFAR-10 bar
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 2), 3.8), dpi=110)
    for k, d in enumerate(datasets):
        vals = [r[f"kendall_{d}"] for r in summary]
        ax.bar(idx + first + k * width, np.nan_to_num(vals, nan=0.0), width, label=d)
    pub = [primary(n, space) for n in names]
    px = [i + first for i, p in zip(idx, pub) if p is not None and p.kendall[0] is not None]
    py = [p.kendall[0] for p in pub if p is not None and p.kendall[0] is not None]
    if px:
        ax.scatter(px, py, marker="_", s=300, color="black", zorder=3, label="published C10")
    ax.set_xticks(idx)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("Kendall tau")
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
