"""Entities: canonical values, extraction from ECS events (nested, flat, native), ATT&CK tags."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchfloor.core.types import RuleId, TenantId
from watchfloor.storage.detections import Detection
from watchfloor.triage.entities import attack_of, entities_of, from_detection, normalize, primary_entity
from watchfloor.triage.models import ENTITY_KINDS, Entity, EntityKind

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def detection(event: Mapping[str, Any], **changes: object) -> Detection:
    fields: dict[str, object] = {
        "id": 7,
        "tenant_id": TenantId("clinic"),
        "rule_id": RuleId("r-1"),
        "rule_version": "1",
        "rule_title": "Whoami Execution",
        "rule_level": "low",
        "event_key": "src#1",
        "source": "src",
        "record_id": "1",
        "event_time": T0,
        "matched_at": T0 + timedelta(seconds=2),
        "stored_at": T0 + timedelta(seconds=3),
        "event": event,
        "tags": ("attack.discovery", "attack.t1033"),
    }
    fields.update(changes)
    return Detection(**fields)  # type: ignore[arg-type]


# -- normalize -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("host", "WS-17.corp.example.com", "ws-17"),
        ("host", "ws-17", "ws-17"),
        ("host", "\\\\WS-17", "ws-17"),
        ("host", "WS-17.corp.example.com.", "ws-17"),
        ("host", "10.0.0.5", "10.0.0.5"),
        ("host", "localhost", ""),
        ("host", "127.0.0.1", ""),
        ("host", "-", ""),
        ("user", "CORP\\JDoe", "jdoe"),
        ("user", "jdoe@corp.example.com", "jdoe"),
        ("user", " JDOE ", "jdoe"),
        ("user", "NT AUTHORITY\\SYSTEM", ""),
        ("user", "NT AUTHORITY\\LOCAL SERVICE", ""),
        ("user", "NETWORK SERVICE", ""),
        ("user", "ANONYMOUS LOGON", ""),
        ("user", "S-1-5-18", ""),
        ("user", "WS-17$", ""),
        ("user", "Window Manager\\DWM-3", ""),
        ("user", "-", ""),
        ("user", "", ""),
        ("user", "root", "root"),
        ("ip", "10.0.0.5", "10.0.0.5"),
        ("ip", "::ffff:10.0.0.5", "10.0.0.5"),
        ("ip", "2001:DB8:0:0::1", "2001:db8::1"),
        ("ip", "[2001:db8::1]:443", "2001:db8::1"),
        ("ip", "10.0.0.5:3389", "10.0.0.5"),
        ("ip", "0.0.0.0", ""),
        ("ip", "::1", ""),
        ("ip", "127.0.0.1", ""),
        ("ip", "not-an-ip", ""),
        ("process", "{A1B2C3D4-0000-1111-2222-333344445555}", "a1b2c3d4-0000-1111-2222-333344445555"),
        ("file", "C:\\Windows\\System32\\CMD.EXE", "c:\\windows\\system32\\cmd.exe"),
        ("file", "/tmp/Payload.sh", "/tmp/Payload.sh"),
        ("url", "HTTPS://Evil.Example.COM/Path/A", "https://evil.example.com/Path/A"),
        ("domain", "Evil.Example.COM.", "evil.example.com"),
        ("hash", "ABCDEF0123", "abcdef0123"),
    ],
)
def test_normalize_canonical_forms(kind: EntityKind, raw: str, expected: str) -> None:
    assert normalize(kind, raw) == expected


@given(kind=st.sampled_from(ENTITY_KINDS), value=st.text(max_size=40))
def test_normalize_is_idempotent(kind: EntityKind, value: str) -> None:
    once = normalize(kind, value)
    assert normalize(kind, once) == once


_NAME = st.text(
    alphabet=st.characters(categories=("Ll", "Lu", "Nd"), max_codepoint=0x24F), min_size=1, max_size=12
)


@given(user=_NAME, domain=_NAME, suffix=_NAME)
def test_user_forms_map_to_one_canonical_value(user: str, domain: str, suffix: str) -> None:
    canonical = normalize("user", user)
    forms = [f"{domain}\\{user}", f"{user}@{domain}.{suffix}", user.upper(), f" {user} ", user.lower()]
    assert {normalize("user", form) for form in forms} == {canonical}


@given(host=_NAME, domain=_NAME)
def test_fqdn_and_short_host_names_meet(host: str, domain: str) -> None:
    assert normalize("host", f"{host}.{domain}.local") == normalize("host", host)


# -- entities_of -----------------------------------------------------------------------------------
PROCESS_EVENT = {
    "host": {"name": "WS-17.corp.example.com", "ip": ["10.0.0.17"]},
    "user": {"name": "jdoe", "domain": "CORP"},
    "process": {
        "pid": 4242,
        "entity_id": "{AAAA-1}",
        "executable": "C:\\Windows\\System32\\cmd.exe",
        "parent": {"pid": 4000, "entity_id": "{AAAA-0}"},
    },
    "file": {"path": "C:\\Users\\jdoe\\evil.ps1", "hash": {"sha256": "ABC123"}},
}


def test_entities_of_a_nested_ecs_process_event() -> None:
    found = entities_of(PROCESS_EVENT)
    assert found == (
        Entity("host", "ws-17"),
        Entity("user", "jdoe"),
        Entity("ip", "10.0.0.17"),
        Entity("process", "aaaa-1"),
        Entity("process", "aaaa-0"),
        Entity("file", "c:\\users\\jdoe\\evil.ps1"),
        Entity("hash", "abc123"),
    )
    assert primary_entity(found) == Entity("host", "ws-17")


def test_flat_dotted_keys_read_like_nested_ones() -> None:
    flat = {"host.name": "WS-17", "user.name": "CORP\\jdoe", "source.ip": "10.0.0.9"}
    nested = {"host": {"name": "ws-17"}, "user": {"name": "jdoe"}, "source": {"ip": "10.0.0.9"}}
    assert entities_of(flat) == entities_of(nested)


def test_parent_and_child_alerts_share_the_parent_process_identity() -> None:
    parent = {"host": {"name": "ws-1"}, "process": {"pid": 100, "parent": {"pid": 50}}}
    child = {"host": {"name": "ws-1"}, "process": {"pid": 200, "parent": {"pid": 100}}}
    shared = set(entities_of(parent)) & set(entities_of(child))
    assert Entity("process", "ws-1:100") in shared


def test_process_without_host_or_entity_id_is_not_an_entity() -> None:
    assert entities_of({"process": {"pid": 100}}) == ()
    assert entities_of({"host": {"name": "ws-1"}, "process": {"pid": 4}}) == (Entity("host", "ws-1"),)


def test_destination_ip_only_for_connections_that_start_inside() -> None:
    outbound = {"source": {"ip": "10.0.0.5"}, "destination": {"ip": "203.0.113.9"}}
    inbound = {"source": {"ip": "93.184.216.34"}, "destination": {"ip": "10.0.0.5"}}
    lateral = {"source": {"ip": "10.0.0.5"}, "destination": {"ip": "10.0.0.6"}}
    assert Entity("ip", "203.0.113.9") in entities_of(outbound)
    assert entities_of(inbound) == (Entity("ip", "93.184.216.34"),)
    assert Entity("ip", "10.0.0.6") in entities_of(lateral)


def test_cloud_sign_in_entities() -> None:
    event = {
        "user": {"name": "JDoe@Clinic.example.com", "email": "jdoe@clinic.example.com"},
        "source": {"ip": "198.51.100.7"},
        "cloud": {"account": {"id": "AAD-Tenant-1"}},
        "azure.signinlogs.app_display_name": "Office 365 Exchange Online",
    }
    assert entities_of(event) == (
        Entity("user", "jdoe"),
        Entity("cloud_account", "aad-tenant-1"),
        Entity("ip", "198.51.100.7"),
        Entity("app", "office 365 exchange online"),
    )
    assert primary_entity(entities_of(event)) == Entity("user", "jdoe")


def test_noise_values_and_odd_shapes_give_no_entities() -> None:
    event = {"user": {"name": ["SYSTEM", None, {"x": 1}]}, "host": {"name": {"nested": "x"}}, "source": "x"}
    assert entities_of(event) == ()


# -- ATT&CK ----------------------------------------------------------------------------------------
def test_attack_of_splits_techniques_and_tactics() -> None:
    tags = (
        "attack.execution",
        "attack.t1059.001",
        "attack.Initial_Access",
        "attack.g0032",
        "attack.s0002",
        "cve.2021-44228",
        "attack.T1059.001",
        "attack.lateral-movement",
    )
    assert attack_of(tags) == (("T1059.001",), ("execution", "initial-access", "lateral-movement"))


# -- from_detection --------------------------------------------------------------------------------
def test_from_detection_builds_the_input() -> None:
    inp = from_detection(detection(PROCESS_EVENT), rule_author="Florian Roth")
    assert inp.tenant_id == "clinic"
    assert inp.detection_id == 7
    assert inp.rule_author == "Florian Roth"
    assert inp.event_time == T0
    assert inp.entities[0] == Entity("host", "ws-17")
    assert inp.tags == ("attack.discovery", "attack.t1033")


def test_from_detection_times_fall_back_and_become_utc() -> None:
    naive = datetime(2026, 12, 1, 10, 0)  # noqa: DTZ001 - storage may hand back naive UTC
    inp = from_detection(detection({}, event_time=None, matched_at=naive))
    assert inp.event_time == inp.matched_at == T0
    assert inp.event_time.tzinfo is UTC
    plus_one = datetime(2026, 12, 1, 11, 0, tzinfo=timezone(timedelta(hours=1)))
    assert from_detection(detection({}, event_time=plus_one)).event_time.utcoffset() == timedelta(0)


def test_from_detection_maps_a_native_windows_record() -> None:
    raw = {
        "Event": {
            "System": {
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "EventID": 1,
                "Computer": "WS-17.corp.example.com",
            },
            "EventData": {
                "Image": "C:\\Windows\\System32\\whoami.exe",
                "ProcessGuid": "{BBBB-2}",
                "ProcessId": 600,
                "User": "CORP\\jdoe",
                "ParentProcessId": 500,
            },
        }
    }
    inp = from_detection(detection(raw))
    assert Entity("host", "ws-17") in inp.entities
    assert Entity("user", "jdoe") in inp.entities
    assert Entity("process", "bbbb-2") in inp.entities
    assert inp.event["process.executable"] == "C:\\Windows\\System32\\whoami.exe"
    assert inp.event["Event"] == raw["Event"]  # the native record stays, ECS names are added
