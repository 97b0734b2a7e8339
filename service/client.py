"""Python SDK for the zcscore HTTP API: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio), on httpx.

Both speak the same calls, built once by :class:`_Calls` and parsed by the same functions; only the I/O
differs. Connection errors are retried with exponential backoff; an HTTP error raises :class:`ApiError` with
the server's message and the field it names. Needs ``pip install 'zcscore[client]'`` (httpx; pandas for
:meth:`Client.dataframe`). Torch-free.

    with zcscore.Client("http://127.0.0.1:8000") as client:
        records = client.score(["|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"], ["zico"])
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from zcscore.records import ScoreRecord

DEFAULT_URL = "http://127.0.0.1:8000"
DONE_STATES = frozenset({"done", "failed", "cancelled"})


class ApiError(Exception):
    """An HTTP error answer: ``status``, the server's ``message`` and the ``field`` it names (e.g. ``body.archs``)."""

    def __init__(self, status: int, message: str, field: str | None = None, body: Any = None) -> None:
        super().__init__(f"HTTP {status}: {message}" + (f" (field {field})" if field else ""))
        self.status, self.message, self.field, self.body = status, message, field, body


class JobTimeout(TimeoutError):
    """:meth:`Client.wait` gave up before the job finished."""


def _value(v: Any) -> float:
    """A JSON score: float, ``None`` (NaN) or ``"inf"``/``"-inf"``."""
    if v is None:
        return math.nan
    return float(v)


def score_record(item: dict[str, Any]) -> ScoreRecord:
    """A :class:`ScoreRecord` from one item of ``GET /v1/jobs/{id}/scores``."""
    error = item.get("error") or (None if item.get("status") == "done" else item.get("status"))
    return ScoreRecord(
        arch=item["arch"],
        proxy=item["proxy"],
        score=_value(item.get("score")),
        seconds=float(item.get("seconds") or 0.0),
        components={k: _value(v) for k, v in (item.get("components") or {}).items()},
        provenance=item.get("provenance") or {},
        error=error,
    )


def raise_for(resp: httpx.Response) -> httpx.Response:
    """``resp`` if it is a success; else :class:`ApiError` with the message and field of the answer."""
    if resp.status_code < 400:
        return resp
    try:
        body = resp.json()
    except ValueError:
        raise ApiError(resp.status_code, resp.text.strip() or resp.reason_phrase) from None
    message, loc = resp.reason_phrase, None
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:  # problem+json
        first = body["errors"][0]
        message = str(first.get("msg") or body.get("detail") or message)
        loc = ".".join(str(p) for p in first.get("loc", ())) or None
    elif isinstance(body, dict) and body.get("detail"):
        message = str(body["detail"])
    raise ApiError(resp.status_code, message, loc, body)


@dataclass(frozen=True)
class Call:
    """One HTTP request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], Any]
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def _json(resp: httpx.Response) -> Any:
    return resp.json()


def _content(resp: httpx.Response) -> bytes:
    return resp.content


def _drop_none(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


class _Calls:
    """The API's calls as :class:`Call` values (shared by the blocking and the asyncio client)."""

    @staticmethod
    def submit(
        archs: Sequence[str],
        proxies: Sequence[str],
        space: str = "nb201",
        seed: int = 1,
        num_classes: int = 10,
        idempotency_key: str | None = None,
    ) -> Call:
        body = {
            "space": space,
            "archs": list(archs),
            "proxies": list(proxies),
            "config": {"seed": seed, "num_classes": num_classes},
        }
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return Call("POST", "/v1/jobs", lambda r: str(r.json()["id"]), json=body, headers=headers)

    @staticmethod
    def status(job_id: str, wait: float = 0.0) -> Call:
        return Call("GET", f"/v1/jobs/{job_id}", _json, {"wait": round(wait, 3)} if wait > 0 else {})

    @staticmethod
    def cancel(job_id: str) -> Call:
        return Call("DELETE", f"/v1/jobs/{job_id}", _json)

    @staticmethod
    def jobs(status: str | None, limit: int) -> Call:
        return Call("GET", "/v1/jobs", lambda r: r.json()["items"], _drop_none({"status": status, "limit": limit}))

    @staticmethod
    def scores_page(job_id: str, limit: int, cursor: str | None) -> Call:
        return Call("GET", f"/v1/jobs/{job_id}/scores", _json, _drop_none({"limit": limit, "cursor": cursor}))

    @staticmethod
    def lookup(arch: str, proxy: str, space: str) -> Call:
        return Call("GET", "/v1/scores", lambda r: r.json()["items"], {"arch": arch, "proxy": proxy, "space": space})

    @staticmethod
    def top(proxy: str, space: str, k: int, seed: int | None) -> Call:
        params = _drop_none({"proxy": proxy, "space": space, "k": k, "seed": seed})
        return Call("GET", "/v1/top", lambda r: r.json()["items"], params)

    @staticmethod
    def population(proxy: str, space: str, seed: int, k: int | None) -> Call:
        return Call("GET", "/v1/population", _json, _drop_none({"proxy": proxy, "space": space, "seed": seed, "k": k}))

    @staticmethod
    def export(space: str, format: str, proxy: str | None) -> Call:
        return Call("GET", "/v1/export", _content, _drop_none({"space": space, "format": format, "proxy": proxy}))

    @staticmethod
    def proxies() -> Call:
        return Call("GET", "/v1/proxies", _json)

    @staticmethod
    def spaces() -> Call:
        return Call("GET", "/v1/spaces", _json)


