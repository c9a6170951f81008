"""One event schema: a classified record -> `Event` with ECS-aligned field names, the record kept verbatim.

`to_ecs(doc, key, tenant=..., raw=..., source=...)` flattens the doc (`shapes.flatten`: the native names the
detection engine also sees), picks the mapping sections of `content/ecs/*.yml` whose `match` accepts the
`SourceKey`, and fills `Event.fields` from them. Only ECS names go into `fields`; every other native field
stays in `Event.original` (re-read it with `orjson.loads` + `shapes.flatten`, or `text.text_to_doc` for
text records). `to_ecs` never raises for JSON-like input: a value that does not convert is left out.

Table file format (every key is checked on load; unknown keys are `ConfigError`s):

    description: free text
    sections:                                    # applied in file order, files in name order
      - match:                                   # which SourceKeys this section maps
          product: aws                           # a name or a list of names (required)
          channel: cloudtrail                    # or `channels: [...]`; omitted: every channel
          event_ids: [4624]                      # omitted: every event id
        note: free text                          # optional
        constants: {cloud.provider: aws}         # set on every matching event
        timestamp: [eventTime]                   # native names tried for @timestamp (ISO text or epoch)
        record_id: [eventID]                     # native names tried for the provenance record id
        fields:                                  # ECS name -> native name(s) tried in order
          event.action: eventName
          source.ip: {from: sourceIPAddress, transform: ip}
          event.outcome: {from: errorCode, values: {"*": failure}, missing: success}

A later matching section overrides an earlier one for the ECS names it produces, so a product-wide section
comes first and event-specific ones after it. Native names are looked up as `fields.lookup` does (exact,
then case-insensitive), so lower-cased exports map like the originals. Empty values ("" and []) count as
absent. `values` maps the lower-cased text of the (transformed) value to an ECS value, `"*"` for any other
value; a value it does not list is skipped. `missing` is the value when no native name is present.

Transforms: `str`, `lower`, `upper`, `int`, `hex_int` ("0x1a2c"), `float`, `bool`, `ip` (port, brackets
and zone dropped; invalid -> skipped), `port`, `basename` and `dirname` (`/` or `\\`), `windows_user` /
`windows_domain` (the parts of `DOMAIN\\user`), `iso8601`, `epoch_s`, `epoch_ms`, `windows_filetime`
(-> ISO 8601 UTC text). A list value is transformed element-wise; a one-element result is unwrapped.

`@timestamp`: the matching sections' `timestamp` names (last section first), else `shapes.timestamp(doc)`,
else `received_at`, else the Unix epoch (callers that know when the record arrived pass `received_at`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from watchfloor.normalize.ecs_tables import EcsTables, FieldRule, Section, default_ecs_tables
from watchfloor.normalize.ecs_transforms import EPOCH, TRANSFORMS, SkipValueError, as_text, parse_time
from watchfloor.normalize.fields import fold_keys, lookup
from watchfloor.normalize.model import SourceKey
from watchfloor.normalize.shapes import flatten, timestamp

__all__ = ["Event", "to_ecs"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One normalized event. `fields` holds ECS names only; `original` is the record as received.

    Provenance (`source`, `record_id`) rides along and is excluded from equality.
    """

    tenant: str
    timestamp: datetime  # @timestamp, aware UTC
    logsource: SourceKey | None
    fields: Mapping[str, object]
    original: bytes = field(repr=False)
    source: str = field(compare=False)
    record_id: str | None = field(default=None, compare=False)


# -- mapping ---------------------------------------------------------------------------------------
_NOTHING: Final = object()
_EMPTY: Final = ("", None)


def to_ecs(
    doc: Mapping[str, Any],
    key: SourceKey | None,
    *,
    tenant: str,
    raw: bytes,
    source: str,
    received_at: datetime | None = None,
    tables: EcsTables | None = None,
) -> Event:
    """The Event of one parsed record (`key` from `shapes.classify(doc)`; None maps no fields)."""
    sections = (tables if tables is not None else default_ecs_tables()).sections_for(key)
    flat = flatten(doc)
    folded = fold_keys(flat)
    out: dict[str, object] = {}
    for section in sections:
        for name, constant in section.constants.items():
            out[name] = list(constant) if type(constant) is list else constant  # no shared lists
        for rule in section.rules:
            value = _map(rule, flat, folded)
            if value is not _NOTHING:
                out[rule.ecs] = value
    moment = _first_time(sections, flat, folded)
    if moment is None:
        text = timestamp(doc)
        moment = _safe_time(text) if text is not None else None
    if moment is None:
        moment = received_at.astimezone(UTC) if received_at is not None and received_at.tzinfo else EPOCH
    return Event(
        tenant=tenant,
        timestamp=moment,
        logsource=key,
        fields=MappingProxyType(out),
        original=bytes(raw),
        source=source,
        record_id=_first_id(sections, flat, folded),
    )


def _present(flat: Mapping[str, Any], name: str, folded: Mapping[str, str]) -> object:
    found, value = lookup(flat, name, folded=folded)
    if not found or value in _EMPTY or (isinstance(value, list) and not value):
        return _NOTHING
    return value


def _map(rule: FieldRule, flat: Mapping[str, Any], folded: Mapping[str, str]) -> object:
    for name in rule.natives:
        value = _present(flat, name, folded)
        if value is _NOTHING:
            continue
        value = _convert(value, rule)
        if value is not _NOTHING:
            return value
    return _NOTHING if rule.missing is None else rule.missing


def _convert(value: object, rule: FieldRule) -> object:
    if isinstance(value, list):
        items = [_convert_one(item, rule) for item in value if item not in _EMPTY]
        kept = [item for item in items if item is not _NOTHING]
        if not kept:
            return _NOTHING
        return kept[0] if len(kept) == 1 else kept
    return _convert_one(value, rule)


def _convert_one(value: object, rule: FieldRule) -> object:
    if isinstance(value, dict | list):
        return _NOTHING
    if rule.transform is not None:
        try:
            value = TRANSFORMS[rule.transform](value)
        except (ValueError, TypeError, OverflowError, ArithmeticError):
            return _NOTHING
    if rule.values is not None:
        try:
            text = as_text(value).lower()
        except SkipValueError:
            return _NOTHING
        if text in rule.values:
            return rule.values[text]
        return rule.values.get("*", _NOTHING)
    return value


def _safe_time(value: object) -> datetime | None:
    try:
        return parse_time(value)
    except (ValueError, TypeError, OverflowError, ArithmeticError):
        return None


def _first_time(
    sections: tuple[Section, ...], flat: Mapping[str, Any], folded: Mapping[str, str]
) -> datetime | None:
    for section in reversed(sections):
        for name in section.timestamp:
            value = _present(flat, name, folded)
            if value is _NOTHING:
                continue
            moment = _safe_time(value[0] if isinstance(value, list) and value else value)
            if moment is not None:
                return moment
    return None


def _first_id(
    sections: tuple[Section, ...], flat: Mapping[str, Any], folded: Mapping[str, str]
) -> str | None:
    for section in reversed(sections):
        for name in section.record_id:
            value = _present(flat, name, folded)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                return str(value)
    return None
