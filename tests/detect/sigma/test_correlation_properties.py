"""Property tests: event_count against a brute-force sliding window, and tenant isolation."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationCondition, SigmaCorrelationRule
from sigma.rule import SigmaRule

from watchfloor.detect.sigma.correlation import BaseMatch, CorrelationEngine, CorrelationMatch

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "detect" / "correlation"


def _load(name: str) -> tuple[list[SigmaCorrelationRule], list[SigmaRule]]:
    collection = SigmaCollection.from_yaml((DATA_DIR / name).read_text(encoding="utf-8"))
    rules = [rule for rule in collection.rules if isinstance(rule, SigmaCorrelationRule)]
    base_rules = [rule for rule in collection.rules if isinstance(rule, SigmaRule)]
    return rules, base_rules


EVENT_COUNT_RULES, EVENT_COUNT_BASE = _load("property_event_count.yml")
MIXED_RULES, MIXED_BASE = _load("property_mixed.yml")
MIXED_IDS = {str(rule.name): str(rule.id) for rule in MIXED_BASE}
USERS = ("alice", "bob", "carol")

Event = tuple[int, str]  # (timestamp, user)


def _oracle(events: list[Event], threshold: int, span: int) -> list[tuple[object, ...]]:
    """Brute force: per user, after each event (in timestamp order) look at every event of that user
    within `span` seconds before it that came after the user's last match; match when there are
    `threshold` of them."""
    order = sorted(range(len(events)), key=lambda i: events[i][0])
    since: dict[str, int] = defaultdict(int)  # position in `order` after the user's last match
    out: list[tuple[object, ...]] = []
    for pos, i in enumerate(order):
        ts, user = events[i]
        window = [
            j for j in order[since[user] : pos + 1] if events[j][1] == user and events[j][0] >= ts - span
        ]
        if len(window) >= threshold:
            refs = tuple(f"e{j}" for j in window)
            out.append(((("User", user),), float(events[window[0]][0]), float(ts), refs, len(window)))
            since[user] = pos + 1
    return out


# Multiples of 5 make gaps of exactly a timespan (10 s, 30 s, 1 m) common: the inclusive boundary.
timestamps = st.one_of(st.integers(0, 200), st.integers(0, 40).map(lambda k: k * 5))
events_strategy = st.lists(st.tuples(timestamps, st.sampled_from(USERS)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(events=events_strategy, which=st.integers(0, len(EVENT_COUNT_RULES) - 1))
def test_event_count_agrees_with_a_brute_force_sliding_window(events: list[Event], which: int) -> None:
    rule = EVENT_COUNT_RULES[which]
    engine = CorrelationEngine([rule], EVENT_COUNT_BASE)
    base_id = str(EVENT_COUNT_BASE[0].id)
    order = sorted(range(len(events)), key=lambda i: events[i][0])
    got: list[CorrelationMatch] = []
    for i in order:
        ts, user = events[i]
        match = BaseMatch(
            tenant="acme",
            rule_id=base_id,
            rule_name="property_hit",
            event_ref=f"e{i}",
            timestamp=float(ts),
            fields={"User": user},
        )
        got.extend(engine.feed(match))
    got.extend(engine.flush())
    actual = [(m.group, m.first_timestamp, m.last_timestamp, m.event_refs, m.value) for m in got]
    condition = rule.condition
    assert isinstance(condition, SigmaCorrelationCondition)
    assert actual == _oracle(events, int(condition.count), rule.timespan.seconds)
    assert engine.state_size("acme") == 0


Stream = list[tuple[int, str, str]]  # (timestamp, base rule name, user)

stream_strategy = st.lists(
    st.tuples(st.integers(0, 300), st.sampled_from(("mixed_a", "mixed_b")), st.sampled_from(USERS[:2])),
    max_size=40,
)


def _matches(tenant: str, stream: Stream, prefix: str) -> list[BaseMatch]:
    return [
        BaseMatch(
            tenant=tenant,
            rule_id=MIXED_IDS[rule],
            rule_name=rule,
            event_ref=f"{prefix}{i}",
            timestamp=float(ts),
            fields={"User": user},
        )
        for i, (ts, rule, user) in enumerate(stream)
    ]


def _per_tenant(matches: list[CorrelationMatch]) -> dict[str, list[CorrelationMatch]]:
    out: dict[str, list[CorrelationMatch]] = defaultdict(list)
    for match in matches:
        out[match.tenant].append(match)
    return dict(out)


@settings(max_examples=200, deadline=None)
@given(
    first=stream_strategy,
    second=stream_strategy,
    sort_streams=st.booleans(),
    interleave=st.lists(st.booleans(), max_size=80),
)
def test_interleaving_tenants_gives_the_same_matches_as_feeding_them_apart(
    first: Stream, second: Stream, sort_streams: bool, interleave: list[bool]
) -> None:
    if sort_streams:
        first, second = sorted(first), sorted(second)
    a = _matches("acme", first, "a")
    b = _matches("globex", second, "g")

    expected: list[CorrelationMatch] = []
    for stream in (a, b):
        alone = CorrelationEngine(MIXED_RULES, MIXED_BASE)
        for match in stream:
            expected.extend(alone.feed(match))
        expected.extend(alone.flush())

    together = CorrelationEngine(MIXED_RULES, MIXED_BASE)
    got: list[CorrelationMatch] = []
    queues = [list(a), list(b)]
    picks = iter(interleave)
    while queues[0] or queues[1]:
        side = 0 if not queues[1] else 1 if not queues[0] else int(next(picks, False))
        got.extend(together.feed(queues[side].pop(0)))
    got.extend(together.flush())

    assert _per_tenant(got) == _per_tenant(expected)
    assert together.state_size("acme") == together.state_size("globex") == 0
