"""``zcscore proxies``: list the proxy catalogue."""

from __future__ import annotations

import argparse
import sys

from zcscore.proxies.catalog import list_specs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--space``: say, for each proxy, whether it runs on that space (and why not)."""
    parser.add_argument("--space", default=None, help="show support on this space (nb201, nb101, mbv2, dag, ...)")


def run(args: argparse.Namespace) -> int:
    """Print one line per proxy: name, version, input, gradients, passes, description (and support on --space)."""
    from zcscore.proxies.catalog import expand
    from zcscore.spaces import get_space

    try:
        space = get_space(args.space) if args.space else None
    except KeyError as exc:
        sys.stderr.write(f"zcscore proxies: {str(exc).strip(chr(34) + chr(39))}\n")
        return 2
    out = sys.stdout
    extra = f"{'on ' + space.name:<10}" if space else ""
    out.write(f"{'proxy':<18}{'ver':<5}{'input':<11}{'grad':<6}{'passes':<20}{extra}description\n")
    for s in list_specs():
        passes = ",".join(sorted(p.value for p in s.passes))
        kind = "population" if s.population else s.input.value
        support = ""
        if space is not None:
            why = next((w for part in expand([s.name]) if (w := space.unsupported(part.name))), None)
            support = f"{'yes' if why is None else 'no':<10}"
        line = f"{s.name:<18}{s.version:<5}{kind:<11}{'yes' if s.needs_grad else 'no':<6}{passes:<20}{support}"
        out.write(f"{line}{s.description}\n")
        if space is not None and why is not None:
            out.write(f"{'':<60}not on {space.name}: {why}\n")
    from zcscore.proxies.ensembles import PUBLISHED

    out.write("\nensembles: any 'ensemble:a+b[+c...]' (sum of log(rank/m) over a population); published ones:\n")
    for name, note in PUBLISHED.items():
        out.write(f"  {name:<26}{note}\n")
    return 0
