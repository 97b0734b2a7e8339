"""Load test of the scoring service: throughput and overhead versus the core in-process.

Starts `zcscore serve` (embedded SQLite + Redis, local Ray) once per actor count, submits one job of
``--archs`` distinct NB201 archs x cheap proxies, times submit -> done, and compares with
``Engine(...).score_archs`` in this process on the same archs (1 torch thread everywhere).

    python benchmarks/loadtest.py --archs 1000 --proxies params,flops --workers 1,2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def distinct_archs(n: int, offset: int = 0) -> list[str]:
    """``n`` archs from distinct isomorphism classes (canonical strings), in a fixed order."""
    from zcscore.spaces.nb201 import NB201Arch

    ops = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    seen, out = set(), []
    i = 0
    while len(out) < n + offset:
        o = [ops[(i * 7919 // 5**k) % 5] for k in range(6)]  # a stride that visits all 15,625 cells
        canon = NB201Arch(tuple(o)).canonical().to_str()
        if canon not in seen:
            seen.add(canon)
            out.append(canon)
        i += 1
    return out[offset:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def in_process(archs: list[str], proxies: list[str], seed: int) -> tuple[float, float]:
    """Wall seconds for the core to score ``archs`` in this process, and the sum of record seconds."""
    import torch

    from zcscore.engine import Engine, ScoreConfig

    torch.set_num_threads(1)
    engine = Engine(proxies, ScoreConfig(seed=seed, threads=1))
    engine.score_archs(distinct_archs(4, offset=len(archs) + 10))  # warm-up on other archs
    t0 = time.perf_counter()
    records = engine.score_archs(archs)
    return time.perf_counter() - t0, sum(r.seconds for r in records)


def wait_done(client: httpx.Client, job_id: str, timeout: float) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = client.get(f"/v1/jobs/{job_id}").json()
        if status["status"] in ("done", "failed"):
            return status
        time.sleep(0.05)
    raise TimeoutError(job_id)


def via_service(archs: list[str], proxies: list[str], seed: int, workers: int, batch: int) -> dict:
    """Start a fresh service, warm its actors, then time one job of ``archs`` from submit to done."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="zcs-load-") as home:
        env = {
            **os.environ,
            "ZCSCORE_HOME": home,
            "ZCSCORE_THREADS": "1",
            "ZCSCORE_BATCH_SIZE": str(batch),
            "ZCSCORE_WORKERS": str(workers),
            "ZCSCORE_CPUS_PER_WORKER": "0.5",
        }
        log = open(Path(home) / "serve.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "zcscore.cli", "serve", "--port", str(port), "--ray-cpus", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        try:
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
            for _ in range(600):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            warm = {
                "archs": distinct_archs(4 * workers, offset=len(archs) + 20),
                "proxies": proxies,
                "config": {"seed": seed},
            }
            wait_done(client, client.post("/v1/jobs", json=warm).json()["id"], 300)
            body = {"space": "nb201", "archs": archs, "proxies": proxies, "config": {"seed": seed}}
            t0 = time.perf_counter()
            job = client.post("/v1/jobs", json=body).json()
            t_submit = time.perf_counter() - t0
            status = wait_done(client, job["id"], 1800)
            elapsed = time.perf_counter() - t0
            compute = 0.0
            cursor = None
            while True:
                params = {"limit": 10000, **({"cursor": cursor} if cursor else {})}
                page = client.get(f"/v1/jobs/{job['id']}/scores", params=params).json()
                compute += sum(item["seconds"] or 0.0 for item in page["items"])
                cursor = page["next"]
                if not cursor:
                    break
            t1 = time.perf_counter()
            again = client.post("/v1/jobs", json=body).json()
            t_cached = time.perf_counter() - t1
            return {
                "workers": workers,
                "seconds": elapsed,
                "submit_seconds": t_submit,
                "status": status,
                "tasks_per_s": status["total"] / elapsed,
                "actor_compute_seconds": compute,
                "overhead_vs_actor_compute": elapsed * workers / compute - 1,
                "resubmit_status": again["status"],
                "resubmit_seconds": t_cached,
            }
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=1000)
    parser.add_argument("--proxies", default="params,flops")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "reports" / "service_load.json")
    args = parser.parse_args()
    proxies = [p for p in args.proxies.split(",") if p]
    archs = distinct_archs(args.archs)
    tasks = len(archs) * len(proxies)
    load_before = os.getloadavg()
    core_s, core_compute = in_process(archs, proxies, args.seed)
    runs = [via_service(archs, proxies, args.seed, int(w), args.batch_size) for w in args.workers.split(",")]
    core_after, _ = in_process(archs, proxies, args.seed)  # the machine is shared: measure on both sides
    core_s = min(core_s, core_after)
    report = {
        "archs": len(archs),
        "proxies": proxies,
        "tasks": tasks,
        "batch_size": args.batch_size,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "node": platform.node()},
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "in_process_seconds": core_s,
        "in_process_seconds_after": core_after,
        "in_process_tasks_per_s": tasks / core_s,
        "in_process_record_seconds": core_compute,
        "in_process_overhead_vs_record_seconds": core_s / core_compute - 1,
        "service": runs,
        "overhead_vs_in_process": {str(r["workers"]): r["seconds"] / core_s - 1 for r in runs},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
