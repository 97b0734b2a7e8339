"""The error taxonomy: every failure gets a code, a class (the user's input vs transient) and one clean line.

Input/config errors cannot fix themselves: they are refused at submission where possible and otherwise
fail their (arch, proxy) row at once, never retried. Transient errors (an actor died, a GPU ran out of
memory, the store or the queue hiccuped, a timeout) are retried with backoff. A stored error is one line,
``code: message``, with no ANSI colour codes and no Ray wrapper; tracebacks go to the worker log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INPUT_CODES = {
    "bad_arch": "the arch is not valid in its space",
    "unsupported": "the proxy is not defined for this space or network",
    "data_unavailable": "a data-dependent proxy found no real images",
    "too_large": "the network does not fit the memory limit",
    "proxy_error": "the proxy's computation raised for this network",
    "build_error": "the network could not be built",
    "cancelled": "the job was cancelled before this task ran",
}
TRANSIENT_CODES = {
    "actor_died": "the scoring process died",
    "oom": "the GPU ran out of memory",
    "timeout": "the arch ran past the per-arch timeout",
    "unavailable": "the store or the queue did not answer",
    "config_mismatch": "this worker cannot honour the task's numerics or data",
    "internal": "an unexpected failure",
    "requeued": "the task waited behind a call that failed and never ran (retried, no attempt charged)",
}
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
MAX_LINE = 1000


class ScoringError(Exception):
    """An error with a taxonomy code (subclasses set ``code``)."""

    code = "internal"


class InputError(ScoringError):
    """The user's input or configuration is wrong; retrying cannot help."""

    code = "proxy_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class TransientError(ScoringError):
    """A failure of the machinery that may pass; the task is retried with backoff."""

    def __init__(self, message: str, code: str = "internal") -> None:
        super().__init__(message)
        self.code = code


def is_transient(code: str) -> bool:
    """Whether errors with ``code`` are retried."""
    return code in TRANSIENT_CODES


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """``text`` without ANSI codes, on one line, at most ``limit`` characters."""
    flat = " ".join(ANSI.sub("", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def error_line(code: str, message: str) -> str:
    """The stored form of an error: ``code: message`` (one line)."""
    return one_line(f"{code}: {message}")


def code_of(line: str | None) -> str | None:
    """The code of a stored error line (None for no error)."""
    if not line:
        return None
    head = line.split(":", 1)[0]
    return head if head in INPUT_CODES or head in TRANSIENT_CODES else "internal"


@dataclass(frozen=True)
class Classified:
    """An exception's code and its one-line message."""

    code: str
    message: str

    @property
    def line(self) -> str:
        """``code: message``."""
        return error_line(self.code, self.message)

    @property
    def transient(self) -> bool:
        """Whether it is retried."""
        return is_transient(self.code)


def classify(exc: BaseException, default: str = "proxy_error") -> Classified:
    """Code and message of an exception raised while scoring (``default`` for anything unrecognised)."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ScoringError):
        return Classified(exc.code, str(exc))
    from zcscore.spaces import SpaceError

    if isinstance(exc, SpaceError):
        return Classified("bad_arch", str(exc))
    name = type(exc).__name__
    text = str(exc)
    if name == "DataUnavailable":
        return Classified("data_unavailable", text)
    if name == "OutOfMemoryError" or "CUDA out of memory" in text:
        return Classified("oom", message)
    if isinstance(exc, MemoryError) or "can't allocate memory" in text or "not enough memory" in text:
        return Classified("too_large", message)
    if isinstance(exc, TimeoutError):
        return Classified("timeout", text or message)
    return Classified(default, message)
