"""Conditions, suppressions from an alert in one step, and the shipped auto-close policies."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchfloor.core.errors import ConfigError
from watchfloor.core.types import RuleId, TenantId
from watchfloor.triage.alerts import open_alert
from watchfloor.triage.conditions import (
    ConditionError,
    active,
    auto_close_policy,
    check,
    load_autoclose,
    matches,
    suppressed_by,
    suppression_from_alert,
    values_of,
)
from watchfloor.triage.entities import entities_of
from watchfloor.triage.models import Alert, Condition, ConditionOp, DetectionInput, RiskScore

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CLINIC = TenantId("clinic")


def alert_for(event: dict[str, Any], *, rule: str = "r-1", tenant: str = "clinic") -> Alert:
    inp = DetectionInput(
        tenant_id=TenantId(tenant),
        detection_id=1,
        rule_id=RuleId(rule),
        rule_title="PowerShell Execution Policy Bypass",
        rule_level="medium",
        tags=("attack.execution", "attack.t1059.001"),
        event_time=T0,
        matched_at=T0,
        entities=entities_of(event),
        event=event,
    )
    return open_alert(inp, RiskScore(score=40), T0)


def holds(field: str, op: ConditionOp, value: str | tuple[str, ...], event: dict[str, Any]) -> bool:
    return matches([Condition(field=field, op=op, value=value)], alert_for(event), event)


# -- string semantics ------------------------------------------------------------------------------
@given(hay=st.text(max_size=30), needle=st.text(max_size=5))
def test_string_ops_agree_with_python_lowercase_ops(hay: str, needle: str) -> None:
    event = {"x": hay}
    if not needle:
        return  # an empty needle holds trivially for contains/startswith/endswith; nothing to compare
    assert holds("x", "contains", needle, event) == (needle.lower() in hay.lower())
    assert holds("x", "startswith", needle, event) == hay.lower().startswith(needle.lower())
    assert holds("x", "endswith", needle, event) == hay.lower().endswith(needle.lower())
    assert holds("x", "equals", needle, event) == (hay.lower() == needle.lower())


@given(hay=st.text(max_size=20), needles=st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=4))
def test_a_tuple_value_holds_when_any_item_does(hay: str, needles: list[str]) -> None:
    event = {"x": hay}
    expected = any(n.lower() in hay.lower() for n in needles)
    assert holds("x", "contains", tuple(needles), event) == expected
    assert holds("x", "in", tuple(needles), event) == any(n.lower() == hay.lower() for n in needles)


def test_regex_is_case_insensitive_re2_search() -> None:
    event = {"process": {"command_line": "PowerShell -EncodedCommand SQBFAFgA"}}
    assert holds("process.command_line", "regex", r"-enc(odedcommand)?\s+[a-z0-9+/=]{8}", event)
    assert not holds("process.command_line", "regex", r"^-enc", event)


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=admin)", r"(?<!x)y"])
def test_unsupported_regex_syntax_is_a_clear_error(pattern: str) -> None:
    with pytest.raises(ConditionError, match="not RE2 syntax") as caught:
        check([Condition(field="process.command_line", op="regex", value=pattern)])
    assert caught.value.code == "triage.condition_invalid"
    assert "process.command_line" in str(caught.value)


def test_cidr() -> None:
    event = {
        "source": {"ip": "10.1.2.3"},
        "client": {"ip": ["2001:db8::5", "bad"]},
        "mapped": "::ffff:10.9.9.9",
    }
    assert holds("source.ip", "cidr", "10.0.0.0/8", event)
    assert not holds("source.ip", "cidr", "192.168.0.0/16", event)
    assert holds("source.ip", "cidr", ("192.168.0.0/16", "10.1.2.0/24"), event)
    assert holds("client.ip", "cidr", "2001:db8::/32", event)
    assert not holds("client.ip", "cidr", "0.0.0.0/0", event)
    assert holds("mapped", "cidr", "10.0.0.0/8", event)
    with pytest.raises(ConditionError, match="not a network"):
        check([Condition(field="source.ip", op="cidr", value="10.0.0.0/33")])


@given(a=st.integers(0, 255), b=st.integers(0, 255), prefix=st.integers(8, 32))
def test_cidr_agrees_with_ipaddress(a: int, b: int, prefix: int) -> None:
    net = ipaddress.ip_network(f"10.{a}.0.0/{prefix}", strict=False)
    ip = f"10.{b}.{a}.1"
    assert holds("ip", "cidr", str(net), {"ip": ip}) == (ipaddress.ip_address(ip) in net)


# -- fields ----------------------------------------------------------------------------------------
def test_field_lookup_nested_flat_lists_and_mixed() -> None:
    event = {
        "process": {"parent": {"executable": "C:\\Windows\\explorer.exe"}, "pid": 42},
        "user.name": "jdoe",
        "properties": {"targetResources": [{"userPrincipalName": "a@x"}, {"userPrincipalName": "b@x"}]},
        "identity": {"claims.name": "admin@x"},
        "flag": True,
    }
    alert = alert_for(event)
    assert values_of(alert, event, "process.parent.executable") == ["C:\\Windows\\explorer.exe"]
    assert values_of(alert, event, "process.pid") == ["42"]
    assert values_of(alert, event, "user.name") == ["jdoe"]
    assert values_of(alert, event, "properties.targetResources.userPrincipalName") == ["a@x", "b@x"]
    assert values_of(alert, event, "identity.claims.name") == ["admin@x"]
    assert values_of(alert, event, "flag") == ["true"]
    assert values_of(alert, event, "process.missing") == []
    assert values_of(alert, event, "alert.rule_id") == ["r-1"]
    assert values_of(alert, event, "alert.severity") == ["medium"]
    assert values_of(alert, event, "alert.entity.user") == ["jdoe"]
    assert values_of(alert, event, "alert.techniques") == ["T1059.001"]


def test_a_missing_field_never_holds() -> None:
    for op in ("equals", "contains", "startswith", "endswith", "regex", "in", "cidr"):
        value = "10.0.0.0/8" if op == "cidr" else "x"
        assert not holds("nope.nothing", op, value, {"x": "x"})


def test_unknown_alert_fields_and_empty_values_are_errors() -> None:
    with pytest.raises(ConditionError, match="unknown alert field"):
        check([Condition(field="alert.password", op="equals", value="x")])
    with pytest.raises(ConditionError, match="no value"):
        check([Condition(field="x", op="in", value=())])


# -- suppressions ----------------------------------------------------------------------------------
EVENT = {
    "host": {"name": "WS-17"},
    "user": {"name": "svc-backup"},
    "process": {
        "command_line": "powershell -ep bypass -file backup.ps1",
        "executable": "C:\\x\\powershell.exe",
    },
}


def test_suppression_from_an_alert_in_one_step() -> None:
    alert = alert_for(EVENT)
    expires = T0 + timedelta(days=30)
    sup = suppression_from_alert(
        alert,
        EVENT,
        ["alert.entity.host", "process.command_line"],
        author="ana",
        reason="nightly backup script",
        expires_at=expires,
        now=T0,
    )
    assert sup.tenant_id == CLINIC
    assert sup.rule_id == "r-1"
    assert sup.conditions == (
        Condition(field="alert.entity.host", op="equals", value="ws-17"),
        Condition(field="process.command_line", op="equals", value="powershell -ep bypass -file backup.ps1"),
    )
    assert (sup.author, sup.reason, sup.created_at, sup.expires_at) == (
        "ana",
        "nightly backup script",
        T0,
        expires,
    )
    assert sup.id.startswith("sup-")
    assert suppressed_by([sup], alert, EVENT, T0 + timedelta(days=1)) == sup
    other_host = {**EVENT, "host": {"name": "ws-18"}}
    assert suppressed_by([sup], alert_for(other_host), other_host, T0) is None
    assert suppressed_by([sup], alert_for(EVENT, rule="r-2"), EVENT, T0) is None  # scoped to the rule
    assert suppressed_by([sup], alert_for(EVENT, tenant="bakery"), EVENT, T0) is None  # and the tenant
    assert suppressed_by([sup], alert, EVENT, expires) is None  # expired


def test_suppression_without_rule_scope_and_with_list_fields() -> None:
    event = {**EVENT, "event": {"category": ["process", "network"]}}
    alert = alert_for(event)
    sup = suppression_from_alert(
        alert, event, ["event.category"], author="ana", reason="r", expires_at=None, now=T0, scope_rule=False
    )
    assert sup.rule_id is None
    assert sup.conditions == (Condition(field="event.category", op="in", value=("process", "network")),)
    assert suppressed_by([sup], alert_for(event, rule="r-9"), event, T0) == sup


@pytest.mark.parametrize(
    ("fields", "kwargs", "message"),
    [
        (["nope"], {}, "has no value"),
        ([], {"scope_rule": False}, "at least one field"),
        (["user.name"], {"author": " "}, "author"),
        (["user.name"], {"reason": ""}, "reason"),
        (["user.name"], {"expires_at": T0}, "not after now"),
    ],
)
def test_suppression_from_alert_refuses_bad_requests(
    fields: list[str], kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"author": "ana", "reason": "r", "expires_at": None, "now": T0, **kwargs}
    with pytest.raises(ConditionError, match=message) as caught:
        suppression_from_alert(alert_for(EVENT), EVENT, fields, **args)
    assert caught.value.code == "triage.condition_invalid"


def test_active_respects_enabled_and_expiry() -> None:
    sup = suppression_from_alert(
        alert_for(EVENT),
        EVENT,
        ["user.name"],
        author="a",
        reason="r",
        expires_at=T0 + timedelta(hours=1),
        now=T0,
    )
    assert active(sup, T0)
    assert not active(sup, T0 + timedelta(hours=1))
    assert not active(replace(sup, enabled=False), T0)
    assert active(replace(sup, expires_at=None), T0 + timedelta(days=9999))


# -- auto-close content ----------------------------------------------------------------------------
def proc(parent: str, exe: str, cmd: str = "") -> dict[str, Any]:
    return {
        "host": {"name": "ws-1"},
        "process": {"executable": exe, "command_line": cmd, "parent": {"executable": parent}},
    }


DEFENDER = r"C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.24090.11-0"
BENIGN = {
    "defender-scan-engine": proc(
        f"{DEFENDER}\\MsMpEng.exe", f"{DEFENDER}\\MpCmdRun.exe", "MpCmdRun.exe -Scan"
    ),
    "windows-servicing": proc(
        r"C:\Windows\WinSxS\amd64_microsoft-windows-servicingstack_31bf3856ad364e35_10.0.19041.3990_none\TiWorker.exe",
        r"C:\Windows\System32\cmd.exe",
        "cmd /c pnputil /add-driver x.inf",
    ),
    "defender-definition-update-package": proc(
        r"C:\Windows\System32\wuauclt.exe",
        r"C:\Windows\SoftwareDistribution\Download\Install\AM_Delta_Patch_1.421.1573.0.exe",
    ),
    "configmgr-client-scripts": proc(
        r"C:\Windows\CCM\CcmExec.exe",
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        r"powershell.exe -NoLogo -ExecutionPolicy Bypass -File C:\WINDOWS\CCM\SystemTemp\3f1c.ps1",
    ),
    "intune-management-extension-scripts": proc(
        r"C:\Program Files (x86)\Microsoft Intune Management Extension\AgentExecutor.exe",
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        r'powershell -executionPolicy bypass -file "C:\Program Files (x86)\Microsoft Intune Management '
        r'Extension\Policies\Scripts\00000000_1.ps1"',
    ),
}
LOOKALIKES = {
    "defender-scan-engine": proc(
        r"C:\Windows\System32\cmd.exe",
        f"{DEFENDER}\\MpCmdRun.exe",
        "MpCmdRun.exe -DownloadFile -url http://x",
    ),
    "windows-servicing": proc(r"C:\Users\Public\TiWorker.exe", r"C:\Windows\System32\cmd.exe"),
    "defender-definition-update-package": proc(
        r"C:\Windows\System32\cmd.exe", r"C:\Users\jdoe\Downloads\AM_Delta_Patch_1.421.1573.0.exe"
    ),
    "configmgr-client-scripts": proc(
        r"C:\Windows\CCM\CcmExec.exe",
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        r"powershell.exe -ep bypass -File C:\Users\Public\stage.ps1",
    ),
    "intune-management-extension-scripts": proc(
        r"C:\Users\jdoe\AppData\Local\Temp\AgentExecutor.exe",
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        r"powershell -ep bypass -file C:\Windows\IMECache\x.ps1",
    ),
}


def test_shipped_autoclose_policies_load() -> None:
    policies = load_autoclose()
    assert 3 <= len(policies) <= 5
    assert {p.name for p in policies} == set(BENIGN)
    for policy in policies:
        assert policy.reason
        assert policy.tenant_id is None
        assert len(policy.conditions) >= 2  # a binary path alone is what attackers copy


@pytest.mark.parametrize("name", sorted(BENIGN))
def test_each_policy_closes_its_benign_pattern_and_not_a_lookalike(name: str) -> None:
    policies = load_autoclose()
    benign, lookalike = BENIGN[name], LOOKALIKES[name]
    found = auto_close_policy(policies, alert_for(benign), benign)
    assert found is not None
    assert found.name == name
    assert auto_close_policy(policies, alert_for(lookalike), lookalike) is None


def test_events_without_process_ancestry_are_never_auto_closed() -> None:
    event = {"user": {"name": "jdoe"}, "source": {"ip": "10.0.0.1"}}
    assert auto_close_policy(load_autoclose(), alert_for(event), event) is None


POLICY_A = "policies:\n  - name: a\n    reason: r\n    conditions:\n"
CONDITION = "      - {field: x, op: equals, value: y}\n"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("policies: []\n", "policies: expected a non-empty list"),
        ("what: 1\npolicies: []\n", "what: unknown key"),
        ("policies:\n  - name: a\n    reason: r\n    conditions: []\n", "policies[0].conditions: expected"),
        (
            POLICY_A + "      - {field: x, op: like, value: y}\n",
            "policies[0].conditions[0].op: unknown op 'like'",
        ),
        (
            POLICY_A + "      - {field: x, op: regex, value: '(?=a)'}\n",
            "policies[0].conditions[0]: condition x regex",
        ),
        (POLICY_A + CONDITION + POLICY_A[9:] + CONDITION, "policies[1].name: duplicate"),
        ("policies:\n  - name: a\n    conditions:\n      - {field: x, op: equals, value: y}\n", "reason"),
        ("policies:\n  - name: a\n    reason: r\n    tenant: t\n", "policies[0].tenant: unknown key"),
        ("policies: [\n", "not valid YAML"),
    ],
)
def test_invalid_autoclose_files_name_file_and_key(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "autoclose.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_autoclose(path)
    message = str(caught.value)
    assert str(path) in message
    assert where in message
    assert caught.value.code == "triage.autoclose_invalid"


def test_error_lines_point_at_the_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "autoclose.yml"
    path.write_text(
        "policies:\n  - name: a\n    reason: r\n    conditions:\n      - {field: x, op: like, value: y}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_autoclose(path)
    assert caught.value.location is not None
    assert caught.value.location.line == 5


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_autoclose(tmp_path / "nope.yml")
