"""The dashboard's page and JSON over real HTTP (no workers): /ui, /v1/cluster, /v1/scatter, /metrics."""

from __future__ import annotations

import re

import pytest
from apikit import REDIS_URL, random_arch, store_scores

from zcscore.spaces.nb201 import NB201Arch


def test_the_page_and_its_assets_are_served_and_kept_out_of_the_schema(api) -> None:
    page = api.client.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', page.text):
        assert api.client.get(asset).status_code == 200, asset
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert api.client.get("/ui/", follow_redirects=True).status_code == 200
    paths = api.client.get("/openapi.json").json()["paths"]
    assert {"/v1/cluster", "/v1/scatter"} <= set(paths)
    assert not {"/ui", "/metrics", "/healthz"} & set(paths)


def test_cluster_counts_the_queue_and_outstanding_work(api) -> None:
    body = {"space": "nb201", "archs": [random_arch(7000 + i) for i in range(3)], "proxies": ["params", "flops"]}
    job = api.client.post("/v1/jobs", json=body).json()
    api.redis.hset(f"{api.settings.redis_prefix}:actors", "actor-0", 4242)
    c = api.client.get("/v1/cluster").json()
    q = c["queue"]
    assert q["length"] >= 1 and q["waiting"] == q["length"] and q["pending"] == q["dead"] == 0  # nobody reads here
    assert {"name": "actor-0", "pid": 4242, "node": None} in c["workers"]
    mine = next(u for u in c["users"] if u["owner"] is None)  # auth is off: jobs have no owner
    assert mine["tasks"] >= 6 and mine["jobs"] >= 1 and mine["queued"] == 3  # 3 archs in the anonymous lane
    assert c["others"] is None
    listed = api.client.get("/v1/jobs").json()["items"]
    assert next(j for j in listed if j["id"] == job["id"])["owner"] is None


def test_scatter_correlates_stored_scores_with_nb201_accuracy(api, data_dir, monkeypatch) -> None:
    from zcscore.bench.metrics import rank_correlation
    from zcscore.bench.truth import accuracies, all_archs

    archs = all_archs(data_dir)[:40:2]
    accs = accuracies(archs, "cifar10_test", data_dir)
    values = [a + (7.0 if i % 3 == 0 else 0.0) for i, a in enumerate(accs)]  # correlated, not perfectly
    values[5] = float("nan")  # ranked last, as `zcscore bench` does
    store_scores(api, archs, "synflow", values, seed=3)
    res = api.client.get("/v1/scatter", params={"proxy": "synflow", "seed": 3}).json()
    canon = [NB201Arch.parse(a).canonical().to_str() for a in archs]
    expected = rank_correlation(values, accuracies(canon, "cifar10_test", data_dir))
    assert res["n"] == len(archs) and res["target"] == "cifar10_test" and res["message"] is None
    assert res["kendall_tau"] == pytest.approx(expected.kendall) and 0 < res["kendall_tau"] < 1
    assert len(res["points"]) == len(archs)
    best = max(res["points"], key=lambda p: p["rank"])
    assert best["rank"] == 1.0 and best["score"] == max(v for v in values if v == v)
    assert min(p["rank"] for p in res["points"]) == 0.0
    few = api.client.get("/v1/scatter", params={"proxy": "synflow", "seed": 3, "limit": 5}).json()
    assert len(few["points"]) == 5 and few["n"] == len(archs)  # tau over every arch, fewer points drawn
    none = api.client.get("/v1/scatter", params={"proxy": "zico"}).json()
    assert none["n"] == 0 and none["points"] == [] and none["message"]
    for params, field in (({"proxy": "az_nas"}, "proxy"), ({"proxy": "params", "space": "mbv2"}, "space")):
        bad = api.client.get("/v1/scatter", params=params)
        assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", field]
    monkeypatch.setattr("zcscore.api.dashboard.STORED_CACHE_S", 0.0)  # the census is otherwise reused for 3 s
    stored = api.client.get("/v1/cluster").json()["stored"]
    assert {"space": "nb201", "proxy": "synflow", "scores": len(archs)} in stored


def test_metrics_use_standard_names_and_render_the_global_registry_once(api) -> None:
    from prometheus_client import REGISTRY, Counter, Gauge

    api.client.get("/v1/proxies")
    dup = Gauge("zcscore_queue_length", "a same-named family in the global registry")  # e.g. the dispatcher's
    own = Counter("zcscore_test_dispatcher_batches", "a dispatcher metric in the global registry")
    try:
        own.inc(3)
        text = api.client.get("/metrics").text
    finally:
        REGISTRY.unregister(dup)
        REGISTRY.unregister(own)
    types = re.findall(r"^# TYPE (\S+)", text, re.M)
    assert len(types) == len(set(types)), "a metric family is rendered twice"
    assert "zcscore_test_dispatcher_batches_total 3.0" in text
    assert 'zcscore_http_requests_total{method="GET",route="/v1/proxies",status="200"}' in text
    assert "zcscore_http_request_duration_seconds_bucket" in text
    for name in ("zcscore_jobs_submitted_total", "zcscore_tasks_cached_total", "zcscore_queue_dead_letters"):
        assert re.search(rf"^{name} ", text, re.M), name
    assert "process_cpu_seconds_total" in text  # the process collector of the global registry


@pytest.mark.parametrize("lag", [True, False], ids=["redis7-lag", "no-lag"])
def test_queue_depth_sums_every_lane(api, lag: bool) -> None:
    import uuid

    import redis

    from zcscore.api.dashboard import queue_depth
    from zcscore.workers.streams import GROUP, Names, ensure_lane

    class NoLag(redis.Redis):  # an older Redis: XINFO GROUPS without "lag"
        def xinfo_groups(self, name):  # type: ignore[no-untyped-def,override]
            return [{k: v for k, v in g.items() if k != "lag"} for g in super().xinfo_groups(name)]

    names = Names(f"zcstest-{uuid.uuid4().hex[:10]}")
    r = api.redis if lag else NoLag.from_url(REDIS_URL)
    alice, bob = names.lane("alice"), names.lane("bob", "high")
    try:
        assert queue_depth(r, names).model_dump() == {"length": 0, "waiting": 0, "pending": 0, "dead": 0}
        for lane in (alice, bob):
            ensure_lane(r, names, lane)
        for i in range(5):
            r.xadd(alice, {"i": i})
        r.xadd(bob, {"i": 0})
        read = r.xreadgroup(GROUP, "c1", {alice: ">"}, count=2)
        r.xack(alice, GROUP, read[0][1][0][0])
        r.xadd(names.dead, {"i": 9})
        assert queue_depth(r, names).model_dump() == {"length": 6, "waiting": 4, "pending": 1, "dead": 1}
    finally:
        r.delete(alice, bob, names.lanes, names.dead)


def test_the_dashboard_routes_import_neither_torch_nor_ray(tmp_path) -> None:
    import subprocess
    import sys
    import uuid

    code = f"""
import sys
from fastapi.testclient import TestClient
from zcscore.api.app import create_app
from zcscore.settings import Settings
s = Settings(home={str(tmp_path)!r}, database_url="sqlite:///{tmp_path}/t.db", redis_url={REDIS_URL!r},
             redis_prefix="zcstest-{uuid.uuid4().hex[:10]}")
with TestClient(create_app(s)) as c:
    assert c.get("/v1/scatter", params={{"proxy": "params"}}).status_code == 200
    assert c.get("/v1/cluster").status_code == 200 and c.get("/ui").status_code == 200
print(sorted({{m.split('.')[0] for m in sys.modules}} & {{'torch', 'ray'}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
