"""The necessary-literal prefilter: one hyperscan scan of the raw JSON line per event.

A rule is evaluated on an event only if one of its gate literals occurs in the event's raw JSON
text (case-insensitively), or if it has no gate. The gate is derived from the condition tree:
a leaf's gate is a literal its match cannot do without; OR needs the union of its children's
gates; AND needs any one child's gate (we pick the cheapest); NOT yields none.

Exactness: a literal found in a field's text must also be found in the raw line. A field's text is
either a decoded JSON string/number, or (flatten does this for containers) the compact JSON text of
an object or list. Literals are printable ASCII without JSON structure characters, so inside
container text they lie within one token, which the raw line holds as is; inside a decoded string
they appear in the raw line JSON-escaped. Both forms are scanned. This holds when the line uses
only the short JSON escapes (\\" \\\\ \\n ...); only ASCII letters are folded. Lines where it may not hold "poison" the scan: they
contain a \\uXXXX or \\/ escape, a non-ASCII character that lower-cases (or regex-case-folds) to
ASCII, or a JSON float whose Python text differs from its JSON text. A poisoned event runs every
rule of its route (slow, exact).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import hyperscan

MIN_LITERAL = 3

# Non-ASCII characters that str.lower() maps to text containing ASCII, or that Python's re
# IGNORECASE matches against an ASCII letter. tests/detect/sigma/test_prefilter.py proves the list
# complete by scanning every code point.
CASE_POISON = ("\u0130", "\u0131", "\u017f", "\u212a")

_POISON_PATTERNS: tuple[bytes, ...] = (
    rb"(?:^|[^\\])(?:\\\\)*\\u[0-9a-fA-F]{4}",  # \uXXXX escape (odd number of backslashes)
    rb"(?:^|[^\\])(?:\\\\)*\\/",  # \/ escape
    rb"[:,\[]\s*-?[0-9]+\.[0-9]",  # a JSON float token: repr() may differ from its JSON text
    rb"[:,\[]\s*-?[0-9]+[eE]",  # a JSON number with an exponent
    *(c.encode("utf-8") for c in CASE_POISON),
)
POISON_ID_BASE = 1 << 30


# JSON structure characters. A literal free of them that occurs in a container's compact JSON text
# (flatten exposes containers that way) lies inside one token, which the raw line holds verbatim.
_STRUCTURE = frozenset('{}[]:,"')


def is_safe_char(char: str) -> bool:
    """Characters a gate literal may contain: printable ASCII (the scanner folds ASCII case only),
    except JSON structure characters."""
    return " " <= char <= "~" and char not in _STRUCTURE


def best_fragment(text: str) -> str | None:
    """The longest run of safe characters in lower-cased `text`, if at least MIN_LITERAL long."""
    best = ""
    run: list[str] = []
    for char in text.lower():
        if is_safe_char(char):
            run.append(char)
            continue
        if len(run) > len(best):
            best = "".join(run)
        run = []
    if len(run) > len(best):
        best = "".join(run)
    return best if len(best) >= MIN_LITERAL else None


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
)


def literal_cost(literal: str) -> float:
    """Estimated chance that an event contains `literal` (heuristic, higher = more common)."""
    cost = 1.0 / (len(literal) ** 2)
    if any(literal in common for common in _COMMON):
        cost += 0.5
    return cost


def gate_cost(gate: frozenset[str]) -> float:
    return sum(literal_cost(lit) for lit in gate)


def and_gate(children: Sequence[frozenset[str] | None]) -> frozenset[str] | None:
    """AND needs any one child's gate: choose the cheapest."""
    candidates = [g for g in children if g is not None]
    if not candidates:
        return None
    return min(candidates, key=lambda g: (gate_cost(g), sorted(g)))


def or_gate(children: Iterable[frozenset[str] | None]) -> frozenset[str] | None:
    """OR needs the union; any child without a gate removes the gate."""
    union: set[str] = set()
    for gate in children:
        if gate is None:
            return None
        union |= gate
    return frozenset(union)


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
            # Each literal is scanned as it appears inside a JSON string (escaped) and as it appears
            # inside a container's JSON text (as is); both forms report the literal's id.
            expressions: list[bytes] = []
            ids: list[int] = []
            for ident, lit in enumerate(ordered):
                forms = {json_escape(lit), lit.encode("ascii")}
                expressions.extend(forms)
                ids.extend([ident] * len(forms))
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


def _collect(ident: int, _start: int, _end: int, _flags: int, context: set[int]) -> None:
    context.add(ident)


def _first_hit(ident: int, _start: int, _end: int, _flags: int, context: list[int]) -> bool:
    context.append(ident)
    return True  # stop scanning: hyperscan raises ScanTerminated
