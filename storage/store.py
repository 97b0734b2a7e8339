"""The score store: one SQLAlchemy implementation for SQLite and Postgres, picked by URL.

Contract: scores are immutable and unique by ``cache_key`` (a DB constraint); ``insert_scores`` is
idempotent (``ON CONFLICT DO NOTHING``). A job's progress is derived, never counted: a task is done when
its cache key has a score, failed when it has an error and no score. The store is the source of truth;
queues may lose messages and are rebuilt from :meth:`SqlStore.missing_tasks`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from sqlalchemy import Engine, case, create_engine, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from zcscore.storage.migrate import check_at_head, upgrade
from zcscore.storage.models import ApiKey, Job, JobTask, Score


@dataclass(frozen=True)
class TaskRow:
    """One arch x task-proxy of a new job."""

    position: int
    arch: str
    canonical: str
    arch_hash: str
    proxy: str
    cache_key: str


@dataclass(frozen=True)
class NewJob:
    """Everything needed to create a job."""

    space: str
    proxies: list[str]
    config: dict[str, Any]
    config_hash: str
    request_hash: str
    idempotency_key: str | None
    tasks: list[TaskRow]
    owner: str | None = None
    archs: int | None = None
    priority: str = "normal"


JobState = Literal["queued", "running", "done", "failed"]


@dataclass(frozen=True)
class Progress:
    """Counts of a job's arch x proxy tasks."""

    id: str
    total: int
    done: int
    failed: int

    @property
    def status(self) -> JobState:
        """queued | running | done | failed (failed: finished with at least one failed task)."""
        if self.done + self.failed >= self.total:
            return "failed" if self.failed else "done"
        return "running" if self.done + self.failed else "queued"


@dataclass(frozen=True)
class OwnerLoad:
    """Work an owner has outstanding: unfinished jobs with tasks left, and those tasks."""

    owner: str | None
    jobs: int
    tasks: int


class IdempotencyConflict(ValueError):
    """The Idempotency-Key was used before with a different request body."""


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine; SQLite gets WAL and a busy timeout so several processes can share it."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def open_store(url: str, migrate: bool = True) -> SqlStore:
    """Open the store at ``url``; upgrade to head first (or refuse a stale schema when ``migrate`` is off)."""
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    else:
        check_at_head(engine)
    return SqlStore(engine)


