"""Unit tests of the reference Sigma evaluator (docs/sigma-semantics.md): small inline rules and events."""

from __future__ import annotations

import base64
import collections
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from watchfloor.core.errors import PlaceholderError, RuleError, RuleUnsupportedError
from watchfloor.detect.sigma.reference import ReferenceRule, filter_applies
from watchfloor.detect.sigma.reference_values import (
    Placeholder,
    Wildcard,
    base64_offsets,
    parse_sigma_string,
)

STAR, ONE = Wildcard.ANY_RUN, Wildcard.ANY_ONE


def make_rule(detection: Mapping[str, Any], **kwargs: Any) -> ReferenceRule:
    document = {
        "title": "Test rule",
        "id": "00000000-0000-0000-0000-000000000001",
        "logsource": {"product": "windows", "category": "process_creation"},
        "detection": dict(detection),
    }
    return ReferenceRule.from_dict(document, **kwargs)


def item(key: str, value: Any, **kwargs: Any) -> ReferenceRule:
    """A rule whose only search identifier is {key: value}."""
    return make_rule({"sel": {key: value}, "condition": "sel"}, **kwargs)


def hit(key: str, value: Any, event: Mapping[str, Any], **kwargs: Any) -> bool:
    return item(key, value, **kwargs).matches(event)


# --- Sigma strings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "parts"),
    [
        ("abc", ("abc",)),
        ("a*b?c", ("a", STAR, "b", ONE, "c")),
        (r"a\*b", ("a*b",)),
        (r"a\?b", ("a?b",)),
        (r"a\\b", ("a\\b",)),
        (r"a\b", ("a\\b",)),
        ("a\\", ("a\\",)),
        (r"C:\Windows\\*", ("C:\\Windows\\", STAR)),
        (r"x\\\*", ("x\\*",)),
        (r"\\\\", ("\\\\",)),
        ("", ()),
        ("%name%", ("%name%",)),
    ],
)
def test_parse_sigma_string(raw: str, parts: tuple[object, ...]) -> None:
    assert parse_sigma_string(raw) == parts


def test_parse_placeholders_only_with_expand() -> None:
    assert parse_sigma_string("a%x%b", placeholders=True) == ("a", Placeholder("x"), "b")
    assert parse_sigma_string(r"\%plain%name%", placeholders=True) == ("%plain", Placeholder("name"))
    assert parse_sigma_string("100% sure", placeholders=True) == ("100% sure",)
    assert parse_sigma_string("%%", placeholders=True) == ("%%",)
    assert parse_sigma_string("a % b %", placeholders=True) == ("a ", Placeholder(" b "))
    assert parse_sigma_string("%a*b%", placeholders=True) == ("%a", STAR, "b%")


# --- equality, wildcards, case -----------------------------------------------------------------------


def test_plain_value_is_whole_value_equality_ignoring_case() -> None:
    assert hit("Image", r"C:\Windows\cmd.exe", {"Image": r"c:\windows\CMD.EXE"})
    assert not hit("Image", r"C:\Windows\cmd.exe", {"Image": r"C:\Windows\cmd.exe "})
    assert not hit("Image", "cmd.exe", {"Image": r"C:\Windows\cmd.exe"})


def test_double_backslash_is_one_backslash() -> None:
    assert hit("Image", r"C:\\Windows\\cmd.exe", {"Image": r"C:\Windows\cmd.exe"})


def test_wildcards() -> None:
    assert hit("f", "a*c", {"f": "ac"})
    assert hit("f", "a*c", {"f": "abbbc"})
    assert hit("f", "a?c", {"f": "abc"})
    assert not hit("f", "a?c", {"f": "ac"})
    assert not hit("f", "a?c", {"f": "abbc"})
    assert hit("f", "*", {"f": ""})
    assert hit("f", "*a*b*", {"f": "xxaxxbxx"})
    assert not hit("f", "*a*b*", {"f": "xxbxxaxx"})
    assert hit("f", "a*b*a", {"f": "aba"})
    assert not hit("f", "a*a", {"f": "a"})


def test_escaped_wildcards_are_literal() -> None:
    assert hit("f", r"a\*c", {"f": "a*c"})
    assert not hit("f", r"a\*c", {"f": "abc"})
    assert hit("f", r"a\?c", {"f": "a?c"})
    assert not hit("f", r"a\?c", {"f": "abc"})
    assert hit("f", r"x\\*", {"f": "x\\anything"})
    assert hit("f", r"x\\\*", {"f": "x\\*"})
    assert not hit("f", r"x\\\*", {"f": "x\\y"})
    assert hit("f", "C:\\temp\\", {"f": "c:\\TEMP\\"})


def test_cased() -> None:
    assert not hit("f|cased", "Abc", {"f": "abc"})
    assert hit("f|cased", "Abc", {"f": "Abc"})
    assert hit("f|contains|cased", "B", {"f": "aBc"})
    assert not hit("f|cased|contains", "B", {"f": "abc"})


