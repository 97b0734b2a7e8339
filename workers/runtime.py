"""Wiring shared by ``zcscore serve`` and ``zcscore dispatcher``: Ray, the actor pool and the dispatcher."""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import TYPE_CHECKING

from zcscore.settings import Settings

if TYPE_CHECKING:  # imported lazily at run time (Ray, Redis, the store)
    from zcscore.workers.dispatcher import Dispatcher

log = logging.getLogger(__name__)


def init_ray(settings: Settings, num_cpus: int | None = None) -> None:
    """Connect to ``settings.ray_address``, or start a local Ray (no dashboard)."""
    import ray

    if ray.is_initialized():
        return
    quiet = logging.getLogger().getEffectiveLevel() > logging.INFO  # Ray's own INFO lines only with --log-level info
    level = logging.WARNING if quiet else logging.INFO
    if settings.ray_address:
        ray.init(address=settings.ray_address, log_to_driver=False, logging_level=level)
    else:
        ray.init(
            address="local",
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=level,
        )  # "local": never attach to a cluster someone else started


def pool_shape(settings: Settings) -> tuple[int, float]:
    """``(actors, Ray GPUs per actor)`` for ``settings``; ``workers="auto"`` is resolved by :mod:`zcscore.capacity`.

    ``workers`` unset means ``auto`` on CUDA and 1 on CPU. On CUDA, ``auto`` gives n actors per GPU of this
    machine (all of them with a local Ray, one GPU's worth with ``ray_address``, whose nodes are sized like
    this one) and 1/n GPU each unless ``gpus_per_worker`` is set; on CPU it gives one actor per ``threads``
    usable cores and no GPU.
    """
    workers = settings.workers
    if workers is None:  # unset: as many as fit on a GPU, one on CPU (the embedded single-machine default)
        workers = "auto" if settings.device.startswith("cuda") else 1
    if workers != "auto":
        return workers, settings.gpus_per_worker
    from zcscore.capacity import auto_workers

    cap = settings.max_workers_per_gpu
    per_device = auto_workers(settings.device, settings.gpu_mem_per_worker_mb, settings.threads, cap)
    if not settings.device.startswith("cuda"):
        return per_device, settings.gpus_per_worker
    import torch

    gpus = 1 if settings.ray_address or ":" in settings.device else max(torch.cuda.device_count(), 1)
    return per_device * gpus, settings.gpus_per_worker or 1.0 / per_device


def build_dispatcher(settings: Settings, consumer: str | None = None) -> Dispatcher:
    """Open store and Redis, start the actor pool, and return a ready :class:`Dispatcher`."""
    from zcscore.storage.store import open_store
    from zcscore.workers.dispatcher import Dispatcher
    from zcscore.workers.pool import ActorPool
    from zcscore.workers.streams import Names, connect

    store = open_store(settings.resolved_database_url, migrate=True)
    r = connect(settings.redis_url, settings.home)
    names = Names(settings.redis_prefix)
    name = consumer or f"{os.uname().nodename}-{os.getpid()}"

    def on_spawn(slot: str, pid: int, node: str) -> None:
        r.hset(names.actors, slot, pid)
        r.hset(names.actor_nodes, slot, node)

    size, gpus = pool_shape(settings)
    log.info("scoring actors: %d on %s, %.3g GPU each", size, settings.device, gpus)
    pool = ActorPool(
        size,
        name,
        num_cpus=settings.cpus_per_worker,
        num_gpus=gpus,
        actor_kwargs={"device": settings.device, "plugins": list(settings.plugins)},
        on_spawn=on_spawn,
    )
    return Dispatcher(settings, store, r, pool, consumer=name)


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    return re.sub(r"(//[^:/@]*):[^@/]*@", r"\1:***@", url)


def log_startup(settings: Settings, dispatcher: Dispatcher | None = None, url: str | None = None) -> None:
    """One line per component: store, queue, Ray and actors, data, plugins, and the API's URL."""
    import ray

    from zcscore.data_source import resolve_data_source
    from zcscore.workers.streams import embedded_url

    log.info("store: %s", mask_url(settings.resolved_database_url))
    queue = mask_url(settings.redis_url) if settings.redis_url else f"embedded Redis ({embedded_url()})"
    log.info("queue: %s (key prefix %s)", queue, settings.redis_prefix)
    if dispatcher is not None:
        where = settings.ray_address or "local"
        cpus = int(ray.cluster_resources().get("CPU", 0))
        pids = ", ".join(str(slot.pid) for slot in dispatcher.pool.slots)
        log.info(
            "ray: %s (%d CPUs); %d scoring actor(s) on %s, pids %s",
            where,
            cpus,
            len(dispatcher.pool.slots),
            settings.device,
            pids,
        )
    try:
        source = resolve_data_source(settings)
    except Exception as exc:  # an unreadable data file: say so, data-dependent jobs are refused
        log.warning("data: unreadable (%s)", exc)
    else:
        if source is None:
            log.info(
                "data: none resolved; jobs with zico/xi_gsnr/epsinas are refused until ZCSCORE_DATA_DIR is set "
                "or `zcscore data fetch` has run"
            )
        else:
            log.info("data: %s", source.describe())
    if settings.plugins:
        log.info("plugins: %s", ", ".join(settings.plugins))
    if url:
        log.info("serving %s (API docs at %s/docs)", url, url)


def run_in_thread(dispatcher: Dispatcher, stop: threading.Event) -> threading.Thread:
    """Run a dispatcher loop in a daemon thread until ``stop`` is set."""

    def target() -> None:
        try:
            dispatcher.run(stop)
        except Exception:
            log.exception("dispatcher crashed")

    thread = threading.Thread(target=target, name="dispatcher", daemon=True)
    thread.start()
    return thread
