"""Faults: a dispatcher killed -9, a Ray actor killed mid-arch, Redis restarted, a stuck arch timing out.

One cluster for the module: our own redis-server (on a free port, restarted by a test), a Ray head, the API
and two dispatchers, all started (and ended, by pid) here, on a fresh PostgreSQL database (the cluster
configuration: Postgres + Redis). Archs come from
the toy space plugin (tests/plugins), whose ``wait150`` op makes each arch take 0.15 s to build and whose
``stall`` op hangs: the fault hooks live in a test plugin, not in the product's settings.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

import httpx
import pytest
import redis
from kit import all_scores, free_port, pg_database, start, stop, stop_all, wait_http, wait_job, zcscore
from zcs_toy_space import ToySpace, chain

SPACE = ToySpace()
STALL = "stall-c3"
PROXIES = ["params", "flops"]


def slow_arch(i: int) -> str:
    """A distinct toy arch that takes 0.15 s to build."""
    return chain(i, prefix="wait150")


@dataclass
class Cluster:
    tmp: Path
    env: dict[str, str]
    redis_port: int
    client: httpx.Client
    procs: dict[str, Popen[bytes]] = field(default_factory=dict)

    @property
    def redis(self) -> redis.Redis:
        return redis.Redis(port=self.redis_port, socket_timeout=5)

    def start_redis(self) -> None:
        self.procs["redis"] = start(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            {},
            self.tmp / "redis.log",
        )
        for _ in range(100):
            try:
                if self.redis.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def start_dispatcher(self, name: str) -> None:
        self.procs[name] = start(
            zcscore("dispatcher", "--workers", "1", "--consumer", name), self.env, self.tmp / f"{name}.log"
        )

    def submit(self, archs: list[str], proxies: list[str] = PROXIES) -> str:
        resp = self.client.post("/v1/jobs", json={"space": "toy", "archs": archs, "proxies": proxies})
        assert resp.status_code == 202, resp.text
        return str(resp.json()["id"])

    def wait_progress(self, job_id: str, done: int, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while self.client.get(f"/v1/jobs/{job_id}").json()["done"] < done:
            assert time.time() < deadline, "no progress"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("faults")
    redis_port, ray_port, api_port = free_port(), free_port(), free_port()
    db_url, drop_db = pg_database()
    env = {
        "ZCSCORE_HOME": str(tmp / "home"),
        "ZCSCORE_DATABASE_URL": db_url,
        "ZCSCORE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "ZCSCORE_REDIS_PREFIX": f"zcsf-{uuid.uuid4().hex[:8]}",
        "ZCSCORE_RAY_ADDRESS": f"127.0.0.2:{ray_port}",
        "ZCSCORE_THREADS": "1",
        "ZCSCORE_BATCH_SIZE": "4",
        "ZCSCORE_CLAIM_IDLE_S": "3",
        "ZCSCORE_RECONCILE_INTERVAL_S": "2",
        "ZCSCORE_PLUGINS": '["zcs_toy_space"]',
        "ZCSCORE_ARCH_TIMEOUT_S": "6",  # a fresh actor's first call under a loaded CI machine can take 4 s
        "ZCSCORE_MAX_DELIVERIES": "2",
        "ZCSCORE_CPUS_PER_WORKER": "0.5",
        "RAY_AUTH_MODE": "disabled",  # a throwaway loopback cluster; real clusters keep Ray's token auth
    }
    c = Cluster(tmp, env, redis_port, httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=30))
    try:
        c.start_redis()
        c.procs["ray"] = start(
            [
                "ray",
                "start",
                "--head",
                "--block",
                f"--port={ray_port}",
                "--num-cpus=2",
                "--node-ip-address=127.0.0.2",  # Ray maps 127.0.0.1 to the host's IP; this stays on lo
                "--include-dashboard=false",
                "--disable-usage-stats",
                f"--temp-dir={tmp / 'ray'}",  # keeps /tmp/ray/ray_current_cluster untouched
            ],
            {"RAY_AUTH_MODE": "disabled", "ZCSCORE_PLUGINS": '["zcs_toy_space"]'},
            tmp / "ray.log",
        )
        c.procs["api"] = start(zcscore("api", "--port", str(api_port)), env, tmp / "api.log")
        wait_http(f"http://127.0.0.1:{api_port}/healthz", proc=c.procs["api"])
        time.sleep(3)  # let the Ray head come up before the drivers connect
        c.start_dispatcher("dA")
        c.start_dispatcher("dB")
        yield c
    finally:
        stop_all([c.procs[n] for n in ("dA", "dB", "dC", "api") if n in c.procs])
        stop_all([c.procs[n] for n in ("ray", "redis") if n in c.procs])
        c.client.close()
        drop_db()
        current = Path("/tmp/ray/ray_current_cluster")  # `ray start` may point plain ray.init() at our head
        if current.exists() and current.read_text().strip().endswith(f":{ray_port}"):
            current.unlink()


def assert_complete(c: Cluster, job_id: str, archs: list[str]) -> None:
    status = wait_job(c.client, job_id)
    n = len(archs) * len(PROXIES)
    assert status["status"] == "done" and (status["done"], status["failed"], status["total"]) == (n, 0, n), status
    rows = all_scores(c.client, job_id)
    assert len(rows) == n and all(r["status"] == "done" for r in rows)
    exported = list(
        csv.DictReader(io.StringIO(c.client.get("/v1/export", params={"format": "csv", "space": "toy"}).text))
    )
    canon = {SPACE.encode(SPACE.canonical(SPACE.parse(a))) for a in archs}
    for proxy in PROXIES:  # exactly one stored score per arch x proxy
        mine = [r for r in exported if r["proxy"] == proxy and r["arch"] in canon]
        assert len(mine) == len(canon)


def test_dispatcher_killed_mid_job(cluster: Cluster) -> None:
    archs = [slow_arch(100 + i) for i in range(40)]
    job = cluster.submit(archs)
    cluster.wait_progress(job, 10)
    stop(cluster.procs["dA"], signal.SIGKILL)  # kill -9 while it holds pending entries
    assert_complete(cluster, job, archs)
    cluster.start_dispatcher("dC")


def test_actor_killed_mid_arch(cluster: Cluster) -> None:
    archs = [slow_arch(300 + i) for i in range(30)]
    job = cluster.submit(archs)
    cluster.wait_progress(job, 4)
    actors = {
        k.decode(): int(v) for k, v in cluster.redis.hgetall(f"{cluster.env['ZCSCORE_REDIS_PREFIX']}:actors").items()
    }
    pid = actors["dB-0"]
    os.kill(pid, signal.SIGKILL)  # the actor process of a dispatcher we started
    assert_complete(cluster, job, archs)
    new = int(cluster.redis.hget(f"{cluster.env['ZCSCORE_REDIS_PREFIX']}:actors", "dB-0"))
    assert new != pid  # the pool replaced it


def test_redis_restart_mid_job(cluster: Cluster) -> None:
    archs = [slow_arch(500 + i) for i in range(30)]
    job = cluster.submit(archs)
    cluster.wait_progress(job, 4)
    stop(cluster.procs["redis"], signal.SIGKILL)  # no persistence: the stream and group are gone
    time.sleep(1)
    cluster.start_redis()
    assert_complete(cluster, job, archs)


def test_stuck_arch_times_out_and_is_dead_lettered(cluster: Cluster) -> None:
    archs = [STALL, slow_arch(700), slow_arch(701)]
    job = cluster.submit(archs, ["params"])
    status = wait_job(cluster.client, job, timeout=120)
    assert (status["status"], status["done"], status["failed"]) == ("failed", 2, 1)
    rows = all_scores(cluster.client, job)
    assert rows[0]["status"] == "failed" and rows[0]["error"].startswith("timeout: ")
    assert "\x1b[" not in rows[0]["error"] and "RayTaskError" not in rows[0]["error"]
    assert status["failures"] == {"timeout": 1}
    assert cluster.redis.xlen(f"{cluster.env['ZCSCORE_REDIS_PREFIX']}:dead") >= 1
