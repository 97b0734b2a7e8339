"""``zcscore score``: score archs of any registered space and write long-format CSV (arch,proxy,score,...).

Exit codes: 0 all rows scored, 1 some rows have an error (in the ``error`` column), 2 bad input.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

CSV_COLUMNS = ("arch", "proxy", "score", "seconds", "components", "error", "provenance")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``zcscore score``."""
    parser.add_argument("--space", default="nb201", help="search space (nb201, or one registered by a plugin)")
    parser.add_argument("--proxies", required=True, help="comma-separated proxy names (see `zcscore proxies`)")
    parser.add_argument(
        "--ensemble",
        action="append",
        default=[],
        metavar="A,B[,C]",
        help="also score the rank-aggregation ensemble of these proxies, as rows named ensemble:A+B+C (repeatable)",
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--arch", nargs="+", help="one or more arch strings")
    src.add_argument("--archs-file", type=Path, help="file with one arch string (or NB201 index) per line")
    parser.add_argument("--seed", type=int, default=1, help="seed (default 1, as the official drivers)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1, as the service; part of the cache key)"
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="directory with real images (ZCSCORE_DATA_DIR)")
    parser.add_argument("--out", type=Path, required=True, help="output CSV ('-' for stdout)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def format_score(value: float) -> str:
    """CSV text of a score: ``nan``, ``-inf``/``inf`` or repr-exact float."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(float(value))


def write_records(records: Iterable[Any], fh: TextIO, header: bool = True) -> None:
    """Write score records as long-format CSV rows."""
    writer = csv.writer(fh)
    if header:
        writer.writerow(CSV_COLUMNS)
    for r in records:
        comps = {k: format_score(v) for k, v in r.components.items()}
        writer.writerow(
            [
                r.arch,
                r.proxy,
                format_score(r.score),
                f"{r.seconds:.6f}",
                json.dumps(comps) if comps else "",
                r.error or "",
                json.dumps(r.provenance, sort_keys=True),
            ]
        )


def read_archs(path: Path, data_dir: Path | None = None, space: str = "nb201") -> list[str]:
    """Arch strings from a file: one per line (NB201: an arch string or an NB201 index; other spaces: the line).

    A ``.csv`` file is read as a table and its ``arch`` column is taken.
    """
    from zcscore.settings import get_settings
    from zcscore.spaces.nb201 import arch_from_index

    if path.suffix == ".csv":  # a table with an ``arch`` column (e.g. nb101_sample.csv)
        with open(path, newline="") as fh:
            return [row["arch"].strip() for row in csv.DictReader(fh) if row.get("arch", "").strip()]
    archs = []
    for line in path.read_text().splitlines():
        if space != "nb201":
            if line.strip() and not line.startswith("#"):
                archs.append(line.strip())
            continue
        text = line.strip().split(",")[0] if line.strip() else ""
        if not text or text.startswith("#") or text == "arch":
            continue
        archs.append(arch_from_index(int(text), data_dir or get_settings().data_path) if text.isdigit() else text)
    return archs


def proxy_names(proxies: str, ensembles: Iterable[str] = ()) -> list[str]:
    """``--proxies a,b`` plus one ``ensemble:x+y`` name per ``--ensemble x,y``."""
    from zcscore.proxies.ensembles import ensemble_name

    names = [p.strip() for p in proxies.split(",") if p.strip()]
    for members in ensembles:
        names.append(ensemble_name([m.strip() for m in members.split(",") if m.strip()]))
    return list(dict.fromkeys(names))


def run(args: argparse.Namespace) -> int:
    """Score and write the CSV."""
    from zcscore.data_source import DataUnavailable
    from zcscore.engine import Engine, ScoreConfig
    from zcscore.settings import get_settings
    from zcscore.spaces import SpaceError, get_space

    if args.data_dir is not None:
        get_settings().data_dir = args.data_dir
    try:
        space = get_space(args.space)
        archs = args.arch if args.arch else read_archs(args.archs_file, space=space.name)
        for a in archs:
            space.parse(a)
        engine = Engine(
            proxy_names(args.proxies, args.ensemble),
            ScoreConfig(seed=args.seed, device=args.device, threads=args.threads),
        )
        for spec in engine.direct:  # input errors at the door, before anything is scored
            why = space.unsupported(spec.name)
            if why:
                raise KeyError(f"{spec.name} is not defined for space {space.name}: {why}")
        if any(spec.needs_data for spec in engine.direct):
            engine.config.real_data()  # resolves (or downloads) the images, or raises DataUnavailable
    except DataUnavailable as exc:
        sys.stderr.write(f"zcscore score: data_unavailable: {exc}\n")
        return 2
    except (SpaceError, KeyError, OSError) as exc:
        sys.stderr.write(f"zcscore score: {str(exc).strip(chr(34) + chr(39))}\n")
        return 2
    records = engine.score_archs(archs, progress=not args.no_progress, space=space)
    if str(args.out) == "-":
        write_records(records, sys.stdout)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", newline="") as fh:
            write_records(records, fh)
    failed = sum(1 for r in records if r.error)
    if failed:
        sys.stderr.write(f"zcscore score: {failed} of {len(records)} rows failed (see the error column)\n")
    return 1 if failed else 0
