"""One error shape for every 4xx/5xx: RFC 9457 problem details (``application/problem+json``).

``{"type", "title", "status", "detail", "instance", "errors": [{"loc": [...], "msg": ..., "type": ...}]}``:
``detail`` is the first error's message, ``errors`` names every offending field by its location (FastAPI's
validation format). Route errors, request validation, the framework's own 404/405 and the body-size guard
all answer in it.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


def field_error(loc: list[Any], msg: str, status: int = 422, kind: str = "value_error") -> HTTPException:
    """An HTTPException whose problem names the offending field by its location."""
    return HTTPException(status_code=status, detail=[{"loc": loc, "msg": msg, "type": kind}])


def problem(status: int, errors: list[dict[str, Any]], instance: str | None = None) -> JSONResponse:
    """A problem+json answer for ``errors`` (each ``{"loc", "msg", "type"}``)."""
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": str(errors[0]["msg"]) if errors else title,
        "instance": instance,
        "errors": jsonable_encoder(errors),
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _errors(detail: Any, status: int) -> list[dict[str, Any]]:
    if isinstance(detail, list) and all(isinstance(d, dict) for d in detail):
        return [{k: d[k] for k in ("loc", "msg", "type") if k in d} for d in detail]
    return [{"loc": [], "msg": str(detail), "type": HTTPStatus(status).name.lower()}]


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every HTTP and validation error of ``app`` as problem+json."""

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        resp = problem(exc.status_code, _errors(exc.detail, exc.status_code), request.url.path)
        for key, value in (exc.headers or {}).items():
            resp.headers[key] = value
        return resp

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        return problem(422, errors, request.url.path)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "description": "Problem details (RFC 9457)",
        "content": {
            PROBLEM_JSON: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "instance": {"type": "string", "nullable": True},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "loc": {"type": "array", "items": {}},
                                    "msg": {"type": "string"},
                                    "type": {"type": "string"},
                                },
                            },
                        },
                    },
                }
            }
        },
    }
}
