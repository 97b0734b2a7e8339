"""Schemathesis over the OpenAPI schema, against the running API: no input yields a 5xx.

Twice: with auth off (no key), and with auth on and a valid user key sent on every call (so the routes run
past the auth check, quotas and ownership included).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import schemathesis
from apikit import Server, serve
from hypothesis import HealthCheck, settings

FUZZ_KEY = "zcs_fuzz-user-key"


@pytest.fixture(scope="module")
def api_schema(api):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_url(f"{api.url}/openapi.json")


@pytest.fixture(scope="module")
def keyed_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An API with auth on: one user key (with quotas) in its database."""
    from zcscore.api.auth import KEYS_CHECK_S, hash_key
    from zcscore.storage.store import open_store

    for server in serve(tmp_path_factory.mktemp("fuzz-auth"), max_archs_per_job=50, max_body_bytes=20_000):
        store = open_store(server.settings.resolved_database_url)  # type: ignore[attr-defined]
        store.create_key("fuzzer", hash_key(FUZZ_KEY), FUZZ_KEY[:10], "user", quota_archs_per_day=500, max_inflight=20)
        store.engine.dispose()
        time.sleep(KEYS_CHECK_S + 0.1)  # the API notices the first key
        assert server.client.get("/v1/proxies").status_code == 401
        yield server


@pytest.fixture(scope="module")
def keyed_schema(keyed_api):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_url(f"{keyed_api.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")
keyed = schemathesis.pytest.from_fixture("keyed_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, api) -> None:  # type: ignore[no-untyped-def]
    response = case.call(base_url=api.url)
    assert response.status_code < 500, (case.method, case.path, response.text[:300])


@keyed.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_with_a_valid_key(case, keyed_api) -> None:  # type: ignore[no-untyped-def]
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {FUZZ_KEY}"}  # over any generated one
    response = case.call(base_url=keyed_api.url)
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
    assert response.status_code != 401, (case.method, case.path, "the valid key was refused")
