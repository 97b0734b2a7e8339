"""Process helpers for service tests: start/stop our own processes by pid, fresh Postgres databases."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

PG_URL = os.environ.get("ZCSCORE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ZCSCORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], env: dict[str, str | None], log: Path) -> subprocess.Popen[bytes]:
    """Start a process of ours (own session, so its children can be ended with it); ``None`` unsets a variable."""
    fh = open(log, "ab")  # noqa: SIM115 (kept open for the process' lifetime)
    full = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    return subprocess.Popen(args, env=full, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, wait: float = 20) -> None:
    """End a process we started, and its process group, by id."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def stop_all(procs: list[subprocess.Popen[bytes]], wait: float = 20) -> None:
    """End several processes of ours at once (signal all, then wait): teardown costs the slowest, not the sum."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.time() + wait
    for proc in procs:
        try:
            proc.wait(max(deadline - time.time(), 0.1))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def zcscore(*args: str) -> list[str]:
    """Command line of the zcscore CLI in this interpreter."""
    return [sys.executable, "-m", "zcscore.cli", *args]


def wait_http(url: str, timeout: float = 120, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until GET url answers 200."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(url)


def wait_job(client: httpx.Client, job_id: str, timeout: float = 180) -> dict:
    """Poll a job until done or failed (answers other than 200, e.g. while a database restarts, are polled past)."""
    deadline = time.time() + timeout
    status: dict = {}
    while time.time() < deadline:
        try:
            resp = client.get(f"/v1/jobs/{job_id}")
        except httpx.HTTPError:
            resp = None
        if resp is not None and resp.status_code == 200:
            status = resp.json()
            if status["status"] in ("done", "failed"):
                return status
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} still {status}")


def wait_done(client: httpx.Client, job_id: str, done: int, timeout: float = 60) -> None:
    """Wait until at least ``done`` tasks of a job are stored."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        resp = client.get(f"/v1/jobs/{job_id}")
        if resp.status_code == 200 and resp.json()["done"] >= done:
            return
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} did not reach {done} done tasks")


def stored_once(client: httpx.Client, space: str, archs: list[str], proxies: list[str], canonical) -> None:
    """Assert that the store holds exactly one score per canonical arch x proxy (from the CSV export)."""
    import csv
    import io

    exported = list(csv.DictReader(io.StringIO(client.get("/v1/export", params={"space": space}).text)))
    canon = {canonical(a) for a in archs}
    for proxy in proxies:
        mine = [r["arch"] for r in exported if r["proxy"] == proxy and r["arch"] in canon]
        assert sorted(mine) == sorted(canon), proxy


def all_scores(client: httpx.Client, job_id: str) -> list[dict]:
    """Every row of a job's scores, following the cursor."""
    items, cursor = [], None
    while True:
        page = client.get(f"/v1/jobs/{job_id}/scores", params={"limit": 500, **({"cursor": cursor} if cursor else {})})
        body = page.json()
        items.extend(body["items"])
        cursor = body["next"]
        if not cursor:
            return items


def pg_database() -> tuple[str, callable]:
    """A fresh Postgres database URL and its dropper (skips when Postgres is down)."""
    import psycopg

    name = f"zcs_svc_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc}")

    def drop() -> None:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{PG_URL.rsplit('/', 1)[0]}/{name}", drop


def random_arch(i: int) -> str:
    """A distinct valid arch per integer in [0, 15625) (base-5 digits as ops)."""
    ops = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    o = [ops[(i // 5**k) % 5] for k in range(6)]
    return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"
