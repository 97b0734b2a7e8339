"""Job routes: submit a batch of archs x proxies, poll it, read its scores (thin: logic in workers/jobs.py)."""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response

from zcscore.aggregate import population_records
from zcscore.api.auth import User, UserDep, can_see, owner_of
from zcscore.api.deps import ServicesDep
from zcscore.api.errors import field_error
from zcscore.api.schemas import JobAccepted, JobList, JobRequest, JobStatus, JobSummary, ScoreItem, ScorePage
from zcscore.proxies.catalog import ProxySpec, get_spec
from zcscore.records import ScoreRecord
from zcscore.storage.keys import decode_score, json_components, json_score
from zcscore.storage.models import JobTask, Score
from zcscore.storage.store import IdempotencyConflict, Progress, SqlStore
from zcscore.workers.jobs import PlanError, plan_job, submit

router = APIRouter(prefix="/v1", tags=["jobs"])
MAX_WAIT_S = 30.0  # bound of the ?wait= long-poll
POLL_S = 0.1


@router.post("/jobs", status_code=202, responses={429: {"description": "a quota of the caller's key is reached"}})
def submit_job(
    req: JobRequest,
    services: ServicesDep,
    user: UserDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JobAccepted:
    """Queue a scoring job; stored scores are reused and a repeated Idempotency-Key returns the same job.

    The ``Location`` header points at the job's status. A key's quotas (archs per day, jobs in flight) are
    checked here: over a limit the answer is 429 naming it.
    """
    if user is not None:
        _check_quotas(services, user, len(req.archs))
    try:
        plan = plan_job(
            req.space, req.archs, req.proxies, req.config.seed, req.config.num_classes, services.settings, req.priority
        )
        job_id, created, cached = submit(
            services.store, services.redis, services.names, plan, idempotency_key, owner_of(user)
        )
    except PlanError as exc:
        raise field_error(exc.loc, str(exc)) from None
    except IdempotencyConflict as exc:
        raise field_error(["header", "idempotency-key"], str(exc), 409, "conflict") from None
    if created:
        services.metrics.jobs.inc()
        services.metrics.tasks.inc(len(plan.tasks))
        services.metrics.cached.inc(cached)
    prog = services.store.progress(job_id)
    assert prog is not None
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    return JobAccepted(id=job_id, status=prog.status, total=prog.total)


def _check_quotas(services: ServicesDep, user: User, archs: int) -> None:
    """429 naming the limit when this submission would exceed one of the caller's quotas."""
    store = services.store
    if user.quota_archs_per_day is not None:
        used = store.archs_since(user.name, datetime.now(timezone.utc) - timedelta(days=1))
        if used + archs > user.quota_archs_per_day:
            msg = (
                f"quota_archs_per_day: {user.name!r} may submit {user.quota_archs_per_day} archs per 24 h; "
                f"{used} submitted, this job adds {archs}"
            )
            raise field_error(["body", "archs"], msg, 429, "quota")
    if user.max_inflight is not None and store.inflight_jobs(user.name) >= user.max_inflight:
        msg = f"max_inflight: {user.name!r} may have {user.max_inflight} jobs queued or running; wait for one to end"
        raise field_error(["body"], msg, 429, "quota")


def _visible_job(services: ServicesDep, user: User | None, job_id: str) -> None:
    """404 for an unknown job, and for another user's job (as if it did not exist)."""
    job = services.store.get_job(job_id)
    if job is None or not can_see(user, job):
        raise field_error(["path", "job_id"], f"unknown job {job_id!r}", 404, "not_found")


@router.get("/jobs")
def list_jobs(
    services: ServicesDep,
    user: UserDep,
    status: Literal["queued", "running", "done", "failed", "cancelled"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JobList:
    """Jobs, newest first, optionally only those in one ``status`` (a user's own; every job for admins)."""
    store = services.store
    owner = None if user is None or user.is_admin else user.name
    items: list[JobSummary] = []
    before = None
    while len(items) < limit:
        jobs = store.recent_jobs(max(limit, 100), before, owner)
        for job in jobs:
            prog = store.progress(job.id)
            status_ = _status(store, prog) if prog is not None else None
            if status_ is not None and (status is None or status_.status == status):
                items.append(
                    JobSummary(
                        **status_.model_dump(),
                        space=job.space,
                        proxies=job.proxies,
                        created_at=job.created_at.isoformat(),
                        owner=job.owner,
                    )
                )
                if len(items) == limit:
                    break
        if len(jobs) < max(limit, 100):
            break
        before = jobs[-1].created_at
    return JobList(items=items)


@router.get("/jobs/{job_id}")
def job_status(
    job_id: str,
    services: ServicesDep,
    user: UserDep,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S, description="long-poll: seconds to wait for the end")] = 0,
) -> JobStatus:
    """Progress of a job in arch x proxy tasks; with ``wait``, answers when it ends or after ``wait`` seconds."""
    _visible_job(services, user, job_id)
    deadline = time.monotonic() + wait
    while True:
        prog = services.store.progress(job_id)
        if prog is None:
            raise field_error(["path", "job_id"], f"unknown job {job_id!r}", 404, "not_found")
        if prog.status in ("done", "failed") or time.monotonic() >= deadline:  # a cancelled job counts as failed
            return _status(services.store, prog)
        time.sleep(POLL_S)


@router.delete("/jobs/{job_id}")
def cancel_job(job_id: str, services: ServicesDep, user: UserDep) -> JobStatus:
    """Cancel a job: its queued work is dropped (workers skip it), scores already stored are kept."""
    _visible_job(services, user, job_id)
    if not services.store.cancel_job(job_id):
        raise field_error(["path", "job_id"], f"unknown job {job_id!r}", 404, "not_found")
    prog = services.store.progress(job_id)
    assert prog is not None
    return _status(services.store, prog)


def _status(store: SqlStore, prog: Progress) -> JobStatus:
    failures = store.failure_codes(prog.id) if prog.failed else {}
    state = "cancelled" if "cancelled" in failures else prog.status
    return JobStatus(id=prog.id, status=state, done=prog.done, failed=prog.failed, total=prog.total, failures=failures)


def _item(task: JobTask, score: Score | None) -> ScoreItem:
    if score is not None:
        return ScoreItem(
            arch=task.arch,
            proxy=task.proxy,
            status="done",
            score=json_score(decode_score(score.value, score.kind)),
            components=score.components,
            provenance=score.provenance,
            seconds=score.seconds,
        )
    return ScoreItem(arch=task.arch, proxy=task.proxy, status="failed" if task.error else "pending", error=task.error)


def _record(task: JobTask, score: Score | None) -> ScoreRecord:
    """A stored task as the core's record (NaN and the task's error while it has no score)."""
    if score is None:
        return ScoreRecord(task.arch, task.proxy, math.nan, 0.0, error=task.error or "pending")
    value = decode_score(score.value, score.kind)
    return ScoreRecord(task.arch, task.proxy, value, score.seconds, {}, score.provenance)


def _population(spec: ProxySpec, rows: list[tuple[JobTask, Score | None]]) -> dict[str, ScoreItem]:
    """``{arch: item}`` of population proxy ``spec`` over the job's distinct arch strings (as the core aggregates)."""
    table = {(t.arch, t.proxy): _record(t, sc) for t, sc in rows}
    archs = list(dict.fromkeys(t.arch for t, _ in rows))
    pending = [r for r in table.values() if r.error == "pending"]
    failed = {r.arch: r.error for r in table.values() if r.error and r.error != "pending"}
    if pending or failed:
        return {
            a: ScoreItem(arch=a, proxy=spec.name, status="failed" if a in failed else "pending", error=failed.get(a))
            for a in archs
        }
    prov = {"proxy_version": spec.version, "input_protocol": spec.input_protocol}
    out = {}
    for rec in population_records(spec, archs, table, prov):
        out[rec.arch] = ScoreItem(
            arch=rec.arch,
            proxy=spec.name,
            status="done",
            score=json_score(rec.score),
            components=json_components(rec.components),
            provenance={**table[(rec.arch, spec.components[0])].provenance, **rec.provenance},
            seconds=rec.seconds,
        )
    return out


@router.get("/jobs/{job_id}/scores")
def job_scores(
    job_id: str,
    services: ServicesDep,
    user: UserDep,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    cursor: Annotated[str | None, Query(max_length=20, pattern=r"^[0-9]+$")] = None,
) -> ScorePage:
    """One row per arch x requested proxy, in request order; a page holds whole archs (keyset on position)."""
    store = services.store
    job = store.get_job(job_id)
    if job is None or not can_see(user, job):
        raise field_error(["path", "job_id"], f"unknown job {job_id!r}", 404, "not_found")
    after = int(cursor) - 1 if cursor else -1  # the cursor is the first position of the next page
    per_arch = max(len(job.proxies), 1)
    rows = store.job_rows(job_id, after=after, positions=max(limit // per_arch, 1))
    by_key = {(t.position, t.proxy): (t, sc) for t, sc in rows}
    positions = list(dict.fromkeys(t.position for t, _ in rows))
    population = {}
    for name in job.proxies:
        spec = get_spec(name)
        if spec.population:  # aggregated over every arch of the job, whatever the page
            population[name] = _population(spec, store.job_rows(job_id, proxies=spec.components))
    items: list[ScoreItem] = []
    for p in positions:
        for name in job.proxies:
            if name in population:
                task = by_key[(p, get_spec(name).components[0])][0]
                items.append(population[name][task.arch])
            else:
                items.append(_item(*by_key[(p, name)]))
    nxt = str(positions[-1] + 1) if positions and store.has_positions_after(job_id, positions[-1]) else None
    return ScorePage(items=items, next=nxt)
