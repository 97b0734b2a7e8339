"""Users and API keys: who is calling, what they may see, and their quotas.

Auth is off (every caller is anonymous and sees everything) until a key exists: a key created with
``zcscore keys create`` (stored as its sha256 only) or one listed in ``ZCSCORE_API_KEYS`` (an admin key).
Then every ``/v1`` route needs ``Authorization: Bearer <key>``: no key or an unknown/revoked one is 401.
A user sees and cancels only their own jobs (another user's job is 404, as if it did not exist); admins see
all. Stored scores are a shared cache, readable by every user. Keys are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from zcscore.api.deps import ServicesDep
from zcscore.api.errors import field_error
from zcscore.storage.models import Job
from zcscore.storage.store import SqlStore

KEY_PREFIX = "zcs_"
ROLES = ("user", "admin")
KEYS_CHECK_S = 2.0  # how long "are there any keys?" is cached (a new first key takes effect within this)
BEARER = HTTPBearer(auto_error=False, description="an API key: Authorization: Bearer <key>")


@dataclass(frozen=True)
class User:
    """The caller behind a key."""

    name: str
    role: str = "user"
    quota_archs_per_day: int | None = None
    max_inflight: int | None = None

    @property
    def is_admin(self) -> bool:
        """Admins see and cancel every job."""
        return self.role == "admin"


def new_key() -> str:
    """A fresh random API key (shown once; only its hash is stored)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """sha256 hex of a key: what the store keeps."""
    return hashlib.sha256(key.encode()).hexdigest()


class _KeysPresent:
    """A short-lived cache, per store, of "does it hold any active key?" (a query per few seconds, not per request)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: weakref.WeakKeyDictionary[SqlStore, tuple[float, bool]] = weakref.WeakKeyDictionary()

    def get(self, store: SqlStore) -> bool:
        with self._lock:
            now = time.monotonic()
            until, value = self._seen.get(store, (0.0, False))
            if now >= until:
                value = store.has_active_keys()
                self._seen[store] = (now + KEYS_CHECK_S, value)
            return value


_PRESENT = _KeysPresent()


def current_user(
    services: ServicesDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)] = None
) -> User | None:
    """The caller (None while auth is off); 401 naming the header when auth is on and the key is missing or bad."""
    env_keys = services.settings.api_keys
    if not env_keys and not _PRESENT.get(services.store):
        return None
    token = credentials.credentials.strip() if credentials is not None else ""
    if token:
        matches = [hmac.compare_digest(token.encode(), k.encode()) for k in env_keys]  # no early exit
        if any(matches):
            return User("admin", "admin")
        row = services.store.key_by_hash(hash_key(token))
        if row is not None and hmac.compare_digest(row.key_hash, hash_key(token)):
            return User(row.name, row.role, row.quota_archs_per_day, row.max_inflight)
    raise field_error(["header", "authorization"], "missing, unknown or revoked bearer API key", 401, "auth")


UserDep = Annotated[User | None, Depends(current_user)]


def owner_of(user: User | None) -> str | None:
    """The owner recorded on a job this caller submits."""
    return user.name if user is not None else None


def can_see(user: User | None, job: Job) -> bool:
    """Whether ``user`` may see (and cancel) ``job``."""
    return user is None or user.is_admin or job.owner == user.name
