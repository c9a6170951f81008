"""JSON lines and JSON documents -> RawRecord, with every bad line dead-lettered where it was.

JSONL: one object per line; `raw` is the line's own bytes (newline stripped, never re-serialized) and
`Provenance.line` the 1-based line number. JSON documents (an array, one object, or CloudTrail's
`{"Records": [...]}`): each element is re-serialized with orjson and `Provenance.line` is the 1-based
element index (`parser="json"` says so).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import orjson

from watchfloor.core.records import Provenance, RawRecord
from watchfloor.core.types import TenantId
from watchfloor.normalize.deadletter import (
    INVALID_UTF8_REPAIRED,
    MALFORMED_JSON,
    NOT_AN_OBJECT,
    OVERSIZED,
    SAMPLE_CAP_BYTES,
    Reporter,
)

BOM = b"\xef\xbb\xbf"
_CR = b"\r"
_NL = b"\n"
_JSON_START = frozenset(b"[{")
_WS = re.compile(r"\s*")

RecordFactory = Callable[[bytes, TenantId, str, int | None, int | None, str], RawRecord]


class LineStream(Protocol):
    """What the readers need from a (possibly decompressing) binary file."""

    def readline(self, size: int = -1, /) -> bytes: ...

    def read(self, size: int = -1, /) -> bytes: ...


def _plain_record(
    raw: bytes, tenant: TenantId, source: str, line: int | None, record_id: int | None, parser: str
) -> RawRecord:
    prov = Provenance(tenant=tenant, source=source, line=line, record_id=record_id, parser=parser)
    return RawRecord(raw=raw, provenance=prov)


@functools.cache
def record_factory() -> RecordFactory:
    """A RawRecord constructor for the hot loop.

    The frozen dataclasses' `__init__` costs ~1.2 us per record (two objects, `object.__setattr__` per
    field), a fifth of a JSONL line's budget. When `Provenance`/`RawRecord` have exactly the slots this
    knows, fill the slots directly; otherwise (the core model changed) fall back to the constructors.
    """
    prov_fields = tuple(f.name for f in dataclasses.fields(Provenance))
    raw_fields = tuple(f.name for f in dataclasses.fields(RawRecord))
    if (
        prov_fields != ("tenant", "source", "line", "record_id", "parser")
        or raw_fields != ("raw", "provenance")
        or getattr(Provenance, "__slots__", None) != prov_fields
        or getattr(RawRecord, "__slots__", None) != raw_fields
    ):
        return _plain_record
    new = object.__new__
    p_tenant, p_source, p_line, p_rid, p_parser = (Provenance.__dict__[n].__set__ for n in prov_fields)
    r_raw, r_prov = (RawRecord.__dict__[n].__set__ for n in raw_fields)

    def fast(
        raw: bytes, tenant: TenantId, source: str, line: int | None, record_id: int | None, parser: str
    ) -> RawRecord:
        prov = new(Provenance)
        p_tenant(prov, tenant)
        p_source(prov, source)
        p_line(prov, line)
        p_rid(prov, record_id)
        p_parser(prov, parser)
        rec = new(RawRecord)
        r_raw(rec, raw)
        r_prov(rec, prov)
        return rec

    return fast


def event_record_id(obj: dict[str, Any]) -> int | None:
    """Event.System.EventRecordID as an int (the `evtx` JSON shape), else None."""
    event = obj.get("Event")
    if event.__class__ is not dict:
        return None
    system = event.get("System")
    if system.__class__ is not dict:
        return None
    rid = system.get("EventRecordID")
    if rid.__class__ is int:
        return int(rid)
    if rid.__class__ is str and rid.isascii() and rid.isdigit() and len(rid) < 20:
        return int(rid)
    return None


def repair_utf8(raw: bytes) -> tuple[bytes, str] | None:
    """Invalid UTF-8 replaced by U+FFFD, and a sentence saying where; None when `raw` is valid."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        fixed = raw.decode("utf-8", errors="replace").encode("utf-8")
        return fixed, f"invalid UTF-8 at byte {exc.start} ({exc.reason}) replaced with U+FFFD"
    return None


def is_json_lines(head: bytes) -> bool:
    """Sniff: is this JSON lines, i.e. a complete one-line object followed by more content?

    A single line (a one-line document such as a CloudTrail `{"Records": [...]}` export) is not.
    """
    body = head.removeprefix(BOM).lstrip()
    end = body.find(_NL)
    if end < 0 or not body[end + 1 :].strip():
        return False
    try:
        return isinstance(orjson.loads(body[:end]), dict)
    except orjson.JSONDecodeError:
        return False


