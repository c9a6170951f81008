"""Who is sending: the intake token from an `Authorization` header, resolved to its tenant, briefly cached.

The tenant always comes from the token (`wf_<id>_<secret>`, see `storage/tokens.py`), never from a body,
a header other than `Authorization`, or the URL. Accepted forms, so stock shippers can carry the token:

- ``Splunk <token>`` (HEC) and ``Bearer <token>``;
- ``Basic base64(<anything>:<token>)``: the password is the token (Fluent Bit, Logstash, Beats
  username/password);
- ``ApiKey base64(<token>)`` or ``ApiKey base64(<anything>:<token>)`` (Beats/Elastic Agent
  `api_key: "id:key"`), and ``ApiKey <token>`` unencoded.

Cache entries (positive and negative) live `ttl_seconds`, so a revoked token stops working within that time;
keys are SHA-256 of the token, never the token. Nothing here logs or raises with a token in it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from watchfloor.core.types import TenantId
from watchfloor.storage import Database
from watchfloor.storage.tokens import parse_token

ALL_SCHEMES: Final = frozenset({"splunk", "bearer", "basic", "apikey"})


class AuthProblem(StrEnum):
    """Why a request has no usable credential (HEC codes 2, 3, 4; ES answers 401 for all three)."""

    MISSING = "missing"
    MALFORMED = "malformed"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated sender: the tenant, and the public id of the token it used (safe to log)."""

    tenant: TenantId
    token_id: str


def credential_from_header(
    header: str | None, *, schemes: Collection[str] = ALL_SCHEMES
) -> str | AuthProblem:
    """The token carried by an `Authorization` header value, or why there is none.

    Only the shape is checked here; whether the token exists is `TokenResolver`'s job.
    """
    if header is None or not header.strip():
        return AuthProblem.MISSING
    scheme, _, rest = header.strip().partition(" ")
    scheme = scheme.lower()
    rest = rest.strip()
    if scheme not in schemes or not rest:
        return AuthProblem.MALFORMED
    if scheme in {"splunk", "bearer"}:
        return rest
    if scheme == "basic":
        decoded = _b64(rest)
        if decoded is None or ":" not in decoded:
            return AuthProblem.MALFORMED
        return decoded.partition(":")[2]
    # ApiKey: base64 of the token or of "<id>:<token>"; tolerate the token sent unencoded.
    if parse_token(rest) is not None:
        return rest
    decoded = _b64(rest)
    if decoded is None:
        return AuthProblem.MALFORMED
    if parse_token(decoded) is not None:
        return decoded
    return decoded.rpartition(":")[2]


def _b64(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


@dataclass(slots=True)
class _Entry:
    principal: Principal | None
    expires: float


class TokenResolver:
    """`db.tokens.resolve` with a small TTL cache (also of unknown tokens); thread-safe, bounded."""

    def __init__(
        self,
        db: Database,
        ttl_seconds: float = 5.0,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds < 0:
            msg = "ttl_seconds must not be negative"
            raise ValueError(msg)
        self._db = db
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, _Entry] = OrderedDict()

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def cached(self, token: str) -> tuple[bool, Principal | None]:
        """(hit, principal) from the cache alone; never touches the database."""
        key = self._key(token)
        now = self._clock()
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return False, None
            if entry.expires <= now:
                del self._cache[key]
                return False, None
            self._cache.move_to_end(key)
            return True, entry.principal

    def resolve(self, token: str) -> Principal | None:
        """The sender behind `token`, or None (malformed, unknown, revoked, retired tenant). Blocking."""
        hit, principal = self.cached(token)
        if hit:
            return principal
        parsed = parse_token(token)
        if parsed is None:
            return None  # malformed: no database round trip, nothing worth caching
        tenant = self._db.tokens.resolve(token)
        principal = None if tenant is None else Principal(tenant=tenant, token_id=parsed[0])
        if self._ttl > 0:
            with self._lock:
                self._cache[self._key(token)] = _Entry(principal, self._clock() + self._ttl)
                while len(self._cache) > self._max_entries:
                    self._cache.popitem(last=False)
        return principal

    async def authenticate(self, token: str) -> Principal | None:
        """`resolve` for asyncio code: answered from the cache, or in a worker thread."""
        hit, principal = self.cached(token)
        if hit:
            return principal
        return await asyncio.to_thread(self.resolve, token)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
