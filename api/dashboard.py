"""The dashboard: the page at ``/ui`` (static HTML + vanilla JS + CSS) and the JSON it polls.

``GET /v1/cluster`` (queue depth, workers, outstanding work per user, stored proxies) and ``GET /v1/scatter``
(stored scores of a proxy against the space's ground-truth accuracy, with Kendall's tau) follow the API's
auth rules. The page itself is open: it asks for a key and sends it as a Bearer token.
"""

from __future__ import annotations

import math
import random
import threading
import time
import weakref
from pathlib import Path
from typing import Annotated

import redis
from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from zcscore.api.auth import UserDep, current_user
from zcscore.api.deps import ServicesDep
from zcscore.api.errors import field_error
from zcscore.api.scores import known_space, stored_proxy
from zcscore.storage.keys import JsonScore, decode_score, json_score
from zcscore.storage.store import SqlStore
from zcscore.workers.streams import ANONYMOUS, Names, lane_stats, queue_depths

STATIC = Path(__file__).resolve().parent / "static"
CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"  # same-origin only: no CDN, no inline JS
STORED_CACHE_S = 3.0  # how long the stored-scores census is reused (a GROUP BY over every score)
TRUTH_DATASET = "cifar10"  # the scatter's y axis: CIFAR-10 test accuracy (NB101: its validation accuracy)

router = APIRouter(prefix="/v1", tags=["dashboard"])
page = APIRouter()


class QueueDepth(BaseModel):
    """The task lanes together: their entries (acked ones stay until trimmed), those not yet delivered to a
    dispatcher, those delivered but not acked, and dead letters."""

    length: int
    waiting: int | None = Field(description="entries no dispatcher has read yet")
    pending: int
    dead: int


class WorkerInfo(BaseModel):
    """A scoring actor registered by a dispatcher."""

    name: str
    pid: int | None
    node: str | None


class Load(BaseModel):
    """Outstanding work: unfinished jobs with tasks left, and those arch x proxy tasks."""

    jobs: int
    tasks: int


class UserLoad(Load):
    """One user's outstanding work (``owner`` null: jobs submitted while auth was off)."""

    owner: str | None
    queued: int = Field(0, description="archs waiting in the user's lanes, not yet scored (queue_depths)")


class StoredCount(BaseModel):
    """How many scores of a proxy the store holds in a space."""

    space: str
    proxy: str
    scores: int


class Cluster(BaseModel):
    """What the cluster is doing. A user sees their own row by name and everyone else's work summed up."""

    queue: QueueDepth | None = Field(description="null while Redis does not answer")
    workers: list[WorkerInfo]
    users: list[UserLoad]
    others: Load | None = Field(None, description="other users' work, summed (for a non-admin caller)")
    stored: list[StoredCount] = Field(description="scores per space and proxy (refreshed every few seconds)")


class ScatterPoint(BaseModel):
    """One stored arch: its score, its rank among the stored archs (0 worst .. 1 best) and its accuracy."""

    arch: str
    score: JsonScore
    rank: float
    accuracy: float


class Scatter(BaseModel):
    """A proxy's stored scores against ground truth, with rank correlations over every matched arch."""

    space: str
    proxy: str
    seed: int | None
    target: str | None = Field(description="ground-truth column of the space's table")
    n: int = Field(description="archs with both a score and a ground-truth value")
    kendall_tau: float | None
    spearman_rho: float | None
    points: list[ScatterPoint] = Field(description="at most `limit` of the n archs, drawn evenly")
    message: str | None = Field(None, description="why there is nothing to plot, when there is not")


def queue_depth(r: redis.Redis, names: Names) -> QueueDepth:
    """Every lane together (:func:`~zcscore.workers.streams.lane_stats`): length, undelivered and pending
    entries of the scorers group, and dead letters."""
    lanes = lane_stats(r, names)
    return QueueDepth(
        length=sum(st.length for st in lanes),
        waiting=sum(st.lag for st in lanes),
        pending=sum(st.pending for st in lanes),
        dead=int(r.xlen(names.dead)),
    )