def test_contains_startswith_endswith() -> None:
    event = {"CommandLine": "powershell.exe -EncodedCommand AAAA"}
    assert hit("CommandLine|contains", "-encodedcommand", event)
    assert hit("CommandLine|startswith", "POWERSHELL", event)
    assert hit("CommandLine|endswith", "aaaa", event)
    assert not hit("CommandLine|startswith", "-enc", event)
    assert not hit("CommandLine|endswith", "powershell", event)
    assert hit("CommandLine|contains", "", event)
    assert hit("CommandLine|contains", "*shell*", event)


def test_value_list_or_and_all() -> None:
    event = {"CommandLine": "net user /add"}
    assert hit("CommandLine|contains", ["nope", "user"], event)
    assert not hit("CommandLine|contains|all", ["nope", "user"], event)
    assert hit("CommandLine|contains|all", ["net", "/add"], event)
    assert hit("CommandLine|all|contains", ["net", "/add"], event)
    assert hit("CommandLine|contains|all", ["net"], event)


def test_event_list_matches_any_element() -> None:
    event = {"Tags": ["alpha", "beta"]}
    assert hit("Tags", "beta", event)
    assert not hit("Tags", "gamma", event)
    assert hit("Tags|all", ["alpha", "beta"], event)  # each value may match another element
    assert hit("Tags", "beta", {"Tags": [["x", "beta"]]})  # nested lists are flattened
    assert not hit("Tags", "beta", {"Tags": []})


# --- value types -------------------------------------------------------------------------------------


def test_event_value_text_forms() -> None:
    assert hit("f", "4688", {"f": 4688})
    assert hit("f", "4688.0", {"f": 4688.0})
    assert not hit("f", "4688", {"f": 4688.0})
    assert hit("f", "true", {"f": True})
    assert hit("f", "FALSE", {"f": False})
    assert not hit("f", "*", {"f": None})
    assert not hit("f", "*", {"f": {"nested": "x"}})
    assert hit("f|contains", "68", {"f": 4688})


def test_rule_numbers() -> None:
    assert hit("EventID", 4688, {"EventID": 4688})
    assert hit("EventID", 4688, {"EventID": "4688"})
    assert hit("EventID", 4688, {"EventID": 4688.0})
    assert hit("EventID", 4688, {"EventID": "4688.0"})
    assert hit("EventID", 4688, {"EventID": "+4688"})
    assert not hit("EventID", 4688, {"EventID": "0x1250"})
    assert not hit("EventID", 4688, {"EventID": " 4688"})
    assert not hit("EventID", 4688, {"EventID": "4688abc"})
    assert not hit("EventID", 1, {"EventID": True})
    assert hit("v", 1.5, {"v": "1.50"})
    assert hit("v", 4688.0, {"v": 4688})
    assert hit("EventID", [4624, 4688], {"EventID": "4688"})
    assert not hit("EventID", 4688, {})


def test_rule_booleans() -> None:
    assert hit("Enabled", True, {"Enabled": True})
    assert hit("Enabled", True, {"Enabled": "True"})
    assert not hit("Enabled", True, {"Enabled": 1})
    assert not hit("Enabled", False, {"Enabled": True})


def test_null_and_empty() -> None:
    assert hit("f", None, {})
    assert hit("f", None, {"f": None})
    assert hit("f", None, {"f": [None, "x"]})
    assert not hit("f", None, {"f": ""})
    assert not hit("f", None, {"f": []})
    assert hit("f", [], {})  # an empty value list is null
    assert hit("f", "", {"f": ""})
    assert not hit("f", "", {})
    assert not hit("f", "", {"f": None})
    assert not hit("f", "", {"f": " "})
    assert hit("f", ["", None], {})


def test_exists() -> None:
    assert hit("f|exists", True, {"f": ""})
    assert hit("f|exists", True, {"F": 0})
    assert not hit("f|exists", True, {"f": None})
    assert not hit("f|exists", True, {})
    assert hit("f|exists", False, {})
    assert hit("f|exists", False, {"f": None})
    assert not hit("f|exists", False, {"f": "x"})
    with pytest.raises(RuleError, match="exists"):
        item("f|exists", "yes")
    with pytest.raises(RuleError, match="exists"):
        item("f|exists|contains", True)
    with pytest.raises(RuleError, match="exists"):
        make_rule({"sel": {"|exists": True}, "condition": "sel"})


# --- regular expressions -----------------------------------------------------------------------------


def test_re_is_unanchored_search_and_case_sensitive() -> None:
    assert hit("f|re", "b+c", {"f": "abbcd"})
    assert not hit("f|re", "^b", {"f": "abc"})
    assert not hit("f|re", "ABC", {"f": "abc"})
    assert hit("f|re|i", "ABC", {"f": "xabcx"})
    assert hit("f|re|ignorecase", "ABC", {"f": "xabcx"})
    assert hit("f|re", r"\d{4}", {"f": 4688})
    assert hit("f|re", "a*", {"f": "zzz"})  # '*' is regex syntax, not a Sigma wildcard
    assert hit("f|re", r"C:\\Windows", {"f": r"C:\Windows"})