class SqlStore:
    """Scores, jobs and tasks in one SQL database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session = sessionmaker(engine, expire_on_commit=False)

    def _insert(self) -> Any:
        return (postgresql if self.engine.dialect.name == "postgresql" else sqlite).insert

    # jobs ---------------------------------------------------------------------------------------
    def create_job(self, new: NewJob) -> tuple[str, bool]:
        """Create a job (or return the one with the same Idempotency-Key); returns ``(id, created)``."""
        if new.idempotency_key:
            found = self._job_by_key(new.idempotency_key, new.request_hash)
            if found:
                return found, False
        job_id = str(uuid.uuid4())
        job = Job(
            id=job_id,
            idempotency_key=new.idempotency_key,
            request_hash=new.request_hash,
            space=new.space,
            proxies=new.proxies,
            config=new.config,
            config_hash=new.config_hash,
            total=len(new.tasks),
            finished=False,
            owner=new.owner,
            archs=new.archs,
            priority=new.priority,
        )
        rows = [
            {
                "job_id": job_id,
                "position": t.position,
                "proxy": t.proxy,
                "arch": t.arch,
                "canonical": t.canonical,
                "cache_key": t.cache_key,
                "error": None,
            }
            for t in new.tasks
        ]
        try:
            with self.session.begin() as s:
                s.add(job)
                s.flush()
                for i in range(0, len(rows), 5000):
                    s.execute(self._insert()(JobTask), rows[i : i + 5000])
        except IntegrityError:
            if new.idempotency_key:  # a concurrent request with the same key won the race
                found = self._job_by_key(new.idempotency_key, new.request_hash)
                if found:
                    return found, False
            raise
        return job_id, True

    def _job_by_key(self, key: str, request_hash: str) -> str | None:
        with self.session() as s:
            job = s.scalars(select(Job).where(Job.idempotency_key == key)).first()
        if job is None:
            return None
        if job.request_hash != request_hash:
            raise IdempotencyConflict(f"Idempotency-Key {key!r} was used with a different body")
        return job.id

    def get_job(self, job_id: str) -> Job | None:
        """The job row, or None."""
        with self.session() as s:
            return s.get(Job, job_id)

    def progress(self, job_id: str) -> Progress | None:
        """Counts of done and failed tasks (None for an unknown job)."""
        job = self.get_job(job_id)
        if job is None:
            return None
        has_score = Score.id.is_not(None)
        with self.session() as s:
            done, failed = s.execute(
                select(
                    func.count(Score.id),
                    func.coalesce(func.sum(case((has_score, 0), (JobTask.error.is_not(None), 1), else_=0)), 0),
                )
                .select_from(JobTask)
                .outerjoin(Score, Score.cache_key == JobTask.cache_key)
                .where(JobTask.job_id == job_id)
            ).one()
        return Progress(job_id, job.total, int(done), int(failed))

    def recent_jobs(self, limit: int, before: datetime | None = None, owner: str | None = None) -> list[Job]:
        """Jobs newest first (``created_at`` strictly before ``before`` when given; only ``owner``'s when given)."""
        q = select(Job)
        if owner is not None:
            q = q.where(Job.owner == owner)
        if before is not None:
            q = q.where(Job.created_at < before)
        with self.session() as s:
            return list(s.scalars(q.order_by(Job.created_at.desc(), Job.id).limit(limit)))

    def failure_codes(self, job_id: str) -> dict[str, int]:
        """How many of a job's tasks failed, by error code (the part of the stored error before ``:``)."""
        from zcscore.errors import code_of

        with self.session() as s:
            errors = s.scalars(
                select(JobTask.error)
                .outerjoin(Score, Score.cache_key == JobTask.cache_key)
                .where(JobTask.job_id == job_id, JobTask.error.is_not(None), Score.id.is_(None))
            ).all()
        counts: dict[str, int] = {}
        for err in errors:
            code = code_of(err) or "internal"
            counts[code] = counts.get(code, 0) + 1
        return dict(sorted(counts.items()))

    def job_rows(
        self, job_id: str, after: int = -1, positions: int | None = None, proxies: Sequence[str] | None = None
    ) -> list[tuple[JobTask, Score | None]]:
        """Tasks of a job with their score (or None), ordered by arch position then proxy.

        Keyset pagination in SQL: only arch positions ``> after``, at most ``positions`` of them, and only
        the task proxies in ``proxies`` when given.
        """
        q = (
            select(JobTask, Score)
            .outerjoin(Score, Score.cache_key == JobTask.cache_key)
            .where(JobTask.job_id == job_id, JobTask.position > after)
        )
        if proxies is not None:
            q = q.where(JobTask.proxy.in_(list(proxies)))
        if positions is not None:
            page = (
                select(JobTask.position)
                .where(JobTask.job_id == job_id, JobTask.position > after)
                .distinct()
                .order_by(JobTask.position)
                .limit(positions)
                .scalar_subquery()
            )
            q = q.where(JobTask.position.in_(page))
        with self.session() as s:
            res = s.execute(q.order_by(JobTask.position, JobTask.proxy)).all()
        return [(t, sc) for t, sc in res]

    def has_positions_after(self, job_id: str, after: int) -> bool:
        """Whether the job has arch positions beyond ``after`` (for the next-page cursor)."""
        with self.session() as s:
            found = s.scalars(
                select(JobTask.position).where(JobTask.job_id == job_id, JobTask.position > after).limit(1)
            ).first()
        return found is not None

    def unfinished_jobs(self, limit: int = 1000) -> list[str]:
        """Ids of jobs not yet marked finished, oldest first."""
        with self.session() as s:
            return list(s.scalars(select(Job.id).where(Job.finished.is_(False)).order_by(Job.created_at).limit(limit)))

    def missing_tasks(self, job_id: str) -> list[JobTask]:
        """Tasks of a job with neither a score nor an error (what still has to be computed)."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(JobTask)
                    .outerjoin(Score, Score.cache_key == JobTask.cache_key)
                    .where(JobTask.job_id == job_id, Score.id.is_(None), JobTask.error.is_(None))
                )
            )

    # users and keys -------------------------------------------------------------------------------
    def create_key(
        self,
        name: str,
        key_hash: str,
        prefix: str,
        role: str = "user",
        quota_archs_per_day: int | None = None,
        max_inflight: int | None = None,
    ) -> ApiKey:
        """Store a new key (only its hash); raises ``ValueError`` when ``name`` is taken."""
        row = ApiKey(
            id=str(uuid.uuid4()),
            name=name,
            role=role,
            key_hash=key_hash,
            prefix=prefix,
            quota_archs_per_day=quota_archs_per_day,
            max_inflight=max_inflight,
        )
        try:
            with self.session.begin() as s:
                s.add(row)
        except IntegrityError:
            raise ValueError(f"a key named {name!r} exists already (revoke it first, or pick another name)") from None
        return row

    def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, by name."""
        with self.session() as s:
            return list(s.scalars(select(ApiKey).order_by(ApiKey.name)))

    def revoke_key(self, name: str) -> bool:
        """Revoke the active key ``name`` (its row stays, renamed free); returns False when none is active."""
        with self.session.begin() as s:
            row = s.scalars(select(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None))).first()
            if row is None:
                return False
            row.revoked_at = datetime.now(timezone.utc)
            row.name = f"{name}~revoked~{row.id[:8]}"  # the name can be given to a new key
        return True

    def key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The active key with this hash, or None."""
        with self.session() as s:
            return s.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))).first()

    def has_active_keys(self) -> bool:
        """Whether any key is active (then the API requires one)."""
        with self.session() as s:
            return s.scalars(select(ApiKey.id).where(ApiKey.revoked_at.is_(None)).limit(1)).first() is not None

    def archs_since(self, owner: str, since: datetime) -> int:
        """Archs ``owner`` submitted since ``since`` (for the daily quota)."""
        q = select(func.coalesce(func.sum(Job.archs), 0)).where(Job.owner == owner, Job.created_at >= since)
        with self.session() as s:
            return int(s.execute(q).scalar_one() or 0)

    def inflight_jobs(self, owner: str) -> int:
        """``owner``'s jobs still queued or running (for the in-flight limit)."""
        with self.session() as s:
            ids = list(s.scalars(select(Job.id).where(Job.owner == owner, Job.finished.is_(False))))
        return sum(1 for i in ids if (p := self.progress(i)) is not None and p.status in ("queued", "running"))

    def cancel_job(self, job_id: str) -> bool:
        """Cancel a job: its tasks without a score get the ``cancelled`` error and it is marked finished.

        Scores already stored stay. Returns False for an unknown job. Idempotent.
        """
        scored = select(Score.cache_key).where(Score.cache_key == JobTask.cache_key).exists()
        with self.session.begin() as s:
            if s.get(Job, job_id) is None:
                return False
            s.execute(
                update(JobTask)
                .where(JobTask.job_id == job_id, JobTask.error.is_(None), ~scored)
                .values(error="cancelled: the job was cancelled before this task ran")
                .execution_options(synchronize_session=False)
            )
            s.execute(update(Job).where(Job.id == job_id).values(finished=True))
        return True

    def live_keys(self, cache_keys: Sequence[str]) -> set[str]:
        """The subset of ``cache_keys`` that some job still waits for (a task without an error)."""
        found: set[str] = set()
        keys = list(dict.fromkeys(cache_keys))
        with self.session() as s:
            for i in range(0, len(keys), 1000):
                chunk = keys[i : i + 1000]
                q = select(JobTask.cache_key).where(JobTask.cache_key.in_(chunk), JobTask.error.is_(None)).distinct()
                found.update(s.scalars(q))
        return found

    def mark_finished(self, job_id: str) -> None:
        """Flag a job whose every task is done or failed (the reconciler skips it afterwards)."""
        with self.session.begin() as s:
            s.execute(update(Job).where(Job.id == job_id).values(finished=True))

    def mark_failed(self, cache_keys: Iterable[str], error: str) -> int:
        """Record ``error`` on every unfinished task with one of ``cache_keys``; returns rows updated."""
        keys = list(cache_keys)
        if not keys:
            return 0
        with self.session.begin() as s:
            res = s.execute(
                update(JobTask).where(JobTask.cache_key.in_(keys), JobTask.error.is_(None)).values(error=error[:2000])
            )
        return int(getattr(res, "rowcount", 0) or 0)

    # scores -------------------------------------------------------------------------------------
    def existing_keys(self, cache_keys: Sequence[str]) -> set[str]:
        """The subset of ``cache_keys`` that already have a stored score."""
        found: set[str] = set()
        keys = list(dict.fromkeys(cache_keys))
        with self.session() as s:
            for i in range(0, len(keys), 1000):
                found.update(s.scalars(select(Score.cache_key).where(Score.cache_key.in_(keys[i : i + 1000]))))
        return found

    def insert_scores(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert score rows (dicts of :class:`Score` columns), skipping existing keys; returns rows new."""
        if not rows:
            return 0
        stmt = self._insert()(Score).on_conflict_do_nothing(index_elements=["cache_key"])
        keys = [r["cache_key"] for r in rows]
        with self.session.begin() as s:
            before = set(s.scalars(select(Score.cache_key).where(Score.cache_key.in_(keys))))
            s.execute(stmt, list(rows))
        return len(set(keys) - before)  # (executemany rowcount is unreliable on SQLite)

    def lookup(self, space: str, proxy: str, arch_hash: str) -> list[Score]:
        """Stored scores of one canonical arch and proxy, over every config."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(Score)
                    .where(Score.space == space, Score.proxy == proxy, Score.arch_hash == arch_hash)
                    .order_by(Score.seed, Score.id)
                )
            )

    def top(self, space: str, proxy: str, k: int, seed: int | None = None, descending: bool = True) -> list[Score]:
        """The best ``k`` scores of a proxy (+inf first, NaN never), ordered in SQL."""
        rank = case((Score.kind == "inf", 2), (Score.kind == "finite", 1), else_=0)
        order = [rank.desc(), Score.value.desc()] if descending else [rank.asc(), Score.value.asc()]
        q = select(Score).where(Score.space == space, Score.proxy == proxy, Score.kind != "nan")
        if seed is not None:
            q = q.where(Score.seed == seed)
        with self.session() as s:
            return list(s.scalars(q.order_by(*order, Score.id).limit(k)))

    def component_scores(self, space: str, proxies: Sequence[str], seed: int) -> list[Score]:
        """Stored scores of ``proxies`` under ``seed`` (every config), in (arch hash, proxy, id) order."""
        q = select(Score).where(Score.space == space, Score.proxy.in_(list(proxies)), Score.seed == seed)
        with self.session() as s:
            return list(s.scalars(q.order_by(Score.arch_hash, Score.proxy, Score.id)))

    def export(self, space: str, proxy: str | None = None) -> list[Score]:
        """Every stored score of a space (optionally one proxy)."""
        q = select(Score).where(Score.space == space)
        if proxy:
            q = q.where(Score.proxy == proxy)
        with self.session() as s:
            return list(s.scalars(q.order_by(Score.proxy, Score.arch, Score.seed)))

    # dashboard reads ------------------------------------------------------------------------------
    def outstanding_by_owner(self) -> list[OwnerLoad]:
        """Per owner: unfinished jobs with work left and their tasks with neither a score nor an error."""
        scored = select(Score.id).where(Score.cache_key == JobTask.cache_key).exists()
        q = (
            select(Job.owner, func.count(func.distinct(Job.id)), func.count())
            .select_from(JobTask)
            .join(Job, Job.id == JobTask.job_id)
            .where(Job.finished.is_(False), JobTask.error.is_(None), ~scored)
            .group_by(Job.owner)
        )
        with self.session() as s:
            rows = s.execute(q).all()
        return sorted((OwnerLoad(o, int(j), int(t)) for o, j, t in rows), key=lambda r: (-r.tasks, r.owner or ""))

    def stored_counts(self) -> list[tuple[str, str, int]]:
        """``(space, proxy, scores)`` for every proxy with stored scores, by space then proxy."""
        q = select(Score.space, Score.proxy, func.count()).group_by(Score.space, Score.proxy)
        with self.session() as s:
            rows = s.execute(q.order_by(Score.space, Score.proxy)).all()
        return [(sp, px, int(n)) for sp, px, n in rows]

    def proxy_values(self, space: str, proxy: str, seed: int | None = None) -> list[tuple[str, float | None, str]]:
        """``(canonical arch, value, kind)`` of a proxy, one per canonical arch: its first stored score (lowest id)."""
        q = select(Score.arch, Score.arch_hash, Score.value, Score.kind).where(
            Score.space == space, Score.proxy == proxy
        )
        if seed is not None:
            q = q.where(Score.seed == seed)
        seen: set[str] = set()
        out: list[tuple[str, float | None, str]] = []
        with self.session() as s:
            for arch, arch_hash, value, kind in s.execute(q.order_by(Score.id)):
                if arch_hash not in seen:
                    seen.add(arch_hash)
                    out.append((arch, value, kind))
        return out

    def ping(self) -> bool:
        """True when the database answers."""
        with self.engine.connect() as conn:
            return conn.execute(select(1)).scalar() == 1
