"""Syslog messages and TCP framing: bytes -> `SyslogMessage`, byte stream -> frames. Pure, no I/O.

`parse_syslog` reads one frame (a UDP datagram or a TCP frame):

- RFC 5424 (`<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]`) in full: NILVALUE `-`,
  RFC 3339 timestamps with fractions (more than 6 digits are truncated to microseconds) and offsets, any
  number of SD-ELEMENTs with `\\"`, `\\\\` and `\\]` escapes in PARAM-VALUE, an optional UTF-8 BOM before MSG.
  Field lengths (APP-NAME <= 48 ...) are not enforced: real senders exceed them and the data is still good.
  A repeated PARAM-NAME keeps its first value; a repeated SD-ID merges into one element.
- RFC 3164 as devices really send it: `<PRI>Mmm dd hh:mm:ss host tag[pid]: msg` with space- or un-padded
  days, optional year (`Mmm dd yyyy hh:mm:ss`, Cisco ASA), optional fraction, an optional `:` after the time,
  an RFC 3339 timestamp instead (rsyslog forward format), a missing hostname (pfSense `filterlog[..]:`), a
  missing timestamp (the rest is the message, RFC 3164 4.3.2) and a missing PRI (user.notice, 4.3.3).
  The year is the one that puts the timestamp nearest to `received_at` (Dec/Jan rollover), unless
  `default_year` is given; times without an offset are read in `local_tz` (UTC unless told).

Trailing CR, LF and NUL after the message are framing residue and are dropped. Invalid UTF-8 is decoded
with U+FFFD and flagged in `utf8_repaired`. Anything that cannot be a syslog message raises
`SyslogParseError` (code `syslog.malformed`, with the byte offset); no other exception escapes for any input.

`SyslogFramer` cuts a TCP byte stream into frames (RFC 6587): octet counting (`LEN SP MSG`) or
non-transparent framing (LF or NUL trailer), chosen per connection from the first byte. Frames larger than
`max_frame_bytes` are reported as `FrameProblem`s and skipped without being buffered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Literal

from watchfloor.core.errors import InputError, Location

__all__ = [
    "DEFAULT_FACILITY",
    "DEFAULT_MAX_FRAME_BYTES",
    "DEFAULT_SEVERITY",
    "FRAME_BAD_LENGTH",
    "FRAME_OVERSIZED",
    "FRAME_TRUNCATED",
    "SYSLOG_MALFORMED",
    "FrameProblem",
    "FramingMode",
    "SyslogFormat",
    "SyslogFramer",
    "SyslogMessage",
    "SyslogParseError",
    "format_rfc5424",
    "parse_syslog",
]

SyslogFormat = Literal["rfc5424", "rfc3164"]
FramingMode = Literal["octet-counting", "non-transparent"]

# Stable codes: dashboards, dead letters and tests key on them.
SYSLOG_MALFORMED = "syslog.malformed"
FRAME_OVERSIZED = "syslog.frame_oversized"
FRAME_BAD_LENGTH = "syslog.frame_bad_length"
FRAME_TRUNCATED = "syslog.frame_truncated"

DEFAULT_FACILITY = 1  # user-level, RFC 3164 4.3.3
DEFAULT_SEVERITY = 5  # notice
DEFAULT_MAX_FRAME_BYTES = 64 * 1024

_BOM = b"\xef\xbb\xbf"
_RESIDUE = b"\r\n\x00"
_SP = 0x20


class SyslogParseError(InputError):
    """A frame is not a syslog message. `offset` is the byte (0-based) where reading failed."""

    code = SYSLOG_MALFORMED

    def __init__(self, message: str, *, offset: int, location: Location | None = None) -> None:
        super().__init__(f"{message} at byte {offset}", location=location)
        self.offset = offset


@dataclass(frozen=True, slots=True, kw_only=True)
class SyslogMessage:
    """One parsed syslog message. Header fields that were absent or NILVALUE are None.

    `timestamp` is aware UTC. `raw` is the frame exactly as received (excluded from equality and repr: it may
    hold anything the sender put in it).
    """

    facility: int
    severity: int
    timestamp: datetime | None
    hostname: str | None
    app_name: str | None
    procid: str | None
    msgid: str | None
    structured_data: dict[str, dict[str, str]] = field(default_factory=dict)
    message: str
    format: SyslogFormat
    utf8_repaired: bool = False
    raw: bytes = field(default=b"", compare=False, repr=False)

    @property
    def pri(self) -> int:
        return self.facility * 8 + self.severity


# --- parsing ---------------------------------------------------------------------------------------


def parse_syslog(
    data: bytes,
    *,
    received_at: datetime,
    default_year: int | None = None,
    local_tz: tzinfo = UTC,
) -> SyslogMessage:
    """Parse one syslog frame (RFC 5424 or RFC 3164). `received_at` must be timezone-aware.

    Raises `SyslogParseError` for input that is not syslog; `ValueError` only for a naive `received_at`.
    """
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise ValueError("received_at must be timezone-aware")
    end = len(data.rstrip(_RESIDUE))
    pos = len(data) - len(data.lstrip(b" \t\r\n\x00"))
    if pos >= end:
        raise SyslogParseError("empty message", offset=min(pos, len(data)))
    if data[pos] == ord("<"):
        facility, severity, pos = _parse_pri(data, pos)
        if data.startswith(b"1 ", pos):
            return _parse_5424(data, pos + 2, end, facility, severity)
    else:
        bad = _CONTROL_RE.search(data, pos, end)
        if bad is not None:
            raise SyslogParseError(
                f"no PRI and binary data (control byte 0x{data[bad.start()]:02x}), not syslog text",
                offset=bad.start(),
            )
        facility, severity = DEFAULT_FACILITY, DEFAULT_SEVERITY
    return _parse_3164(
        data, pos, end, facility, severity, received_at=received_at, year=default_year, local_tz=local_tz
    )


_CONTROL_RE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _parse_pri(data: bytes, pos: int) -> tuple[int, int, int]:
    start = pos + 1
    stop = start
    while stop < len(data) and stop - start < 4 and 0x30 <= data[stop] <= 0x39:
        stop += 1
    if stop == start:
        raise SyslogParseError("PRI: expected 1-3 digits after '<'", offset=start)
    if stop - start > 3:
        raise SyslogParseError("PRI: more than 3 digits", offset=start)
    if stop >= len(data) or data[stop] != ord(">"):
        raise SyslogParseError("PRI: expected '>' after the priority digits", offset=stop)
    value = int(data[start:stop])
    if value > 191:
        raise SyslogParseError(f"PRI: value {value} out of range 0-191", offset=start)
    return value >> 3, value & 7, stop + 1


def _decode(chunk: bytes) -> tuple[str, bool]:
    try:
        return chunk.decode("utf-8"), False
    except UnicodeDecodeError:
        return chunk.decode("utf-8", errors="replace"), True


# --- RFC 5424 --------------------------------------------------------------------------------------

_RFC3339_RE = re.compile(
    rb"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)


def _parse_5424(data: bytes, pos: int, end: int, facility: int, severity: int) -> SyslogMessage:
    ts_start = pos
    ts_token, pos = _header_field(data, pos, end, "TIMESTAMP")
    timestamp = None if ts_token is None else _rfc3339(ts_token, ts_start)
    hostname, pos = _header_field(data, pos, end, "HOSTNAME")
    app_name, pos = _header_field(data, pos, end, "APP-NAME")
    procid, pos = _header_field(data, pos, end, "PROCID")
    msgid, pos = _header_field(data, pos, end, "MSGID")
    structured, pos, repaired = _parse_sd(data, pos, end)
    message = ""
    if pos < end:
        if data[pos] != _SP:
            raise SyslogParseError("expected SP after STRUCTURED-DATA", offset=pos)
        body = data[pos + 1 : end]
        body = body.removeprefix(_BOM)
        message, bad = _decode(body)
        repaired = repaired or bad
    return SyslogMessage(
        facility=facility,
        severity=severity,
        timestamp=timestamp,
        hostname=None if hostname is None else hostname.decode("ascii"),
        app_name=None if app_name is None else app_name.decode("ascii"),
        procid=None if procid is None else procid.decode("ascii"),
        msgid=None if msgid is None else msgid.decode("ascii"),
        structured_data=structured,
        message=message,
        format="rfc5424",
        utf8_repaired=repaired,
        raw=data,
    )


def _header_field(data: bytes, pos: int, end: int, name: str) -> tuple[bytes | None, int]:
    """One SP-terminated header token of PRINTUSASCII; NILVALUE gives None. Returns the position after SP."""
    stop = data.find(b" ", pos, end)
    if stop == -1:
        if pos >= end:
            raise SyslogParseError(f"RFC 5424 header ends before {name}", offset=end)
        raise SyslogParseError(f"RFC 5424 header ends after {name} (missing SP)", offset=end)
    if stop == pos:
        raise SyslogParseError(f"empty {name}", offset=pos)
    for i in range(pos, stop):
        if not 33 <= data[i] <= 126:
            raise SyslogParseError(f"{name}: byte 0x{data[i]:02x} is not printable ASCII", offset=i)
    token = data[pos:stop]
    return (None if token == b"-" else token), stop + 1


def _rfc3339(token: bytes, offset: int) -> datetime:
    m = _RFC3339_RE.fullmatch(token)
    if m is None:
        raise SyslogParseError(
            "TIMESTAMP is not RFC 3339 (YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm))", offset=offset
        )
    groups = [None if g is None else g.decode("ascii") for g in m.groups()]
    try:
        return _datetime(groups, UTC)
    except (ValueError, OverflowError):
        raise SyslogParseError("TIMESTAMP: date, time or offset out of range", offset=offset) from None


def _datetime(groups: list[str | None], default_tz: tzinfo) -> datetime:
    """Y, M, D, h, m, s, fraction, offset (None: `default_tz`) -> aware UTC; ValueError if impossible."""
    year, month, day, hour, minute, second = (int(g or "0") for g in groups[:6])
    micro = int((groups[6] or "")[:6].ljust(6, "0"))
    offset = groups[7]
    tz = default_tz
    if offset is not None and offset not in {"Z", "z"}:
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError("UTC offset out of range")
        delta = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-delta if offset[0] == "-" else delta)
    elif offset is not None:
        tz = UTC
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz).astimezone(UTC)


_PARAM_STOP_RE = re.compile(rb'[\\"]')


def _parse_sd(data: bytes, pos: int, end: int) -> tuple[dict[str, dict[str, str]], int, bool]:
    if pos >= end:
        raise SyslogParseError("missing STRUCTURED-DATA", offset=pos)
    if data[pos] == ord("-"):
        return {}, pos + 1, False
    if data[pos] != ord("["):
        raise SyslogParseError("STRUCTURED-DATA must be '-' or start with '['", offset=pos)
    elements: dict[str, dict[str, str]] = {}
    repaired = False
    while pos < end and data[pos] == ord("["):
        element_start = pos
        sd_id, pos = _sd_name(data, pos + 1, end, "SD-ID")
        params = elements.setdefault(sd_id, {})
        while True:
            if pos >= end:
                raise SyslogParseError("unterminated SD-ELEMENT (missing ']')", offset=element_start)
            if data[pos] == ord("]"):
                pos += 1
                break
            if data[pos] != _SP:
                raise SyslogParseError("expected SP or ']' in SD-ELEMENT", offset=pos)
            name, pos = _sd_name(data, pos + 1, end, "PARAM-NAME")
            if pos >= end or data[pos] != ord("="):
                raise SyslogParseError("expected '=' after PARAM-NAME", offset=pos)
            if pos + 1 >= end or data[pos + 1] != ord('"'):
                raise SyslogParseError("expected '\"' to open PARAM-VALUE", offset=pos + 1)
            value, pos = _param_value(data, pos + 2, end)
            text, bad = _decode(value)
            repaired = repaired or bad
            params.setdefault(name, text)
    return elements, pos, repaired


def _sd_name(data: bytes, pos: int, end: int, what: str) -> tuple[str, int]:
    stop = pos
    while stop < end and 33 <= data[stop] <= 126 and data[stop] not in b'=]"':
        stop += 1
    if stop == pos:
        raise SyslogParseError(f"empty or invalid {what}", offset=pos)
    return data[pos:stop].decode("ascii"), stop


def _param_value(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """PARAM-VALUE after the opening quote; returns the unescaped bytes and the position after the quote."""
    start = pos
    out = bytearray()
    while True:
        m = _PARAM_STOP_RE.search(data, pos, end)
        if m is None:
            raise SyslogParseError("unterminated PARAM-VALUE (missing '\"')", offset=start - 1)
        i = m.start()
        out += data[pos:i]
        if data[i] == ord('"'):
            return bytes(out), i + 1
        nxt = data[i + 1 : i + 2]
        if nxt and nxt in b'"\\]':
            out += nxt
            pos = i + 2
        else:  # RFC 5424 6.3.3: any other backslash is a literal backslash
            out += b"\\"
            pos = i + 1


# --- RFC 3164 --------------------------------------------------------------------------------------

_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, start=1)}
_BSD_TS_RE = re.compile(
    r"(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(?P<day>\d{1,2}) +(?:(?P<year>\d{4}) +)?"
    r"(?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})(?:\.(?P<frac>\d{1,9}))?:?(?: +|$)",
    re.ASCII,
)
_ISO_TS_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})?(?: +|$)",
    re.ASCII,
)
_TAG_RE = re.compile(r"(?P<tag>[^\s\[\]:]{1,64})(?:\[(?P<pid>[^\]\s]{0,128})\])?:(?: +|$)")


def _parse_3164(
    data: bytes,
    pos: int,
    end: int,
    facility: int,
    severity: int,
    *,
    received_at: datetime,
    year: int | None,
    local_tz: tzinfo,
) -> SyslogMessage:
    text, repaired = _decode(data[pos:end])
    timestamp, rest = _bsd_timestamp(text, received_at=received_at, year=year, local_tz=local_tz)
    hostname: str | None = None
    if timestamp is not None and rest and _TAG_RE.match(rest) is None:
        token, _, after = rest.partition(" ")
        hostname, rest = token, after.lstrip(" ")
        if rest.startswith(": "):  # Cisco ASA with a device id: "host : %ASA-6-...: text"
            rest = rest[2:].lstrip(" ")
    app_name = procid = None
    tag = _TAG_RE.match(rest)
    if tag is not None:
        app_name, procid, rest = tag["tag"], tag["pid"] or None, rest[tag.end() :]
    return SyslogMessage(
        facility=facility,
        severity=severity,
        timestamp=timestamp,
        hostname=hostname,
        app_name=app_name,
        procid=procid,
        msgid=None,
        message=rest,
        format="rfc3164",
        utf8_repaired=repaired,
        raw=data,
    )


def _bsd_timestamp(
    text: str, *, received_at: datetime, year: int | None, local_tz: tzinfo
) -> tuple[datetime | None, str]:
    """The leading timestamp, if any, and the text after it. An impossible date means no timestamp."""
    iso = _ISO_TS_RE.match(text)
    if iso is not None:
        try:
            return _datetime(list(iso.groups()), local_tz), text[iso.end() :]
        except (ValueError, OverflowError):
            return None, text
    m = _BSD_TS_RE.match(text)
    if m is None:
        return None, text
    month, day = _MONTHS[m["mon"]], int(m["day"])
    clock = (int(m["h"]), int(m["m"]), int(m["s"]), int((m["frac"] or "0")[:6].ljust(6, "0")))
    explicit = int(m["year"]) if m["year"] else year
    local_received = received_at.astimezone(local_tz)
    years = [explicit] if explicit is not None else [local_received.year + d for d in (-1, 0, 1)]
    best: datetime | None = None
    for candidate in years:
        try:
            value = datetime(candidate, month, day, *clock, tzinfo=local_tz).astimezone(UTC)
        except (ValueError, OverflowError):
            continue
        if best is None or abs(value - received_at) < abs(best - received_at):
            best = value
    if best is None:
        return None, text
    return best, text[m.end() :]


# --- formatting ------------------------------------------------------------------------------------


def format_rfc5424(msg: SyslogMessage) -> bytes:
    """Render a message as RFC 5424 (the inverse of `parse_syslog` for `format == "rfc5424"`).

    A message that starts with U+FEFF gets a BOM in front so that parsing keeps it. Raises `ValueError` for
    values RFC 5424 cannot carry (non-printable header fields, bad SD names, PRI out of range).
    """
    if not (0 <= msg.facility <= 23 and 0 <= msg.severity <= 7):
        raise ValueError("facility must be 0-23 and severity 0-7")
    parts = [
        f"<{msg.pri}>1".encode(),
        _format_timestamp(msg.timestamp),
        *(_format_token(v, n) for v, n in _header_values(msg)),
    ]
    head = b" ".join(parts) + b" " + _format_sd(msg.structured_data)
    if not msg.message:
        return head
    body = msg.message.encode("utf-8")
    if msg.message.startswith("\ufeff"):
        body = _BOM + body
    return head + b" " + body


def _header_values(msg: SyslogMessage) -> list[tuple[str | None, str]]:
    return [
        (msg.hostname, "HOSTNAME"),
        (msg.app_name, "APP-NAME"),
        (msg.procid, "PROCID"),
        (msg.msgid, "MSGID"),
    ]


def _format_timestamp(ts: datetime | None) -> bytes:
    if ts is None:
        return b"-"
    if ts.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    u = ts.astimezone(UTC)
    text = f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
    if u.microsecond:
        text += f".{u.microsecond:06d}"
    return (text + "Z").encode()


def _format_token(value: str | None, name: str) -> bytes:
    if value is None:
        return b"-"
    if not value or not all(33 <= ord(c) <= 126 for c in value):
        raise ValueError(f"{name} must be 1+ printable ASCII characters")
    return value.encode("ascii")


def _format_sd(elements: dict[str, dict[str, str]]) -> bytes:
    if not elements:
        return b"-"
    out = bytearray()
    for sd_id, params in elements.items():
        out += b"[" + _format_sd_name(sd_id)
        for name, value in params.items():
            escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
            out += b" " + _format_sd_name(name) + b'="' + escaped.encode("utf-8") + b'"'
        out += b"]"
    return bytes(out)


def _format_sd_name(name: str) -> bytes:
    if not name or not all(33 <= ord(c) <= 126 and c not in '=]" ' for c in name):
        raise ValueError("SD-ID and PARAM-NAME must be printable ASCII without '=', ']', '\"' or SP")
    return name.encode("ascii")


# --- TCP framing (RFC 6587) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameProblem:
    """A frame the framer could not deliver. `offset` is where it started in the connection's byte stream."""

    code: str
    offset: int
    message: str


