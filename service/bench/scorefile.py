"""``DIR/scores.csv`` as a resumable journal in the long format of ``zcscore score``.

While scoring, each finished arch's direct rows (population components included) are appended and
flushed in one write. On restart the file is read back: a trailing partial line (killed mid-write) is
dropped, and an arch counts as done only when every direct proxy has a row with the current proxy
version and the run's seed. Everything else is rescored. When all archs are done, the file is rewritten
atomically in (arch, proxy) order with the population proxies (``az_nas``) recomputed over the whole set
from the stored component rows.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zcscore.commands.score import CSV_COLUMNS, write_records

COMPACT_COLUMNS = 4  # older reports keep only arch,proxy,score,seconds; read them with empty provenance


class SeedMismatch(ValueError):
    """The existing scores file was produced with another seed."""


@dataclass
class Row:
    """One parsed long-format row; ``fields`` is the raw CSV row, rewritten unchanged."""

    fields: list[str]

    @property
    def arch(self) -> str:
        return self.fields[0]

    @property
    def proxy(self) -> str:
        return self.fields[1]

    @property
    def score(self) -> float:
        return float(self.fields[2])

    @property
    def seconds(self) -> float:
        return float(self.fields[3])

    @property
    def error(self) -> str | None:
        return self.fields[5] or None

    @property
    def components(self) -> dict[str, float]:
        return {k: float(v) for k, v in json.loads(self.fields[4]).items()} if self.fields[4] else {}

    @property
    def provenance(self) -> dict[str, Any]:
        return json.loads(self.fields[6]) if self.fields[6] else {}


def read_rows(path: Path) -> list[Row]:
    """Valid rows of a long-format scores file (partial last line and malformed rows skipped).

    Rows of the compact ``arch,proxy,score,seconds`` format are read with empty components and provenance.
    """
    if not path.exists():
        return []
    text = path.read_text()
    text = text[: text.rfind("\n") + 1]  # a line without its newline was cut by a kill
    rows = []
    for fields in csv.reader(io.StringIO(text, newline="")):
        if len(fields) == COMPACT_COLUMNS and fields[0] != "arch":  # arch,proxy,score,seconds (wave-1 reports)
            fields = fields + [""] * (len(CSV_COLUMNS) - COMPACT_COLUMNS)
        if len(fields) != len(CSV_COLUMNS) or fields[0] == "arch":
            continue
        try:
            float(fields[2]), float(fields[3])
            json.loads(fields[6] or "{}")
        except ValueError:
            continue
        rows.append(Row(fields))
    return rows


@dataclass
class Journal:
    """The resumable scores file of one bench run: which archs are done, and appending new ones."""

    path: Path
    direct: dict[str, int]  # direct proxy name -> current version
    seed: int
    derived: frozenset[str] = frozenset()  # population proxies of the run: their rows are rebuilt at report time
    done: dict[str, dict[str, Row]] = field(default_factory=dict)

    def load(self, archs: Sequence[str], reuse: Sequence[Path] = ()) -> int:
        """Read the existing file (then the ``reuse`` files), keep rows of ``archs``; returns rows dropped.

        A row is kept when its proxy is a direct proxy of this run at the current version and its seed is the
        run's; the first row of an (arch, proxy) wins. Archs may be partly done: :meth:`missing` says what is left.
        Rows of ``derived`` (population) proxies are dropped too but not counted: the report rebuilds them.
        """
        wanted = set(archs)
        by_arch: dict[str, dict[str, Row]] = {}
        own = read_rows(self.path)
        rows = own + [row for path in reuse for row in read_rows(path)]
        for i, row in enumerate(rows):
            prov = row.provenance
            if row.proxy not in self.direct or row.arch not in wanted:
                continue
            if prov.get("seed") is not None and prov.get("seed") != self.seed:
                if i >= len(own):  # a reused file scored with another seed simply does not apply
                    continue
                raise SeedMismatch(
                    f"{self.path} was scored with seed {prov.get('seed')}, this run uses {self.seed}; "
                    "use another --out or the same --score-seed"
                )
            if prov.get("proxy_version", self.direct[row.proxy]) != self.direct[row.proxy]:
                continue
            by_arch.setdefault(row.arch, {}).setdefault(row.proxy, row)
        self.done = by_arch
        kept = sum(len(r) for r in self.done.values())
        self._rewrite(list(self.done))
        derived = sum(1 for row in own if row.proxy in self.derived)
        return max(len(own) - derived - kept, 0)

    def missing(self, arch: str) -> tuple[str, ...]:
        """The direct proxies of ``arch`` not scored yet, in run order."""
        have = self.done.get(arch, {})
        return tuple(p for p in self.direct if p not in have)

    def remaining(self, archs: Sequence[str]) -> list[str]:
        """Archs of ``archs`` with a proxy still to score, in order, without duplicates."""
        return [a for a in dict.fromkeys(archs) if self.missing(a)]

    def append(self, records: Iterable[Any]) -> None:
        """Append one arch's direct records in a single flushed write."""
        buf = io.StringIO(newline="")
        recs = list(records)
        write_records(recs, buf, header=False)
        with open(self.path, "a", newline="") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        for rec in recs:
            fields = next(csv.reader(io.StringIO(_one(rec), newline="")))
            self.done.setdefault(rec.arch, {})[rec.proxy] = Row(fields)

    def finalize(self, archs: Sequence[str], population: Sequence[Any], order: Sequence[str]) -> None:
        """Rewrite the file in (arch, proxy ``order``) order, population records included."""
        pop = {(r.arch, r.proxy): _fields(r) for r in population}
        rows: list[list[str]] = []
        for arch in dict.fromkeys(archs):
            for proxy in order:
                if (arch, proxy) in pop:
                    rows.append(pop[(arch, proxy)])
                elif proxy in self.done.get(arch, {}):
                    rows.append(self.done[arch][proxy].fields)
        _atomic_write(self.path, rows)

    def table(self, archs: Sequence[str]) -> dict[tuple[str, str], Any]:
        """``{(arch, proxy): ScoreRecord}`` of the done rows (for population aggregation)."""
        from zcscore.records import ScoreRecord

        out = {}
        for arch in dict.fromkeys(archs):
            for proxy, row in self.done.get(arch, {}).items():
                out[(arch, proxy)] = ScoreRecord(
                    arch, proxy, row.score, row.seconds, row.components, row.provenance, row.error
                )
        return out

    def _rewrite(self, archs: list[str]) -> None:
        _atomic_write(self.path, [row.fields for a in archs for row in self.done[a].values()])


