"""The condition language of the reference Sigma evaluator: a small recursive-descent parser.

Grammar (spec "Condition"; precedence from loosest to tightest: or, and, not, `x of`, parentheses)::

    condition := or_expr
    or_expr   := and_expr ("or" and_expr)*
    and_expr  := not_expr ("and" not_expr)*
    not_expr  := "not" not_expr | primary
    primary   := "(" or_expr ")" | quantifier "of" pattern | identifier
    quantifier:= "1" | "any" | "all"
    pattern   := "them" | identifier with "*" wildcards

Keywords are lower-case. An identifier is any word without whitespace and parentheses. Selectors are resolved
against the search identifiers when parsing, so evaluation only sees identifiers, not, and, or.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from watchfloor.core.errors import RuleError, RuleUnsupportedError


@dataclass(frozen=True, slots=True)
class Ident:
    """A search identifier; `scope` 0 is the rule's detection, 1.. the detections of applied filters."""

    name: str
    scope: int = 0


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]


Node = Ident | Not | And | Or

_TOKEN = re.compile(r"\s*(?:(\()|(\))|([^\s()]+))")
_KEYWORDS = frozenset({"and", "or", "not", "of"})
_QUANTIFIERS = frozenset({"1", "any", "all"})


def tokenize(condition: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    stripped_end = len(condition.rstrip())
    while position < stripped_end:
        match = _TOKEN.match(condition, position)
        if match is None:  # pragma: no cover - every non-space character starts a token
            raise RuleError(f"condition {condition!r}: cannot read at offset {position}")
        tokens.append(match.group(match.lastindex or 0))
        position = match.end()
    return tokens


def select(quantifier: str, pattern: str, names: Sequence[str], *, scope: int = 0) -> Node:
    """`1 of X`/`any of X`/`all of X`: identifiers matching X (`*` = any run) in detection order.

    `them` is every identifier not starting with `_`; a pattern that does not itself start with `_` never
    selects identifiers starting with `_`.
    """
    if pattern == "them":
        chosen = [name for name in names if not name.startswith("_")]
    else:
        regex = re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern), re.DOTALL)
        chosen = [
            name
            for name in names
            if regex.fullmatch(name) and (pattern.startswith("_") or not name.startswith("_"))
        ]
    if not chosen:
        raise RuleError(f"condition selector '{quantifier} of {pattern}' matches no search identifier")
    identifiers = tuple(Ident(name, scope) for name in chosen)
    return And(identifiers) if quantifier == "all" else Or(identifiers)


class _Parser:
    def __init__(self, condition: str, names: Sequence[str], scope: int) -> None:
        self.condition = condition
        self.tokens = tokenize(condition)
        self.position = 0
        self.names = names
        self.known = frozenset(names)
        self.scope = scope

    def error(self, message: str) -> RuleError:
        return RuleError(f"condition {self.condition!r}: {message}")

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise self.error("unexpected end")
        self.position += 1
        return token

    def parse(self) -> Node:
        if not self.tokens:
            raise self.error("empty condition")
        if any(token.startswith("|") for token in self.tokens):
            raise RuleUnsupportedError(
                f"condition {self.condition!r}: aggregation expressions ('| count() ...') are Sigma 1; "
                "use a correlation rule"
            )
        node = self.or_expr()
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek()!r} at token {self.position + 1}")
        return node

    def or_expr(self) -> Node:
        operands = [self.and_expr()]
        while self.peek() == "or":
            self.take()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_expr(self) -> Node:
        operands = [self.not_expr()]
        while self.peek() == "and":
            self.take()
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def not_expr(self) -> Node:
        if self.peek() == "not":
            self.take()
            return Not(self.not_expr())
        return self.primary()

    def primary(self) -> Node:
        word = self.take()
        if word == "(":
            node = self.or_expr()
            if self.take() != ")":
                raise self.error("expected ')'")
            return node
        if word in _QUANTIFIERS and self.peek() == "of":
            self.take()
            pattern = self.take()
            if pattern in _KEYWORDS or pattern in ("(", ")"):
                raise self.error(f"expected an identifier pattern after '{word} of', got {pattern!r}")
            try:
                return select(word, pattern, self.names, scope=self.scope)
            except RuleError as error:
                raise self.error(error.message) from None
        if word in _KEYWORDS or word == ")":
            raise self.error(f"unexpected {word!r}")
        if "*" in word:
            raise self.error(f"wildcard identifier {word!r} outside '1 of'/'all of'")
        if word not in self.known:
            raise self.error(f"search identifier {word!r} is not defined in the detection")
        return Ident(word, self.scope)


def parse_condition(condition: str, names: Sequence[str], *, scope: int = 0) -> Node:
    """Parse one condition string over the given search identifiers (raises RuleError)."""
    return _Parser(condition, names, scope).parse()


def evaluate(node: Node, leaf: Callable[[Ident], bool]) -> bool:
    """Evaluate a condition tree; `leaf` answers whether a search identifier matches."""
    if isinstance(node, Ident):
        return leaf(node)
    if isinstance(node, Not):
        return not evaluate(node.operand, leaf)
    if isinstance(node, And):
        return all(evaluate(operand, leaf) for operand in node.operands)
    return any(evaluate(operand, leaf) for operand in node.operands)
