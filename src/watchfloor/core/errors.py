"""One error root with a family per stage; every error carries a stable code and where it happened.

Never put secrets, raw credentials or frame locals into an error message.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    """Where something happened: a rule file and line, or a tenant + input + line/record."""

    path: str | None = None
    line: int | None = None
    record: int | None = None
    tenant: str | None = None

    def __str__(self) -> str:
        parts: list[str] = []
        if self.tenant is not None:
            parts.append(f"tenant={self.tenant}")
        where = self.path or "<unknown>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        parts.append(where)
        if self.record is not None:
            parts.append(f"record={self.record}")
        return " ".join(parts)


class WatchfloorError(Exception):
    """Root of all Watchfloor errors. `code` is stable and machine-readable."""

    code: str = "watchfloor.error"

    def __init__(self, message: str, *, location: Location | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        if self.location is None:
            return f"[{self.code}] {self.message}"
        return f"{self.location}: [{self.code}] {self.message}"


class ConfigError(WatchfloorError):
    """Invalid configuration or content file (mappings, settings)."""

    code = "config.invalid"


class InputError(WatchfloorError):
    """A record or input file could not be read or normalized."""

    code = "input.invalid"


class RuleError(WatchfloorError):
    """A detection rule could not be loaded or compiled."""

    code = "rule.invalid"


class RuleUnsupportedError(RuleError):
    """A rule is valid Sigma but uses something this engine cannot evaluate."""

    code = "rule.unsupported"


class PlaceholderError(RuleError):
    """A placeholder (|expand) rule lacks a value for a tenant."""

    code = "rule.placeholder_missing"
