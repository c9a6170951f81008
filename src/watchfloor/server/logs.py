"""Structured logs: one JSON object per line on stderr, with the tenant where there is one, never a secret.

Every record carries `ts` (UTC, ISO 8601), `level`, `logger`, `msg`, and the `extra` fields a call passes
(`log.info("...", extra={"tenant": "clinic", "source": "hec"})`). Values that look like credentials
(intake tokens, `Authorization` headers, passwords, peppers) are replaced by `[redacted]` before writing,
whichever field or message they appear in.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_SECRET_KEYS = re.compile(r"(token|secret|password|pepper|authorization|api[_-]?key)", re.IGNORECASE)
_SECRET_VALUES = re.compile(
    r"wfe?_[a-z0-9]{8}_[A-Za-z0-9_-]{43}"  # intake tokens and EDL tokens
    r"|(?i:(?:splunk|bearer|basic|apikey)\s+)[A-Za-z0-9+/=._~-]{8,}"  # Authorization header values
)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` with intake tokens and Authorization header values replaced."""
    return _SECRET_VALUES.sub(REDACTED, text)


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key in _RESERVED or key.startswith("_"):
                continue
            if _SECRET_KEYS.search(key):
                out[key] = REDACTED
            elif isinstance(value, str):
                out[key] = redact(value)
            elif isinstance(value, int | float | bool) or value is None:
                out[key] = value
            else:
                out[key] = redact(str(value))
        if record.exc_info:
            out["error"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(out).decode()


def configure(level: str = "info") -> dict[str, Any]:
    """Route the root logger (and uvicorn's) through JsonFormatter on stderr; returns a uvicorn log_config."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request's full URL at INFO; connector and webhook URLs can carry secrets
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        },
    }
