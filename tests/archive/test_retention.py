"""Retention by whole day partitions: the keep_days boundary, tenant isolation, tiers, leftovers."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchfloor.archive import (
    DEFAULT_RETENTION_DAYS_BY_TIER,
    ArchiveError,
    apply_retention,
    apply_retention_by_tier,
    is_expired,
    retention_days,
)

TODAY = date(2026, 12, 3)


def make_days(root: Path, tenant: str, days: list[date]) -> None:
    for day in days:
        folder = root / f"tenant={tenant}" / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "part-0.parquet").write_bytes(b"x" * 100)


def present(root: Path, tenant: str) -> set[date]:
    base = root / f"tenant={tenant}"
    return {
        date.fromisoformat(p.name[5:])
        for p in base.iterdir()
        if p.name.startswith("date=") and p.name != "date=garbage"
    }


@given(
    today=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
    keep_days=st.integers(min_value=1, max_value=4000),
    age=st.integers(min_value=-5, max_value=5000),
)
def test_boundary_a_partition_exactly_keep_days_old_is_kept(today: date, keep_days: int, age: int) -> None:
    day = today - timedelta(days=age)
    assert is_expired(day, keep_days=keep_days, today=today) == (age > keep_days)
    assert not is_expired(today - timedelta(days=keep_days), keep_days=keep_days, today=today)
    assert is_expired(today - timedelta(days=keep_days + 1), keep_days=keep_days, today=today)


@given(keep_days=st.integers(min_value=1, max_value=40), span=st.integers(min_value=0, max_value=60))
@settings(max_examples=40, deadline=None)
def test_apply_retention_deletes_exactly_the_expired_days(
    tmp_path_factory: pytest.TempPathFactory, keep_days: int, span: int
) -> None:
    root = tmp_path_factory.mktemp("ret")
    days = [TODAY - timedelta(days=n) for n in range(span + 1)]
    make_days(root, "clinic", days)
    result = apply_retention(root, "clinic", keep_days, TODAY)
    kept = {d for d in days if (TODAY - d).days <= keep_days}
    assert present(root, "clinic") == kept
    assert set(result.deleted) == set(days) - kept
    assert result.bytes_freed == 100 * len(result.deleted)
    assert len(present(root, "clinic")) <= keep_days + 1


def test_other_tenants_and_foreign_folders_are_untouched(tmp_path: Path) -> None:
    old = [TODAY - timedelta(days=400), TODAY - timedelta(days=100), TODAY]
    make_days(tmp_path, "clinic", old)
    make_days(tmp_path, "bakery", old)
    (tmp_path / "tenant=clinic" / "notes").mkdir()
    (tmp_path / "tenant=clinic" / "date=garbage").mkdir()
    result = apply_retention(tmp_path, "clinic", 30, TODAY)
    assert present(tmp_path, "clinic") == {TODAY}
    assert present(tmp_path, "bakery") == set(old)
    assert set(result.skipped) == {"notes", "date=garbage"}
    assert (tmp_path / "tenant=clinic" / "notes").is_dir()


def test_interrupted_deletions_are_finished_by_the_next_run(tmp_path: Path) -> None:
    make_days(tmp_path, "clinic", [TODAY])
    leftover = tmp_path / "tenant=clinic" / ".deleting-date=2020-01-01"
    leftover.mkdir()
    (leftover / "part-1.parquet").write_bytes(b"y" * 10)
    result = apply_retention(tmp_path, "clinic", 30, TODAY)
    assert result.leftovers_removed == 1
    assert not leftover.exists()
    assert present(tmp_path, "clinic") == {TODAY}


def test_tiers_and_validation(tmp_path: Path) -> None:
    assert dict(DEFAULT_RETENTION_DAYS_BY_TIER) == {"essentials": 30, "standard": 90, "premium": 365}
    assert retention_days("premium", DEFAULT_RETENTION_DAYS_BY_TIER) == 365
    with pytest.raises(ArchiveError) as info:
        retention_days("gold", DEFAULT_RETENTION_DAYS_BY_TIER)
    assert info.value.code == "archive.unknown_tier"
    days = [TODAY - timedelta(days=n) for n in (0, 31, 91, 366)]
    for tenant in ("clinic", "bakery", "lawfirm", "untiered"):
        make_days(tmp_path, tenant, days)
    results = apply_retention_by_tier(
        tmp_path, {"clinic": "essentials", "bakery": "standard", "lawfirm": "premium"}, TODAY
    )
    assert [r.tenant for r in results] == ["bakery", "clinic", "lawfirm"]
    assert len(present(tmp_path, "clinic")) == 1
    assert len(present(tmp_path, "bakery")) == 2
    assert len(present(tmp_path, "lawfirm")) == 3
    assert len(present(tmp_path, "untiered")) == 4  # no tier known: never deleted by omission
    for bad in (0, -1, True):
        with pytest.raises(ArchiveError):
            apply_retention(tmp_path, "clinic", bad, TODAY)
    with pytest.raises(ArchiveError):
        apply_retention(tmp_path, "../x", 30, TODAY)
    assert apply_retention(tmp_path, "nobody", 30, TODAY).deleted == ()
