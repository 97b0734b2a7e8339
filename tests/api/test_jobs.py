"""HTTP API without workers: validation (4xx naming the field), idempotency, cache hits, pagination."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid

import pytest
from apikit import random_arch, store_scores

from zcscore.spaces.nb201 import EXAMPLE_ARCH, NB201Arch

DEAD = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
OK = {"space": "nb201", "archs": [EXAMPLE_ARCH], "proxies": ["params"]}


def test_api_imports_neither_torch_nor_ray() -> None:
    code = "import sys, zcscore.api.app; print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'ray'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


BAD_BODIES = [
    ({}, "archs"),
    ({**OK, "space": "nb999"}, "space"),
    ({**OK, "archs": []}, "archs"),
    ({**OK, "archs": ["|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|"]}, "archs.0"),
    ({**OK, "archs": [EXAMPLE_ARCH, "|nor_conv_3x3~1|+|none~0|none~1|+|none~0|none~1|none~2|"]}, "archs.1"),
    ({**OK, "archs": [123]}, "archs.0"),
    ({**OK, "archs": ["x" * 300]}, "archs.0"),
    ({**OK, "archs": [EXAMPLE_ARCH] * 51}, "archs"),
    ({**OK, "proxies": ["params", "nope"]}, "proxies.1"),
    ({**OK, "proxies": []}, "proxies"),
    ({**OK, "config": {"seed": -1}}, "config.seed"),
    ({**OK, "config": {"seed": "abc"}}, "config.seed"),
    ({**OK, "config": {"sede": 1}}, "config.sede"),
    ({**OK, "extra": 1}, "extra"),
    ({**OK, "priority": "urgent"}, "priority"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES, ids=[f for _, f in BAD_BODIES])
def test_bad_bodies_get_422_naming_the_field(api, body: dict, field: str) -> None:
    resp = api.client.post("/v1/jobs", json=body)
    assert resp.status_code == 422, resp.text
    locs = [".".join(str(p) for p in d["loc"][1:]) for d in resp.json()["errors"]]
    assert field in locs, locs


def test_malformed_json_body_and_too_large_body(api) -> None:
    resp = api.client.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 422
    big = {**OK, "archs": [EXAMPLE_ARCH] * 400}  # > 20 kB
    resp = api.client.post("/v1/jobs", json=big)
    assert resp.status_code == 413
    assert resp.json()["errors"][0]["loc"] == ["body"]


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/v1/scores?proxy=nope&arch=" + EXAMPLE_ARCH, 422, "proxy"),
        ("/v1/scores?proxy=params&arch=|bad|", 422, "arch"),
        ("/v1/scores?proxy=params", 422, "arch"),
        ("/v1/top?proxy=az_nas", 422, "proxy"),
        ("/v1/top?proxy=flops&k=0", 422, "k"),
        ("/v1/top?proxy=flops&space=nb999", 422, "space"),
        ("/v1/export?format=xml", 422, "format"),
        ("/v1/jobs/unknown-job", 404, "job_id"),
        ("/v1/jobs/unknown-job/scores", 404, "job_id"),
    ],
)
def test_bad_queries(api, path: str, status: int, field: str) -> None:
    resp = api.client.get(path)
    assert resp.status_code == status, resp.text
    assert field in [d["loc"][-1] for d in resp.json()["errors"]]


def test_submit_enqueues_one_message_per_distinct_arch_and_is_idempotent(api) -> None:
    names_tasks = f"{api.settings.redis_prefix}:lane:normal:-"  # the anonymous user's normal lane
    before = api.redis.xlen(names_tasks)
    body = {**OK, "archs": [random_arch(1000), random_arch(1001), random_arch(1000)], "proxies": ["params", "flops"]}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = api.client.post("/v1/jobs", json=body, headers=key)
    assert first.status_code == 202
    assert first.json()["total"] == 6 and first.json()["status"] == "queued"
    assert api.redis.xlen(names_tasks) - before == 2
    again = api.client.post("/v1/jobs", json=body, headers=key)
    assert again.json()["id"] == first.json()["id"]
    assert api.redis.xlen(names_tasks) - before == 2
    conflict = api.client.post("/v1/jobs", json={**body, "archs": [random_arch(7)]}, headers=key)
    assert conflict.status_code == 409
    status = api.client.get(f"/v1/jobs/{first.json()['id']}").json()
    assert status == {"id": first.json()["id"], "status": "queued", "done": 0, "failed": 0, "total": 6, "failures": {}}


def test_priority_picks_the_lane_and_is_part_of_the_body(api) -> None:
    lane = f"{api.settings.redis_prefix}:lane:high:-"
    body = {**OK, "archs": [random_arch(1500)], "priority": "high"}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    assert api.client.post("/v1/jobs", json=body, headers=key).status_code == 202
    assert api.redis.xlen(lane) == 1 and api.redis.sismember(f"{api.settings.redis_prefix}:lanes", lane)
    assert api.client.post("/v1/jobs", json={**body, "priority": "low"}, headers=key).status_code == 409


def test_stored_scores_are_served_without_enqueueing(api) -> None:
    archs = [random_arch(2000 + i) for i in range(5)]
    values = [1.0, math.inf, math.nan, -math.inf, 2.5]
    store_scores(api, archs, "params", values)
    before = api.redis.xlen(f"{api.settings.redis_prefix}:lane:normal:-")
    resp = api.client.post("/v1/jobs", json={**OK, "archs": archs, "config": {"seed": 0}})
    assert resp.json()["status"] == "done"
    assert api.redis.xlen(f"{api.settings.redis_prefix}:lane:normal:-") == before
    job = resp.json()["id"]
    page = api.client.get(f"/v1/jobs/{job}/scores", params={"limit": 2}).json()
    got = list(page["items"])
    while page["next"]:
        page = api.client.get(f"/v1/jobs/{job}/scores", params={"limit": 2, "cursor": page["next"]}).json()
        got.extend(page["items"])
    assert [g["score"] for g in got] == [1.0, "inf", None, "-inf", 2.5]
    assert all(g["status"] == "done" and g["provenance"]["stored_by"] == "test" for g in got)
    top = api.client.get("/v1/top", params={"proxy": "params", "k": 2, "seed": 0}).json()["items"]
    assert [t["score"] for t in top] == ["inf", 2.5]
    look = api.client.get("/v1/scores", params={"proxy": "params", "arch": archs[4]}).json()["items"]
    assert [x["score"] for x in look] == [2.5]
    csv = api.client.get("/v1/export", params={"format": "csv", "proxy": "params"})
    assert csv.status_code == 200 and "-inf" in csv.text and "nan" in csv.text
    pq = api.client.get("/v1/export", params={"format": "parquet"})
    assert pq.status_code == 200 and pq.content[:4] == b"PAR1"


def test_population_proxy_is_aggregated_over_the_job(api) -> None:
    from zcscore.aggregate import log_rank_sum

    archs = [random_arch(3000 + i) for i in range(4)] + [DEAD]
    comps = ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity")
    table = {c: [float(i * (k + 1) % 5) for i in range(4)] + [-math.inf] for k, c in enumerate(comps)}
    for c in comps:
        store_scores(api, archs, c, table[c], seed=1)
    resp = api.client.post("/v1/jobs", json={**OK, "archs": archs, "proxies": ["az_nas"]})
    assert resp.json() == {"id": resp.json()["id"], "status": "done", "total": 20}
    items = api.client.get(f"/v1/jobs/{resp.json()['id']}/scores").json()["items"]
    expected = log_rank_sum([table[c] for c in comps])
    assert [i["score"] for i in items] == pytest.approx(list(expected))
    assert items[-1]["components"]["az_expressivity"] == "-inf"


def test_catalogue_health_metrics_docs(api) -> None:
    names = [p["name"] for p in api.client.get("/v1/proxies").json()]
    assert {"params", "flops", "zico", "az_nas"} <= set(names)
    assert api.client.get("/healthz").json() == {"status": "ok", "database": True, "redis": True}
    metrics = api.client.get("/metrics").text
    assert "zcscore_jobs_submitted_total" in metrics and "zcscore_queue_length" in metrics
    assert api.client.get("/docs").status_code == 200
    schema = api.client.get("/openapi.json").json()
    assert "JobRequest" in json.dumps(schema)


def test_ensemble_over_a_job_and_over_every_stored_arch(api) -> None:
    from zcscore.aggregate import log_rank_sum

    archs = [random_arch(4000 + i) for i in range(5)]
    comps = ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity", "params")
    table = {c: [float((i + 2) * (k + 3) % 7) for i in range(5)] for k, c in enumerate(comps)}
    table["params"][3] = math.nan  # ranked lowest, as a degenerate net
    for c in comps:
        store_scores(api, archs, c, table[c], seed=7)
    name = "ensemble:az_nas+params"
    resp = api.client.post("/v1/jobs", json={**OK, "archs": archs, "proxies": [name], "config": {"seed": 7}})
    assert resp.json()["status"] == "done"
    items = api.client.get(f"/v1/jobs/{resp.json()['id']}/scores").json()["items"]
    expected = log_rank_sum([table[c] for c in comps])  # as AZ-NAS Table 5's "X + sC+sE+sT+sP"
    assert [i["proxy"] for i in items] == [name] * 5
    assert [i["score"] for i in items] == pytest.approx(list(expected))
    pop = api.client.get("/v1/population", params={"proxy": name, "seed": 7}).json()
    assert pop["population_size"] == 5  # every stored arch of the space with all five components
    assert [i["score"] for i in pop["items"]] == pytest.approx(sorted(expected, reverse=True))
    assert pop["items"][0]["arch"] == NB201Arch.parse(archs[int(expected.argmax())]).canonical().to_str()
    top2 = api.client.get("/v1/population", params={"proxy": name, "seed": 7, "k": 2}).json()["items"]
    assert len(top2) == 2
    for params, field in (({"proxy": "zico"}, "proxy"), ({"proxy": "ensemble:zico"}, "proxy")):
        bad = api.client.get("/v1/population", params=params)
        assert bad.status_code == 422 and field in json.dumps(bad.json())
    bad_job = api.client.post("/v1/jobs", json={**OK, "proxies": ["ensemble:zico+nope"]})
    assert bad_job.status_code == 422 and "nope" in bad_job.text
