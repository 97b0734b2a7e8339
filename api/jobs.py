"""Job routes: submit a batch of archs x proxies, poll it, read its scores."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, Header, Query

from api.deps import ServicesDep, require_writer
from api.errors import field_error
from api.schemas import JobAccepted, JobRequest, JobStatus, ScoreItem, ScorePage
from service.proxies.catalog import ProxySpec, get_spec
from service.spaces.nb201 import ArchError, NB201Arch
from storage.keys import cache_key_for, config_dict, config_hash, decode_score, json_components, json_score
from storage.models import JobTask, Score
from storage.store import IdempotencyConflict, NewJob, TaskRow
from workers.streams import enqueue, group_messages

router = APIRouter(prefix="/v1", tags=["jobs"])
log = logging.getLogger(__name__)


def resolve_proxies(names: list[str]) -> list[ProxySpec]:
    """Catalogue specs of the requested proxies; 422 naming ``proxies[i]`` for an unknown one."""
    specs = []
    for i, name in enumerate(names):
        try:
            specs.append(get_spec(name))
        except KeyError as exc:
            raise field_error(["body", "proxies", i], str(exc).strip("\"'")) from None
    return specs


def task_proxies(specs: list[ProxySpec]) -> list[ProxySpec]:
    """What workers compute: population proxies expand into their components (deduplicated)."""
    out: dict[str, ProxySpec] = {}
    for spec in specs:
        for name in spec.components if spec.population else (spec.name,):
            out.setdefault(name, get_spec(name))
    return list(out.values())


@router.post("/jobs", status_code=202, dependencies=[Depends(require_writer)])
def submit_job(
    req: JobRequest,
    services: ServicesDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JobAccepted:
    """Queue a scoring job; stored scores are reused and a repeated Idempotency-Key returns the same job."""
    s = services.settings
    if len(req.archs) > s.max_archs_per_job:
        raise field_error(["body", "archs"], f"too many archs: {len(req.archs)} > {s.max_archs_per_job}")
    req.proxies = list(dict.fromkeys(req.proxies))
    specs = resolve_proxies(req.proxies)
    tasks_specs = task_proxies(specs)
    cfg = config_dict(req.config.seed, req.config.num_classes)
    cfg_hash = config_hash(cfg)
    tasks: list[TaskRow] = []
    for i, text in enumerate(req.archs):
        if len(text) > 200:
            raise field_error(["body", "archs", i], "arch string longer than 200 characters")
        try:
            canon = NB201Arch.parse(text).canonical()
        except ArchError as exc:
            raise field_error(["body", "archs", i], str(exc)) from None
        arch_hash = canon.canonical_hash()
        for spec in tasks_specs:
            key = cache_key_for(arch_hash, spec.name, spec.version, cfg_hash)
            tasks.append(TaskRow(i, text, canon.to_str(), spec.name, key))
    body = json.dumps(req.model_dump(mode="json"), sort_keys=True)
    new = NewJob(
        req.space, req.proxies, cfg, cfg_hash, hashlib.sha256(body.encode()).hexdigest(), idempotency_key, tasks
    )
    try:
        job_id, created = services.store.create_job(new)
    except IdempotencyConflict as exc:
        raise field_error(["header", "idempotency-key"], str(exc), 409, "conflict") from None
    metrics = services.metrics
    if created:
        existing = services.store.existing_keys([t.cache_key for t in tasks])
        missing = [(t.canonical, t.proxy) for t in tasks if t.cache_key not in existing]
        metrics.jobs.inc()
        metrics.tasks.inc(len(tasks))
        metrics.cached.inc(len(tasks) - len(missing))
        if missing:
            try:  # marker after the messages: a partial enqueue leaves no marker, so the reconciler redoes it
                enqueue(services.redis, services.names, group_messages(req.space, cfg, missing))
                services.redis.set(services.names.enqueued(job_id), "1", ex=7 * 86400)
            except redis.RedisError:  # the job is stored: the reconciler enqueues it once Redis is back
                log.warning("Redis unavailable; job %s will be enqueued by the reconciler", job_id)
    prog = services.store.progress(job_id)
    assert prog is not None
    return JobAccepted(id=job_id, status=prog.status, total=prog.total)


@router.get("/jobs/{job_id}")
def job_status(job_id: str, services: ServicesDep) -> JobStatus:
    """Progress of a job in arch x proxy tasks."""
    prog = services.store.progress(job_id)
    if prog is None:
        raise field_error(["path", "job_id"], f"unknown job {job_id!r}", 404, "not_found")
    return JobStatus(id=prog.id, status=prog.status, done=prog.done, failed=prog.failed, total=prog.total)  # type: ignore[arg-type]


def _item(task: JobTask, score: Score | None, proxy: str | None = None) -> ScoreItem:
    if score is not None:
        return ScoreItem(
            arch=task.arch,
            proxy=proxy or task.proxy,
            status="done",
            score=json_score(decode_score(score.value, score.kind)),
            components=score.components,
            provenance=score.provenance,
            seconds=score.seconds,
        )
    status = "failed" if task.error else "pending"
    return ScoreItem(arch=task.arch, proxy=proxy or task.proxy, status=status, error=task.error)


def _population_items(
    spec: ProxySpec, rows: dict[tuple[int, str], tuple[JobTask, Score | None]], positions: list[int]
) -> dict[int, ScoreItem]:
    """Population proxy rows over the job's distinct archs (as the engine aggregates them)."""
    from service.aggregate import log_rank_sum

    arch_of = {pos: rows[(pos, spec.components[0])][0].arch for pos in positions}
    distinct = list(dict.fromkeys(arch_of[p] for p in positions))
    first = {}
    for p in positions:
        first.setdefault(arch_of[p], p)
    parts = {a: [rows[(first[a], c)] for c in spec.components] for a in distinct}
    incomplete = any(sc is None for a in distinct for _, sc in parts[a])
    out = {}
    if incomplete:
        for p in positions:
            task = rows[(p, spec.components[0])][0]
            errs = [t.error for t, sc in parts[arch_of[p]] if sc is None and t.error]
            out[p] = ScoreItem(
                arch=task.arch, proxy=spec.name, status="failed" if errs else "pending", error=errs[0] if errs else None
            )
        return out
    columns = [
        [decode_score(parts[a][k][1].value, parts[a][k][1].kind) for a in distinct]  # type: ignore[union-attr]
        for k in range(len(spec.components))
    ]
    agg = dict(zip(distinct, log_rank_sum(columns)))
    for p in positions:
        a = arch_of[p]
        comps = {c: columns[k][distinct.index(a)] for k, c in enumerate(spec.components)}
        prov = {
            **parts[a][0][1].provenance,
            "proxy_version": spec.version,  # type: ignore[union-attr]
            "population_size": len(distinct),
        }
        out[p] = ScoreItem(
            arch=a,
            proxy=spec.name,
            status="done",
            score=json_score(float(agg[a])),
            components=json_components(comps),
            provenance=prov,
            seconds=math.fsum(sc.seconds for _, sc in parts[a] if sc is not None),
        )
    return out


@router.get("/jobs/{job_id}/scores")
def job_scores(
    job_id: str,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    cursor: Annotated[str | None, Query(max_length=20, pattern=r"^[0-9]+$")] = None,
) -> ScorePage:
    """One row per arch x requested proxy, in request order; paginated with ``limit`` and ``cursor``."""
    job = services.store.get_job(job_id)
    if job is None:
        raise field_error(["path", "job_id"], f"unknown job {job_id!r}", 404, "not_found")
    raw = services.store.job_rows(job_id)
    rows = {(t.position, t.proxy): (t, sc) for t, sc in raw}
    positions = sorted({t.position for t, _ in raw})
    per_proxy: dict[str, dict[int, ScoreItem]] = {}
    for name in job.proxies:
        spec = get_spec(name)
        if spec.population:
            per_proxy[name] = _population_items(spec, rows, positions)
        else:
            per_proxy[name] = {p: _item(*rows[(p, name)]) for p in positions}
    items: list[Any] = [per_proxy[name][p] for p in positions for name in job.proxies]
    start = int(cursor or 0)
    page = items[start : start + limit]
    nxt = str(start + limit) if start + limit < len(items) else None
    return ScorePage(items=page, next=nxt)
