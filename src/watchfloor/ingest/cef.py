"""ArcSight Common Event Format (CEF): text -> `CefEvent` -> ECS-aligned fields. Pure functions.

`parse_cef` finds
`CEF:Version|Device Vendor|Device Product|Device Version|Signature ID|Name|Severity|Extension` anywhere in a
line, so a syslog message whose body is CEF (`<134>Mar 29 13:12:44 PA-VM CEF:0|...`) works as is; the text
before `CEF:` is kept in `prefix`. Header fields unescape `\\|` and `\\\\`. The extension is `key=value` pairs
separated by a space; values may contain spaces and unescape `\\=`, `\\\\`, `\\n`, `\\r` (and `\\|`, which
some vendors send); any other backslash is kept. A repeated key keeps its last value.
Severity is 0-10, or a word mapped to the top of its ArcSight band (Low 0-3 -> 3, Medium 4-6 -> 6,
High 7-8 -> 8, Very-High 9-10 -> 10); `Unknown` gives None.

`cef_to_fields` maps an event to flat ECS-aligned names. Values are converted (ports and byte counts to int,
IPs checked, times to aware UTC datetimes); a value that does not convert stays under
`cef.extensions.<key>` and is not mapped. Every extension key without a mapping lands there too.

| CEF (short / full name) | field | type |
|---|---|---|
| header Device Vendor / Product / Version | observer.vendor / product / version | str |
| header Signature ID | event.code | str |
| header Name | message (unless `msg` is present) | str |
| header Severity | event.severity | int |
| header Version | cef.version | int |
| src / sourceAddress | source.ip | ip str |
| dst / destinationAddress | destination.ip | ip str |
| spt / sourcePort | source.port | int |
| dpt / destinationPort | destination.port | int |
| shost / sourceHostName | source.domain | str |
| dhost / destinationHostName | destination.domain | str |
| smac / sourceMacAddress | source.mac | str |
| dmac / destinationMacAddress | destination.mac | str |
| suser / sourceUserName | source.user.name | str |
| duser / destinationUserName | destination.user.name | str |
| suid / sourceUserId | source.user.id | str |
| duid / destinationUserId | destination.user.id | str |
| sntdaddr / sourceTranslatedAddress | source.nat.ip | ip str |
| sntdport / sourceTranslatedPort | source.nat.port | int |
| dntdaddr / destinationTranslatedAddress | destination.nat.ip | ip str |
| dntdport / destinationTranslatedPort | destination.nat.port | int |
| in / bytesIn | source.bytes | int |
| out / bytesOut | destination.bytes | int |
| act / deviceAction | event.action | str |
| outcome / eventOutcome | event.outcome | str |
| reason | event.reason | str |
| externalId | event.id | str |
| rt / deviceReceiptTime | @timestamp | datetime |
| start / startTime | event.start | datetime |
| end / endTime | event.end | datetime |
| msg / message | message | str |
| proto / transportProtocol | network.transport | str, lower-case, 6/17/1/58 named |
| app / applicationProtocol | network.protocol | str, lower-case |
| deviceDirection | network.direction | 0 inbound, 1 outbound |
| request / requestUrl | url.original | str |
| requestMethod | http.request.method | str |
| requestClientApplication | user_agent.original | str |
| fname / fileName | file.name | str |
| filePath | file.path | str |
| fsize / fileSize | file.size | int |
| dproc / destinationProcessName | process.name | str |
| dpid / destinationProcessId | process.pid | int |
| dvc / deviceAddress | observer.ip | ip str |
| dvchost / deviceHostName | observer.hostname | str |
| deviceInboundInterface | observer.ingress.interface.name | str |
| deviceOutboundInterface | observer.egress.interface.name | str |

Times (`rt`, `start`, `end`) are epoch milliseconds, `MMM dd yyyy HH:mm:ss[.SSS][ zone]` with zone UTC, GMT,
Z or +hh:mm, or ISO 8601; times without a zone are read in `default_tz` (UTC unless told).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo

from watchfloor.core.errors import InputError, Location

__all__ = [
    "CEF_FIELD_MAP",
    "CEF_MALFORMED",
    "CefEvent",
    "CefParseError",
    "cef_to_fields",
    "format_cef",
    "parse_cef",
]

CEF_MALFORMED = "cef.malformed"


class CefParseError(InputError):
    """Text is not CEF. `offset` is the character (0-based) in the input where reading failed."""

    code = CEF_MALFORMED

    def __init__(self, message: str, *, offset: int, location: Location | None = None) -> None:
        super().__init__(f"{message} at character {offset}", location=location)
        self.offset = offset


@dataclass(frozen=True, slots=True, kw_only=True)
class CefEvent:
    """One CEF record. `version` is the device version, `cef_version` the format version."""

    cef_version: int
    vendor: str
    product: str
    version: str
    signature_id: str
    name: str
    severity: int | None
    severity_text: str
    extensions: dict[str, str] = field(default_factory=dict)
    prefix: str = field(default="", compare=False)


# --- parsing ---------------------------------------------------------------------------------------

_START_RE = re.compile(r"CEF: ?(?=[0-9])")
_VERSION_RE = re.compile(r"[0-9]{1,3}")
_KEY_RE = re.compile(r"(?:(?<= )|^)([A-Za-z0-9_.-]+)=")
_EXT_ESCAPES = {"\\": "\\", "=": "=", "n": "\n", "r": "\r", "|": "|"}
_EXT_ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)
_SEVERITY_WORDS: dict[str, int | None] = {
    "unknown": None,
    "low": 3,
    "medium": 6,
    "high": 8,
    "very-high": 10,
    "very high": 10,
}
_HEADER_FIELDS = 7  # version, vendor, product, device version, signature id, name, severity


def parse_cef(text: str) -> CefEvent:
    """Parse the first CEF record in `text` (bare, or the body of a syslog message)."""
    start = _START_RE.search(text)
    if start is None:
        raise CefParseError("no 'CEF:<version>|' found", offset=0)
    fields, ext_start = _split_header(text, start.end())
    version_text = fields[0]
    if _VERSION_RE.fullmatch(version_text) is None:
        raise CefParseError("CEF version is not a number", offset=start.end())
    severity_text = fields[6].strip()
    severity = _severity(severity_text, ext_start)
    return CefEvent(
        cef_version=int(version_text),
        vendor=fields[1],
        product=fields[2],
        version=fields[3],
        signature_id=fields[4],
        name=fields[5],
        severity=severity,
        severity_text=severity_text,
        extensions=_parse_extension(text, ext_start),
        prefix=text[: start.start()].strip(),
    )


def _split_header(text: str, pos: int) -> tuple[list[str], int]:
    """Seven pipe-separated header fields from `pos`; returns them and where the extension starts."""
    fields: list[str] = []
    current: list[str] = []
    i = pos
    n = len(text)
    while i < n and len(fields) < _HEADER_FIELDS:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "|\\":
            current.append(text[i + 1])
            i += 2
            continue
        if c == "|":
            fields.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    if len(fields) == _HEADER_FIELDS - 1:  # severity is the last thing on the line: no extension
        fields.append("".join(current))
    if len(fields) < _HEADER_FIELDS:
        raise CefParseError(f"CEF header has {len(fields)} of {_HEADER_FIELDS} fields", offset=i)
    return fields, i


def _severity(text: str, offset: int) -> int | None:
    if text.isascii() and text.isdigit():
        value = int(text)
        if value <= 10:
            return value
        raise CefParseError(f"severity {value} is out of range 0-10", offset=offset)
    try:
        return _SEVERITY_WORDS[text.lower()]
    except KeyError:
        raise CefParseError(
            "severity is neither 0-10 nor Unknown/Low/Medium/High/Very-High", offset=offset
        ) from None


def _parse_extension(text: str, pos: int) -> dict[str, str]:
    ext = text[pos:].rstrip()
    keys = list(_KEY_RE.finditer(ext))
    first = keys[0].start() if keys else len(ext)
    if ext[:first].strip():
        raise CefParseError("extension does not start with key=value", offset=pos)
    out: dict[str, str] = {}
    if not keys:
        return out
    stops = [nxt.start() - 1 for nxt in keys[1:]]  # a value ends at the one space before the next key
    for key, stop in zip(keys, [*stops, len(ext)], strict=True):
        out[key.group(1)] = _unescape_value(ext[key.end() : stop])
    return out


def _unescape_value(raw: str) -> str:
    if "\\" not in raw:
        return raw
    return _EXT_ESCAPE_RE.sub(lambda m: _EXT_ESCAPES.get(m.group(1), m.group(0)), raw)


# --- formatting ------------------------------------------------------------------------------------


def format_cef(event: CefEvent) -> str:
    """Render an event as a CEF line (the inverse of `parse_cef`; the prefix is not written).

    Raises `ValueError` for extension keys CEF cannot carry or a last value ending in whitespace.
    """
    severity = event.severity_text or ("Unknown" if event.severity is None else str(event.severity))
    header = [
        str(event.cef_version),
        event.vendor,
        event.product,
        event.version,
        event.signature_id,
        event.name,
        severity,
    ]
    parts = ["CEF:" + "|".join(_escape_header(h) for h in header) + "|"]
    pairs = []
    for key, value in event.extensions.items():
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
            raise ValueError("extension keys are letters, digits, '_', '.' and '-'")
        pairs.append(f"{key}={_escape_value(value)}")
    if pairs and pairs[-1] != pairs[-1].rstrip():
        raise ValueError("the last extension value cannot end in whitespace")
    return parts[0] + " ".join(pairs)


def _escape_header(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|")


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("=", "\\=").replace("\n", "\\n").replace("\r", "\\r")


# --- ECS mapping -----------------------------------------------------------------------------------


def _text(value: str, _tz: tzinfo) -> object:
    return value


def _ip(value: str, _tz: tzinfo) -> object:
    return str(ipaddress.ip_address(value.strip()))


def _port(value: str, _tz: tzinfo) -> object:
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError("port out of range")
    return port


def _count(value: str, _tz: tzinfo) -> object:
    number = int(value)
    if number < 0:
        raise ValueError("negative count")
    return number


_IANA_PROTOCOLS = {"1": "icmp", "6": "tcp", "17": "udp", "58": "ipv6-icmp"}


def _transport(value: str, _tz: tzinfo) -> object:
    text = value.strip().lower()
    if not text:
        raise ValueError("empty protocol")
    return _IANA_PROTOCOLS.get(text, text)


def _lower(value: str, _tz: tzinfo) -> object:
    if not value.strip():
        raise ValueError("empty value")
    return value.strip().lower()


def _direction(value: str, _tz: tzinfo) -> object:
    return {"0": "inbound", "1": "outbound"}[value.strip()]


_CEF_TIME_RE = re.compile(
    r"(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) +(?P<year>\d{4}) +(?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})"
    r"(?:\.(?P<ms>\d{1,3}))?(?: +(?P<zone>UTC|GMT|Z|[+-]\d{2}:?\d{2}))?",
    re.ASCII,
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}


def _time(value: str, tz: tzinfo) -> object:
    text = value.strip()
    if text.isascii() and text.isdigit():
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(text))
    m = _CEF_TIME_RE.fullmatch(text)
    if m is not None:
        zone = m["zone"]
        when_tz = tz
        if zone in {"UTC", "GMT", "Z"}:
            when_tz = UTC
        elif zone is not None:
            minutes = int(zone[1:3]) * 60 + int(zone[-2:])
            when_tz = timezone(timedelta(minutes=-minutes if zone[0] == "-" else minutes))
        micro = int((m["ms"] or "0").ljust(3, "0")) * 1000
        clock = (int(m["h"]), int(m["m"]), int(m["s"]), micro)
        return datetime(int(m["year"]), _MONTHS[m["mon"]], int(m["day"]), *clock, tzinfo=when_tz).astimezone(
            UTC
        )
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


Converter = Callable[[str, tzinfo], object]

# (short name, full name or None, target field, converter). The module docstring documents this table.
CEF_FIELD_MAP: tuple[tuple[str, str | None, str, Converter], ...] = (
    ("src", "sourceAddress", "source.ip", _ip),
    ("dst", "destinationAddress", "destination.ip", _ip),
    ("spt", "sourcePort", "source.port", _port),
    ("dpt", "destinationPort", "destination.port", _port),
    ("shost", "sourceHostName", "source.domain", _text),
    ("dhost", "destinationHostName", "destination.domain", _text),
    ("smac", "sourceMacAddress", "source.mac", _text),
    ("dmac", "destinationMacAddress", "destination.mac", _text),
    ("suser", "sourceUserName", "source.user.name", _text),
    ("duser", "destinationUserName", "destination.user.name", _text),
    ("suid", "sourceUserId", "source.user.id", _text),
    ("duid", "destinationUserId", "destination.user.id", _text),
    ("sntdaddr", "sourceTranslatedAddress", "source.nat.ip", _ip),
    ("sntdport", "sourceTranslatedPort", "source.nat.port", _port),
    ("dntdaddr", "destinationTranslatedAddress", "destination.nat.ip", _ip),
    ("dntdport", "destinationTranslatedPort", "destination.nat.port", _port),
    ("in", "bytesIn", "source.bytes", _count),
    ("out", "bytesOut", "destination.bytes", _count),
    ("act", "deviceAction", "event.action", _text),
    ("outcome", "eventOutcome", "event.outcome", _text),
    ("reason", None, "event.reason", _text),
    ("externalId", None, "event.id", _text),
    ("rt", "deviceReceiptTime", "@timestamp", _time),
    ("start", "startTime", "event.start", _time),
    ("end", "endTime", "event.end", _time),
    ("msg", "message", "message", _text),
    ("proto", "transportProtocol", "network.transport", _transport),
    ("app", "applicationProtocol", "network.protocol", _lower),
    ("deviceDirection", None, "network.direction", _direction),
    ("request", "requestUrl", "url.original", _text),
    ("requestMethod", None, "http.request.method", _text),
    ("requestClientApplication", None, "user_agent.original", _text),
    ("fname", "fileName", "file.name", _text),
    ("filePath", None, "file.path", _text),
    ("fsize", "fileSize", "file.size", _count),
    ("dproc", "destinationProcessName", "process.name", _text),
    ("dpid", "destinationProcessId", "process.pid", _count),
    ("dvc", "deviceAddress", "observer.ip", _ip),
    ("dvchost", "deviceHostName", "observer.hostname", _text),
    ("deviceInboundInterface", None, "observer.ingress.interface.name", _text),
    ("deviceOutboundInterface", None, "observer.egress.interface.name", _text),
)
_BY_KEY: dict[str, tuple[str, Converter]] = {
    name: (target, convert)
    for short, full, target, convert in CEF_FIELD_MAP
    for name in (short, full)
    if name is not None
}


def cef_to_fields(event: CefEvent, *, default_tz: tzinfo = UTC) -> dict[str, object]:
    """Flat ECS-aligned fields for an event (see the module docstring for the table)."""
    out: dict[str, object] = {
        "cef.version": event.cef_version,
        "observer.vendor": event.vendor,
        "observer.product": event.product,
        "observer.version": event.version,
        "event.code": event.signature_id,
        "message": event.name,
    }
    if event.severity is not None:
        out["event.severity"] = event.severity
    for key, value in event.extensions.items():
        mapping = _BY_KEY.get(key)
        if mapping is None:
            out[f"cef.extensions.{key}"] = value
            continue
        target, convert = mapping
        try:
            out[target] = convert(value, default_tz)
        except (ValueError, KeyError, OverflowError):
            out[f"cef.extensions.{key}"] = value
    return out
