"""Search one tenant's archive with DuckDB: only that tenant's day partitions in the range are read.

`search()` lists the `part-*.parquet` files of `<root>/tenant=<t>/date=<d>/` for each UTC day the range
touches (the tenant validated, the dates rendered by us) and hands exactly that list to `read_parquet` as a
bound parameter: files of other tenants and other days are never opened, whatever the condition says. The
hive columns `tenant` and `date` are read from the path and filtered again.

Deduplication: delivery into the archive is at-least-once, so an `event_key` may be stored more than once.
Every query keeps the first copy received (`QUALIFY row_number() OVER (PARTITION BY event_key ORDER BY
received_at, filename) = 1`), after the time range and conditions, so each event comes back once.

Time range: `since` inclusive, `until` exclusive, both aware datetimes, compared with `event_time`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import duckdb
import orjson
import pyarrow as pa

from watchfloor.archive.model import (
    ArchiveError,
    day_partition,
    days_between,
    valid_tenant,
)
from watchfloor.archive.query import SQL_MACROS, CompiledWhere, Condition, Node, compile_where
from watchfloor.core.errors import Location
from watchfloor.core.types import TenantId

__all__ = [
    "ALL_COLUMNS",
    "DEFAULT_COLUMNS",
    "ArchiveRow",
    "iter_rows",
    "partition_files",
    "search",
]

ALL_COLUMNS: Final = (
    "tenant",
    "event_time",
    "received_at",
    "source",
    "record_id",
    "logsource",
    "event_key",
    "fields",
    "raw",
)
DEFAULT_COLUMNS: Final = ALL_COLUMNS[:-1]  # everything but the raw bytes
MAX_LIMIT: Final = 100_000
DEFAULT_MEMORY_LIMIT: Final = "1GB"


def partition_files(root: Path, tenant: str, since: datetime, until: datetime) -> list[Path]:
    """The committed part files of `tenant` for every day [since, until) touches, in day order."""
    files: list[Path] = []
    for day in days_between(since, until):
        directory = day_partition(root, tenant, day)
        if directory.is_dir():
            files.extend(sorted(directory.glob("part-*.parquet")))
    return files


def connect(memory_limit: str = DEFAULT_MEMORY_LIMIT, temp_directory: Path | None = None) -> Any:
    """An in-memory DuckDB connection with our macros; spills to `temp_directory` past `memory_limit`."""
    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = '{_size_setting(memory_limit)}'")
    if temp_directory is not None:
        con.execute("SET temp_directory = ?", [str(temp_directory)])
    for macro in SQL_MACROS:
        con.execute(macro)
    return con


def _size_setting(text: str) -> str:
    cleaned = text.strip().upper().replace(" ", "")
    number = cleaned.rstrip("KMGTIB")
    if not number.replace(".", "", 1).isdigit() or cleaned[len(number) :] not in {
        "",
        "B",
        "KB",
        "MB",
        "GB",
        "TB",
        "KIB",
        "MIB",
        "GIB",
        "TIB",
    }:
        raise ArchiveError(f"invalid memory limit {text!r} (e.g. 512MB, 2GB)", code="archive.invalid_setting")
    return cleaned


def _check_range(since: datetime, until: datetime) -> None:
    for name, moment in (("since", since), ("until", until)):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ArchiveError(f"{name} must be timezone-aware", code="archive.invalid_range")
    if until < since:
        raise ArchiveError(
            f"until ({until.isoformat()}) is before since ({since.isoformat()})", code="archive.invalid_range"
        )


def _select_sql(columns: Sequence[str], where: CompiledWhere, *, order: bool, limit: bool) -> str:
    # Safe to format: `columns` are checked against ALL_COLUMNS and `where_sql` is compile_where's
    # template text, whose values are all bound parameters.
    # The inner query reads the listed files and extracts every named field with one JSON parse per row.
    listed = ", ".join(columns)
    source = (
        "read_parquet(?, hive_partitioning = true, hive_types = {'tenant': VARCHAR, 'date': DATE}, "
        "filename = true)"
    )
    extract = ", json_extract(fields, CAST(? AS VARCHAR[])) AS __v" if where.paths else ""
    scope = "tenant = ? AND event_time >= ? AND event_time < ?"
    inner = f"SELECT *{extract} FROM {source} WHERE {scope}"  # noqa: S608
    dedupe = "QUALIFY row_number() OVER (PARTITION BY event_key ORDER BY received_at, filename) = 1"
    sql = f"SELECT {listed} FROM ({inner}) WHERE ({where.sql}) {dedupe}"  # noqa: S608
    if order:
        sql += " ORDER BY event_time, event_key"
    if limit:
        sql += " LIMIT ?"
    return sql


def _scope_params(
    compiled: CompiledWhere, files: list[Path], tenant: TenantId, since: datetime, until: datetime
) -> list[Any]:
    head: list[Any] = [compiled.paths] if compiled.paths else []
    return [*head, [str(f) for f in files], tenant, since, until]


def _columns(columns: Sequence[str] | None) -> list[str]:
    chosen = list(DEFAULT_COLUMNS if columns is None else columns)
    unknown = [c for c in chosen if c not in ALL_COLUMNS]
    if unknown or not chosen:
        raise ArchiveError(
            f"unknown columns {unknown}; choose from {', '.join(ALL_COLUMNS)}", code="search.invalid_columns"
        )
    return chosen


def search(
    root: Path,
    tenant: str,
    *,
    since: datetime,
    until: datetime,
    where: Sequence[Condition] | Node | str | None = None,
    limit: int = 100,
    columns: Sequence[str] | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> list[dict[str, Any]]:
    """Events of `tenant` with since <= event_time < until matching `where`, oldest first, each once.

    Rows are dicts of `columns` (default: every column but `raw`); `fields` is parsed back to a dict,
    times are aware UTC datetimes, `raw` is bytes. Raises `SearchQueryError` for a bad condition and
    `ArchiveError` for an invalid tenant, range, limit or an unreadable archive.
    """
    tid = valid_tenant(tenant)
    _check_range(since, until)
    if not 1 <= limit <= MAX_LIMIT:
        raise ArchiveError(f"limit must be between 1 and {MAX_LIMIT}", code="search.invalid_limit")
    chosen = _columns(columns)
    compiled = compile_where(where)
    files = partition_files(root, tid, since, until)
    if not files:
        return []
    sql = _select_sql(chosen, compiled, order=True, limit=True)
    params = [*_scope_params(compiled, files, tid, since, until), *compiled.params, limit]
    con = connect(memory_limit)
    try:
        table = _run(con, sql, params, root, tid).to_arrow_table()
    finally:
        con.close()
    return [_row(r) for r in table.to_pylist()]


def _run(con: Any, sql: str, params: list[Any], root: Path, tenant: TenantId) -> Any:
    try:
        return con.sql(sql, params=params)
    except duckdb.Error as exc:
        raise _archive_error(exc, root, tenant) from None


def _archive_error(exc: Exception, root: Path, tenant: TenantId) -> ArchiveError:
    if isinstance(exc, duckdb.ParserException | duckdb.BinderException):  # a bug of ours, not the user's
        return ArchiveError(f"search query failed: {exc}", code="search.internal")
    return ArchiveError(
        f"cannot read the archive: {exc}",
        location=Location(path=str(root), tenant=tenant),
        code="archive.read_failed",
    )


def _row(row: dict[str, Any]) -> dict[str, Any]:
    text = row.get("fields")
    if isinstance(text, str):
        row["fields"] = orjson.loads(text)
    return row


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveRow:
    """One archived event as read back (what retro-hunt streams)."""

    tenant: TenantId
    event_time: datetime
    received_at: datetime
    source: str
    record_id: str | None
    logsource: str
    event_key: str
    raw: bytes


def iter_rows(
    root: Path,
    tenant: str,
    *,
    since: datetime,
    until: datetime,
    where: Sequence[Condition] | Node | str | None = None,
    batch_rows: int = 10_000,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    temp_directory: Path | None = None,
) -> Iterator[ArchiveRow]:
    """Stream every matching event (each event_key once) in time order, `batch_rows` at a time.

    Memory stays bounded: DuckDB sorts and deduplicates within `memory_limit`, spilling to
    `temp_directory` (or its default) beyond it, and hands Arrow batches of `batch_rows` to Python.
    """
    tid = valid_tenant(tenant)
    _check_range(since, until)
    if batch_rows < 1:
        raise ArchiveError("batch_rows must be at least 1", code="archive.invalid_setting")
    compiled = compile_where(where)
    files = partition_files(root, tid, since, until)
    if not files:
        return
    columns = ["event_time", "received_at", "source", "record_id", "logsource", "event_key", "raw"]
    sql = _select_sql(columns, compiled, order=True, limit=False)
    params = [*_scope_params(compiled, files, tid, since, until), *compiled.params]
    con = connect(memory_limit, temp_directory)
    try:
        try:
            reader: pa.RecordBatchReader = _run(con, sql, params, root, tid).to_arrow_reader(batch_rows)
            for batch in reader:
                yield from _batch_rows(batch, tid)
        except duckdb.Error as exc:
            raise _archive_error(exc, root, tid) from None
    finally:
        con.close()


def _batch_rows(batch: pa.RecordBatch, tenant: TenantId) -> Iterator[ArchiveRow]:
    data = batch.to_pydict()
    for i in range(batch.num_rows):
        yield ArchiveRow(
            tenant=tenant,
            event_time=data["event_time"][i],
            received_at=data["received_at"][i],
            source=data["source"][i],
            record_id=data["record_id"][i],
            logsource=data["logsource"][i],
            event_key=data["event_key"][i],
            raw=data["raw"][i],
        )
