"""``zcscore search``: training-free architecture search with a proxy (or ensemble) as the fitness.

    zcscore search --space nb201 --algo rea --proxy az_nas --budget 200 --seeds 1,2,3,4,5 --report --out r.json

One seed writes one result (``best_arch``, ``best_score``, ``flops_m``, ``params_m``, ``trace``, counts); several
seeds write ``{"runs": [...], "summary": {...}}`` with, under ``--report`` on NB201, the found archs'
CIFAR-10/100 and ImageNet16-120 test accuracies and their mean and std over seeds. ``--api URL`` scores
through a running service instead of this process; ``--cache FILE`` keeps in-process scores across runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ALGO_CHOICES = ("random", "rea", "warmup-random", "warmup-rea", "az-evo", "intrain-evo", "prune", "evolution")


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``zcscore search``."""
    parser.add_argument("--space", default="nb201", help="nb201, nb101, mbv2 (or a plugin space)")
    parser.add_argument(
        "--algo", "--algorithm", dest="algo", default="rea", choices=ALGO_CHOICES, help="evolution = rea"
    )
    parser.add_argument("--proxy", required=True, help="fitness proxy or ensemble:a+b (see `zcscore proxies`)")
    parser.add_argument("--budget", type=int, default=100, help="distinct archs scored (default 100)")
    parser.add_argument("--flops-max", type=float, default=None, help="FLOPs budget in millions (MBV2: MACs at 224)")
    parser.add_argument("--seed", type=int, default=0, help="search seed (default 0)")
    parser.add_argument("--seeds", type=_seeds, default=None, help="several search seeds, e.g. 1,2,3,4,5")
    parser.add_argument("--score-seed", type=int, default=None, help="proxy seed (default 1; prune: the seed)")
    parser.add_argument(
        "--api", default=None, help="score through the service at this URL (e.g. http://127.0.0.1:8000)"
    )
    parser.add_argument("--api-key", default=None, help="bearer key for --api")
    parser.add_argument("--cache", default=None, help="SQLite score cache shared by in-process runs")
    parser.add_argument("--report", action="store_true", help="NB201: add the found archs' test accuracies")
    parser.add_argument("--population", type=int, default=None, help="rea/warmup-rea/intrain-evo population")
    parser.add_argument("--sample", type=int, default=None, help="rea/warmup-rea tournament size")
    parser.add_argument("--pool", type=int, default=None, help="warmup-rea warm-up pool (default budget/2)")
    parser.add_argument("--topk", type=int, default=None, help="az-evo: mutate one of the top k (default 10)")
    parser.add_argument(
        "--train-budget", type=int, default=None, help="warmup-random: archs 'trained' (NB201 validation accuracy)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", default="-", help="result JSON file ('-': stdout)")
    parser.add_argument("--no-trace", action="store_true", help="leave the trace out of the output")


def run(args: argparse.Namespace) -> int:
    """Run the search for every seed and write the JSON result."""
    from zcscore.search import nb201_oracle, search, summarize
    from zcscore.settings import get_settings
    from zcscore.spaces import SpaceError

    data_dir = get_settings().data_dir
    options: dict[str, Any] = {
        k: v
        for k, v in {
            "population": args.population,
            "sample": args.sample,
            "pool": args.pool,
            "topk": args.topk,
            "train_budget": args.train_budget,
        }.items()
        if v is not None
    }
    oracle = None
    if args.algo == "warmup-random" and args.train_budget:
        if data_dir is None or not (Path(data_dir) / "nb201.csv").exists() or args.space != "nb201":
            sys.stderr.write("zcscore search: --train-budget needs NB201 and nb201.csv (ZCSCORE_DATA_DIR)\n")
            return 2
        oracle = nb201_oracle(Path(data_dir))
    client = None
    if args.api:
        from zcscore.client import Client

        client = Client(args.api, api_key=args.api_key)
    seeds = args.seeds or [args.seed]
    results = []
    try:
        for seed in seeds:
            result = search(
                args.algo,
                args.proxy,
                args.space,
                args.budget,
                seed,
                args.flops_max,
                client=client,
                cache=args.cache,
                score_seed=args.score_seed,
                device=args.device,
                threads=args.threads,
                data_dir=Path(data_dir) if (args.report and data_dir) else None,
                oracle=oracle,
                **options,
            )
            results.append(result)
            acc = " ".join(f"{k}={v:.2f}" for k, v in result.accuracy.items())
            sys.stderr.write(
                f"seed {seed}: {result.best_arch} score={result.best_score:.4g} archs={result.archs} "
                f"computed={result.computed} {result.seconds:.1f}s {acc}\n"
            )
    except (KeyError, ValueError, SpaceError) as exc:
        sys.stderr.write(f"zcscore search: {exc}\n")
        return 2
    finally:
        if client is not None:
            client.close()
    runs = [r.to_json() for r in results]
    if args.no_trace:
        for r in runs:
            r.pop("trace")
    out: dict[str, Any] = runs[0] if len(runs) == 1 else {"runs": runs, "summary": summarize(results)}
    if len(runs) == 1 and args.report:
        out["summary"] = summarize(results)
    text = json.dumps(out, indent=2) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)
    return 0