def test_re_flags() -> None:
    text = "first\nsecond"
    assert not hit("f|re", "^second", {"f": text})
    assert hit("f|re|m", "^second", {"f": text})
    assert not hit("f|re", "first.second", {"f": text})
    assert hit("f|re|s", "first.second", {"f": text})
    assert hit("f|re|dotall|multiline", "t.^s", {"f": text})


def test_re_with_contains_is_unchanged() -> None:
    assert hit("f|re|contains", "b", {"f": "abc"})
    assert hit("f|re|startswith", "c", {"f": "abc"})  # pySigma only adds '.*' around: same under search


def test_re_errors() -> None:
    with pytest.raises(RuleError, match="invalid regular expression"):
        item("f|re", "(")
    with pytest.raises(RuleError, match="must come before"):
        item("f|contains|re", "x")
    with pytest.raises(RuleError, match="only follows 're'"):
        item("f|i", "x")
    with pytest.raises(RuleError, match="cased"):
        item("f|re|cased", "x")


# --- encodings ---------------------------------------------------------------------------------------


def test_base64() -> None:
    assert hit("f|base64", "cmd", {"f": "Y21k"})
    assert hit("f|base64|contains", "cmd", {"f": "xxY21kxx"})
    assert not hit("f|base64", "cmd", {"f": "cmd"})
    with pytest.raises(RuleError, match="wildcards"):
        item("f|base64", "cm*")


def test_base64offset_known_vectors() -> None:
    # the example of the Sigma modifier documentation
    assert base64_offsets(b"/bin/bash") == ("L2Jpbi9iYXNo", "9iaW4vYmFza", "vYmluL2Jhc2")
    assert base64_offsets(b"/bin/sh") == ("L2Jpbi9za", "9iaW4vc2", "vYmluL3No")


def test_base64offset_matches_at_every_offset() -> None:
    rule = item("CommandLine|base64offset|contains", "http://")
    for prefix in ("", "a", "ab", "abc"):
        encoded = base64.b64encode(f"{prefix}http://x".encode()).decode()
        assert rule.matches({"CommandLine": f"powershell -enc {encoded}"})
    assert not rule.matches({"CommandLine": base64.b64encode(b"ftp://x").decode()})


def test_base64offset_under_all_is_or_within_a_value() -> None:
    rule = item("f|base64offset|contains|all", ["abc", "xyz"])
    assert rule.matches({"f": base64.b64encode(b"..abc..xyz").decode()})
    assert not rule.matches({"f": base64.b64encode(b"..abc..").decode()})


def test_utf16_encodings_before_base64() -> None:
    assert hit("f|wide|base64", "cmd", {"f": base64.b64encode("cmd".encode("utf-16le")).decode()})
    assert hit("f|utf16le|base64", "cmd", {"f": "YwBtAGQA"})
    assert hit("f|utf16be|base64", "cmd", {"f": base64.b64encode("cmd".encode("utf-16be")).decode()})
    assert hit(
        "f|utf16|base64", "cmd", {"f": base64.b64encode(b"\xff\xfe" + "cmd".encode("utf-16le")).decode()}
    )
    encoded = base64.b64encode("IEX (New-Object Net.WebClient)".encode("utf-16le")).decode()
    assert hit("f|wide|base64offset|contains", "New-Object", {"f": encoded})


def test_wide_as_text_and_unsupported_characters() -> None:
    assert hit("f|wide", "ab", {"f": "a\x00b\x00"})
    with pytest.raises(RuleUnsupportedError, match="UTF-16"):
        item("f|wide|base64", "é")


def test_base64_is_case_insensitive_unless_cased() -> None:
    assert hit("f|base64", "cmd", {"f": "y21K"})
    assert not hit("f|base64|cased", "cmd", {"f": "y21K"})


# --- windash ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dash", ["-", "/", "\u2013", "\u2014", "\u2015"])
def test_windash_variants(dash: str) -> None:
    assert hit("CommandLine|windash|contains", " -exec ", {"CommandLine": f"x {dash}exec bypass"})
    assert hit("CommandLine|windash|contains", " /exec ", {"CommandLine": f"x {dash}exec bypass"})


def test_windash_only_expands_dashes_that_start_a_word() -> None:
    rule = item("CommandLine|windash|contains", "a-b")
    assert rule.matches({"CommandLine": "a-b"})
    assert not rule.matches({"CommandLine": "a/b"})
    both = item("CommandLine|windash", "-a -b")
    assert both.matches({"CommandLine": "/a \u2014b"})
    assert not item("CommandLine|windash", "--x").matches({"CommandLine": "//x"})
    assert item("CommandLine|windash", "--x").matches({"CommandLine": "-/x"})


