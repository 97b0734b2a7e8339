"""Pydantic v2 models of the HTTP API (they are the OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from zcscore.spaces.nb201 import EXAMPLE_ARCH

ScoreValue = float | Literal["inf", "-inf"] | None


class JobConfig(BaseModel):
    """Score-relevant options shared by every arch x proxy of a job."""

    model_config = ConfigDict(extra="forbid")
    seed: int = Field(1, ge=0, le=2**31 - 1, description="seed (1, as the official drivers, by default)")
    num_classes: int = Field(10, ge=1, le=1000)


class JobRequest(BaseModel):
    """A batch of architectures to score with a list of proxies."""

    model_config = ConfigDict(extra="forbid")
    space: str = Field("nb201", max_length=64, description="a registered space (GET /v1/spaces)")
    archs: list[str] = Field(min_length=1, examples=[[EXAMPLE_ARCH]])
    proxies: list[str] = Field(min_length=1, max_length=50, examples=[["params", "flops"]])
    config: JobConfig = Field(default_factory=JobConfig)
    priority: Literal["low", "normal", "high"] = Field(
        "normal", description="orders this job's work within its owner's fair share of the workers"
    )


class JobAccepted(BaseModel):
    """Answer to a job submission."""

    id: str
    status: str
    total: int


class JobStatus(BaseModel):
    """Progress of a job, in arch x proxy tasks."""

    id: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    done: int
    failed: int
    total: int
    failures: dict[str, int] = Field(default_factory=dict, description="failed tasks by error code")


class JobSummary(JobStatus):
    """A job in ``GET /v1/jobs``: its progress plus what was asked."""

    space: str
    proxies: list[str]
    created_at: str = Field(description="ISO 8601, UTC")
    owner: str | None = Field(None, description="the submitting key's name (null: submitted while auth was off)")


class JobList(BaseModel):
    """Jobs, newest first."""

    items: list[JobSummary]


class ScoreItem(BaseModel):
    """One arch x proxy score (score: null for NaN, "inf"/"-inf" for infinities)."""

    arch: str
    proxy: str
    status: Literal["done", "failed", "pending"]
    score: ScoreValue = None
    components: dict[str, ScoreValue] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)
    seconds: float | None = None
    error: str | None = None


class ScorePage(BaseModel):
    """A page of scores; pass ``next`` as ``cursor`` to get the following page."""

    items: list[ScoreItem]
    next: str | None = None


class StoredScore(BaseModel):
    """A stored score as returned by lookups, top-k and exports."""

    arch: str
    proxy: str
    proxy_version: int
    seed: int
    config_hash: str
    score: ScoreValue
    components: dict[str, Any]
    provenance: dict[str, Any]
    seconds: float


class StoredScores(BaseModel):
    """A list of stored scores."""

    items: list[StoredScore]


class PopulationScores(BaseModel):
    """A population proxy (``az_nas``, ``ensemble:a+b``) aggregated over every stored arch of a space, best first."""

    proxy: str
    space: str
    seed: int
    population_size: int = Field(description="stored archs that have every component (the m of log(rank/m))")
    items: list[ScoreItem]


class ProxyInfo(BaseModel):
    """A proxy of the catalogue."""

    name: str
    version: int
    input: str
    needs_grad: bool
    description: str
    sentinel: str
    higher_is_better: bool
    population: bool
    components: list[str]
    input_protocol: str


class SpaceInfo(BaseModel):
    """A registered search space."""

    name: str
    description: str
    example: str
    size: int | None


class Health(BaseModel):
    """Liveness of the API and what it depends on."""

    status: Literal["ok", "degraded"]
    database: bool
    redis: bool
