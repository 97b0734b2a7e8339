"""``DIR/report.md``: our correlations beside the papers', the paper-target check, speed, and plots."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zcscore.bench.metrics import EXCLUDE, NAN_POLICY
from zcscore.bench.published import PAPER_C10_COLUMN, primary, published_for
from zcscore.bench.summary import fmt
from zcscore.bench.truth import DATASETS, TARGET_COLUMNS, dataset_indices

SPEED_COLUMNS = ("proxy", "ms_per_arch", "floor_ms_per_arch", "ratio")


def _pub(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _run_lines(meta: dict[str, Any]) -> list[str]:
    if not meta:
        return []
    keys = (
        "command",
        "archs",
        "distinct_classes",
        "proxies",
        "score_seed",
        "device",
        "device_name",
        "threads",
        "workers",
        "complete",
        "done_archs",
        "resumed_archs",
        "scored_archs",
        "wall_s",
        "wall_s_total",
        "torch",
        "finished_at",
    )
    return [f"- {k}: `{meta[k]}`" for k in keys if k in meta] + [""]


def correlation_table(summary: Sequence[dict[str, Any]], space: str = "nb201") -> list[str]:
    """Markdown table: our tau/rho per dataset of ``space`` next to the proxy's headline published figure there."""
    datasets = dataset_indices(space)
    head = ["proxy", "n"]
    for _, d in datasets:
        head += [f"τ {d}", "paper τ", f"ρ {d}", "paper ρ"]
    head += ["median ms/arch", "p90 ms/arch", "NaN", "−inf", "paper source"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in summary:
        pub = primary(row["proxy"], space)
        cells = [row["proxy"], str(row["n"])]
        for i, d in datasets:
            cells += [
                fmt(row[f"kendall_{d}"], 3),
                _pub(pub.kendall[i] if pub else None),
                fmt(row[f"spearman_{d}"], 3),
                _pub(pub.spearman[i] if pub else None),
            ]
        cells += [
            fmt(row["median_ms_per_arch"], 1),
            fmt(row["p90_ms_per_arch"], 1),
            str(row["nan_count"]),
            str(row["neginf_count"]),
            pub.source if pub else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def published_table(space: str = "nb201") -> list[str]:
    """Markdown table of every published figure we track for ``space`` (its datasets only)."""
    keep = [i for i, _ in dataset_indices(space)]
    names = " / ".join(("C10", "C100", "IN16")[i] for i in keep)
    lines = [
        f"| proxy | source | τ {names} | ρ {names} | target | ms/arch | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in published_for(space):
        tau = " / ".join(_pub(p.kendall[i]) for i in keep)
        rho = " / ".join(_pub(p.spearman[i]) for i in keep)
        ms = "-" if p.ms_per_arch is None else f"{p.ms_per_arch:g}"
        lines.append(f"| {p.proxy} | {p.source} | {tau} | {rho} | {p.target} | {ms} | {p.note} |")
    return lines


def read_speed(path: Path) -> list[dict[str, str]]:
    """Rows of ``speed.csv`` (empty when absent)."""
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write_report(
    out: Path,
    summary: Sequence[dict[str, Any]],
    paper_taus: dict[str, float],
    speed: Sequence[dict[str, str]],
    plots: Sequence[Path],
    errors: dict[str, tuple[int, str]] | None = None,
) -> Path:
    """Write ``out/report.md`` from the summary, paper-target taus, speed rows, plots and error counts."""
    meta_file = out / "run.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    excluded = ", ".join(p for p, v in NAN_POLICY.items() if v == EXCLUDE)
    space = meta.get("space", "nb201")
    lines = ["# zcscore bench report", "", *_run_lines(meta)]
    if summary:
        lines += [
            "## Rank correlation with ground truth",
            "",
            (
                f"Ground truth: `nb201.csv` columns {', '.join(f'`{TARGET_COLUMNS[d]}`' for d in DATASETS)} "
                "(NATS-tss, 200 epochs, mean over seeds; the AZ-NAS target). τ is Kendall tau-b, ρ Spearman."
                if space == "nb201"
                else "Ground truth: `nb101_sample.csv` column `naslib_val_accuracy` (NB101 CIFAR-10 validation "
                "accuracy at 108 epochs, as NAS-Bench-Suite-Zero uses it), in the C10 columns; NB101 has no "
                "C100/IN16. τ is Kendall tau-b, ρ Spearman."
            ),
            f"NaN/−inf: ranked last (NaN treated as −inf, ties averaged, as AZ-NAS does) for every proxy "
            f"except {excluded}, whose NaN archs are excluded as its paper does (`n` = archs used, `NaN` = "
            "archs dropped). Times are per arch from the engine (shared passes split between the proxies "
            "that read them); population proxies report the sum of their components.",
            (
                "Published figures are over all 15,625 archs (AZ-NAS: 3000-arch samples for accuracy only); "
                "ours over this run's archs."
                if space == "nb201"
                else "Published figures are over the whole NB101 space (423k cells) against its test accuracy; "
                "ours over this run's archs against the sample's validation accuracy."
            ),
            "",
            *correlation_table(summary, space),
            "",
        ]
    if errors:
        lines += ["Archs whose proxy raised (scored NaN, then handled by the policy above):", ""]
        lines += [f"- {p}: {n} (first: `{msg}`)" for p, (n, msg) in errors.items()] + [""]
    if paper_taus:
        lines += [
            "## CIFAR-10 τ against each paper's own target column",
            "",
            "| proxy | nb201.csv column | match | τ ours | τ paper |",
            "|---|---|---|---|---|",
        ]
        for proxy, tau in paper_taus.items():
            column, how = PAPER_C10_COLUMN[proxy]
            pub = primary(proxy)
            lines.append(f"| {proxy} | `{column}` | {how} | {fmt(tau, 3)} | {_pub(pub.kendall[0] if pub else None)} |")
        lines.append("")
    if speed:
        lines += [
            "## Speed against the floor",
            "",
            "ms_per_arch: wall time of the engine scoring one arch with this proxy alone (network build "
            "included). floor: the same network built, then only the unavoidable passes run plainly "
            "(AZ 1 fwd+bwd Gaussian 64x3x32x32; zico 2 and xi_gsnr 8 fwd+bwd of 64 real images; "
            "intrain 1 fwd+bwd at 64x3x64x64; epsinas 2 forwards of 256). Medians over archs.",
            "",
            "| " + " | ".join(SPEED_COLUMNS) + " |",
            "|---|---|---|---|",
        ]
        lines += ["| " + " | ".join(r.get(c, "") for c in SPEED_COLUMNS) + " |" for r in speed]
        lines.append("")
    lines += ["## Published figures", "", *published_table(space), ""]
    if plots:
        lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