def test_windash_under_all() -> None:
    rule = item("CommandLine|windash|contains|all", ["-a", "-b"])
    assert rule.matches({"CommandLine": "x /a /b"})
    assert not rule.matches({"CommandLine": "x /a"})


def test_windash_limit() -> None:
    with pytest.raises(RuleError, match="at most 3"):
        item("f|windash", "-a -b -c -d")


# --- cidr, comparisons, time parts ------------------------------------------------------------------


def test_cidr() -> None:
    assert hit("ip|cidr", "10.0.0.0/8", {"ip": "10.1.2.3"})
    assert not hit("ip|cidr", "10.0.0.0/8", {"ip": "11.1.2.3"})
    assert hit("ip|cidr", "fe80::/10", {"ip": "FE80::1"})
    assert not hit("ip|cidr", "10.0.0.0/8", {"ip": "::ffff:10.0.0.1"})
    assert not hit("ip|cidr", "10.0.0.0/8", {"ip": "not an ip"})
    assert not hit("ip|cidr", "10.0.0.0/8", {"ip": 167772161})
    assert hit("ip|cidr", ["192.168.0.0/16", "10.0.0.0/8"], {"ip": ["8.8.8.8", "10.0.0.1"]})
    with pytest.raises(RuleError, match="invalid CIDR"):
        item("ip|cidr", "10.0.0.1/8")
    with pytest.raises(RuleError, match="must come before"):
        item("ip|contains|cidr", "10.0.0.0/8")


def test_numeric_comparisons() -> None:
    assert hit("n|gt", 5, {"n": 6})
    assert not hit("n|gt", 5, {"n": 5})
    assert hit("n|gte", 5, {"n": "5"})
    assert hit("n|lt", 5, {"n": 4.5})
    assert hit("n|lte", 5, {"n": "5.0"})
    assert not hit("n|lt", 5, {"n": "four"})
    assert not hit("n|lt", 5, {"n": True})
    assert not hit("n|lt", 5, {})
    with pytest.raises(RuleError, match="needs a number"):
        item("n|gt", "5")


def test_time_parts() -> None:
    event = {"t": "2024-03-10T23:45:12.1234567+02:00"}  # 21:45:12 UTC
    assert hit("t|hour", 21, event)
    assert hit("t|minute", 45, event)
    assert hit("t|day", 10, event)
    assert hit("t|month", 3, event)
    assert hit("t|year", 2024, event)
    assert hit("t|week", 10, event)
    assert hit("t|hour", 8, {"t": "2024-03-10 08:00:00"})  # naive = UTC
    assert hit("t|hour|gte", 20, event)
    assert hit("t|gte|hour", 20, event)
    assert not hit("t|hour|lt", 20, event)
    assert not hit("t|hour", 21, {"t": "yesterday"})
    assert not hit("t|hour", 0, {"t": 0})
    with pytest.raises(RuleError, match="needs a number"):
        item("t|hour", "21")


# --- neq, fieldref, expand ---------------------------------------------------------------------------


def test_neq_negates_the_item() -> None:
    assert hit("f|neq", "a", {"f": "b"})
    assert not hit("f|neq", "a", {"f": "A"})
    assert hit("f|neq", "a", {})
    assert not hit("f|neq", ["a", "b"], {"f": "b"})
    assert hit("f|neq|all", ["a", "b"], {"f": "b"})
    assert hit("f|neq", 4688, {"f": "4624"})
    assert not hit("f|neq", None, {})
    assert hit("f|neq", None, {"f": "x"})


def test_fieldref() -> None:
    assert hit(
        "SubjectUserName|fieldref", "TargetUserName", {"SubjectUserName": "Bob", "TargetUserName": "bob"}
    )
    assert not hit(
        "SubjectUserName|fieldref", "TargetUserName", {"SubjectUserName": "bob", "TargetUserName": "al"}
    )
    assert not hit("SubjectUserName|fieldref", "TargetUserName", {"SubjectUserName": "bob"})
    assert not hit("a|fieldref", "b", {"a": None, "b": None})
    assert not hit("a|fieldref|cased", "b", {"a": "X", "b": "x"})
    event = {"Image": r"C:\Temp\evil.exe", "Name": "EVIL.exe", "Dir": r"c:\temp"}
    assert hit("Image|fieldref|endswith", "Name", event)
    assert hit("Image|fieldref|startswith", "Dir", event)
    assert hit("Image|fieldref|contains", "Name", event)
    assert not hit("Image|fieldref|startswith", "Name", event)
    assert hit("a|fieldref", "b", {"a": "x", "b": ["y", "X"]})
    assert hit("a|fieldref|neq", "b", {"a": "x", "b": "y"})
    with pytest.raises(RuleError, match="plain value"):
        item("a|fieldref", "b*")


