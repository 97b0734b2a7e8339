"""What routes depend on: the store, Redis and settings, opened once per app (in its lifespan)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import Depends, Request

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
