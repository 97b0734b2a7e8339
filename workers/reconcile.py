"""The reconciler: the store is the source of truth, the lanes are rebuilt from it when Redis lost them.

One at a time across dispatchers (a Redis lock). For each unfinished job: finish it when every task is done
or failed; otherwise, when its "enqueued" marker is gone (e.g. Redis lost its data), re-enqueue what the
store says is missing into the job's own lane (its owner and priority are stored with the job). Torch- and
Ray-free.
"""

from __future__ import annotations

import logging

import redis

from zcscore.storage.store import SqlStore
from zcscore.workers.jobs import enqueue_missing
from zcscore.workers.streams import Names

log = logging.getLogger(__name__)


def reconcile(store: SqlStore, r: redis.Redis, names: Names, holder: str, lock_s: float) -> int:
    """One pass (skipped while another holder has the lock); returns task messages re-enqueued."""
    if not r.set(names.reconcile_lock, holder, nx=True, ex=max(int(lock_s), 1)):
        return 0
    requeued = 0
    for job_id in store.unfinished_jobs():
        prog = store.progress(job_id)
        if prog is None:
            continue
        if prog.done + prog.failed >= prog.total:
            store.mark_finished(job_id)
            r.delete(names.enqueued(job_id))
            continue
        if r.exists(names.enqueued(job_id)):
            continue
        sent = enqueue_missing(store, r, names, job_id)
        requeued += sent
        if sent:
            log.info("reconciler re-enqueued %d archs of job %s", sent, job_id)
    return requeued