_MAX_LEN_DIGITS = 10
_TERMINATOR_RE = re.compile(rb"[\n\x00]")
_RESYNC_RE = re.compile(rb"[1-9][0-9]{0,9} <")
_SEPARATORS = b"\r\n\x00"


class SyslogFramer:
    """Cuts one connection's byte stream into syslog frames, whatever the chunking.

    The first byte that is not CR, LF or NUL chooses the mode for the connection: a digit means octet
    counting (`MSG-LEN SP MSG`, CR/LF/NUL/SP between frames tolerated), anything else non-transparent
    framing (frames end at LF or NUL, a CR before the LF is dropped, empty frames are skipped).

    `feed` returns, in stream order, frames (bytes) and `FrameProblem`s. A frame over `max_frame_bytes` is
    reported (`syslog.frame_oversized`) and skipped: in octet counting exactly its declared length, otherwise
    up to the next terminator, holding at most `max_frame_bytes` + 1 bytes plus one chunk. A length that is
    not a number (`syslog.frame_bad_length`) is reported once and the stream is scanned for the next
    `LEN SP <`. `close` flushes at end of stream: a last unterminated non-transparent frame is delivered,
    a cut octet-counted frame is reported (`syslog.frame_truncated`).
    """

    def __init__(self, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        if max_frame_bytes < 1:
            raise ValueError("max_frame_bytes must be positive")
        self.max_frame_bytes = max_frame_bytes
        self.mode: FramingMode | None = None
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self._skip = 0  # octet counting: bytes of an oversized frame still to drop
        self._resync = False  # octet counting: looking for the next "LEN SP <"
        self._discard = False  # non-transparent: dropping an oversized frame up to its terminator
        self._scan = 0  # non-transparent: where the terminator search resumes

    @property
    def buffered_bytes(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | FrameProblem]:
        self._buf += data
        out: list[bytes | FrameProblem] = []
        if self.mode is None:
            start = 0
            while start < len(self._buf) and self._buf[start] in _SEPARATORS:
                start += 1
            self._drop(start)
            if not self._buf:
                return out
            self.mode = "octet-counting" if 0x31 <= self._buf[0] <= 0x39 else "non-transparent"
        if self.mode == "octet-counting":
            self._octets(out)
        else:
            self._lines(out)
        return out

    def close(self) -> list[bytes | FrameProblem]:
        out: list[bytes | FrameProblem] = []
        if self.mode == "non-transparent" and not self._discard:
            frame = bytes(self._buf)
            if frame.endswith(b"\r"):
                frame = frame[:-1]
            if len(frame) > self.max_frame_bytes:
                out.append(self._oversized(self._base))
            elif frame:
                out.append(frame)
        elif self.mode == "octet-counting" and not self._resync and self._skip == 0:
            rest = bytes(self._buf).lstrip(_SEPARATORS + b" ")
            if rest:
                offset = self._base + len(self._buf) - len(rest)
                out.append(
                    FrameProblem(code=FRAME_TRUNCATED, offset=offset, message="stream ended inside a frame")
                )
        self._drop(len(self._buf))
        return out

    def _drop(self, n: int) -> None:
        if n:
            del self._buf[:n]
            self._base += n

    def _oversized(self, offset: int) -> FrameProblem:
        return FrameProblem(
            code=FRAME_OVERSIZED, offset=offset, message=f"frame larger than {self.max_frame_bytes} bytes"
        )

    def _octets(self, out: list[bytes | FrameProblem]) -> None:
        buf = self._buf
        while True:
            if self._skip:
                n = min(self._skip, len(buf))
                self._drop(n)
                self._skip -= n
                if self._skip:
                    return
            if self._resync:
                m = _RESYNC_RE.search(buf)
                if m is None:  # keep a possible partial "LEN SP" for the next chunk
                    self._drop(max(0, len(buf) - (_MAX_LEN_DIGITS + 1)))
                    return
                self._drop(m.start())
                self._resync = False
            start = 0
            while start < len(buf) and buf[start] in b"\r\n\x00 ":
                start += 1
            self._drop(start)
            if not buf:
                return
            sp = buf.find(b" ", 0, _MAX_LEN_DIGITS + 1)
            digits = bytes(buf[: sp if sp != -1 else min(len(buf), _MAX_LEN_DIGITS + 1)])
            if not digits.isdigit() or digits.startswith(b"0") or (sp == -1 and len(buf) > _MAX_LEN_DIGITS):
                out.append(
                    FrameProblem(
                        code=FRAME_BAD_LENGTH,
                        offset=self._base,
                        message="octet-counted frame does not start with MSG-LEN SP",
                    )
                )
                self._drop(1)
                self._resync = True
                continue
            if sp == -1:
                return
            length = int(digits)
            if length > self.max_frame_bytes:
                out.append(self._oversized(self._base))
                self._drop(sp + 1)
                self._skip = length
                continue
            if len(buf) < sp + 1 + length:
                return
            out.append(bytes(buf[sp + 1 : sp + 1 + length]))
            self._drop(sp + 1 + length)

    def _lines(self, out: list[bytes | FrameProblem]) -> None:
        buf = self._buf
        while True:
            if self._discard:
                m = _TERMINATOR_RE.search(buf)
                if m is None:
                    self._drop(len(buf))
                    return
                self._drop(m.end())
                self._discard = False
            m = _TERMINATOR_RE.search(buf, self._scan)
            if m is None:
                if len(buf) > self.max_frame_bytes + 1:  # + 1: room for a CR before the LF
                    out.append(self._oversized(self._base))
                    self._discard = True
                    self._scan = 0
                    continue
                self._scan = len(buf)
                return
            frame = bytes(buf[: m.start()])
            offset = self._base
            self._drop(m.end())
            self._scan = 0
            if frame.endswith(b"\r"):
                frame = frame[:-1]
            if len(frame) > self.max_frame_bytes:
                out.append(self._oversized(offset))
            elif frame:
                out.append(frame)
