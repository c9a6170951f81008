"""The literal prefilter must never hide a match: gate literals, escaping and poison lines."""

from __future__ import annotations

import json
import re
import string

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchfloor.detect.sigma.prefilter import (
    CASE_POISON,
    LiteralScanner,
    choose,
    could_be_in_float_text,
    fragments,
    gate_and,
    gate_lit,
    gate_literals,
    gate_or,
    gate_text,
    is_safe_char,
    json_escape,
    literal_cost,
)
from watchfloor.detect.sigma.regex_literals import regex_gate


def best_fragment(text: str) -> str | None:
    """The longest gate-worthy fragment (3+ characters) of `text`, for these tests."""
    found = [f for f in fragments(text) if len(f) >= 3]
    return max(found, key=len) if found else None


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


def test_safe_non_ascii_characters_occur_in_lowered_text_only_where_they_occur_in_the_text() -> None:
    """The scanner matches non-ASCII gate characters byte for byte: no character may lower() or
    re-IGNORECASE-match into a safe one except itself."""
    for code in range(0x80, 0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        for produced in char.lower() + char.upper():
            if produced != char and produced > "~":
                assert not is_safe_char(produced), (hex(code), produced)
    duck = re.compile("\U0001f986", re.IGNORECASE)
    assert is_safe_char("\U0001f986")
    assert [hex(c) for c in range(0x80, 0x10000) if duck.fullmatch(chr(c))] == []
    assert not is_safe_char("\u0430")  # Cyrillic a: its upper case lowers to it
    assert fragments("x\U0001f986y \u041f\u0440\u0438") == ["x\U0001f986y "]


def test_non_ascii_literals_are_scanned_as_utf8_and_their_escapes_poison() -> None:
    scanner = LiteralScanner.build(["\U0001f986", "\u202e"])
    duck, rtlo = scanner.literals.index("\U0001f986"), scanner.literals.index("\u202e")
    assert scanner.scan(orjson.dumps({"v": "a\U0001f986b"})) == {duck}
    assert scanner.scan(orjson.dumps({"v": "\u202eexe.txt"})) == {rtlo}
    # an ASCII-only writer's escapes (either hex case) are the same literal
    assert scanner.scan(json.dumps({"v": "a\U0001f986b"}).encode()) == {duck}
    assert scanner.scan(b'{"v": "\\u202Eexe"}') == {rtlo}
    assert scanner.scan(json.dumps({"v": "\u00ae"}).encode()) == set()  # other escapes: no hit, no poison
    # a line mixing raw non-ASCII with an escape of a gate character: poisoned, exact path
    assert scanner.scan(b'{"a": "\xc3\xa9", "v": "\\ud83e\\udd86"}') is None
    assert scanner.scan(orjson.dumps({"v": "plain"})) == set()


def test_literals_a_float_text_could_hold_never_gate() -> None:
    assert gate_text("1.5") is None
    assert gate_text("1e+16") is None
    assert gate_text("inf") is None
    assert gate_text("v1.5") == gate_lit("v1.5")
    assert gate_text("-nop") == gate_lit("-nop")
    assert gate_text(".ini") == gate_lit(".ini")
    assert gate_text("10.0.1") == gate_lit("10.0.1")  # two dots: no float's text holds it


@given(st.floats(allow_nan=True, allow_infinity=True), st.data())
def test_every_substring_of_a_float_text_is_recognised(number: float, data: st.DataObject) -> None:
    text = repr(number)
    start = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    end = data.draw(st.integers(min_value=start + 1, max_value=len(text)))
    assert could_be_in_float_text(text[start:end])


def test_best_fragment_keeps_longest_run_of_safe_characters() -> None:
    # caseless non-ASCII characters (the registered sign) stay in; case-bound ones split
    assert best_fragment("Microsoft\u00ae Windows\u00ae Operating System") == (
        "microsoft\u00ae windows\u00ae operating system"
    )
    assert best_fragment("\u0421ertutil") == "ertutil"  # Cyrillic Es
    assert best_fragment("ab") is None
    assert best_fragment("\u2013enc") == "\u2013enc"  # the en dash is caseless
    assert best_fragment("a\tbcd") == "bcd"


def test_json_escape_matches_orjson_rendering() -> None:
    value = 'C:\\Windows\\"quoted"'
    assert json_escape(value) in orjson.dumps({"v": value})


def test_and_prefers_rare_literal_or_unions() -> None:
    def pick(expr: object) -> frozenset[str] | None:
        return choose(expr, literal_cost)[0]  # type: ignore[arg-type]

    assert pick(gate_and([gate_lit(".exe"), gate_lit("mimikatz")])) == frozenset({"mimikatz"})
    assert pick(gate_and([None, gate_lit("abc")])) == frozenset({"abc"})
    assert gate_and([None, None]) is None
    assert pick(gate_or([gate_lit("abc"), gate_lit("def")])) == frozenset({"abc", "def"})
    assert gate_or([gate_lit("abc"), None]) is None
    # observed frequencies change the choice
    rare_exe = {"mimikatz": 0.9, ".exe": 0.01}
    assert choose(gate_and([gate_lit(".exe"), gate_lit("mimikatz")]), rare_exe.__getitem__)[0] == {".exe"}


@pytest.mark.parametrize(
    ("pattern", "gate"),
    [
        (r"foo\.exe", frozenset({"foo.exe"})),
        (r"^abc[0-9]+defgh", frozenset({"defgh"})),
        (r"(alpha|bravo)", frozenset({"alpha", "bravo"})),
        (r"(alpha|b)", frozenset({"alpha", "b"})),  # short literals are valid, if costly, gates
        (r"a.b", frozenset({"b"})),  # "a" could be inside a float text ("nan")
        (r"x?y*", None),
        (r"(?x) spaced", None),
        (r"x(?i:abcdef)", frozenset({"x"})),  # the scoped-flag group adds nothing
    ],
)
def test_regex_gate(pattern: str, gate: frozenset[str] | None) -> None:
    assert choose(regex_gate(pattern, set()), literal_cost)[0] == gate


@given(
    prefix=st.text(alphabet="abc.-", max_size=6),
    needle=st.text(alphabet="abcdefgh", min_size=3, max_size=8),
    suffix=st.text(alphabet="xyz", max_size=6),
)
def test_every_regex_gate_literal_occurs_in_matches(prefix: str, needle: str, suffix: str) -> None:
    """Whatever regex_gate chooses, a string the regex matches contains one of its literals."""
    import re as std_re

    pattern = (
        std_re.escape(prefix) + "(?:" + std_re.escape(needle) + "|zz+)" + "[0-9]*" + std_re.escape(suffix)
    )
    expr = regex_gate(pattern, set())
    gate = choose(expr, literal_cost)[0]
    for sample in (prefix + needle + suffix, prefix + "zzz" + "12" + suffix):
        if gate is not None and std_re.search(pattern, sample):
            assert any(lit in sample.lower() for lit in gate)


def test_scanner_finds_literals_caselessly_and_poisons_escapes() -> None:
    scanner = LiteralScanner.build(["cmd.exe", "\\temp\\"])
    hits = scanner.scan(orjson.dumps({"Image": "C:\\Windows\\CMD.EXE", "T": "C:\\TEMP\\x"}))
    assert hits == {0, 1}
    assert scanner.scan(b'{"a":"caf\\u00e9"}') == set()  # escapes of non-ASCII cannot hide a literal
    assert scanner.scan(b'{"a":"\\u0041b"}') is None  # an escaped printable ASCII character can
    assert scanner.scan(b'{"a":"a\\/b"}') is None
    assert scanner.scan(b'{"a": 1.5}') == set()  # floats need no poison: see the next test
    assert scanner.scan('{"a":"\u212aernel"}'.encode()) is None
    assert scanner.scan(b'{"a":"C:\\\\users\\\\x"}') == set()


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@given(before=_text, needle=_text, after=_text)
def test_a_contained_literal_is_always_found_or_the_line_is_poisoned(
    before: str, needle: str, after: str
) -> None:
    """If lower(value) contains fragment F, the raw JSON line hits F or is poisoned."""
    fragment = best_fragment(needle)
    if fragment is None:
        return
    scanner = LiteralScanner.build([fragment])
    for raw in (
        orjson.dumps({"v": before + needle + after}),
        orjson.dumps({"v": (before + needle + after).upper()}),
    ):
        value = orjson.loads(raw)["v"]
        if fragment not in value.lower():
            continue
        hits = scanner.scan(raw)
        assert hits is None or 0 in hits


_json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)
_json_value = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=10,
)


@given(payload=st.dictionaries(_text, _json_value, max_size=4), spaced=st.booleans())
def test_flatten_contract_every_text_is_found_in_the_raw_line(
    payload: dict[str, object], spaced: bool
) -> None:
    """The prefilter's contract with normalize: any fragment of any text flatten exposes is found
    in the raw line by the scanner (or the line is poisoned), however the line is spaced."""
    import json

    from watchfloor.detect.sigma.values import EvalContext

    doc = {"eventSource": "s3.amazonaws.com", "eventName": "x", "awsRegion": "r", **payload}
    raw = json.dumps(doc, ensure_ascii=False).encode() if spaced else orjson.dumps(doc)
    texts = [low for _orig, low in EvalContext(orjson.loads(raw)).all_texts()]
    wanted = {lit for text in texts for lit in gate_literals(gate_text(text))}
    if not wanted:
        return
    scanner = LiteralScanner.build(wanted)
    hits = scanner.scan(raw)
    if hits is None:
        return
    found = {scanner.literals[i] for i in hits}
    assert wanted <= found