def test_fieldref_uses_field_names() -> None:
    rule = item("User|fieldref", "Target")
    names = {"User": ("SubjectUserName",), "Target": ("TargetUserName",)}
    event = {"SubjectUserName": "x", "TargetUserName": "X"}
    assert rule.matches(event, lambda field: names.get(field, (field,)))


def test_expand() -> None:
    placeholders = {"Admins": ["adm_*", "root"], "Domain": ["corp"]}
    rule = item("User|expand", "%Admins%", placeholders=placeholders)
    assert rule.matches({"User": "ADM_bob"})
    assert rule.matches({"User": "root"})
    assert not rule.matches({"User": "bob"})
    both = item("User|expand", r"%Domain%\\%Admins%", placeholders=placeholders)
    assert both.matches({"User": r"corp\root"})
    escaped = item("User|expand", r"%Domain%\%Admins%", placeholders=placeholders)  # \% is a literal %
    assert escaped.matches({"User": "corp%Admins%"})
    assert item("User|contains|expand", "%Domain%", placeholders=placeholders).matches({"User": "x.corp.y"})
    assert item("User|expand|contains", "%Domain%", placeholders=placeholders).matches({"User": "x.corp.y"})
    assert item("User|expand|all", ["%Admins%"], placeholders=placeholders).matches({"User": "root"})
    assert item("User|expand", r"\%Domain%", placeholders=placeholders).matches({"User": "%Domain%"})
    assert item("User", "%Domain%").matches({"User": "%domain%"})  # without expand: a literal
    assert not item("User|expand", "%Empty%", placeholders={"Empty": []}).matches({"User": ""})
    assert item("User|expand", "%One%", placeholders={"One": "solo"}).matches({"User": "solo"})


def test_expand_errors() -> None:
    with pytest.raises(PlaceholderError, match="Admins"):
        item("User|expand", "%Admins%")
    with pytest.raises(PlaceholderError, match="Other"):
        item("User|expand", "%Other%", placeholders={"Admins": ["x"]})
    with pytest.raises(RuleUnsupportedError, match="regular expressions"):
        item("User|re|expand", "%Admins%", placeholders={"Admins": ["x"]})


# --- keywords ----------------------------------------------------------------------------------------


def test_keywords_are_full_text_contains() -> None:
    rule = make_rule({"keywords": ["mimikatz", "event::clear"], "condition": "keywords"})
    assert rule.matches({"CommandLine": "C:\\MimiKatz.exe", "Other": 1})
    assert rule.matches({"Data": ["x", "run event::clear now"]})
    assert not rule.matches({"mimikatz": "field names are not searched"})
    assert not rule.matches({})


def test_keyword_forms() -> None:
    assert make_rule({"k": "evil", "condition": "k"}).matches({"a": "so EVIL"})
    assert make_rule({"k": 4688, "condition": "k"}).matches({"a": 14688})
    assert make_rule({"k": {"|all": ["evil", "twin"]}, "condition": "k"}).matches({"a": "evil", "b": "twin"})
    assert not make_rule({"k": {"|all": ["evil", "twin"]}, "condition": "k"}).matches({"a": "evil"})
    assert make_rule({"k": {"|re": "e.i"}, "condition": "k"}).matches({"a": "xevilx"})
    assert not make_rule({"k": {"|cased": "Evil"}, "condition": "k"}).matches({"a": "evil"})
    assert make_rule({"k": ["a*c"], "condition": "k"}).matches({"a": "xabbcx"})
    assert make_rule({"k": {"|windash": "-enc"}, "condition": "k"}).matches({"a": "x /enc"})
    with pytest.raises(RuleError, match="null"):
        make_rule({"k": [None], "condition": "k"})
    with pytest.raises(RuleError, match=r"cidr|CIDR"):
        make_rule({"k": {"|cidr": "10.0.0.0/8"}, "condition": "k"})


# --- field lookup ------------------------------------------------------------------------------------


def test_field_lookup_exact_then_case_insensitive() -> None:
    rule = item("ProcessId", 4)
    assert rule.matches({"ProcessId": 4, "ProcessID": 5})
    assert rule.matches({"processid": 4})
    assert not rule.matches({"ProcessID": 5, "processid": 4})  # first key equal ignoring case


def test_field_names_in_order_first_present_wins() -> None:
    rule = item("Image", "*\\cmd.exe")
    names = lambda field: ("NewProcessName", "Image") if field == "Image" else (field,)  # noqa: E731
    assert rule.matches({"NewProcessName": r"C:\cmd.exe", "Image": "x"}, names)
    assert not rule.matches({"NewProcessName": "x", "Image": r"C:\cmd.exe"}, names)
    assert rule.matches({"image": r"C:\cmd.exe"}, names)
    assert not rule.matches({"newprocessname": None, "Image": r"C:\cmd.exe"}, names)


# --- detections and conditions -----------------------------------------------------------------------


