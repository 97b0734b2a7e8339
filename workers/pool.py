"""A pool of long-lived Ray scoring actors with per-call deadlines; dead or stuck actors are replaced."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from zcscore.errors import Classified, classify
from zcscore.workers.actor import ScoringActor
from zcscore.workers.metrics import worker_metrics

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
    calls: list[Call] = field(default_factory=list)  # in submission order; the actor runs them in turn
    pid: int = 0
    node: str = ""  # Ray node id the actor runs on
    spawned: int = 0
    starting: Any = None  # ref of the actor's ``where()`` while it starts; None once it is ready


class ActorPool:
    """``size`` scoring actors; ``submit`` a batch to a free slot, ``poll`` for finished or failed calls.

    Each actor gets up to ``depth`` calls queued, so it never waits for the dispatcher between batches.
    """

    def __init__(
        self,
        size: int,
        name: str,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        depth: int = 2,
        actor_kwargs: dict[str, Any] | None = None,
        on_spawn: Any = None,
        start_timeout_s: float = 300.0,
    ) -> None:
        self.num_cpus, self.num_gpus, self.depth = num_cpus, num_gpus, depth
        self.actor_kwargs = actor_kwargs or {}
        self.on_spawn = on_spawn
        self.slots = [Slot(f"{name}-{i}") for i in range(size)]
        self.remote_cls = ray.remote(ScoringActor)
        for slot in self.slots:
            self._spawn(slot)
        self.wait_ready(start_timeout_s)

    def _spawn(self, slot: Slot) -> None:
        """Ask Ray for the slot's actor; it takes calls once :meth:`check_starting` sees it up."""
        slot.actor = self.remote_cls.options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=0, max_task_retries=0
        ).remote(**self.actor_kwargs)
        slot.starting = slot.actor.where.remote()
        slot.spawned += 1
        slot.calls = []

    def check_starting(self, timeout: float = 0.0) -> None:
        """Mark actors that came up as ready (an actor that died while starting is asked for again)."""
        starting = {s.starting: s for s in self.slots if s.starting is not None}
        if not starting:
            return
        done, _ = ray.wait(list(starting), num_returns=len(starting), timeout=timeout)
        for ref in done:
            slot = starting[ref]
            try:
                slot.pid, slot.node = ray.get(ref)
            except Exception as exc:  # died before it was up, e.g. its node went away
                log.warning("actor %s failed to start (%s); asking again", slot.name, type(exc).__name__)
                worker_metrics().actor_restarts.labels("start_failed").inc()
                self._spawn(slot)
                continue
            slot.starting = None
            if self.on_spawn is not None:
                self.on_spawn(slot.name, slot.pid, slot.node)
            log.debug("actor %s started (pid %d, node %s)", slot.name, slot.pid, slot.node[:12])

    def wait_ready(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for every actor to start (the pool works with those that did)."""
        deadline = time.monotonic() + timeout
        while any(s.starting is not None for s in self.slots) and time.monotonic() < deadline:
            self.check_starting(timeout=min(1.0, max(deadline - time.monotonic(), 0.0)))

    def replace(self, slot: Slot, reason: str = "replaced") -> None:
        """Kill the slot's actor (if alive) and start a fresh one; ``reason`` labels the restart metric."""
        with contextlib.suppress(Exception):  # already dead
            ray.kill(slot.actor, no_restart=True)
        worker_metrics().actor_restarts.labels(reason).inc()
        self._spawn(slot)

    def free(self) -> list[Slot]:
        """Started slots that accept another call, least loaded first."""
        ready = (s for s in self.slots if s.starting is None and len(s.calls) < self.depth)
        return sorted(ready, key=lambda s: len(s.calls))

    def busy(self) -> list[Slot]:
        """Slots with calls in flight."""
        return [s for s in self.slots if s.calls]

    def in_flight(self) -> list[Any]:
        """Payloads of every call in flight."""
        return [c.payload for s in self.slots for c in s.calls]

    def submit(
        self,
        slot: Slot,
        payload: Any,
        space: str,
        proxies: tuple[str, ...],
        config: dict[str, Any],
        archs: list[str],
        timeout_s: float,
        tasks: list[str] | None = None,
    ) -> None:
        """Queue ``actor.score`` on a slot; ``payload`` comes back from :meth:`poll`.

        The deadline counts from when the previous call on the slot is due, since the actor runs calls in turn.
        """
        ref = slot.actor.score.remote(space, proxies, config, archs, tasks)
        start = max([time.monotonic()] + [c.deadline for c in slot.calls])
        slot.calls.append(Call(ref, payload, start + timeout_s))

    def poll(self, timeout: float) -> list[tuple[Any, list[dict[str, Any]] | None, Classified | None]]:
        """Wait up to ``timeout`` s; returns ``(payload, records, error)`` for every call that ended.

        A call that raised inside a live actor fails alone, with the error it raised (unwrapped from Ray's
        wrapper); an actor that died or ran past its deadline fails every call queued on it and is replaced.
        """
        self.check_starting()
        refs = [c.ref for s in self.slots for c in s.calls]
        if not refs:
            if any(s.starting is not None for s in self.slots):
                time.sleep(timeout)
            return []
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        ready_set = set(ready)
        out: list[tuple[Any, list[dict[str, Any]] | None, Classified | None]] = []
        now = time.monotonic()
        for slot in self.busy():
            error: Classified | None = None
            for call in list(slot.calls):
                if call.ref not in ready_set:
                    continue
                try:
                    out.append((call.payload, ray.get(call.ref), None))
                    slot.calls.remove(call)
                except RayActorError as exc:  # the actor process is gone, with every call queued on it
                    error = Classified("actor_died", f"actor {slot.name} died: {type(exc).__name__}")
                    break
                except RayTaskError as exc:  # the call raised inside a live actor: only this call fails
                    cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                    log.warning("call on actor %s raised %s", slot.name, type(cause).__name__)
                    out.append((call.payload, None, classify(cause, default="internal")))
                    slot.calls.remove(call)
                except Exception as exc:  # anything else from Ray: treat the actor as lost
                    error = Classified("actor_died", f"actor {slot.name} failed: {type(exc).__name__}: {exc}")
                    break
            if error is None and slot.calls and now > slot.calls[0].deadline:
                log.warning("actor %s exceeded its deadline; replacing it", slot.name)
                error = Classified("timeout", "arch timeout exceeded, actor killed")
            if error is not None:  # the running call is charged; calls queued behind it never ran
                behind = Classified("requeued", f"queued on actor {slot.name}, which failed before running it")
                out.extend((c.payload, None, error if i == 0 else behind) for i, c in enumerate(slot.calls))
                self.replace(slot, error.code)  # actor_died | timeout
        return out

    def shutdown(self) -> None:
        """Kill every actor."""
        for slot in self.slots:
            with contextlib.suppress(Exception):
                ray.kill(slot.actor, no_restart=True)
