"""The authorization policy: safe defaults, per-action rules, blast-radius limits, the kill switch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchfloor.respond.actions import ActionManifest, InputSpec, Risk
from watchfloor.respond.policy import (
    PolicyError,
    RecentAction,
    ResponsePolicy,
    decide,
    policy_from_json,
    policy_to_json,
)

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def manifest(
    risk: Risk = "containment", *, target: str = "host", approval: str = "by_policy"
) -> ActionManifest:
    return ActionManifest(
        id=f"edr.act_{risk}",
        title="t",
        connector="edr",
        description="d",
        inputs=(InputSpec(name="host", type="host"),),
        risk=risk,
        target=target,  # type: ignore[arg-type]
        approval=approval,  # type: ignore[arg-type]
    )


def test_safe_default_by_risk() -> None:
    policy = ResponsePolicy()
    assert decide(policy, manifest("read_only"), "high", NOW).mode == "automatic"
    contain = decide(policy, manifest("containment"), "critical", NOW)
    assert contain.mode == "ask_approval"
    assert contain.deadline == NOW + timedelta(minutes=30)
    assert "soc_manager" in contain.approvers.roles
    destroy = decide(policy, manifest("destructive"), "low", NOW)
    assert destroy.mode == "ask_approval"
    assert destroy.approvers.roles
    assert destroy.approvers.customer_contacts == ("primary",)


def test_action_rule_beats_risk_rule_and_severity_overrides() -> None:
    policy = policy_from_json(
        {
            "actions": {
                "edr.act_containment": {
                    "mode": "ask_approval",
                    "by_severity": {"critical": "automatic"},
                    "deadline_minutes": 15,
                }
            }
        }
    )
    assert decide(policy, manifest(), "critical", NOW).mode == "automatic"
    high = decide(policy, manifest(), "high", NOW)
    assert high.mode == "ask_approval"
    assert high.deadline == NOW + timedelta(minutes=15)


def test_manifest_always_needs_approval() -> None:
    policy = policy_from_json({"risks": {"containment": {"mode": "automatic"}}})
    assert decide(policy, manifest(approval="always"), "critical", NOW).mode == "ask_approval"


def test_notify_only() -> None:
    policy = policy_from_json({"risks": {"containment": {"mode": "notify_only"}}})
    assert decide(policy, manifest(), "high", NOW).mode == "notify_only"


def test_kill_switch_refuses_with_reason() -> None:
    decision = decide(ResponsePolicy(), manifest(), "critical", NOW, kill_switch=True)
    assert decision.refused
    assert "kill switch" in decision.reason
    assert decide(ResponsePolicy(), manifest("read_only"), "high", NOW, kill_switch=True).mode == "automatic"


def test_blast_radius_counts_distinct_targets_in_the_last_hour() -> None:
    policy = policy_from_json({"limits_per_hour": {"host": 2}})
    recent = [
        RecentAction(action_id="edr.act_containment", target_kind="host", target="pc1", at=NOW),
        RecentAction(action_id="edr.act_containment", target_kind="host", target="pc2", at=NOW),
        RecentAction(action_id="x.y", target_kind="host", target="old", at=NOW - timedelta(hours=2)),
    ]
    again = decide(policy, manifest(), "high", NOW, targets=["pc1"], recent_actions=recent)
    assert not again.refused
    third = decide(policy, manifest(), "high", NOW, targets=["pc3"], recent_actions=recent)
    assert third.refused
    assert "blast-radius limit" in third.reason
    assert "allows 2" in third.reason


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ({"risks": {"containment": {"mode": "yolo"}}}, "risks.containment.mode"),
        ({"risks": {"scary": {"mode": "automatic"}}}, "risks.scary"),
        ({"limits_per_hour": {"host": -1}}, "limits_per_hour.host"),
        ({"actions": {"a.b": {"mode": "automatic", "deadline_minutes": 0}}}, "actions.a.b.deadline_minutes"),
        ({"other": 1}, "unknown keys"),
    ],
)
def test_bad_documents_name_the_key(document: dict[str, object], key: str) -> None:
    with pytest.raises(PolicyError, match=key.replace(".", r"\.")):
        policy_from_json(document)


def test_json_round_trip() -> None:
    policy = policy_from_json(
        {
            "actions": {"a.b": {"mode": "automatic", "by_severity": {"low": "notify_only"}}},
            "limits_per_hour": {"user": 3},
        }
    )
    assert policy_from_json(policy_to_json(policy)) == policy


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(min_value=0, max_value=4),
    sequence=st.lists(
        st.tuples(
            st.sampled_from(["h1", "h2", "h3", "h4", "h5", "h6"]), st.integers(min_value=0, max_value=180)
        ),
        max_size=30,
    ),
)
def test_limits_are_never_exceeded(limit: int, sequence: list[tuple[str, int]]) -> None:
    """Running only what `decide` allows never touches more than `limit` distinct hosts in any hour."""
    policy = policy_from_json(
        {"limits_per_hour": {"host": limit}, "risks": {"containment": {"mode": "automatic"}}}
    )
    done: list[RecentAction] = []
    minute = 0
    for host, gap in sequence:
        minute += gap
        at = NOW + timedelta(minutes=minute)
        decision = decide(policy, manifest(), "high", at, targets=[host], recent_actions=done)
        if not decision.refused:
            done.append(RecentAction(action_id="edr.act_containment", target_kind="host", target=host, at=at))
        window = {r.target for r in done if at - timedelta(hours=1) < r.at <= at}
        assert len(window) <= limit


@given(
    risk=st.sampled_from(["containment", "destructive"]),
    severity=st.sampled_from(["low", "medium", "high", "critical"]),
    mode=st.sampled_from(["notify_only", "ask_approval", "automatic"]),
)
def test_kill_switch_always_refuses_non_read_only(risk: Risk, severity: str, mode: str) -> None:
    policy = policy_from_json({"risks": {risk: {"mode": mode}}, "limits_per_hour": {"host": 100}})
    assert decide(policy, manifest(risk), severity, NOW, targets=["h"], kill_switch=True).refused  # type: ignore[arg-type]