def test_map_is_and_list_is_or() -> None:
    and_rule = make_rule({"sel": {"a": "1", "b": "2"}, "condition": "sel"})
    assert and_rule.matches({"a": "1", "b": "2"})
    assert not and_rule.matches({"a": "1"})
    or_rule = make_rule({"sel": [{"a": "1"}, {"b": "2"}], "condition": "sel"})
    assert or_rule.matches({"b": "2"})
    assert not or_rule.matches({"a": "2"})
    mixed = make_rule({"sel": [{"a": "1"}, "keyword"], "condition": "sel"})
    assert mixed.matches({"z": "the KEYWORD"})


CONDITION_DETECTION = {
    "sel1": {"a": "1"},
    "sel2": {"b": "1"},
    "filter_x": {"c": "1"},
    "_hidden": {"d": "1"},
}


def cond(condition: str | list[str], **event: str) -> bool:
    return make_rule({**CONDITION_DETECTION, "condition": condition}).matches(event)


def test_condition_operators_and_precedence() -> None:
    assert cond("sel1 and sel2", a="1", b="1")
    assert not cond("sel1 and sel2", a="1")
    assert cond("sel1 or sel2", b="1")
    assert cond("not sel1", b="1")
    assert cond("not not sel1", a="1")
    assert cond("sel1 or sel2 and filter_x", a="1")  # and binds tighter than or
    assert not cond("(sel1 or sel2) and filter_x", a="1")
    assert cond("not sel1 and sel2", b="1")  # not binds tighter than and
    assert not cond("not (sel1 or sel2)", b="1")
    assert cond("not(sel1)and(sel2)", b="1")
    assert cond(["sel1", "sel2"], b="1")


