"""Records as they travel from readers to the detection engine, with their provenance."""

from __future__ import annotations

from dataclasses import dataclass, field

from watchfloor.core.types import TenantId


@dataclass(frozen=True, slots=True, kw_only=True)
class Provenance:
    """Where a record came from. Excluded from record equality."""

    tenant: TenantId
    source: str
    line: int | None = None
    record_id: int | None = None
    parser: str = "watchfloor"


@dataclass(frozen=True, slots=True, kw_only=True)
class RawRecord:
    """One event as JSON text (UTF-8), exactly as it will be parsed.

    `raw` is the JSON object text; for EVTX it is the record as the `evtx` package renders it.
    """

    raw: bytes
    provenance: Provenance = field(compare=False)

    @property
    def tenant(self) -> TenantId:
        return self.provenance.tenant


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """A record (or part of an input) that could not be processed, kept with the reason and location."""

    tenant: TenantId
    source: str
    reason: str
    code: str
    line: int | None = None
    record_id: int | None = None
    offset: int | None = None
    sample: bytes = b""

    def where(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
        if self.record_id is not None:
            where += f" record={self.record_id}"
        if self.offset is not None:
            where += f" offset={self.offset}"
        return f"tenant={self.tenant} {where}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnostic:
    """A non-fatal problem with a record that was still processed (e.g. invalid UTF-8 repaired)."""

    tenant: TenantId
    source: str
    code: str
    message: str
    line: int | None = None
    record_id: int | None = None
