"""End to end: `zcscore serve` as a process; scores equal the core's; a resubmission comes from the store.

Runs on SQLite with embedded Redis (the one-command default) and on Postgres with the shared Redis.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from kit import REDIS_URL, all_scores, free_port, pg_database, start, stop, wait_http, wait_job, zcscore

from zcscore.spaces.nb201 import EXAMPLE_ARCH

DEAD = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ISO_A = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|"
ISO_B = "|skip_connect~0|+|nor_conv_3x3~0|none~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_1x1~2|"
ARCHS = [EXAMPLE_ARCH, DEAD, ISO_A, ISO_B, "|nor_conv_1x1~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|"]
PROXIES = ["params", "flops", "az_nas"]


@pytest.fixture(scope="module", params=["sqlite-embedded", "postgres"])
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp(request.param)
    port = free_port()
    env = {"ZCSCORE_HOME": str(tmp / "home"), "ZCSCORE_THREADS": "1", "ZCSCORE_BATCH_SIZE": "4"}
    drop = None
    if request.param == "postgres":
        url, drop = pg_database()
        env.update(
            ZCSCORE_DATABASE_URL=url,
            ZCSCORE_REDIS_URL=REDIS_URL,
            ZCSCORE_REDIS_PREFIX=f"zcstest-{uuid.uuid4().hex[:10]}",
        )
    proc = start(zcscore("serve", "--port", str(port), "--ray-cpus", "2"), env, tmp / "serve.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client
    finally:
        stop(proc)
        if drop:
            drop()


def cached_tasks(client: httpx.Client) -> float:
    m = re.search(r"^zcscore_tasks_cached_total (\S+)$", client.get("/metrics").text, re.M)
    return float(m.group(1)) if m else 0.0


def test_scores_equal_the_core_and_resubmission_is_served_from_store(service: httpx.Client) -> None:
    import torch

    from zcscore.engine import Engine, ScoreConfig

    body = {"space": "nb201", "archs": ARCHS, "proxies": PROXIES, "config": {"seed": 0}}
    job = service.post("/v1/jobs", json=body).json()
    assert job["total"] == len(ARCHS) * 6  # params, flops + the 4 az_nas components
    status = wait_job(service, job["id"])
    expected_status = {"id": job["id"], "status": "done", "done": job["total"], "failed": 0, "total": job["total"]}
    assert status == {**expected_status, "failures": {}}
    got = all_scores(service, job["id"])

    torch.set_num_threads(1)
    expected = Engine(PROXIES, ScoreConfig(seed=0)).score_archs(ARCHS)
    assert [(g["arch"], g["proxy"]) for g in got] == [(r.arch, r.proxy) for r in expected]
    for g, r in zip(got, expected):
        if math.isinf(r.score):
            assert g["score"] == ("inf" if r.score > 0 else "-inf")
        else:
            assert g["score"] == pytest.approx(r.score, rel=1e-9, abs=1e-12), (g["arch"], g["proxy"])
        assert g["provenance"]["seed"] == 0 and g["provenance"]["proxy_version"] == 1
    dead_az = next(g for g in got if g["arch"] == DEAD and g["proxy"] == "az_nas")
    assert dead_az["components"]["az_expressivity"] == "-inf"  # degenerate arch: sentinel, not a failure

    before = cached_tasks(service)
    again = service.post("/v1/jobs", json=body).json()
    assert again["id"] != job["id"] and again["status"] == "done"
    assert cached_tasks(service) - before == job["total"]
    assert all_scores(service, again["id"]) == got
