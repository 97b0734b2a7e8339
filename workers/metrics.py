"""Prometheus metrics of the dispatcher and its actor pool, in prometheus_client's process-global ``REGISTRY``.

Registered once per process (:func:`worker_metrics`), so ``zcscore serve`` (API and dispatcher in one
process) renders them next to the API's, and ``zcscore dispatcher`` serves them on
``ZCSCORE_METRICS_PORT`` (:func:`serve_metrics`). Counters count what this process did; the queue-depth
gauge is a snapshot of Redis (every dispatcher exports the same values). No name here is also a name (or a
counter's family name) of the API's own metrics (``api/metrics.py``), so both can share one registry.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# scoring takes from a millisecond (params) to minutes (a large network on CPU)
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_LOCK = threading.Lock()
_METRICS: dict[int, WorkerMetrics] = {}


@dataclass(frozen=True)
class WorkerMetrics:
    """The dispatcher's metrics (names follow Prometheus conventions: ``_total`` counters, ``_seconds``)."""

    completed: Counter  # zcscore_tasks_completed_total{proxy}
    failed: Counter  # zcscore_tasks_failed_total{proxy,code}
    retried: Counter  # zcscore_tasks_retried_total{code}
    duration: Histogram  # zcscore_proxy_duration_seconds{proxy}
    dead_letters: Counter  # zcscore_tasks_dead_lettered_total
    actor_restarts: Counter  # zcscore_actor_restarts_total{reason}
    batches: Counter  # zcscore_batches_total
    batches_failed: Counter  # zcscore_batches_failed_total{code}
    dispatched: Counter  # zcscore_archs_dispatched_total{user,priority}
    queue_depth: Gauge  # zcscore_queue_depth{user}

    @classmethod
    def create(cls, registry: CollectorRegistry) -> WorkerMetrics:
        """Create and register every metric in ``registry``."""
        r = registry
        return cls(
            completed=Counter("zcscore_tasks_completed", "scores computed and stored", ["proxy"], registry=r),
            failed=Counter(
                "zcscore_tasks_failed",
                "tasks failed for good (input error or dead letter)",
                ["proxy", "code"],
                registry=r,
            ),
            retried=Counter("zcscore_tasks_retried", "archs re-enqueued after a failure", ["code"], registry=r),
            duration=Histogram(
                "zcscore_proxy_duration_seconds",
                "scoring time of one arch x proxy (the record's seconds)",
                ["proxy"],
                buckets=DURATION_BUCKETS,
                registry=r,
            ),
            dead_letters=Counter("zcscore_tasks_dead_lettered", "tasks moved to the dead-letter stream", registry=r),
            actor_restarts=Counter(
                "zcscore_actor_restarts",
                "scoring actors replaced (died, timed out, failed to start)",
                ["reason"],
                registry=r,
            ),
            batches=Counter("zcscore_batches", "actor calls submitted", registry=r),
            batches_failed=Counter(
                "zcscore_batches_failed", "actor calls that failed as a whole", ["code"], registry=r
            ),
            dispatched=Counter(
                "zcscore_archs_dispatched", "archs sent to actors, by lane", ["user", "priority"], registry=r
            ),
            queue_depth=Gauge(
                "zcscore_queue_depth", "task messages waiting in a user's lanes (lag + pending)", ["user"], registry=r
            ),
        )


def worker_metrics(registry: CollectorRegistry | None = None) -> WorkerMetrics:
    """The metrics registered in ``registry`` (default: the global ``REGISTRY``), created on first use."""
    reg = REGISTRY if registry is None else registry
    with _LOCK:
        found = _METRICS.get(id(reg))
        if found is None:
            found = _METRICS[id(reg)] = WorkerMetrics.create(reg)
        return found


def serve_metrics(port: int, addr: str = "127.0.0.1") -> None:
    """Serve the global registry over HTTP (``GET /metrics``) from a daemon thread."""
    worker_metrics()
    start_http_server(port, addr=addr)
