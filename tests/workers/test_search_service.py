"""Search through a running `zcscore serve` (real HTTP, Redis, SQLite store) equals the in-process search, and a
second overlapping search is answered entirely from the store."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kit import REDIS_URL, free_port, start, stop, wait_http, zcscore

from zcscore.client import Client
from zcscore.search import ServiceScorer, search


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("search-serve")
    port = free_port()
    env = {
        "ZCSCORE_HOME": str(tmp / "home"),
        "ZCSCORE_THREADS": "1",
        "ZCSCORE_BATCH_SIZE": "8",
        "ZCSCORE_REDIS_URL": REDIS_URL,
        "ZCSCORE_REDIS_PREFIX": f"zcstest-search-{uuid.uuid4().hex[:8]}",
    }
    proc = start(zcscore("serve", "--port", str(port), "--ray-cpus", "1"), env, tmp / "serve.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def stored_rows(url: str) -> int:
    text = httpx.get(f"{url}/v1/export", params={"space": "nb201"}, timeout=60).text
    return len(list(csv.DictReader(io.StringIO(text))))


def test_service_search_equals_in_process_and_an_overlapping_search_is_all_cached(service: str, tmp_path: Path) -> None:
    out = tmp_path / "remote.json"
    cli = zcscore("search", "--api", service, "--algo", "rea", "--proxy", "synflow", "--budget", "8")
    done = subprocess.run(
        [*cli, "--seed", "4", "--population", "4", "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    remote = json.loads(out.read_text())
    local = search("rea", "synflow", budget=8, seed=4, population=4)
    assert remote["best_arch"] == local.best_arch and remote["archs"] == local.archs == 8
    assert [t["arch"] for t in remote["trace"]] == [a for a, _ in local.trace]
    assert [t["fitness"] for t in remote["trace"]] == pytest.approx([f for _, f in local.trace], rel=1e-6)

    before = stored_rows(service)
    with Client(service) as client:
        scorer = ServiceScorer("synflow", client=client)
        again = search("random", "synflow", budget=4, seed=4, scorer=scorer)  # REA's first 4 archs (same seed)
        assert again.archs == 4 and again.computed == 0
        assert scorer.jobs and all(job["cached"] for job in scorer.jobs)  # done at submission: nothing queued
        ensemble = search("az-evo", "ensemble:params+flops", budget=5, seed=1, client=client)
    assert stored_rows(service) == before + 2 * 5  # only the ensemble's params and flops are new
    assert ensemble.best_arch == search("az-evo", "ensemble:params+flops", budget=5, seed=1).best_arch
