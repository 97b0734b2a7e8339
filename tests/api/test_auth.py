"""API keys: when configured, writes need a bearer key; reads stay open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from apikit import Server, serve

from zcscore.spaces.nb201 import EXAMPLE_ARCH

BODY = {"space": "nb201", "archs": [EXAMPLE_ARCH], "proxies": ["params"]}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(tmp_path_factory.mktemp("auth"), api_keys=["s3cret"])


def test_writes_need_a_bearer_key(secured: Server) -> None:
    assert secured.client.post("/v1/jobs", json=BODY).status_code == 401
    bad = secured.client.post("/v1/jobs", json=BODY, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json()["errors"][0]["loc"] == ["header", "authorization"]
    ok = secured.client.post("/v1/jobs", json=BODY, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 202
    assert secured.client.get(f"/v1/jobs/{ok.json()['id']}").status_code == 200
