"""The dispatcher: Redis Stream (consumer group) -> pool of Ray actors -> store -> XACK.

Delivery is at-least-once and the store makes it exactly-once: scores are unique by cache key and
inserted with ``ON CONFLICT DO NOTHING``, and a message whose scores already exist is acked unscored.
Every start of a task increments its attempt counter; past ``max_deliveries`` it goes to the dead-letter
stream and its job tasks are marked failed. Entries left pending by a dead dispatcher are reclaimed with
XAUTOCLAIM; a live dispatcher refreshes its own in-flight entries so they are not stolen. A failed batch
is split: each arch is re-enqueued to be scored alone. The reconciler (one at a time, under a Redis
lock) re-enqueues what the store says is missing whenever a job's "enqueued" marker is gone, e.g.
after Redis lost its data.
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
from zcscore.workers.jobs import enqueue_missing
from zcscore.workers.pool import ActorPool
from zcscore.workers.streams import GROUP, Names, TaskMessage, ensure_group

log = logging.getLogger(__name__)
UNWANTED_CHECK_S = 0.5  # how often buffered work is checked against cancelled jobs (one query)


@dataclass
class Pending:
    """A message read from the stream, with its cache keys."""

    entry_id: str
    msg: TaskMessage
    keys: dict[str, str]  # proxy -> cache key


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


class Dispatcher:
    """Moves tasks from the stream to the actors and results to the store."""

    def __init__(
        self, settings: Settings, store: SqlStore, r: redis.Redis, pool: ActorPool, consumer: str | None = None
    ) -> None:
        self.s = settings
        self.store = store
        self.r = r
        self.pool = pool
        self.names = Names(settings.redis_prefix)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.buffer: list[Pending] = []
        self.uncommitted: list[tuple[list[Pending], list[dict[str, Any]]]] = []  # scored, store was down
        self._next = {"claim": 0.0, "refresh": 0.0, "reconcile": 0.0, "unwanted": 0.0}
        self._store_down = False
        self.scored = 0

    # main loop ----------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set; survives Redis outages (retries until it is back)."""
        log.debug("dispatcher %s started", self.consumer)
        group_ok = False
        while not stop.is_set():
            try:
                if not group_ok:
                    ensure_group(self.r, self.names)
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
        if now >= self._next["claim"]:
            self._next["claim"] = now + max(self.s.claim_idle_s / 2, 0.5)
            self._autoclaim()
        if now >= self._next["refresh"]:
            self._next["refresh"] = now + max(self.s.claim_idle_s / 3, 0.5)
            self._refresh_inflight()
        if now >= self._next["reconcile"]:
            self._next["reconcile"] = now + self.s.reconcile_interval_s
            self.reconcile()
        free = self.pool.free()
        want = len(free) * self.s.batch_size - len(self.buffer)
        if free and want > 0:
            block = 0 if self.pool.busy() or self.buffer else 500
            self._read(want, block)
        self._assign()
        self._drain_results(0.05 if self.pool.busy() else 0.0)
        if self._store_down:  # a whole step went through
            log.info("store is back; held results committed")
            self._store_down = False

    def _read(self, count: int, block_ms: int) -> None:
        resp = self.r.xreadgroup(GROUP, self.consumer, {self.names.tasks: ">"}, count=count, block=block_ms or None)
        streams = cast("list[list[Any]]", resp or [])  # RESP2 reply: [[stream, [(id, fields), ...]], ...]
        entries = [(eid, f) for _, items in streams for eid, f in items]
        self._accept(entries)

    def _autoclaim(self) -> None:
        idle_ms = int(self.s.claim_idle_s * 1000)
        start = "0-0"
        while True:
            res = self.r.xautoclaim(self.names.tasks, GROUP, self.consumer, idle_ms, start_id=start, count=100)
            start, entries = res[0], res[1]
            entries = [(eid, f) for eid, f in entries if f]
            if entries:
                log.info("reclaimed %d stale entries", len(entries))
                self._accept(entries)
            if start in (b"0-0", "0-0"):
                break

    def _refresh_inflight(self) -> None:
        """Reset the idle time of our own pending entries so no one reclaims live work."""
        ids: list[StreamIdT] = [p.entry_id for p in self.buffer]
        ids.extend(p.entry_id for batch, _ in self.uncommitted for p in batch)
        for batch in self.pool.in_flight():
            ids.extend(p.entry_id for p in batch)
        if ids:
            self.r.xclaim(self.names.tasks, GROUP, self.consumer, 0, ids, justid=True)

    def _accept(self, entries: list[tuple[Any, dict[Any, Any]]]) -> None:
        """Skip scored or unwanted (cancelled) work, count attempts, dead-letter exhausted tasks, buffer the rest."""
        if not entries:
            return
        pending = []
        for eid, fields in entries:
            eid = eid.decode() if isinstance(eid, bytes) else eid
            try:
                msg = TaskMessage.from_fields(fields)
                pending.append(Pending(eid, msg, dict(msg.keys)))
            except Exception as exc:  # malformed entry: dead-letter it
                self.r.xadd(self.names.dead, {"entry": eid, "error": f"malformed: {exc}"})
                self.r.xack(self.names.tasks, GROUP, eid)
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
                self.buffer.append(p)

    def _drop_unwanted(self) -> None:
        """Ack buffered work that no job waits for any more (a job cancelled after its tasks were read)."""
        if not self.buffer:
            return
        live = self.store.live_keys([k for p in self.buffer for k in p.keys.values()])
        kept = []
        for p in self.buffer:
            left = tuple(q for q in p.msg.proxies if p.keys[q] in live)
            if not left:
                self._ack([p])
                continue
            if left != p.msg.proxies:
                p.msg = p.msg.only(left)
                p.keys = dict(p.msg.keys)
            kept.append(p)
        self.buffer = kept

    def _assign(self) -> None:
        now = time.time()
        if self.pool.free() and time.monotonic() >= self._next["unwanted"]:
            self._next["unwanted"] = time.monotonic() + UNWANTED_CHECK_S
            self._drop_unwanted()
        for slot in self.pool.free():
            ready = [p for p in self.buffer if p.msg.not_before <= now]  # retries wait out their backoff
            if not ready:
                return
            first = ready[0]
            self.buffer.remove(first)
            batch = [first]
            if not first.msg.solo:
                same = [
                    p
                    for p in ready[1:]
                    if not p.msg.solo
                    and (p.msg.space, p.msg.proxies, p.msg.config)
                    == (first.msg.space, first.msg.proxies, first.msg.config)
                ][: self.s.batch_size - 1]
                for p in same:
                    self.buffer.remove(p)
                batch.extend(same)
            timeout = self.s.arch_timeout_s * len(batch)
            msg = first.msg
            archs = [p.msg.arch for p in batch]
            self.pool.submit(
                slot, batch, msg.space, msg.proxies, msg.config, archs, timeout, [p.entry_id for p in batch]
            )

    def _drain_results(self, timeout: float) -> None:
        for batch, records, error in self.pool.poll(timeout):
            if error is None and records is not None:
                self.uncommitted.append((batch, records))  # committed (then acked) at the next step
            elif error is not None and (error.transient or len(batch) > 1):
                self._retry(batch, error)  # a deterministic batch failure is split to find the arch at fault
            else:
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
            else:
                rows.append(score_row(p.msg, key, rec))
        self.store.insert_scores(rows)
        for key, err in failed:
            self.store.mark_failed([key], err)
            log.warning("task failed (not retried): %s", err)
        self.scored += len(rows)
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
                pipe.xadd(self.names.tasks, p.msg.fields())
                pipe.hset(self.names.attempts, p.msg.task_id, attempts - 1)
                pipe.xack(self.names.tasks, GROUP, p.entry_id)
            pipe.execute()
            return
        log.warning("batch of %d failed (%s); retrying each arch alone", len(batch), error.line)
        for p in batch:
            attempts = int(self.r.hget(self.names.attempts, p.msg.task_id) or 1)
            delay = 0.0 if not error.transient else min(self.s.retry_backoff_s * 2 ** (attempts - 1), 30.0)
            solo = p.msg.only(p.msg.proxies, solo=True, not_before=time.time() + delay)
            pipe.hset(self.names.errors, solo.task_id, error.line)
            pipe.xadd(self.names.tasks, solo.fields())
            pipe.hset(self.names.attempts, solo.task_id, attempts)
            pipe.xack(self.names.tasks, GROUP, p.entry_id)
        pipe.execute()

    def _fail(self, p: Pending, error: str) -> None:
        """An input error of one arch: fail its tasks at once (never retried) and ack."""
        self.store.mark_failed(p.keys.values(), error)
        log.warning("task %s failed (not retried): %s", p.entry_id, error)
        self._ack([p])

    def _dead_letter(self, p: Pending) -> None:
        raw = self.r.hget(self.names.errors, p.msg.task_id)
        last = raw.decode() if isinstance(raw, bytes) else (raw or "internal: exceeded max deliveries")
        error = error_line(
            code_of(last) or "internal", f"{last.split(': ', 1)[-1]} (gave up after {self.s.max_deliveries} attempts)"
        )
        self.r.xadd(self.names.dead, {**p.msg.fields(), "entry": p.entry_id, "error": error[:2000]})
        self.store.mark_failed(p.keys.values(), error)
        log.error("dead-lettered %s: %s", p.msg.arch, error)
        self._ack([p])

    def _ack(self, batch: list[Pending]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for p in batch:
            pipe.xack(self.names.tasks, GROUP, p.entry_id)
            pipe.hdel(self.names.attempts, p.msg.task_id)
            pipe.hdel(self.names.errors, p.msg.task_id)
        pipe.execute()

    # reconciliation -----------------------------------------------------------------------------
    def reconcile(self) -> int:
        """Finish complete jobs and re-enqueue the missing tasks of jobs whose marker is gone."""
        if not self.r.set(
            self.names.reconcile_lock, self.consumer, nx=True, ex=max(int(self.s.reconcile_interval_s), 1)
        ):
            return 0
        requeued = 0
        for job_id in self.store.unfinished_jobs():
            prog = self.store.progress(job_id)
            if prog is None:
                continue
            if prog.done + prog.failed >= prog.total:
                self.store.mark_finished(job_id)
                self.r.delete(self.names.enqueued(job_id))
                continue
            if self.r.exists(self.names.enqueued(job_id)):
                continue
            sent = enqueue_missing(self.store, self.r, self.names, job_id)
            requeued += sent
            if sent:
                log.info("reconciler re-enqueued %d archs of job %s", sent, job_id)
        return requeued
