"""Search results on NAS-Bench-201 for docs/search.md: every algorithm x (a seed proxy, an ensemble) x 5 seeds.

    nice -n 10 python benchmarks/search_nb201.py                 # runs what the journal lacks, then the table
    python benchmarks/search_nb201.py --table                    # only the table, from the journal

Resumable: each finished run is one line of ``<out>/runs.jsonl`` and is skipped next time; every score lands in
one shared SQLite cache (``<out>/scores.sqlite``), so archs that several runs, seeds or proxies share (an
ensemble shares az_nas' components) are computed once. Proxies are seeded with 1 (the pruning search: with the
run's seed, its only randomness). The budgets are modest on purpose (CPU): see PLAN.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from zcscore.search import search
from zcscore.settings import get_settings

PROXIES = ("az_nas", "ensemble:az_nas+synflow")
BUDGET = 50
# (algo, options), in the order they run; every row runs for every proxy and seed
PLAN: list[tuple[str, dict[str, Any]]] = [
    ("random", {}),
    ("az-evo", {"topk": 10}),
    ("rea", {"population": 10, "sample": 3}),
    ("warmup-rea", {"pool": 30, "population": 10, "sample": 3}),
    ("intrain-evo", {"population": 16}),
    ("prune", {}),
]
COLUMNS = ("cifar10_test", "cifar100_test", "imagenet16_test")
PUBLISHED = {
    "xi-GSNR (paper, pruning, 4 runs)": "94.05±0.18 | 72.18±0.74 | 46.24±0.06",
    "AZ-NAS (paper, best of 3,000 random, 5 runs)": "93.53±0.15 | 70.75±0.48 | 45.43±0.29",
    "ZiCo (paper)": "94.00±0.40 | 71.10±0.30 | 41.80±0.30",
}


def key(algo: str, proxy: str, seed: int, budget: int = BUDGET) -> str:
    return f"{algo}|{proxy}|{seed}|{budget if algo != 'prune' else 0}"


def journal(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {key(r["algo"], r["proxy"], r["seed"], r["options"]["budget"]): r for r in rows}


def baselines(data_dir: Path) -> dict[str, str]:
    with open(data_dir / "nb201.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols = {c: [float(r[c]) for r in rows] for c in COLUMNS}
    random_choice = " | ".join(f"{statistics.fmean(v):.2f}±{statistics.pstdev(v):.2f}" for v in cols.values())
    optimum = " | ".join(f"{max(v):.2f}" for v in cols.values())
    return {"random choice (one uniform arch)": random_choice, "optimum (best arch per dataset)": optimum}


def table(runs: dict[str, dict[str, Any]], data_dir: Path, seeds: list[int], budgets: list[int]) -> str:
    lines = [
        "| algorithm | proxy | budget (archs) | C10 test | C100 test | IN16 test | proxy calls / run | computed / run |"
        " wall s / run | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    proxies = list(dict.fromkeys([*PROXIES, *(r["proxy"] for r in runs.values())]))
    rows = [(a, p, b) for b in budgets for a, _ in PLAN for p in proxies if a != "prune" or b == budgets[0]]
    for algo, proxy, b in rows:
        done = [runs[k] for s in seeds if (k := key(algo, proxy, s, b)) in runs]
        if not done:
            if b == budgets[0] and proxy in PROXIES:
                lines.append(f"| {algo} | `{proxy}` | – | not run | | | | | | 0 |")
            continue
        accs = []
        for c in COLUMNS:
            v = [r["accuracy"][c] for r in done]
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            accs.append(f"{statistics.fmean(v):.2f}±{sd:.2f}")
        calls = statistics.fmean(r["proxy_calls"] for r in done)
        computed = statistics.fmean(r["computed"] for r in done)
        wall = statistics.fmean(r["seconds"] for r in done)
        budget = "85 states" if algo == "prune" else str(done[0]["options"]["budget"])
        lines.append(
            f"| {algo} | `{proxy}` | {budget} | {' | '.join(accs)} | {calls:.0f} | {computed:.0f} | {wall:.0f} |"
            f" {len(done)} |"
        )
    for name, text in {**baselines(data_dir), **PUBLISHED}.items():
        lines.append(f"| {name} | | | {text} | | | | |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/reports/search_nb201"))
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--table", action="store_true", help="only write the table from the journal")
    parser.add_argument("--budget", type=int, default=BUDGET, help=f"distinct archs per run (default {BUDGET})")
    parser.add_argument("--algos", default=None, help="only these algorithms (comma-separated)")
    parser.add_argument("--proxies", default=",".join(PROXIES), help="fitness proxies (comma-separated)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    data_dir = get_settings().data_dir
    if data_dir is None or not (data_dir / "nb201.csv").exists():
        sys.stderr.write("needs nb201.csv: set ZCSCORE_DATA_DIR\n")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "runs.jsonl"
    runs = journal(path)
    if not args.table:
        t_all = time.perf_counter()
        only = set(args.algos.split(",")) if args.algos else None
        for algo, options in PLAN:
            if only is not None and algo not in only:
                continue
            for proxy in args.proxies.split(","):
                for seed in seeds:
                    if key(algo, proxy, seed, args.budget) in runs:
                        continue
                    result = search(
                        algo,
                        proxy,
                        "nb201",
                        args.budget,
                        seed,
                        cache=args.out / "scores.sqlite",
                        data_dir=data_dir,
                        **options,
                    )
                    row = result.to_json()
                    row["trace_len"] = len(row.pop("trace"))
                    with path.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    runs[key(algo, proxy, seed, args.budget)] = row
                    acc = " ".join(f"{v:.2f}" for v in result.accuracy.values())
                    print(
                        f"{algo:12s} {proxy:26s} seed {seed}: {acc}  computed {result.computed:3d}"
                        f"  {result.seconds:6.1f}s  (total {time.perf_counter() - t_all:.0f}s)",
                        flush=True,
                    )
    budgets = sorted({int(r["options"]["budget"]) for r in runs.values() if r["algo"] != "prune"} | {BUDGET})
    text = table(runs, data_dir, seeds, budgets)
    (args.out / "table.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
