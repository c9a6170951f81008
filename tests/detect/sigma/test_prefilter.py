"""The literal prefilter must never hide a match: gate literals, escaping and poison lines."""

from __future__ import annotations

import re
import string

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchfloor.detect.sigma.prefilter import (
    CASE_POISON,
    LiteralScanner,
    and_gate,
    best_fragment,
    json_escape,
    or_gate,
)
from watchfloor.detect.sigma.regex_literals import regex_gate


def test_case_poison_list_is_complete() -> None:
    """Every non-ASCII char that lower()s or re-IGNORECASE-matches to ASCII is in CASE_POISON."""
    ascii_letters = string.ascii_letters
    found = set()
    for code in range(0x80, 0x110000):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        if any(c in ascii_letters for c in char.lower()):
            found.add(char)
    for letter in string.ascii_lowercase:
        folded = re.compile(re.escape(letter), re.IGNORECASE)
        for code in range(0x80, 0x10000):
            if folded.fullmatch(chr(code)):
                found.add(chr(code))
    assert found == set(CASE_POISON)


def test_best_fragment_keeps_longest_printable_ascii_run() -> None:
    assert best_fragment("Microsoft\u00ae Windows\u00ae Operating System") == " operating system"
    assert best_fragment("ab") is None
    assert best_fragment("\u2013enc") == "enc"
    assert best_fragment("a\tbcd") == "bcd"


def test_json_escape_matches_orjson_rendering() -> None:
    value = 'C:\\Windows\\"quoted"'
    assert json_escape(value) in orjson.dumps({"v": value})


def test_and_prefers_rare_literal_or_unions() -> None:
    assert and_gate([frozenset({".exe"}), frozenset({"mimikatz"})]) == frozenset({"mimikatz"})
    assert and_gate([None, frozenset({"abc"})]) == frozenset({"abc"})
    assert and_gate([None, None]) is None
    assert or_gate([frozenset({"abc"}), frozenset({"def"})]) == frozenset({"abc", "def"})
    assert or_gate([frozenset({"abc"}), None]) is None


@pytest.mark.parametrize(
    ("pattern", "gate"),
    [
        (r"foo\.exe", frozenset({"foo.exe"})),
        (r"^abc[0-9]+defgh", frozenset({"defgh"})),
        (r"(alpha|bravo)", frozenset({"alpha", "bravo"})),
        (r"(alpha|b)", None),
        (r"a.b", None),
        (r"(?x) spaced", None),
    ],
)
def test_regex_gate(pattern: str, gate: frozenset[str] | None) -> None:
    assert regex_gate(pattern, set()) == gate


def test_scanner_finds_literals_caselessly_and_poisons_escapes() -> None:
    scanner = LiteralScanner.build(["cmd.exe", "\\temp\\"])
    hits = scanner.scan(orjson.dumps({"Image": "C:\\Windows\\CMD.EXE", "T": "C:\\TEMP\\x"}))
    assert hits == {0, 1}
    assert scanner.scan(b'{"a":"caf\\u00e9"}') is None
    assert scanner.scan(b'{"a":"a\\/b"}') is None
    assert scanner.scan(b'{"a": 1.5}') is None
    assert scanner.scan('{"a":"\u212aernel"}'.encode()) is None
    assert scanner.scan(b'{"a":"C:\\\\users\\\\x"}') == set()


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@given(before=_text, needle=_text, after=_text)
def test_a_contained_literal_is_always_found_or_the_line_is_poisoned(before: str, needle: str, after: str) -> None:
    """If lower(value) contains fragment F, the raw JSON line hits F or is poisoned."""
    fragment = best_fragment(needle)
    if fragment is None:
        return
    scanner = LiteralScanner.build([fragment])
    for raw in (orjson.dumps({"v": before + needle + after}), orjson.dumps({"v": (before + needle + after).upper()})):
        value = orjson.loads(raw)["v"]
        if fragment not in value.lower():
            continue
        hits = scanner.scan(raw)
        assert hits is None or 0 in hits


_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), _text)
_json_value = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


@given(container=_json_value, needle=_text)
def test_container_text_literals_are_found_in_spaced_raw_json(container: object, needle: str) -> None:
    """flatten exposes containers as compact JSON text; the raw line may be spaced differently."""
    import json

    compact = orjson.dumps(container).decode().lower()
    fragment = best_fragment(needle) or best_fragment(compact)
    if fragment is None or fragment not in compact:
        return
    scanner = LiteralScanner.build([fragment])
    raw = json.dumps({"outer": container}, ensure_ascii=False).encode()
    hits = scanner.scan(raw)
    assert hits is None or 0 in hits
