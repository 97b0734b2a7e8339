"""Ground-truth accuracies and arch sampling: NB201 (``nb201.csv``) and the NB101 sample (``nb101_sample.csv``).

Both files live in the data dir. NB101 has CIFAR-10 validation accuracy only (``naslib_val_accuracy``, 108
epochs, as NAS-Bench-Suite-Zero uses it), reported in the ``cifar10`` column; its other targets are NaN.
"""

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
SPACE_FILES: dict[str, str] = {"nb201": "nb201.csv", "nb101": "nb101_sample.csv"}
SPACE_TARGETS: dict[str, dict[str, str]] = {"nb201": TARGET_COLUMNS, "nb101": {"cifar10": "naslib_val_accuracy"}}


def target_columns(space: str = "nb201") -> dict[str, str]:
    """``{dataset: ground-truth column}`` of ``space`` (datasets without a column are absent)."""
    return SPACE_TARGETS.get(space, {})


def dataset_indices(space: str = "nb201") -> list[tuple[int, str]]:
    """``(index in DATASETS, dataset)`` of the datasets ``space`` has a ground-truth column for."""
    return [(i, d) for i, d in enumerate(DATASETS) if d in target_columns(space)]


def nb201_csv(data_dir: Path | None = None) -> Path:
    """Path of ``nb201.csv`` (settings' data dir unless given)."""
    if data_dir is None:
        from zcscore.settings import get_settings

        data_dir = get_settings().data_path
    return Path(data_dir) / "nb201.csv"


def space_csv(space: str, data_dir: Path | None = None) -> Path:
    """Path of the ground-truth table of ``space``; raises ``ValueError`` for a space without one."""
    if space not in SPACE_FILES:
        raise ValueError(f"no ground-truth table for space {space!r} (known: {', '.join(SPACE_FILES)})")
    return nb201_csv(data_dir).with_name(SPACE_FILES[space])


@cache
def _load(path: str, space: str = "nb201") -> tuple[tuple[str, ...], dict[str, dict[str, float]]]:
    """(arch strings in file/index order, ``{key: row}``); NB101 rows are keyed by canonical hash."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if "index" in rows[0]:
        rows.sort(key=lambda r: int(r["index"]))
    archs = tuple(r["arch"] for r in rows)
    table: dict[str, dict[str, float]] = {}
    for r in rows:
        key = r["arch"] if space == "nb201" else _hash(space, r["arch"])
        table.setdefault(key, {k: _num(v) for k, v in r.items() if k != "arch"})
    return archs, table


def _hash(space: str, arch: str) -> str:
    from zcscore.spaces import get_space

    sp = get_space(space)
    return sp.canonical_hash(sp.parse(arch))


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def all_archs(data_dir: Path | None = None, space: str = "nb201") -> list[str]:
    """Every arch string of the space's table in file order (NB201: index order 0..15624)."""
    return list(_load(str(space_csv(space, data_dir)), space)[0])


def sample_archs(n: int, seed: int, data_dir: Path | None = None, space: str = "nb201") -> list[str]:
    """``n`` distinct arch strings drawn with ``random.Random(seed).sample`` (file order population)."""
    archs = list(dict.fromkeys(all_archs(data_dir, space)))
    if not 0 < n <= len(archs):
        raise ValueError(f"--sample must be in 1..{len(archs)}, got {n}")
    return random.Random(seed).sample(archs, n)


def accuracies(archs: list[str], column: str, data_dir: Path | None = None, space: str = "nb201") -> list[float]:
    """Ground-truth ``column`` for each arch (NaN for archs or values missing from the space's table)."""
    from zcscore.spaces.nb201 import ArchError, NB201Arch

    _, table = _load(str(space_csv(space, data_dir)), space)
    if space != "nb201":
        rows = [table.get(_hash(space, a)) for a in archs]
        return [r.get(column, math.nan) if r else math.nan for r in rows]
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
