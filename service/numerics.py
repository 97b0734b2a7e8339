"""What changes a score's floating-point summation order: device kind, memory layout, CPU threads.

Torch-free, so the API can put the workers' numerics into cache keys. A score is a pure function of
its cache key because the key includes these (see docs/service.md): the CLI, the Python API and the
service default to the same values (1 CPU thread; channels-last on CPU, NCHW on CUDA), and the
engine sets the thread count before every network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def device_kind(device: str) -> str:
    """``"cpu"``, ``"cuda"``, ... without the index (``"cuda:1"`` -> ``"cuda"``)."""
    return device.split(":", 1)[0]


@dataclass(frozen=True)
class Numerics:
    """The numerics of a run: device kind, channels-last layout, and CPU threads (None on GPUs)."""

    device: str
    channels_last: bool
    threads: int | None

    @classmethod
    def resolve(cls, device: str = "cpu", threads: int = 1, channels_last: bool | None = None) -> Numerics:
        """Defaults: channels-last on CPU (about 2x faster NB201 passes), NCHW elsewhere; threads count on CPU only."""
        kind = device_kind(device)
        layout = kind == "cpu" if channels_last is None else channels_last
        return cls(kind, layout, int(threads) if kind == "cpu" else None)

    def key(self) -> dict[str, Any]:
        """The part of a cache key that these numerics contribute."""
        return {"device": self.device, "channels_last": self.channels_last, "threads": self.threads}
