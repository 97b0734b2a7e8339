"""A pool of long-lived Ray scoring actors with per-call deadlines; dead or stuck actors are replaced."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import ray

from workers.actor import ScoringActor

log = logging.getLogger(__name__)


@dataclass
class Call:
    """One in-flight actor call."""

    ref: Any
    payload: Any
    deadline: float


@dataclass
class Slot:
    """One actor and its current call."""

    name: str
    actor: Any = None
    call: Call | None = None
    pid: int = 0
    spawned: int = field(default=0)


class ActorPool:
    """``size`` scoring actors; ``submit`` a batch to a free slot, ``poll`` for finished or failed calls."""

    def __init__(
        self,
        size: int,
        name: str,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        actor_kwargs: dict[str, Any] | None = None,
        on_spawn: Any = None,
    ) -> None:
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self.actor_kwargs = actor_kwargs or {}
        self.on_spawn = on_spawn
        self.slots = [Slot(f"{name}-{i}") for i in range(size)]
        self.remote_cls = ray.remote(ScoringActor)
        for slot in self.slots:
            self._spawn(slot)

    def _spawn(self, slot: Slot) -> None:
        slot.actor = self.remote_cls.options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=0, max_task_retries=0
        ).remote(**self.actor_kwargs)
        slot.pid = int(ray.get(slot.actor.pid.remote()))
        slot.spawned += 1
        slot.call = None
        if self.on_spawn is not None:
            self.on_spawn(slot.name, slot.pid)
        log.info("actor %s started (pid %d)", slot.name, slot.pid)

    def replace(self, slot: Slot) -> None:
        """Kill the slot's actor (if alive) and start a fresh one."""
        with contextlib.suppress(Exception):  # already dead
            ray.kill(slot.actor, no_restart=True)
        self._spawn(slot)

    def free(self) -> list[Slot]:
        """Slots without a call in flight."""
        return [s for s in self.slots if s.call is None]

    def busy(self) -> list[Slot]:
        """Slots with a call in flight."""
        return [s for s in self.slots if s.call is not None]

    def submit(
        self,
        slot: Slot,
        payload: Any,
        proxies: tuple[str, ...],
        config: dict[str, Any],
        archs: list[str],
        timeout_s: float,
    ) -> None:
        """Start ``actor.score`` on a free slot; ``payload`` comes back from :meth:`poll`."""
        ref = slot.actor.score.remote(proxies, config, archs)
        slot.call = Call(ref, payload, time.monotonic() + timeout_s)

    def poll(self, timeout: float) -> list[tuple[Any, list[dict[str, Any]] | None, str | None]]:
        """Wait up to ``timeout`` s; returns ``(payload, records, error)`` for every call that ended."""
        busy = self.busy()
        if not busy:
            return []
        refs = [s.call.ref for s in busy if s.call]
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        ready_set = set(ready)
        out: list[tuple[Any, list[dict[str, Any]] | None, str | None]] = []
        now = time.monotonic()
        for slot in busy:
            call = slot.call
            assert call is not None
            if call.ref in ready_set:
                try:
                    out.append((call.payload, ray.get(call.ref), None))
                    slot.call = None
                except Exception as exc:  # actor died or the call raised
                    out.append((call.payload, None, f"{type(exc).__name__}: {str(exc)[:500]}"))
                    self.replace(slot)
            elif now > call.deadline:
                log.warning("actor %s exceeded its deadline; replacing it", slot.name)
                out.append((call.payload, None, "TimeoutError: arch timeout exceeded, actor killed"))
                self.replace(slot)
        return out

    def shutdown(self) -> None:
        """Kill every actor."""
        for slot in self.slots:
            with contextlib.suppress(Exception):
                ray.kill(slot.actor, no_restart=True)
