"""Property tests of the reference Sigma evaluator against independent oracles (Hypothesis)."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from watchfloor.detect.sigma.reference import ReferenceRule
from watchfloor.detect.sigma.reference_values import base64_offsets


def make_rule(detection: Mapping[str, Any]) -> ReferenceRule:
    return ReferenceRule.from_dict({"title": "p", "id": "p", "detection": dict(detection)})


def item(key: str, value: Any) -> ReferenceRule:
    return make_rule({"sel": {key: value}, "condition": "sel"})


def escape(text: str) -> str:
    """A Sigma string that means `text` literally."""
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


def oracle_regex(raw: str) -> str:
    """Translate a Sigma string to a Python regex, one character at a time (spec "Escaping")."""
    out, i = [], 0
    while i < len(raw):
        char = raw[i]
        if char == "\\" and i + 1 < len(raw) and raw[i + 1] in "*?\\":
            out.append(re.escape(raw[i + 1]))
            i += 2
            continue
        out.append({"*": ".*", "?": "."}.get(char, re.escape(char)))
        i += 1
    return "".join(out)


# str.lower() maps a final capital sigma by context (Σ -> ς after a letter), so a substring's lower-case
# form need not be a substring of the whole's: keep Σ out of the substring properties.
TEXT = st.text(
    alphabet=st.characters(blacklist_characters="\u03a3", blacklist_categories=("Cs",)), max_size=30
)
ASCII = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
SIGMA_ALPHABET = st.text(alphabet="aAb*?\\", max_size=10)


@given(raw=SIGMA_ALPHABET, text=SIGMA_ALPHABET)
def test_wildcards_agree_with_a_regex_oracle(raw: str, text: str) -> None:
    expected = re.fullmatch(oracle_regex(raw), text, re.IGNORECASE | re.DOTALL) is not None
    assert item("f", raw).matches({"f": text}) is expected
    expected_cased = re.fullmatch(oracle_regex(raw), text, re.DOTALL) is not None
    assert item("f|cased", raw).matches({"f": text}) is expected_cased


@given(raw=SIGMA_ALPHABET, data=st.data())
def test_instances_of_a_pattern_match_it(raw: str, data: st.DataObject) -> None:
    """Build a text the oracle says matches (wildcards filled at random); the evaluator must agree."""
    text, i = [], 0
    while i < len(raw):
        char = raw[i]
        if char == "\\" and i + 1 < len(raw) and raw[i + 1] in "*?\\":
            text.append(raw[i + 1])
            i += 2
            continue
        if char == "*":
            text.append(data.draw(st.text(alphabet="ab*\\", max_size=3)))
        elif char == "?":
            text.append(data.draw(st.sampled_from("aB?\\")))
        else:
            text.append(data.draw(st.sampled_from([char.lower(), char.upper()])))
        i += 1
    instance = "".join(text)
    assert re.fullmatch(oracle_regex(raw), instance, re.IGNORECASE | re.DOTALL)
    assert item("f", raw).matches({"f": instance})


@given(raw=st.text(alphabet="ab*?", max_size=8), text=st.text(alphabet="ab\n", max_size=12))
def test_wildcards_span_any_characters(raw: str, text: str) -> None:
    expected = re.fullmatch(oracle_regex(raw), text, re.DOTALL) is not None
    assert item("f", raw).matches({"f": text}) is expected


@given(text=TEXT, data=st.data())
def test_contains_any_substring(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    assert item("f|contains", escape(text[start:end])).matches({"f": text})
    assert item("f|startswith", escape(text[:start])).matches({"f": text})
    assert item("f|endswith", escape(text[end:])).matches({"f": text})
    assert item("f", escape(text)).matches({"f": text})
    assert make_rule({"k": [escape(text[start:end])], "condition": "k"}).matches({"x": 1, "f": [text]})


@given(text=ASCII)
def test_case_insensitive_unless_cased(text: str) -> None:
    assert item("f", escape(text)).matches({"f": text.swapcase()})
    assert item("f|cased", escape(text)).matches({"f": text.swapcase()}) is (text == text.swapcase())


@given(text=ASCII, other=ASCII)
def test_neq_is_not(text: str, other: str) -> None:
    event = {"f": other}
    assert item("f|neq", escape(text)).matches(event) is not item("f", escape(text)).matches(event)


@given(n=st.integers(-(2**53), 2**53))
def test_numbers_and_numeric_strings(n: int) -> None:
    assert item("f", n).matches({"f": str(n)})
    assert item("f", str(n)).matches({"f": n})
    assert item("f", n).matches({"f": float(n)})
    assert item("f|gte", n).matches({"f": str(n)})
    assert not item("f|gt", n).matches({"f": str(n)})
    assert item("f|lt", n).matches({"f": n - 1})


@given(prefix=TEXT, value=st.text(min_size=1, max_size=20), suffix=TEXT)
def test_base64offset_finds_the_value_at_any_offset(prefix: str, value: str, suffix: str) -> None:
    encoded = base64.b64encode((prefix + value + suffix).encode()).decode()
    assert any(form in encoded for form in base64_offsets(value.encode()))
    assert item("f|base64offset|contains", escape(value)).matches({"f": f"x {encoded} y"})


@given(word=st.from_regex(r"[a-z]{1,8}", fullmatch=True), dash=st.sampled_from("-/\u2013\u2014\u2015"))
def test_windash_accepts_every_dash(word: str, dash: str) -> None:
    assert item("f|windash|contains", f" -{word}").matches({"f": f"cmd {dash}{word} x"})
    assert item("f|windash|contains", f" /{word}").matches({"f": f"cmd {dash}{word} x"})


@given(key=st.from_regex(r"[A-Za-z]{1,10}", fullmatch=True), data=st.data())
def test_field_lookup_ignores_case(key: str, data: st.DataObject) -> None:
    variant = "".join(data.draw(st.sampled_from([c.lower(), c.upper()])) for c in key)
    assert item(key, "v").matches({variant: "v"})


# --- conditions against Python's own and/or/not (same precedence as Sigma) ----------------------------

NAMES = ("s0", "s1", "s2", "t3")
SELECTORS = {
    "1 of s*": "any([s0, s1, s2])",
    "all of s*": "all([s0, s1, s2])",
    "any of *3": "any([t3])",
    "1 of them": "any([s0, s1, s2, t3])",
    "all of them": "all([s0, s1, s2, t3])",
}


def _leaf() -> st.SearchStrategy[tuple[str, str]]:
    names = st.sampled_from(NAMES).map(lambda name: (name, name))
    selectors = st.sampled_from(sorted(SELECTORS.items()))
    return names | selectors


def _extend(inner: st.SearchStrategy[tuple[str, str]]) -> st.SearchStrategy[tuple[str, str]]:
    def binary(op: str) -> st.SearchStrategy[tuple[str, str]]:
        return st.tuples(inner, inner).map(
            lambda ab: (f"{ab[0][0]} {op} {ab[1][0]}", f"{ab[0][1]} {op} {ab[1][1]}")
        )

    negated = inner.map(lambda a: (f"not {a[0]}", f"not {a[1]}"))
    grouped = inner.map(lambda a: (f"({a[0]})", f"({a[1]})"))
    return binary("and") | binary("or") | negated | grouped


CONDITIONS = st.recursive(_leaf(), _extend, max_leaves=8)
EVENTS = st.fixed_dictionaries({name: st.booleans() for name in NAMES})
DETECTION = {name: {f"f_{name}": "x"} for name in NAMES}


def evaluate_rule(condition: str, truth: Mapping[str, bool]) -> bool:
    event = {f"f_{name}": "x" for name, value in truth.items() if value}
    return make_rule({**DETECTION, "condition": condition}).matches(event)


def python_truth(expression: str, truth: Mapping[str, bool]) -> bool:
    return bool(eval(expression, {"any": any, "all": all}, dict(truth)))  # our own expression


@given(condition=CONDITIONS, truth=EVENTS)
def test_condition_agrees_with_python(condition: tuple[str, str], truth: Mapping[str, bool]) -> None:
    sigma, python = condition
    assert evaluate_rule(sigma, truth) is python_truth(python, truth)


@given(condition=CONDITIONS, truth=EVENTS)
def test_not_inverts(condition: tuple[str, str], truth: Mapping[str, bool]) -> None:
    sigma = condition[0]
    assert evaluate_rule(f"not ({sigma})", truth) is not evaluate_rule(sigma, truth)


@given(a=CONDITIONS, b=CONDITIONS, truth=EVENTS)
def test_de_morgan(a: tuple[str, str], b: tuple[str, str], truth: Mapping[str, bool]) -> None:
    assert evaluate_rule(f"not (({a[0]}) or ({b[0]}))", truth) is evaluate_rule(
        f"not ({a[0]}) and not ({b[0]})", truth
    )
    assert evaluate_rule(f"not (({a[0]}) and ({b[0]}))", truth) is evaluate_rule(
        f"not ({a[0]}) or not ({b[0]})", truth
    )


@given(truth=EVENTS)
def test_them_is_and_or_of_each(truth: Mapping[str, bool]) -> None:
    assert evaluate_rule("all of them", truth) is evaluate_rule(" and ".join(NAMES), truth)
    assert evaluate_rule("1 of them", truth) is evaluate_rule(" or ".join(NAMES), truth)
    assume(any(truth.values()))
    assert evaluate_rule("1 of them", truth)


@given(values=st.lists(ASCII, min_size=1, max_size=4), event=ASCII)
def test_all_is_and_of_each_value(values: list[str], event: str) -> None:
    escaped = [escape(v) for v in values]
    each = [item("f|contains", v).matches({"f": event}) for v in escaped]
    assert item("f|contains|all", escaped).matches({"f": event}) is all(each)
    assert item("f|contains", escaped).matches({"f": event}) is any(each)
