"""``zcscore bench``: score NB201 archs, then write summary.csv, report.md and plots (resumable).

Modes: the default scores ``--proxies`` over ``--sample N --seed S | --archs-file F | --all`` into
``--out DIR``; ``--floors`` measures speed against the plain-pass floor into ``DIR/speed.csv``;
``--compare A B`` prints the agreement of two score files. Top-level imports stay light (no torch).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

log = logging.getLogger("zcscore.bench")
EXIT_INCOMPLETE = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``zcscore bench``."""
    parser.add_argument(
        "--space", default="nb201", choices=["nb201", "nb101"], help="search space (nb101: the 500-arch sample)"
    )
    parser.add_argument("--proxies", help="comma-separated proxy names (see `zcscore proxies`)")
    parser.add_argument("--sample", type=int, help="score N archs drawn at random from the space's table")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    parser.add_argument("--archs-file", type=Path, help="file with one arch string (or NB201 index) per line")
    parser.add_argument("--all", action="store_true", help="score every arch of the table (NB201: all 15,625)")
    parser.add_argument("--score-seed", type=int, default=1, help="scoring seed (default 1, as the papers)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1, as the service)")
    parser.add_argument(
        "--workers",
        default=None,
        help="scoring processes, archs split between them (default: auto on CUDA, 1 on CPU); auto: from free GPU "
        "memory on CUDA, the CPU cores otherwise (zcscore.capacity); with --throughput a comma list (1,2,auto)",
    )
    parser.add_argument(
        "--gpu-mem-per-worker-mb",
        type=float,
        default=None,
        help="per-worker GPU memory estimate for --workers auto (default ZCSCORE_GPU_MEM_PER_WORKER_MB or 2048)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        help="archs per batched pass where one exists (NB201: the seed proxies' passes; others run one arch at a time)",
    )
    parser.add_argument(
        "--throughput",
        action="store_true",
        help="archs/s per proxy and for the suite, per worker count -> DIR/throughput.{csv,md} (use --sample)",
    )
    parser.add_argument("--out", type=Path, help="output directory (resumed if it holds scores.csv)")
    parser.add_argument(
        "--limit", type=int, default=None, help=f"score at most N new archs, then stop with exit code {EXIT_INCOMPLETE}"
    )
    parser.add_argument(
        "--floors",
        action="store_true",
        help="measure ms/arch against the plain-pass floor into DIR/speed.csv (use a small sample)",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("A", "B"),
        help="print Kendall tau per proxy between two score files (long or wide)",
    )
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="A=B",
        help="with --compare: pair proxy/column A of file A with B of file B (repeatable)",
    )
    parser.add_argument(
        "--reuse",
        type=Path,
        action="append",
        default=[],
        metavar="SCORES_CSV",
        help="take rows of the same archs, proxies, versions and seed from an earlier run's scores.csv (repeatable)",
    )
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="COL=VALUE",
        help="with --compare: keep only rows whose column COL is VALUE, in files that have COL (repeatable)",
    )
    parser.add_argument(
        "--partial",
        action="store_true",
        help="when the run stops incomplete (--limit, interrupted), still report over the archs done so far",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _fail(msg: str) -> int:
    sys.stderr.write(f"zcscore bench: {msg}\n")
    return 2


def _select_archs(args: argparse.Namespace) -> list[str]:
    from zcscore.bench.truth import all_archs, sample_archs
    from zcscore.commands.score import read_archs
    from zcscore.spaces import get_space

    if args.sample is not None:
        archs = sample_archs(args.sample, args.seed, space=args.space)
    elif args.archs_file is not None:
        archs = read_archs(args.archs_file, space=args.space)
    else:
        archs = all_archs(space=args.space)
    space = get_space(args.space)
    for a in archs:
        space.parse(a)
    return archs


def _command(args: argparse.Namespace) -> str:
    src = (
        f"--sample {args.sample} --seed {args.seed}"
        if args.sample is not None
        else f"--archs-file {args.archs_file}"
        if args.archs_file
        else "--all"
    )
    extra = "".join(f" --{k} {getattr(args, k)}" for k in ("threads",) if getattr(args, k))
    extra += "".join(f" --reuse {p}" for p in args.reuse)
    space = "" if args.space == "nb201" else f"--space {args.space} "
    batch = f" --batch {args.batch}" if args.batch > 1 else ""
    return (
        f"zcscore bench {space}--proxies {args.proxies} {src} --score-seed {args.score_seed} "
        f"--device {args.device}{extra} --workers {args.workers}{batch} --out {args.out}"
    )


def run(args: argparse.Namespace) -> int:
    """Dispatch to compare, floors or the scoring bench."""
    if args.compare:
        return _run_compare(args)
    if not args.proxies or args.out is None:
        return _fail("--proxies and --out are required (or use --compare A B)")
    if sum([args.sample is not None, args.archs_file is not None, bool(args.all)]) != 1:
        return _fail("give exactly one of --sample N, --archs-file F, --all")
    from zcscore.proxies.catalog import get_spec

    proxies = [p.strip() for p in args.proxies.split(",") if p.strip()]
    try:
        for p in proxies:
            get_spec(p)
        archs = _select_archs(args)
    except (KeyError, ValueError, OSError) as exc:  # SpaceError is a ValueError
        return _fail(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        workers = resolve_workers(args)
    except (ValueError, RuntimeError) as exc:
        return _fail(str(exc))
    if args.throughput:
        return _run_throughput(args, proxies, archs, workers)
    if len(workers) != 1:
        return _fail("a list of worker counts is for --throughput only")
    args.workers = workers[0]
    if args.floors:
        if args.space != "nb201":
            return _fail("--floors measures NB201 archs only")
        return _run_floors(args, proxies, archs)
    return _run_bench(args, proxies, archs)


def resolve_workers(args: argparse.Namespace) -> list[int]:
    """``--workers`` as worker counts, ``auto`` resolved for ``--device`` (see :mod:`zcscore.capacity`)."""
    from zcscore.capacity import auto_workers, parse_workers
    from zcscore.settings import get_settings

    settings = get_settings()
    per_worker = args.gpu_mem_per_worker_mb or settings.gpu_mem_per_worker_mb
    out: list[int] = []
    if args.workers is None:
        args.workers = "auto" if args.device.startswith("cuda") else "1"
    for w in parse_workers(args.workers):
        n = auto_workers(args.device, per_worker, args.threads, settings.max_workers_per_gpu) if w == "auto" else int(w)
        if w == "auto":
            log.info("--workers auto on %s: %d workers", args.device, n)
        if n not in out:
            out.append(n)
    return out


def _run_throughput(args: argparse.Namespace, proxies: list[str], archs: list[str], workers: list[int]) -> int:
    from zcscore.bench.throughput import append_rows, markdown, measure_throughput

    config = {"seed": args.score_seed, "device": args.device, "threads": args.threads}
    rows = measure_throughput(archs, proxies, config, workers, args.space, args.batch)
    every = append_rows(args.out / "throughput.csv", rows)
    with open(args.out / "throughput_commands.txt", "a") as fh:
        fh.write(f"{_command(args)} --throughput\n")
    commands = (args.out / "throughput_commands.txt").read_text().splitlines()
    listed = "".join(f"- `{c}`\n" for c in commands)
    (args.out / "throughput.md").write_text(f"Commands (rows in this order):\n\n{listed}\n{markdown(every)}")
    sys.stdout.write(markdown(rows))
    log.info("wrote %s/throughput.{csv,md}", args.out)
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    from zcscore.bench.compare import compare_files, write_agreement

    try:
        rows = compare_files(args.compare[0], args.compare[1], args.map, args.filter)
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    write_agreement(rows, sys.stdout)
    return 0


def _run_floors(args: argparse.Namespace, proxies: list[str], archs: list[str]) -> int:
    from zcscore.bench.floors import measure, write_speed

    rows = measure(archs, proxies, args.score_seed, args.device, args.threads)
    write_speed(args.out / "speed.csv", rows)
    render(args.out, plots=False)
    log.info("wrote %s", args.out / "speed.csv")
    return 0


def _run_bench(args: argparse.Namespace, proxies: list[str], archs: list[str]) -> int:
    from zcscore.bench.runner import direct_names, group_by_class, score_remaining
    from zcscore.bench.scorefile import Journal, SeedMismatch
    from zcscore.proxies.catalog import get_spec

    direct = direct_names(proxies)
    versions = {d: get_spec(d).version for d in direct}
    journal = Journal(args.out / "scores.csv", versions, args.score_seed, frozenset(proxies) - set(direct))
    try:
        dropped = journal.load(archs, args.reuse)
    except SeedMismatch as exc:
        return _fail(str(exc))
    resumed = sum(1 for a in dict.fromkeys(archs) if not journal.missing(a))
    remaining = journal.remaining(archs)
    if args.limit is not None:
        groups = group_by_class(remaining, args.space)
        remaining = [a for c in list(groups)[: max(args.limit, 0)] for a in groups[c]]
    log.info(
        "bench: %d archs, %d resumed from %s (%d stale rows dropped), %d to score",
        len(dict.fromkeys(archs)),
        resumed,
        ", ".join(map(str, [journal.path, *args.reuse])),
        dropped,
        len(remaining),
    )
    t0 = time.perf_counter()
    config = {"seed": args.score_seed, "device": args.device, "threads": args.threads}
    by_missing: dict[tuple[str, ...], list[str]] = {}
    for arch in remaining:  # archs partly done (e.g. --reuse) score only their missing proxies
        by_missing.setdefault(journal.missing(arch), []).append(arch)
    networks = 0
    with GracefulStop() as stop:
        try:
            for missing, todo in by_missing.items():
                networks += score_remaining(
                    todo,
                    list(missing),
                    config,
                    journal.append,
                    args.workers,
                    not args.no_progress,
                    space=args.space,
                    batch=args.batch,
                )
        except KeyboardInterrupt:  # every finished arch is already in the journal: stop as an incomplete run
            log.warning("interrupted")
            networks = len(group_by_class([a for a in remaining if not journal.missing(a)], args.space))
        stop.defer()  # from here on a signal waits until the scores and the report are written
        meta = {
            "command": _command(args),
            "space": args.space,
            "archs": len(dict.fromkeys(archs)),
            "proxies": proxies,
            "score_seed": args.score_seed,
            "device": args.device,
            "threads": args.threads,
            "workers": args.workers,
            "batch": args.batch,
            "resumed_archs": resumed,
            "scored_archs": len(remaining) - len(journal.remaining(remaining)),
            "scored_networks": networks,
            "wall_s": round(time.perf_counter() - t0, 3),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        left = journal.remaining(archs)
        if left:
            done = [a for a in dict.fromkeys(archs) if not journal.missing(a)]
            _write_meta(args.out, {**meta, "complete": False, "done_archs": len(done)})
            log.warning("bench stopped with %d archs left; re-run the same command to resume", len(left))
            if args.partial and done:
                journal.finalize(done + left, _population(proxies, done, journal), _row_order(proxies))
                render(args.out, plots=not args.no_plots, partial=True)
                log.info("wrote a partial report over %d archs: %s/report.md", len(done), args.out)
            return EXIT_INCOMPLETE
        journal.finalize(archs, _population(proxies, list(dict.fromkeys(archs)), journal), _row_order(proxies))
        _write_meta(args.out, {**meta, "complete": True})
        render(args.out, plots=not args.no_plots)
        log.info("wrote %s/{scores.csv,summary.csv,report.md}", args.out)
        return 0


class GracefulStop:
    """Signals during a bench: SIGINT or SIGTERM (e.g. from ``timeout``) stops the scoring as Ctrl-C does.

    From that first signal on, and once scoring has ended, further signals are logged and ignored until the
    run record and the (partial) report are written; SIGQUIT still kills. No-op outside the main thread.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> GracefulStop:
        self._active = threading.current_thread() is threading.main_thread()
        self._old = {s: signal.getsignal(s) for s in self.SIGNALS} if self._active else {}
        self._install(self._stop)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def defer(self) -> None:
        """Log and ignore further signals (the scores and the report are being written)."""
        self._install(self._wait)

    def _install(self, handler: Any) -> None:
        if self._active:
            for sig in self.SIGNALS:
                signal.signal(sig, handler)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.defer()
        raise KeyboardInterrupt

    def _wait(self, signum: int, frame: FrameType | None) -> None:
        log.warning("%s: finishing the run record and report first (SIGQUIT kills)", signal.Signals(signum).name)


def _population(proxies: list[str], archs: list[str], journal: Any) -> list[Any]:
    """Records of the population proxies among ``proxies`` over the distinct ``archs``, from the journal's rows."""
    from zcscore.bench.scorefile import population_records
    from zcscore.proxies.catalog import get_spec

    return [r for p in proxies if get_spec(p).population for r in population_records(get_spec(p), archs, journal)]


def _row_order(proxies: list[str]) -> list[str]:
    """Proxy order of the final scores file: each population proxy after its components."""
    from zcscore.proxies.catalog import get_spec

    order: dict[str, None] = {}
    for p in proxies:
        spec = get_spec(p)
        for name in (*spec.components, p) if spec.population else (p,):
            order.setdefault(name, None)
    return list(order)


def _with_legs(out: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` plus ``legs`` (one per invocation that scored archs into ``out``) and their summed ``wall_s_total``.

    A resumed run keeps the record of the earlier legs, and a re-run with nothing left adds no leg.
    """
    meta_file = out / "run.json"
    previous: dict[str, Any] = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    legs: list[dict[str, Any]] = list(previous.get("legs", []))
    if not legs and previous.get("scored_archs"):  # a run.json written before legs were recorded
        legs = [{k: previous[k] for k in ("scored_archs", "wall_s", "finished_at") if k in previous}]
    if meta["scored_archs"]:
        legs.append({k: meta[k] for k in ("scored_archs", "wall_s", "finished_at")})
    return {**meta, "legs": legs, "wall_s_total": round(sum(leg.get("wall_s", 0.0) for leg in legs), 3)}


def _write_meta(out: Path, meta: dict[str, Any]) -> None:
    from zcscore.bench.scorefile import read_rows

    meta = _with_legs(out, meta)
    rows = read_rows(out / "scores.csv")
    if rows:
        prov = rows[0].provenance
        meta.update({k: prov[k] for k in ("device_name", "torch") if k in prov})
        meta["threads"] = prov.get("threads", meta.get("threads"))
    (out / "run.json").write_text(json.dumps(meta, indent=2) + "\n")


def render(out: Path, plots: bool = True, partial: bool = False) -> Path:
    """(Re)write summary.csv, plots and report.md from the files in ``out`` (``partial``: over the done archs)."""
    from zcscore.bench.published import PAPER_C10_COLUMN
    from zcscore.bench.report import read_speed, write_report
    from zcscore.bench.scorefile import read_rows
    from zcscore.bench.summary import paper_target_kendall, read_summary, summarize, write_summary

    meta_file = out / "run.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    space = meta.get("space", "nb201")
    rows = read_rows(out / "scores.csv") if meta.get("complete", False) or partial else []
    if partial:  # only archs with every direct proxy scored
        have: dict[str, set[str]] = {}
        for r in rows:
            have.setdefault(r.arch, set()).add(r.proxy)
        need = max(map(len, have.values()), default=0)
        rows = [r for r in rows if len(have[r.arch]) == need]
    archs = list(dict.fromkeys(r.arch for r in rows))
    summary = summarize(rows, archs, space=space) if rows else read_summary(out / "summary.csv")
    if rows:
        write_summary(out / "summary.csv", summary)
    paper_taus = {
        s["proxy"]: paper_target_kendall(rows, archs, s["proxy"], PAPER_C10_COLUMN[s["proxy"]][0])
        for s in summary
        if rows and space == "nb201" and s["proxy"] in PAPER_C10_COLUMN
    }
    files: list[Path] = []
    if rows and plots:
        files = _plots(out, rows, archs, summary, space)
    elif not plots:
        files = sorted(out.glob("tau_bars.png")) + sorted(out.glob("scatter_*.png"))
    errors: dict[str, tuple[int, str]] = {}
    for r in rows:
        if r.error:
            n, first = errors.get(r.proxy, (0, r.error))
            errors[r.proxy] = (n + 1, first)
    return write_report(out, summary, paper_taus, read_speed(out / "speed.csv"), files, errors)


def _plots(out: Path, rows: list[Any], archs: list[str], summary: list[dict[str, Any]], space: str) -> list[Path]:
    from zcscore.bench.plots import scatter, tau_bars
    from zcscore.bench.scorefile import scores_by_proxy
    from zcscore.bench.truth import accuracies, target_columns

    acc = accuracies(archs, target_columns(space)["cifar10"], space=space)
    scores = scores_by_proxy(rows)
    files = [tau_bars(out / "tau_bars.png", summary, space)]
    for s in summary:
        values = [scores[s["proxy"]].get(a, float("nan")) for a in archs]
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", s["proxy"])  # ensemble:a+b -> ensemble_a_b
        files.append(scatter(out / f"scatter_{stem}.png", s["proxy"], values, acc, s["kendall_cifar10"]))
    return files
