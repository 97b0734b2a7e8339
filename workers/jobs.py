"""Job logic shared by the API route and the reconciler: plan, dedup against the store, enqueue.

Torch- and Ray-free. Planning canonicalises and hashes every arch once through its space, expands
population proxies into their components and computes each task's cache key; submission stores the job,
enqueues only what the store lacks into the lane of the job's owner and priority, and then sets the job's
"enqueued" marker (after the messages, so a partial enqueue leaves no marker and the reconciler redoes it).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import redis

from zcscore.numerics import Numerics
from zcscore.proxies.catalog import ProxySpec, expand, get_spec
from zcscore.settings import Settings
from zcscore.spaces import Space, SpaceError, get_space
from zcscore.storage.keys import cache_key_for, config_hash, job_config, proxy_config_hash
from zcscore.storage.store import NewJob, SqlStore, TaskRow
from zcscore.workers.streams import PRIORITIES, Names, Task, enqueue, group_messages

log = logging.getLogger(__name__)
MARKER_TTL_S = 7 * 86400


class PlanError(ValueError):
    """A request that cannot be planned; ``loc`` is the offending field (FastAPI's location style)."""

    def __init__(self, loc: list[Any], message: str) -> None:
        super().__init__(message)
        self.loc = loc


@dataclass(frozen=True)
class JobPlan:
    """A validated job: its tasks (arch x direct proxy) with cache keys, ready to store and enqueue."""

    space: str
    proxies: list[str]
    config: dict[str, Any]
    request_hash: str
    tasks: list[TaskRow]
    priority: str = "normal"  # low | normal | high: orders work within its owner's share


def _specs(names: list[str], space: Space) -> list[ProxySpec]:
    specs = []
    for i, name in enumerate(names):
        try:
            spec = get_spec(name)
        except KeyError as exc:
            raise PlanError(["body", "proxies", i], str(exc).strip("\"'")) from None
        for part in expand([name]):
            why = space.unsupported(part.name)
            if why:
                raise PlanError(["body", "proxies", i], f"{name} is not defined for space {space.name}: {why}")
        specs.append(spec)
    return specs


def _data_digest(specs: list[ProxySpec], names: list[str], settings: Settings) -> str | None:
    """The digest of the real images, when a requested proxy needs them; PlanError naming it if none resolve."""
    needing = [i for i, s in enumerate(specs) if any(p.needs_data for p in expand([s.name]))]
    if not needing:
        return None
    from zcscore.data_source import resolve_data_source

    source = resolve_data_source(settings)
    if source is None:
        i = needing[0]
        raise PlanError(
            ["body", "proxies", i],
            f"data_unavailable: {names[i]} needs real images and none are configured: set ZCSCORE_DATA_DIR "
            "to a directory with cifar10_subset.npz or cifar-10-batches-py/, or run `zcscore data fetch`",
        )
    return source.digest


def plan_job(
    space_name: str,
    archs: list[str],
    proxies: list[str],
    seed: int,
    num_classes: int,
    settings: Settings,
    priority: str = "normal",
) -> JobPlan:
    """Validate and plan a job; raises :class:`PlanError` naming the first bad field."""
    if priority not in PRIORITIES:
        raise PlanError(["body", "priority"], f"unknown priority {priority!r}: one of {', '.join(PRIORITIES)}")
    try:
        space = get_space(space_name)
    except KeyError as exc:
        raise PlanError(["body", "space"], str(exc).strip("\"'")) from None
    if len(archs) > settings.max_archs_per_job:
        raise PlanError(["body", "archs"], f"too many archs: {len(archs)} > {settings.max_archs_per_job}")
    proxies = list(dict.fromkeys(proxies))
    specs = _specs(proxies, space)
    digest = _data_digest(specs, proxies, settings)
    numerics = Numerics.resolve(settings.device, settings.threads)
    config = job_config(seed, num_classes, numerics, digest, batch=settings.score_batch)
    direct = expand(proxies)
    cfg_hashes = {s.name: proxy_config_hash(s, config) for s in direct}
    tasks: list[TaskRow] = []
    for i, text in enumerate(archs):
        if len(text) > space.max_arch_length:
            raise PlanError(["body", "archs", i], f"arch longer than {space.max_arch_length} characters")
        try:
            canon = space.canonical(space.parse(text))
        except SpaceError as exc:
            raise PlanError(["body", "archs", i], str(exc)) from None
        canonical, arch_hash = space.encode(canon), space.canonical_hash(canon)
        for spec in direct:
            key = cache_key_for(arch_hash, spec.name, spec.version, cfg_hashes[spec.name])
            tasks.append(TaskRow(i, text, canonical, arch_hash, spec.name, key))
    body: dict[str, Any] = {"space": space.name, "archs": archs, "proxies": proxies, "config": config}
    if priority != "normal":  # (normal keeps the hashes of requests made before priorities existed)
        body["priority"] = priority
    request_hash = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return JobPlan(space.name, proxies, config, request_hash, tasks, priority)


def submit(
    store: SqlStore,
    r: redis.Redis,
    names: Names,
    plan: JobPlan,
    idempotency_key: str | None = None,
    owner: str | None = None,
) -> tuple[str, bool, int]:
    """Store the job (or find it by Idempotency-Key) and enqueue what the store lacks.

    Returns ``(job_id, created, cached)``: ``cached`` counts tasks already answered by the store. When
    Redis is down the job is still stored and the reconciler enqueues it later.
    """
    archs = len({t.position for t in plan.tasks})
    new = NewJob(
        plan.space,
        plan.proxies,
        plan.config,
        config_hash(plan.config),
        plan.request_hash,
        idempotency_key,
        plan.tasks,
        owner,
        archs,
        plan.priority,
    )
    job_id, created = store.create_job(new)
    if not created:
        return job_id, False, 0
    existing = store.existing_keys([t.cache_key for t in plan.tasks])
    missing = [t for t in plan.tasks if t.cache_key not in existing]
    try:
        enqueue_tasks(r, names, job_id, plan.space, plan.config, missing, names.lane(owner, plan.priority))
    except redis.RedisError:
        log.warning("Redis unavailable; job %s will be enqueued by the reconciler", job_id)
    return job_id, True, len(plan.tasks) - len(missing)


def enqueue_tasks(
    r: redis.Redis,
    names: Names,
    job_id: str,
    space: str,
    config: dict[str, Any],
    tasks: list[TaskRow],
    lane: str,
) -> int:
    """Enqueue one message per canonical arch of ``tasks`` into ``lane``, then set the job's marker.

    Returns messages sent.
    """
    msgs = group_messages(space, config, [Task(t.canonical, t.arch_hash, t.proxy, t.cache_key) for t in tasks])
    if msgs:
        enqueue(r, names, msgs, lane)
    r.set(names.enqueued(job_id), "1", ex=MARKER_TTL_S)
    return len(msgs)


def enqueue_missing(store: SqlStore, r: redis.Redis, names: Names, job_id: str) -> int:
    """Re-enqueue what the store says a job still lacks (the reconciler's repair); returns messages sent."""
    job = store.get_job(job_id)
    missing = store.missing_tasks(job_id)
    if job is None or not missing:
        return 0
    space = get_space(job.space)
    hashes = {t.canonical: space.canonical_hash(space.parse(t.canonical)) for t in missing}
    rows = [TaskRow(t.position, t.arch, t.canonical, hashes[t.canonical], t.proxy, t.cache_key) for t in missing]
    lane = names.lane(job.owner, job.priority)
    return enqueue_tasks(r, names, job_id, job.space, job.config, rows, lane)
