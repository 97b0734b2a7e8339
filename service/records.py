"""Score records: one arch x proxy result with its provenance (torch-free, shared by every layer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ScoreRecord:
    """One arch x proxy result: score (NaN/inf allowed), seconds, components, provenance, error."""

    arch: str
    proxy: str
    score: float
    seconds: float
    components: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # ``code: message`` (zcscore.errors), one line
    detail: str | None = field(default=None, repr=False, compare=False)  # the traceback, for logs only
