"""A second space registered only through the Space interface (tests/plugins/zcs_toy_space.py) flows through
the engine, the CLI and the running service (real HTTP, embedded Redis, SQLite) with no change to api/,
workers/ or storage/."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from kit import all_scores, free_port, start, stop, wait_http, wait_job, zcscore

ARCHS = ["c3-s-c1-p", "c3-c1-p", "c5-p-c3", "p"]  # the first two are isomorphs
PROXIES = ["params", "flops", "zico", "az_nas"]


def test_engine_scores_the_toy_space() -> None:
    from zcs_toy_space import ToySpace

    from zcscore.engine import Engine, ScoreConfig
    from zcscore.spaces import SpaceError, get_space

    space = get_space("toy")
    assert isinstance(space, ToySpace)
    recs = Engine(PROXIES, ScoreConfig(seed=1)).score_archs(ARCHS, space="toy")
    by = {(r.arch, r.proxy): r for r in recs}
    assert all(r.error is None for r in recs), [r.error for r in recs if r.error]
    for proxy in PROXIES:
        assert by[(ARCHS[0], proxy)].score == by[(ARCHS[1], proxy)].score  # isomorphs: one network, one score
    assert by[(ARCHS[0], "params")].provenance["scored_as"] == "c3-c1-p"
    with pytest.raises(SpaceError, match="unknown op 'x9'"):
        Engine(["params"]).score_archs(["c3-x9"], space="toy")


def test_cli_and_service_score_the_toy_space(tmp_path: Path) -> None:
    out = tmp_path / "toy.csv"
    cli = subprocess.run(
        [
            *zcscore("--plugin", "zcs_toy_space", "score", "--space", "toy", "--proxies", ",".join(PROXIES)),
            "--no-progress",
            "--out",
            str(out),
            "--arch",
            *ARCHS,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    expected = {(r["arch"], r["proxy"]): float(r["score"]) for r in csv.DictReader(out.open())}
    bad = subprocess.run(
        [
            *zcscore("--plugin", "zcs_toy_space", "score", "--space", "toy", "--proxies", "params"),
            "--out",
            "-",
            "--arch",
            "c3-zz",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "unknown op 'zz'" in bad.stderr

    port = free_port()
    env = {"ZCSCORE_HOME": str(tmp_path / "home"), "ZCSCORE_PLUGINS": '["zcs_toy_space"]'}
    proc = start(zcscore("serve", "--port", str(port), "--ray-cpus", "1"), env, tmp_path / "serve.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            assert "toy" in [s["name"] for s in client.get("/v1/spaces").json()]
            refused = client.post("/v1/jobs", json={"space": "toy", "archs": ARCHS, "proxies": ["epsinas"]})
            assert refused.status_code == 422 and "not defined for space toy" in refused.text
            invalid = client.post("/v1/jobs", json={"space": "toy", "archs": ["c3", "c3-q"], "proxies": ["params"]})
            assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"] == ["body", "archs", 1]
            job = client.post("/v1/jobs", json={"space": "toy", "archs": ARCHS, "proxies": PROXIES})
            assert job.status_code == 202, job.text
            assert wait_job(client, job.json()["id"])["status"] == "done"
            items = all_scores(client, job.json()["id"])
            look = client.get("/v1/scores", params={"space": "toy", "proxy": "params", "arch": "c3-s-c1-p"}).json()
            assert [x["arch"] for x in look["items"]] == ["c3-c1-p"]
    finally:
        stop(proc)
    assert [(i["arch"], i["proxy"]) for i in items] == list(expected)
    for i in items:
        want = expected[(i["arch"], i["proxy"])]
        if math.isfinite(want):
            assert i["score"] == pytest.approx(want, rel=1e-6), (i["arch"], i["proxy"])
        else:
            assert i["score"] in (None, "inf", "-inf")


def test_unknown_space_names_the_known_ones() -> None:
    proc = subprocess.run(
        [*zcscore("score", "--space", "nope", "--proxies", "params", "--arch", "x", "--out", "-")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "unknown space 'nope'" in proc.stderr and "nb201" in proc.stderr
    assert sys.executable  # the CLI ran in this interpreter
