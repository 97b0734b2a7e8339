"""Worker counts per device (``--workers auto``, ``ZCSCORE_WORKERS=auto``) and the throughput bench on CPU."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from zcscore import capacity
from zcscore.bench.throughput import steady_rate
from zcscore.capacity import parse_workers, workers_for_memory
from zcscore.cli import main
from zcscore.settings import Settings

GIB = 1 << 30


def test_workers_follow_free_memory_then_cpu_cores_then_the_cap() -> None:
    # 78 GiB free, 2 GiB each, 10 % reserve: floor(70.2 / 2) = 35, but 16 cores bound it
    assert workers_for_memory(78 * GIB, 2048, cpus=16) == 16
    assert workers_for_memory(78 * GIB, 2048, cpus=64) == 35
    assert workers_for_memory(78 * GIB, 2048, cpus=64, max_workers=8) == 8
    assert workers_for_memory(78 * GIB, 2048, cpus=16, threads=4) == 4  # cores // threads
    assert workers_for_memory(int(4.5 * GIB), 2048, cpus=16) == 2  # floor(4.05 / 2)
    assert workers_for_memory(int(4.4 * GIB), 2048, cpus=16) == 1  # floor(3.96 / 2)
    assert workers_for_memory(1 * GIB, 2048, cpus=16) == 1  # never 0: one worker always runs
    assert workers_for_memory(10 * GIB, 1024, cpus=16, reserve=0.0) == 10


def test_memory_bound_is_floor_of_free_times_one_minus_reserve() -> None:
    free = 20 * GIB
    assert workers_for_memory(free, 3000, cpus=100) == math.floor(free * 0.9 / (3000 * (1 << 20)))
    with pytest.raises(ValueError):
        workers_for_memory(free, 0)


def test_parse_workers() -> None:
    assert parse_workers("4") == [4]
    assert parse_workers("1, 2,AUTO") == [1, 2, "auto"]
    for bad in ("0", "-1", "x", ""):
        with pytest.raises(ValueError):
            parse_workers(bad)


def test_auto_on_cpu_is_cores_over_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capacity, "usable_cpus", lambda: 8)
    assert capacity.auto_workers("cpu") == 8
    assert capacity.auto_workers("cpu", threads=2) == 4
    assert capacity.auto_workers("cpu", max_workers=3) == 3


def test_auto_on_cuda_reads_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capacity, "usable_cpus", lambda: 16)
    monkeypatch.setattr(capacity, "free_gpu_bytes", lambda device: 9 * GIB)
    assert capacity.auto_workers("cuda", per_worker_mb=2048) == 4  # floor(9 * 0.9 / 2)
    assert capacity.auto_workers("cuda:1", per_worker_mb=1024) == 8


def test_service_pool_shape_uses_fractional_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from zcscore.workers.runtime import pool_shape

    monkeypatch.setattr(capacity, "usable_cpus", lambda: 16)
    monkeypatch.setattr(capacity, "free_gpu_bytes", lambda device: 40 * GIB)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pool_shape(Settings(workers=3, gpus_per_worker=0.5)) == (3, 0.5)
    size, gpus = pool_shape(Settings(workers="auto", device="cuda", gpu_mem_per_worker_mb=4096))
    assert (size, gpus) == (2 * 9, pytest.approx(1 / 9))  # floor(36 GiB / 4 GiB) = 9 per GPU, 2 GPUs
    size, gpus = pool_shape(Settings(workers="auto", device="cuda", max_workers_per_gpu=4, gpus_per_worker=0.3))
    assert (size, gpus) == (8, 0.3)
    assert pool_shape(Settings(workers="auto", device="cuda", ray_address="head:6380"))[0] == 16  # one GPU's worth
    assert pool_shape(Settings(workers="auto", device="cpu", threads=2)) == (8, 0.0)
    assert pool_shape(Settings(device="cpu")) == (1, 0.0)  # unset: 1 on CPU, auto on CUDA
    assert pool_shape(Settings(device="cuda:0", gpu_mem_per_worker_mb=4096)) == (9, pytest.approx(1 / 9))


def test_steady_rate_skips_each_workers_first_arch() -> None:
    assert steady_rate([10.0, 11.0, 12.0, 13.0], 1) == pytest.approx(1.0)
    assert steady_rate([10.0, 10.0, 11.0, 12.0], 2) == pytest.approx(1.0)
    assert math.isnan(steady_rate([1.0], 1))


def test_throughput_on_cpu_writes_rows_per_proxy_and_suite(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(capacity, "usable_cpus", lambda: 1)  # auto = 1 worker: in-process, no spawn start-up
    args = ["bench", "--throughput", "--proxies", "params,flops", "--sample", "3", "--seed", "2"]
    assert main([*args, "--workers", "1", "--no-progress", "--out", str(tmp_path)]) == 0
    assert main([*args, "--workers", "auto", "--no-progress", "--out", str(tmp_path)]) == 0  # appends
    with open(tmp_path / "throughput.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["proxy"] for r in rows[:3]] == ["params", "flops", "suite"]
    assert len(rows) == 6 and {r["device"] for r in rows} == {"cpu"}
    assert rows[0]["workers"] == rows[3]["workers"] == "1"
    for r in rows:
        assert int(r["archs"]) == 3 and float(r["archs_per_s"]) > 0
        assert float(r["archs_per_s"]) == pytest.approx(3 / float(r["wall_s"]), rel=1e-2)
    md = (tmp_path / "throughput.md").read_text()
    assert md.count("--throughput`") == 2  # both commands listed
    assert "--throughput" in md and md.count("| suite |") == 2


def test_the_score_batch_travels_in_the_job_config_and_keys_only_the_passes_it_changes() -> None:
    from zcscore.numerics import Numerics
    from zcscore.proxies.catalog import get_spec
    from zcscore.storage.keys import job_config, proxy_config_hash
    from zcscore.workers.actor import ScoringActor

    numerics = Numerics.resolve("cpu", 1)
    plain, batched = job_config(1, 10, numerics), job_config(1, 10, numerics, batch=4)
    assert "batch" not in plain and batched["batch"] == 4  # batch 1 leaves existing keys as they were
    for name in ("az_trainability", "zico", "xi_gsnr", "intrain", "epsinas"):  # seed passes run batched: own keys
        assert proxy_config_hash(get_spec(name), plain) != proxy_config_hash(get_spec(name), batched), name
    synflow = get_spec("synflow")
    assert proxy_config_hash(synflow, plain) == proxy_config_hash(synflow, batched)  # one arch at a time either way
    actor = ScoringActor(device="cpu")
    assert actor._engine(("az_trainability",), batched).batch == 4
    assert actor._engine(("az_trainability",), plain).batch == 1
    assert Settings().score_batch == 1
