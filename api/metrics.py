"""Prometheus metrics of the API (one registry per app, so tests can build several apps).

``/metrics`` renders the app's registry and then prometheus_client's process-global ``REGISTRY`` (process
metrics, and in ``zcscore serve`` the dispatcher's, which runs in the same process); a family already
rendered from the app's registry is not repeated.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector


class _Merged(Collector):
    """The families of several registries, each name once (the first registry that has it wins)."""

    def __init__(self, registries: Iterable[CollectorRegistry]) -> None:
        self._registries = tuple(registries)

    def collect(self) -> Iterator[Metric]:
        seen: set[str] = set()
        for registry in self._registries:
            for family in registry.collect():
                if family.name not in seen:
                    seen.add(family.name)
                    yield family


class Metrics:
    """Counters and gauges exported at ``/metrics`` (standard Prometheus names: ``_total``, ``_seconds``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "zcscore_http_requests_total", "HTTP requests answered", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "zcscore_http_request_duration_seconds", "HTTP request latency", ["method", "route"], registry=r
        )
        self.jobs = Counter("zcscore_jobs_submitted_total", "jobs created", registry=r)
        self.tasks = Counter("zcscore_tasks_submitted_total", "arch x proxy tasks submitted", registry=r)
        self.cached = Counter("zcscore_tasks_cached_total", "tasks answered from the store at submission", registry=r)
        self.queue = Gauge("zcscore_queue_length", "entries in the task stream (acked ones included)", registry=r)
        self.waiting = Gauge("zcscore_queue_waiting", "entries no dispatcher has read yet", registry=r)
        self.pending = Gauge("zcscore_queue_pending", "entries delivered but not acked", registry=r)
        self.dead = Gauge("zcscore_queue_dead_letters", "entries in the dead-letter stream", registry=r)
        self.exposition = CollectorRegistry(auto_describe=False)
        self.exposition.register(_Merged((self.registry, REGISTRY)))