def looks_like_json(head: bytes) -> bool:
    """Sniff: does the first non-blank byte open a JSON object or array?"""
    body = head.removeprefix(BOM).lstrip()
    return bool(body) and body[0] in _JSON_START


class JsonlReader:
    """Reads one JSON-lines stream; problems go to the reporter with the file and line."""

    def __init__(self, source: str, reporter: Reporter, max_record_bytes: int) -> None:
        self.source = source
        self.rep = reporter
        self.max_bytes = max_record_bytes
        self.line = 0  # the last line number reached, for reports about the rest of the stream

    def read(self, stream: LineStream) -> Iterator[RawRecord]:
        """Yield one RawRecord per valid line. Read errors of `stream` propagate to the caller."""
        rep, source, max_bytes = self.rep, self.source, self.max_bytes
        tenant = rep.tenant
        limit = max_bytes + 2  # room for "\r\n": a longer read without a newline is oversized
        readline = stream.readline
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        make = record_factory()
        lineno = records = nbytes = 0
        try:
            for line in iter(functools.partial(readline, limit), b""):
                lineno += 1
                if line[-1:] == _NL:
                    raw = line[:-1]
                    if raw[-1:] == _CR:
                        raw = raw[:-1]
                elif len(line) >= limit:
                    self.line = lineno
                    self._oversized(line, readline, limit)
                    continue
                else:  # the last line, without a newline
                    raw = line[:-1] if line[-1:] == _CR else line
                if not raw:
                    continue
                if len(raw) > max_bytes:
                    reason = f"line of {len(raw)} bytes exceeds max_record_bytes={max_bytes} (not parsed)"
                    rep.dead_letter(source, OVERSIZED, reason, line=lineno, sample=raw)
                    continue
                try:
                    obj = loads(raw)
                except decode_error as exc:
                    rec = self._recover(raw, lineno, exc)
                    if rec is not None:
                        records += 1
                        nbytes += len(rec.raw)
                        yield rec
                    continue
                if obj.__class__ is not dict:
                    self._not_an_object(raw, lineno, obj)
                    continue
                records += 1
                nbytes += len(raw)
                yield make(raw, tenant, source, lineno, event_record_id(obj), "jsonl")
        finally:
            self.line = lineno
            rep.stats.records += records
            rep.stats.bytes += nbytes

    def _oversized(self, head: bytes, readline: Callable[[int], bytes], limit: int) -> None:
        """Skip the rest of an over-long line without holding it; dead-letter it with a capped sample."""
        size = len(head)
        tail = head[-2:]
        while part := readline(limit):
            size += len(part)
            tail = (tail + part)[-2:]
            if part[-1:] == _NL:
                break
        size -= len(tail) - len(_strip_newline(tail))  # count the content, not its line ending
        self.rep.dead_letter(
            self.source,
            OVERSIZED,
            f"line of {size} bytes exceeds max_record_bytes={self.max_bytes} (not parsed)",
            line=self.line,
            sample=head[: min(size, SAMPLE_CAP_BYTES)],
            original_length=size,
        )

    def _not_an_object(self, raw: bytes, lineno: int, obj: object, note: str = "") -> None:
        self.rep.dead_letter(
            self.source,
            NOT_AN_OBJECT,
            f"valid JSON but a {_json_kind(obj)}, not an object{note}",
            line=lineno,
            sample=raw,
        )

    def _recover(self, raw: bytes, lineno: int, exc: orjson.JSONDecodeError) -> RawRecord | None:
        """The slow path for a line orjson rejected: blank, a BOM, invalid UTF-8 (repaired), or malformed."""
        if lineno == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc_bom:
                exc = exc_bom
            else:
                if isinstance(obj, dict):
                    return record_factory()(
                        raw, self.rep.tenant, self.source, lineno, event_record_id(obj), "jsonl"
                    )
                self._not_an_object(raw, lineno, obj)
                return None
        if not raw.strip():
            return None
        repaired = repair_utf8(raw)
        if repaired is None:
            self.rep.dead_letter(self.source, MALFORMED_JSON, str(exc), line=lineno, sample=raw)
            return None
        fixed, what = repaired
        try:
            obj = orjson.loads(fixed)
        except orjson.JSONDecodeError as exc2:
            reason = f"{what}; still not JSON: {exc2}"
            self.rep.dead_letter(self.source, MALFORMED_JSON, reason, line=lineno, sample=raw)
            return None
        if not isinstance(obj, dict):
            self._not_an_object(raw, lineno, obj, f" ({what})")
            return None
        rid = event_record_id(obj)
        self.rep.diagnostic(self.source, INVALID_UTF8_REPAIRED, what, line=lineno, record_id=rid)
        return record_factory()(fixed, self.rep.tenant, self.source, lineno, rid, "jsonl")


