"""Text records (a syslog frame, a log-file line) -> a JSON-like doc that `shapes.classify` routes.

`text_to_doc(body, received_at=...)` never raises; it returns None for what it cannot read (binary data,
JSON, a line with neither a syslog header nor a known body). The doc keeps native names; values are text
of the record (a few documented exceptions: numbers from the syslog header, decoded auditd hex args).

Shapes of the returned doc (the marker keys are what the classifier keys on):

- every doc: `@timestamp` (ISO 8601 UTC: the record's own time, else `received_at`).
- syslog frame: `syslog` = {facility, severity, priority, format, hostname, appname, procid, msgid,
  structured_data} (absent header fields left out) and `message` (the MSG text, untouched).
  - sshd lines add `sshd` = {action, method, user, ip, port, invalid_user} for "Failed password for
    [invalid user] U from IP port N ssh2", "Accepted publickey|password ...", "Invalid user U from IP
    [port N]", "Connection closed by [authenticating|invalid] user U IP port N".
  - sudo lines add `sudo` = {user, reason, TTY, PWD, USER, GROUP, COMMAND, ...} from
    "alice : [reason ; ]TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id".
- CEF (bare or as a syslog MSG): `cef` = {version, device_vendor, device_product, device_version,
  signature_id, name, severity, extensions{key: value}}; the syslog header, when there is one, as above
  (without `message`: header and extensions are the whole record).
- auditd (a line of audit.log, or a syslog MSG from audisp-syslog): every `key=value` of the record at top
  level as auditd names them (`type`, `syscall`, `exe`, `a0`, `key`, ...; quotes removed; the enriched
  trailer after GS (0x1d) gives `ARCH`, `SYSCALL`, `AUID`, ...), the key=values of a quoted inner
  `msg='...'` (USER_LOGIN, SERVICE_START) also at top level (first wins), and `auditd` = {time,
  sequence, node}. EXECVE `aN` and `proctitle` values that auditd hex-encoded are decoded (proctitle's NUL
  separators become spaces); when the record has no enriched `SYSCALL`, an x86_64 `syscall` number is
  named in `SYSCALL` from a small table (execve, connect, memfd_create, ...).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

from watchfloor.ingest.cef import CefParseError, parse_cef
from watchfloor.ingest.syslog import SyslogMessage, SyslogParseError, parse_syslog

__all__ = ["text_to_doc"]

_MAX_BYTES: Final = 256 * 1024


def text_to_doc(body: bytes, *, received_at: datetime) -> dict[str, Any] | None:
    """One text record -> doc (see the module docstring), or None when it is not a text log record."""
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        received_at = received_at.replace(tzinfo=UTC)
    received_at = received_at.astimezone(UTC)
    data = body[:_MAX_BYTES].strip(b" \t\r\n\x00")
    if not data or data[:1] in {b"{", b"["}:
        return None
    if data.startswith((b"type=", b"node=")):
        text = data.decode("utf-8", errors="replace")
        return _auditd_doc(text, {}, received_at)
    try:
        msg = parse_syslog(data, received_at=received_at)
    except (SyslogParseError, ValueError):
        return None
    header = _syslog_header(msg)
    if "CEF:" in msg.message:
        cef = _cef(msg.message)
        if cef is not None:
            doc: dict[str, Any] = {"@timestamp": _iso(msg.timestamp or received_at), "cef": cef}
            if _has_header(msg):
                doc["syslog"] = header
            return doc
    if "msg=audit(" in msg.message and "type=" in msg.message:
        start = msg.message.find("type=")
        return _auditd_doc(msg.message[start:], header, received_at)
    if not _has_header(msg):
        return None
    doc = {"@timestamp": _iso(msg.timestamp or received_at), "syslog": header, "message": msg.message}
    program = (msg.app_name or "").lower()
    if program in {"sshd", "sshd-session"}:
        parsed = _sshd(msg.message)
        if parsed:
            doc["sshd"] = parsed
    elif program == "sudo":
        parsed = _sudo(msg.message)
        if parsed:
            doc["sudo"] = parsed
    return doc


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _has_header(msg: SyslogMessage) -> bool:
    """A PRI, a timestamp or a program tag: enough to call a line syslog."""
    return (
        msg.format == "rfc5424"
        or msg.timestamp is not None
        or msg.app_name is not None
        or msg.raw.lstrip()[:1] == b"<"
    )


def _syslog_header(msg: SyslogMessage) -> dict[str, Any]:
    header: dict[str, Any] = {
        "facility": msg.facility,
        "severity": msg.severity,
        "priority": msg.pri,
        "format": msg.format,
    }
    optional = {"hostname": msg.hostname, "appname": msg.app_name, "procid": msg.procid, "msgid": msg.msgid}
    header.update({name: value for name, value in optional.items() if value is not None})
    if msg.structured_data:
        header["structured_data"] = {k: dict(v) for k, v in msg.structured_data.items()}
    return header


# -- CEF -------------------------------------------------------------------------------------------
def _cef(text: str) -> dict[str, Any] | None:
    try:
        event = parse_cef(text)
    except CefParseError:
        return None
    out: dict[str, Any] = {
        "version": event.cef_version,
        "device_vendor": event.vendor,
        "device_product": event.product,
        "device_version": event.version,
        "signature_id": event.signature_id,
        "name": event.name,
        "severity": event.severity_text,
    }
    if event.extensions:
        out["extensions"] = dict(event.extensions)
    return out


# -- sshd and sudo ---------------------------------------------------------------------------------
_SSHD_PATTERNS: Final = (
    re.compile(
        r"(?P<action>Failed|Accepted) (?P<method>\S+) for (?P<invalid>invalid user )?(?P<user>.*?) "
        r"from (?P<ip>\S+) port (?P<port>\d+)"
    ),
    re.compile(r"(?P<action>Invalid) user (?P<user>.*?) from (?P<ip>\S+)(?: port (?P<port>\d+))?$"),
    re.compile(
        r"Connection (?P<action>closed|reset) by (?:(?P<invalid>invalid )|authenticating )?user "
        r"(?P<user>\S+) (?P<ip>\S+) port (?P<port>\d+)"
    ),
)
_SSHD_ACTIONS: Final = {
    "Failed": "failed",
    "Accepted": "accepted",
    "Invalid": "invalid_user",
    "closed": "closed",
    "reset": "closed",
}


def _sshd(message: str) -> dict[str, Any]:
    for pattern in _SSHD_PATTERNS:
        m = pattern.match(message)
        if m is None:
            continue
        groups = m.groupdict()
        out: dict[str, Any] = {"action": _SSHD_ACTIONS[groups["action"]], "user": groups["user"]}
        out["ip"] = groups["ip"]
        if groups.get("port"):
            out["port"] = groups["port"]
        if groups.get("method"):
            out["method"] = groups["method"]
        out["invalid_user"] = bool(groups.get("invalid")) or out["action"] == "invalid_user"
        return out
    return {}


_SUDO_KEY_RE: Final = re.compile(r"([A-Z][A-Z_]*)=(.*)", re.DOTALL)


def _sudo(message: str) -> dict[str, Any]:
    user, sep, rest = message.partition(" : ")
    if not sep or " " in user.strip():
        return {}
    out: dict[str, Any] = {"user": user.strip()}
    command = None
    cut = rest.find("COMMAND=")
    if cut != -1:
        command = rest[cut + len("COMMAND=") :]
        rest = rest[:cut]
    reasons: list[str] = []
    for item in rest.split(" ; "):
        part = item.strip().rstrip(";").strip()
        if not part:
            continue
        m = _SUDO_KEY_RE.fullmatch(part)
        if m is not None:
            out.setdefault(m.group(1), m.group(2))
        else:
            reasons.append(part)
    if reasons:
        out["reason"] = " ; ".join(reasons)
    if command is not None:
        out["COMMAND"] = command
    return out


# -- auditd ----------------------------------------------------------------------------------------
_AUDIT_KV_RE: Final = re.compile(r"([A-Za-z_][\w-]*)=(\"[^\"]*\"?|'[^']*'?|\S*)")
_AUDIT_STAMP_RE: Final = re.compile(r"audit\((\d{1,12})(?:\.(\d{1,9}))?:(\d{1,20})\):?")
_HEX_RE: Final = re.compile(r"(?:[0-9A-F]{2})+")
# x86_64 syscall numbers Sigma rules and investigations name most (arch=c000003e).
_X86_64_SYSCALLS: Final = {
    "0": "read", "1": "write", "2": "open", "42": "connect", "43": "accept", "49": "bind", "50": "listen",
    "56": "clone", "57": "fork", "59": "execve", "62": "kill", "82": "rename", "87": "unlink",
    "90": "chmod", "92": "chown", "101": "ptrace", "105": "setuid", "165": "mount", "175": "init_module",
    "176": "delete_module", "257": "openat", "263": "unlinkat", "268": "fchmodat", "288": "accept4",
    "313": "finit_module", "319": "memfd_create", "322": "execveat",
}  # fmt: skip


def _auditd_doc(text: str, header: dict[str, Any], received_at: datetime) -> dict[str, Any] | None:
    fields: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for m in _AUDIT_KV_RE.finditer(text):
        name, value = m.group(1), m.group(2)
        if name == "msg" and value.startswith("audit("):
            stamp = _AUDIT_STAMP_RE.match(value)
            if stamp is not None:
                meta["time"] = _audit_time(stamp.group(1), stamp.group(2))
                meta["sequence"] = int(stamp.group(3))
            continue
        if name == "node" and "type" not in fields:
            meta["node"] = value
            continue
        quoted = value[:1] in {'"', "'"}
        if quoted:
            value = value[1:-1] if len(value) > 1 and value[-1] == value[0] else value[1:]
        if name == "msg" and quoted:
            fields.setdefault("msg", value)
            for inner in _AUDIT_KV_RE.finditer(value):
                fields.setdefault(inner.group(1), _unquote(inner.group(2)))
            continue
        if not quoted:
            value = _decode_hex(name, value, fields.get("type"))
        fields.setdefault(name, value)
    if "type" not in fields or "sequence" not in meta:
        return None
    if "SYSCALL" not in fields and fields.get("arch") == "c000003e":
        name = _X86_64_SYSCALLS.get(str(fields.get("syscall")))
        if name is not None:
            fields["SYSCALL"] = name
    moment = meta.get("time")
    doc: dict[str, Any] = {"@timestamp": moment or _iso(received_at), **fields, "auditd": meta}
    if header:
        doc["syslog"] = header
    return doc


def _unquote(value: str) -> str:
    if value[:1] in {'"', "'"}:
        return value[1:-1] if len(value) > 1 and value[-1] == value[0] else value[1:]
    return value


def _audit_time(seconds: str, fraction: str | None) -> str | None:
    try:
        moment = datetime.fromtimestamp(int(seconds), tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    return _iso(moment.replace(microsecond=micro))


def _decode_hex(name: str, value: str, record_type: object) -> str:
    """auditd hex-encodes EXECVE args and proctitle that hold spaces, quotes or control bytes."""
    is_arg = record_type == "EXECVE" and name[:1] == "a" and name[1:].isdigit()
    if not (is_arg or name == "proctitle") or _HEX_RE.fullmatch(value) is None:
        return value
    text = bytes.fromhex(value).decode("utf-8", errors="replace")
    return text.replace("\x00", " ").strip() if name == "proctitle" else text
