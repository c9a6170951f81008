"""The necessary-literal prefilter: one hyperscan scan of the raw JSON line per event.

A rule is evaluated on an event only if one of its gate literals occurs in the event's raw JSON
text (case-insensitively), or if it has no gate. The gate is derived from the condition tree:
a leaf's gate is a literal its match cannot do without; OR needs the union of its children's
gates; AND needs any one child's gate (we pick the cheapest); NOT yields none.

Exactness: a literal found in a field's text must also be found in the raw line. The contract with
normalize (tested in tests/detect/sigma/test_prefilter.py) is that every text flatten exposes is a
JSON scalar of the record, decoded: a string, or a number/bool whose text is its JSON text. Gate
literals are printable ASCII, so inside a decoded string they appear in the raw line JSON-escaped
(\\" and \\\\), which is the form scanned; only ASCII letters are folded. Lines where that may not
hold "poison" the scan: a \\u escape of a printable ASCII character or of a character that
case-folds to ASCII, a \\/ escape, or such a character written raw; they are literals in the same
database. Floats need no poison: a gate literal is never a string that a float's text could
hold inside it (could_be_in_float_text). A poisoned event runs every rule of its route (slow, exact).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import hyperscan

MIN_LITERAL = 1  # short literals enter gate expressions; their prior keeps them unchosen
RARE_LENGTH = 3  # until the census shows that a shorter literal is rare in a route

# Non-ASCII characters that str.lower() maps to text containing ASCII, or that Python's re
# IGNORECASE matches against an ASCII letter. tests/detect/sigma/test_prefilter.py proves the list
# complete by scanning every code point.
CASE_POISON = ("\u0130", "\u0131", "\u017f", "\u212a")

# Lines holding one of these literals "poison" the scan (every rule of the route runs): a \\u escape
# that may stand for a printable ASCII character (U+0020-U+007F) or for a case-poison character, a
# \\/ escape, or a case-poison character written raw. Matched as plain literals in the same database
# as the gate literals (one scan per event); an escaped backslash before them (`\\\\u0041`, text,
# not an escape) makes a false poison, which costs speed, never a match.
POISON_LITERALS: tuple[bytes, ...] = (
    *(b"\\u00" + str(d).encode() for d in range(2, 8)),
    b"\\u0130",
    b"\\u0131",
    b"\\u017f",
    b"\\u212a",
    b"\\/",
    *(c.encode("utf-8") for c in CASE_POISON),
)
# A float's text is its repr(), whose JSON form may differ ("1e5" vs "100000.0"), so a literal that
# could lie inside some float's repr never gates. Every substring of a repr matches this (reprs are
# `-?D.D(e[+-]D)?`, `-?De[+-]D`, `-?inf`, `nan`); test_prefilter.py checks it over random floats.
_FLOAT_INFIX = re.compile(r"[-+]?[0-9]*\.?[0-9]*(?:e[+-]?[0-9]*)?")


def could_be_in_float_text(literal: str) -> bool:
    """Could `literal` be a substring of repr(some float)? (Over-approximation, never under.)"""
    return bool(_FLOAT_INFIX.fullmatch(literal)) or literal in "-inf" or literal in "nan"


POISON_ID_BASE = 1 << 30


def is_safe_char(char: str) -> bool:
    """Characters a gate literal may contain: printable ASCII (the scanner folds ASCII case only),
    and caseless non-ASCII characters (emoji, most symbols and marks), which match only themselves."""
    if " " <= char <= "~":
        return True
    return char > "~" and char not in _case_bound() and not "\ud800" <= char <= "\udfff"


@functools.cache
def _case_bound() -> frozenset[str]:
    """Non-ASCII characters that case mapping ties to another character: changed by lower() or
    upper(), or produced by another character's lower() or upper() (~2,900 of them). A character
    outside this set occurs in x.lower() only where it occurs in x."""
    bound: set[str] = set()
    for code in range(0x80, 0x110000):
        char = chr(code)
        lower, upper = char.lower(), char.upper()
        if lower != char or upper != char:
            bound.add(char)
            bound.update(c for c in lower + upper if c > "~")
    return frozenset(bound)


def _u_escape(char: str) -> bytes:
    """JSON's \\u escape of a non-ASCII character (a surrogate pair beyond the BMP)."""
    code = ord(char)
    if code <= 0xFFFF:
        return b"\\u%04x" % code
    code -= 0x10000
    return b"\\u%04x\\u%04x" % (0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF))


