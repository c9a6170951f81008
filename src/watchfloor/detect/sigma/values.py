"""Event values as the matchers see them, and the per-event evaluation context.

Semantics (docs/sigma-semantics.md is the full statement):
- strings compare case-insensitively with ``str.lower()`` on both sides unless ``cased``;
- event value -> text: str as is, bool -> "true"/"false", int -> str(), float -> repr(); None and
  objects have no text; a list offers each element;
- a field is present when its key exists (exact name first, then case-insensitively).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from watchfloor.normalize.fields import fold_keys, lookup
from watchfloor.normalize.shapes import flatten, system_fields

Names = tuple[str, ...]
Pair = tuple[str, str]  # (original text, lower-cased text)

_NUMERIC_RE = re.compile(r"\s*[+-]?\d+(?:\.\d+)?\s*")
_EMPTY: tuple[Pair, ...] = ()
_MISSING = object()
_PLAIN_TYPES = frozenset((str, int, float, bool, type(None)))


def to_text(value: object) -> str | None:
    """The text of one scalar event value, or None when it has none (None, objects)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return None


def to_number(value: object) -> int | float | None:
    """A number from an int/float or a plain decimal numeral string; None otherwise (bools too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and _NUMERIC_RE.fullmatch(value):
        text = value.strip()
        return float(text) if "." in text else int(text)
    return None


def to_datetime(value: object) -> datetime | None:
    """An ISO-8601 timestamp (naive means UTC) or epoch seconds as an aware UTC datetime."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    number = to_number(value)
    if number is None:
        return None
    try:
        return datetime.fromtimestamp(float(number), tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def scalars(value: object) -> list[object]:
    """The scalar values a field offers to matchers: a list offers its elements (one level)."""
    if isinstance(value, list):
        return value
    return [value]


def _pairs(value: object) -> tuple[Pair, ...]:
    if isinstance(value, str):
        return ((value, value.lower()),)
    if isinstance(value, list):
        out: list[Pair] = []
        for item in value:
            text = to_text(item)
            if text is not None:
                out.append((text, text.lower()))
        return tuple(out)
    text = to_text(value)
    if text is None:
        return _EMPTY
    return ((text, text.lower()),)


class EvalContext:
    """One event under evaluation. Field values and their texts are computed once and cached."""

    __slots__ = (
        "_event_data",
        "_fast_lower",
        "_flat",
        "_joined",
        "_lower_keys",
        "_plain",
        "_system",
        "_system_raw",
        "_texts",
        "_values",
        "doc",
    )

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.doc = doc
        self._event_data: dict[str, Any] | None = None
        self._system_raw: dict[str, Any] | None = None
        event = doc.get("Event")
        if type(event) is dict and "UserData" not in event and "ProcessingErrorData" not in event:
            data = event.get("EventData")
            system = event.get("System")
            if (
                type(data) is dict
                and type(system) is dict
                and "Data" not in data
                and "#attributes" not in data
            ):
                self._event_data = data
                self._system_raw = system
        self._plain: bool | None = None
        self._system: dict[str, Any] | None = None
        self._fast_lower: set[str] | None = None
        self._flat: dict[str, Any] | None = None
        self._lower_keys: dict[str, str] | None = None
        self._values: dict[Names, tuple[bool, Any]] = {}
        self._texts: dict[Names, tuple[Pair, ...]] = {}
        self._joined: str | None = None

    @property
    def flat(self) -> dict[str, Any]:
        flat = self._flat
        if flat is None:
            flat = self._flat = flatten(self.doc)
        return flat

    def _lookup_one(self, name: str) -> tuple[bool, Any]:
        data = self._event_data
        if data is not None and self._flat is None:
            found = self._fast_lookup(data, name)
            if found is not None:
                return found
        flat = self.flat
        if name in flat:
            return True, flat[name]
        if self._lower_keys is None:
            self._lower_keys = fold_keys(flat)
        return lookup(flat, name, folded=self._lower_keys)

    def _fast_lookup(self, data: dict[str, Any], name: str) -> tuple[bool, Any] | None:
        """flatten()'s answer without flattening, for its common evtx case; None: ask flatten.

        The common case (EventData a dict without `Data`/`#attributes`, no UserData): flatten is the
        System fields updated by EventData's scalar fields, EventID kept from System, and
        `System.<name>` for names in both; a name absent from both is absent when EventData holds
        scalars only (nested values could flatten to any name). tests/detect/sigma/test_values.py
        checks this lookup against flatten() for every field of every event in the corpus.
        """
        if name == "EventID":
            assert self._system_raw is not None
            eid = self._system_raw.get("EventID")
            if type(eid) is int:  # flatten keeps an int System EventID as is, whatever EventData holds
                return True, eid
        else:
            value = data.get(name, _MISSING)
            if value is not _MISSING:
                # A scalar named field is flattened as is, whatever its siblings are.
                return (True, value) if type(value) in _PLAIN_TYPES else None
        system = self._system
        if system is None:
            assert self._system_raw is not None
            system = self._system = system_fields(self._system_raw)
        if name in system:
            return True, system[name]
        plain = self._plain
        if plain is None:  # nested siblings could flatten to this name: only plain data says "absent"
            plain = self._plain = _PLAIN_TYPES.issuperset(map(type, data.values()))
        if not plain:
            return None
        lowered = self._fast_lower
        if lowered is None:
            lowered = self._fast_lower = {k.lower() for k in data} | {k.lower() for k in system}
        folded = name.lower()
        if folded in lowered or folded.startswith("system."):
            return None  # a case-insensitive match or a System.<name> key: flatten decides
        return False, None

    def value(self, names: Names) -> tuple[bool, Any]:
        """(present, value) of the first native name present."""
        cached = self._values.get(names)
        if cached is not None:
            return cached
        result: tuple[bool, Any] = (False, None)
        for name in names:
            found = self._lookup_one(name)
            if found[0]:
                result = found
                break
        self._values[names] = result
        return result

    def texts(self, names: Names) -> tuple[Pair, ...]:
        """(original, lower-cased) texts the field offers; empty when absent or textless."""
        cached = self._texts.get(names)
        if cached is not None:
            return cached
        present, value = self.value(names)
        result = _pairs(value) if present else _EMPTY
        self._texts[names] = result
        return result

    def all_texts(self) -> tuple[Pair, ...]:
        """Every text in the event, for keyword (field-less) matching."""
        cached = self._texts.get(())
        if cached is not None:
            return cached
        out: list[Pair] = []
        for value in self.flat.values():
            out.extend(_pairs(value))
        result = tuple(out)
        self._texts[()] = result
        return result

    def joined_lower_text(self) -> str:
        """Every lower-cased text of the event joined by NUL (for keyword `contains` needles)."""
        joined = self._joined
        if joined is None:
            joined = self._joined = "\0".join(low for _orig, low in self.all_texts())
        return joined


Matcher = Callable[[EvalContext], bool]
