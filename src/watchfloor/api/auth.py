"""Operator authentication for the admin API, until the console brings sessions and roles.

The operator presents `Authorization: Bearer <operator token>`; the server keeps only the token's SHA-256
(hex) in the setting `WATCHFLOOR_ADMIN_TOKEN_SHA256` and compares digests in constant time. No setting: every
admin route answers 503 with how to configure one. A missing or wrong token: 401.

The audit actor of a request is `api:<first 8 hex of the token hash>`, or `api:<hash8>/<name>` when the
`X-Watchfloor-Actor` header names the person at the keyboard. Nothing here logs or returns a token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Final

from fastapi import Request

from watchfloor.api.problems import ApiProblem
from watchfloor.core.errors import ConfigError

ADMIN_TOKEN_PREFIX: Final = "wfa_"  # noqa: S105 - the public prefix, not a secret
ADMIN_TOKEN_SETTING: Final = "WATCHFLOOR_ADMIN_TOKEN_SHA256"  # noqa: S105 - a setting name
ACTOR_HEADER: Final = "X-Watchfloor-Actor"
ACTOR_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._+ -]{0,63}")
_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")
_REALM: Final = 'Bearer realm="watchfloor-admin"'


def hash_admin_token(plaintext: str) -> str:
    """The SHA-256 hex of an operator token: the only form the server stores."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def new_admin_token() -> tuple[str, str]:
    """A fresh operator token (`wfa_` + 256 random bits) and its SHA-256 hex. Show the plaintext once."""
    plaintext = ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return plaintext, hash_admin_token(plaintext)


def normalize_token_hash(value: str | None) -> str | None:
    """The configured hash in lower case; None when unset or blank. Raises `ConfigError` when malformed."""
    if value is None or not value.strip():
        return None
    cleaned = value.strip().lower()
    if not _SHA256_HEX.fullmatch(cleaned):
        msg = f"{ADMIN_TOKEN_SETTING} must be the 64-character SHA-256 hex of the operator token"
        raise ConfigError(msg)
    return cleaned


@dataclass(frozen=True, slots=True)
class AdminGuard:
    """Checks the operator token of a request and sets `request.state.actor` for the audit log."""

    token_sha256: str | None

    def __call__(self, request: Request) -> None:
        request.state.actor = self.authenticate(
            request.headers.get("authorization"), request.headers.get(ACTOR_HEADER)
        )

    def authenticate(self, authorization: str | None, actor_name: str | None) -> str:
        """The audit actor for these header values, or an `ApiProblem` (503, 401, 400)."""
        expected = self.token_sha256
        if expected is None:
            raise ApiProblem(
                503,
                "the admin API is disabled: no operator token is configured. Create one with "
                f"`watchfloor admin-token`, keep the token it prints, and set {ADMIN_TOKEN_SETTING} to the "
                "SHA-256 hex it prints",
                code="api.admin_token_not_configured",
            )
        scheme, _, credential = (authorization or "").strip().partition(" ")
        credential = credential.strip()
        presented = hash_admin_token(credential) if scheme.lower() == "bearer" and credential else ""
        # Always compare, so a missing header costs the same as a wrong one.
        matches = hmac.compare_digest(presented.encode("ascii") or bytes(64), expected.encode("ascii"))
        if not matches:
            raise ApiProblem(
                401,
                "send the operator token as `Authorization: Bearer <token>`",
                code="api.unauthorized",
                headers={"WWW-Authenticate": _REALM},
            )
        actor = f"api:{expected[:8]}"
        if actor_name is None:
            return actor
        name = actor_name.strip()
        if not ACTOR_RE.fullmatch(name):
            raise ApiProblem(
                400,
                f"{ACTOR_HEADER} must be 1-64 of letters, digits, space and @._+- (a person's name or login)",
                code="api.invalid_actor",
            )
        return f"{actor}/{name}"
