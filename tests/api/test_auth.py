"""Users and keys over real HTTP: no key / revoked key / another user's job -> 401 / 401 / 404; quotas -> 429.

Keys are created with the real ``zcscore keys`` command against the API's own database.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from apikit import Server, random_arch, serve

from zcscore.api.auth import KEYS_CHECK_S
from zcscore.spaces.nb201 import EXAMPLE_ARCH

BODY = {"space": "nb201", "archs": [EXAMPLE_ARCH], "proxies": ["params"]}


def keys(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    env_url = {"ZCSCORE_DATABASE_URL": server.settings.resolved_database_url}  # type: ignore[attr-defined]
    import os

    return subprocess.run(
        [sys.executable, "-m", "zcscore.cli", "keys", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env_url},
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def env_keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(tmp_path_factory.mktemp("auth-env"), api_keys=["s3cret"])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    """A server with three users' keys in its database: alice and bob (users, quotas) and root (admin)."""
    for server in serve(tmp_path_factory.mktemp("auth-db")):
        assert server.client.get("/v1/proxies").status_code == 200  # no key yet: auth is off
        made = {}
        for name, extra in (
            ("alice", ["--quota-archs-per-day", "6"]),
            ("bob", ["--max-inflight", "1"]),
            ("root", ["--role", "admin"]),
        ):
            out = keys(server, "create", "--name", name, *extra)
            assert out.returncode == 0, out.stderr
            made[name] = out.stdout.strip()
        time.sleep(KEYS_CHECK_S + 0.1)  # the API notices the first key
        yield server, made


def test_an_env_key_guards_reads_and_writes(env_keyed: Server) -> None:
    assert env_keyed.client.post("/v1/jobs", json=BODY).status_code == 401
    bad = env_keyed.client.post("/v1/jobs", json=BODY, headers=bearer("nope"))
    assert bad.status_code == 401 and bad.json()["errors"][0]["loc"] == ["header", "authorization"]
    ok = env_keyed.client.post("/v1/jobs", json=BODY, headers=bearer("s3cret"))
    assert ok.status_code == 202
    assert env_keyed.client.get(f"/v1/jobs/{ok.json()['id']}").status_code == 401  # reads need a key too
    assert env_keyed.client.get(f"/v1/jobs/{ok.json()['id']}", headers=bearer("s3cret")).status_code == 200
    assert env_keyed.client.get("/healthz").status_code in (200, 503)  # health and metrics stay open
    assert env_keyed.client.get("/metrics").status_code == 200


def test_users_see_only_their_own_jobs_and_admins_see_all(lab) -> None:
    server, made = lab
    c = server.client
    assert c.get("/v1/proxies").status_code == 401
    job = c.post("/v1/jobs", json={**BODY, "archs": [random_arch(6000)]}, headers=bearer(made["alice"])).json()["id"]
    assert c.get(f"/v1/jobs/{job}", headers=bearer(made["alice"])).status_code == 200
    for path in (f"/v1/jobs/{job}", f"/v1/jobs/{job}/scores"):
        other = c.get(path, headers=bearer(made["bob"]))
        assert other.status_code == 404 and other.json()["errors"][0]["loc"] == ["path", "job_id"]
    assert c.delete(f"/v1/jobs/{job}", headers=bearer(made["bob"])).status_code == 404  # nor cancel it
    assert job not in [j["id"] for j in c.get("/v1/jobs", headers=bearer(made["bob"])).json()["items"]]
    assert job in [j["id"] for j in c.get("/v1/jobs", headers=bearer(made["root"])).json()["items"]]
    assert c.get(f"/v1/jobs/{job}", headers=bearer(made["root"])).status_code == 200
    assert c.get("/v1/top", params={"proxy": "params"}, headers=bearer(made["bob"])).status_code == 200  # shared cache


def test_a_revoked_key_is_refused(lab) -> None:
    server, _ = lab
    out = keys(server, "create", "--name", "carol")
    carol = out.stdout.strip()
    assert server.client.get("/v1/proxies", headers=bearer(carol)).status_code == 200
    assert keys(server, "revoke", "carol").returncode == 0
    assert server.client.get("/v1/proxies", headers=bearer(carol)).status_code == 401
    listed = keys(server, "list").stdout
    assert "carol" in listed and carol not in listed and '"revoked": true' in listed  # only a prefix is ever shown
    assert keys(server, "create", "--name", "alice").returncode == 2  # an active name is unique


def test_quotas_are_enforced_at_submit_with_429_naming_the_limit(lab) -> None:
    server, made = lab
    c = server.client
    archs = [random_arch(6100 + i) for i in range(4)]
    assert c.post("/v1/jobs", json={**BODY, "archs": archs}, headers=bearer(made["alice"])).status_code == 202
    over = c.post("/v1/jobs", json={**BODY, "archs": archs[:3]}, headers=bearer(made["alice"]))  # 1 + 4 + 3 > 6
    assert over.status_code == 429 and over.json()["detail"].startswith("quota_archs_per_day")
    assert c.post("/v1/jobs", json={**BODY, "archs": archs[:1]}, headers=bearer(made["alice"])).status_code == 202
    first = c.post("/v1/jobs", json={**BODY, "archs": [random_arch(6200)]}, headers=bearer(made["bob"]))
    assert first.status_code == 202  # queued: no workers here, so it stays in flight
    second = c.post("/v1/jobs", json={**BODY, "archs": [random_arch(6201)]}, headers=bearer(made["bob"]))
    assert second.status_code == 429 and second.json()["detail"].startswith("max_inflight")
    c.delete(f"/v1/jobs/{first.json()['id']}", headers=bearer(made["bob"]))
    again = c.post("/v1/jobs", json={**BODY, "archs": [random_arch(6201)]}, headers=bearer(made["bob"]))
    assert again.status_code == 202  # the cancelled job no longer counts


def test_dashboard_routes_follow_the_auth_rules(lab) -> None:
    server, made = lab
    c = server.client
    assert c.get("/ui").status_code == 200  # the page is open; the data it polls is not
    for path, params in (("/v1/cluster", {}), ("/v1/scatter", {"proxy": "params"})):
        assert c.get(path, params=params).status_code == 401
        refused = c.get(path, params=params, headers=bearer("zcs_unknown"))
        assert refused.status_code == 401 and refused.json()["errors"][0]["loc"] == ["header", "authorization"]
        assert c.get(path, params=params, headers=bearer(made["bob"])).status_code == 200
    dave = keys(server, "create", "--name", "dave").stdout.strip()
    mine = c.post("/v1/jobs", json={**BODY, "archs": [random_arch(6300), random_arch(6301)]}, headers=bearer(dave))
    theirs = c.post("/v1/jobs", json={**BODY, "archs": [random_arch(6302)]}, headers=bearer(made["root"]))
    assert mine.status_code == theirs.status_code == 202  # no workers here: both stay outstanding
    seen = c.get("/v1/cluster", headers=bearer(dave)).json()
    assert seen["users"] == [{"owner": "dave", "jobs": 1, "tasks": 2, "queued": 2}]  # own row by name; 2 archs queued
    assert seen["others"]["jobs"] >= 1 and seen["others"]["tasks"] >= 1  # everyone else, summed, unnamed
    admin = c.get("/v1/cluster", headers=bearer(made["root"])).json()
    assert {"dave", "root"} <= {u["owner"] for u in admin["users"]} and admin["others"] is None
    listed = c.get("/v1/jobs", headers=bearer(dave)).json()["items"]
    assert [(j["id"], j["owner"]) for j in listed] == [(mine.json()["id"], "dave")]
