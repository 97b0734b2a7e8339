"""``zcscore api``: run the HTTP API alone (cluster mode; dispatchers run elsewhere)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``zcscore api``."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)


def run(args: argparse.Namespace) -> int:
    """Serve the API with uvicorn until interrupted."""
    import sys

    import uvicorn

    from zcscore.api.app import create_app
    from zcscore.settings import get_settings

    if not get_settings().redis_url:
        sys.stderr.write("zcscore api: set ZCSCORE_REDIS_URL (shared with the dispatchers), or use `zcscore serve`\n")
        return 2
    from zcscore.workers.runtime import log_startup

    log_startup(get_settings(), url=f"http://{args.host}:{args.port}")
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")
    return 0
