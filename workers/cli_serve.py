"""``zcscore serve``: API + dispatcher + local Ray actors in one process, on embedded defaults."""

from __future__ import annotations

import argparse
import logging
import threading

from zcscore.workers.cli_dispatcher import workers_arg

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``zcscore serve``."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--workers", type=workers_arg, default=None, help="scoring actors, or auto (default ZCSCORE_WORKERS)"
    )
    parser.add_argument("--gpus-per-worker", type=float, default=None, help="GPU fraction per actor")
    parser.add_argument("--ray-cpus", type=int, default=None, help="CPUs of the local Ray")


def run(args: argparse.Namespace) -> int:
    """Start everything; stop on SIGINT/SIGTERM."""
    import uvicorn

    from zcscore.api.app import create_app
    from zcscore.workers.cli_dispatcher import apply_overrides
    from zcscore.workers.runtime import build_dispatcher, init_ray, log_startup, run_in_thread
    from zcscore.workers.streams import shutdown_embedded

    settings = apply_overrides(args)
    init_ray(settings, args.ray_cpus)
    dispatcher = build_dispatcher(settings)  # starts the embedded Redis if needed
    stop = threading.Event()
    thread = run_in_thread(dispatcher, stop)
    log_startup(settings, dispatcher, f"http://{args.host}:{args.port}")
    try:
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
    finally:
        stop.set()
        thread.join(timeout=10)
        dispatcher.pool.shutdown()
        shutdown_embedded()
    return 0
