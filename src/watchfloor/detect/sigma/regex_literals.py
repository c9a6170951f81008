"""Find a literal that every match of a regular expression must contain (for the prefilter gate).

Walks Python's own parse tree (`re._parser`). Runs of LITERAL nodes in a sequence are needed;
anything else (classes, repeats) ends a run. A group without flag changes is needed where it
stands; an alternation needs one of its branches (OR).
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from watchfloor.detect.sigma.prefilter import GateExpr, gate_and, gate_or, gate_text

# Python's own regular-expression parser (re._parser since 3.11; private, so typed loosely)
sre_parse: Any = importlib.import_module("re._parser")

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


def _sequence_gate(items: Any) -> GateExpr:
    items = list(items)
    parts: list[GateExpr] = [gate_text(run) for run in _runs(items)]
    for op, arg in items:
        if op is _BRANCH:
            parts.append(gate_or(_sequence_gate(branch) for branch in arg[1]))
        elif op is _SUBPATTERN:
            # a (group) without flag changes is required where it stands
            _group, add_flags, del_flags, sub = arg
            if not add_flags and not del_flags:
                parts.append(_sequence_gate(sub))
    return gate_and(parts)


def regex_gate(pattern: str, flags: set[str]) -> GateExpr:
    """A gate for `pattern`, or None when no literal is certainly required."""
    bits = re.IGNORECASE if "IGNORECASE" in flags else 0
    try:
        parsed = sre_parse.parse(pattern, bits)
    except re.error:
        return None
    if parsed.state.flags & re.VERBOSE:
        return None
    return _sequence_gate(parsed)
