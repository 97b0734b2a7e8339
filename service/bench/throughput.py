"""``zcscore bench --throughput``: archs/s per proxy and for the suite, per device and worker count.

Each proxy is timed alone, then (with several) all of them together as one suite, over the same distinct
archs (one per isomorphism class, so every arch is a network scored), through the bench's own
:func:`~zcscore.bench.runner.score_remaining` (in-process for 1 worker, ``spawn``-ed processes otherwise).
One warm-up arch is scored in-process first (data load, CUDA init). Per row:

* ``archs_per_s`` = archs / wall time, process start-up included (what a user waits for);
* ``steady_archs_per_s`` = rate after each worker delivered its first arch, or its first group of ``batch``
  archs (start-up excluded);
* ``ms_per_arch`` = workers x wall / archs, the cost of one arch on one worker;
* ``peak_gpu_mb``: the caching allocator's peak reserved memory (1 worker on CUDA only; the CUDA context,
  ~0.5 GiB, comes on top) -- the number to set ``ZCSCORE_GPU_MEM_PER_WORKER_MB`` from.

Rows are appended to ``DIR/throughput.csv`` (so runs on other devices or worker counts add to one table) and
``DIR/throughput.md`` is rewritten from all of them.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from zcscore.bench.runner import direct_names, group_by_class, score_remaining

FIELDS = [
    "device",
    "device_name",
    "workers",
    "threads",
    "batch",
    "proxy",
    "archs",
    "wall_s",
    "archs_per_s",
    "steady_archs_per_s",
    "ms_per_arch",
    "peak_gpu_mb",
    "torch",
    "measured_at",
]
SUITE = "suite"


def steady_rate(stamps: Sequence[float], workers: int) -> float:
    """Archs/s after the first ``workers`` deliveries (``stamps``: delivery times); NaN if too few."""
    ts = sorted(stamps)
    k = min(max(workers, 1), len(ts) - 1)
    if k < 1 or ts[-1] <= ts[k - 1]:
        return float("nan")
    return (len(ts) - k) / (ts[-1] - ts[k - 1])


def _time_group(
    classes: list[str], direct: list[str], config: dict[str, Any], workers: int, space: str, batch: int
) -> tuple[float, list[float], float | None]:
    """Wall seconds, delivery times and (1 worker on CUDA) peak reserved MiB of scoring ``classes``."""
    import torch

    cuda = str(config["device"]).startswith("cuda")
    dev = torch.device(str(config["device"]))
    if cuda and workers == 1:
        torch.cuda.reset_peak_memory_stats(dev)
    stamps: list[float] = []
    t0 = time.perf_counter()
    score_remaining(
        classes, direct, config, lambda _r: stamps.append(time.perf_counter()), workers, space=space, batch=batch
    )
    wall = time.perf_counter() - t0
    peak = torch.cuda.max_memory_reserved(dev) / (1 << 20) if cuda and workers == 1 else None
    return wall, stamps, peak


def measure_throughput(
    archs: Sequence[str],
    proxies: Sequence[str],
    config: dict[str, Any],
    workers: Sequence[int],
    space: str = "nb201",
    batch: int = 1,
) -> list[dict[str, Any]]:
    """One row per worker count x (each proxy, then the suite) over the distinct classes of ``archs``."""
    import torch

    from zcscore.engine import _device_name

    classes = list(group_by_class(archs, space))
    groups: dict[str, list[str]] = {p: [p] for p in proxies}
    if len(proxies) > 1:
        groups[SUITE] = list(proxies)
    score_remaining(classes[:1], direct_names(proxies), config, lambda _r: None, 1, space=space, batch=batch)
    rows = []
    for w in workers:
        for name, members in groups.items():
            wall, stamps, peak = _time_group(classes, direct_names(members), config, w, space, batch)
            rows.append(
                {
                    "device": config["device"],
                    "device_name": _device_name(str(config["device"])),
                    "workers": w,
                    "threads": config.get("threads", 1),
                    "batch": batch,
                    "proxy": name,
                    "archs": len(classes),
                    "wall_s": f"{wall:.3f}",
                    "archs_per_s": f"{len(classes) / wall:.3f}",
                    "steady_archs_per_s": f"{steady_rate(stamps, w * batch):.3f}",  # a group arrives at once
                    "ms_per_arch": f"{w * wall / len(classes) * 1e3:.1f}",
                    "peak_gpu_mb": "" if peak is None else f"{peak:.0f}",
                    "torch": torch.__version__,
                    "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
            )
    return rows


def append_rows(path: Path, rows: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Append ``rows`` to the CSV at ``path`` (header written once); returns every row now in it."""
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerows(rows)
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The throughput table: one line per device x workers x batch x proxy, in measurement order."""
    cols = ["device_name", "workers", "batch", "proxy", "archs", "archs_per_s", "steady_archs_per_s", "ms_per_arch"]
    head = ["device", "workers", "batch", "proxy", "archs", "archs/s", "steady archs/s", "ms/arch/worker"]
    if any(r.get("peak_gpu_mb") for r in rows):
        cols.append("peak_gpu_mb")
        head.append("peak GPU MiB")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        name = f"{r['device']} ({r['device_name']})" if r.get("device_name") else str(r["device"])
        cells = [name, *(str(r.get(c, "")) for c in cols[1:])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
