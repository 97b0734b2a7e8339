"""A stored score is a pure function of its key: `zcscore serve` equals `zcscore score` (same seed, defaults)
for every seed proxy, and two services under different PYTHONHASHSEED values store identical scores and
provenance. Real processes: two `zcscore serve` (SQLite + embedded Redis + local Ray) and the CLI."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import httpx
import pytest
from kit import all_scores, free_port, start, stop_all, wait_http, wait_job, zcscore

ARCHS = [  # 2 isomorphism classes (a trainable class costs ~8 s per process on CI's 2 cores)
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # degenerate: sentinels
    "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|",
    "|skip_connect~0|+|nor_conv_3x3~0|none~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_1x1~2|",  # isomorph of the above
]
PROXIES = ["az_nas", "zico", "xi_gsnr", "intrain", "epsinas", "params", "flops"]


def same(a: float | str | None, b: float) -> bool:
    """A JSON score (null = NaN, "inf"/"-inf") equals a CSV float to 1e-6 relative."""
    if a is None:
        return math.isnan(b)
    if isinstance(a, str):
        return math.isinf(b) and a == ("inf" if b > 0 else "-inf")
    return math.isfinite(b) and abs(a - b) <= 1e-6 * max(abs(a), abs(b), 1e-30)


def cli_scores(tmp: Path) -> tuple[list[str], Path]:
    out = tmp / "cli.csv"
    args = ["score", "--proxies", ",".join(PROXIES), "--no-progress", "--out", str(out), "--arch", *ARCHS]
    return zcscore(*args), out


@pytest.mark.timeout(600)
def test_service_equals_cli_and_is_stable_across_hash_seeds(tmp_path: Path) -> None:
    procs = {}
    try:
        cmd, out = cli_scores(tmp_path)
        procs["cli"] = start(cmd, {"PYTHONHASHSEED": "3"}, tmp_path / "cli.log")
        ports = {}
        for seed in ("1", "2"):
            ports[seed] = free_port()
            env = {"PYTHONHASHSEED": seed, "ZCSCORE_HOME": str(tmp_path / f"home{seed}"), "ZCSCORE_BATCH_SIZE": "3"}
            serve = zcscore("serve", "--port", str(ports[seed]), "--workers", "1", "--ray-cpus", "1")
            procs[seed] = start(serve, env, tmp_path / f"serve{seed}.log")
        got = {}
        for seed, port in ports.items():
            wait_http(f"http://127.0.0.1:{port}/healthz", proc=procs[seed])
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                job = client.post("/v1/jobs", json={"archs": ARCHS, "proxies": PROXIES, "config": {"seed": 1}})
                assert job.status_code == 202, job.text
                status = wait_job(client, job.json()["id"], timeout=540)
                assert status["failed"] == 0, status
                got[seed] = all_scores(client, job.json()["id"])
        assert procs["cli"].wait(300) == 0, (tmp_path / "cli.log").read_text()[-2000:]
    finally:
        stop_all(list(procs.values()))
    rows = {(r["arch"], r["proxy"]): r for r in csv.DictReader(out.open())}
    assert len(got["1"]) == len(rows) == len(ARCHS) * len(PROXIES)
    for item in got["1"]:
        row = rows[(item["arch"], item["proxy"])]
        assert same(item["score"], float(row["score"])), (item["arch"], item["proxy"], item["score"], row["score"])
    for a, b in zip(got["1"], got["2"]):
        assert (a["arch"], a["proxy"], a["score"], a["components"]) == (
            b["arch"],
            b["proxy"],
            b["score"],
            b["components"],
        )
        assert a["provenance"] == b["provenance"]
    protocols = {i["proxy"]: i["provenance"]["input_protocol"] for i in got["1"]}
    assert protocols["az_nas"].startswith("gaussian N(0,1) 64x3x32x32")  # stable, whatever the hash seed
