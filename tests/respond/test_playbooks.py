"""The playbook format: loading, every validation error (file:line and key), templates, conditions, the run
context and branch gating."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchfloor.cases.models import Incident
from watchfloor.core.types import RuleId, TenantId
from watchfloor.respond.actions import ActionManifest, ActionResult, InputSpec
from watchfloor.respond.playbook_schema import Tactic
from watchfloor.respond.playbooks import (
    ActionStep,
    AllOf,
    AnyOf,
    ApprovalStep,
    BranchStep,
    Check,
    Not,
    Playbook,
    PlaybookError,
    PlaybookRuntimeError,
    Reference,
    Template,
    WaitStep,
    check_playbook,
    evaluate,
    incident_context,
    load_playbook,
    load_playbooks,
    parse_playbook,
    playbook_json_schema,
    render,
    resolve_inputs,
    run_context,
    step_record,
)
from watchfloor.triage.entities import TACTICS
from watchfloor.triage.models import Alert, Entity, RiskScore

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
CLINIC = TenantId("clinic")

BASE = """\
id: test-playbook
name: Test playbook
version: 1
description: A playbook for tests.
author: Watchfloor project
trigger:
  severity_at_least: high
  techniques: [T1059]
steps:
  - id: lookup
    kind: enrich
    action: msgraph.get_user
    with:
      user: "{{ incident.entities.user[0] }}"
  - id: approve
    kind: approval
    who: {roles: [analyst]}
    timeout_minutes: 15
  - id: which
    kind: branch
    if: {ref: tenant.edr, equals: falcon}
    then: [contain_falcon]
    else: [isolate]
  - id: isolate
    kind: contain
    action: mde.isolate_machine
    with:
      host: "{{ incident.entities.host[0] }}"
      comment: "for {{ steps.lookup.output.user_id }}"
  - id: contain_falcon
    kind: contain
    action: falcon.contain_host
    with:
      host: "{{ incident.entities.host[0] }}"
  - id: settle
    kind: wait
    minutes: 5