class _StoredCensus:
    """``store.stored_counts()`` reused for :data:`STORED_CACHE_S` per store (every open dashboard polls it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: weakref.WeakKeyDictionary[SqlStore, tuple[float, list[StoredCount]]] = weakref.WeakKeyDictionary()

    def get(self, store: SqlStore) -> list[StoredCount]:
        with self._lock:
            taken, value = self._seen.get(store, (-math.inf, []))
        if time.monotonic() - taken < STORED_CACHE_S:
            return value
        value = [StoredCount(space=s, proxy=p, scores=n) for s, p, n in store.stored_counts()]
        with self._lock:
            self._seen[store] = (time.monotonic(), value)
        return value


_CENSUS = _StoredCensus()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _workers(r: redis.Redis, names: Names) -> list[WorkerInfo]:
    pids = {_text(k): _text(v) for k, v in r.hgetall(names.actors).items()}
    nodes = {_text(k): _text(v) for k, v in r.hgetall(names.actor_nodes).items()}
    return [
        WorkerInfo(name=name, pid=int(pid) if pid.isdigit() else None, node=nodes.get(name))
        for name, pid in sorted(pids.items())
    ]


@router.get("/cluster")
def cluster(services: ServicesDep, user: UserDep) -> Cluster:
    """Queue depth, scoring workers, outstanding work per user and the stored proxies (for the dashboard)."""
    queue: QueueDepth | None = None
    workers: list[WorkerInfo] = []
    depths: dict[str, int] = {}
    try:
        queue = queue_depth(services.redis, services.names)
        workers = _workers(services.redis, services.names)
        depths = queue_depths(services.redis, services.names)
    except redis.RedisError:
        pass
    loads = services.store.outstanding_by_owner()
    users = [
        UserLoad(owner=x.owner, jobs=x.jobs, tasks=x.tasks, queued=depths.get(x.owner or ANONYMOUS, 0)) for x in loads
    ]
    others = None
    if user is not None and not user.is_admin:
        users = [u for u in users if u.owner == user.name]
        rest = [x for x in loads if x.owner != user.name]
        others = Load(jobs=sum(x.jobs for x in rest), tasks=sum(x.tasks for x in rest))
    return Cluster(queue=queue, workers=workers, users=users, others=others, stored=_CENSUS.get(services.store))


@router.get("/scatter", dependencies=[Depends(current_user)])  # stored scores are readable by every user
def scatter(
    services: ServicesDep,
    proxy: Annotated[str, Query(max_length=64)],
    space: Annotated[str, Query(max_length=64)] = "nb201",
    seed: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=20000, description="most points returned (tau uses every arch)")] = 2000,
) -> Scatter:
    """Stored scores of ``proxy`` against the space's ground-truth accuracy (NB201: CIFAR-10 test), with tau.

    One score per canonical arch (its first stored, or the one under ``seed``); NaN ranks last except for
    proxies whose paper drops it (as ``zcscore bench`` does). Ground truth is read from the data directory.
    """
    from zcscore.bench.metrics import EXCLUDE, policy_for, rank_correlation
    from zcscore.bench.truth import accuracies, space_csv, target_columns

    known_space(space)
    spec = stored_proxy(proxy)
    target = target_columns(space).get(TRUTH_DATASET)
    if target is None:
        raise field_error(["query", "space"], f"no ground-truth accuracies for space {space!r}")
    empty = Scatter(
        space=space, proxy=proxy, seed=seed, target=target, n=0, kendall_tau=None, spearman_rho=None, points=[]
    )
    data_dir = services.settings.data_dir
    if data_dir is None or not space_csv(space, data_dir).is_file():
        where = "ZCSCORE_DATA_DIR is unset" if data_dir is None else f"{space_csv(space, data_dir)} is missing"
        return empty.model_copy(update={"message": f"no ground truth: {where}"})
    rows = services.store.proxy_values(space, proxy, seed)
    archs = [a for a, _, _ in rows]
    scores = [decode_score(v, k) for _, v, k in rows]
    try:
        accs = accuracies(archs, target, data_dir, space)
    except (OSError, ValueError, KeyError) as exc:  # an unreadable or malformed table
        return empty.model_copy(update={"message": f"no ground truth: {exc}"})
    policy = policy_for(proxy)
    matched = [i for i, a in enumerate(accs) if not (math.isnan(a) or (policy == EXCLUDE and math.isnan(scores[i])))]
    if not matched:
        return empty.model_copy(update={"message": f"no stored {proxy} score of {space} has a ground-truth value"})
    corr = rank_correlation(scores, accs, policy, spec.higher_is_better)
    ranks = _ranks([scores[i] for i in matched], spec.higher_is_better)
    keep = range(len(matched)) if len(matched) <= limit else sorted(random.Random(0).sample(range(len(matched)), limit))
    points = []
    for j in keep:
        i = matched[j]
        points.append(ScatterPoint(arch=archs[i], score=json_score(scores[i]), rank=ranks[j], accuracy=accs[i]))
    return Scatter(
        space=space,
        proxy=proxy,
        seed=seed,
        target=target,
        n=corr.n,
        kendall_tau=None if math.isnan(corr.kendall) else corr.kendall,
        spearman_rho=None if math.isnan(corr.spearman) else corr.spearman,
        points=points,
    )


def _ranks(scores: list[float], higher_is_better: bool) -> list[float]:
    """Average ranks scaled to [0, 1] (1 = best; NaN and the worst infinity rank last)."""
    from scipy.stats import rankdata

    oriented = [(s if higher_is_better else -s) for s in scores]
    cleaned = [-math.inf if math.isnan(s) else s for s in oriented]
    ranks = rankdata(cleaned)
    n = len(cleaned)
    return [float((r - 1) / (n - 1)) if n > 1 else 1.0 for r in ranks]


@page.get("/ui", include_in_schema=False)
def dashboard() -> FileResponse:
    """The dashboard page (static; its data comes from the /v1 routes above)."""
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP})
