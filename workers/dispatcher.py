"""The dispatcher: Redis lanes (one stream per user and priority, one consumer group) -> Ray actors -> store -> XACK.

Delivery is at-least-once and the store makes it exactly-once: scores are unique by cache key and
inserted with ``ON CONFLICT DO NOTHING``, and a message whose scores already exist is acked unscored.
Every start of a task increments its attempt counter; past ``max_deliveries`` it goes to the dead-letter
stream and its job tasks are marked failed. Entries left pending by a dead dispatcher are reclaimed with
XAUTOCLAIM; a live dispatcher refreshes its own in-flight entries so they are not stolen. A failed batch
is split: each arch is re-enqueued to be scored alone. The reconciler (one at a time, under a Redis
lock) re-enqueues what the store says is missing whenever a job's "enqueued" marker is gone, e.g.
after Redis lost its data.

Fairness: the actors are shared between users batch by batch (``workers/fair.py``). The dispatcher reads a
lane only when it is about to assign from it: one entry per idle lane (to learn which users wait), then at
most a batch for the lane whose turn it is, so its buffer holds at most about two batches per lane.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.typing import StreamIdT
from sqlalchemy.exc import SQLAlchemyError

from zcscore.errors import Classified, code_of, error_line, is_transient
from zcscore.proxies.catalog import get_spec
from zcscore.settings import Settings
from zcscore.storage.keys import encode_score, proxy_config_hash
from zcscore.storage.store import SqlStore
from zcscore.workers.fair import FairScheduler
from zcscore.workers.metrics import worker_metrics
from zcscore.workers.pool import ActorPool
from zcscore.workers.reconcile import reconcile
from zcscore.workers.streams import (
    GROUP,
    Names,
    TaskMessage,
    ensure_group,
    ensure_lane,
    list_lanes,
    queue_depths,
)

log = logging.getLogger(__name__)
UNWANTED_CHECK_S = 0.5  # how often buffered work is checked against cancelled jobs (one query)
LANES_REFRESH_S = 0.25  # how often the lane registry is re-read (a new user's work waits at most this long)
GAUGES_S = 2.0  # how often the queue-depth gauge is refreshed from Redis


@dataclass
class Pending:
    """A message read from the stream, with its cache keys."""

    entry_id: str
    msg: TaskMessage
    keys: dict[str, str]  # proxy -> cache key
    lane: str  # the stream it was read from (acked there, retried there)


def score_row(msg: TaskMessage, key: str, rec: dict[str, Any]) -> dict[str, Any]:
    """A ``scores`` row from an actor record (the message carries the canonical arch, its hash and the key)."""
    value, kind = encode_score(rec["score"])
    comps = {k: (v if encode_score(v)[1] == "finite" else encode_score(v)[1]) for k, v in rec["components"].items()}
    spec = get_spec(rec["proxy"])
    return {
        "cache_key": key,
        "space": msg.space,
        "arch": msg.arch,
        "arch_hash": msg.arch_hash,
        "proxy": spec.name,
        "proxy_version": spec.version,
        "config_hash": proxy_config_hash(spec, msg.config),
        "seed": int(msg.config["seed"]),
        "value": value,
        "kind": kind,
        "components": comps,
        "provenance": rec["provenance"],
        "seconds": rec["seconds"],
    }


def _text(value: Any) -> str:
    """A Redis reply item (bytes or str) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)


