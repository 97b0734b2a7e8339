"""The Python SDK against the real API over HTTP (uvicorn, real Redis, SQLite store): calls, errors, retries."""

from __future__ import annotations

import asyncio
import math
import time

import httpx
import pytest
from apikit import free_port, random_arch, store_scores

from zcscore.client import ApiError, AsyncClient, Client, JobTimeout


@pytest.fixture
def client(api):
    with Client(api.url, retries=0) as c:
        yield c


def test_submit_wait_and_read_a_cached_job_as_records_and_frame(api, client) -> None:
    archs = [random_arch(5000 + i) for i in range(4)]
    store_scores(api, archs, "params", [1.5, math.inf, math.nan, 0.25], seed=3)
    resp = api.client.post("/v1/jobs", json={"archs": archs, "proxies": ["params"], "config": {"seed": 3}})
    assert resp.status_code == 202 and resp.headers["location"] == f"/v1/jobs/{resp.json()['id']}"
    job = client.submit(archs, ["params"], seed=3)
    assert client.wait(job, timeout=10)["status"] == "done"
    records = client.scores(job, page_size=1)  # one arch per page: the cursor is followed
    assert [r.arch for r in records] == archs
    assert [r.score for r in records][:2] == [1.5, math.inf] and math.isnan(records[2].score)
    assert all(r.error is None and r.proxy == "params" for r in records)
    frame = client.dataframe(job)
    assert list(frame["arch"]) == archs and frame["score"].iloc[3] == 0.25
    assert client.score(archs[:1], ["params"], seed=3, timeout=10)[0].score == 1.5
    assert client.top("params", k=1, seed=3)[0]["score"] == "inf"
    assert client.lookup(archs[3], "params")[0]["score"] == 0.25
    assert b"params" in client.export(proxy="params")
    assert "zico" in [p["name"] for p in client.proxies()]
    assert "nb201" in [s["name"] for s in client.spaces()]
    assert client.population("ensemble:params+flops", seed=3)["population_size"] == 0  # no flops stored


def test_errors_carry_the_server_message_and_field(client) -> None:
    with pytest.raises(ApiError) as bad:
        client.submit(["|not an arch|"], ["params"])
    assert bad.value.status == 422 and bad.value.field is not None and "archs" in bad.value.field
    with pytest.raises(ApiError) as missing:
        client.status("no-such-job")
    assert missing.value.status == 404 and "unknown job" in missing.value.message
    with pytest.raises(ApiError) as proxy:
        client.top("nope")
    assert proxy.value.status == 422 and "nope" in proxy.value.message


def test_wait_times_out_on_a_job_that_cannot_finish(api, client) -> None:
    job = client.submit([random_arch(5100)], ["params"], seed=99)  # queued: no workers in this fixture
    t0 = time.monotonic()
    with pytest.raises(JobTimeout):
        client.wait(job, timeout=1.0)  # one long-poll request held by the server for the whole second
    assert 0.9 <= time.monotonic() - t0 < 5
    assert job in [j["id"] for j in client.jobs(status="queued")]
    assert job not in [j["id"] for j in client.jobs(status="done")]
    listed = client.jobs(limit=1)[0]
    assert listed["id"] == job and listed["proxies"] == ["params"] and listed["space"] == "nb201"


def test_connection_errors_are_retried_with_backoff_then_raised() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with Client(dead, retries=2, backoff_s=0.1) as c, pytest.raises(httpx.ConnectError):
        c.proxies()
    assert time.monotonic() - t0 >= 0.3  # 0.1 + 0.2 between the three attempts


def test_async_client_speaks_the_same_calls(api) -> None:
    archs = [random_arch(5200 + i) for i in range(2)]
    store_scores(api, archs, "params", [2.0, 3.0], seed=4)

    async def run() -> list[float]:
        async with AsyncClient(api.url, retries=0) as c:
            assert "zico" in [p["name"] for p in await c.proxies()]
            records = await c.score(archs, ["params"], seed=4, timeout=10)
            return [r.score for r in records]

    assert asyncio.run(run()) == [2.0, 3.0]


def test_openapi_names_every_operation(api) -> None:
    spec = api.client.get("/openapi.json").json()
    ops = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {"submit_job", "list_jobs", "job_status", "job_scores", "top", "population", "export"} <= ops
    wait = next(p for p in spec["paths"]["/v1/jobs/{job_id}"]["get"]["parameters"] if p["name"] == "wait")
    assert wait["schema"]["maximum"] == 30


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/nowhere", 404),
        ("DELETE", "/v1/proxies", 405),
        ("GET", "/v1/jobs/nope", 404),
        ("GET", "/v1/top", 422),
    ],
)
def test_every_error_is_problem_json(api, method: str, path: str, status: int) -> None:
    resp = api.client.request(method, path)
    assert resp.status_code == status and resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and body["title"] and body["instance"] == path
    assert isinstance(body["detail"], str) and isinstance(body["errors"], list) and body["errors"]


def test_openapi_declares_the_bearer_scheme(api) -> None:
    spec = api.client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert {"HTTPBearer": []} in spec["paths"]["/v1/jobs"]["post"]["security"]


def test_cancel_drops_queued_work_and_keeps_stored_scores(api, client) -> None:
    scored, queued = random_arch(5300), random_arch(5301)
    store_scores(api, [scored], "params", [4.0], seed=5)
    job = client.submit([scored, queued], ["params"], seed=5)
    assert client.status(job)["status"] == "running"  # one of two tasks is already stored
    status = client.cancel(job)
    assert status["status"] == "cancelled" and status["done"] == 1 and status["failures"] == {"cancelled": 1}
    assert client.cancel(job) == status  # idempotent
    assert client.wait(job, timeout=5)["status"] == "cancelled"
    assert job in [j["id"] for j in client.jobs(status="cancelled")]
    records = client.scores(job)
    assert records[0].score == 4.0 and records[1].error is not None and records[1].error.startswith("cancelled")
    done = client.submit([scored], ["params"], seed=5)
    assert client.cancel(done)["status"] == "done"  # nothing left to cancel
    with pytest.raises(ApiError) as missing:
        client.cancel("no-such-job")
    assert missing.value.status == 404
