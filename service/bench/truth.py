"""Ground-truth NB201 accuracies (``nb201.csv`` in the shared data dir) and arch sampling."""

from __future__ import annotations

import csv
import math
import random
from functools import cache
from pathlib import Path

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "imagenet16")
TARGET_COLUMNS: dict[str, str] = {
    "cifar10": "cifar10_test",
    "cifar100": "cifar100_test",
    "imagenet16": "imagenet16_test",
}


def nb201_csv(data_dir: Path | None = None) -> Path:
    """Path of ``nb201.csv`` (settings' data dir unless given)."""
    if data_dir is None:
        from zcscore.settings import get_settings

        data_dir = get_settings().data_path
    return Path(data_dir) / "nb201.csv"


@cache
def _load(path: str) -> tuple[tuple[str, ...], dict[str, dict[str, float]]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    archs = tuple(r["arch"] for r in sorted(rows, key=lambda r: int(r["index"])))
    table = {r["arch"]: {k: _num(v) for k, v in r.items() if k != "arch"} for r in rows}
    return archs, table


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def all_archs(data_dir: Path | None = None) -> list[str]:
    """Every NB201 arch string in index order (0..15624)."""
    return list(_load(str(nb201_csv(data_dir)))[0])


def sample_archs(n: int, seed: int, data_dir: Path | None = None) -> list[str]:
    """``n`` distinct NB201 arch strings drawn with ``random.Random(seed).sample`` (index order population)."""
    archs = all_archs(data_dir)
    if not 0 < n <= len(archs):
        raise ValueError(f"--sample must be in 1..{len(archs)}, got {n}")
    return random.Random(seed).sample(archs, n)


def accuracies(archs: list[str], column: str, data_dir: Path | None = None) -> list[float]:
    """Ground-truth ``column`` for each arch (NaN for archs or values missing from ``nb201.csv``)."""
    from zcscore.spaces.nb201 import ArchError, NB201Arch

    _, table = _load(str(nb201_csv(data_dir)))
    out = []
    for arch in archs:
        row = table.get(arch)
        if row is None:
            try:
                row = table.get(NB201Arch.parse(arch).to_str())
            except ArchError:
                row = None
        out.append(row.get(column, math.nan) if row else math.nan)
    return out