def test_condition_selectors() -> None:
    assert cond("1 of sel*", b="1")
    assert cond("any of sel*", b="1")
    assert not cond("all of sel*", b="1")
    assert cond("all of sel*", a="1", b="1")
    assert cond("1 of them", c="1")
    assert not cond("1 of them", d="1")  # _hidden is not in them
    assert cond("all of them", a="1", b="1", c="1")
    assert not cond("1 of *", d="1")
    assert cond("1 of _hid*", d="1")
    assert cond("_hidden", d="1")
    assert cond("1 of *_x and not 1 of sel*", c="1")
    assert cond("1 of sel1", a="1")


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("sel3", "not defined"),
        ("sel1 and", "unexpected end"),
        ("sel1 sel2", "unexpected 'sel2'"),
        ("(sel1 or sel2", "expected '\\)'|unexpected end"),
        ("sel1)", "unexpected"),
        ("sel1 AND sel2", "unexpected 'AND'"),
        ("sel*", "wildcard identifier"),
        ("1 of nothing*", "matches no search identifier"),
        ("2 of sel*", "not defined|unexpected"),
        ("all of", "unexpected end"),
        ("", "empty"),
        ("and", "unexpected 'and'"),
    ],
)
def test_condition_errors(condition: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        cond(condition)


# --- filters -----------------------------------------------------------------------------------------


RULE = {
    "title": "Data Compressed - rar.exe",
    "id": "6f3e2987-db24-4c78-a860-b4f4095a7095",
    "logsource": {"category": "process_creation", "product": "windows"},
    "detection": {"sel": {"Image|endswith": "\\rar.exe"}, "condition": "sel"},
}


def sigma_filter(rules: Any, logsource: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "title": "Filter Administrator account",
        "logsource": dict(logsource or {"category": "process_creation", "product": "windows"}),
        "filter": {"rules": rules, "selection": {"User|startswith": "adm_"}, "condition": "not selection"},
    }


def test_filter_suppresses_matches() -> None:
    rule = ReferenceRule.from_dict(RULE, filters=[sigma_filter([RULE["id"]])])
    assert rule.matches({"Image": r"C:\rar.exe", "User": "bob"})
    assert not rule.matches({"Image": r"C:\rar.exe", "User": "adm_bob"})


@pytest.mark.parametrize(
    ("rules", "logsource", "applies"),
    [
        (["6F3E2987-DB24-4C78-A860-B4F4095A7095"], None, True),
        (["Data Compressed - rar.exe"], None, True),
        ("any", None, True),
        ([], None, True),
        (["some-other-rule"], None, False),
        ([RULE["id"]], {"product": "windows"}, True),
        ([RULE["id"]], {"product": "linux"}, False),
        ([RULE["id"]], {"category": "process_creation", "service": "sysmon"}, False),
    ],
)
def test_filter_applies(rules: Any, logsource: Mapping[str, str] | None, applies: bool) -> None:
    assert filter_applies(sigma_filter(rules, logsource), RULE) is applies
    rule = ReferenceRule.from_dict(RULE, filters=[sigma_filter(rules, logsource)])
    assert rule.matches({"Image": r"C:\rar.exe", "User": "adm_x"}) is not applies


def test_filters_stack_and_have_their_own_names() -> None:
    second = {
        "title": "Filter temp",
        "filter": {"rules": "any", "sel": {"Image|startswith": "C:\\Temp\\"}, "condition": "not 1 of them"},
    }
    rule = ReferenceRule.from_dict(RULE, filters=[sigma_filter("any"), second])
    assert rule.matches({"Image": r"C:\rar.exe", "User": "bob"})
    assert not rule.matches({"Image": r"C:\Temp\rar.exe", "User": "bob"})
    assert not rule.matches({"Image": r"C:\rar.exe", "User": "adm_1"})


def test_filter_semantics_agree_with_pysigma(tmp_path: Any) -> None:
    """The same filter document gives the same verdicts in the reference and through pySigma."""
    import orjson

    from watchfloor.detect.sigma.engine import SigmaEngine
    from watchfloor.detect.sigma.loader import load_rules
    from watchfloor.normalize.logsources import default_logsource_map

    docs = [RULE, sigma_filter([RULE["id"]])]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    engine = SigmaEngine(load_rules([tmp_path], cache_dir=False), default_logsource_map())
    reference = ReferenceRule.from_dict(RULE, filters=[sigma_filter([RULE["id"]])])
    for user in ("bob", "adm_bob"):
        event = {
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "EventID": 1,
            "Image": r"C:\rar.exe",
            "User": user,
        }
        fast = bool(engine.evaluate(orjson.dumps(event))[1])
        assert fast == reference.matches(event), user


def test_filter_errors() -> None:
    with pytest.raises(RuleError, match="filter"):
        ReferenceRule.from_dict(sigma_filter("any"))
    bad = sigma_filter("any")
    bad["filter"]["condition"] = "nothing"
    with pytest.raises(RuleError, match="not defined"):
        ReferenceRule.from_dict(RULE, filters=[bad])


# --- rule errors -------------------------------------------------------------------------------------


def test_rule_errors_name_the_rule_and_the_item() -> None:
    with pytest.raises(RuleUnsupportedError, match=r"rule 00000000-.*'sel'.*unknown modifier 'nope'"):
        item("f|nope", "x")
    with pytest.raises(RuleUnsupportedError, match="correlation"):
        ReferenceRule.from_dict({"title": "c", "correlation": {"type": "event_count"}})
    with pytest.raises(RuleError, match="detection"):
        ReferenceRule.from_dict({"title": "no detection"})
    with pytest.raises(RuleError, match="missing condition"):
        make_rule({"sel": {"a": 1}})
    with pytest.raises(RuleError, match="condition must be"):
        make_rule({"sel": {"a": 1}, "condition": 5})
    with pytest.raises(RuleError, match="unsupported value type date"):
        item("f", yaml.safe_load("2024-01-01"))
    with pytest.raises(RuleError, match="scalars"):
        item("f", [["nested"]])
    with pytest.raises(RuleError, match="empty"):
        make_rule({"sel": {}, "condition": "sel"})
    with pytest.raises(RuleError, match="does not apply to null"):
        item("f|contains", None)
    with pytest.raises(RuleError, match="invalid number"):
        item("f", float("inf"))
    with pytest.raises(RuleError, match="a map"):
        ReferenceRule.from_dict([])  # type: ignore[arg-type]


def test_rule_attributes() -> None:
    rule = make_rule({"sel": {"a": 1}, "condition": "sel"})
    assert rule.id == "00000000-0000-0000-0000-000000000001"
    assert rule.title == "Test rule"
    assert "Test rule" in repr(rule)


# --- the SigmaHQ snapshot (../shared) ----------------------------------------------------------------


class _AnyPlaceholder(Mapping[str, list[str]]):
    """Every placeholder has one value."""

    def __getitem__(self, key: str) -> list[str]:
        return ["placeholder-value"]

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _documents(shared: Path) -> Iterator[tuple[Path, Any]]:
    for folder in sorted((shared / "sigma").glob("rules*")):
        for path in sorted(folder.rglob("*.yml")):
            for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if document is not None:
                    yield path, document


@pytest.mark.shared
def test_every_sigmahq_rule_loads(shared_dir: Path) -> None:
    counts: collections.Counter[str] = collections.Counter()
    unexpected: list[str] = []
    for path, document in _documents(shared_dir):
        try:
            ReferenceRule.from_dict(document)
            counts["loaded"] += 1
        except RuleError as error:
            counts[type(error).__name__] += 1
            # without tenant values only placeholder rules fail; with values they load
            if not isinstance(error, PlaceholderError) or not error.message:
                unexpected.append(f"{path}: {error}")
            ReferenceRule.from_dict(document, placeholders=_AnyPlaceholder())
    print(f"\nSigmaHQ rules: {dict(counts)}")
    assert unexpected == []
    assert counts["loaded"] > 3000


def _flatten_evtx_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """A test-local flattening of the `evtx` JSON shape: System attributes as Name_Attribute, EventData and
    UserData values by name with spaces stripped (spec "Field Usage")."""
    flat: dict[str, Any] = {}
    event = record["Event"]
    for section in ("System", "EventData", "UserData"):
        values = event.get(section)
        if not isinstance(values, Mapping):
            continue
        for key, value in values.items():
            if not isinstance(value, Mapping):
                flat[key.replace(" ", "")] = value
                continue
            for attribute, attribute_value in (value.get("#attributes") or {}).items():
                flat[f"{key}_{attribute}"] = attribute_value
            for inner, inner_value in value.items():
                if inner == "#attributes":
                    continue
                if isinstance(inner_value, Mapping):
                    flat.update({k.replace(" ", ""): v for k, v in inner_value.items()})
                else:
                    flat[inner.replace(" ", "")] = inner_value
    return flat


def _json_objects(text: str) -> Iterator[Any]:
    decoder = json.JSONDecoder()
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return
        value, position = decoder.raw_decode(text, position)
        yield value


@pytest.mark.shared
def test_sigmahq_regression_samples_match(shared_dir: Path) -> None:
    """Each positive regression sample of SigmaHQ matches its rule (Windows samples are Sysmon-shaped or
    use the rule's own field names, so a plain flattening is enough here)."""
    rules = {str(doc.get("id")): doc for _, doc in _documents(shared_dir) if isinstance(doc, dict)}
    checked, misses = 0, []
    for info_path in sorted((shared_dir / "sigma" / "regression_data").rglob("info.yml")):
        info = yaml.safe_load(info_path.read_text(encoding="utf-8"))
        rule = ReferenceRule.from_dict(rules[str(info["rule_metadata"][0]["id"])])
        for sample in sorted(info_path.parent.glob("*.json")):
            records = list(_json_objects(sample.read_text(encoding="utf-8")))
            checked += 1
            if not any(rule.matches(_flatten_evtx_json(record)) for record in records):
                misses.append(sample.relative_to(shared_dir).as_posix())
    print(f"\nregression samples: {checked} checked, {len(misses)} missed")
    assert checked > 150
    assert misses == []


# --- modifier outputs agree with pySigma 2.0.1 (tests only: the reference never imports pySigma) --------


def _pysigma_values(key: str, value: str) -> set[tuple[object, ...]]:
    from sigma.rule.detection import SigmaDetectionItem
    from sigma.types import SigmaExpansion, SigmaString, SpecialChars

    wildcards = {SpecialChars.WILDCARD_MULTI: STAR, SpecialChars.WILDCARD_SINGLE: ONE}
    out: set[tuple[object, ...]] = set()
    for result in SigmaDetectionItem.from_mapping(key, value).value:
        for single in result.values if isinstance(result, SigmaExpansion) else [result]:
            assert isinstance(single, SigmaString)
            out.add(tuple(wildcards.get(p, p) for p in single.s))  # type: ignore[call-overload]
    return out


def _reference_values(modifiers: list[str], value: str) -> set[tuple[object, ...]]:
    from watchfloor.detect.sigma.reference_values import Expansion, Text, apply_modifier, initial_value

    current = initial_value(value, regex=False, expand=False)
    applied: list[str] = []
    for modifier in modifiers:
        current = apply_modifier(modifier, current, applied, None)
        applied.append(modifier)
    singles = current.values if isinstance(current, Expansion) else (current,)
    assert all(isinstance(single, Text) for single in singles)
    return {single.parts for single in singles if isinstance(single, Text)}


WINDASH_VALUES = ["-a", "/a -b", "a-b", "--x", "*-x*", "x -y*z", "\u00e4-\u00f6", " -\u00c4", "-a -b /c"]
WINDASH_VALUES += ["a/-b", "-", "_-x", "?-x", "1-2"]
ENCODING_CHAINS = [["base64"], ["base64offset"], ["wide", "base64offset"], ["utf16", "base64"]]
ENCODING_CHAINS += [["utf16be", "base64offset"]]  # pySigma 2.0.1 does not know the spec's `utf16le`


@pytest.mark.parametrize("value", WINDASH_VALUES)
def test_windash_expansions_equal_pysigma(value: str) -> None:
    assert _reference_values(["windash"], value) == _pysigma_values("f|windash", value)


@pytest.mark.parametrize("modifiers", ENCODING_CHAINS)
@pytest.mark.parametrize("value", ["a", "ab", "abc", "cmd.exe /c", "http://", "\u00e9t\u00e9", ""])
def test_encodings_equal_pysigma(modifiers: list[str], value: str) -> None:
    key = "f|" + "|".join(modifiers)
    try:
        expected = _pysigma_values(key, value)
    except Exception:  # pySigma rejects some non-ASCII wide values; so must we
        with pytest.raises(RuleError):
            _reference_values(modifiers, value)
        return
    assert _reference_values(modifiers, value) == {tuple(p for p in parts if p != "") for parts in expected}


def test_aggregations_are_unsupported() -> None:
    with pytest.raises(RuleUnsupportedError, match="aggregation"):
        make_rule({"sel": {"a": 1}, "condition": "sel | count() > 5"})
