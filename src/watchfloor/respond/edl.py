"""External dynamic lists (EDLs): per-tenant block lists that firewalls poll over HTTP.

Palo Alto (PAN-OS external dynamic lists), FortiGate (external threat feeds) and pfSense (URL table
aliases) all read a plain-text file with one entry per line. Watchfloor serves three lists per tenant:

- `ip`: IPv4/IPv6 addresses or networks in CIDR notation (`203.0.113.7`, `198.51.100.0/24`, `2001:db8::/48`)
- `domain`: host names per RFC 1035 labels, optionally with a leading `*.` wildcard (`*.evil.example`)
- `url`: host + path without a scheme, as PAN-OS URL lists expect (`evil.example/login.php`)

A value ends up, verbatim, in a line of a file a firewall trusts: `normalize` is the gate, and it refuses
anything with whitespace, control characters or non-ASCII text (a newline would inject another entry). It
also refuses blocks that would take a customer offline (`0.0.0.0/0`, a bare TLD, `*.com`).
`render` re-checks every value at serving time, so a row written behind the repository's back cannot
inject a line either.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal, get_args

from watchfloor.core.types import TenantId

log = logging.getLogger(__name__)

ListKind = Literal["ip", "domain", "url"]
LIST_KINDS: Final[tuple[ListKind, ...]] = get_args(ListKind)

MAX_DOMAIN_LENGTH: Final = 253
MAX_LABEL_LENGTH: Final = 63
MAX_URL_LENGTH: Final = 1024
# Networks broader than these would block a large part of the internet for the tenant: refused.
MIN_PREFIX_LENGTH: Final = {4: 16, 6: 32}
MEDIA_TYPE: Final = "text/plain; charset=utf-8"

_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
_IP_CHARS: Final = re.compile(r"[0-9A-Fa-f.:/]+", re.ASCII)
# RFC 3986 path and query characters (unreserved, sub-delims, ':', '@', '/', '?', percent escapes); no '#',
# no whitespace, nothing outside ASCII.
_URL_REST: Final = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*", re.ASCII)
_SCHEME: Final = re.compile(r"(?i)(https?)://")


class EdlValueError(ValueError):
    """A value that may not go into an external dynamic list; the message names the value and why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EdlEntry:
    """One blocked value on one tenant's list. `source_ref` says why it is there (incident or run id)."""

    tenant_id: TenantId
    list_kind: ListKind
    value: str
    reason: str = field(compare=False)
    added_by: str = field(compare=False)
    added_at: datetime = field(compare=False)
    expires_at: datetime | None = field(default=None, compare=False)
    source_ref: str | None = field(default=None, compare=False)

    def active(self, at: datetime) -> bool:
        """Whether the entry is served at `at` (an entry expiring exactly at `at` is not)."""
        return self.expires_at is None or self.expires_at > at


def list_kind(value: str) -> ListKind:
    for kind in LIST_KINDS:
        if value == kind:
            return kind
    msg = f"unknown list kind {value!r}: use one of {', '.join(LIST_KINDS)}"
    raise EdlValueError(msg)


def _refuse(kind: str, value: str, why: str) -> EdlValueError:
    # repr() shows control characters escaped, so the message itself stays one readable line.
    return EdlValueError(f"{value!r} is not a valid {kind} list entry: {why}")


def normalize_ip(value: str) -> str:
    """An address or CIDR network in canonical form (IPv6 compressed, IPv4-mapped IPv6 as IPv4)."""
    # Checked before `ipaddress`, which accepts IPv6 scope ids of any text ("fe80::1%a\nb").
    if not value or not _IP_CHARS.fullmatch(value):
        raise _refuse("ip", value, "use an IPv4/IPv6 address or a network in CIDR notation")
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        reason = "host bits are set" if "has host bits set" in str(exc) else "not an address or network"
        raise _refuse("ip", value, reason) from None
    if "/" not in value:
        address = network.network_address
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_unspecified or address.is_loopback:
            raise _refuse("ip", value, "unspecified and loopback addresses cannot be blocked")
        return str(address)
    minimum = MIN_PREFIX_LENGTH[network.version]
    if network.prefixlen < minimum:
        raise _refuse(
            "ip", value, f"networks broader than /{minimum} are refused (they would block too much)"
        )
    if network.network_address.is_loopback:
        raise _refuse("ip", value, "loopback networks cannot be blocked")
    return str(network)


