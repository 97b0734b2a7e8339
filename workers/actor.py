"""The Ray scoring actor: long-lived, holds engines (and their data) on its device, scores batches.

Kept importable without torch; torch and the engine load in the actor process on construction.
"""

from __future__ import annotations

import os
import time
from typing import Any


class ScoringActor:
    """Scores batches of canonical NB201 archs; one engine per (proxies, config), reused across calls."""

    def __init__(
        self,
        device: str = "cpu",
        threads: int | None = 1,
        fault_delay_s: float = 0.0,
        fault_stall_arch: str | None = None,
    ) -> None:
        import torch

        from service.proxies.registry import load_implementations

        load_implementations()

        if threads:
            torch.set_num_threads(threads)
        self.device = device
        self.threads = threads
        self.fault_delay_s = fault_delay_s
        self.fault_stall_arch = fault_stall_arch
        self._engines: dict[tuple[Any, ...], Any] = {}

    def pid(self) -> int:
        """The actor's process id."""
        return os.getpid()

    def _engine(self, proxies: tuple[str, ...], config: dict[str, Any]) -> Any:
        from service.engine import Engine, ScoreConfig

        key = (proxies, config["seed"], config.get("num_classes", 10))
        if key not in self._engines:
            cfg = ScoreConfig(
                seed=int(config["seed"]),
                num_classes=int(config.get("num_classes", 10)),
                device=self.device,
                threads=self.threads,
            )
            self._engines[key] = Engine(list(proxies), cfg)
        return self._engines[key]

    def score(self, proxies: tuple[str, ...], config: dict[str, Any], archs: list[str]) -> list[dict[str, Any]]:
        """Score ``archs`` with ``proxies``; one dict per arch x proxy (ScoreRecord fields)."""
        engine = self._engine(tuple(proxies), config)
        if self.fault_delay_s or self.fault_stall_arch:
            records = []
            for arch in archs:
                if arch == self.fault_stall_arch:
                    time.sleep(3600)
                time.sleep(self.fault_delay_s)
                records.extend(engine.score_archs([arch]))
        else:
            records = engine.score_archs(archs)
        return [
            {
                "arch": r.arch,
                "proxy": r.proxy,
                "score": float(r.score),
                "seconds": float(r.seconds),
                "components": {k: float(v) for k, v in r.components.items()},
                "provenance": r.provenance,
                "error": r.error,
            }
            for r in records
        ]
