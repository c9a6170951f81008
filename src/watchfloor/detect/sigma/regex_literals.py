"""Find a literal that every match of a regular expression must contain (for the prefilter gate).

Walks Python's own parse tree (`re._parser`). Only runs of LITERAL nodes at the top level of the
pattern count; anything else (classes, repeats, groups, alternation) ends a run. A top-level
alternation yields the union of each branch's literal, or nothing if one branch has none.
"""

from __future__ import annotations

import re
from typing import Any

from watchfloor.detect.sigma.prefilter import best_fragment, or_gate

try:  # Python 3.11+: the parser moved to re._parser
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_parse  # type: ignore[no-redef]

_LITERAL = sre_parse.LITERAL
_BRANCH = sre_parse.BRANCH
_SUBPATTERN = sre_parse.SUBPATTERN


def _runs(items: Any) -> list[str]:
    runs: list[str] = []
    current: list[str] = []
    for op, arg in items:
        if op is _LITERAL:
            current.append(chr(arg))
            continue
        if current:
            runs.append("".join(current))
            current = []
    if current:
        runs.append("".join(current))
    return runs


def _sequence_gate(items: Any) -> frozenset[str] | None:
    items = list(items)
    if len(items) == 1:
        op, arg = items[0]
        if op is _BRANCH:
            return or_gate(_sequence_gate(branch) for branch in arg[1])
        if op is _SUBPATTERN:
            # (group) with no flags change: its content is required
            _group, add_flags, del_flags, sub = arg
            if not add_flags and not del_flags:
                return _sequence_gate(sub)
    best: str | None = None
    for run in _runs(items):
        fragment = best_fragment(run)
        if fragment is not None and (best is None or len(fragment) > len(best)):
            best = fragment
    return frozenset((best,)) if best is not None else None


def regex_gate(pattern: str, flags: set[str]) -> frozenset[str] | None:
    """A gate for `pattern`, or None when no literal is certainly required."""
    bits = re.IGNORECASE if "IGNORECASE" in flags else 0
    try:
        parsed = sre_parse.parse(pattern, bits)
    except re.error:
        return None
    if parsed.state.flags & re.VERBOSE:
        return None
    return _sequence_gate(parsed)
