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
    specs = list_specs()
    passes = {s.name: ",".join(sorted(p.value for p in s.passes)) for s in specs}
    name_w = max(len("proxy"), *(len(s.name) for s in specs)) + 2
    passes_w = max(len("passes"), *(len(v) for v in passes.values())) + 2
    lead = name_w + 5 + 11 + 6 + passes_w  # where the support column starts
    extra = f"{'on ' + space.name:<10}" if space else ""
    out.write(f"{'proxy':<{name_w}}{'ver':<5}{'input':<11}{'grad':<6}{'passes':<{passes_w}}{extra}description\n")
    for s in specs:
        kind = "population" if s.population else s.input.value
        support = ""
        why = None
        if space is not None:
            why = next((w for part in expand([s.name]) if (w := space.unsupported(part.name))), None)
            support = f"{'yes' if why is None else 'no':<10}"
        grad = "yes" if s.needs_grad else "no"
        line = f"{s.name:<{name_w}}{s.version:<5}{kind:<11}{grad:<6}{passes[s.name]:<{passes_w}}{support}"
        out.write(f"{line}{s.description}\n")
        if space is not None and why is not None:
            out.write(f"{'':<{lead + 10}}not on {space.name}: {why}\n")
    from zcscore.proxies.ensembles import PUBLISHED

    out.write("\nensembles: any 'ensemble:a+b[+c...]' (sum of log(rank/m) over a population); published ones:\n")
    for name, note in PUBLISHED.items():
        out.write(f"  {name:<26}{note}\n")
    return 0
