"""Field lookup semantics on flattened events: exact first, then case-insensitive, in key order."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from watchfloor.normalize.fields import fold_keys, lookup, lookup_any

FLAT: dict[str, Any] = {
    "ProcessId": 1,
    "ProcessID": 2,
    "Image": "C:\\Windows\\System32\\cmd.exe",
    "ParentImage": None,
    "eventtype": "user.session.start",
    "debugcontext.debugData.requestUri": "/api/v1/authn",
}


def test_exact_key_wins_over_case_variants() -> None:
    assert lookup(FLAT, "ProcessID") == (True, 2)
    assert lookup(FLAT, "ProcessId") == (True, 1)


def test_case_insensitive_match_takes_the_first_key_in_order() -> None:
    assert lookup(FLAT, "processid") == (True, 1)


def test_case_insensitive_match_covers_dotted_names() -> None:
    assert lookup(FLAT, "eventType") == (True, "user.session.start")
    assert lookup(FLAT, "debugContext.debugData.requestUri") == (True, "/api/v1/authn")


def test_present_none_differs_from_absent() -> None:
    assert lookup(FLAT, "ParentImage") == (True, None)
    assert lookup(FLAT, "CommandLine") == (False, None)


def test_lookup_any_returns_the_first_present_name() -> None:
    assert lookup_any(FLAT, ("NewProcessName", "Image")) == (True, FLAT["Image"])
    assert lookup_any(FLAT, ("ParentImage", "Image")) == (True, None)
    assert lookup_any(FLAT, ("Nope", "AlsoNope")) == (False, None)
    assert lookup_any(FLAT, ()) == (False, None)


def test_folded_index_gives_the_same_answers() -> None:
    folded = fold_keys(FLAT)
    for name in ("processid", "ProcessID", "EVENTTYPE", "missing", "parentimage"):
        assert lookup(FLAT, name, folded=folded) == lookup(FLAT, name)
    assert lookup_any(FLAT, ("x", "IMAGE"), folded=folded) == (True, FLAT["Image"])


keys = st.text(alphabet="abcABC._", min_size=1, max_size=4)


@given(st.dictionaries(keys, st.integers(), max_size=8), keys)
def test_folded_lookup_equals_scanning_lookup(flat: dict[str, int], name: str) -> None:
    assert lookup(flat, name, folded=fold_keys(flat)) == lookup(flat, name)


@given(st.dictionaries(keys, st.integers(), max_size=8), keys)
def test_lookup_finds_every_key_and_only_case_variants(flat: dict[str, int], name: str) -> None:
    present, value = lookup(flat, name)
    if name in flat:
        assert (present, value) == (True, flat[name])
    elif present:
        assert any(k.lower() == name.lower() and flat[k] == value for k in flat)
    else:
        assert all(k.lower() != name.lower() for k in flat)
