"""``zcscore proxies``: list the proxy catalogue."""

from __future__ import annotations

import argparse
import sys

from zcscore.proxies.catalog import list_specs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


def run(args: argparse.Namespace) -> int:
    """Print one line per proxy: name, version, input, gradients, passes, description."""
    out = sys.stdout
    out.write(f"{'proxy':<18}{'ver':<5}{'input':<10}{'grad':<6}{'passes':<20}description\n")
    for s in list_specs():
        passes = ",".join(sorted(p.value for p in s.passes))
        kind = "population" if s.population else s.input.value
        out.write(
            f"{s.name:<18}{s.version:<5}{kind:<10}{'yes' if s.needs_grad else 'no':<6}{passes:<20}{s.description}\n"
        )
    return 0
