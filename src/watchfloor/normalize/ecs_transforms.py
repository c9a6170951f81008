"""Value transforms the ECS tables name (`transform:`), and the time parsing `to_ecs` uses.

Every transform takes one JSON scalar and returns the ECS value, or raises `SkipValueError` (a `ValueError`)
when the value does not convert; `to_ecs` then leaves the field out.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Final

__all__ = ["EPOCH", "TRANSFORMS", "SkipValueError", "as_text", "iso", "parse_time"]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


# -- scalar transforms ------------------------------------------------------------------------------------
class SkipValueError(ValueError):
    """A value that does not convert: the ECS field is left out."""


def as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise SkipValueError


def _int(value: object) -> int:
    if isinstance(value, bool):
        raise SkipValueError
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise SkipValueError


def _hex_int(value: object) -> int:
    if isinstance(value, str) and value.strip().lower().startswith("0x"):
        return int(value.strip(), 16)
    return _int(value)


def _float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SkipValueError
    number = float(value)
    if not math.isfinite(number):
        raise SkipValueError
    return number


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = as_text(value).strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no"}:
        return False
    raise SkipValueError


def _ip(value: object) -> str:
    text = as_text(value).strip()
    if text.startswith("["):  # [v6]:port
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    text = text.partition("%")[0]
    return str(ipaddress.ip_address(text))


def _port(value: object) -> int:
    port = _int(value)
    if not 0 <= port <= 65535:
        raise SkipValueError
    return port


def _basename(value: object) -> str:
    text = as_text(value)
    name = text.replace("\\", "/").rstrip("/").rpartition("/")[2]
    if not name:
        raise SkipValueError
    return name


def _dirname(value: object) -> str:
    text = as_text(value)
    cut = max(text.rfind("/"), text.rfind("\\"))
    if cut <= 0:
        raise SkipValueError
    return text[:cut]


def _windows_user(value: object) -> str:
    user = as_text(value).rpartition("\\")[2]
    if not user:
        raise SkipValueError
    return user


def _windows_domain(value: object) -> str:
    domain, sep, _ = as_text(value).rpartition("\\")
    if not sep or not domain:
        raise SkipValueError
    return domain


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(value: object) -> datetime:
    """ISO 8601 text (naive = UTC), or a number / numeric text of epoch seconds (ms when > 1e11)."""
    if isinstance(value, bool):
        raise SkipValueError
    if isinstance(value, str):
        text = value.strip()
        try:
            return _from_epoch(float(text))
        except ValueError:
            pass
        if text[-1:] in {"Z", "z"}:
            text = text[:-1] + "+00:00"
        moment = datetime.fromisoformat(text)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if isinstance(value, int | float):
        return _from_epoch(value)
    raise SkipValueError


def _from_epoch(seconds: float) -> datetime:
    if not math.isfinite(seconds):
        raise SkipValueError
    if abs(seconds) > 1e11:
        seconds /= 1000
    return EPOCH + timedelta(seconds=seconds)


def _iso8601(value: object) -> str:
    if not isinstance(value, str):
        raise SkipValueError
    return iso(parse_time(value))


def _epoch_s(value: object) -> str:
    return iso(EPOCH + timedelta(seconds=_float(value)))


def _epoch_ms(value: object) -> str:
    return iso(EPOCH + timedelta(milliseconds=_float(value)))


def _windows_filetime(value: object) -> str:
    ticks = _hex_int(value)
    return iso(datetime(1601, 1, 1, tzinfo=UTC) + timedelta(microseconds=ticks // 10))


TRANSFORMS: Final[Mapping[str, Callable[[object], object]]] = MappingProxyType(
    {
        "str": as_text,
        "lower": lambda v: as_text(v).lower(),
        "upper": lambda v: as_text(v).upper(),
        "int": _int,
        "hex_int": _hex_int,
        "float": _float,
        "bool": _bool,
        "ip": _ip,
        "port": _port,
        "basename": _basename,
        "dirname": _dirname,
        "windows_user": _windows_user,
        "windows_domain": _windows_domain,
        "iso8601": _iso8601,
        "epoch_s": _epoch_s,
        "epoch_ms": _epoch_ms,
        "windows_filetime": _windows_filetime,
    }
)