class Dispatcher:
    """Moves tasks from the lanes to the actors (fairly across users) and results to the store."""

    def __init__(
        self, settings: Settings, store: SqlStore, r: redis.Redis, pool: ActorPool, consumer: str | None = None
    ) -> None:
        self.s = settings
        self.store = store
        self.r = r
        self.pool = pool
        self.names = Names(settings.redis_prefix)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.lanes: list[str] = []
        self.buffers: dict[str, list[Pending]] = {}  # lane -> entries read and not yet assigned, in order
        self.fair = FairScheduler(self.names.lane_of)
        self.metrics = worker_metrics()
        self.uncommitted: list[tuple[list[Pending], list[dict[str, Any]]]] = []  # scored, store was down
        self._next = {"claim": 0.0, "refresh": 0.0, "reconcile": 0.0, "unwanted": 0.0, "lanes": 0.0, "gauges": 0.0}
        self._store_down = False
        self._gauge_users: set[str] = set()
        self.scored = 0

    @property
    def buffer(self) -> list[Pending]:
        """Every buffered entry, all lanes together."""
        return [p for b in self.buffers.values() for p in b]

    # main loop ----------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set; survives Redis outages (retries until it is back)."""
        log.debug("dispatcher %s started", self.consumer)
        group_ok = False
        while not stop.is_set():
            try:
                if not group_ok:
                    self._ensure_lanes()
                    group_ok = True
                self.step()
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                group_ok = False
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("redis unavailable (%s); retrying", exc)
                group_ok = False
                time.sleep(0.5)
            except SQLAlchemyError as exc:  # the store is down: scored results wait in memory, nothing is acked
                if not self._store_down:
                    log.warning("store unavailable (%s); holding results until it is back", type(exc).__name__)
                self._store_down = True
                time.sleep(1.0)
            except Exception:  # anything else: keep serving, the reconciler repairs
                log.exception("dispatcher step failed; retrying")
                time.sleep(1.0)

    def step(self) -> None:
        """One iteration: commit what waited for the store, reclaim, read, submit, collect, reconcile."""
        if self._store_down:
            self.store.ping()  # raises while the store is still down
        while self.uncommitted:
            batch, records = self.uncommitted[0]
            self._commit(batch, records)  # raises while the store is still down
            self.uncommitted.pop(0)
        now = time.monotonic()
        if now >= self._next["lanes"]:
            self._next["lanes"] = now + LANES_REFRESH_S
            self.refresh_lanes()
        if now >= self._next["claim"]:
            self._next["claim"] = now + max(self.s.claim_idle_s / 2, 0.5)
            self._autoclaim()
        if now >= self._next["refresh"]:
            self._next["refresh"] = now + max(self.s.claim_idle_s / 3, 0.5)
            self._refresh_inflight()
        if now >= self._next["reconcile"]:
            self._next["reconcile"] = now + self.s.reconcile_interval_s
            self.reconcile()
        if now >= self._next["gauges"]:
            self._next["gauges"] = now + GAUGES_S
            self._update_gauges()
        if self.pool.free():
            if not self.pool.busy() and not any(self.buffers.values()):
                self._probe(500)  # idle: wait for work (at most 0.5 s)
            self._assign()
        self._drain_results(0.05 if self.pool.busy() else 0.0)
        if not self.pool.busy() and any(self.buffers.values()):
            time.sleep(0.05)  # only retries waiting out their backoff: do not spin
        if self._store_down:  # a whole step went through
            log.info("store is back; held results committed")
            self._store_down = False

    def _update_gauges(self) -> None:
        """Per-user queue depth from Redis (users whose lanes vanished, e.g. after a Redis restart, read 0)."""
        depths = queue_depths(self.r, self.names)
        for user in self._gauge_users - set(depths):
            self.metrics.queue_depth.labels(user).set(0)
        for user, depth in depths.items():
            self.metrics.queue_depth.labels(user).set(depth)
        self._gauge_users |= set(depths)

    # reading the lanes --------------------------------------------------------------------------
    def refresh_lanes(self) -> None:
        """Re-read the lane registry."""
        lanes = list_lanes(self.r, self.names)
        if self.names.tasks in lanes and self.names.tasks not in self.lanes:
            ensure_group(self.r, self.names.tasks)  # the old single stream (listed while it exists, never registered)
        self.lanes = lanes

    def _ensure_lanes(self) -> None:
        """Give every known lane its group (and registration) back, e.g. after a Redis restart."""
        self.lanes = [ln for ln in self.lanes if ln != self.names.tasks]  # (re-listed by refresh while it exists)
        for lane in set(self.lanes) | set(list_lanes(self.r, self.names)) - {self.names.tasks}:
            ensure_lane(self.r, self.names, lane)
        self.refresh_lanes()

    def _ready(self, lane: str, now: float) -> list[Pending]:
        """Buffered entries of ``lane`` that may start now (retries wait out their backoff)."""
        return [p for p in self.buffers.get(lane, []) if p.msg.not_before <= now]

    def _probe(self, block_ms: int = 0) -> None:
        """Read one entry from each lane with nothing ready, to learn which users wait (``block_ms``: wait for one)."""
        now, cap = time.time(), 2 * self.s.batch_size
        lanes = [ln for ln in self.lanes if not self._ready(ln, now) and len(self.buffers.get(ln, [])) < cap]
        if not lanes:
            if block_ms:
                time.sleep(min(block_ms / 1000, LANES_REFRESH_S))
            return
        self._read({ln: ">" for ln in lanes}, 1, block_ms)

    def _top_up(self, lane: str) -> None:
        """Read what the lane needs for a full batch (its buffer stays within two batches)."""
        buffered, ready = len(self.buffers.get(lane, [])), len(self._ready(lane, time.time()))
        count = min(self.s.batch_size - ready, 2 * self.s.batch_size - buffered)
        if count > 0:
            self._read({lane: ">"}, count, 0)

    def _read(self, streams: dict[str, str], count: int, block_ms: int) -> None:
        query = cast("dict[Any, StreamIdT]", streams)
        resp = self.r.xreadgroup(GROUP, self.consumer, query, count=count, block=block_ms or None)
        for stream, items in cast("list[list[Any]]", resp or []):  # RESP2 reply: [[stream, [(id, fields), ...]], ...]
            self._accept(_text(stream), items)

    def _held(self) -> list[Pending]:
        """Entries this dispatcher holds: buffered, in flight on the actors, or scored and not committed."""
        held = self.buffer + [p for batch, _ in self.uncommitted for p in batch]
        for batch in self.pool.in_flight():
            held.extend(batch)
        return held

    def _autoclaim(self) -> None:
        idle_ms = int(self.s.claim_idle_s * 1000)
        mine = {(p.lane, p.entry_id) for p in self._held()}  # (never taken twice, should a refresh come late)
        for lane in self.lanes:
            start = "0-0"
            while True:
                res = self.r.xautoclaim(lane, GROUP, self.consumer, idle_ms, start_id=start, count=100)
                start, entries = res[0], res[1]
                entries = [(eid, f) for eid, f in entries if f and (lane, _text(eid)) not in mine]
                if entries:
                    log.info("reclaimed %d stale entries of %s", len(entries), lane)
                    self._accept(lane, entries)
                if start in (b"0-0", "0-0"):
                    break

    def _refresh_inflight(self) -> None:
        """Reset the idle time of our own pending entries so no one reclaims live work."""
        by_lane: dict[str, list[StreamIdT]] = {}
        for p in self._held():
            by_lane.setdefault(p.lane, []).append(p.entry_id)
        for lane, ids in by_lane.items():
            self.r.xclaim(lane, GROUP, self.consumer, 0, ids, justid=True)

    def _accept(self, lane: str, entries: list[tuple[Any, dict[Any, Any]]]) -> None:
        """Skip scored or unwanted (cancelled) work, count attempts, dead-letter exhausted tasks, buffer the rest."""
        if not entries:
            return
        pending = []
        for raw, fields in entries:
            eid = _text(raw)
            try:
                msg = TaskMessage.from_fields(fields)
                pending.append(Pending(eid, msg, dict(msg.keys), lane))
            except Exception as exc:  # malformed entry: dead-letter it
                self.r.xadd(self.names.dead, {"entry": eid, "lane": lane, "error": f"malformed: {exc}"})
                self.r.xack(lane, GROUP, eid)
                self.metrics.dead_letters.inc()
        keys = [k for p in pending for k in p.keys.values()]
        existing = self.store.existing_keys(keys)
        live = self.store.live_keys([k for k in keys if k not in existing])  # no job waits for the rest (cancelled)
        for p in pending:
            left = tuple(q for q in p.msg.proxies if p.keys[q] not in existing and p.keys[q] in live)
            if not left:
                self._ack([p])
                continue
            p.msg = p.msg.only(left)
            p.keys = dict(p.msg.keys)
            attempts = int(self.r.hincrby(self.names.attempts, p.msg.task_id, 1))
            if attempts > self.s.max_deliveries:
                self._dead_letter(p)
            else:
                self.buffers.setdefault(lane, []).append(p)

    def _drop_unwanted(self) -> None:
        """Ack buffered work that no job waits for any more (a job cancelled after its tasks were read)."""
        if not any(self.buffers.values()):
            return
        live = self.store.live_keys([k for p in self.buffer for k in p.keys.values()])
        for lane, buffered in self.buffers.items():
            kept = []
            for p in buffered:
                left = tuple(q for q in p.msg.proxies if p.keys[q] in live)
                if not left:
                    self._ack([p])
                    continue
                if left != p.msg.proxies:
                    p.msg = p.msg.only(left)
                    p.keys = dict(p.msg.keys)
                kept.append(p)
            self.buffers[lane] = kept

    # assigning ----------------------------------------------------------------------------------
    def _assign(self) -> None:
        """Give each free actor slot a batch from the lane whose turn it is."""
        if time.monotonic() >= self._next["unwanted"]:
            self._next["unwanted"] = time.monotonic() + UNWANTED_CHECK_S
            self._drop_unwanted()
        for slot in self.pool.free():
            nxt = self.next_batch()
            if nxt is None:
                return
            lane, batch = nxt
            timeout = self.s.arch_timeout_s * len(batch)
            msg = batch[0].msg
            archs = [p.msg.arch for p in batch]
            self.pool.submit(
                slot, batch, msg.space, msg.proxies, msg.config, archs, timeout, [p.entry_id for p in batch]
            )
            user, priority = self.names.lane_of(lane)
            self.metrics.batches.inc()
            self.metrics.dispatched.labels(user, priority).inc(len(batch))

    def next_batch(self) -> tuple[str, list[Pending]] | None:
        """The next batch by fair share and its lane: the lane whose turn it is, topped up from Redis.

        Every lane with nothing ready is probed first (one entry each, one round trip), so a user whose
        buffer ran dry keeps their turn; None when no lane has work that can start now.
        """
        self._probe()
        while True:
            now = time.time()
            lane = self.fair.pick(ln for ln in self.buffers if self._ready(ln, now))
            if lane is None:
                return None
            self._top_up(lane)
            batch = self._take_batch(lane, time.time())
            if batch:
                return lane, batch

    def _take_batch(self, lane: str, now: float) -> list[Pending]:
        """The lane's first ready entry and up to ``batch_size - 1`` ready ones scored the same way."""
        ready = self._ready(lane, now)
        if not ready:
            return []
        buffered = self.buffers[lane]
        first = ready[0]
        batch = [first]
        if not first.msg.solo:
            same = (first.msg.space, first.msg.proxies, first.msg.config)
            batch.extend(
                [p for p in ready[1:] if not p.msg.solo and (p.msg.space, p.msg.proxies, p.msg.config) == same][
                    : self.s.batch_size - 1
                ]
            )
        taken = {id(p) for p in batch}
        self.buffers[lane] = [p for p in buffered if id(p) not in taken]
        return batch

    def _drain_results(self, timeout: float) -> None:
        for batch, records, error in self.pool.poll(timeout):
            if error is None and records is not None:
                self.uncommitted.append((batch, records))  # committed (then acked) at the next step
            elif error is not None and (error.transient or len(batch) > 1):
                self.metrics.batches_failed.labels(error.code).inc()
                self._retry(batch, error)  # a deterministic batch failure is split to find the arch at fault
            else:
                if error is not None:
                    self.metrics.batches_failed.labels(error.code).inc()
                self._fail(batch[0], error.line if error else "internal: the actor returned nothing")

    # outcomes -----------------------------------------------------------------------------------
    def _commit(self, batch: list[Pending], records: list[dict[str, Any]]) -> None:
        """Store the scores, fail input errors at once, retry transient ones; then ack."""
        by_arch = {p.msg.arch: p for p in batch}
        rows, failed = [], []
        retry: dict[str, list[str]] = {}
        for rec in records:
            p = by_arch[rec["arch"]]
            key = p.keys[rec["proxy"]]
            if rec["error"] and is_transient(code_of(rec["error"]) or ""):
                retry.setdefault(p.msg.arch, []).append(rec["proxy"])
            elif rec["error"]:
                failed.append((key, rec["error"]))
                self.metrics.failed.labels(rec["proxy"], code_of(rec["error"]) or "internal").inc()
            else:
                rows.append(score_row(p.msg, key, rec))
        self.store.insert_scores(rows)
        for key, err in failed:
            self.store.mark_failed([key], err)
            log.warning("task failed (not retried): %s", err)
        self.scored += len(rows)
        for row in rows:
            self.metrics.completed.labels(row["proxy"]).inc()
            self.metrics.duration.labels(row["proxy"]).observe(row["seconds"])
        again = [p for p in batch if p.msg.arch in retry]
        for p in again:
            p.msg = p.msg.only(tuple(q for q in p.msg.proxies if q in retry[p.msg.arch]))
        if again:
            first_error = next(r["error"] for r in records if r["arch"] in retry and r["error"])
            self._retry(again, Classified(code_of(first_error) or "internal", first_error.split(": ", 1)[-1]))
        self._ack([p for p in batch if p not in again])

    def _retry(self, batch: list[Pending], error: Classified) -> None:
        """Re-enqueue each arch of a failed batch to be scored alone, after a backoff; attempts carry over."""
        pipe = self.r.pipeline(transaction=False)
        if error.code == "requeued":  # it never ran: back to the stream as it was, the attempt not charged
            for p in batch:
                attempts = int(self.r.hget(self.names.attempts, p.msg.task_id) or 1)
                pipe.xadd(p.lane, p.msg.fields())
                pipe.hset(self.names.attempts, p.msg.task_id, attempts - 1)
                pipe.xack(p.lane, GROUP, p.entry_id)
            pipe.execute()
            return
        log.warning("batch of %d failed (%s); retrying each arch alone", len(batch), error.line)
        self.metrics.retried.labels(error.code).inc(len(batch))
        for p in batch:
            attempts = int(self.r.hget(self.names.attempts, p.msg.task_id) or 1)
            delay = 0.0 if not error.transient else min(self.s.retry_backoff_s * 2 ** (attempts - 1), 30.0)
            solo = p.msg.only(p.msg.proxies, solo=True, not_before=time.time() + delay)
            pipe.hset(self.names.errors, solo.task_id, error.line)
            pipe.xadd(p.lane, solo.fields())  # back into its own lane: retries keep their user's share
            pipe.hset(self.names.attempts, solo.task_id, attempts)
            pipe.xack(p.lane, GROUP, p.entry_id)
        pipe.execute()

    def _fail(self, p: Pending, error: str) -> None:
        """An input error of one arch: fail its tasks at once (never retried) and ack."""
        self.store.mark_failed(p.keys.values(), error)
        log.warning("task %s failed (not retried): %s", p.entry_id, error)
        for proxy in p.msg.proxies:
            self.metrics.failed.labels(proxy, code_of(error) or "internal").inc()
        self._ack([p])

    def _dead_letter(self, p: Pending) -> None:
        raw = self.r.hget(self.names.errors, p.msg.task_id)
        last = raw.decode() if isinstance(raw, bytes) else (raw or "internal: exceeded max deliveries")
        error = error_line(
            code_of(last) or "internal", f"{last.split(': ', 1)[-1]} (gave up after {self.s.max_deliveries} attempts)"
        )
        self.r.xadd(self.names.dead, {**p.msg.fields(), "entry": p.entry_id, "lane": p.lane, "error": error[:2000]})
        self.store.mark_failed(p.keys.values(), error)
        log.error("dead-lettered %s: %s", p.msg.arch, error)
        self.metrics.dead_letters.inc()
        for proxy in p.msg.proxies:
            self.metrics.failed.labels(proxy, code_of(error) or "internal").inc()
        self._ack([p])

    def _ack(self, batch: list[Pending]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for p in batch:
            pipe.xack(p.lane, GROUP, p.entry_id)
            pipe.hdel(self.names.attempts, p.msg.task_id)
            pipe.hdel(self.names.errors, p.msg.task_id)
        pipe.execute()

    # reconciliation -----------------------------------------------------------------------------
    def reconcile(self) -> int:
        """Finish complete jobs and re-enqueue (into their lanes) the missing tasks of jobs whose marker is gone."""
        return reconcile(self.store, self.r, self.names, self.consumer, self.s.reconcile_interval_s)
