"""A second space registered only through the Space interface (tests/plugins/zcs_toy_space.py) flows through
the engine, the CLI and the running service (real HTTP, embedded Redis, SQLite) with no change to api/,
workers/ or storage/."""

from __future__ import annotations

import csv
import json
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
            assert invalid.status_code == 422 and invalid.json()["errors"][0]["loc"] == ["body", "archs", 1]
            job = client.post("/v1/jobs", json={"space": "toy", "archs": ARCHS, "proxies": PROXIES})
            assert job.status_code == 202, job.text
            assert wait_job(client, job.json()["id"])["status"] == "done"
            items = all_scores(client, job.json()["id"])
            look = client.get("/v1/scores", params={"space": "toy", "proxy": "params", "arch": "c3-s-c1-p"}).json()
            assert [x["arch"] for x in look["items"]] == ["c3-c1-p"]
            builtin = score_builtin_spaces(client)
    finally:
        stop(proc)
    from zcscore.spaces import get_space
    from zcscore.spaces.nb101 import nb101_params

    assert all(isinstance(i["score"], float) for rows in builtin.values() for i in rows), builtin
    dag, nb101, mbv2 = (get_space(n) for n in ("dag", "nb101", "mbv2"))
    dag_params = sum(p.numel() for p in dag.build(dag.parse(DAG)).parameters()) / 1e6
    assert builtin["dag"][0]["score"] == pytest.approx(dag_params)
    assert builtin["nb101"][0]["score"] == pytest.approx(nb101_params(nb101.canonical(nb101.parse(NB101))) / 1e6)
    assert builtin["mbv2"][1]["score"] == pytest.approx(mbv2.flops_m(mbv2.parse(MBV2), num_classes=10))
    assert [(i["arch"], i["proxy"]) for i in items] == list(expected)
    for i in items:
        want = expected[(i["arch"], i["proxy"])]
        if math.isfinite(want):
            assert i["score"] == pytest.approx(want, rel=1e-6), (i["arch"], i["proxy"])
        else:
            assert i["score"] in (None, "inf", "-inf")


DAG = json.dumps(
    {
        "input": [3, 32, 32],
        "nodes": [
            {"id": "c", "op": "conv", "in": ["input"], "out": 8, "k": 3},
            {"id": "b", "op": "bn", "in": ["c"]},
            {"id": "r", "op": "relu", "in": ["b"]},
            {"id": "c2", "op": "conv", "in": ["r"], "out": 8, "k": 3},
            {"id": "s", "op": "add", "in": ["c2", "r"]},
            {"id": "g", "op": "gap", "in": ["s"]},
            {"id": "fc", "op": "linear", "in": ["g"], "out": 10},
        ],
    }
)
NB101 = '{"matrix": [[0,1,1,0,0,0,0],[0,0,0,1,0,0,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0],[0,0,0,0,0,0,0],[0,0,0,0,0,0,0]], "ops": ["input","conv3x3-bn-relu","maxpool3x3","conv1x1-bn-relu","maxpool3x3","maxpool3x3","output"]}'
MBV2 = "r32-s16-[e1k3s1d1w16][e4k5s2d1w24]-l64"


def score_builtin_spaces(client: httpx.Client) -> dict[str, list[dict]]:
    """A JSON DAG, an NB101 cell and a small MobileNetV2 net through the running service; refusals at the door."""
    refused = client.post("/v1/jobs", json={"space": "mbv2", "archs": [MBV2], "proxies": ["params", "zico"]})
    assert refused.status_code == 422 and refused.json()["errors"][0]["loc"] == ["body", "proxies", 1]
    assert "not defined for space mbv2" in refused.text
    out = {}
    for space, arch, proxies in (
        ("dag", DAG, ["params", "flops", "az_nas", "intrain", "zico"]),
        ("nb101", NB101, ["params", "flops"]),
        ("mbv2", MBV2, ["params", "flops", "intrain"]),
    ):
        job = client.post("/v1/jobs", json={"space": space, "archs": [arch], "proxies": proxies})
        assert job.status_code == 202, job.text
        assert wait_job(client, job.json()["id"])["status"] == "done", space
        out[space] = all_scores(client, job.json()["id"])
    return out


def test_unknown_space_names_the_known_ones() -> None:
    proc = subprocess.run(
        [*zcscore("score", "--space", "nope", "--proxies", "params", "--arch", "x", "--out", "-")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "unknown space 'nope'" in proc.stderr and "nb201" in proc.stderr
    assert sys.executable  # the CLI ran in this interpreter
