"""Scoring the remaining archs through the core engine, in-process or in worker processes.

Archs are grouped by isomorphism class (the engine scores a class once); with ``workers > 1`` whole
classes are dealt round-robin to ``spawn``-ed processes, each running its own :class:`Engine` with
``threads`` torch threads. Scores do not depend on the split: the engine re-seeds before every network.
Every finished class is handed to ``sink`` once per input arch string of that class, in the parent.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import signal
from collections.abc import Callable, Sequence
from typing import Any

from zcscore.bench.scorefile import relabel

Sink = Callable[[list[Any]], None]


def direct_names(proxies: Sequence[str]) -> list[str]:
    """The proxies the engine computes per arch: population proxies replaced by their components."""
    from zcscore.proxies.catalog import expand

    return [spec.name for spec in expand(proxies)]


def group_by_class(archs: Sequence[str], space: str = "nb201") -> dict[str, list[str]]:
    """``{canonical arch string: [input arch strings of that class]}``, in first-seen order."""
    from zcscore.spaces import get_space

    sp = get_space(space)
    groups: dict[str, list[str]] = {}
    for arch in dict.fromkeys(archs):
        groups.setdefault(sp.encode(sp.canonical(sp.parse(arch))), []).append(arch)
    return groups


def score_remaining(
    archs: Sequence[str],
    direct: Sequence[str],
    config: dict[str, Any],
    sink: Sink,
    workers: int = 1,
    progress: bool = False,
    space: str = "nb201",
    batch: int = 1,
) -> int:
    """Score ``archs`` of ``space`` with the ``direct`` proxies; returns the number of networks (classes) scored.

    ``batch`` > 1 lets each engine score that many archs at once where a batched path exists (``Engine``).
    """
    groups = group_by_class(archs, space)
    if not groups:
        return 0

    def deliver(records: list[Any]) -> None:
        for arch in groups[records[0].arch]:
            sink(relabel(records, arch))

    if workers <= 1:
        from zcscore.engine import Engine, ScoreConfig

        engine = Engine(list(direct), ScoreConfig(**config), batch=batch)
        engine.score_archs(list(archs), progress=progress, on_records=deliver, space=space)
        return len(groups)
    return _score_in_workers(groups, direct, config, deliver, workers, progress, space, batch)


def _score_in_workers(
    groups: dict[str, list[str]],
    direct: Sequence[str],
    config: dict[str, Any],
    deliver: Sink,
    workers: int,
    progress: bool,
    space: str,
    batch: int = 1,
) -> int:
    classes = list(groups)
    chunks = [[a for c in classes[k::workers] for a in groups[c]] for k in range(workers)]
    chunks = [c for c in chunks if c]
    ctx = mp.get_context("spawn")
    out: Any = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(c, list(direct), config, out, space, batch), daemon=True) for c in chunks
    ]
    for p in procs:
        p.start()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(classes), desc=f"scoring ({len(procs)} workers)", unit="arch")
    finished, scored = 0, 0
    try:
        while finished < len(procs):
            try:
                msg = out.get(timeout=1.0)
            except queue_mod.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"bench worker exited with code {dead[0].exitcode}") from None
                continue
            if msg is None:
                finished += 1
            elif isinstance(msg, str):
                raise RuntimeError(f"bench worker failed: {msg}")
            else:
                deliver(msg)
                scored += 1
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    return scored


def _worker(archs: list[str], direct: list[str], config: dict[str, Any], out: Any, space: str, batch: int = 1) -> None:
    """Worker process body: score ``archs``, stream each class's records, then ``None``.

    Ctrl-C reaches the whole process group: the worker leaves it to the parent, which stops the workers.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from zcscore.engine import Engine, ScoreConfig

        engine = Engine(direct, ScoreConfig(**config), batch=batch)
        engine.score_archs(archs, on_records=out.put, space=space)
    except Exception as exc:  # reported to the parent, which stops the bench
        out.put(f"{type(exc).__name__}: {exc}")
        return
    out.put(None)
