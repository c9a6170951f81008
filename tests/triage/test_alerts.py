"""Alerts: stable dedup keys and ids, repeats update one alert, spill-over into the next window."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from watchfloor.core.types import RuleId, TenantId
from watchfloor.triage.alerts import (
    MAX_DETECTION_IDS,
    MAX_ENTITIES,
    MAX_PER_KIND,
    alert_id,
    continues,
    dedup_key,
    open_alert,
    series_key,
    series_of,
    update_alert,
    window_start,
    with_status,
)
from watchfloor.triage.models import Alert, DetectionInput, Entity, RiskScore

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CLINIC = TenantId("clinic")
HOST = Entity("host", "ws-17")
LOW = RiskScore(score=20)
HIGH = RiskScore(score=80)


def inp(
    detection_id: int = 1,
    *,
    at: datetime = T0,
    rule: str = "r-1",
    entities: tuple[Entity, ...] = (HOST, Entity("user", "jdoe")),
    tenant: str = "clinic",
) -> DetectionInput:
    return DetectionInput(
        tenant_id=TenantId(tenant),
        detection_id=detection_id,
        rule_id=RuleId(rule),
        rule_title="Whoami Execution",
        rule_level="low",
        tags=("attack.discovery", "attack.t1033"),
        event_time=at,
        matched_at=at,
        entities=entities,
    )


def run(inputs: list[DetectionInput], now: datetime | None = None) -> list[Alert]:
    """Apply the dedup rule the engine applies: continue the series' alert, else open a new one."""
    current: dict[str, Alert] = {}
    opened: list[Alert] = []
    for item in inputs:
        moment = now or item.matched_at
        key = series_key(item)
        alert = current.get(key)
        if alert is not None and continues(alert, item, moment):
            current[key] = update_alert(alert, item, LOW, moment)
            opened[opened.index(alert)] = current[key]
        else:
            current[key] = open_alert(item, LOW, moment)
            opened.append(current[key])
    return opened


def test_the_same_detection_repeated_is_one_alert_with_a_count() -> None:
    alerts = run([inp(n, at=T0 + timedelta(minutes=n)) for n in range(1, 6)])
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.count == 5
    assert alert.first_seen == T0 + timedelta(minutes=1)
    assert alert.last_seen == T0 + timedelta(minutes=5)
    assert alert.detection_ids == (1, 2, 3, 4, 5)
    assert alert.techniques == ("T1033",)
    assert alert.tactics == ("discovery",)
    assert alert.dedup_key == "r-1|host:ws-17|2026-12-01T10:00:00Z"


def test_different_rule_entity_or_window_are_different_alerts() -> None:
    base = inp(1)
    others = [
        inp(2, rule="r-2"),
        inp(3, entities=(Entity("host", "ws-18"),)),
        inp(4, at=T0 + timedelta(hours=3)),
        inp(5, tenant="bakery"),
    ]
    ids = {open_alert(item, LOW, item.matched_at).id for item in [base, *others]}
    assert len(ids) == 5
    assert len(run([base, *others])) == 5


def test_primary_entity_order_host_user_cloud_ip() -> None:
    user_only = inp(entities=(Entity("ip", "10.0.0.1"), Entity("user", "jdoe")))
    assert series_key(user_only) == "r-1|user:jdoe"
    assert series_key(inp(entities=(Entity("file", "c:\\x"),))) == "r-1|none"
    assert series_key(inp(entities=(Entity("ip", "10.0.0.1"), Entity("cloud_account", "a1")))) == (
        "r-1|cloud_account:a1"
    )


def test_a_repeat_spilling_into_the_next_window_updates_the_alert() -> None:
    first, spill = inp(1, at=T0 + timedelta(minutes=50)), inp(2, at=T0 + timedelta(minutes=70))
    assert dedup_key(first) != dedup_key(spill)  # different fixed windows ...
    alerts = run([first, spill])
    assert len(alerts) == 1  # ... but within one window of last_seen: one alert, keyed by the first
    assert alerts[0].dedup_key == dedup_key(first)
    assert series_of(alerts[0].dedup_key) == series_key(spill)


def test_a_gap_longer_than_the_window_opens_a_new_alert() -> None:
    alerts = run([inp(1), inp(2, at=T0 + timedelta(minutes=61))])
    assert [a.count for a in alerts] == [1, 1]


