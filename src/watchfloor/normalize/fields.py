"""Field lookup on a flattened event (`shapes.flatten`): the one definition of "is this field present".

Semantics, shared by the fast engine and the reference evaluator:

- `lookup(flat, name)` tries the exact key first, then a case-insensitive match (real Windows data
  has both `ProcessId` and `ProcessID`; some exports lower-case every key). When several keys differ
  only by case and none matches exactly, the first one in the event's key order wins.
- A key that is present with the value None is present: `(True, None)`. Absent is `(False, None)`.
- `lookup_any(flat, names)` tries each name in order (each with the rule above) and returns the first
  present one, so a binding can list the native names of one Sigma field for several shapes.
- Names are matched as whole keys: `a.b` is the flattened key "a.b", never a walk into a dict.

Case-insensitive matching scans the keys once per miss. Callers that look up many absent names on one
event pass `folded=fold_keys(flat)` (computed once per event) to make every miss a dict lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["fold_keys", "lookup", "lookup_any"]

_ABSENT: tuple[bool, Any] = (False, None)


def fold_keys(flat: Mapping[str, Any]) -> dict[str, str]:
    """Lower-cased key -> original key, first occurrence winning (the order `lookup` uses)."""
    folded: dict[str, str] = {}
    for key in flat:
        folded.setdefault(key.lower(), key)
    return folded


def lookup(
    flat: Mapping[str, Any], name: str, *, folded: Mapping[str, str] | None = None
) -> tuple[bool, Any]:
    """(present, value) of one field: exact key first, then case-insensitively."""
    if name in flat:
        return True, flat[name]
    wanted = name.lower()
    if folded is not None:
        key = folded.get(wanted)
        return (True, flat[key]) if key is not None else _ABSENT
    for key in flat:
        if key.lower() == wanted:
            return True, flat[key]
    return _ABSENT


def lookup_any(
    flat: Mapping[str, Any], names: tuple[str, ...], *, folded: Mapping[str, str] | None = None
) -> tuple[bool, Any]:
    """(present, value) of the first name in `names` that is present; (False, None) if none is."""
    for name in names:
        found = lookup(flat, name, folded=folded)
        if found[0]:
            return found
    return _ABSENT
