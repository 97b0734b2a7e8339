"""Wiring shared by ``zcscore serve`` and ``zcscore dispatcher``: Ray, the actor pool and the dispatcher."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from zcscore.settings import Settings

log = logging.getLogger(__name__)


def init_ray(settings: Settings, num_cpus: int | None = None) -> None:
    """Connect to ``settings.ray_address``, or start a local Ray (no dashboard)."""
    import ray

    if ray.is_initialized():
        return
    if settings.ray_address:
        ray.init(address=settings.ray_address, log_to_driver=False)
    else:
        ray.init(
            address="local", num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False
        )  # "local": never attach to a cluster someone else started


def build_dispatcher(settings: Settings, consumer: str | None = None) -> Any:
    """Open store and Redis, start the actor pool, and return a ready :class:`Dispatcher`."""
    from zcscore.storage.store import open_store
    from zcscore.workers.dispatcher import Dispatcher
    from zcscore.workers.pool import ActorPool
    from zcscore.workers.streams import Names, connect

    store = open_store(settings.resolved_database_url, migrate=True)
    r = connect(settings.redis_url, settings.home)
    names = Names(settings.redis_prefix)
    name = consumer or f"{os.uname().nodename}-{os.getpid()}"

    def on_spawn(slot: str, pid: int) -> None:
        r.hset(names.actors, slot, pid)

    pool = ActorPool(
        settings.workers,
        name,
        num_cpus=settings.cpus_per_worker,
        num_gpus=settings.gpus_per_worker,
        actor_kwargs={"device": settings.device, "plugins": list(settings.plugins)},
        on_spawn=on_spawn,
    )
    return Dispatcher(settings, store, r, pool, consumer=name)


def run_in_thread(dispatcher: Any, stop: threading.Event) -> threading.Thread:
    """Run a dispatcher loop in a daemon thread until ``stop`` is set."""

    def target() -> None:
        try:
            dispatcher.run(stop)
        except Exception:
            log.exception("dispatcher crashed")

    thread = threading.Thread(target=target, name="dispatcher", daemon=True)
    thread.start()
    return thread
