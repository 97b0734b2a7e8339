"""The FastAPI app: routes, body-size limit, metrics middleware, and resources opened in the lifespan.

Never imports torch or Ray (checked by a test): scoring happens in ``workers/``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

import zcscore
from zcscore.api import dashboard, jobs, meta, scores
from zcscore.api.deps import Services
from zcscore.api.errors import PROBLEM_RESPONSES, install_problem_handlers, problem
from zcscore.api.metrics import Metrics
from zcscore.settings import Settings, get_settings
from zcscore.storage.store import open_store
from zcscore.workers.streams import Names, connect


def open_services(settings: Settings, metrics: Metrics) -> Services:
    """Open the store (migrated to head) and Redis for one app."""
    store = open_store(settings.resolved_database_url, migrate=True)
    r = connect(settings.redis_url, settings.home)
    return Services(settings, store, r, Names(settings.redis_prefix), metrics)


def _too_large(limit: int, path: str) -> JSONResponse:
    return problem(
        413, [{"loc": ["body"], "msg": f"request body too large (limit {limit} bytes)", "type": "too_large"}], path
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; resources open on startup, from ``settings`` (default: the environment)."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = open_services(settings or get_settings(), metrics)
        app.state.services = services
        yield
        services.store.engine.dispose()

    app = FastAPI(
        title="zcscore",
        version=zcscore.__version__,
        lifespan=lifespan,
        description="Zero-cost NAS proxy scoring service: submit archs, get faithful proxy scores.",
        generate_unique_id_function=lambda route: route.name,  # operationIds = the route functions' names
        responses=PROBLEM_RESPONSES,
    )
    install_problem_handlers(app)
    app.include_router(jobs.router)
    app.include_router(scores.router)
    app.include_router(meta.router)
    app.include_router(dashboard.router)
    app.include_router(dashboard.page)
    app.mount("/ui/static", StaticFiles(directory=dashboard.STATIC), name="ui-static")

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        limit = (settings or get_settings()).max_body_bytes
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                bad = [{"loc": ["header", "content-length"], "msg": "invalid Content-Length", "type": "value_error"}]
                return problem(400, bad, request.url.path)
            if int(length) > limit:
                return _too_large(limit, request.url.path)
        t0 = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - t0)
        return response

    return app


app = create_app()
