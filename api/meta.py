"""Service routes: proxy catalogue, health and Prometheus metrics."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from zcscore.api.auth import current_user
from zcscore.api.deps import ServicesDep
from zcscore.api.schemas import Health, ProxyInfo, SpaceInfo
from zcscore.proxies.catalog import list_specs
from zcscore.spaces import list_spaces
from zcscore.workers.streams import lane_stats

router = APIRouter(tags=["service"])


@router.get("/v1/proxies", dependencies=[Depends(current_user)])
def proxies() -> list[ProxyInfo]:
    """The proxy catalogue (name, version, protocol, sentinel, population components)."""
    return [
        ProxyInfo(
            name=s.name,
            version=s.version,
            input=s.input.value,
            needs_grad=s.needs_grad,
            description=s.description,
            sentinel=s.sentinel,
            higher_is_better=s.higher_is_better,
            population=s.population,
            components=list(s.components),
            input_protocol=s.input_protocol,
        )
        for s in list_specs()
    ]


@router.get("/v1/spaces", dependencies=[Depends(current_user)])
def spaces() -> list[SpaceInfo]:
    """The registered search spaces (built-in and plugins)."""
    return [SpaceInfo(name=s.name, description=s.description, example=s.example, size=s.size) for s in list_spaces()]


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(services: ServicesDep) -> Health | JSONResponse:
    """200 when the database and Redis answer, 503 otherwise."""
    db = rd = False
    with contextlib.suppress(Exception):
        db = services.store.ping()
    with contextlib.suppress(Exception):
        rd = bool(services.redis.ping())
    health = Health(status="ok" if db and rd else "degraded", database=db, redis=rd)
    if db and rd:
        return health
    return JSONResponse(health.model_dump(), status_code=503)


@router.get("/metrics", response_class=Response)
def metrics(services: ServicesDep) -> Response:
    """Prometheus text exposition (queue gauges are read from Redis at scrape time)."""
    m, r, n = services.metrics, services.redis, services.names
    try:
        lanes = lane_stats(r, n)  # every user's lanes together
        m.queue.set(sum(st.length for st in lanes))
        m.dead.set(r.xlen(n.dead))
        m.pending.set(sum(st.pending for st in lanes))
    except Exception:
        pass
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
