"""The ``zcscore`` command line: one entry point, one module per subcommand.

Each command module defines ``add_arguments(parser)`` and ``run(args) -> int`` and keeps its top-level
imports light (no torch, no Ray), so ``zcscore api`` starts without them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "score": ("service.commands.score", "score NB201 archs with proxies, write long-format CSV"),
    "proxies": ("service.commands.proxies", "list the registered proxies"),
    "search": ("service.commands.search", "training-free search on NB201 with a proxy as fitness"),
    "bench": ("service.bench.cli", "fidelity and speed report of proxies on NB201"),
    "serve": ("workers.cli_serve", "run API + dispatcher + local Ray workers on embedded defaults"),
    "api": ("api.cli", "run the HTTP API alone (cluster mode)"),
    "dispatcher": ("workers.cli_dispatcher", "run a dispatcher + Ray scoring actors (cluster mode)"),
}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (imports each command module, which must stay light)."""
    parser = argparse.ArgumentParser(prog="zcscore", description="Zero-cost NAS proxy scoring.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
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
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