"""
SETTLE = "  - id: settle\n    kind: wait\n    minutes: 5\n"


def _manifest(action_id: str, *inputs: str, **kw: Any) -> ActionManifest:
    specs = tuple(InputSpec(name=n.rstrip("?"), required=not n.endswith("?")) for n in inputs)
    return ActionManifest(
        id=action_id,
        title=action_id,
        connector=action_id.split(".", maxsplit=1)[0],
        description=action_id,
        inputs=specs,
        **kw,
    )


MANIFESTS: dict[str, ActionManifest] = {
    m.id: m
    for m in (
        _manifest("msgraph.get_user", "user", approval="never"),
        _manifest(
            "mde.isolate_machine",
            "host",
            "comment",
            "isolation_type?",
            risk="containment",
            reversible=True,
            reverse_action="mde.release_machine",
        ),
        _manifest("falcon.contain_host", "host", risk="containment", approval="always"),
    )
}


def incident(**kw: Any) -> Incident:
    base: dict[str, Any] = {
        "id": "inc-1",
        "tenant_id": CLINIC,
        "title": "Encoded PowerShell",
        "state": "new",
        "severity": "high",
        "risk": RiskScore(score=70),
        "created_at": T0,
        "updated_at": T0,
        "first_event_at": T0,
        "alert_ids": ("al-1",),
        "entities": (Entity("host", "ws-17"), Entity("user", "dana"), Entity("ip", "203.0.113.7")),
        "techniques": ("T1059.001",),
        "tactics": ("execution",),
    }
    return Incident(**{**base, **kw})


def alert(**kw: Any) -> Alert:
    base: dict[str, Any] = {
        "id": "al-1",
        "tenant_id": CLINIC,
        "dedup_key": "k",
        "rule_id": RuleId("rule-1"),
        "rule_title": "r",
        "rule_author": "a",
        "severity": "high",
        "first_seen": T0,
        "last_seen": T0,
        "count": 1,
        "entities": (Entity("hash", "abc"),),
        "techniques": ("T1566.001",),
        "tactics": ("initial-access",),
        "detection_ids": (1,),
        "risk": RiskScore(score=70),
    }
    return Alert(**{**base, **kw})


def mutate(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def line_with(text: str, anchor: str) -> int:
    """The line where `anchor` starts (the first one holding it)."""
    return text[: text.index(anchor)].count("\n") + 1


# -- loading -------------------------------------------------------------------------------------------------
def test_base_loads_into_the_frozen_model() -> None:
    playbook = parse_playbook(BASE, path="base.yml")
    assert playbook.id == "test-playbook"
    assert playbook.source.path == "base.yml"
    assert playbook.source.line == 1
    assert [s.id for s in playbook.steps] == [
        "lookup",
        "approve",
        "which",
        "isolate",
        "contain_falcon",
        "settle",
    ]
    lookup, approve, which, isolate, _falcon, settle = playbook.steps
    assert isinstance(lookup, ActionStep)
    assert lookup.kind == "enrich"
    assert lookup.line == 10
    assert lookup.inputs["user"] == "{{ incident.entities.user[0] }}"
    assert isinstance(approve, ApprovalStep)
    assert approve.on_timeout == "fail_closed"
    assert approve.roles == ("analyst",)
    assert isinstance(which, BranchStep)
    assert which.then == ("contain_falcon",)
    assert which.else_ == ("isolate",)
    assert isinstance(which.condition, Check)
    assert isinstance(isolate, ActionStep)
    assert isolate.on_error == "stop"
    assert not isolate.rollback_on_failure
    assert isinstance(settle, WaitStep)
    assert settle.minutes == 5
    assert playbook.trigger.techniques == ("T1059",)
    with pytest.raises(AttributeError):
        playbook.id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        lookup.inputs["user"] = "x"  # type: ignore[index]
    assert parse_playbook(BASE, path="elsewhere.yml") == playbook  # provenance is not compared


def test_base_loads_with_manifests() -> None:
    text = mutate(SETTLE, "")
    assert parse_playbook(text, known_actions=MANIFESTS).id == "test-playbook"


def test_load_playbooks_reports_bad_files_and_duplicate_ids(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(BASE, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(BASE.replace("name: Test playbook", "name: Copy"), encoding="utf-8")
    (tmp_path / "c.yml").write_text(BASE.replace("id: test-playbook", "id: other"), encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.yml").write_text("id: [unclosed\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a playbook", encoding="utf-8")
    found = load_playbooks(tmp_path)
    assert [p.id for p in found.playbooks] == ["test-playbook", "other"]
    assert found.get("other").source.path == str(tmp_path / "c.yml")
    messages = [str(e) for e in found.errors]
    assert len(messages) == 2
    assert messages[0].startswith(f"{tmp_path / 'b.yaml'}:1: ")
    assert "already used by" in messages[0]
    assert messages[1].startswith(f"{tmp_path / 'sub' / 'd.yml'}:")
    assert "invalid YAML" in messages[1]
    with pytest.raises(KeyError):
        found.get("nope")


def test_load_playbook_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text(BASE, encoding="utf-8")
    assert load_playbook(path).source.path == str(path)
    with pytest.raises(PlaybookError, match="cannot read"):
        load_playbook(tmp_path / "missing.yml")
    path.write_text(mutate("version: 1", "version: 0"), encoding="utf-8")
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    assert str(caught.value).startswith(f"{path}:3: [playbook.invalid] version:")


@pytest.mark.parametrize(("text", "what"), [("", "empty"), ("- a\n- b\n", "a list"), ("just text", "a str")])
def test_a_file_that_is_not_a_mapping(text: str, what: str) -> None:
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(text, path="x.yml")
    assert str(caught.value).startswith("x.yml:1: ")
    assert what in str(caught.value)


def test_yaml_syntax_error_has_its_line() -> None:
    text = mutate("  techniques: [T1059]", "  techniques: [T1059\n  other: 1")
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(text, path="x.yml")
    assert caught.value.location is not None
    assert caught.value.location.line is not None
    assert caught.value.location.line >= 8
    assert "invalid YAML" in str(caught.value)


def test_aliases_are_refused() -> None:
    text = mutate("techniques: [T1059]", "techniques: &t [T1059]\n  all_techniques: *t")
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(text, path="x.yml")
    assert str(caught.value).startswith(f"x.yml:{line_with(text, '*t')}: ")
    assert "aliases (*name) are not allowed" in str(caught.value)


def test_all_problems_are_reported_in_line_order() -> None:
    text = mutate('"for {{ steps.lookup.output.user_id }}"', '"{{ nope.x }}"').replace(
        "{{ incident.entities.user[0] }}", "{{ incident.entitys.user[0] }}", 1
    )
    playbook, errors = check_playbook(text, path="x.yml")
    assert playbook is None
    lines = [e.location.line for e in errors if e.location]
    assert lines == sorted(lines)
    assert len(errors) == 2


# -- every validation error: file:line, the key, and what is wrong -------------------------------------------
BRANCH_SETTLE = "  - id: settle\n    kind: branch\n    if: {ref: tenant.x, exists: true}\n"
CASES: list[tuple[str, str, str, str, str, str]] = [
    # (case, old, new, key, anchor of the reported line, fragment of the message)
    ("unknown field", "version: 1", "version: 1\nvesion: 2", "vesion:", "vesion", "did you mean 'version'"),
    ("missing field", "name: Test playbook\n", "", "name:", "id: test-playbook", "required"),
    ("duplicate yaml key", "version: 1", "version: 1\nversion: 2", "version:", "version: 2", "duplicate key"),
    ("bad version type", "version: 1", 'version: "1"', "version:", "version", "valid integer"),
    ("bad playbook id", "id: test-playbook", "id: Test_Playbook", "id:", "id: Test_", "lower-case"),
    (
        "bad severity",
        "severity_at_least: high",
        "severity_at_least: urgent",
        "trigger.severity_at_least:",
        "urgent",
        "'critical'",
    ),
    (
        "bad technique",
        "techniques: [T1059]",
        "techniques: [T1059.1]",
        "trigger.techniques[0]:",
        "T1059.1",
        "T1059.001",
    ),
    (
        "bad tactic",
        "techniques: [T1059]",
        "techniques: [T1059]\n  tactics: [executon]",
        "trigger.tactics[0]:",
        "executon",
        "'execution'",
    ),
    (
        "trigger without conditions",
        "  severity_at_least: high\n  techniques: [T1059]\n",
        "  tiers: [premium]\n",
        "trigger:",
        "trigger:",
        "at least one of",
    ),
    (
        "tenant included and excluded",
        "techniques: [T1059]",
        "techniques: [T1059]\n  tenants: {include: [clinic], exclude: [clinic]}",
        "trigger.tenants.exclude:",
        "tenants:",
        "both included and excluded",
    ),
    ("no steps", BASE[BASE.index("steps:") :], "steps: []\n", "steps:", "steps:", "at least 1"),
    (
        "unknown step kind",
        "    kind: enrich",
        "    kind: enrichment",
        "steps[0]:",
        "id: lookup",
        "unknown step kind 'enrichment'",
    ),
    ("step without kind", "    kind: enrich\n", "", "steps[0]:", "id: lookup", "needs a `kind`"),
    (
        "bad action id",
        "action: msgraph.get_user",
        "action: msgraph",
        "steps[0].action:",
        "action: msgraph",
        "'<connector>.<verb>'",
    ),
    ("bad step id", "  - id: settle", "  - id: settle-down", "steps[5].id:", "settle-down", "lower-case"),
    (
        "bad on_error",
        "    minutes: 5",
        "    minutes: 5\n    on_error: retry",
        "steps[5].on_error:",
        "retry",
        "'stop' or 'continue'",
    ),
    (
        "rollback on a wait",
        "    minutes: 5",
        "    minutes: 5\n    rollback_on_failure: true",
        "steps[5].rollback_on_failure:",
        "rollback_on_failure",
        "unknown field",
    ),
    (
        "duplicate step id",
        "  - id: approve",
        "  - id: lookup",
        "steps[1].id:",
        "  - id: lookup\n    kind: appr",
        "duplicate step id 'lookup'",
    ),
    (
        "a date in with",
        'comment: "for {{ steps.lookup.output.user_id }}"',
        "comment: 2026-12-04",
        "steps[3].with.comment:",
        "2026-12-04",
        "date",
    ),
    # templates and references
    (
        "unknown root",
        "{{ steps.lookup.output.user_id }}",
        "{{ user.name }}",
        "steps[3].with.comment:",
        "user.name",
        "starts with incident, tenant, steps",
    ),
    (
        "unknown incident field",
        "{{ incident.entities.user[0] }}",
        "{{ incident.entitys.user[0] }}",
        "steps[0].with.user:",
        "entitys",
        "did you mean 'entities'",
    ),
    (
        "unknown entity kind",
        "{{ incident.entities.user[0] }}",
        "{{ incident.entities.person[0] }}",
        "steps[0].with.user:",
        "person",
        "incident.entities.<kind>",
    ),
    (
        "below a single value",
        "{{ incident.entities.user[0] }}",
        "{{ incident.severity.rank }}",
        "steps[0].with.user:",
        "severity.rank",
        "single value",
    ),
    (
        "two indexes",
        "{{ incident.entities.user[0] }}",
        "{{ incident.techniques[0][1] }}",
        "steps[0].with.user:",
        "techniques[0][1]",
        "one [index]",
    ),
    (
        "tenant root alone",
        "{{ incident.entities.user[0] }}",
        "{{ tenant }}",
        "steps[0].with.user:",
        "{{ tenant }}",
        "tenant.<name>",
    ),
    (
        "later step",
        "{{ incident.entities.user[0] }}",
        "{{ steps.isolate.status }}",
        "steps[0].with.user:",
        "steps.isolate",
        "'isolate' does not run before this one",
    ),
    (
        "own step",
        "{{ steps.lookup.output.user_id }}",
        "{{ steps.isolate.output.x }}",
        "steps[3].with.comment:",
        "steps.isolate",
        "does not run before",
    ),
    (
        "unknown step",
        "{{ steps.lookup.output.user_id }}",
        "{{ steps.lokup.output.user_id }}",
        "steps[3].with.comment:",
        "lokup",
        "unknown step 'lokup' (did you mean 'lookup'?)",
    ),
    (
        "unknown step field",
        "{{ steps.lookup.output.user_id }}",
        "{{ steps.lookup.outputs.user_id }}",
        "steps[3].with.comment:",
        "outputs",
        "output, summary",
    ),
    (
        "approval has no output",
        "{{ steps.lookup.output.user_id }}",
        "{{ steps.approve.output.x }}",
        "steps[3].with.comment:",
        "steps.approve",
        "status, decided_by",
    ),
    (
        "unclosed template",
        '"for {{ steps.lookup.output.user_id }}"',
        '"for {{ steps.lookup.output.user_id"',
        "steps[3].with.comment:",
        "comment:",
        "unclosed",
    ),
    (
        "expression in a template",
        '"for {{ steps.lookup.output.user_id }}"',
        '"{{ 1 + 1 }}"',
        "steps[3].with.comment:",
        "1 + 1",
        "not a reference",
    ),
    (
        "template in a list",
        'comment: "for {{ steps.lookup.output.user_id }}"',
        'comment: ["ok", "{{ nope }}"]',
        "steps[3].with.comment[1]:",
        "nope",
        "starts with",
    ),
    # approvals
    ("approval asks nobody", "who: {roles: [analyst]}", "who: {}", "steps[1].who:", "who:", "at least one"),
    (
        "unknown approver role",
        "roles: [analyst]",
        "roles: [janitor]",
        "steps[1].who.roles[0]:",
        "janitor",
        "'analyst'",
    ),
    (
        "approval timeout range",
        "timeout_minutes: 15",
        "timeout_minutes: 0",
        "steps[1].timeout_minutes:",
        "timeout_minutes: 0",
        "greater than or equal to 1",
    ),
    (
        "proceed before containment",
        "timeout_minutes: 15",
        "timeout_minutes: 15\n    on_timeout: proceed",
        "steps[1].on_timeout:",
        "on_timeout: proceed",
        "must be fail_closed: containment step 'isolate'",
    ),
    (
        "bad approval message",
        "timeout_minutes: 15",
        'timeout_minutes: 15\n    message: "{{ steps.x.status }}"',
        "steps[1].message:",
        "message:",
        "unknown step 'x'",
    ),
    # branches
    (
        "unknown branch target",
        "then: [contain_falcon]",
        "then: [contain_falcn]",
        "steps[2].then[0]:",
        "contain_falcn",
        "did you mean 'contain_falcon'",
    ),
    (
        "target before the branch",
        SETTLE,
        BRANCH_SETTLE + "    then: [lookup]\n",
        "steps[5].then[0]:",
        "then: [lookup]",
        "'lookup' comes before branch 'settle'",
    ),
    (
        "step gated twice",
        SETTLE,
        BRANCH_SETTLE + "    then: [isolate]\n",
        "steps[5].then[0]:",
        "then: [isolate]",
        "already follows branch 'which'",
    ),
    (
        "branch gates itself",
        SETTLE,
        BRANCH_SETTLE + "    then: [settle]\n",
        "steps[5].then[0]:",
        "then: [settle]",
        "cannot gate itself",
    ),
    ("branch gates nothing", SETTLE, BRANCH_SETTLE, "steps[5]:", "id: settle", "needs steps in then or else"),
    # conditions
    (
        "two tests",
        "{ref: tenant.edr, equals: falcon}",
        "{ref: tenant.edr, equals: falcon, exists: true}",
        "steps[2].if:",
        "if:",
        "exactly one test",
    ),
    (
        "no ref",
        "{ref: tenant.edr, equals: falcon}",
        "{equals: falcon}",
        "steps[2].if:",
        "if:",
        "a condition is one of",
    ),
    (
        "ref and all",
        "{ref: tenant.edr, equals: falcon}",
        "{ref: tenant.edr, all: []}",
        "steps[2].if:",
        "if:",
        "a condition is one of",
    ),
    (
        "all with a test",
        "{ref: tenant.edr, equals: falcon}",
        "{all: [{ref: tenant.edr, exists: true}], equals: 1}",
        "steps[2].if:",
        "if:",
        "all takes conditions only",
    ),
    (
        "empty all",
        "{ref: tenant.edr, equals: falcon}",
        "{all: []}",
        "steps[2].if.all:",
        "if:",
        "at least one condition",
    ),
    (
        "bad nested ref",
        "{ref: tenant.edr, equals: falcon}",
        "{not: {any: [{ref: incident.nope, exists: true}]}}",
        "steps[2].if.not.any[0].ref:",
        "if:",
        "unknown incident field 'nope'",
    ),
    (
        "bad ref syntax",
        "{ref: tenant.edr, equals: falcon}",
        "{ref: 'tenant.edr[x]', equals: falcon}",
        "steps[2].if.ref:",
        "if:",
        "not a reference",
    ),
    (
        "unknown severity",
        "{ref: tenant.edr, equals: falcon}",
        "{ref: incident.severity, gte: severe}",
        "steps[2].if.gte:",
        "if:",
        "incident.severity is one of low",
    ),
    (
        "state has no order",
        "{ref: tenant.edr, equals: falcon}",
        "{ref: incident.state, gte: new}",
        "steps[2].if.gte:",
        "if:",
        "has no order",
    ),
    (
        "unknown state",
        "{ref: tenant.edr, equals: falcon}",
        "{ref: incident.state, in: [new, open]}",
        "steps[2].if.in:",
        "if:",
        "got 'open'",
    ),
    (
        "gte on text",
        "{ref: tenant.edr, equals: falcon}",
        "{ref: tenant.size, gte: big}",
        "steps[2].if.gte:",
        "if:",
        "gte compares numbers",
    ),
    (
        "gte with null",
        "{ref: tenant.edr, equals: falcon}",
        "{ref: tenant.size, gte: null}",
        "steps[2].if.gte:",
        "if:",
        "gte needs a value",
    ),
    (
        "in with text",
        "{ref: tenant.edr, equals: falcon}",
        "{ref: tenant.edr, in: falcon}",
        "steps[2].if.in:",
        "if:",
        "valid list",
    ),
    (
        "exists with default",
        "{ref: tenant.edr, equals: falcon}",
        "{ref: tenant.edr, exists: true, default: 1}",
        "steps[2].if.default:",
        "if:",
        "exists needs no default",
    ),
    (
        "unknown condition key",
        "{ref: tenant.edr, equals: falcon}",
        "{ref: tenant.edr, equal: falcon}",
        "steps[2].if.equal:",
        "if:",
        "did you mean 'equals'",
    ),
    # waits
    (
        "wait for nothing",
        "    minutes: 5\n",
        "    description: nothing\n",
        "steps[5]:",
        "id: settle",
        "either minutes or until",
    ),
    (
        "wait for both",
        "    minutes: 5",
        "    minutes: 5\n    until: {ref: incident.state, equals: contained}",
        "steps[5]:",
        "id: settle",
        "either minutes or until",
    ),
    (
        "endless wait",
        "    minutes: 5",
        "    until: {ref: incident.state, equals: contained}",
        "steps[5].timeout_minutes:",
        "id: settle",
        "required with until",
    ),
    (
        "timeout on a timed wait",
        "    minutes: 5",
        "    minutes: 5\n    timeout_minutes: 9",
        "steps[5].timeout_minutes:",
        "timeout_minutes: 9",
        "only with until",
    ),
    (
        "wait until a later step",
        "    minutes: 5",
        "    until: {ref: steps.settle.status, equals: done}\n    timeout_minutes: 9",
        "steps[5].until.ref:",
        "until:",
        "does not run before",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "key", "anchor", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_validation_error_says_where(old: str, new: str, key: str, anchor: str, fragment: str) -> None:
    text = mutate(old, new)
    playbook, errors = check_playbook(text, path="content/playbooks/x.yml")
    assert playbook is None
    wanted = [str(e) for e in errors if f"] {key}" in str(e)]
    assert wanted, [str(e) for e in errors]
    first_line = line_with(text, anchor)
    assert any(f"content/playbooks/x.yml:{first_line}: [playbook.invalid] {key}" in m for m in wanted), wanted
    assert any(fragment in m for m in wanted), wanted
    with pytest.raises(PlaybookError):
        parse_playbook(text)


def test_branch_cycle() -> None:
    text = BASE.replace(SETTLE, "") + (
        "  - id: a\n    kind: branch\n    if: {ref: tenant.x, exists: true}\n    then: [b]\n"
        "  - id: b\n    kind: branch\n    if: {ref: tenant.x, exists: true}\n    then: [c]\n"
        "  - id: c\n    kind: branch\n    if: {ref: tenant.x, exists: true}\n    then: [a]\n"
    )
    playbook, errors = check_playbook(text, path="x.yml")
    assert playbook is None
    wanted = "branch targets form a cycle: a -> b -> c -> a"
    line = line_with(text, "then: [b]")
    assert [str(e) for e in errors] == [f"x.yml:{line}: [playbook.invalid] steps[5].then[0]: {wanted}"]


MANIFEST_CASES: list[tuple[str, str, str, str, str, str]] = [
    (
        "unknown action",
        "action: falcon.contain_host",
        "action: falcon.contain_hots",
        "steps[4].action:",
        "contain_hots",
        "did you mean 'falcon.contain_host'",
    ),
    (
        "missing input",
        '      comment: "for {{ steps.lookup.output.user_id }}"\n',
        "",
        "steps[3].with:",
        '    with:\n      host: "{{ incident.entities.host[0] }}"\n  - id: contain_falcon',
        "needs the inputs comment (inputs: host, comment, isolation_type?)",
    ),
    (
        "unknown input",
        '      comment: "for',
        '      colour: red\n      comment: "for',
        "steps[3].with.colour:",
        "colour",
        "has no input 'colour'",
    ),
    (
        "containment under another kind",
        "    kind: contain\n    action: mde",
        "    kind: ticket\n    action: mde",
        "steps[3].kind:",
        "kind: ticket",
        "containment action: its kind is contain",
    ),
    (
        "rollback of an irreversible action",
        "    action: falcon.contain_host",
        "    action: falcon.contain_host\n    rollback_on_failure: true",
        "steps[4].rollback_on_failure:",
        "rollback_on_failure",
        "not reversible",
    ),
    (
        "always-approved action without approval",
        "  - id: approve\n    kind: approval\n    who: {roles: [analyst]}\n    timeout_minutes: 15\n",
        "",
        "steps[3].action:",
        "action: falcon",
        "always needs approval",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "key", "anchor", "fragment"),
    [c[1:] for c in MANIFEST_CASES],
    ids=[c[0] for c in MANIFEST_CASES],
)
def test_manifest_error_says_where(old: str, new: str, key: str, anchor: str, fragment: str) -> None:
    text = mutate(old, new).replace(SETTLE, "")
    assert parse_playbook(text) is not None  # valid without manifests
    playbook, errors = check_playbook(text, path="x.yml", known_actions=MANIFESTS)
    assert playbook is None
    messages = [str(e) for e in errors]
    assert any(m.startswith(f"x.yml:{line_with(text, anchor)}: [playbook.invalid] {key}") for m in messages)
    assert any(fragment in m for m in messages), messages


def test_proceed_is_refused_before_a_containment_manifest_under_another_kind() -> None:
    manifests = {**MANIFESTS, "notify.pager": _manifest("notify.pager", "text", risk="containment")}
    text = (
        mutate("timeout_minutes: 15", "timeout_minutes: 15\n    on_timeout: proceed")
        .replace(BASE[BASE.index("  - id: which") :], "")
        .rstrip("\n")
        + '\n  - id: page\n    kind: contain\n    action: notify.pager\n    with: {text: "hi"}\n'
    )
    assert "on_timeout: proceed" in text
    _, errors = check_playbook(text, known_actions=manifests)
    assert any("must be fail_closed" in str(e) for e in errors)
    ok = text.replace("kind: contain", "kind: notify")
    _, errors = check_playbook(ok)
    assert errors == []  # without manifests a notify step after a proceeding approval is fine


# -- schema --------------------------------------------------------------------------------------------------
def test_shipped_schema_is_the_generated_one(content_dir: Path) -> None:
    shipped = json.loads((content_dir / "playbooks" / "playbook.schema.json").read_text(encoding="utf-8"))
    assert shipped == playbook_json_schema(), (
        "regenerate: python -c 'from watchfloor.respond.playbooks import schema_text; "
        'open("content/playbooks/playbook.schema.json", "w").write(schema_text())\''
    )


def test_schema_describes_the_format() -> None:
    schema = playbook_json_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"id", "name", "version", "description", "author", "trigger", "steps"}
    steps = schema["properties"]["steps"]["items"]
    assert steps["discriminator"]["propertyName"] == "kind"
    assert set(steps["discriminator"]["mapping"]) == {
        "enrich",
        "notify",
        "contain",
        "ticket",
        "approval",
        "branch",
        "wait",
    }
    assert "with" in schema["$defs"]["ActionStepDoc"]["properties"]
    assert "if" in schema["$defs"]["BranchStepDoc"]["properties"]


def test_tactics_are_trage_tactics() -> None:
    assert get_args(Tactic) == TACTICS


# -- templates -----------------------------------------------------------------------------------------------
CONTEXT: dict[str, Any] = {
    "incident": {"id": "inc-1", "entities": {"user": ["dana", "eve"], "ip": []}, "risk": 70},
    "tenant": {"edr": "falcon", "contacts": {"primary": "owner@clinic.example"}},
    "steps": {"lookup": {"status": "succeeded", "output": {"user_id": "u-1", "groups": ["a", "b"]}}},
}


@given(st.text().filter(lambda s: "{{" not in s))
def test_text_without_templates_passes_through(text: str) -> None:
    assert render(text, CONTEXT) == text
    assert Template.parse(text).render(CONTEXT) == text


@given(
    st.recursive(
        st.text().filter(lambda s: "{{" not in s) | st.integers() | st.booleans() | st.none(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    )
)
def test_values_without_templates_pass_through(value: Any) -> None:
    assert render(value, CONTEXT) == value


_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)


@given(
    st.lists(_NAMES | st.integers(min_value=0, max_value=3), min_size=1, max_size=6).filter(
        lambda parts: isinstance(parts[0], str)
    ),
    st.integers(),
)
def test_a_reference_finds_what_its_path_names(parts: list[str | int], leaf: int) -> None:
    value: Any = leaf
    for part in reversed(parts):
        value = [None] * part + [value] if isinstance(part, int) else {part: value}
    text = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(parts))
    ref = Reference.parse(text)
    assert ref.parts == tuple(parts)
    assert ref.resolve(value) == leaf
    assert Template.parse(f"{{{{{text}}}}}").render(value) == leaf
    assert Template.parse(f"x {{{{ {text} }}}} y").render(value) == f"x {leaf} y"


def test_a_lone_template_keeps_the_value_and_text_joins_it() -> None:
    assert render("{{ incident.entities.user }}", CONTEXT) == ["dana", "eve"]
    assert render("{{incident.risk}}", CONTEXT) == 70
    assert render("users: {{ incident.entities.user }}", CONTEXT) == "users: dana, eve"
    assert render("{{ incident.entities.user[1] }}@{{ tenant.edr }}", CONTEXT) == "eve@falcon"
    assert render("{{ steps.lookup.output }}", CONTEXT) == {"user_id": "u-1", "groups": ["a", "b"]}
    assert render("o: {{ steps.lookup.output }}", CONTEXT) == 'o: {"groups": ["a", "b"], "user_id": "u-1"}'
    assert render({"to": ["{{ tenant.contacts.primary }}", "x"], "n": 3}, CONTEXT) == {
        "to": ["owner@clinic.example", "x"],
        "n": 3,
    }
    assert render("}} alone {", CONTEXT) == "}} alone {"
    assert render("{{ x }}", {"x": None}) is None
    assert render("a{{ x }}b{{ y }}", {"x": None, "y": True}) == "abtrue"


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{{ steps.lookup.output.user }}", "steps.lookup.output.user: steps.lookup.output has no 'user'"),
        ("{{ steps.other.status }}", "steps.other.status: steps has no 'other'"),
        ("{{ incident.entities.ip[0] }}", "incident.entities.ip[0]: incident.entities.ip has 0 item(s)"),
        ("{{ incident.id[0] }}", "incident.id[0]: incident.id is not a list"),
        ("{{ incident.id.x }}", "incident.id.x: incident.id is a single value"),
        ("{{ nope }}", "nope: the context has no 'nope'"),
    ],
)
def test_runtime_reference_errors_name_the_path(template: str, fragment: str) -> None:
    from watchfloor.core.errors import Location

    with pytest.raises(PlaybookRuntimeError) as caught:
        render(f"text {template}", CONTEXT, location=Location(path="p.yml", line=12))
    assert str(caught.value).startswith("p.yml:12: [playbook.reference] ")
    assert fragment in str(caught.value)


@pytest.mark.parametrize("bad", ["", " ", "a..b", "a[", "a[-1]", "1abc", "a.b c", "a['x']", "a.1"])
def test_reference_syntax(bad: str) -> None:
    with pytest.raises(ValueError, match="not a reference"):
        Reference.parse(bad)


# -- conditions ----------------------------------------------------------------------------------------------
def _test(ref: str, op: Any, value: Any = None, **kw: Any) -> Check:
    return Check(ref=Reference.parse(ref), op=op, value=value, **kw)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (_test("tenant.edr", "equals", "FALCON"), True),
        (_test("tenant.edr", "equals", "mde"), False),
        (_test("tenant.edr", "in", ("mde", "falcon")), True),
        (_test("incident.entities.user", "equals", "eve"), True),  # a list passes when any item does
        (_test("incident.entities.user", "in", ("zed",)), False),
        (_test("incident.entities.user", "exists", True), True),
        (_test("incident.entities.ip", "exists", True), False),  # empty is absent
        (_test("incident.entities.ip", "exists", False), True),
        (_test("tenant.missing", "exists", False), True),
        (_test("tenant.missing", "equals", True, has_default=True, default=False), False),
        (_test("tenant.missing", "equals", "x", has_default=True, default="X"), True),
        (_test("incident.risk", "gte", 70), True),
        (_test("incident.risk", "gte", 70.5), False),
        (_test("incident.risk", "lte", 70), True),
        (_test("incident.severity", "gte", "high"), True),
        (_test("incident.severity", "gte", "critical"), False),
        (_test("incident.severity", "lte", "medium"), False),
        (_test("tenant.flag", "equals", 1), False),  # True is not 1 here
        (_test("tenant.flag", "equals", True), True),
        (AllOf((_test("tenant.missing", "exists", True), _test("tenant.missing", "equals", 1))), False),
        (AnyOf((_test("tenant.edr", "equals", "falcon"), _test("tenant.missing", "equals", 1))), True),
        (Not(_test("tenant.edr", "equals", "falcon")), False),
        (AllOf(()), True),
        (AnyOf(()), False),
    ],
)
def test_conditions(condition: Any, expected: bool) -> None:
    context = {**CONTEXT, "incident": {**CONTEXT["incident"], "severity": "high"}}
    context["tenant"] = {**CONTEXT["tenant"], "flag": True}
    assert evaluate(condition, context) is expected


def test_condition_errors() -> None:
    with pytest.raises(PlaybookRuntimeError, match=r"^\[playbook.reference\] tenant.missing: tenant has no"):
        evaluate(_test("tenant.missing", "equals", 1), CONTEXT)
    with pytest.raises(PlaybookRuntimeError, match=r"tenant\.edr: cannot compare 'falcon' with gte"):
        evaluate(_test("tenant.edr", "gte", 3), CONTEXT)


def test_conditions_from_yaml_evaluate() -> None:
    text = mutate(
        "{ref: tenant.edr, equals: falcon}",
        "{any: [{ref: incident.severity, gte: critical}, {not: {ref: tenant.edr, in: [mde, MDE]}}]}",
    )
    which = parse_playbook(text).step("which")
    assert isinstance(which, BranchStep)
    ctx = run_context(incident(severity="high"), tenant={"edr": "falcon"})
    assert evaluate(which.condition, ctx)
    assert not evaluate(which.condition, {**ctx, "tenant": {"edr": "mde"}})
    assert evaluate(which.condition, run_context(incident(severity="critical"), tenant={"edr": "mde"}))


# -- the run context and gating ----------------------------------------------------------------------------
def test_incident_context() -> None:
    other = alert(id="al-9", tenant_id=TenantId("bakery"), rule_id=RuleId("bakery-rule"))
    stranger = alert(id="al-8", rule_id=RuleId("unrelated"))
    ctx = incident_context(incident(), [alert(), other, stranger, alert(id="al-5", incident_id="inc-1")])
    assert ctx["entities"]["host"] == ["ws-17"]
    assert ctx["entities"]["hash"] == ["abc"]
    assert ctx["entities"]["domain"] == []
    assert ctx["rule_ids"] == ["rule-1"]
    assert ctx["techniques"] == ["T1059.001", "T1566.001"]
    assert ctx["tactics"] == ["execution", "initial-access"]
    assert ctx["risk"] == 70
    assert ctx["created_at"] == T0.isoformat()
    assert json.loads(json.dumps(ctx)) == ctx  # plain data


def test_every_incident_field_exists_in_the_context() -> None:
    from watchfloor.respond.playbooks import INCIDENT_FIELDS

    assert set(incident_context(incident())) == set(INCIDENT_FIELDS)


def test_resolve_inputs_and_step_records() -> None:
    playbook = parse_playbook(BASE, path="base.yml")
    isolate = playbook.step("isolate")
    assert isinstance(isolate, ActionStep)
    done = ActionResult(status="succeeded", summary="found dana", output={"user_id": "u-1"})
    ctx = run_context(incident(), tenant={"edr": "mde"}, steps={"lookup": step_record(done)})
    assert resolve_inputs(playbook, isolate, ctx) == {"host": "ws-17", "comment": "for u-1"}
    with pytest.raises(PlaybookRuntimeError) as caught:
        resolve_inputs(playbook, isolate, run_context(incident()))
    assert str(caught.value).startswith(f"base.yml:{isolate.line}: ")
    assert "steps.lookup.output.user_id" in str(caught.value)


def test_branch_gating() -> None:
    nested = BASE.replace(
        "  - id: which",
        "  - id: outer\n    kind: branch\n    if: {ref: tenant.x, exists: true}\n    then: [which]\n"
        "    else: [fallback]\n  - id: fallback\n    kind: wait\n    minutes: 1\n  - id: which",
    )
    playbook: Playbook = parse_playbook(nested)
    assert playbook.gate_of("which") == ("outer", True)
    assert playbook.gate_of("isolate") == ("which", False)
    assert playbook.gate_of("lookup") is None
    assert playbook.should_run("lookup", {})
    assert playbook.should_run("isolate", {"outer": True, "which": False})
    assert not playbook.should_run("isolate", {"outer": True, "which": True})
    assert not playbook.should_run("isolate", {"outer": False})  # which was skipped, so is what it gates
    assert playbook.should_run("fallback", {"outer": False})
    assert not playbook.should_run("contain_falcon", {"which": True})  # outer never ran
    with pytest.raises(KeyError):
        playbook.step("nope")


def test_playbooks_compare_by_value() -> None:
    a = parse_playbook(BASE)
    b = parse_playbook(BASE)
    assert a == b
    assert isinstance(a.steps[0], ActionStep)
    assert isinstance(a.steps[0].inputs, Mapping)
