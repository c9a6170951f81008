"""Dead letters: stored with where and why, capped, listed by status, fetched and marked for replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.storage.conftest import ACTOR, FakeClock
from watchfloor.core.records import DeadLetter
from watchfloor.core.types import TenantId
from watchfloor.storage import RAW_CAP_BYTES, Database, NotFoundError

RECEIVED = datetime(2026, 12, 3, 7, 59, tzinfo=UTC)
BROKEN = b'{"EventID": 4625, "TargetUserName": "dr.ruiz"\xff\x00'


def add(db: Database, tenant: TenantId, *, raw: bytes = BROKEN, line: int | None = 12) -> int:
    return db.dead_letters.add(
        tenant,
        source="uploads/clinic-dc01.jsonl",
        code="input.malformed_json",
        message="unexpected end of data",
        raw=raw,
        received_at=RECEIVED,
        line=line,
    )


def test_add_then_list_and_fetch_raw(db: Database, tenant_clinic: TenantId) -> None:
    entry_id = add(db, tenant_clinic)
    (entry,) = db.dead_letters.list(tenant_clinic)
    assert entry.id == entry_id
    assert (entry.source, entry.line, entry.record_id, entry.offset) == (
        "uploads/clinic-dc01.jsonl",
        12,
        None,
        None,
    )
    assert (entry.code, entry.message, entry.status) == (
        "input.malformed_json",
        "unexpected end of data",
        "pending",
    )
    assert (entry.raw_length, entry.stored_length, entry.truncated) == (len(BROKEN), len(BROKEN), False)
    assert entry.received_at == RECEIVED
    assert entry.where() == "tenant=clinic uploads/clinic-dc01.jsonl:12"
    assert db.dead_letters.get_raw(tenant_clinic, entry_id) == BROKEN


def test_raw_bytes_are_capped_and_the_original_size_kept(db: Database, tenant_clinic: TenantId) -> None:
    big = bytes(range(256)) * (RAW_CAP_BYTES // 256 + 10)
    entry_id = add(db, tenant_clinic, raw=big)
    (entry,) = db.dead_letters.list(tenant_clinic)
    assert (entry.raw_length, entry.stored_length, entry.truncated) == (len(big), RAW_CAP_BYTES, True)
    assert db.dead_letters.get_raw(tenant_clinic, entry_id) == big[:RAW_CAP_BYTES]


def test_add_many_takes_readers_dead_letters(db: Database, tenant_clinic: TenantId) -> None:
    items = [
        DeadLetter(
            tenant=tenant_clinic, source="a.evtx", reason="bad chunk", code="input.evtx_corrupt", offset=4096
        ),
        DeadLetter(
            tenant=tenant_clinic, source="b.jsonl", reason="not json", code="input.malformed_json", line=3
        ),
    ]
    assert db.dead_letters.add_many(tenant_clinic, items, received_at=RECEIVED) == 2
    assert db.dead_letters.add_many(tenant_clinic, [], received_at=RECEIVED) == 0
    listed = db.dead_letters.list(tenant_clinic)
    assert [(e.source, e.offset, e.line, e.code, e.message) for e in listed] == [
        ("a.evtx", 4096, None, "input.evtx_corrupt", "bad chunk"),
        ("b.jsonl", None, 3, "input.malformed_json", "not json"),
    ]
    assert all(e.raw_length == 0 for e in listed)


def test_add_many_refuses_another_tenants_dead_letters(db: Database, tenant_clinic: TenantId) -> None:
    item = DeadLetter(tenant=TenantId("lawfirm"), source="x", reason="r", code="c")
    with pytest.raises(ValueError, match="handed to tenant"):
        db.dead_letters.add_many(tenant_clinic, [item], received_at=RECEIVED)
    assert db.dead_letters.list(tenant_clinic) == []


def test_dead_letters_need_a_known_tenant(db: Database) -> None:
    with pytest.raises(NotFoundError):
        add(db, TenantId("nobody"))


def test_mark_replayed_changes_pending_entries_once_and_audits_them(
    db: Database, tenant_clinic: TenantId, clock: FakeClock
) -> None:
    first, second, third = (add(db, tenant_clinic, line=n) for n in (1, 2, 3))
    when = clock.advance(timedelta(hours=2))
    assert db.dead_letters.mark_replayed(tenant_clinic, [first, third, third], actor=ACTOR) == 2
    assert db.dead_letters.mark_replayed(tenant_clinic, [first, 999_999], actor=ACTOR) == 0
    assert db.dead_letters.mark_replayed(tenant_clinic, [], actor=ACTOR) == 0
    assert [e.id for e in db.dead_letters.list(tenant_clinic, status="pending")] == [second]
    replayed = db.dead_letters.list(tenant_clinic, status="replayed")
    assert [(e.id, e.replayed_at) for e in replayed] == [(first, when), (third, when)]
    entries = db.audit.list(tenant_clinic, action="dead_letter.replay")
    assert [(e.object_type, e.object_id, e.actor) for e in entries] == [
        ("dead_letter", str(third), ACTOR),
        ("dead_letter", str(first), ACTOR),
    ]
    assert entries[0].details == {"source": "uploads/clinic-dc01.jsonl", "code": "input.malformed_json"}


def test_list_is_oldest_first_and_limited(db: Database, tenant_clinic: TenantId) -> None:
    ids = [add(db, tenant_clinic, line=n) for n in range(5)]
    assert [e.id for e in db.dead_letters.list(tenant_clinic, limit=3)] == ids[:3]


def test_get_raw_of_an_unknown_entry_is_none(db: Database, tenant_clinic: TenantId) -> None:
    assert db.dead_letters.get_raw(tenant_clinic, 12345) is None
