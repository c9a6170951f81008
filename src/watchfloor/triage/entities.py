"""Entities of a detection: normalized hosts, users, IPs, processes, ... and the ATT&CK tags of its rule.

`normalize(kind, value)` is the one definition of an entity's canonical value; "" means "not an entity"
(noise such as SYSTEM, loopback addresses, "-"). It is idempotent: normalizing a normalized value changes
nothing. The canonical forms, and what they deliberately conflate:

- **host**: the first DNS label only (`WS-17.corp.example.com` -> `ws-17`), upper-cased then case-folded
  (Windows compares names upper-cased; folding after it maps the dotless i, `I` and `i` alike),
  leading backslashes and trailing dots dropped; an IP literal is kept as its canonical IP text. Windows
  logs name a machine by FQDN in one channel and by NetBIOS name in another, and grouping needs both to
  meet. The cost: two machines with the same short name in different DNS domains *of one tenant* become
  one host. Tenants are separate namespaces, so this never crosses tenants. `localhost` is noise.
- **user**: the account name without its domain, upper-cased then case-folded: `CORP\\jdoe`,
  `jdoe@corp.example.com` and `JDoe` all become `jdoe`. A NetBIOS domain (`CORP`) and a UPN suffix
  cannot be matched without directory data, and a small business has one directory, so the domain is
  dropped (`user.domain` is not part of the value). Noise: SYSTEM, LOCAL/NETWORK SERVICE, ANONYMOUS
  LOGON, well-known service SIDs, machine accounts (`WS-17$`: the host entity already covers them),
  `DWM-n`/`UMFD-n` virtual accounts, `-`, `n/a`.
- **ip**: `ipaddress` canonical text (IPv4-mapped IPv6 as IPv4, brackets and a trailing port dropped);
  unspecified and loopback addresses and anything unparsable are noise.
- **process**: an identity, not a name: `process.entity_id` (Sysmon's ProcessGuid, braces dropped) or
  `<host>:<pid>[:<start>]`. `entities_of` emits the process *and its parent*, so alerts on a parent and on
  its child share the parent's identity (and siblings share it too).
- **file**, **url**: Windows paths (drive letter or backslash) lower-cased, POSIX paths kept as they are;
  URLs keep their path's case but lower-case the scheme and host. **hash**, **domain**, **cloud_account**,
  **app**: lower-case (domains without a trailing dot).

`destination.ip` is an entity only when the connection starts inside (a non-global source): outbound, the
external peer is the indicator (C2); inside-to-inside, it is the lateral-movement target. For inbound
traffic the destination is the tenant's own (often NAT) address, shared by every inbound alert, which
would merge unrelated incidents.

`entities_of(event)` reads ECS names from a nested document (`{"host": {"name": ...}}`), from flat dotted
keys (`{"host.name": ...}`) or a mix. `from_detection` falls back to `normalize.ecs.to_ecs` when a stored
event is in its native shape (the pipeline stores the record as received) and then adds the ECS names as
flat keys to the event it hands on, so conditions can use ECS names and native names alike.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from watchfloor.core.types import RuleId
from watchfloor.normalize.ecs import to_ecs
from watchfloor.normalize.shapes import classify
from watchfloor.triage.models import DetectionInput, Entity, EntityKind

if TYPE_CHECKING:
    from watchfloor.storage.detections import Detection

__all__ = [
    "PRIMARY_KINDS",
    "TACTICS",
    "attack_of",
    "entities_of",
    "from_detection",
    "normalize",
    "primary_entity",
]

# ATT&CK enterprise tactics in kill-chain order (short names as in the ATT&CK matrix).
TACTICS: Final[tuple[str, ...]] = (
    "reconnaissance",
    "resource-development",
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "defense-evasion",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
    "impact",
)
_TACTIC_SET: Final = frozenset(TACTICS)
_TECHNIQUE_RE: Final = re.compile(r"t\d{4}(?:\.\d{3})?")

# The entity an alert is "about", in order of preference (the dedup key's second part).
PRIMARY_KINDS: Final[tuple[EntityKind, ...]] = ("host", "user", "cloud_account", "ip")

_NOISE_USERS: Final = frozenset(
    {
        "",
        "-",
        "n/a",
        "na",
        "none",
        "null",
        "unknown",
        "system",
        "local system",
        "localsystem",
        "local service",
        "localservice",
        "network service",
        "networkservice",
        "anonymous logon",
        "anonymous",
        "s-1-5-18",
        "s-1-5-19",
        "s-1-5-20",
        "s-1-5-7",
        "s-1-0-0",
    }
)
_VIRTUAL_USER_RE: Final = re.compile(r"(?:dwm|umfd)-\d+")
_NOISE_HOSTS: Final = frozenset({"", "-", "localhost", "n/a", "unknown", "null", "none"})
_PORT_SUFFIX_RE: Final = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$")
_URL_HEAD_RE: Final = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*)(.*)$", re.DOTALL)
_WINDOWS_PATH_RE: Final = re.compile(r"^(?:[a-zA-Z]:|\\)")
_PROCESS_TRIM_RE: Final = re.compile(r"\A[\s{}]+|[\s{}]+\Z")
_TRAILING_DOTS_RE: Final = re.compile(r"[\s.]+\Z")
_LEADING_SLASHES_RE: Final = re.compile(r"^[\s\\]+")


# -- normalize -------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=65536)
def normalize(kind: EntityKind, value: str) -> str:
    """The canonical value of an entity, or "" when the value is noise (see the module docstring)."""
    text = value.strip()
    if kind == "host":
        return _host(text)
    if kind == "user":
        return _user(text)
    if kind == "ip":
        return _ip(text)
    if kind == "process":
        return _PROCESS_TRIM_RE.sub("", text.lower())
    if kind in ("file", "url"):
        return _path(text) if kind == "file" else _url(text)
    if kind == "domain":
        return _TRAILING_DOTS_RE.sub("", text.lower()).strip()
    return text.lower().strip()


def _host(text: str) -> str:
    text = _LEADING_SLASHES_RE.sub("", text).upper().casefold()
    parsed, ip = _parse_ip(text)
    if parsed:
        return ip
    short = text.split(".", 1)[0].strip()
    return "" if short in _NOISE_HOSTS else short


def _user(text: str) -> str:
    name = text.rsplit("\\", 1)[-1].split("@", 1)[0].strip().upper().casefold()
    if name in _NOISE_USERS or name.endswith("$") or _VIRTUAL_USER_RE.fullmatch(name):
        return ""
    return name


def _ip(text: str) -> str:
    return _parse_ip(text)[1]


def _parse_ip(text: str) -> tuple[bool, str]:
    """(whether `text` is an IP literal, its canonical text or "" when it is noise)."""
    candidate = text.strip()
    if candidate.startswith("["):  # [v6]:port
        candidate = candidate[1:].split("]", 1)[0]
    else:
        port = _PORT_SUFFIX_RE.match(candidate)
        if port is not None:
            candidate = port.group(1)
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return False, ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified or address.is_loopback:
        return True, ""
    return True, address.compressed


def _path(text: str) -> str:
    return text.lower() if _WINDOWS_PATH_RE.match(text) else text


def _url(text: str) -> str:
    head = _URL_HEAD_RE.match(text)
    return text if head is None else head.group(1).lower() + head.group(2)


@functools.lru_cache(maxsize=16384)
def _is_internal(ip: str) -> bool:
    try:
        return not ipaddress.ip_address(ip).is_global
    except ValueError:
        return False


# -- reading ECS fields ----------------------------------------------------------------------------
def _lookup(event: Mapping[str, Any], name: str, head: str, rest: tuple[str, ...]) -> Any:
    """A field by ECS name: the flat dotted key first, then the nested path (`head`, then `rest`)."""
    value = event.get(name)
    if value is not None:
        return value
    node = event.get(head)
    if node is None:
        return None
    for part in rest:
        if type(node) is dict or isinstance(node, Mapping):
            node = node.get(part)
            if node is None:
                return None
        else:
            return None
    return node


def _strings(value: Any) -> tuple[str, ...]:
    """The scalar texts of a field value (each element of a list; nested objects give nothing)."""
    if type(value) is str:
        return (value,)
    if value is None or isinstance(value, Mapping):
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value if v is not None and not isinstance(v, Mapping | list | tuple))
    return (str(value),)


def _field(name: str) -> tuple[str, str, tuple[str, ...]]:
    parts = name.split(".")
    return name, parts[0], tuple(parts[1:])


def _first_text(event: Mapping[str, Any], spec: tuple[str, str, tuple[str, ...]]) -> str:
    for text in _strings(_lookup(event, *spec)):
        if text.strip():
            return text.strip()
    return ""


@functools.lru_cache(maxsize=65536)
def _entity(kind: EntityKind, text: str) -> Entity | None:
    """The entity of a raw value, or None for noise; one shared object per (kind, raw text)."""
    value = normalize(kind, text)
    return Entity(kind, value) if value else None


# (ECS field, entity kind) in emission order: the first entity of a kind is that kind's main one.
_SIMPLE_FIELDS: Final[tuple[tuple[str, EntityKind], ...]] = (
    ("host.name", "host"),
    ("host.hostname", "host"),
    ("user.name", "user"),
    ("user.email", "user"),
    ("source.user.name", "user"),
    ("destination.user.name", "user"),
    ("user.target.name", "user"),
    ("cloud.account.id", "cloud_account"),
    ("source.ip", "ip"),
    ("client.ip", "ip"),
    ("host.ip", "ip"),
)
_LATE_FIELDS: Final[tuple[tuple[str, EntityKind], ...]] = (
    ("file.path", "file"),
    ("file.hash.sha256", "hash"),
    ("file.hash.sha1", "hash"),
    ("file.hash.md5", "hash"),
    ("process.hash.sha256", "hash"),
    ("process.hash.sha1", "hash"),
    ("process.hash.md5", "hash"),
    ("dns.question.name", "domain"),
    ("destination.domain", "domain"),
    ("url.domain", "domain"),
    ("url.full", "url"),
    ("url.original", "url"),
    ("azure.signinlogs.app_display_name", "app"),
    ("okta.target.display_name", "app"),
    ("cloud.service.name", "app"),
)
_SIMPLE: Final = tuple((_field(name), kind) for name, kind in _SIMPLE_FIELDS)
_LATE: Final = tuple((_field(name), kind) for name, kind in _LATE_FIELDS)
_SOURCE_IP: Final = _field("source.ip")
_CLIENT_IP: Final = _field("client.ip")
_DESTINATION_IP: Final = _field("destination.ip")
_PROCESS: Final = tuple(
    (_field(f"{prefix}.entity_id"), _field(f"{prefix}.pid"), _field(f"{prefix}.start"))
    for prefix in ("process", "process.parent")
)


def entities_of(event: Mapping[str, Any]) -> tuple[Entity, ...]:
    """The normalized, de-duplicated entities of an ECS event, main ones first (see `_SIMPLE_FIELDS`)."""
    out: dict[tuple[str, str], Entity] = {}
    host = ""
    for spec, kind in _SIMPLE:
        value = _lookup(event, *spec)
        if value is None:
            continue
        for text in _strings(value):
            entity = _entity(kind, text)
            if entity is not None:
                out.setdefault((kind, entity.value), entity)
                if not host and kind == "host":
                    host = entity.value
    source = _first_text(event, _SOURCE_IP) or _first_text(event, _CLIENT_IP)
    if source and _is_internal(normalize("ip", source)):
        for text in _strings(_lookup(event, *_DESTINATION_IP)):
            entity = _entity("ip", text)
            if entity is not None:
                out.setdefault(("ip", entity.value), entity)
    for specs in _PROCESS:
        identity = _process_identity(event, specs, host)
        if identity:
            out.setdefault(("process", identity), Entity("process", identity))
    for spec, kind in _LATE:
        value = _lookup(event, *spec)
        if value is None:
            continue
        for text in _strings(value):
            entity = _entity(kind, text)
            if entity is not None:
                out.setdefault((kind, entity.value), entity)
    return tuple(out.values())


_FieldSpec = tuple[str, str, tuple[str, ...]]


def _process_identity(
    event: Mapping[str, Any], specs: tuple[_FieldSpec, _FieldSpec, _FieldSpec], host: str
) -> str:
    """`<prefix>.entity_id`, else `<host>:<pid>[:<start>]` (needs a host: a bare pid identifies nothing)."""
    entity_id, pid_spec, start_spec = specs
    found = _first_text(event, entity_id)
    if found:
        return normalize("process", found)
    pid = _first_text(event, pid_spec)
    if not pid or not host or pid in ("0", "4"):  # idle and System: every Windows host has them
        return ""
    start = _first_text(event, start_spec)
    return normalize("process", f"{host}:{pid}:{start}" if start else f"{host}:{pid}")


def primary_entity(entities: tuple[Entity, ...]) -> Entity | None:
    """The first entity of the first kind in `PRIMARY_KINDS` that the alert has, else None."""
    for kind in PRIMARY_KINDS:
        for entity in entities:
            if entity.kind == kind:
                return entity
    return None


# -- ATT&CK tags -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def attack_of(tags: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(techniques, tactics) of Sigma tags: `attack.t1059.001` -> `T1059.001`; `attack.initial_access`
    and `attack.initial-access` -> `initial-access`. Group, software and other tags are ignored; each list
    keeps first-seen order without repeats."""
    techniques: dict[str, None] = {}
    tactics: dict[str, None] = {}
    for tag in tags:
        low = tag.strip().lower()
        if not low.startswith("attack."):
            continue
        name = low[7:]
        if _TECHNIQUE_RE.fullmatch(name):
            techniques[name.upper()] = None
            continue
        tactic = name.replace("_", "-")
        if tactic in _TACTIC_SET:
            tactics[tactic] = None
    return tuple(techniques), tuple(tactics)


