"""PostgreSQL restarted mid-job: the dispatcher rides it out and nothing is lost or stored twice.

Runs our own PostgreSQL server (initdb into a temp dir, as the `postgres` system user when run as root, on
a free port) so restarting it disturbs nothing else; Redis is the machine's, under a unique key prefix.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kit import REDIS_URL, free_port, start, stop, stored_once, wait_done, wait_http, wait_job, zcscore
from zcs_toy_space import ToySpace, chain

SPACE = ToySpace()


def pg_bin(name: str) -> str:
    """A PostgreSQL server binary (they live outside PATH on Debian)."""
    found = shutil.which(name)
    if found:
        return found
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / name).exists():
            return str(base / name)
    pytest.skip(f"PostgreSQL server binaries ({name}) not installed")


class OwnPostgres:
    """A throwaway PostgreSQL cluster in ``root``; start/stop with pg_ctl."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.data = root / "pgdata"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        root.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(root, "postgres")
            os.chmod(root, 0o755)
        self.run(pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    def ctl(self, action: str) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        extra = ["-o", opts, "-l", str(self.root / "pg.log")] if action == "start" else ["-m", "fast"]
        self.run(pg_bin("pg_ctl"), "-D", str(self.data), "-w", "-t", "60", action, *extra)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnPostgres]:
    if os.geteuid() == 0 and subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
        pytest.skip("running as root without a postgres system user for initdb")
    pg = OwnPostgres(Path(f"/tmp/zcs-pg-{uuid.uuid4().hex[:8]}"))
    pg.ctl("start")
    try:
        yield pg
    finally:
        subprocess.run(
            [*pg.as_user, pg_bin("pg_ctl"), "-D", str(pg.data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(pg.root, ignore_errors=True)


def test_postgres_restart_mid_job(postgres: OwnPostgres, tmp_path: Path) -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.ConnectionError:
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    port = free_port()
    env = {
        "ZCSCORE_HOME": str(tmp_path / "home"),
        "ZCSCORE_DATABASE_URL": postgres.url,
        "ZCSCORE_REDIS_URL": REDIS_URL,
        "ZCSCORE_REDIS_PREFIX": f"zcspg-{uuid.uuid4().hex[:8]}",
        "ZCSCORE_PLUGINS": '["zcs_toy_space"]',
        "ZCSCORE_RECONCILE_INTERVAL_S": "1",
    }
    archs = [chain(i, prefix="wait150") for i in range(40)]
    proc = start(zcscore("serve", "--port", str(port), "--ray-cpus", "1"), env, tmp_path / "serve.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            job = client.post("/v1/jobs", json={"space": "toy", "archs": archs, "proxies": ["params", "flops"]})
            assert job.status_code == 202, job.text
            job_id = job.json()["id"]
            wait_done(client, job_id, 6)
            postgres.ctl("stop")
            time.sleep(3)  # the dispatcher keeps scoring, then fails to commit and must hold on to its work
            assert client.get("/healthz").status_code == 503
            postgres.ctl("start")
            status = wait_job(client, job_id, timeout=120)
            assert (status["status"], status["done"], status["failed"]) == ("done", 80, 0), status
            stored_once(
                client, "toy", archs, ["params", "flops"], lambda a: SPACE.encode(SPACE.canonical(SPACE.parse(a)))
            )
        assert proc.poll() is None  # the service rode it out
    finally:
        stop(proc)
