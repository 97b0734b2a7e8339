"""API fixtures: the real app served by uvicorn over HTTP (see apikit)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from apikit import Server, serve


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The API with small limits (50 archs per job, 20 kB bodies)."""
    yield from serve(tmp_path_factory.mktemp("api"), max_archs_per_job=50, max_body_bytes=20_000)