def normalize_domain(value: str) -> str:
    """A lower-case host name of at least two RFC 1035 labels, optionally `*.`-prefixed; one trailing
    dot (the root) is dropped. Internationalised names must be given in their `xn--` form."""
    name = value.lower()
    if name.endswith(".") and not name.endswith(".."):
        name = name[:-1]
    wildcard = name.startswith("*.")
    if wildcard:
        name = name[2:]
    if not name or len(name) > MAX_DOMAIN_LENGTH or not name.isascii():
        raise _refuse("domain", value, "use an ASCII host name (xn-- form for international names)")
    labels = name.split(".")
    for label in labels:
        if not _LABEL.fullmatch(label):
            raise _refuse(
                "domain",
                value,
                f"label {label!r} must be 1-{MAX_LABEL_LENGTH} letters, digits or inner hyphens",
            )
    if len(labels) < 2:
        raise _refuse("domain", value, "a single label (a top-level domain) would block too much")
    if labels[-1].isdigit():
        raise _refuse("domain", value, "looks like an IP address; block it on the ip list")
    return f"*.{name}" if wildcard else name


def normalize_url(value: str) -> str:
    """`host[/path][?query]` without a scheme (an `http://` or `https://` prefix is dropped); the host is
    a domain (wildcards allowed) or an IPv4 address and is lower-cased; the path is kept as given."""
    scheme = _SCHEME.match(value)
    rest = value[scheme.end() :] if scheme else value
    if "://" in rest:
        raise _refuse("url", value, "only http and https URLs can be listed")
    if not rest or len(rest) > MAX_URL_LENGTH:
        raise _refuse("url", value, f"give a host and optional path, at most {MAX_URL_LENGTH} characters")
    split = min((rest.find(c) for c in "/?" if c in rest), default=len(rest))
    host, path = rest[:split], rest[split:]
    if not _URL_REST.fullmatch(path):
        raise _refuse("url", value, "the path may hold only URL characters (no spaces, no '#', ASCII only)")
    if ":" in host or "@" in host:
        raise _refuse("url", value, "give the host without port or user name")
    try:
        address = ipaddress.IPv4Address(host) if host[:1].isdigit() else None
    except ValueError:
        address = None
    if address is not None:
        return f"{normalize_ip(str(address))}{path}"
    try:
        return f"{normalize_domain(host)}{path}"
    except EdlValueError as exc:
        raise _refuse("url", value, f"bad host: {exc}") from None


_NORMALIZERS: Final = {"ip": normalize_ip, "domain": normalize_domain, "url": normalize_url}


def normalize(kind: str, value: str) -> str:
    """The canonical form of `value` for list `kind`, or `EdlValueError` naming the value and why."""
    if not isinstance(value, str):
        msg = f"a {kind} list entry must be a string, not {type(value).__name__}"
        raise EdlValueError(msg)
    return _NORMALIZERS[list_kind(kind)](value)


def render(entries: Iterable[EdlEntry], *, kind: ListKind, at: datetime) -> bytes:
    """The list as firewalls read it: one value per line, sorted, newline-terminated, pure values (no
    comments). Entries of another kind, expired at `at`, or not in canonical form are left out."""
    values: set[str] = set()
    for entry in entries:
        if entry.list_kind != kind or not entry.active(at):
            continue
        try:
            canonical = normalize(kind, entry.value)
        except EdlValueError:
            canonical = None
        if canonical != entry.value:
            log.warning(
                "edl %s list of tenant %s: left out a stored value that is not canonical",
                kind,
                entry.tenant_id,
            )
            continue
        values.add(canonical)
    return "".join(f"{value}\n" for value in sorted(values)).encode("ascii")


def etag(body: bytes) -> str:
    """A strong entity tag for a rendered list (quoted, as HTTP wants it)."""
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'
