"""``zcscore dispatcher``: a dispatcher and its Ray scoring actors (cluster mode)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zcscore.settings import Settings

log = logging.getLogger(__name__)


def workers_arg(text: str) -> int | str:
    """``--workers``: a positive integer or ``auto`` (see :func:`zcscore.workers.runtime.pool_shape`)."""
    if text.strip().lower() == "auto":
        return "auto"
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("--workers must be >= 1 or auto")
    return n


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``zcscore dispatcher`` (the rest comes from ZCSCORE_* settings)."""
    parser.add_argument(
        "--workers", type=workers_arg, default=None, help="scoring actors, or auto (default ZCSCORE_WORKERS)"
    )
    parser.add_argument("--gpus-per-worker", type=float, default=None, help="GPU fraction per actor")
    parser.add_argument("--ray-cpus", type=int, default=None, help="CPUs of a local Ray (no RAY_ADDRESS)")
    parser.add_argument("--consumer", default=None, help="consumer name in the Redis group (default host-pid)")


def apply_overrides(args: argparse.Namespace) -> Settings:
    """Settings from the environment with the command-line overrides applied."""
    from zcscore.settings import get_settings

    s = get_settings()
    if args.workers is not None:
        s.workers = args.workers
    if args.gpus_per_worker is not None:
        s.gpus_per_worker = args.gpus_per_worker
    if s.gpus_per_worker and s.device == "cpu":
        s.device = "cuda"
    return s


def run(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM."""
    from zcscore.workers.runtime import build_dispatcher, init_ray, log_startup

    settings = apply_overrides(args)
    if not settings.redis_url:
        sys.stderr.write("zcscore dispatcher: set ZCSCORE_REDIS_URL (the API's Redis)\n")
        return 2
    init_ray(settings, args.ray_cpus)
    dispatcher = build_dispatcher(settings, args.consumer)
    log_startup(settings, dispatcher)
    if settings.metrics_port is not None:
        from zcscore.workers.metrics import serve_metrics

        serve_metrics(settings.metrics_port, settings.metrics_addr)
        log.info("metrics: http://%s:%d/metrics", settings.metrics_addr, settings.metrics_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        dispatcher.run(stop)
    finally:
        dispatcher.pool.shutdown()
    return 0