def escape_poison(literals: Iterable[str]) -> list[bytes]:
    """The JSON \\u escapes of the non-ASCII characters of gate literals (see LiteralScanner)."""
    return sorted({_u_escape(char) for literal in literals for char in literal if char > "~"})


def fragments(text: str) -> list[str]:
    """Every run of safe characters in lower-cased `text` at least MIN_LITERAL long."""
    out: list[str] = []
    run: list[str] = []
    for char in text.lower():
        if is_safe_char(char):
            run.append(char)
            continue
        if len(run) >= MIN_LITERAL:
            out.append("".join(run))
        run = []
    if len(run) >= MIN_LITERAL:
        out.append("".join(run))
    return out


# A gate expression says which literals a match cannot do without: ("L", literal) needs that
# literal; ("A", children) needs every child (so any one child's choice is a valid gate);
# ("O", children) needs one of the children (so the gate is the union). None: no literal needed.
GateExpr = tuple[str, Any] | None


def gate_lit(literal: str) -> GateExpr:
    return ("L", literal)


def gate_text(text: str) -> GateExpr:
    """Every fragment of a wildcard-free stretch of a pattern is needed: AND of them (fragments that
    could lie inside a float's text excepted, see could_be_in_float_text)."""
    return gate_and([gate_lit(f) for f in fragments(text) if not could_be_in_float_text(f)])


def gate_and(children: Iterable[GateExpr]) -> GateExpr:
    kept: list[tuple[str, Any]] = []
    for child in children:
        if child is None:
            continue
        kept.extend(child[1] if child[0] == "A" else (child,))
    unique = list(dict.fromkeys(kept))
    if not unique:
        return None
    return unique[0] if len(unique) == 1 else ("A", tuple(unique))


def gate_or(children: Iterable[GateExpr]) -> GateExpr:
    kept: list[tuple[str, Any]] = []
    for child in children:
        if child is None:
            return None
        kept.extend(child[1] if child[0] == "O" else (child,))
    unique = list(dict.fromkeys(kept))
    if not unique:
        return None
    return unique[0] if len(unique) == 1 else ("O", tuple(unique))


def gate_literals(expr: GateExpr) -> set[str]:
    """Every literal the expression mentions (all alternatives)."""
    if expr is None:
        return set()
    if expr[0] == "L":
        return {expr[1]}
    out: set[str] = set()
    for child in expr[1]:
        out |= gate_literals(child)
    return out


def choose(expr: GateExpr, cost: Callable[[str], float]) -> tuple[frozenset[str] | None, float]:
    """The cheapest valid gate for `expr` under `cost` (estimated hit rate of a literal)."""
    if expr is None:
        return None, 1.0
    kind, payload = expr
    if kind == "L":
        return frozenset((payload,)), cost(payload)
    chosen = [choose(child, cost) for child in payload]
    if kind == "A":
        return min(chosen, key=lambda c: (c[1], sorted(c[0] or ())))
    union: set[str] = set()
    total = 0.0
    for gate, value in chosen:
        if gate is None:
            return None, 1.0
        union |= gate
        total += value
    return frozenset(union), min(total, 1.0)


def json_escape(literal: str) -> bytes:
    """The literal as it appears inside a JSON string written with the short escapes."""
    return literal.replace("\\", "\\\\").replace('"', '\\"').encode("utf-8")


def json_escape_ascii(literal: str) -> bytes:
    """The literal as an ASCII-only JSON writer (Python's json.dumps) writes it: non-ASCII
    characters as \\u escapes."""
    escaped = literal.replace("\\", "\\\\").replace('"', '\\"')
    return b"".join(_u_escape(c) if c > "~" else c.encode("ascii") for c in escaped)


