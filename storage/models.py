"""SQLAlchemy 2 typed models: scores (the cache, unique by key), jobs and their arch x proxy tasks."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timezone-aware now (UTC)."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base with a naming convention (stable constraint names for Alembic)."""

    metadata = MetaData(naming_convention=NAMING)


class Score(Base):
    """One computed arch x proxy score; ``cache_key`` is unique, so a score is stored once."""

    __tablename__ = "scores"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cache_key: Mapped[str] = mapped_column(String(64), unique=True)
    space: Mapped[str] = mapped_column(String(64))
    arch: Mapped[str] = mapped_column(Text)  # canonical representative (the space's encoding)
    arch_hash: Mapped[str] = mapped_column(String(64))
    proxy: Mapped[str] = mapped_column(String(64))
    proxy_version: Mapped[int] = mapped_column(Integer)
    config_hash: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(Integer)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)  # finite values only
    kind: Mapped[str] = mapped_column(String(8))  # finite | nan | inf | -inf
    components: Mapped[dict[str, Any]] = mapped_column(JSON)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON)
    seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        Index("ix_scores_lookup", "space", "proxy", "arch_hash"),
        Index("ix_scores_top", "space", "proxy", "config_hash", "value"),
    )


class Job(Base):
    """A submitted scoring job; its progress is derived from its tasks and the scores table."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    space: Mapped[str] = mapped_column(String(64))
    proxies: Mapped[list[str]] = mapped_column(JSON)  # as requested (population proxies included)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_hash: Mapped[str] = mapped_column(String(64))
    total: Mapped[int] = mapped_column(Integer)
    finished: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the key's name (None: no auth)
    archs: Mapped[int | None] = mapped_column(Integer, nullable=True)  # archs submitted (for quotas)
    # low | normal | high: with ``owner`` it names the job's queue lane (the reconciler re-enqueues there)
    priority: Mapped[str] = mapped_column(String(8), default="normal", server_default="normal")

    __table_args__ = (Index("ix_jobs_owner_created", "owner", "created_at"),)


class ApiKey(Base):
    """A user's API key: only its sha256 is stored; role ``user`` or ``admin``; optional quotas."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(8))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the key's first characters, to recognise it in listings
    quota_archs_per_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_inflight: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class JobTask(Base):
    """One arch x task-proxy of a job (population proxies are expanded into their components)."""

    __tablename__ = "job_tasks"
    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # index of the arch in the request
    proxy: Mapped[str] = mapped_column(String(64), primary_key=True)
    arch: Mapped[str] = mapped_column(Text)  # as submitted
    canonical: Mapped[str] = mapped_column(Text)
    cache_key: Mapped[str] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # set when the task failed for good

    __table_args__ = (Index("ix_job_tasks_cache_key", "cache_key"),)
