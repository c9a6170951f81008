"""Detections are stored exactly once per (tenant, rule, event), under repeats and concurrent writers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from watchfloor.core.types import RuleId, TenantId
from watchfloor.storage import Database, NewDetection, NotFoundError, event_key
from watchfloor.storage.schema import detections

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
EVENT = {
    "Channel": "Security",
    "EventID": 4625,
    "TargetUserName": "dr.ruiz",
    "Note": "naïve ☃ \u0000 nul",
    "Nested": {"list": [1, 2.5, None, True]},
}


def detection(n: int, *, rule: str = "win_failed_logon", minutes: int | None = None) -> NewDetection:
    at = T0 + timedelta(minutes=n if minutes is None else minutes)
    return NewDetection(
        rule_id=RuleId(rule),
        rule_version="2026-11-01",
        rule_title="Failed logon",
        rule_level="medium",
        event_key=event_key("clinic-dc01/Security.evtx", n),
        source="clinic-dc01/Security.evtx",
        record_id=str(n),
        event_time=at,
        matched_at=at + timedelta(seconds=3),
        event={**EVENT, "RecordNumber": n},
        tags=("attack.t1110", "attack.credential_access"),
    )


def test_insert_many_returns_the_new_rows_and_repeats_add_nothing(
    db: Database, tenant_clinic: TenantId
) -> None:
    batch = [detection(n) for n in range(5)]
    assert db.detections.insert_many(tenant_clinic, batch) == 5
    assert db.detections.insert_many(tenant_clinic, batch) == 0
    assert db.detections.insert_many(tenant_clinic, [*batch, detection(5), detection(6)]) == 2
    assert db.detections.count(tenant_clinic) == 7


def test_duplicates_inside_one_batch_are_stored_once(db: Database, tenant_clinic: TenantId) -> None:
    assert db.detections.insert_many(tenant_clinic, [detection(1), detection(1), detection(2)]) == 2
    assert db.detections.count(tenant_clinic) == 2


def test_the_same_event_matched_by_two_rules_is_two_detections(db: Database, tenant_clinic: TenantId) -> None:
    assert db.detections.insert_many(tenant_clinic, [detection(1), detection(1, rule="other_rule")]) == 2
    assert db.detections.count(tenant_clinic, rule_id="other_rule") == 1


def test_an_empty_batch_is_zero(db: Database, tenant_clinic: TenantId) -> None:
    assert db.detections.insert_many(tenant_clinic, []) == 0


def test_concurrent_writers_store_each_detection_once(
    open_db: Callable[..., Database], db: Database, tenant_clinic: TenantId
) -> None:
    writers = 6
    handles = [open_db() for _ in range(writers)]
    barrier = threading.Barrier(writers)
    new_counts: list[int] = []
    errors: list[BaseException] = []

    def write(handle: Database, offset: int) -> None:
        try:
            barrier.wait()
            # Overlapping windows: every row is offered by three writers, in different batch orders.
            for start in range(0, 60, 10):
                rows = [detection((n + offset) % 60) for n in range(start, start + 30)]
                new_counts.append(handle.detections.insert_many(tenant_clinic, rows))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(h, 20 * i)) for i, h in enumerate(handles)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(new_counts) == 60
    assert db.detections.count(tenant_clinic) == 60
    with db.engine.connect() as connection:
        distinct = connection.execute(
            select(func.count(func.distinct(detections.c.event_key))).where(
                detections.c.tenant_id == "clinic"
            )
        ).scalar_one()
    assert distinct == 60


def test_stored_detections_round_trip(db: Database, tenant_clinic: TenantId, clock: object) -> None:
    row = detection(7)
    db.detections.insert_many(tenant_clinic, [row])
    (stored,) = db.detections.list(tenant_clinic)
    assert stored.tenant_id == tenant_clinic
    assert (stored.rule_id, stored.rule_version, stored.rule_title, stored.rule_level) == (
        row.rule_id,
        row.rule_version,
        row.rule_title,
        row.rule_level,
    )
    assert (stored.event_key, stored.source, stored.record_id) == (row.event_key, row.source, "7")
    assert (stored.event_time, stored.matched_at) == (row.event_time, row.matched_at)
    assert stored.stored_at.tzinfo is UTC
    assert stored.event == row.event
    assert stored.tags == row.tags


def test_event_time_may_be_missing(db: Database, tenant_clinic: TenantId) -> None:
    row = detection(1)
    timeless = NewDetection(**{**{f: getattr(row, f) for f in row.__dataclass_fields__}, "event_time": None})
    db.detections.insert_many(tenant_clinic, [timeless])
    assert db.detections.list(tenant_clinic)[0].event_time is None
    assert db.detections.list(tenant_clinic, by="event_time", since=T0) == []


def test_list_filters_by_time_rule_and_limit(db: Database, tenant_clinic: TenantId) -> None:
    db.detections.insert_many(tenant_clinic, [detection(n) for n in range(10)])
    db.detections.insert_many(tenant_clinic, [detection(n, rule="psexec", minutes=100 + n) for n in range(3)])
    newest = db.detections.list(tenant_clinic, limit=3)
    assert [(d.rule_id, d.record_id) for d in newest] == [("psexec", "2"), ("psexec", "1"), ("psexec", "0")]
    window = db.detections.list(
        tenant_clinic, since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=5), by="event_time"
    )
    assert [d.record_id for d in window] == ["4", "3", "2"]
    by_match = db.detections.list(
        tenant_clinic, since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=5, seconds=3)
    )
    assert [d.record_id for d in by_match] == ["4", "3", "2"]
    assert [d.record_id for d in db.detections.list(tenant_clinic, rule_id="psexec")] == ["2", "1", "0"]
    assert db.detections.count(tenant_clinic, rule_id="win_failed_logon") == 10


def test_detections_need_a_known_tenant_and_an_event_key(db: Database, tenant_clinic: TenantId) -> None:
    with pytest.raises(NotFoundError):
        db.detections.insert_many(TenantId("nobody"), [detection(1)])
    keyless = NewDetection(
        **{**{f: getattr(detection(1), f) for f in NewDetection.__dataclass_fields__}, "event_key": ""}
    )
    with pytest.raises(ValueError, match="event_key"):
        db.detections.insert_many(tenant_clinic, [keyless])
    assert db.detections.count(tenant_clinic) == 0


def test_retired_tenants_keep_their_detections(db: Database, tenant_clinic: TenantId) -> None:
    db.detections.insert_many(tenant_clinic, [detection(1)])
    db.tenants.retire(tenant_clinic, actor="a")
    assert db.detections.count(tenant_clinic) == 1


def test_tailing_detections_by_id_with_a_cursor(
    db: Database, tenant_clinic: TenantId, tenant_lawfirm: TenantId, clock: object
) -> None:
    from watchfloor.storage.cursors import advance_cursor, read_cursor

    db.detections.insert_many(tenant_clinic, [detection(n) for n in range(3)])
    db.detections.insert_many(tenant_lawfirm, [detection(n) for n in range(2)])
    now = db.store.now()
    # Rows stored at `now` are not yet old enough for a reader that lags by a second.
    assert db.detections.after_all_tenants(0, stored_before=now) == []
    later = now + timedelta(seconds=1)
    first = db.detections.after_all_tenants(0, stored_before=later, limit=4)
    assert [d.tenant_id for d in first] == ["clinic"] * 3 + ["lawfirm"]
    with db.store.write() as connection:
        assert read_cursor(connection, "triage") == 0
        advance_cursor(connection, "triage", first[-1].id, at=later)
    with db.store.write() as connection:
        position = read_cursor(connection, "triage")
        with pytest.raises(ValueError, match="backwards"):
            advance_cursor(connection, "triage", position - 1, at=later)
    rest = db.detections.after_all_tenants(position, stored_before=later)
    assert [d.tenant_id for d in rest] == ["lawfirm"]