# Commonness of a literal: lower is rarer. Length is the main signal; substrings of these very
# common Windows strings are penalised so an AND prefers a rarer sibling.
_COMMON = (
    "c:\\windows\\system32\\",
    "c:\\windows\\syswow64\\",
    "c:\\program files (x86)\\",
    "c:\\program files\\",
    "c:\\users\\",
    "c:\\programdata\\",
    "microsoft corporation",
    "microsoft-windows-",
    "\\appdata\\local\\",
    "\\appdata\\roaming\\",
    "powershell.exe",
    "svchost.exe",
    "explorer.exe",
    "rundll32.exe",
    "\\cmd.exe",
    "cmd.exe /c",
    "\\temp\\",
    ".exe",
    ".dll",
    "http",
    "system",
    "windows",
    "microsoft",
    "software\\",
    "\\currentversion\\",
    "hklm\\",
    "\\registry\\machine\\",
    "\\services\\",
    "nt authority",
    "amazonaws.com",
    # keys and values of the evtx JSON shape itself, present in every raw Windows line
    '{"event":{"#attributes":{"xmlns":"http://schemas.microsoft.com/win/2004/08/events/event"}',
    '"system":{"provider":{"#attributes":{"name":',
    '"eventid","version","level","task","opcode","keywords","timecreated","systemtime"',
    '"eventrecordid","correlation","execution","processid","threadid","channel","computer"',
    '"security":{"#attributes":{"userid":',
    '"eventdata":',
    '"userdata":',
    "microsoft-windows-security-auditing",
)


def literal_cost(literal: str) -> float:
    """Prior estimate of the chance that an event contains `literal` (before any is observed)."""
    size = len(literal.encode("utf-8"))  # an emoji is as rare as four ASCII characters
    if size < RARE_LENGTH:
        return 1.0
    cost = min(1.0, 4.0 / (size**2))
    if any(literal in common for common in _COMMON):
        cost = max(cost, 0.5)
    return cost


ESCAPE_ID_BASE = 1 << 29


@dataclass(slots=True)
class LiteralScanner:
    """One compiled hyperscan database: the gate literals (ids 0..n-1) and, unless `poison` is off,
    the poison literals (ids from POISON_ID_BASE).

    A literal with non-ASCII characters is searched in both forms a JSON writer uses: raw UTF-8
    (orjson, serde_json, Go) and all-\\u-escaped (an ASCII-only writer). A line written all in one
    form is scanned exactly. A line that mixes them (non-ASCII bytes beside an escape of a gate
    character, ids from ESCAPE_ID_BASE) is poisoned."""

    literals: tuple[str, ...]
    _db: hyperscan.Database | None = None

    @classmethod
    def build(cls, literals: Iterable[str], *, poison: bool = True) -> LiteralScanner:
        ordered = tuple(sorted(set(literals)))
        scanner = cls(literals=ordered)
        expressions = [json_escape(lit) for lit in ordered]
        ids = list(range(len(ordered)))
        for ident, literal in enumerate(ordered):
            if not literal.isascii():
                expressions.append(json_escape_ascii(literal))
                ids.append(ident)
        if poison:
            expressions.extend(POISON_LITERALS)
            ids.extend(POISON_ID_BASE + i for i in range(len(POISON_LITERALS)))
            escapes = escape_poison(ordered)
            expressions.extend(escapes)
            ids.extend(ESCAPE_ID_BASE + i for i in range(len(escapes)))
        if expressions:
            db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            db.compile(
                expressions=expressions,
                ids=ids,
                elements=len(expressions),
                flags=hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH,
                literal=True,
            )
            scanner._db = db
        return scanner

    def scan(self, raw: bytes) -> set[int] | None:
        """Ids of the literals present in `raw`, or None when the line is poisoned (run everything)."""
        hits: set[int] = set()
        if self._db is not None:
            self._db.scan(raw, match_event_handler=_collect, context=hits)
            if hits and max(hits) >= ESCAPE_ID_BASE:
                if max(hits) >= POISON_ID_BASE or not raw.isascii():
                    return None
                return {hit for hit in hits if hit < ESCAPE_ID_BASE}
        return hits


def _collect(ident: int, _start: int, _end: int, _flags: int, context: object) -> None:
    context.add(ident)  # type: ignore[attr-defined]  # a set[int], passed through hyperscan
