"""The result of one search run, as ``zcscore search`` writes it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


def _json_float(value: float) -> float | str | None:
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


@dataclass
class SearchResult:
    """The chosen arch and what it cost.

    ``trace`` lists every arch the search scored, in order, with its final fitness (population proxies:
    relative to everything the run scored); ``archs`` counts distinct archs (canonical classes) scored, the
    unit of ``budget``; ``proxy_calls`` counts proxy evaluations the search asked for (one per distinct arch
    or supernet state), ``computed`` those not answered by a cache.
    """

    algo: str
    proxy: str
    space: str
    seed: int
    best_arch: str
    best_score: float
    flops_m: float | None = None
    params_m: float | None = None
    trace: list[tuple[str, float]] = field(default_factory=list)
    archs: int = 0
    proxy_calls: int = 0
    computed: int = 0
    seconds: float = 0.0
    accuracy: dict[str, float] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def history(self) -> list[tuple[str, float]]:
        """Alias of ``trace`` (the name of earlier versions)."""
        return self.trace

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (non-finite floats as ``"inf"``/``"-inf"``/``null``)."""
        out = asdict(self)
        out["best_score"] = _json_float(self.best_score)
        out["trace"] = [{"arch": a, "fitness": _json_float(f)} for a, f in self.trace]
        return out
