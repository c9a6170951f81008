"""Semantics of the compiled matchers, rule by rule, on small inline events (flat shape)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from sigma.collection import SigmaCollection
from sigma.rule import SigmaRule

from watchfloor.core.errors import PlaceholderError
from watchfloor.detect.sigma.compiler import RuleCompiler
from watchfloor.detect.sigma.prefilter import choose, literal_cost
from watchfloor.detect.sigma.values import EvalContext
from watchfloor.normalize.model import Binding

BINDING = Binding(product="windows", channel="microsoft-windows-sysmon/operational", event_ids=frozenset({1}))


def rule_from(detection: dict[str, Any]) -> SigmaRule:
    doc = {
        "title": "t",
        "id": "00000000-0000-0000-0000-000000000001",
        "logsource": {"product": "windows", "category": "process_creation"},
        "detection": detection,
    }
    collection = SigmaCollection.from_yaml(yaml.safe_dump(doc))
    rule = collection.rules[0]
    assert isinstance(rule, SigmaRule)
    return rule


def matches(detection: dict[str, Any], event: dict[str, Any], placeholders: Any = None) -> bool:
    compiled = RuleCompiler(BINDING, placeholders).compile_rule(rule_from(detection))
    doc = {"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, **event}
    return compiled.matcher(EvalContext(doc))


def sel(items: dict[str, Any], condition: str = "sel") -> dict[str, Any]:
    return {"sel": items, "condition": condition}


@pytest.mark.parametrize(
    ("items", "event", "expected"),
    [
        ({"Image": "C:\\Windows\\cmd.exe"}, {"Image": "c:\\windows\\CMD.EXE"}, True),
        ({"Image": "cmd.exe"}, {"Image": "c:\\windows\\cmd.exe"}, False),
        ({"Image|endswith": "\\cmd.exe"}, {"Image": "C:\\Windows\\System32\\CMD.exe"}, True),
        ({"Image|startswith": "C:\\Users\\"}, {"Image": "c:\\users\\bob\\a.exe"}, True),
        ({"CommandLine|contains": "-enc "}, {"CommandLine": "powershell -ENC abc"}, True),
        ({"CommandLine|contains|all": ["-nop", "-w hidden"]}, {"CommandLine": "x -nop -w hidden"}, True),
        ({"CommandLine|contains|all": ["-nop", "-w hidden"]}, {"CommandLine": "x -nop"}, False),
        ({"CommandLine|contains|cased": "Invoke-"}, {"CommandLine": "invoke-expression"}, False),
        ({"CommandLine|contains|cased": "Invoke-"}, {"CommandLine": "Invoke-Expression"}, True),
        ({"CommandLine|windash|contains|cased": "-Enc"}, {"CommandLine": "ps /enc x"}, False),
        ({"CommandLine|windash|contains|cased": "-Enc"}, {"CommandLine": "ps /Enc x"}, True),
        ({"Image": "*\\svc?ost.exe"}, {"Image": "C:\\w\\svchost.exe"}, True),
        ({"Image": "*\\svc?ost.exe"}, {"Image": "C:\\w\\svcost.exe"}, False),
        ({"CommandLine": "a\\*b"}, {"CommandLine": "a*b"}, True),
        ({"CommandLine": "a\\*b"}, {"CommandLine": "axxb"}, False),
        ({"CommandLine|contains": "line1*line2"}, {"CommandLine": "x line1\nmiddle\nline2 y"}, True),
    ],
)
def test_strings_wildcards_and_case(items: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert matches(sel(items), event) is expected


@pytest.mark.parametrize(
    ("items", "event", "expected"),
    [
        ({"EventID": 4688}, {"EventID": "4688"}, True),
        ({"EventID": "4688"}, {"EventID": 4688}, True),
        ({"EventID": 4688}, {"EventID": 4689}, False),
        ({"LogonType": 3}, {"LogonType": " 3 "}, True),
        ({"Count|gt": 5}, {"Count": "7"}, True),
        ({"Count|lte": 5}, {"Count": 5}, True),
        ({"Count|lt": 5}, {"Count": "abc"}, False),
        ({"Flag": True}, {"Flag": True}, True),
        ({"Flag": True}, {"Flag": "TRUE"}, True),
        ({"Flag": True}, {"Flag": False}, False),
    ],
)
def test_numbers_and_bools(items: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert matches(sel(items), event) is expected


@pytest.mark.parametrize(
    ("items", "event", "expected"),
    [
        ({"User": None}, {}, True),
        ({"User": None}, {"User": None}, True),
        ({"User": None}, {"User": ""}, False),
        ({"User": ""}, {"User": ""}, True),
        ({"User": ""}, {}, False),
        ({"User|exists": True}, {"User": "x"}, True),
        ({"User|exists": True}, {"User": None}, False),
        ({"User|exists": False}, {}, True),
        ({"processid": 4}, {"ProcessId": 4}, True),
    ],
)
def test_null_exists_empty_and_field_case(
    items: dict[str, Any], event: dict[str, Any], expected: bool
) -> None:
    assert matches(sel(items), event) is expected


@pytest.mark.parametrize(
    ("items", "event", "expected"),
    [
        ({"CommandLine|re": "^a.c$"}, {"CommandLine": "abc"}, True),
        ({"CommandLine|re": "^A.C$"}, {"CommandLine": "abc"}, False),
        ({"CommandLine|re|i": "^A.C$"}, {"CommandLine": "abc"}, True),
        ({"CommandLine|re|m": "^b$"}, {"CommandLine": "a\nb\nc"}, True),
        ({"CommandLine|re": "^b$"}, {"CommandLine": "a\nb\nc"}, False),
        ({"CommandLine|re|s": "a.c"}, {"CommandLine": "a\nc"}, True),
        ({"DestinationIp|cidr": "10.0.0.0/8"}, {"DestinationIp": "10.2.3.4"}, True),
        ({"DestinationIp|cidr": "10.0.0.0/8"}, {"DestinationIp": "11.2.3.4"}, False),
        ({"DestinationIp|cidr": "fe80::/10"}, {"DestinationIp": "fe80::1"}, True),
        ({"DestinationIp|cidr": "10.0.0.0/8"}, {"DestinationIp": "not an ip"}, False),
        ({"User|fieldref": "TargetUser"}, {"User": "Bob", "TargetUser": "bob"}, True),
        ({"User|fieldref": "TargetUser"}, {"User": "Bob", "TargetUser": "alice"}, False),
        ({"CommandLine|windash|contains": "-enc"}, {"CommandLine": "ps /enc x"}, True),
        ({"CommandLine|windash|contains": "-enc"}, {"CommandLine": "ps \u2013enc x"}, True),
        ({"CommandLine|base64offset|contains": "http://"}, {"CommandLine": "x aHR0cDovL y"}, True),
        ({"CommandLine|base64|contains": "abc"}, {"CommandLine": "xYWJjx"}, True),
        ({"CommandLine|wide|base64offset|contains": "ping"}, {"CommandLine": "cABpAG4AZwA"}, True),
        ({"UtcTime|hour": 3}, {"UtcTime": "2024-01-02 03:04:05.000"}, True),
        ({"UtcTime|minute": 4}, {"UtcTime": "2024-01-02T03:04:05Z"}, True),
        ({"UtcTime|month": 2}, {"UtcTime": "2024-01-02T03:04:05Z"}, False),
        ({"Tags|contains": "admin"}, {"Tags": ["user", "domain admins"]}, True),
        ({"Tags": "user"}, {"Tags": ["user", "x"]}, True),
    ],
)
def test_modifiers(items: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert matches(sel(items), event) is expected


def test_neq_negates_the_item() -> None:
    detection = {"sel": {"Image|endswith": "\\cmd.exe", "User|neq": "SYSTEM"}, "condition": "sel"}
    assert matches(detection, {"Image": "c:\\cmd.exe", "User": "bob"})
    assert not matches(detection, {"Image": "c:\\cmd.exe", "User": "system"})


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("a and b", False),
        ("a or b", True),
        ("a and not b", True),
        ("not (a and b)", True),
        ("1 of sel*", True),
        ("all of sel*", False),
        ("1 of them", True),
        ("all of them", False),
        ("a and (b or c)", True),
        ("not a or b", False),
    ],
)
def test_condition_grammar(condition: str, expected: bool) -> None:
    detection = {
        "a": {"Image|endswith": "a.exe"},
        "b": {"Image|endswith": "b.exe"},
        "c": {"User": "bob"},
        "sel_1": {"User": "bob"},
        "sel_2": {"User": "alice"},
        "condition": condition,
    }
    assert matches(detection, {"Image": "x\\a.exe", "User": "bob"}) is expected


def test_keywords_search_every_value() -> None:
    detection = {"keywords": ["mimikatz", "sekurlsa::"], "condition": "keywords"}
    assert matches(detection, {"CommandLine": "run SEKURLSA::logonpasswords"})
    assert matches(detection, {"Other": ["a", "Mimikatz.exe"]})
    assert not matches(detection, {"CommandLine": "notepad"})


def test_placeholders_take_tenant_values() -> None:
    detection = sel({"User|expand": "%admins%"})
    with pytest.raises(PlaceholderError):
        matches(detection, {"User": "x"})
    assert matches(detection, {"User": "ADMIN1"}, {"admins": ["admin1", "admin2"]})
    assert not matches(detection, {"User": "bob"}, {"admins": ["admin1", "admin2"]})
    assert matches(detection, {"User": "svc_backup"}, {"admins": ["svc_*"]})


def test_binding_field_map_and_conditions() -> None:
    binding = Binding(
        product="windows",
        channel="security",
        event_ids=frozenset({4688}),
        fields={"Image": ("NewProcessName",)},
        conditions={"Provider_Name": "Microsoft-Windows-Security-Auditing"},
    )
    rule = rule_from(sel({"Image|endswith": "\\cmd.exe"}))
    compiled = RuleCompiler(binding).compile_rule(rule)
    doc = {"Channel": "Security", "EventID": 4688, "NewProcessName": "C:\\cmd.exe"}
    assert not compiled.matcher(EvalContext(doc))
    doc["Provider_Name"] = "Microsoft-Windows-Security-Auditing"
    assert compiled.matcher(EvalContext(doc))


def test_gates_are_necessary_literals() -> None:
    rule = rule_from(
        {
            "sel": {"Image|endswith": ["\\a.exe", "\\bbb.exe"], "CommandLine|contains": "mimikatz"},
            "filter": {"User": "SYSTEM"},
            "condition": "sel and not filter",
        }
    )
    compiled = RuleCompiler(BINDING).compile_rule(rule)
    # AND of (the endswith list: OR) and (the contains): either is a valid gate; NOT adds none
    assert compiled.gate is not None
    assert compiled.gate[0] == "A"
    assert set(compiled.gate[1]) == {("O", (("L", "\\a.exe"), ("L", "\\bbb.exe"))), ("L", "mimikatz")}
    assert choose(compiled.gate, literal_cost)[0] == frozenset({"mimikatz"})


def test_event_ids_are_derived_for_routing() -> None:
    rule = rule_from(
        {
            "sel": {"EventID": [4624, 4625], "LogonType": 3},
            "other": {"EventID": "4625"},
            "condition": "sel and other",
        }
    )
    assert RuleCompiler(BINDING).compile_rule(rule).event_ids == frozenset({4625})
    rule = rule_from({"sel": {"EventID": 4624}, "other": {"User": "x"}, "condition": "sel or other"})
    assert RuleCompiler(BINDING).compile_rule(rule).event_ids is None
    rule = rule_from({"sel": {"EventID": 4624}, "condition": "not sel"})
    assert RuleCompiler(BINDING).compile_rule(rule).event_ids is None
