"""Failures a user can act on, end to end over real HTTP: input errors refused at the door, one proxy's
failure isolated to its (arch, proxy) row and attempted once, clean one-line errors, and the crash path
(kill -9 of the whole `zcscore serve` process group, then a restart: every arch stored exactly once)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from kit import all_scores, free_port, start, stop, stored_once, wait_done, wait_http, wait_job, zcscore
from zcs_toy_space import ToySpace, chain

from zcscore.spaces.nb201 import EXAMPLE_ARCH

SPACE = ToySpace()
TOY = '["zcs_toy_space"]'


def canonical(arch: str) -> str:
    return SPACE.encode(SPACE.canonical(SPACE.parse(arch)))


def serve(tmp: Path, env: dict[str, str | None], name: str = "serve") -> tuple[subprocess.Popen[bytes], httpx.Client]:
    port = free_port()
    proc = start(zcscore("serve", "--port", str(port), "--ray-cpus", "1"), env, tmp / f"{name}.log")
    wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
    return proc, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)


def redis_servers() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "redis-server"], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def test_first_job_without_data_is_refused_at_submission(tmp_path: Path) -> None:
    env = {"ZCSCORE_HOME": str(tmp_path / "home"), "ZCSCORE_DATA_DIR": None, "ZCSCORE_CACHE_DIR": str(tmp_path / "c")}
    proc, client = serve(tmp_path, env)
    try:
        body = {"space": "nb201", "archs": [EXAMPLE_ARCH], "proxies": ["zico", "flops"], "config": {"seed": 1}}
        refused = client.post("/v1/jobs", json=body)
        assert refused.status_code == 422
        (detail,) = refused.json()["errors"]
        assert detail["loc"] == ["body", "proxies", 0] and detail["msg"].startswith("data_unavailable: zico")
        assert "ZCSCORE_DATA_DIR" in detail["msg"] and "zcscore data fetch" in detail["msg"]
        queued = client.get("/metrics").text
        assert "zcscore_jobs_submitted_total 0.0" in queued  # nothing was stored or enqueued
        ok = client.post("/v1/jobs", json={**body, "proxies": ["flops", "params"]})
        assert ok.status_code == 202
        assert wait_job(client, ok.json()["id"])["status"] == "done"
    finally:
        client.close()
        stop(proc)
    log = (tmp_path / "serve.log").read_text()
    assert "data: none resolved" in log and "serving http://127.0.0.1:" in log
    assert "alembic" not in log.lower()  # third-party INFO noise is off by default


def test_one_proxy_failing_for_one_arch_is_attempted_once_and_a_cancel_drops_queued_work(tmp_path: Path) -> None:
    tally = tmp_path / "builds.txt"
    env = {
        "ZCSCORE_HOME": str(tmp_path / "home"),
        "ZCSCORE_PLUGINS": TOY,
        "ZCS_TOY_TALLY": str(tally),
        "ZCSCORE_BATCH_SIZE": "2",
    }
    proc, client = serve(tmp_path, env)
    archs = ["c3-big64-c1", "c3-c1", "p-c5", "c1"]
    proxies = ["params", "flops", "intrain", "zico"]
    try:
        job = client.post("/v1/jobs", json={"space": "toy", "archs": archs, "proxies": proxies})
        assert job.status_code == 202, job.text
        status = wait_job(client, job.json()["id"])
        rows = all_scores(client, job.json()["id"])
        _cancel_mid_job(client, tally)
    finally:
        client.close()
        stop(proc)
    total = len(archs) * len(proxies)
    assert (status["status"], status["done"], status["failed"], status["total"]) == ("failed", total - 1, 1, total)
    assert status["failures"] == {"proxy_error": 1}
    (bad,) = [r for r in rows if r["status"] != "done"]
    assert (bad["arch"], bad["proxy"], bad["status"]) == ("c3-big64-c1", "intrain", "failed")
    assert bad["error"] == "proxy_error: RuntimeError: toy op big64 refuses 64x64 inputs"
    assert all(r["score"] is not None for r in rows if r is not bad)
    assert tally.read_text().splitlines().count("c3-big64-c1") == 1  # a deterministic error: attempted once


def _cancel_mid_job(client: httpx.Client, tally: Path) -> None:
    """Cancel a job mid-run: queued work is dropped (the workers go idle), stored scores are kept."""
    archs = [chain(i, prefix="wait200") for i in range(40)]
    job = client.post("/v1/jobs", json={"space": "toy", "archs": archs, "proxies": ["params"]}).json()
    wait_done(client, job["id"], 2)
    cancelled = client.delete(f"/v1/jobs/{job['id']}").json()
    assert cancelled["status"] == "cancelled" and cancelled["failures"]["cancelled"] >= 1
    time.sleep(3)  # past the end of the batches in flight at the cancel (2 archs per actor call)
    built = [a for a in tally.read_text().splitlines() if a.startswith("wait200")]
    time.sleep(1)
    assert [a for a in tally.read_text().splitlines() if a.startswith("wait200")] == built  # idle: work dropped
    status = client.get(f"/v1/jobs/{job['id']}").json()
    assert status["status"] == "cancelled" and status["done"] + status["failed"] == len(archs)
    assert cancelled["done"] <= status["done"] < len(archs) and len(built) < len(archs)
    again = client.post("/v1/jobs", json={"space": "toy", "archs": archs[:3], "proxies": ["params"]}).json()
    assert wait_job(client, again["id"])["status"] == "done"  # a new job still gets its work scored


def test_kill_the_serve_process_group_mid_job_then_restart(tmp_path: Path) -> None:
    env = {
        "ZCSCORE_HOME": str(tmp_path / "home"),
        "ZCSCORE_PLUGINS": TOY,
        "ZCSCORE_RECONCILE_INTERVAL_S": "1",
        "ZCSCORE_CLAIM_IDLE_S": "3",  # the dead serve's pending entries are reclaimed after 3 s
    }
    archs = [chain(i, prefix="wait150") for i in range(60)]
    before = redis_servers()
    proc, client = serve(tmp_path, env, "first")
    try:
        job = client.post("/v1/jobs", json={"space": "toy", "archs": archs, "proxies": ["params", "flops"]}).json()
        wait_done(client, job["id"], 2)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: API, dispatcher, Ray driver and actors
        proc.wait(10)
        client.close()
        time.sleep(1)
        proc, client = serve(tmp_path, env, "second")
        status = wait_job(client, job["id"], timeout=120)
        assert (status["status"], status["done"], status["failed"]) == ("done", 120, 0)
        stored_once(client, "toy", archs, ["params", "flops"], canonical)
    finally:
        client.close()
        stop(proc)
        for pid in redis_servers() - before:  # the embedded Redis daemons our two serves started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


@pytest.mark.parametrize("proxy", ["zico"])
def test_cli_reports_failed_rows_in_its_exit_code(tmp_path: Path, proxy: str) -> None:
    out = tmp_path / "s.csv"
    cmd = zcscore("--plugin", "zcs_toy_space", "score", "--space", "toy", "--proxies", f"params,intrain,{proxy}")
    proc = subprocess.run(
        [*cmd, "--no-progress", "--out", str(out), "--arch", "c3-big64-c1", "c3-c1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and "1 of 6 rows failed" in proc.stderr
    lines = out.read_text().splitlines()
    assert sum("proxy_error: RuntimeError: toy op big64" in line for line in lines) == 1
    nodata = subprocess.run(
        [*zcscore("score", "--proxies", "zico", "--arch", EXAMPLE_ARCH, "--out", "-")],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **{k: v for k, v in os.environ.items() if k != "ZCSCORE_DATA_DIR"},
            "ZCSCORE_CACHE_DIR": str(tmp_path / "c"),
            "ZCSCORE_DATA_DOWNLOAD": "false",
        },
    )
    assert nodata.returncode == 2 and "data_unavailable" in nodata.stderr and "zcscore data fetch" in nodata.stderr
