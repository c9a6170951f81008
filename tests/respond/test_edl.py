"""External dynamic lists: the value gate (a value becomes a line in a file firewalls trust), rendering for
pollers, and the block/unblock actions on a real database."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from watchfloor.core.types import TenantId
from watchfloor.respond.actions import ActionContext, ConnectorError
from watchfloor.respond.connectors.edl import (
    BlockDomain,
    BlockIp,
    BlockUrl,
    UnblockDomain,
    UnblockIp,
    edl_actions,
)
from watchfloor.respond.edl import (
    LIST_KINDS,
    EdlEntry,
    EdlValueError,
    etag,
    normalize,
    normalize_domain,
    normalize_ip,
    render,
)
from watchfloor.storage import Database

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
CLINIC = TenantId("clinic")


# -- the value gate ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "given_value", "canonical"),
    [
        ("ip", "203.0.113.7", "203.0.113.7"),
        ("ip", "198.51.100.0/24", "198.51.100.0/24"),
        ("ip", "2001:DB8:0:0::1", "2001:db8::1"),
        ("ip", "2001:db8::/48", "2001:db8::/48"),
        ("ip", "::ffff:203.0.113.7", "203.0.113.7"),
        ("domain", "Evil.Example", "evil.example"),
        ("domain", "*.evil.example.", "*.evil.example"),
        ("domain", "xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("url", "https://Evil.Example/login.php?next=%2F", "evil.example/login.php?next=%2F"),
        ("url", "evil.example/a/b", "evil.example/a/b"),
        ("url", "http://203.0.113.7/payload.bin", "203.0.113.7/payload.bin"),
        ("url", "*.evil.example/", "*.evil.example/"),
    ],
)
def test_values_are_canonical(kind: str, given_value: str, canonical: str) -> None:
    assert normalize(kind, given_value) == canonical
    assert normalize(kind, canonical) == canonical


@pytest.mark.parametrize(
    ("kind", "bad", "why"),
    [
        ("ip", "10.0.0.300", "not an address"),
        ("ip", "::ffff:0:0", "unspecified"),
        ("ip", "::ffff:127.0.0.1", "loopback"),
        ("ip", "10.0.0.5/24", "host bits"),
        ("ip", "0.0.0.0/0", "broader than /16"),
        ("ip", "::/0", "broader than /32"),
        ("ip", "127.0.0.1", "loopback"),
        ("ip", "0.0.0.0", "unspecified"),
        ("ip", "fe80::1%eth0", "CIDR notation"),
        ("ip", "fe80::1%a\nb", "CIDR notation"),  # ipaddress itself accepts this scope id
        ("ip", "203.0.113.7\n10.0.0.0/8", "CIDR notation"),
        ("domain", "com", "top-level"),
        ("domain", "*.com", "top-level"),
        ("domain", "evil..example", "label ''"),
        ("domain", "-evil.example", "label '-evil'"),
        ("domain", "ev il.example", "label 'ev il'"),
        ("domain", "bücher.example", "xn--"),
        ("domain", "a.*.example", "label '*'"),
        ("domain", "203.0.113.7", "ip list"),
        ("domain", "x" * 64 + ".example", "1-63"),
        ("url", "ftp://evil.example/x", "http and https"),
        ("url", "evil.example/a b", "URL characters"),
        ("url", "evil.example/#frag", "URL characters"),
        ("url", "evil.example:8080/x", "port"),
        ("url", "user@evil.example/x", "port or user"),
        ("url", "evil.example/x\r\nmalicious.example", "URL characters"),
        ("url", "", "host"),
    ],
)
def test_bad_values_are_refused_with_the_value_named(kind: str, bad: str, why: str) -> None:
    with pytest.raises(EdlValueError) as caught:
        normalize(kind, bad)
    assert repr(bad) in str(caught.value)
    assert why in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_kind() -> None:
    with pytest.raises(EdlValueError, match="unknown list kind 'hash'"):
        normalize("hash", "x")


labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?", fullmatch=True)
top_labels = st.from_regex(r"[a-z]{2,10}", fullmatch=True)
domains = st.builds(
    lambda wildcard, inner, top: ("*." if wildcard else "") + ".".join([*inner, top]),
    st.booleans(),
    st.lists(labels, min_size=1, max_size=4),
    top_labels,
)


def _blockable(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None) or address  # ::ffff:0:0 is 0.0.0.0
    return not (mapped.is_loopback or mapped.is_unspecified)


addresses = st.ip_addresses().filter(_blockable)
# Every character Python's str.splitlines() or a firewall's reader might treat as a separator or blank.
breaking = st.sampled_from(
    ["\n", "\r", "\r\n", "\t", " ", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u00a0", "\0"]
)


@given(domains)
def test_valid_domains_round_trip(domain: str) -> None:
    assert normalize_domain(domain) == domain
    assert normalize_domain(domain.upper()) == domain


@given(addresses)
def test_valid_addresses_round_trip(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    canonical = normalize_ip(str(address))
    assert normalize_ip(canonical) == canonical
    assert ipaddress.ip_address(canonical) in {address, getattr(address, "ipv4_mapped", None)}
    if isinstance(address, ipaddress.IPv6Address):
        assert normalize_ip(address.exploded) == canonical


networks = st.one_of(
    st.tuples(st.ip_addresses(v=4), st.integers(16, 32)),
    st.tuples(st.ip_addresses(v=6), st.integers(32, 128)),
).map(lambda pair: ipaddress.ip_network(f"{pair[0]}/{pair[1]}", strict=False))


@given(networks)
def test_valid_networks_round_trip(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> None:
    assume(not network.network_address.is_loopback)
    text = network.with_prefixlen
    assert normalize_ip(text) == text
    assert ipaddress.ip_network(normalize_ip(text)) == network


@given(st.one_of(domains, addresses.map(str)), breaking, st.data())
def test_whitespace_or_line_breaks_never_pass(value: str, separator: str, data: st.DataObject) -> None:
    at = data.draw(st.integers(min_value=0, max_value=len(value)))
    injected = value[:at] + separator + value[at:]
    for kind in LIST_KINDS:
        with pytest.raises(EdlValueError):
            normalize(kind, injected)


@settings(max_examples=300)
@given(st.sampled_from(LIST_KINDS), st.text(max_size=60))
def test_whatever_passes_is_one_printable_ascii_line(kind: str, text: str) -> None:
    try:
        value = normalize(kind, text)
    except EdlValueError:
        return
    assert value.isascii()
    assert value.isprintable()
    assert value.splitlines() == [value]
    assert " " not in value
    assert normalize(kind, value) == value


# -- rendering -----------------------------------------------------------------------------------
def entry(value: str, *, kind: str = "ip", expires_at: datetime | None = None) -> EdlEntry:
    return EdlEntry(
        tenant_id=CLINIC,
        list_kind=kind,  # type: ignore[arg-type]
        value=value,
        reason="test",
        added_by="t",
        added_at=T0,
        expires_at=expires_at,
    )


def test_render_is_sorted_pure_values_without_expired_or_unsafe_entries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    entries = [
        entry("203.0.113.9"),
        entry("198.51.100.0/24", expires_at=T0 + timedelta(hours=1)),
        entry("192.0.2.1", expires_at=T0),  # expires exactly now: gone
        entry("evil.example", kind="domain"),
        entry("192.0.2.7\n0.0.0.0/0"),  # written behind the repository's back: never served
    ]
    body = render(entries, kind="ip", at=T0)
    assert body == b"198.51.100.0/24\n203.0.113.9\n"
    assert render(entries, kind="ip", at=T0 + timedelta(hours=2)) == b"203.0.113.9\n"
    assert render([], kind="url", at=T0) == b""
    assert "not canonical" in caplog.text
    assert etag(body).startswith('"')
    assert etag(body) != etag(b"")


# -- actions ---------------------------------------------------------------------------------------
@dataclass(slots=True)
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def db(tmp_path: Path, clock: Clock) -> Iterator[Database]:
    database = Database.open(f"sqlite:///{tmp_path / 'wf.db'}", clock=clock)
    database.tenants.create("clinic", name="Clinic", vertical="healthcare", tier="standard", actor="setup")
    try:
        yield database
    finally:
        database.close()


def ctx(clock: Clock, *, dry_run: bool = False, step: str = "block-1") -> ActionContext:
    return ActionContext(
        tenant_id=CLINIC,
        run_id="run-9",
        step_id=step,
        idempotency_key=f"run-9/{step}",
        dry_run=dry_run,
        clock=clock,
    )


def test_manifests() -> None:
    assert BlockIp.manifest.reverse_action == "edl.unblock_ip"
    assert BlockDomain.manifest.reverse_action == "edl.unblock_domain"
    assert BlockUrl.manifest.reverse_action == "edl.unblock_url"
    for action in (BlockIp, BlockDomain, BlockUrl):
        m = action.manifest
        assert (m.risk, m.target, m.reversible, m.connector) == ("containment", "network", True, "edl")
    assert not UnblockIp.manifest.reversible


def test_edl_actions_builds_all_six(db: Database) -> None:
    actions = edl_actions(db)
    assert sorted(actions) == [
        "edl.block_domain",
        "edl.block_ip",
        "edl.block_url",
        "edl.unblock_domain",
        "edl.unblock_ip",
        "edl.unblock_url",
    ]


def test_block_ip_then_again_then_rollback(db: Database, clock: Clock) -> None:
    action = BlockIp(db.edl)
    inputs = {"ip": "203.0.113.7", "reason": "C2 beacon in inc-7", "ttl_minutes": 60, "incident_id": "inc-7"}
    done = action.run(ctx(clock), inputs)
    assert (done.status, done.changed, done.output["created"]) == ("succeeded", True, True)
    assert done.output["expires_at"] == (T0 + timedelta(minutes=60)).isoformat()
    (listed,) = db.edl.list_active(CLINIC, kind="ip")
    assert (listed.value, listed.source_ref, listed.added_by) == ("203.0.113.7", "inc-7", "run:run-9")

    same = action.run(ctx(clock), inputs)
    assert (same.changed, same.output["created"]) == (False, False)
    assert "nothing changed" in same.summary
    clock.now += timedelta(minutes=30)
    longer = action.run(ctx(clock), inputs)
    assert longer.changed
    assert "extended" in longer.summary

    assert action.rollback(ctx(clock), inputs, longer).status == "skipped"  # it did not create the entry
    undone = action.rollback(ctx(clock), inputs, done)
    assert (undone.status, undone.changed) == ("succeeded", True)
    assert db.edl.count(CLINIC) == 0


def test_block_dry_run_writes_nothing(db: Database, clock: Clock) -> None:
    result = BlockDomain(db.edl).run(ctx(clock, dry_run=True), {"domain": "Evil.Example", "reason": "phish"})
    assert result.status == "dry_run"
    assert "would block domain evil.example" in result.summary
    assert "not listed yet" in result.summary
    assert db.edl.count(CLINIC) == 0
    assert db.audit.list(CLINIC, action="edl.add") == []


def test_bad_value_is_an_input_error_naming_it(db: Database, clock: Clock) -> None:
    with pytest.raises(ConnectorError) as caught:
        BlockIp(db.edl).run(ctx(clock), {"ip": "203.0.113.999", "reason": "x"})
    assert caught.value.code == "respond.invalid_input"
    assert "'203.0.113.999'" in caught.value.message
    assert not caught.value.retryable
    with pytest.raises(ConnectorError, match="reason"):
        BlockIp(db.edl).run(ctx(clock), {"ip": "203.0.113.9"})
    with pytest.raises(ConnectorError, match="ttl_minutes"):
        BlockIp(db.edl).run(ctx(clock), {"ip": "203.0.113.9", "reason": "x", "ttl_minutes": 0})


def test_unblock(db: Database, clock: Clock) -> None:
    BlockDomain(db.edl).run(ctx(clock), {"domain": "*.evil.example", "reason": "phish kit"})
    unblock = UnblockDomain(db.edl)
    preview = unblock.run(ctx(clock, dry_run=True), {"domain": "*.EVIL.example"})
    assert "(it is listed)" in preview.summary
    assert db.edl.count(CLINIC) == 1
    assert unblock.run(ctx(clock), {"domain": "*.EVIL.example"}).changed
    again = unblock.run(ctx(clock), {"domain": "*.evil.example"})
    assert (again.status, again.changed) == ("succeeded", False)


def test_retired_tenant_cannot_be_changed(db: Database, clock: Clock) -> None:
    db.tenants.retire(CLINIC, actor="ops")
    with pytest.raises(ConnectorError) as caught:
        BlockUrl(db.edl).run(ctx(clock), {"url": "evil.example/x", "reason": "x"})
    assert caught.value.code == "storage.tenant_retired"