def _strip_newline(line: bytes) -> bytes:
    """A line without its ending: one "\\n", "\\r\\n" or (at the end of the input) "\\r"."""
    if line[-1:] == _NL:
        line = line[:-1]
    return line[:-1] if line[-1:] == _CR else line


def _json_kind(obj: object) -> str:
    if isinstance(obj, list):
        return "array"
    if isinstance(obj, str):
        return "string"
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "boolean"
    return "number"


def _byte_offset(data: bytes, char_pos: int) -> int:
    """JSON decoders count characters; dead letters count bytes."""
    return len(data.decode("utf-8", errors="replace")[:char_pos].encode("utf-8"))


def _elements(doc: object) -> list[Any]:
    if isinstance(doc, dict) and isinstance(doc.get("Records"), list):
        return list(doc["Records"])
    if isinstance(doc, list):
        return doc
    return [doc]


def _concatenated(text: str) -> tuple[list[Any], str | None, int]:
    """Whitespace-separated JSON documents (`jq` output, Sigma regression samples).

    Returns the documents, then the error that stopped the parse (None at the end of the text) and
    the character index where it happened. Each document is parsed by orjson, as everything else.
    """
    decoder = json.JSONDecoder()
    docs: list[Any] = []
    pos, end = 0, len(text)
    while True:
        blank = _WS.match(text, pos)
        pos = blank.end() if blank is not None else pos
        if pos >= end:
            return docs, None, pos
        try:
            _, stop = decoder.raw_decode(text, pos)  # only to find where this document ends
            docs.append(orjson.loads(text[pos:stop]))
        except orjson.JSONDecodeError as exc:
            return docs, exc.msg, pos + exc.pos
        except json.JSONDecodeError as exc:
            return docs, exc.msg, exc.pos
        except RecursionError:
            return docs, "nested too deeply", pos
        pos = stop


def parse_document(data: bytes, source: str, rep: Reporter) -> list[Any]:
    """The elements of a JSON document; syntax errors are dead-lettered with their text line.

    Accepts an array, one object, `{"Records": [...]}`, and whitespace-separated objects; invalid
    UTF-8 is repaired (with a diagnostic). What parses before a syntax error is kept.
    """
    data = data.removeprefix(BOM)
    try:
        return _elements(orjson.loads(data))
    except orjson.JSONDecodeError as exc:
        error = exc
    repaired = repair_utf8(data)
    if repaired is not None:
        data, what = repaired
        rep.diagnostic(source, INVALID_UTF8_REPAIRED, f"document: {what}")
        try:
            return _elements(orjson.loads(data))
        except orjson.JSONDecodeError as exc:
            error = exc
    text = data.decode("utf-8")
    docs, problem, where = _concatenated(text)
    if not docs:
        offset = _byte_offset(data, error.pos)
        rep.dead_letter(source, MALFORMED_JSON, str(error), line=error.lineno, offset=offset, sample=data)
        return []
    elements: list[Any] = []
    for doc in docs:
        elements.extend(_elements(doc))
    if problem is not None:
        line = text.count("\n", 0, where) + 1
        offset = _byte_offset(data, where)
        reason = f"after {len(docs)} documents: {problem} (line {line}); the rest of the file is lost"
        rep.dead_letter(source, MALFORMED_JSON, reason, line=line, offset=offset, sample=data[offset:])
    return elements


def read_json_document(data: bytes, source: str, rep: Reporter, max_record_bytes: int) -> Iterator[RawRecord]:
    """One JSON document (see `parse_document`); the caller has checked it is not JSON lines.

    Each element is re-serialized with orjson; `Provenance.line` and dead letters about an element
    carry its 1-based index.
    """
    elements = parse_document(data, source, rep)
    make = record_factory()
    dumps = orjson.dumps
    records = nbytes = 0
    try:
        for index, element in enumerate(elements, start=1):
            if not isinstance(element, dict):
                sample = dumps(element)
                reason = f"element {index} is a {_json_kind(element)}, not an object"
                rep.dead_letter(source, NOT_AN_OBJECT, reason, line=index, sample=sample)
                continue
            raw = dumps(element)
            if len(raw) > max_record_bytes:
                reason = f"element {index} of {len(raw)} bytes exceeds max_record_bytes={max_record_bytes}"
                rep.dead_letter(source, OVERSIZED, reason, line=index, sample=raw)
                continue
            records += 1
            nbytes += len(raw)
            yield make(raw, rep.tenant, source, index, event_record_id(element), "json")
    finally:
        rep.stats.records += records
        rep.stats.bytes += nbytes
