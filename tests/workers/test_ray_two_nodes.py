"""Ray beyond one process: a two-node Ray cluster on one machine (`ray start --head` + `ray start --address`,
each node with one CPU), `zcscore dispatcher` placing one actor on each node, then one node's raylet killed
mid-job: the job still finishes on the other node with every score stored exactly once."""

from __future__ import annotations

import shutil
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest
from kit import REDIS_URL, free_port, start, stop, stop_all, stored_once, wait_done, wait_http, wait_job, zcscore
from zcs_toy_space import ToySpace, chain

SPACE = ToySpace()
NO_AUTH = {"RAY_AUTH_MODE": "disabled"}  # a throwaway loopback cluster; real clusters keep Ray's token auth


def ray_node(args: list[str], tmp: Path, name: str):  # type: ignore[no-untyped-def]
    # Ray maps 127.0.0.1 to the host's IP; another loopback address keeps the cluster on lo
    common = ["--block", "--num-cpus=1", "--node-ip-address=127.0.0.2", "--disable-usage-stats"]
    return start(["ray", "start", *args, *common], {**NO_AUTH, "ZCSCORE_PLUGINS": '["zcs_toy_space"]'}, tmp / name)


@pytest.mark.timeout(300)
def test_two_node_cluster_survives_losing_a_node(tmp_path: Path) -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.ConnectionError:
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    ray_port, api_port = free_port(), free_port()
    prefix = f"zcsray-{uuid.uuid4().hex[:8]}"
    env = {
        **NO_AUTH,
        "ZCSCORE_HOME": str(tmp_path / "home"),
        "ZCSCORE_DATABASE_URL": f"sqlite:///{tmp_path / 'ray.db'}",
        "ZCSCORE_REDIS_URL": REDIS_URL,
        "ZCSCORE_REDIS_PREFIX": prefix,
        "ZCSCORE_RAY_ADDRESS": f"127.0.0.2:{ray_port}",
        "ZCSCORE_PLUGINS": '["zcs_toy_space"]',
        "ZCSCORE_CPUS_PER_WORKER": "1",  # one CPU per node: Ray must put one actor on each node
        "ZCSCORE_CLAIM_IDLE_S": "3",
        "ZCSCORE_RECONCILE_INTERVAL_S": "2",
    }
    head = Path(f"/tmp/zr-{uuid.uuid4().hex[:6]}")  # Ray's socket paths must stay under 107 bytes
    procs = {
        "head": ray_node(
            ["--head", f"--port={ray_port}", "--include-dashboard=false", f"--temp-dir={head}"], tmp_path, "head.log"
        )
    }
    try:
        time.sleep(4)
        procs["node2"] = ray_node([f"--address=127.0.0.2:{ray_port}", f"--temp-dir={head}"], tmp_path, "node2.log")
        procs["api"] = start(zcscore("api", "--port", str(api_port)), env, tmp_path / "api.log")
        wait_http(f"http://127.0.0.1:{api_port}/healthz", proc=procs["api"])
        time.sleep(3)
        procs["dispatcher"] = start(
            zcscore("dispatcher", "--workers", "2", "--consumer", "d2"), env, tmp_path / "dispatcher.log"
        )
        r = redis.Redis.from_url(REDIS_URL)
        deadline = time.time() + 120
        while r.hlen(f"{prefix}:actor-nodes") < 2:
            assert time.time() < deadline, (tmp_path / "dispatcher.log").read_text()[-3000:]
            time.sleep(0.5)
        nodes = {k.decode(): v.decode() for k, v in r.hgetall(f"{prefix}:actor-nodes").items()}
        assert len(set(nodes.values())) == 2, nodes  # one actor on each node

        archs = [chain(i, prefix="wait300") for i in range(40)]
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=30) as client:
            job = client.post("/v1/jobs", json={"space": "toy", "archs": archs, "proxies": ["params", "flops"]})
            assert job.status_code == 202, job.text
            wait_done(client, job.json()["id"], 8)
            stop(procs.pop("node2"), signal.SIGKILL)  # node 2's raylet and its workers, mid-job
            status = wait_job(client, job.json()["id"], timeout=180)
            assert (status["status"], status["done"], status["failed"]) == ("done", 80, 0), status
            stored_once(
                client, "toy", archs, ["params", "flops"], lambda a: SPACE.encode(SPACE.canonical(SPACE.parse(a)))
            )
    finally:
        stop_all([procs[n] for n in ("dispatcher", "api") if n in procs])
        stop_all([procs[n] for n in ("node2", "head") if n in procs])
        shutil.rmtree(head, ignore_errors=True)
        keys = list(redis.Redis.from_url(REDIS_URL).scan_iter(match=f"{prefix}:*"))
        if keys:
            redis.Redis.from_url(REDIS_URL).delete(*keys)
