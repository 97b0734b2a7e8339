"""Prometheus metrics of the API (one registry per app, so tests can build several apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Counters and gauges exported at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("zcscore_http_requests", "HTTP requests", ["method", "route", "status"], registry=r)
        self.latency = Histogram("zcscore_http_seconds", "HTTP request latency", ["route"], registry=r)
        self.jobs = Counter("zcscore_jobs_submitted", "jobs created", registry=r)
        self.tasks = Counter("zcscore_tasks_submitted", "arch x proxy tasks submitted", registry=r)
        self.cached = Counter("zcscore_tasks_cached", "tasks answered from the store at submission", registry=r)
        self.queue = Gauge("zcscore_queue_length", "entries in the task stream", registry=r)
        self.pending = Gauge("zcscore_queue_pending", "entries delivered but not acked", registry=r)
        self.dead = Gauge("zcscore_dead_letters", "entries in the dead-letter stream", registry=r)
