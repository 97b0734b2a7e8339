"""HTTP errors in FastAPI's validation format: ``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException


def field_error(loc: list[Any], msg: str, status: int = 422, kind: str = "value_error") -> HTTPException:
    """An HTTPException whose detail names the offending field by its location."""
    return HTTPException(status_code=status, detail=[{"loc": loc, "msg": msg, "type": kind}])
