"""``zcscore search``: training-free search on NB201 with a proxy as fitness."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``zcscore search``."""
    parser.add_argument("--space", default="nb201", help="search space (nb201, or one registered by a plugin)")
    parser.add_argument("--proxy", required=True, help="fitness proxy (see `zcscore proxies`)")
    parser.add_argument("--algorithm", default="evolution", choices=["random", "evolution"])
    parser.add_argument("--budget", type=int, default=100, help="distinct archs scored")
    parser.add_argument("--seed", type=int, default=0, help="search seed")
    parser.add_argument("--score-seed", type=int, default=1, help="proxy seed")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")


def run(args: argparse.Namespace) -> int:
    """Run the search and print the chosen arch, its score and its NB201 accuracies as JSON."""
    from zcscore.search import run_search
    from zcscore.settings import get_settings

    data_dir = get_settings().data_dir
    try:
        result = run_search(
            args.proxy,
            args.algorithm,
            args.budget,
            search_seed=args.seed,
            space=args.space,
            accuracy_table=data_dir / "nb201.csv" if data_dir else None,
            seed=args.score_seed,
            device=args.device,
            threads=args.threads,
        )
    except (KeyError, ValueError) as exc:
        sys.stderr.write(f"zcscore search: {exc}\n")
        return 2
    out = {
        "arch": result.best_arch,
        "score": result.best_score,
        "evaluated": len(result.history),
        "accuracy": result.accuracy,
    }
    sys.stdout.write(json.dumps(out, indent=2) + "\n")
    return 0
