"""The Ray scoring actor: long-lived, holds engines (and their data) on its device, scores batches.

Kept importable without torch; torch and the engine load in the actor process on construction. The
message config says which numerics and which real images a score's cache key was computed for; the
actor scores with exactly those, and refuses a config its device or data cannot honour.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from zcscore.errors import TransientError

log = logging.getLogger(__name__)


class ConfigMismatch(TransientError):
    """The actor cannot produce scores for the message's config (other device kind or other data)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="config_mismatch")


class ScoringActor:
    """Scores batches of canonical archs; one engine per (proxies, config), reused across calls."""

    def __init__(self, device: str = "cpu", plugins: list[str] | None = None) -> None:
        from zcscore.proxies.registry import load_implementations
        from zcscore.spaces import load_plugins

        load_implementations()
        load_plugins(plugins or [])
        self.device = device
        self._engines: dict[str, Any] = {}

    def where(self) -> tuple[int, str]:
        """The actor's process id and Ray node id."""
        import ray

        return os.getpid(), ray.get_runtime_context().get_node_id()

    def _engine(self, proxies: tuple[str, ...], config: dict[str, Any]) -> Any:
        import json

        from zcscore.engine import Engine, ScoreConfig
        from zcscore.numerics import device_kind

        key = json.dumps([proxies, config], sort_keys=True)
        if key in self._engines:
            return self._engines[key]
        numerics = config["numerics"]
        if numerics["device"] != device_kind(self.device):
            raise ConfigMismatch(f"task numerics are for {numerics['device']}, this actor runs on {self.device}")
        cfg = ScoreConfig(
            seed=int(config["seed"]),
            num_classes=int(config["num_classes"]),
            device=self.device,
            threads=int(numerics["threads"] or 1),
            channels_last=bool(numerics["channels_last"]),
        )
        if config.get("data"):
            digest = cfg.real_data().content_digest
            if digest != config["data"]:
                raise ConfigMismatch(f"task wants images {config['data'][:12]}, this worker resolves {digest[:12]}")
        # the batch size travels in the config (part of the cache key of the passes it changes)
        self._engines[key] = Engine(list(proxies), cfg, batch=int(config.get("batch", 1)))
        return self._engines[key]

    def score(
        self,
        space: str,
        proxies: tuple[str, ...],
        config: dict[str, Any],
        archs: list[str],
        tasks: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Score ``archs`` of ``space`` with ``proxies``; one dict per arch x proxy (ScoreRecord fields).

        Failed rows carry their one-line error; their tracebacks go to this worker's log with the task id.
        """
        engine = self._engine(tuple(proxies), config)
        records = engine.score_archs(archs, space=space)
        task_of = dict(zip(archs, tasks or archs))
        for r in records:
            if r.error:
                log.warning("task %s proxy %s: %s\n%s", task_of.get(r.arch, r.arch), r.proxy, r.error, r.detail or "")
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
