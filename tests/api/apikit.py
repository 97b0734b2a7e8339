"""Serve the real API app over HTTP for tests: uvicorn thread, real Redis (unique key prefix), SQLite file."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

REDIS_URL = os.environ.get("ZCSCORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running API: its base URL, settings and an HTTP client."""

    url: str
    settings: object
    client: httpx.Client
    redis: redis.Redis


def serve(tmp: Path, **overrides: object) -> Iterator[Server]:
    """Run ``create_app(settings)`` under uvicorn in a thread until the generator is closed."""
    import uvicorn

    from zcscore.api.app import create_app
    from zcscore.settings import Settings

    r = redis.Redis.from_url(REDIS_URL)
    try:
        r.ping()
    except redis.ConnectionError:
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    prefix = f"zcstest-{uuid.uuid4().hex[:10]}"
    settings = Settings(
        home=tmp, database_url=f"sqlite:///{tmp / 'api.db'}", redis_url=REDIS_URL, redis_prefix=prefix, **overrides
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=30) as client:
        yield Server(url, settings, client, r)
    server.should_exit = True
    thread.join(timeout=10)
    keys = list(r.scan_iter(match=f"{prefix}:*"))
    if keys:
        r.delete(*keys)


def random_arch(i: int) -> str:
    """A distinct valid arch per integer (base-5 digits as ops)."""
    ops = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    d = [(i // 5**k) % 5 for k in range(6)]
    o = [ops[x] for x in d]
    return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"


def store_scores(api, archs: list[str], proxy: str, values: list[float], seed: int = 0) -> None:
    """Insert scores of ``proxy`` for NB201 ``archs`` straight into the API's store, keyed as a job would be."""
    from zcscore.numerics import Numerics
    from zcscore.proxies.catalog import get_spec
    from zcscore.spaces.nb201 import NB201Arch
    from zcscore.storage.keys import cache_key_for, encode_score, job_config, proxy_config_hash
    from zcscore.storage.store import open_store

    store = open_store(api.settings.database_url)
    cfg_hash = proxy_config_hash(get_spec(proxy), job_config(seed, 10, Numerics.resolve()))
    rows = []
    for arch, value in zip(archs, values):
        a = NB201Arch.parse(arch)
        v, kind = encode_score(value)
        rows.append(
            {
                "cache_key": cache_key_for(a.canonical_hash(), proxy, 1, cfg_hash),
                "space": "nb201",
                "arch": a.canonical().to_str(),
                "arch_hash": a.canonical_hash(),
                "proxy": proxy,
                "proxy_version": 1,
                "config_hash": cfg_hash,
                "seed": seed,
                "value": v,
                "kind": kind,
                "components": {},
                "provenance": {"seed": seed, "stored_by": "test"},
                "seconds": 0.01,
            }
        )
    store.insert_scores(rows)