def test_an_alert_spans_at_most_a_day() -> None:
    beacon = [inp(n, at=T0 + timedelta(minutes=30 * n)) for n in range(100)]  # every 30 min, 50 h
    alerts = run(beacon)
    assert [a.count for a in alerts] == [49, 49, 2]  # 24 h inclusive: 49 half-hours
    for alert in alerts:
        assert alert.last_seen - alert.first_seen <= timedelta(days=1)
    assert len({a.id for a in alerts}) == 3


def test_late_detections_widen_first_seen() -> None:
    alerts = run([inp(1, at=T0 + timedelta(minutes=30)), inp(2, at=T0 + timedelta(minutes=5))])
    assert len(alerts) == 1
    assert alerts[0].first_seen == T0 + timedelta(minutes=5)
    assert alerts[0].last_seen == T0 + timedelta(minutes=30)


def test_future_event_times_count_as_now() -> None:
    future = inp(1, at=T0 + timedelta(days=300))
    alert = open_alert(future, LOW, T0)
    assert alert.first_seen == alert.last_seen == T0
    assert alert.dedup_key.endswith("2026-12-01T10:00:00Z")
    assert dedup_key(future, now=T0) == alert.dedup_key


def test_update_keeps_the_higher_risk_status_and_incident() -> None:
    alert = with_status(open_alert(inp(1), HIGH, T0), "incident", incident_id="inc-clinic-1")
    updated = update_alert(alert, inp(2), LOW, T0)
    assert updated.risk == HIGH
    assert (updated.status, updated.incident_id) == ("incident", "inc-clinic-1")
    assert update_alert(updated, inp(3), RiskScore(score=95), T0).risk.score == 95


def test_entities_and_detection_ids_are_bounded() -> None:
    alert = open_alert(inp(0), LOW, T0)
    for n in range(1, 60):
        alert = update_alert(alert, inp(n, entities=(HOST, Entity("process", f"p-{n}"))), LOW, T0)
    assert alert.count == 60
    assert [e.kind for e in alert.entities].count("process") == MAX_PER_KIND
    assert alert.entities[:2] == (HOST, Entity("user", "jdoe"))
    assert alert.detection_ids == tuple(range(MAX_DETECTION_IDS))
    later = update_alert(alert, inp(61, entities=(HOST, Entity("user", "kim"))), LOW, T0)
    assert Entity("user", "kim") in later.entities  # process ids did not crowd the user out
    for kind in ("ip", "file", "hash", "domain", "url", "app"):
        many = tuple(Entity(kind, f"{kind}-{n}") for n in range(12))
        later = update_alert(later, inp(62, entities=many), LOW, T0)
    assert len(later.entities) == MAX_ENTITIES


def test_replaying_a_detection_id_does_not_list_it_twice() -> None:
    alert = open_alert(inp(1), LOW, T0)
    assert update_alert(alert, inp(1), LOW, T0).detection_ids == (1,)


def test_fast_built_alerts_equal_constructed_ones() -> None:
    built = open_alert(inp(1), LOW, T0)
    constructed = Alert(**{f.name: getattr(built, f.name) for f in fields(Alert)})
    assert built == constructed
    assert hash(built) == hash(constructed)
    assert replace(built, count=2).count == 2
    assert with_status(built, "suppressed", closed_reason="why") == replace(
        built, status="suppressed", closed_reason="why"
    )


@given(minute=st.integers(0, 10**6), window=st.sampled_from([60, 900, 3600, 86400]))
def test_window_start_floors_to_the_window(minute: int, window: int) -> None:
    moment = T0 + timedelta(minutes=minute)
    start = datetime.strptime(window_start(moment, window), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert start <= moment < start + timedelta(seconds=window)
    assert int(start.timestamp()) % window == 0


def test_ids_are_stable_across_processes() -> None:
    key = dedup_key(inp(1))
    here = alert_id(CLINIC, key)
    assert here == alert_id(CLINIC, key)
    assert here.startswith("al-")
    assert len(here) == 23
    code = (
        "from watchfloor.triage.alerts import alert_id; from watchfloor.core.types import TenantId; "
        f"print(alert_id(TenantId('clinic'), {key!r}))"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": src}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == here
    assert alert_id(TenantId("bakery"), key) != here
