"""Lanes in-process, on the real Redis and a real store (no Ray): the dispatcher's fair choice of batches
(reading Redis with bounded buffers), priorities within a user, ``queue_depths``, the reconciler
re-enqueueing into a job's own lane, and the worker metrics in the global registry.

Batches are taken with :meth:`Dispatcher.next_batch` (what the dispatcher hands a free actor) and acked
here as a commit would ack them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from kit import REDIS_URL
from prometheus_client import REGISTRY, generate_latest
from zcs_toy_space import chain

from zcscore.settings import Settings
from zcscore.storage.store import SqlStore, open_store
from zcscore.workers.dispatcher import Dispatcher
from zcscore.workers.fair import FairScheduler
from zcscore.workers.jobs import plan_job, submit
from zcscore.workers.metrics import worker_metrics
from zcscore.workers.reconcile import reconcile
from zcscore.workers.streams import GROUP, Names, lane_stats, queue_depths


@dataclass
class Lab:
    settings: Settings
    store: SqlStore
    r: redis.Redis
    names: Names

    def submit(self, owner: str | None, first: int, n: int, priority: str = "normal") -> str:
        archs = [chain(first + i) for i in range(n)]
        plan = plan_job("toy", archs, ["params"], 1, 10, self.settings, priority)
        job_id, created, _ = submit(self.store, self.r, self.names, plan, owner=owner)
        assert created
        return job_id

    def dispatcher(self) -> Dispatcher:
        d = Dispatcher(self.settings, self.store, self.r, None, consumer=f"t-{uuid.uuid4().hex[:6]}")  # type: ignore[arg-type]
        d.refresh_lanes()
        return d


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    r = redis.Redis.from_url(REDIS_URL)
    try:
        r.ping()
    except redis.ConnectionError:
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    prefix = f"zcslane-{uuid.uuid4().hex[:10]}"
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'lab.db'}",
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        batch_size=2,
        plugins=["zcs_toy_space"],
    )
    store = open_store(settings.resolved_database_url)
    yield Lab(settings, store, r, Names(prefix))
    store.engine.dispose()
    keys = list(r.scan_iter(match=f"{prefix}:*"))
    if keys:
        r.delete(*keys)


def take(d: Dispatcher, lab: Lab) -> tuple[str, str, int]:
    """The next batch's (user, priority, archs), acked as a commit would."""
    nxt = d.next_batch()
    assert nxt is not None
    lane, batch = nxt
    lab.r.xack(lane, GROUP, *[p.entry_id for p in batch])
    user, priority = lab.names.lane_of(lane)
    return user, priority, len(batch)


def test_scheduler_alternates_users_and_weighs_priorities_within_a_user() -> None:
    names = Names("x")
    fair = FairScheduler(names.lane_of)
    a, b = names.lane("alice"), names.lane("bob")
    assert [fair.pick([a, b]) for _ in range(4)] == [a, b, a, b]
    c = names.lane("carol")
    assert fair.pick([a, b, c]) == a and fair.pick([a, b, c]) == b and fair.pick([a, b, c]) == c  # newcomer in turn
    hi, no, lo = (names.lane("dan", p) for p in ("high", "normal", "low"))
    picks = [fair.pick([hi, no, lo]) for _ in range(21)]
    assert (picks.count(hi), picks.count(no), picks.count(lo)) == (16, 4, 1)
    assert fair.pick([lo]) == lo  # low priority alone still runs


def test_a_small_user_is_served_within_a_few_batches_and_reads_stay_bounded(lab: Lab) -> None:
    lab.submit("alice", 0, 300)
    lab.submit("bob", 1000, 5)
    lab.submit(None, 2000, 3)  # anonymous (auth off) work is a user too
    assert queue_depths(lab.r, lab.names) == {"alice": 300, "bob": 5, "-": 3}
    d = lab.dispatcher()
    order = []
    for _ in range(9):
        order.append(take(d, lab))
        per_lane = {lane: len(b) for lane, b in d.buffers.items()}
        assert max(per_lane.values()) <= 2 * lab.settings.batch_size, per_lane  # never reads ahead of its turns
        pending = lab.r.xpending(lab.names.lane("alice"), GROUP)["pending"]
        assert pending == per_lane.get(lab.names.lane("alice"), 0)  # read = buffered (the rest acked)
    users = [u for u, _, _ in order]
    # one batch each in turn (2 archs a batch); a user whose lanes ran dry drops out of the turns
    assert users == ["-", "alice", "bob", "-", "alice", "bob", "alice", "bob", "alice"]
    assert sum(n for u, _, n in order if u == "bob") == 5 and sum(n for u, _, n in order if u == "-") == 3
    depths = queue_depths(lab.r, lab.names)
    assert depths["bob"] == depths["-"] == 0 and depths["alice"] == 300 - 8
    stats = {st.lane: st for st in lane_stats(lab.r, lab.names)}
    alice = stats[lab.names.lane("alice")]
    assert alice.pending == len(d.buffers[lab.names.lane("alice")]) and alice.waiting == 292 and alice.length == 300


