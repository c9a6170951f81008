"""The `--where` language: parser, renderer, SQL compiler (values always bound, never in the SQL text)."""

from __future__ import annotations

import contextlib

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchfloor.archive import And, Condition, Not, Or, SearchQueryError, compile_where, parse_where, render
from watchfloor.archive.query import SQL_MACROS, Node


def test_simple_conditions_parse() -> None:
    assert parse_where("process.name=powershell.exe") == Condition("process.name", "=", "powershell.exe")
    assert parse_where("user.name!=admin") == Condition("user.name", "!=", "admin")
    assert parse_where("CommandLine~encodedcommand") == Condition("CommandLine", "~", "encodedcommand")
    assert parse_where("EventID >= 4624") == Condition("EventID", ">=", "4624")
    assert parse_where("logsource=windows/security/*") == Condition("logsource", "=", "windows/security/*")


def test_windows_paths_stay_literal_when_bare_and_quoted_strings_unescape() -> None:
    assert parse_where(r"Image=C:\Windows\System32\cmd.exe").value == r"C:\Windows\System32\cmd.exe"  # type: ignore[union-attr]
    assert parse_where(r'"Threat Name"="a \"quoted\" \\ value"') == Condition(
        "Threat Name", "=", 'a "quoted" \\ value'
    )
    assert parse_where("CommandLine~a=b").value == "a=b"  # type: ignore[union-attr]


def test_lists_cidr_and_boolean_structure() -> None:
    node = parse_where("EventID in (4624, 4625) AND (IpAddress in 10.0.0.0/8 OR NOT user=bob) x=1")
    assert node == And(
        (
            Condition("EventID", "in", ("4624", "4625")),
            Or((Condition("IpAddress", "in", "10.0.0.0/8"), Not(Condition("user", "=", "bob")))),
            Condition("x", "=", "1"),
        )
    )
    assert parse_where("a=1 or b=2 and c=3") == Or(
        (Condition("a", "=", "1"), And((Condition("b", "=", "2"), Condition("c", "=", "3"))))
    )


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("", 1),
        ("EventID", 8),
        ("EventID=", 9),
        ("(a=1", 1),
        ("a=1)", 4),
        ('a="open', 3),
        ("a=1 AND", 8),
        ("=x", 1),
        ("a in (1, 2", 11),
        ("AND a=1", 1),
    ],
)
def test_errors_say_where(text: str, column: int) -> None:
    with pytest.raises(SearchQueryError) as info:
        parse_where(text)
    assert info.value.code == "search.invalid_query"
    assert info.value.column == column, str(info.value)
    assert f"column {column}" in str(info.value)


def test_compile_errors_point_at_the_condition() -> None:
    with pytest.raises(SearchQueryError, match="needs a number") as info:
        compile_where("a=1 AND EventID>lots")
    assert info.value.column == 9
    with pytest.raises(SearchQueryError, match="IPv4"):
        compile_where("ip in ::1/128")
    with pytest.raises(SearchQueryError, match="CIDR"):
        compile_where("ip in nonsense")


def test_deep_nesting_is_an_error_not_a_recursion_crash() -> None:
    with pytest.raises(SearchQueryError, match="nested"):
        parse_where("(" * 500 + "a=1" + ")" * 500)
    with pytest.raises(SearchQueryError, match="nested"):
        parse_where("NOT " * 500 + "a=1")


def test_values_are_never_in_the_sql_text() -> None:
    evil = "x'); DROP TABLE t; --"
    sql, params, paths = compile_where(f'CommandLine~"{evil}" AND source="{evil}" AND "{evil}"=1')
    assert evil not in sql
    assert "DROP" not in sql
    assert evil in params
    assert any("DROP" in p for p in paths)


# -- properties ------------------------------------------------------------------------------------
names = st.one_of(
    st.sampled_from(["EventID", "process.name", "CommandLine", "source", "logsource", "Threat Name", "in"]),
    st.text(min_size=1, max_size=12),
)
values = st.text(max_size=16)
comparisons = st.builds(
    Condition, names, st.sampled_from(["=", "!=", "~", "!~", ">", ">=", "<", "<="]), values
)
memberships = st.builds(Condition, names, st.just("in"), st.lists(values, min_size=1, max_size=4).map(tuple))
cidrs = st.builds(Condition, names, st.just("in"), st.sampled_from(["10.0.0.0/8", "192.168.1.7/32"]))


def _trees(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(
        st.builds(Not, children),
        st.lists(children, min_size=2, max_size=3).map(lambda items: And(tuple(items))),
        st.lists(children, min_size=2, max_size=3).map(lambda items: Or(tuple(items))),
    )


trees = st.recursive(st.one_of(comparisons, memberships, cidrs), _trees, max_leaves=8)


@given(trees)
@settings(max_examples=300, deadline=None)
def test_render_then_parse_round_trips(tree: Node) -> None:
    assert parse_where(render(tree)) == tree


@given(st.text(alphabet=st.sampled_from(list('ab =!~<>()",\\ \tANDORNOTin*?.1')), max_size=40))
@settings(max_examples=500, deadline=None)
def test_parser_raises_only_query_errors_on_grammar_soup(text: str) -> None:
    try:
        node = parse_where(text)
    except SearchQueryError as exc:
        column = exc.column
    else:
        assert parse_where(render(node)) == node
        return
    assert 1 <= column <= len(text) + 1


@given(st.text(max_size=60))
@settings(max_examples=300, deadline=None)
def test_parser_raises_only_query_errors_on_any_text(text: str) -> None:
    with contextlib.suppress(SearchQueryError):
        parse_where(text)


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    for macro in SQL_MACROS:
        connection.execute(macro)
    connection.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES "
        """('{"EventID": 4625, "CommandLine": "x'' OR 1=1", "L": ["a", "B"]}', """
        "'windows/security/4625', 'src', '1', 'k')"
        ") AS v(fields, logsource, source, record_id, event_key)"
    )
    return connection


@given(trees)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_compiled_tree_runs_in_duckdb(con: duckdb.DuckDBPyConnection, tree: Node) -> None:
    try:
        sql, params, paths = compile_where(tree)
    except SearchQueryError:
        return  # e.g. a non-numeric value for '>'
    extract = ", json_extract(fields, CAST(? AS VARCHAR[])) AS __v" if paths else ""
    head: list[object] = [paths] if paths else []
    query = f"SELECT count(*) FROM (SELECT *{extract} FROM t) WHERE {sql}"
    result = con.execute(query, [*head, *params]).fetchone()
    assert result is not None
    assert result[0] in {0, 1}
    assert con.execute("SELECT count(*) FROM t").fetchone() == (1,)  # nothing was dropped or changed
