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
case-folds to ASCII, a \\/ escape, such a character written raw, or a JSON float whose Python
text differs from its JSON text. A poisoned event runs every
rule of its route (slow, exact).
"""

from __future__ import annotations

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

_POISON_PATTERNS: tuple[bytes, ...] = (
    # a \u escape (odd number of backslashes) of printable ASCII or of a case-poison character;
    # escapes of control and other non-ASCII characters cannot hide a printable-ASCII literal
    rb"(?:^|[^\\])(?:\\\\)*\\u(?:00[2-7][0-9a-fA-F]|013[01]|017[fF]|212[aA])",
    rb"(?:^|[^\\])(?:\\\\)*\\/",  # \/ escape
    # a JSON float token (repr() may differ from its JSON text): a number with a fraction or an
    # exponent that ends at a delimiter; inside a string (a time "15:57:25.868") it ends at a quote
    rb"[:,\[]\s*-?[0-9]+\.[0-9]+(?:[eE][+-]?[0-9]+)?\s*[,}\]]",
    rb"[:,\[]\s*-?[0-9]+[eE][+-]?[0-9]+\s*[,}\]]",
    *(c.encode("utf-8") for c in CASE_POISON),
)
POISON_ID_BASE = 1 << 30


def is_safe_char(char: str) -> bool:
    """Characters a gate literal may contain: printable ASCII (the scanner folds ASCII case only)."""
    return " " <= char <= "~"


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


def best_fragment(text: str) -> str | None:
    """The longest run of safe characters in lower-cased `text`, if at least RARE_LENGTH long."""
    found = [f for f in fragments(text) if len(f) >= RARE_LENGTH]
    return max(found, key=len) if found else None


# A gate expression says which literals a match cannot do without: ("L", literal) needs that
# literal; ("A", children) needs every child (so any one child's choice is a valid gate);
# ("O", children) needs one of the children (so the gate is the union). None: no literal needed.
GateExpr = tuple[str, Any] | None


def gate_lit(literal: str) -> GateExpr:
    return ("L", literal)


def gate_text(text: str) -> GateExpr:
    """Every fragment of a wildcard-free stretch of a pattern is needed: AND of them."""
    return gate_and([gate_lit(f) for f in fragments(text)])


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
    return literal.replace("\\", "\\\\").replace('"', '\\"').encode("ascii")


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
    if len(literal) < RARE_LENGTH:
        return 1.0
    cost = min(1.0, 4.0 / (len(literal) ** 2))
    if any(literal in common for common in _COMMON):
        cost = max(cost, 0.5)
    return cost


@dataclass(slots=True)
class LiteralScanner:
    """A compiled hyperscan database of gate literals plus the poison patterns."""

    literals: tuple[str, ...]
    _db: hyperscan.Database | None = None
    _poison_db: hyperscan.Database | None = None

    @classmethod
    def build(cls, literals: Iterable[str]) -> LiteralScanner:
        ordered = tuple(sorted(set(literals)))
        scanner = cls(literals=ordered)
        if ordered:
            expressions = [json_escape(lit) for lit in ordered]
            ids = list(range(len(ordered)))
            db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            db.compile(
                expressions=expressions,
                ids=ids,
                elements=len(expressions),
                flags=hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH,
                literal=True,
            )
            scanner._db = db
        poison = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        poison.compile(
            expressions=list(_POISON_PATTERNS),
            ids=list(range(len(_POISON_PATTERNS))),
            elements=len(_POISON_PATTERNS),
            flags=hyperscan.HS_FLAG_SINGLEMATCH,
        )
        scanner._poison_db = poison
        return scanner

    def scan(self, raw: bytes) -> set[int] | None:
        """Ids of the literals present in `raw`, or None when the line is poisoned (run everything)."""
        poisoned: list[int] = []
        assert self._poison_db is not None
        try:
            self._poison_db.scan(raw, match_event_handler=_first_hit, context=poisoned)
        except hyperscan.ScanTerminated:
            return None
        if poisoned:
            return None
        hits: set[int] = set()
        if self._db is not None:
            self._db.scan(raw, match_event_handler=_collect, context=hits)
        return hits


def _collect(ident: int, _start: int, _end: int, _flags: int, context: object) -> None:
    context.add(ident)  # type: ignore[attr-defined]  # a set[int], passed through hyperscan


def _first_hit(ident: int, _start: int, _end: int, _flags: int, context: object) -> bool:
    context.append(ident)  # type: ignore[attr-defined]  # a list[int], passed through hyperscan
    return True  # stop scanning: hyperscan raises ScanTerminated
