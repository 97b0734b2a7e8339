"""Schemathesis over the OpenAPI schema, against the running API: no input yields a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings


@pytest.fixture(scope="module")
def api_schema(api):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_url(f"{api.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, api) -> None:  # type: ignore[no-untyped-def]
    response = case.call(base_url=api.url)
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