def population_records(spec: Any, archs: Sequence[str], journal: Journal) -> list[Any]:
    """Population proxy ``spec`` over the distinct ``archs`` from the journal's component rows."""
    from zcscore.aggregate import population_records as aggregate

    table = journal.table(archs)
    first = table[(archs[0], spec.components[0])].provenance
    prov = {**first, "proxy_version": spec.version, "input_protocol": spec.input_protocol, "scored_as": ""}
    return aggregate(spec, archs, table, prov)


def relabel(records: Iterable[Any], arch: str) -> list[Any]:
    """Copies of ``records`` (one scored class) labelled with input arch string ``arch``."""
    return [replace(r, arch=arch) for r in records]


def _one(rec: Any) -> str:
    buf = io.StringIO(newline="")
    write_records([rec], buf, header=False)
    return buf.getvalue()


def _fields(rec: Any) -> list[str]:
    return next(csv.reader(io.StringIO(_one(rec), newline="")))


def _atomic_write(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def scores_by_proxy(rows: Iterable[Row]) -> dict[str, dict[str, float]]:
    """``{proxy: {arch: score}}`` of long-format rows (first row per pair wins)."""
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        out.setdefault(row.proxy, {}).setdefault(row.arch, row.score)
    return out


def seconds_by_proxy(rows: Iterable[Row]) -> dict[str, list[float]]:
    """``{proxy: [seconds per row]}`` (non-finite times skipped)."""
    out: dict[str, list[float]] = {}
    for row in rows:
        if math.isfinite(row.seconds):
            out.setdefault(row.proxy, []).append(row.seconds)
    return out