# -- detections ------------------------------------------------------------------------------------
def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _ecs_fallback(event: dict[str, Any]) -> dict[str, Any] | None:
    """The event with its ECS names added as flat keys, when it is a native record `to_ecs` can map."""
    key = classify(event)
    if key is None:
        return None
    fields = to_ecs(event, key, tenant="-", raw=b"", source="triage").fields
    if not fields:
        return None
    merged = dict(event)
    for name, value in fields.items():
        merged.setdefault(name, value)
    return merged


def from_detection(detection: Detection, *, rule_author: str = "") -> DetectionInput:
    """What triage needs from one stored detection: entities, ATT&CK ids, times in UTC.

    `event_time` falls back to `matched_at` when the event had no time of its own.
    """
    event = detection.event if type(detection.event) is dict else dict(detection.event)
    entities = entities_of(event)
    if not entities and event:
        mapped = _ecs_fallback(event)
        if mapped is not None:
            event = mapped
            entities = entities_of(event)
    matched_at = _utc(detection.matched_at)
    return DetectionInput(
        tenant_id=detection.tenant_id,
        detection_id=detection.id,
        rule_id=RuleId(detection.rule_id),
        rule_title=detection.rule_title,
        rule_level=detection.rule_level,
        rule_author=rule_author,
        tags=tuple(detection.tags),
        event_time=_utc(detection.event_time) if detection.event_time is not None else matched_at,
        matched_at=matched_at,
        entities=entities,
        event=event,
    )
