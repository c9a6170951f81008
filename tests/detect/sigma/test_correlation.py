"""Sigma correlation rules over synthetic base-match streams (rules under tests/data/detect/correlation)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule, SigmaCorrelationType
from sigma.exceptions import SigmaRuleLocation
from sigma.rule import SigmaRule

from watchfloor.core.errors import RuleError, RuleUnsupportedError
from watchfloor.detect.sigma.correlation import BaseMatch, CorrelationEngine, CorrelationMatch

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "detect" / "correlation"


def load_rules(name: str) -> tuple[list[SigmaCorrelationRule], list[SigmaRule]]:
    path = DATA_DIR / name
    collection = SigmaCollection.from_yaml(
        path.read_text(encoding="utf-8"), source=SigmaRuleLocation(path), resolve_references=False
    )
    rules = [rule for rule in collection.rules if isinstance(rule, SigmaCorrelationRule)]
    base_rules = [rule for rule in collection.rules if isinstance(rule, SigmaRule)]
    return rules, base_rules


class World:
    """One rule file loaded into a fresh engine, and a way to write base matches for it."""

    def __init__(self, name: str, **options: Any) -> None:
        self.rules, self.base_rules = load_rules(name)
        self.engine = CorrelationEngine(self.rules, self.base_rules, **options)
        self.ids = {str(rule.name): str(rule.id) for rule in self.base_rules}

    def hit(
        self, rule: str, ts: float, ref: str, fields: Mapping[str, Any] | None = None, tenant: str = "acme"
    ) -> BaseMatch:
        return BaseMatch(
            tenant=tenant,
            rule_id=self.ids[rule],
            rule_name=rule,
            event_ref=ref,
            timestamp=float(ts),
            fields=dict(fields or {}),
        )

    def feed(self, *matches: BaseMatch) -> list[CorrelationMatch]:
        out: list[CorrelationMatch] = []
        for match in matches:
            out.extend(self.engine.feed(match))
        return out

    def rule_id(self, title: str) -> str:
        return next(str(rule.id) for rule in self.rules if rule.title == title)


def brief(match: CorrelationMatch) -> tuple[object, ...]:
    return (
        match.rule_title,
        match.group,
        match.first_timestamp,
        match.last_timestamp,
        match.event_refs,
        match.value,
    )


# -- loading --------------------------------------------------------------------------------------


def test_every_data_file_parses_with_pysigma_and_declares_the_types_we_test() -> None:
    seen: set[SigmaCorrelationType] = set()
    for path in sorted(DATA_DIR.glob("*.yml")):
        rules, _ = load_rules(path.name)
        for rule in rules:
            assert not rule.errors, (path.name, rule.title)
            seen.add(rule.type)
    assert seen == set(SigmaCorrelationType)


def test_unknown_reference_is_a_rule_error_with_path_and_line() -> None:
    rules, base_rules = load_rules("unknown_reference.yml")
    with pytest.raises(RuleError) as caught:
        CorrelationEngine(rules, base_rules)
    error = caught.value
    assert error.code == "rule.invalid"
    assert "knwon_rule" in error.message
    assert error.location is not None
    assert error.location.path is not None
    assert error.location.path.endswith("unknown_reference.yml")
    assert error.location.line == 8
    assert "unknown_reference.yml:8" in str(error)


def _pick(name: str, *names: str) -> tuple[list[SigmaCorrelationRule], list[SigmaRule]]:
    rules, base_rules = load_rules(name)
    return [rule for rule in rules if rule.name in names], base_rules


def test_percentile_without_percentile_is_rejected() -> None:
    rules, base_rules = _pick("invalid_rules.yml", "percentile_without_percentile")
    with pytest.raises(RuleError, match="percentile"):
        CorrelationEngine(rules, base_rules)


def test_reference_cycle_is_rejected() -> None:
    rules, base_rules = _pick("invalid_rules.yml", "cycle_one", "cycle_two")
    with pytest.raises(RuleError, match="cycle"):
        CorrelationEngine(rules, base_rules)


def test_chain_reading_a_field_the_inner_rule_does_not_group_by_is_unsupported() -> None:
    rules, base_rules = _pick("invalid_rules.yml", "chain_wrong_group", "inner_by_computer")
    with pytest.raises(RuleUnsupportedError, match="User"):
        CorrelationEngine(rules, base_rules)


def test_base_rule_missing_from_base_rules_is_a_rule_error() -> None:
    rules, _ = _pick("invalid_rules.yml", "inner_by_computer")
    with pytest.raises(RuleError, match="plain_rule"):
        CorrelationEngine(rules, [])


# -- what the fast engine asks --------------------------------------------------------------------


def test_needed_fields_references_and_generate() -> None:
    world = World("event_count.yml")
    failed = world.ids["failed_logon"]
    assert world.engine.needed_fields(failed) == ("TargetUserName",)
    assert world.engine.needed_fields(failed.upper()) == ("TargetUserName",)
    assert world.engine.needed_fields("failed_logon") == ("TargetUserName",)
    assert world.engine.is_referenced(failed)
    assert not world.engine.emits_base(failed)
    assert world.engine.needed_fields("no-such-rule") == ()
    assert not world.engine.is_referenced("no-such-rule")
    assert world.engine.emits_base("no-such-rule")


def test_generate_controls_whether_base_matches_are_emitted() -> None:
    world = World("generate.yml")
    engine = world.engine
    assert engine.emits_base(world.ids["service_install"])  # referenced with generate: true
    assert not engine.emits_base(world.ids["scheduled_task"])  # referenced, generate defaults to false
    assert engine.emits_base(world.ids["unrelated"])  # not referenced
    assert not engine.is_referenced(world.ids["unrelated"])
    assert world.feed(world.hit("unrelated", 0, "e1", {"Computer": "ws1"})) == []
    assert engine.counters("acme")["discarded_unreferenced"] == 1
    assert engine.state_size("acme") == 0


def test_needed_fields_follow_aliases_per_rule() -> None:
    world = World("aliases.yml")
    assert world.engine.needed_fields(world.ids["internal_error"]) == ("destination.ip", "source.ip")
    assert world.engine.needed_fields(world.ids["new_network_connection"]) == ("source.ip", "destination.ip")


# -- event_count ----------------------------------------------------------------------------------


def test_event_count_matches_at_threshold_then_starts_over() -> None:
    world = World("event_count.yml")
    user = {"TargetUserName": "alice"}
    assert (
        world.feed(world.hit("failed_logon", 0, "e1", user), world.hit("failed_logon", 60, "e2", user)) == []
    )
    assert world.feed(world.hit("failed_logon", 120, "e3", user)) == [
        CorrelationMatch(
            tenant="acme",
            rule_id="1d0b2a2f-b3db-40c2-8737-c1aec0084bae",
            rule_title="Many failed logons for one user",
            level="high",
            group=(("TargetUserName", "alice"),),
            first_timestamp=0.0,
            last_timestamp=120.0,
            event_refs=("e1", "e2", "e3"),
            value=3,
            event_count=3,
        )
    ]
    # The window was cleared by the match: the next match needs three fresh events.
    assert (
        world.feed(world.hit("failed_logon", 130, "e4", user), world.hit("failed_logon", 140, "e5", user))
        == []
    )
    assert [brief(m) for m in world.feed(world.hit("failed_logon", 150, "e6", user))] == [
        (
            "Many failed logons for one user",
            (("TargetUserName", "alice"),),
            130.0,
            150.0,
            ("e4", "e5", "e6"),
            3,
        )
    ]


def test_event_count_counts_each_group_separately() -> None:
    world = World("event_count.yml")
    out = world.feed(
        world.hit("failed_logon", 0, "e1", {"TargetUserName": "alice"}),
        world.hit("failed_logon", 10, "e2", {"TargetUserName": "bob"}),
        world.hit("failed_logon", 20, "e3", {"TargetUserName": "alice"}),
        world.hit("failed_logon", 30, "e4", {"TargetUserName": "bob"}),
        world.hit("failed_logon", 40, "e5", {"TargetUserName": "alice"}),
    )
    assert [(m.group, m.event_refs) for m in out] == [((("TargetUserName", "alice"),), ("e1", "e3", "e5"))]


def test_group_values_compare_as_text() -> None:
    world = World("event_count.yml")
    out = world.feed(
        world.hit("failed_logon", 0, "e1", {"TargetUserName": 1001}),
        world.hit("failed_logon", 1, "e2", {"TargetUserName": "1001"}),
        world.hit("failed_logon", 2, "e3", {"TargetUserName": 1001.0}),
    )
    assert [m.group for m in out] == [(("TargetUserName", "1001"),)]


def test_timespan_is_inclusive_at_the_boundary() -> None:
    world = World("event_count.yml")  # 10m
    alice = {"TargetUserName": "alice"}
    bob = {"TargetUserName": "bob"}
    out = world.feed(
        world.hit("failed_logon", 0, "a1", alice),
        world.hit("failed_logon", 300, "a2", alice),
        world.hit("failed_logon", 600, "a3", alice),
    )
    assert [(m.first_timestamp, m.last_timestamp) for m in out] == [(0.0, 600.0)]
    out = world.feed(
        world.hit("failed_logon", 1000, "b1", bob),
        world.hit("failed_logon", 1300, "b2", bob),
        world.hit("failed_logon", 1600.5, "b3", bob),
    )
    assert out == []


def test_two_tenants_never_combine() -> None:
    world = World("event_count.yml")
    alice = {"TargetUserName": "alice"}
    out = world.feed(
        world.hit("failed_logon", 0, "a1", alice, tenant="acme"),
        world.hit("failed_logon", 60, "a2", alice, tenant="acme"),
        world.hit("failed_logon", 120, "g1", alice, tenant="globex"),
    )
    assert out == []
    assert world.engine.state_size("acme") == 3  # one window + two hits
    assert world.engine.state_size("globex") == 2
    out = world.feed(world.hit("failed_logon", 180, "a3", alice, tenant="acme"))
    assert [(m.tenant, m.event_refs) for m in out] == [("acme", ("a1", "a2", "a3"))]
    assert world.engine.state_size("globex") == 2


def test_out_of_order_events_within_the_window_are_placed_by_timestamp() -> None:
    world = World("event_count.yml")
    alice = {"TargetUserName": "alice"}
    out = world.feed(
        world.hit("failed_logon", 100, "e1", alice),
        world.hit("failed_logon", 40, "e2", alice),
        world.hit("failed_logon", 70, "e3", alice),
    )
    assert [brief(m) for m in out] == [
        (
            "Many failed logons for one user",
            (("TargetUserName", "alice"),),
            40.0,
            100.0,
            ("e2", "e3", "e1"),
            3,
        )
    ]


def test_events_later_than_the_allowed_lateness_are_dropped() -> None:
    world = World("event_count.yml")  # lateness defaults to the timespan (600 s)
    alice = {"TargetUserName": "alice"}
    out = world.feed(
        world.hit("failed_logon", 0, "e1", alice),
        world.hit("failed_logon", 2000, "e2", {"TargetUserName": "bob"}),
        world.hit("failed_logon", 100, "e3", alice),  # 1900 s behind the tenant's newest event
        world.hit("failed_logon", 2001, "e4", alice),
        world.hit("failed_logon", 2002, "e5", alice),
    )
    assert out == []
    assert world.engine.counters("acme")["discarded_late"] == 1


def test_event_older_than_its_sliding_window_is_dropped() -> None:
    world = World("event_count.yml", allowed_lateness_seconds=10_000)
    alice = {"TargetUserName": "alice"}
    out = world.feed(
        world.hit("failed_logon", 1000, "e1", alice),
        world.hit("failed_logon", 1700, "e2", alice),  # e1 leaves the window [1100, 1700]
        world.hit("failed_logon", 1050, "e3", alice),  # before the window: dropped
        world.hit("failed_logon", 1200, "e4", alice),
    )
    assert out == []
    assert world.engine.counters("acme")["discarded_late"] == 1
    assert [brief(m) for m in world.feed(world.hit("failed_logon", 1701, "e5", alice))] == [
        (
            "Many failed logons for one user",
            (("TargetUserName", "alice"),),
            1200.0,
            1701.0,
            ("e4", "e2", "e5"),
            3,
        )
    ]


def test_matches_missing_a_group_value_are_not_counted() -> None:
    world = World("event_count.yml")
    alice = {"TargetUserName": "alice"}
    out = world.feed(
        world.hit("failed_logon", 0, "e1", alice),
        world.hit("failed_logon", 10, "e2", {}),
        world.hit("failed_logon", 20, "e3", alice),
        world.hit("failed_logon", 25, "e4", {"TargetUserName": None}),
    )
    assert out == []
    assert world.engine.counters("acme")["discarded_missing_field"] == 2
    assert [m.event_refs for m in world.feed(world.hit("failed_logon", 30, "e5", alice))] == [
        ("e1", "e3", "e5")
    ]


def test_state_is_evicted_once_time_moves_past_it() -> None:
    world = World("event_count.yml")  # deadline: newest + 600 s window + 600 s lateness
    for i in range(50):
        world.feed(world.hit("failed_logon", i, f"e{i}", {"TargetUserName": f"user{i}"}))
    assert world.engine.state_size("acme") == 100
    world.feed(world.hit("failed_logon", 1249.5, "late", {"TargetUserName": "someone"}))
    assert world.engine.state_size("acme") == 2
    assert world.engine.advance_to("acme", 10_000) == []
    assert world.engine.state_size("acme") == 0
    assert world.engine.flush() == []


def test_event_refs_are_capped_and_the_count_kept() -> None:
    world = World("event_count.yml", max_event_refs=2)
    alice = {"TargetUserName": "alice"}
    out = world.feed(*(world.hit("failed_logon", i, f"e{i}", alice) for i in range(3)))
    assert [(m.event_refs, m.event_count, m.value) for m in out] == [(("e0", "e1"), 3, 3)]


def test_window_size_is_capped() -> None:
    world = World("event_count.yml", max_window_events=2)
    alice = {"TargetUserName": "alice"}
    out = world.feed(*(world.hit("failed_logon", i, f"e{i}", alice) for i in range(3)))
    assert out == []
    assert world.engine.counters("acme")["discarded_overflow"] == 1


# -- value_count ----------------------------------------------------------------------------------


def test_value_count_counts_distinct_values_per_group() -> None:
    world = World("value_count.yml")
    out = world.feed(
        world.hit("failed_network_logon", 0, "e1", {"IpAddress": "10.0.0.9", "TargetUserName": "alice"}),
        world.hit("failed_network_logon", 10, "e2", {"IpAddress": "10.0.0.9", "TargetUserName": "bob"}),
        world.hit("failed_network_logon", 15, "e3", {"IpAddress": "10.0.0.7", "TargetUserName": "carol"}),
        world.hit("failed_network_logon", 20, "e4", {"IpAddress": "10.0.0.9", "TargetUserName": "alice"}),
        world.hit("failed_network_logon", 25, "e5", {"IpAddress": "10.0.0.9"}),
    )
    assert out == []
    assert world.engine.counters("acme")["discarded_missing_field"] == 1
    out = world.feed(
        world.hit("failed_network_logon", 30, "e6", {"IpAddress": "10.0.0.9", "TargetUserName": "carol"})
    )
    assert [(brief(m), m.event_count) for m in out] == [
        (
            (
                "Password spraying from one address",
                (("IpAddress", "10.0.0.9"),),
                0.0,
                30.0,
                ("e1", "e2", "e4", "e6"),
                3,
            ),
            4,
        )
    ]
    assert world.engine.needed_fields(world.ids["failed_network_logon"]) == ("IpAddress", "TargetUserName")


# -- value_sum, value_avg, value_median, value_percentile -----------------------------------------


def test_value_aggregates() -> None:
    world = World("value_metrics.yml")
    ws1 = "ws1"
    steps = [
        world.feed(world.hit("outbound_transfer", 0, "e1", {"Computer": ws1, "bytes": 100})),
        world.feed(world.hit("outbound_transfer", 5, "bad", {"Computer": ws1, "bytes": "n/a"})),
        world.feed(world.hit("outbound_transfer", 10, "e2", {"Computer": ws1, "bytes": 900})),
        world.feed(world.hit("outbound_transfer", 20, "e3", {"Computer": ws1, "bytes": 50.0})),
        world.feed(world.hit("outbound_transfer", 30, "e4", {"Computer": ws1, "bytes": "2000"})),
    ]
    assert [[(m.rule_title, m.event_refs, m.value) for m in step] for step in steps] == [
        [],
        [],
        [
            ("Outbound bytes sum per host", ("e1", "e2"), 1000),
            ("Outbound bytes median per host", ("e1", "e2"), 500.0),
        ],
        [],
        [
            ("Outbound bytes sum per host", ("e3", "e4"), 2050.0),
            ("Outbound bytes average per host", ("e1", "e2", "e3", "e4"), 762.5),
            ("Outbound bytes median per host", ("e3", "e4"), 1025.0),
            ("Outbound bytes 90th percentile per host", ("e1", "e2", "e3", "e4"), pytest.approx(1670.0)),
        ],
    ]
    assert world.engine.counters("acme")["discarded_missing_field"] == 4  # "n/a", once per correlation
    assert world.engine.needed_fields(world.ids["outbound_transfer"]) == ("Computer", "bytes")


# -- temporal and temporal_ordered ----------------------------------------------------------------


def test_temporal_any_order_versus_ordered() -> None:
    world = World("temporal.yml")
    who = {"ComputerName": "ws1", "User": "alice"}
    group = (("ComputerName", "ws1"), ("User", "alice"))
    out = world.feed(
        world.hit("recon_nltest", 0, "e1", who),
        world.hit("recon_whoami", 10, "e2", who),
        world.hit("recon_net_group", 20, "e3", who),
    )
    assert [brief(m) for m in out] == [
        ("Reconnaissance commands in any order", group, 0.0, 20.0, ("e1", "e2", "e3"), 3)
    ]
    out = world.feed(
        world.hit("recon_whoami", 100, "e4", who),
        world.hit("recon_net_group", 110, "e5", who),
        world.hit("recon_nltest", 120, "e6", who),
    )
    # The unordered window was cleared at e3; the ordered one still holds every hit since 0 s.
    assert [brief(m) for m in out] == [
        ("Reconnaissance commands in any order", group, 100.0, 120.0, ("e4", "e5", "e6"), 3),
        ("Reconnaissance commands in order", group, 0.0, 120.0, ("e1", "e2", "e3", "e4", "e5", "e6"), 3),
    ]


def test_temporal_ordered_uses_event_time_not_arrival() -> None:
    world = World("temporal.yml")
    who = {"ComputerName": "ws1", "User": "alice"}
    out = world.feed(
        world.hit("recon_net_group", 20, "e2", who),
        world.hit("recon_nltest", 30, "e3", who),
        world.hit("recon_whoami", 10, "e1", who),  # arrives last, happened first
    )
    assert [(m.rule_title, m.event_refs) for m in out] == [
        ("Reconnaissance commands in any order", ("e1", "e2", "e3")),
        ("Reconnaissance commands in order", ("e1", "e2", "e3")),
    ]


@pytest.mark.parametrize(("last", "matched"), [(300, True), (301, False)])
def test_temporal_timespan_boundary(last: float, matched: bool) -> None:
    world = World("temporal.yml")  # 5m
    who = {"ComputerName": "ws1", "User": "alice"}
    out = world.feed(
        world.hit("recon_whoami", 0, "e1", who),
        world.hit("recon_net_group", 200, "e2", who),
        world.hit("recon_nltest", last, "e3", who),
    )
    expected = ["Reconnaissance commands in any order", "Reconnaissance commands in order"] if matched else []
    assert [m.rule_title for m in out] == expected


def test_temporal_needs_every_group_by_value_to_agree() -> None:
    world = World("temporal.yml")
    out = world.feed(
        world.hit("recon_whoami", 0, "e1", {"ComputerName": "ws1", "User": "alice"}),
        world.hit("recon_net_group", 10, "e2", {"ComputerName": "ws1", "User": "bob"}),
        world.hit("recon_nltest", 20, "e3", {"ComputerName": "ws1", "User": "alice"}),
    )
    assert out == []


def test_aliases_group_different_fields_of_different_rules() -> None:
    world = World("aliases.yml")
    error = {"destination.ip": "10.0.0.5", "source.ip": "203.0.113.9"}
    out = world.feed(
        world.hit("internal_error", 0, "e1", error),
        world.hit(
            "new_network_connection", 4, "e2", {"source.ip": "203.0.113.9", "destination.ip": "10.0.0.5"}
        ),
    )
    assert out == []  # same addresses, but the wrong way round
    out = world.feed(
        world.hit(
            "new_network_connection", 6, "e3", {"source.ip": "10.0.0.5", "destination.ip": "203.0.113.9"}
        )
    )
    assert [brief(m) for m in out] == [
        (
            "Internal error followed by a connection between the same addresses",
            (("internal_ip", "10.0.0.5"), ("remote_ip", "203.0.113.9")),
            0.0,
            6.0,
            ("e1", "e3"),
            2,
        )
    ]


def test_extended_conditions() -> None:
    world = World("extended.yml")
    c1 = {"Computer": "ws1"}
    c2 = {"Computer": "ws2"}
    steps = [
        world.feed(world.hit("upload_started", 0, "u1", c1)),
        world.feed(world.hit("archive_created", 10, "a1", c1)),
        world.feed(world.hit("upload_started", 20, "u2", c1)),
        world.feed(world.hit("archive_created", 25, "a2", c2)),
        world.engine.flush(),
    ]
    assert [[(m.rule_title, m.group, m.event_refs, m.value) for m in step] for step in steps] == [
        [],
        [("Archive created and uploaded", (("Computer", "ws1"),), ("u1", "a1"), 2)],
        [("Archive created then uploaded", (("Computer", "ws1"),), ("u1", "a1", "u2"), 2)],
        [],
        [("Archive created without upload", (("Computer", "ws2"),), ("a2",), 1)],
    ]


# -- lt, lte, neq: evaluated when the window closes ------------------------------------------------


def test_lt_is_evaluated_when_the_window_closes() -> None:
    world = World("heartbeat_lt.yml")  # lt 3 within 1h
    h1 = {"Computer": "h1"}
    h2 = {"Computer": "h2"}
    out = world.feed(
        world.hit("agent_heartbeat", 0, "e1", h1),
        world.hit("agent_heartbeat", 100, "e3", h2),
        world.hit("agent_heartbeat", 200, "e4", h2),
        world.hit("agent_heartbeat", 300, "e5", h2),
        world.hit("agent_heartbeat", 1000, "e2", h1),
    )
    assert out == []
    out = world.feed(world.hit("agent_heartbeat", 4000, "e6", h1))  # outside h1's window [0, 3600]
    assert [brief(m) for m in out] == [
        ("Too few agent heartbeats", (("Computer", "h1"),), 0.0, 1000.0, ("e1", "e2"), 2)
    ]
    out = world.engine.flush()
    assert [brief(m) for m in out] == [
        ("Too few agent heartbeats", (("Computer", "h1"),), 4000.0, 4000.0, ("e6",), 1)
    ]
    assert world.engine.state_size("acme") == 0


def test_lt_window_closes_when_the_tenant_clock_passes_it() -> None:
    world = World("heartbeat_lt.yml", allowed_lateness_seconds=0)
    out = world.feed(
        world.hit("agent_heartbeat", 0, "e1", {"Computer": "h1"}),
        world.hit("agent_heartbeat", 3600, "e2", {"Computer": "h2"}),
    )
    assert out == []
    out = world.feed(world.hit("agent_heartbeat", 3600.5, "e3", {"Computer": "h2"}))
    assert [(m.group, m.event_refs) for m in out] == [((("Computer", "h1"),), ("e1",))]


def test_advance_to_closes_windows_of_that_tenant_only() -> None:
    world = World("heartbeat_lt.yml")  # closes at start + 1h window + 1h lateness
    world.feed(
        world.hit("agent_heartbeat", 0, "a1", {"Computer": "h1"}, tenant="acme"),
        world.hit("agent_heartbeat", 0, "g1", {"Computer": "h1"}, tenant="globex"),
    )
    assert world.engine.advance_to("acme", 7200) == []
    out = world.engine.advance_to("acme", 7201)
    assert [(m.tenant, m.event_refs) for m in out] == [("acme", ("a1",))]
    assert world.engine.state_size("globex") == 2
    assert [(m.tenant, m.event_refs) for m in world.engine.flush()] == [("globex", ("g1",))]


def test_operators() -> None:
    world = World("operators.yml")  # all 1m, by Computer
    c1 = {"Computer": "c1"}
    steps = [
        world.feed(world.hit("admin_logon", 0, "e1", c1)),
        world.feed(world.hit("admin_logon", 10, "e2", c1)),
        world.feed(world.hit("admin_logon", 20, "e3", c1)),
        world.feed(world.hit("admin_logon", 100, "e4", c1)),
        world.engine.flush(),
    ]
    assert [[(m.rule_title, m.event_refs, m.value) for m in step] for step in steps] == [
        [],
        [("Exactly two admin logons", ("e1", "e2"), 2)],  # eq counts up, like gte
        [("More than two admin logons", ("e1", "e2", "e3"), 3)],
        [("Not two admin logons", ("e1", "e2", "e3"), 3)],  # neq waits for the window [0, 60] to close
        [("Not two admin logons", ("e4",), 1), ("At most one admin logon", ("e4",), 1)],
    ]
    assert {m.level for step in steps for m in step} == {"informational"}


# -- chains ---------------------------------------------------------------------------------------


def test_chained_correlation_from_the_specification() -> None:
    world = World("chain.yml")
    alice = {"User": "alice"}
    out = world.feed(
        world.hit("chain_failed_logon", 0, "f1", alice),
        world.hit("chain_failed_logon", 10, "f2", alice),
        world.hit("chain_failed_logon", 20, "f3", alice),
    )
    assert out == []  # the inner correlation only feeds the outer one (no generate)
    out = world.feed(world.hit("successful_logon", 30, "s1", alice))
    assert out == [
        CorrelationMatch(
            tenant="acme",
            rule_id=world.rule_id("Multiple failed logons followed by a successful logon"),
            rule_title="Multiple failed logons followed by a successful logon",
            level="high",
            group=(("User", "alice"),),
            first_timestamp=0.0,
            last_timestamp=30.0,
            event_refs=("f1", "f2", "f3", "s1"),
            value=2,
            event_count=4,
        )
    ]
    assert world.engine.needed_fields(world.ids["chain_failed_logon"]) == ("User",)
    assert world.engine.needed_fields(world.ids["successful_logon"]) == ("User",)
    assert not world.engine.emits_base(world.ids["chain_failed_logon"])
    assert not world.engine.emits_base(world.ids["successful_logon"])


def test_chained_correlation_respects_order() -> None:
    world = World("chain.yml")
    bob = {"User": "bob"}
    out = world.feed(
        world.hit("successful_logon", 0, "s1", bob),
        world.hit("chain_failed_logon", 10, "f1", bob),
        world.hit("chain_failed_logon", 20, "f2", bob),
        world.hit("chain_failed_logon", 30, "f3", bob),
    )
    assert out + world.engine.flush() == []
