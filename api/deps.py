"""What routes depend on: the store, Redis and settings, opened once per app (in its lifespan)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from zcscore.api.errors import field_error
from zcscore.api.metrics import Metrics
from zcscore.settings import Settings
from zcscore.storage.store import SqlStore
from zcscore.workers.streams import Names


@dataclass
class Services:
    """Long-lived resources of one app."""

    settings: Settings
    store: SqlStore
    redis: redis.Redis
    names: Names
    metrics: Metrics


def get_services(request: Request) -> Services:
    """The app's services."""
    services: Services = request.app.state.services  # set by the app's lifespan (Starlette state is untyped)
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


BEARER = HTTPBearer(auto_error=False, description="an API key: Authorization: Bearer <key>")


def require_writer(
    services: ServicesDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)] = None
) -> None:
    """When API keys are configured, writes need ``Authorization: Bearer <key>``."""
    keys = services.settings.api_keys
    if not keys:
        return
    token = credentials.credentials.strip().encode() if credentials is not None else b""
    # constant-time comparison against every key (no early exit on the first match)
    matches = [hmac.compare_digest(token, key.encode()) for key in keys]
    if credentials is None or credentials.scheme.lower() != "bearer" or not any(matches):
        raise field_error(["header", "authorization"], "missing or invalid bearer API key", 401, "auth")