class _Base:
    def __init__(self, url: str, api_key: str | None, retries: int, backoff_s: float) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.retries = retries
        self.backoff_s = backoff_s

    def _delay(self, attempt: int) -> float:
        return float(self.backoff_s * 2**attempt)


class Client(_Base):
    """Blocking client. ``retries`` connection attempts more after the first, ``backoff_s`` doubling each time."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        super().__init__(url, api_key, retries, backoff_s)
        self._http = httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _run(self, call: Call) -> Any:
        for attempt in range(self.retries + 1):
            try:
                resp = self._http.request(
                    call.method, call.path, params=call.params, json=call.json, headers=call.headers
                )
                break
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
                time.sleep(self._delay(attempt))
        return call.parse(raise_for(resp))

    def submit(self, archs: Sequence[str], proxies: Sequence[str], **options: Any) -> str:
        """Queue a job (``space``, ``seed``, ``num_classes``, ``idempotency_key``); returns its id."""
        job_id: str = self._run(_Calls.submit(archs, proxies, **options))
        return job_id

    def status(self, job_id: str) -> dict[str, Any]:
        """``{"id", "status", "done", "failed", "total", "failures"}``."""
        status: dict[str, Any] = self._run(_Calls.status(job_id))
        return status

    def wait(
        self, job_id: str, timeout: float | None = None, poll_s: float = 10.0, progress: bool = False
    ) -> dict[str, Any]:
        """Long-poll until the job is done or failed (a progress bar on stderr with ``progress``); returns its status.

        Each request waits up to ``poll_s`` seconds on the server (``GET /v1/jobs/{id}?wait=``).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with _Progress(progress, job_id) as bar:
            while True:
                left = poll_s if deadline is None else min(poll_s, max(deadline - time.monotonic(), 0.0))
                status: dict[str, Any] = self._run(_Calls.status(job_id, left))
                bar.update(status)
                if status["status"] in DONE_STATES:
                    return status
                if deadline is not None and time.monotonic() >= deadline:
                    raise JobTimeout(f"job {job_id} not finished after {timeout} s: {status}")

    def scores(self, job_id: str, page_size: int = 1000) -> list[ScoreRecord]:
        """Every score of a job as records, one per arch x requested proxy, in request order."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = self._run(_Calls.scores_page(job_id, page_size, cursor))
            items.extend(page["items"])
            cursor = page.get("next")
            if not cursor:
                return [score_record(i) for i in items]

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job (queued work dropped, stored scores kept); returns its status."""
        status: dict[str, Any] = self._run(_Calls.cancel(job_id))
        return status

    def jobs(self, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Jobs, newest first (``status``: queued, running, done or failed)."""
        items: list[dict[str, Any]] = self._run(_Calls.jobs(status, limit))
        return items

    def dataframe(self, job_id: str) -> Any:
        """A job's scores as a pandas DataFrame (one row per arch x proxy)."""
        return records_frame(self.scores(job_id))

    def score(
        self, archs: Sequence[str], proxies: Sequence[str], timeout: float | None = None, **options: Any
    ) -> list[ScoreRecord]:
        """Submit, wait and read the scores in one call."""
        job_id = self.submit(archs, proxies, **options)
        self.wait(job_id, timeout=timeout)
        return self.scores(job_id)

    def lookup(self, arch: str, proxy: str, space: str = "nb201") -> list[dict[str, Any]]:
        """Stored scores of an arch (any isomorph) and proxy, every seed/config."""
        items: list[dict[str, Any]] = self._run(_Calls.lookup(arch, proxy, space))
        return items

    def top(self, proxy: str, space: str = "nb201", k: int = 10, seed: int | None = None) -> list[dict[str, Any]]:
        """The ``k`` best stored archs of a proxy."""
        items: list[dict[str, Any]] = self._run(_Calls.top(proxy, space, k, seed))
        return items

    def population(self, proxy: str, space: str = "nb201", seed: int = 1, k: int | None = None) -> dict[str, Any]:
        """A population proxy or ensemble over every stored arch of ``space`` (``GET /v1/population``)."""
        result: dict[str, Any] = self._run(_Calls.population(proxy, space, seed, k))
        return result

    def export(self, space: str = "nb201", format: str = "csv", proxy: str | None = None) -> bytes:
        """Every stored score of a space as CSV or Parquet bytes."""
        data: bytes = self._run(_Calls.export(space, format, proxy))
        return data

    def proxies(self) -> list[dict[str, Any]]:
        """The proxy catalogue."""
        items: list[dict[str, Any]] = self._run(_Calls.proxies())
        return items

    def spaces(self) -> list[dict[str, Any]]:
        """The registered search spaces."""
        items: list[dict[str, Any]] = self._run(_Calls.spaces())
        return items


class AsyncClient(_Base):
    """asyncio client with the same calls as :class:`Client` (``await client.score(...)``)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        super().__init__(url, api_key, retries, backoff_s)
        self._http = httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _run(self, call: Call) -> Any:
        for attempt in range(self.retries + 1):
            try:
                resp = await self._http.request(
                    call.method, call.path, params=call.params, json=call.json, headers=call.headers
                )
                break
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
                await asyncio.sleep(self._delay(attempt))
        return call.parse(raise_for(resp))

    async def submit(self, archs: Sequence[str], proxies: Sequence[str], **options: Any) -> str:
        """Queue a job; returns its id."""
        job_id: str = await self._run(_Calls.submit(archs, proxies, **options))
        return job_id

    async def status(self, job_id: str) -> dict[str, Any]:
        """The job's progress."""
        status: dict[str, Any] = await self._run(_Calls.status(job_id))
        return status

    async def wait(self, job_id: str, timeout: float | None = None, poll_s: float = 10.0) -> dict[str, Any]:
        """Long-poll until the job is done or failed; returns its status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = poll_s if deadline is None else min(poll_s, max(deadline - time.monotonic(), 0.0))
            status: dict[str, Any] = await self._run(_Calls.status(job_id, left))
            if status["status"] in DONE_STATES:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise JobTimeout(f"job {job_id} not finished after {timeout} s: {status}")

    async def scores(self, job_id: str, page_size: int = 1000) -> list[ScoreRecord]:
        """Every score of a job as records."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await self._run(_Calls.scores_page(job_id, page_size, cursor))
            items.extend(page["items"])
            cursor = page.get("next")
            if not cursor:
                return [score_record(i) for i in items]

    async def score(
        self, archs: Sequence[str], proxies: Sequence[str], timeout: float | None = None, **options: Any
    ) -> list[ScoreRecord]:
        """Submit, wait and read the scores in one call."""
        job_id = await self.submit(archs, proxies, **options)
        await self.wait(job_id, timeout=timeout)
        return await self.scores(job_id)

    async def top(self, proxy: str, space: str = "nb201", k: int = 10, seed: int | None = None) -> list[dict[str, Any]]:
        """The ``k`` best stored archs of a proxy."""
        items: list[dict[str, Any]] = await self._run(_Calls.top(proxy, space, k, seed))
        return items

    async def proxies(self) -> list[dict[str, Any]]:
        """The proxy catalogue."""
        items: list[dict[str, Any]] = await self._run(_Calls.proxies())
        return items


def records_frame(records: Iterable[ScoreRecord]) -> Any:
    """Score records as a pandas DataFrame (``arch, proxy, score, seconds, error, components, provenance``)."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "arch": r.arch,
                "proxy": r.proxy,
                "score": r.score,
                "seconds": r.seconds,
                "error": r.error,
                "components": r.components,
                "provenance": r.provenance,
            }
            for r in records
        ]
    )


class _Progress:
    """A tqdm bar over a job's tasks, or nothing."""

    def __init__(self, enabled: bool, job_id: str) -> None:
        self.bar: Any = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(desc=f"job {job_id[:8]}", unit="task")

    def update(self, status: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.total = status["total"]
            self.bar.n = status["done"] + status["failed"]
            self.bar.refresh()

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
