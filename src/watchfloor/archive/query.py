"""The `--where` condition language: parse to a small tree, render it back, compile it to DuckDB SQL.

    query      := or
    or         := and ( "OR" and )*
    and        := unary ( ["AND"] unary )*          -- juxtaposition means AND
    unary      := "NOT" unary | "(" or ")" | condition
    condition  := field op value | field "in" "(" value ("," value)* ")" | field "in" cidr
    op         := "=" | "!=" | "~" | "!~" | ">" | ">=" | "<" | "<="

Keywords are case-insensitive. A field or value is bare (no whitespace, no `"`, no parentheses) or
double-quoted with `\\"` and `\\\\` as the only escapes; a bare `C:\\Windows\\x.exe` is taken literally.

Semantics (Sigma-like): `=` is case-insensitive equality, `*` and `?` in its value are wildcards (`\\*` and
`\\?` are literal); `~` is case-insensitive "contains"; `!=` and `!~` are their negations and also hold
when the field is absent; `>`, `>=`, `<`, `<=` compare numbers; `in (a, b)` is case-insensitive
membership; `in 10.0.0.0/8` tests an IPv4 address against a network. A field holding a list matches when
any element does. Field names are the normalized names (`normalize.shapes.flatten`), matched exactly;
`logsource`, `source`, `record_id` and `event_key` name the archive columns (`fields.<name>` reaches a
normalized field with one of those names).

Values never enter the SQL text: every value and every field path is a bound parameter.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple, get_args

from watchfloor.archive.model import SearchQueryError

__all__ = [
    "COLUMN_FIELDS",
    "And",
    "CompiledWhere",
    "Condition",
    "Node",
    "Not",
    "Op",
    "Or",
    "compile_where",
    "parse_where",
    "render",
]

Op = Literal["=", "!=", "~", "!~", ">", ">=", "<", "<=", "in"]
OPS: Final[tuple[str, ...]] = get_args(Op)
COLUMN_FIELDS: Final = frozenset({"logsource", "source", "record_id", "event_key"})
KEYWORDS: Final = frozenset({"and", "or", "not"})
MAX_QUERY_CHARS: Final = 10_000
MAX_DEPTH: Final = 64
MAX_LIST: Final = 1_000
_FIELD_STOP: Final = frozenset('"(),=!~<>')
_VALUE_STOP: Final = frozenset("(),")
_OP_CHARS: Final = frozenset("=!~<>")


@dataclass(frozen=True, slots=True)
class Condition:
    """`field op value`; for `in`, `value` is a tuple (membership) or a CIDR string."""

    field: str
    op: Op
    value: str | tuple[str, ...]
    offset: int = dataclasses.field(default=0, compare=False)  # where it starts in the query text


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node = Condition | And | Or | Not


# -- parsing ---------------------------------------------------------------------------------------
class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str, offset: int | None = None) -> SearchQueryError:
        return SearchQueryError(message, query=self.text, offset=self.pos if offset is None else offset)

    def skip(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos].isspace():
            pos += 1
        self.pos = pos

    def at_end(self) -> bool:
        self.skip()
        return self.pos >= len(self.text)

    def peek_keyword(self) -> str | None:
        """The keyword at the cursor (followed by a delimiter), without consuming it."""
        self.skip()
        for word in KEYWORDS:
            end = self.pos + len(word)
            if self.text[self.pos : end].lower() == word and (
                end >= len(self.text) or self.text[end].isspace() or self.text[end] in '("'
            ):
                return word
        return None

    def parse(self) -> Node:
        if len(self.text) > MAX_QUERY_CHARS:
            raise self.fail(f"query longer than {MAX_QUERY_CHARS} characters", MAX_QUERY_CHARS)
        if self.at_end():
            raise self.fail("empty query: expected a condition such as EventID=4625")
        node = self.parse_or(0)
        if not self.at_end():
            raise self.fail(f"unexpected {self.text[self.pos]!r}")
        return node

    def parse_or(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise self.fail(f"conditions nested deeper than {MAX_DEPTH}")
        items = [self.parse_and(depth)]
        while self.peek_keyword() == "or":
            self.pos += 2
            items.append(self.parse_and(depth))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self, depth: int) -> Node:
        items = [self.parse_unary(depth)]
        while True:
            keyword = self.peek_keyword()
            if keyword == "and":
                self.pos += 3
            elif keyword == "or" or self.at_end() or self.text[self.pos] == ")":
                break
            items.append(self.parse_unary(depth))
        return items[0] if len(items) == 1 else And(tuple(items))

    def parse_unary(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise self.fail(f"conditions nested deeper than {MAX_DEPTH}")
        keyword = self.peek_keyword()
        if keyword == "not":
            self.pos += 3
            return Not(self.parse_unary(depth + 1))
        if keyword is not None:
            raise self.fail(f"expected a condition, found the keyword {keyword.upper()}")
        if self.at_end():
            raise self.fail("expected a condition at the end of the query")
        if self.text[self.pos] == "(":
            opened = self.pos
            self.pos += 1
            node = self.parse_or(depth + 1)
            if self.at_end() or self.text[self.pos] != ")":
                raise self.fail("missing ')' for the '(' here", opened)
            self.pos += 1
            return node
        return self.parse_condition()

    def parse_condition(self) -> Condition:
        start = self.pos
        name = self.word("a field name", _FIELD_STOP)
        if not name:
            raise self.fail("empty field name", start)
        self.skip()
        op_at = self.pos
        op = self.operator()
        if op is None:
            raise self.fail(f"expected an operator ({', '.join(OPS)}) after field {name!r}", op_at)
        self.skip()
        if op == "in":
            if self.pos < len(self.text) and self.text[self.pos] == "(":
                return Condition(name, "in", self.value_list(), start)
            cidr = self.word("a CIDR network or '('", _VALUE_STOP)
            return Condition(name, "in", cidr, start)
        return Condition(name, op, self.word("a value", _VALUE_STOP), start)

    def operator(self) -> Op | None:
        text, pos = self.text, self.pos
        for op in (">=", "<=", "!=", "!~", "=", "~", ">", "<"):
            if text.startswith(op, pos):
                self.pos = pos + len(op)
                return op
        end = pos + 2
        if text[pos:end].lower() == "in" and (end >= len(text) or text[end].isspace() or text[end] == "("):
            self.pos = end
            return "in"
        return None

    def value_list(self) -> tuple[str, ...]:
        opened = self.pos
        self.pos += 1
        values: list[str] = []
        while True:
            self.skip()
            values.append(self.word("a value", _VALUE_STOP))
            if len(values) > MAX_LIST:
                raise self.fail(f"more than {MAX_LIST} values in one list", opened)
            self.skip()
            if self.pos < len(self.text) and self.text[self.pos] == ",":
                self.pos += 1
                continue
            if self.pos < len(self.text) and self.text[self.pos] == ")":
                self.pos += 1
                return tuple(values)
            raise self.fail("expected ',' or ')' in the value list")

    def word(self, what: str, stop: frozenset[str]) -> str:
        """A quoted string or a bare word (up to whitespace or a character in `stop`)."""
        text, pos = self.text, self.pos
        if pos >= len(text):
            raise self.fail(f"expected {what} at the end of the query")
        if text[pos] == '"':
            out: list[str] = []
            i = pos + 1
            while i < len(text):
                ch = text[i]
                if ch == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
                    out.append(text[i + 1])
                    i += 2
                    continue
                if ch == '"':
                    self.pos = i + 1
                    return "".join(out)
                out.append(ch)
                i += 1
            raise self.fail("unterminated quoted string", pos)
        end = pos
        while end < len(text) and not text[end].isspace() and text[end] not in stop:
            end += 1
        if end == pos:
            raise self.fail(f"expected {what}, found {text[pos]!r}")
        self.pos = end
        return text[pos:end]


def parse_where(text: str) -> Node:
    """Parse a condition; raises only `SearchQueryError` (code `search.invalid_query`)."""
    return _Parser(text).parse()


# -- rendering -------------------------------------------------------------------------------------
def _bare_name(text: str) -> bool:
    return (
        bool(text)
        and not any(ch.isspace() or ch in _FIELD_STOP for ch in text)
        and text.lower() not in KEYWORDS | {"in"}
    )


def _bare_value(text: str) -> bool:
    return (
        bool(text)
        and text[0] != '"'
        and text[0] not in _OP_CHARS
        and not any(ch.isspace() or ch in _VALUE_STOP for ch in text)
    )


def _quote(text: str, *, name: bool = False) -> str:
    if _bare_name(text) if name else _bare_value(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(node: Node) -> str:
    """Query text that parses back to `node` (parentheses around every nested AND/OR)."""
    if isinstance(node, Condition):
        name = _quote(node.field, name=True)
        if isinstance(node.value, tuple):
            return f"{name} in ({', '.join(_quote(v) for v in node.value)})"
        if node.op == "in":
            return f"{name} in {_quote(node.value)}"
        return f"{name}{node.op}{_quote(node.value)}"
    if isinstance(node, Not):
        inner = render(node.item)
        return f"NOT ({inner})" if isinstance(node.item, And | Or) else f"NOT {inner}"
    joiner = " AND " if isinstance(node, And) else " OR "
    return joiner.join(f"({render(i)})" if isinstance(i, And | Or) else render(i) for i in node.items)


# -- compiling -------------------------------------------------------------------------------------
# Macros created on each search connection (see search.py).
SQL_MACROS: Final = (
    (
        "CREATE OR REPLACE TEMP MACRO wf_ipv4(s) AS CASE WHEN regexp_full_match(s, "
        r"'(25[0-5]|2[0-4]\d|1?\d?\d)\.(25[0-5]|2[0-4]\d|1?\d?\d)\.(25[0-5]|2[0-4]\d|1?\d?\d)\."
        r"(25[0-5]|2[0-4]\d|1?\d?\d)')"
        " THEN CAST(split_part(s, '.', 1) AS UBIGINT) * 16777216"
        " + CAST(split_part(s, '.', 2) AS UBIGINT) * 65536"
        " + CAST(split_part(s, '.', 3) AS UBIGINT) * 256 + CAST(split_part(s, '.', 4) AS UBIGINT) END"
    ),
)


def _json_path(name: str) -> str:
    return '$."' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _like_pattern(value: str) -> str | None:
    """Sigma wildcards -> an ILIKE pattern with `\\` as escape; None when `value` has no wildcard."""
    out: list[str] = []
    wild = False
    i = 0
    while i < len(value):
        ch = value[i]
        nxt = value[i + 1] if i + 1 < len(value) else ""
        if ch == "\\" and nxt in {"*", "?"}:
            out.append(nxt)
            i += 2
            continue
        if ch == "\\" and nxt == "\\" and i + 2 < len(value) and value[i + 2] in {"*", "?"}:
            out.append("\\\\")
            i += 2
            continue
        if ch == "*":
            out.append("%")
            wild = True
        elif ch == "?":
            out.append("_")
            wild = True
        elif ch in {"%", "_", "\\"}:
            out.append("\\" + ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out) if wild else None


def _unescape(value: str) -> str:
    """The literal text of a wildcard-free value (`\\*` -> `*`)."""
    return value.replace("\\*", "*").replace("\\?", "?")


class CompiledWhere(NamedTuple):
    """SQL over the archive columns plus `__v`, the list `json_extract(fields, paths)`.

    Every field a condition names is extracted once per row (one JSON parse for all of them) into `__v`;
    the caller selects `json_extract(fields, ?) AS __v` with `paths` bound, when `paths` is not empty.
    """

    sql: str
    params: list[object]
    paths: list[str]


class _Compiler:
    def __init__(self, query: str) -> None:
        self.query = query
        self.params: list[object] = []
        self.paths: dict[str, int] = {}

    def fail(self, message: str, cond: Condition) -> SearchQueryError:
        return SearchQueryError(message, query=self.query, offset=cond.offset)

    def node(self, node: Node) -> str:
        if isinstance(node, Condition):
            return self.condition(node)
        if isinstance(node, Not):
            return f"(NOT {self.node(node.item)})"
        if not node.items:
            return "TRUE" if isinstance(node, And) else "FALSE"
        joiner = " AND " if isinstance(node, And) else " OR "
        return "(" + joiner.join(self.node(item) for item in node.items) + ")"

    def condition(self, cond: Condition) -> str:
        if cond.op not in OPS:
            raise self.fail(f"unknown operator {cond.op!r}", cond)
        negate = cond.op in {"!=", "!~"}
        positive = {"!=": "=", "!~": "~"}.get(cond.op, cond.op)
        name = cond.field
        if name in COLUMN_FIELDS:
            sql = self.pred(name, positive, cond)
        else:
            name = name.removeprefix("fields.") if name.removeprefix("fields.") in COLUMN_FIELDS else name
            if not name:
                raise self.fail("empty field name", cond)
            path = _json_path(name)
            index = self.paths.setdefault(path, len(self.paths) + 1)
            value = f"__v[{index}]"
            # A list field matches when any element does; a scalar (or absent) field is tested as text.
            array_pred = self.pred("x", positive, cond)
            scalar_pred = self.pred(f"json_extract_string({value}, '$')", positive, cond)
            sql = (
                f"CASE WHEN json_type({value}) = 'ARRAY' THEN coalesce(list_bool_or(list_transform("
                f"json_extract_string({value}, '$[*]'), lambda x: {array_pred})), false) "
                f"ELSE {scalar_pred} END"
            )
        sql = f"coalesce({sql}, false)"
        return f"(NOT {sql})" if negate else sql

    def pred(self, x: str, op: str, cond: Condition) -> str:
        value = cond.value
        if op == "in":
            if isinstance(value, tuple):
                if not value:
                    return "false"
                self.params.extend(value)
                return f"lower({x}) IN ({', '.join('lower(?)' for _ in value)})"
            try:
                network = ipaddress.ip_network(value, strict=False)
            except ValueError:
                message = f"{value!r} is neither a value list '(a, b)' nor a CIDR network"
                raise self.fail(message, cond) from None
            if network.version != 4:
                raise self.fail("only IPv4 networks are supported after 'in'", cond)
            self.params.extend((int(network.network_address), int(network.broadcast_address)))
            return f"wf_ipv4({x}) BETWEEN ? AND ?"
        if isinstance(value, tuple):
            raise self.fail(f"operator {op!r} takes one value, not a list", cond)
        if op == "=":
            pattern = _like_pattern(value)
            if pattern is not None:
                self.params.append(pattern)
                return f"({x} ILIKE ? ESCAPE '\\')"
            self.params.append(_unescape(value))
            return f"(lower({x}) = lower(?))"
        if op == "~":
            self.params.append(value)
            return f"contains(lower({x}), lower(?))"
        try:
            number = float(value)
        except ValueError:
            raise self.fail(f"operator {op!r} needs a number, got {value!r}", cond) from None
        if not math.isfinite(number):
            raise self.fail(f"operator {op!r} needs a finite number, got {value!r}", cond)
        self.params.append(number)
        return f"(TRY_CAST({x} AS DOUBLE) {op} ?)"


def compile_where(where: Node | Sequence[Condition] | str | None) -> CompiledWhere:
    """SQL boolean expression over the archive columns and `__v`, with its parameters in order.

    A sequence of conditions means all of them (AND); None or an empty sequence means TRUE.
    """
    if where is None:
        return CompiledWhere("TRUE", [], [])
    if isinstance(where, str):
        query = where
        node: Node = parse_where(where)
    elif isinstance(where, Condition | And | Or | Not):
        query, node = render(where), where
    else:
        items = tuple(where)
        if not items:
            return CompiledWhere("TRUE", [], [])
        node = items[0] if len(items) == 1 else And(items)
        query = render(node)
    compiler = _Compiler(query)
    sql = compiler.node(node)
    return CompiledWhere(sql, compiler.params, list(compiler.paths))
