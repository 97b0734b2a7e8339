"""How many scoring processes share one device: ``--workers auto`` and ``ZCSCORE_WORKERS=auto``.

On CUDA the count comes from the device's free memory (``torch.cuda.mem_get_info``) and a per-worker
estimate (``ZCSCORE_GPU_MEM_PER_WORKER_MB``, default :data:`GPU_MEM_PER_WORKER_MB`)::

    n = floor(free * (1 - reserve) / per_worker), at least 1, at most the usable CPU cores // threads
        (every worker runs its Python on one core) and at most ``max_workers`` when given.

The default estimate covers one process's CUDA context (~0.5 GiB) plus the largest seed-suite pass on NB201
(InTrain's 64x3x64x64 forward+backward, ~1 GiB reserved by the caching allocator) with headroom; measure
yours with ``zcscore bench --throughput --workers 1 --device cuda`` (column ``peak_gpu_mb``) and set it.
On CPU, ``auto`` is the usable CPU cores // threads (one torch thread per worker by default).
This module imports torch only inside :func:`free_gpu_bytes`.
"""

from __future__ import annotations

import math
import os

GPU_MEM_PER_WORKER_MB = 2048.0
GPU_MEM_RESERVE = 0.10  # fraction of the free memory left unused (fragmentation, other tenants)
MIB = 1 << 20


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def workers_for_memory(
    free_bytes: int,
    per_worker_mb: float = GPU_MEM_PER_WORKER_MB,
    cpus: int = 1,
    threads: int = 1,
    max_workers: int | None = None,
    reserve: float = GPU_MEM_RESERVE,
) -> int:
    """Worker processes one GPU with ``free_bytes`` free holds (see the module docstring); always >= 1."""
    if per_worker_mb <= 0:
        raise ValueError("per_worker_mb must be positive")
    by_memory = math.floor(free_bytes * (1.0 - reserve) / (per_worker_mb * MIB))
    by_cpu = max(cpus // max(threads, 1), 1)
    n = min(by_memory, by_cpu)
    if max_workers is not None:
        n = min(n, max_workers)
    return max(n, 1)


def free_gpu_bytes(device: str) -> int:
    """Free memory of the CUDA ``device`` (``cuda`` or ``cuda:N``) now, in bytes."""
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def auto_workers(
    device: str,
    per_worker_mb: float = GPU_MEM_PER_WORKER_MB,
    threads: int = 1,
    max_workers: int | None = None,
) -> int:
    """``auto`` resolved for ``device``: from free GPU memory on CUDA, from the CPU cores elsewhere."""
    cpus = usable_cpus()
    if device.startswith("cuda"):
        return workers_for_memory(free_gpu_bytes(device), per_worker_mb, cpus, threads, max_workers)
    n = max(cpus // max(threads, 1), 1)
    return min(n, max_workers) if max_workers is not None else n


def parse_workers(text: str | int) -> list[int | str]:
    """``"4"`` -> ``[4]``, ``"auto"`` -> ``["auto"]``, ``"1,2,auto"`` -> ``[1, 2, "auto"]`` (ValueError otherwise)."""
    out: list[int | str] = []
    for part in str(text).split(","):
        part = part.strip().lower()
        if part == "auto":
            out.append("auto")
        elif part.isdigit() and int(part) >= 1:
            out.append(int(part))
        else:
            raise ValueError(f"--workers takes positive integers or 'auto', comma-separated; got {text!r}")
    if not out:
        raise ValueError("--workers is empty")
    return out