def test_priority_orders_work_within_a_users_share(lab: Lab) -> None:
    lab.submit("carol", 0, 10, "low")
    lab.submit("carol", 100, 40, "normal")
    lab.submit("carol", 200, 40, "high")
    lab.submit("dave", 300, 50)
    d = lab.dispatcher()
    order = [take(d, lab) for _ in range(42)]
    carol = [p for u, p, _ in order if u == "carol"]
    assert [u for u, _, _ in order[:4]] == ["carol", "dave", "carol", "dave"]  # priorities never beat another user
    assert (carol.count("high"), carol.count("normal"), carol.count("low")) == (16, 4, 1)
    assert order.count(("carol", "high", 2)) == 16  # full batches: a lane is topped up to its turn's batch


def test_the_reconciler_re_enqueues_into_the_jobs_own_lane(lab: Lab) -> None:
    job = lab.submit("erin", 0, 7, "high")
    lab.submit("frank", 100, 2)
    assert lab.store.get_job(job).priority == "high"
    for key in lab.r.scan_iter(match=f"{lab.names.prefix}:*"):  # Redis lost everything
        lab.r.delete(key)
    assert queue_depths(lab.r, lab.names) == {}
    sent = reconcile(lab.store, lab.r, lab.names, "test", 5)
    assert sent == 9
    assert queue_depths(lab.r, lab.names) == {"erin": 7, "frank": 2}
    assert lab.r.xlen(lab.names.lane("erin", "high")) == 7 and lab.r.xlen(lab.names.lane("frank", "normal")) == 2
    d = lab.dispatcher()
    assert {take(d, lab)[:2] for _ in range(2)} == {("erin", "high"), ("frank", "normal")}


def test_the_old_single_stream_is_still_drained(lab: Lab) -> None:
    from zcscore.workers.streams import TaskMessage

    lab.submit(None, 0, 1)
    (entry,) = lab.r.xrange(lab.names.lane(None))
    lab.r.delete(lab.names.lane(None))
    lab.r.srem(lab.names.lanes, lab.names.lane(None))
    lab.r.xadd(lab.names.tasks, TaskMessage.from_fields(entry[1]).fields())  # queued by an older version
    d = lab.dispatcher()
    assert take(d, lab) == ("-", "normal", 1)
    assert queue_depths(lab.r, lab.names) == {"-": 0}


def test_worker_metrics_are_registered_once_in_the_global_registry() -> None:
    m = worker_metrics()
    assert worker_metrics() is m
    m.completed.labels("params").inc(0)
    m.duration.labels("params").observe(0.01)
    m.queue_depth.labels("alice").set(3)
    text = generate_latest(REGISTRY).decode()
    for name in (
        "zcscore_tasks_completed_total",
        "zcscore_proxy_duration_seconds_bucket",
        "zcscore_queue_depth",
        "zcscore_tasks_dead_lettered_total",
    ):
        assert name in text, name


def test_worker_metric_names_never_collide_with_the_apis() -> None:
    from prometheus_client import CollectorRegistry

    from zcscore.api.metrics import Metrics
    from zcscore.workers.metrics import WorkerMetrics

    mine = CollectorRegistry()
    WorkerMetrics.create(mine)

    def names(registry: CollectorRegistry) -> set[str]:
        out = set()
        for family in registry.collect():
            out.add(family.name)
            out.update(s.name for s in family.samples)
        return out

    assert names(mine) & names(Metrics().registry) == set()  # the API may render both from one registry


def test_the_queue_side_modules_import_neither_torch_nor_ray() -> None:
    import subprocess
    import sys

    mods = ", ".join(f"zcscore.workers.{m}" for m in ("streams", "jobs", "fair", "reconcile", "metrics"))
    code = f"import sys, {mods}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {{'torch', 'ray'}}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
