"""The Windows sample generator: deterministic bytes, evtx-shaped events, consistent ground truth."""

from __future__ import annotations

import gzip
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from watchfloor.normalize.shapes import classify, flatten, record_id, timestamp
from watchfloor.samples.truth import GroundTruth, attack_records
from watchfloor.samples.windows import generate_windows_events, write_jsonl

START = datetime(2026, 12, 1, tzinfo=UTC)
CHANNELS = {
    "microsoft-windows-sysmon/operational": {1, 3, 10, 11, 17, 18, 22},
    "security": {4624, 4625, 4688, 4720, 4732},
    "system": {7045},
    "microsoft-windows-powershell/operational": {4104},
}
SYSTEM_KEYS = [
    "Provider",
    "EventID",
    "Version",
    "Level",
    "Task",
    "Opcode",
    "Keywords",
    "TimeCreated",
    "EventRecordID",
    "Correlation",
    "Execution",
    "Channel",
    "Computer",
    "Security",
]
SYSTEM_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


@pytest.fixture(scope="module")
def sample() -> tuple[list[dict[str, Any]], list[GroundTruth]]:
    return generate_windows_events(seed=7, start=START)


def _bytes(events: list[dict[str, Any]], path: Path) -> bytes:
    write_jsonl(events, path)
    return path.read_bytes()


def _without_record_id(event: dict[str, Any]) -> bytes:
    doc = orjson.loads(orjson.dumps(event))
    doc["Event"]["System"]["EventRecordID"] = None
    return bytes(orjson.dumps(doc))


# -- determinism ---------------------------------------------------------------------------------------
def test_same_seed_same_bytes(tmp_path: Path) -> None:
    first, truth_a = generate_windows_events(seed=11, start=START, hours=6)
    second, truth_b = generate_windows_events(seed=11, start=START, hours=6)
    assert _bytes(first, tmp_path / "a.jsonl") == _bytes(second, tmp_path / "b.jsonl")
    assert truth_a == truth_b


def test_other_seed_other_bytes(tmp_path: Path) -> None:
    first, _ = generate_windows_events(seed=11, start=START, hours=6)
    second, _ = generate_windows_events(seed=12, start=START, hours=6)
    assert _bytes(first, tmp_path / "a.jsonl") != _bytes(second, tmp_path / "b.jsonl")


def test_background_does_not_depend_on_attacks(
    sample: tuple[list[dict[str, Any]], list[GroundTruth]],
) -> None:
    events, truths = sample
    benign, none = generate_windows_events(seed=7, start=START, attacks=False)
    assert none == []
    attack = attack_records(truths)
    with_attacks = Counter(_without_record_id(e) for e in events if record_id(e) not in attack)
    assert with_attacks == Counter(_without_record_id(e) for e in benign)


def test_write_jsonl_round_trips(
    tmp_path: Path, sample: tuple[list[dict[str, Any]], list[GroundTruth]]
) -> None:
    events, _ = sample
    path = tmp_path / "nested" / "events.jsonl"
    size = write_jsonl(events, path)
    data = path.read_bytes()
    assert size == len(data)
    assert data.endswith(b"\n")
    assert [orjson.loads(line) for line in data.splitlines()] == events


# -- shape -------------------------------------------------------------------------------------------
def test_every_event_classifies_as_windows(sample: tuple[list[dict[str, Any]], list[GroundTruth]]) -> None:
    events, _ = sample
    seen: Counter[tuple[str, int | None]] = Counter()
    for event in events:
        key = classify(event)
        assert key is not None
        assert key.product == "windows"
        assert key.event_id in CHANNELS[key.channel], key
        seen[(key.channel, key.event_id)] += 1
    expected = {(channel, eid) for channel, ids in CHANNELS.items() for eid in ids}
    assert set(seen) == expected


def test_envelope_matches_the_evtx_rendering(sample: tuple[list[dict[str, Any]], list[GroundTruth]]) -> None:
    events, _ = sample
    for event in events:
        assert list(event) == ["Event"]
        body = event["Event"]
        assert list(body) == ["#attributes", "System", "EventData"]
        system = body["System"]
        assert list(system) == SYSTEM_KEYS
        assert isinstance(system["Provider"]["#attributes"]["Name"], str)
        assert SYSTEM_TIME.match(system["TimeCreated"]["#attributes"]["SystemTime"])
        assert isinstance(system["EventRecordID"], int)
        eid = system["EventID"]
        if system["Channel"] == "System":
            assert eid == {"#attributes": {"Qualifiers": 16384}, "#text": 7045}
        else:
            assert isinstance(eid, int)
        assert system["Computer"].endswith(".harbor.local")
        assert timestamp(event) == system["TimeCreated"]["#attributes"]["SystemTime"]


def test_time_order_and_record_ids(sample: tuple[list[dict[str, Any]], list[GroundTruth]]) -> None:
    events, _ = sample
    times = [timestamp(e) or "" for e in events]
    assert times == sorted(times)
    assert START.isoformat().replace("+00:00", "Z") <= times[0]
    assert times[-1] < (START + timedelta(hours=24)).isoformat().replace("+00:00", "Z")
    ids = [record_id(e) for e in events]
    assert len(set(ids)) == len(ids), "record ids are unique across hosts, so one file can hold them all"
    last: dict[str, int] = {}
    for event, rid in zip(events, ids, strict=True):
        assert rid is not None
        host = event["Event"]["System"]["Computer"]
        assert rid == last.get(host, rid - 1) + 1, "record ids increase by one per host in time order"
        last[host] = rid
    assert len(last) == 5


def test_sigma_fields_are_where_rules_look(sample: tuple[list[dict[str, Any]], list[GroundTruth]]) -> None:
    events, _ = sample
    for event in events:
        flat = flatten(event)
        key = classify(event)
        assert key is not None
        if key.channel == "microsoft-windows-sysmon/operational" and key.event_id == 1:
            assert {"Image", "CommandLine", "ParentImage", "OriginalFileName"} <= flat.keys()
        if key.event_id == 4688:
            assert {"NewProcessName", "ParentProcessName", "CommandLine"} <= flat.keys()
        if key.event_id == 7045:
            assert flat["Provider_Name"] == "Service Control Manager"
            assert flat["EventID"] == 7045


# -- ground truth ------------------------------------------------------------------------------------
def test_ground_truth_points_at_real_events(sample: tuple[list[dict[str, Any]], list[GroundTruth]]) -> None:
    events, truths = sample
    by_id = {record_id(e): e for e in events}
    assert len(truths) == 13
    assert len({(t.story, t.step) for t in truths}) == len(truths)
    for truth in truths:
        assert truth.record_ids, truth.step
        assert all(re.fullmatch(r"T\d{4}(\.\d{3})?", t) for t in truth.techniques)
        assert truth.first_seen <= truth.last_seen
        for rid in truth.record_ids:
            event = by_id[rid]
            assert event["Event"]["System"]["Computer"].split(".")[0] in {truth.host, "WS02"}
    steps = [t.record_ids for t in truths]
    flat = [r for ids in steps for r in ids]
    assert len(flat) == len(set(flat)), "an event belongs to at most one step"


def test_ground_truth_serialises(sample: tuple[list[dict[str, Any]], list[GroundTruth]]) -> None:
    _, truths = sample
    doc = orjson.loads(orjson.dumps([t.to_dict() for t in truths]))
    assert doc[0]["story"] == "rdp-brute-force"
    assert doc[0]["techniques"] == ["T1110.001"]


# -- arguments -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("hosts", [1, 2, 3])
def test_small_networks_without_attacks(hosts: int) -> None:
    events, truths = generate_windows_events(seed=3, hosts=hosts, hours=12, start=START, attacks=False)
    assert events
    assert truths == []
    assert len({e["Event"]["System"]["Computer"] for e in events}) == hosts


def test_more_hosts_and_a_window_not_at_midnight() -> None:
    start = datetime(2026, 12, 1, 13, 30, tzinfo=UTC)
    events, truths = generate_windows_events(seed=5, hosts=12, hours=30, start=start)
    assert len({e["Event"]["System"]["Computer"] for e in events}) == 12
    assert len(truths) == 13
    assert (timestamp(events[0]) or "") >= "2026-12-01T13:30:00"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": datetime(2026, 12, 1)}, "timezone-aware"),  # noqa: DTZ001 - the naive start under test
        ({"start": START, "hosts": 3}, "hosts >= 4"),
        ({"start": START, "hours": 2.0}, "hours >= 3"),
        ({"start": START, "hosts": 0, "attacks": False}, "at least 1"),
        ({"start": START, "hours": 0, "attacks": False}, "positive"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_windows_events(seed=1, **kwargs)


# -- fidelity against real renderings (../shared) ------------------------------------------------------
def _real_fields(shared_dir: Path) -> dict[tuple[str, int], dict[str, Counter[str]]]:
    """(channel, event id) -> EventData field -> Counter of JSON value types seen in the real corpus."""
    fields: dict[tuple[str, int], dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    path = shared_dir / "datasets" / "windows-evtx" / "events.jsonl.gz"
    with gzip.open(path, "rb") as stream:
        for line in stream:
            doc = orjson.loads(line)
            key = classify(doc)
            data = doc.get("Event", {}).get("EventData")
            if key is None or key.event_id is None or not isinstance(data, dict):
                continue
            for name, value in data.items():
                fields[(key.channel, key.event_id)][name][type(value).__name__] += 1
    return fields


# Fields newer Sysmon schemas add that the (2019-2022) corpus predates.
NEWER_THAN_CORPUS = {("microsoft-windows-sysmon/operational", eid, "User") for eid in (17, 18, 22)}


@pytest.mark.shared
def test_fields_and_types_match_real_evtx(
    shared_dir: Path, sample: tuple[list[dict[str, Any]], list[GroundTruth]]
) -> None:
    real = _real_fields(shared_dir)
    events, _ = sample
    problems: set[str] = set()
    checked = 0
    for event in events:
        key = classify(event)
        assert key is not None
        assert key.event_id is not None
        known = real.get((key.channel, key.event_id))
        if not known:
            continue
        for name, value in event["Event"]["EventData"].items():
            if (key.channel, key.event_id, name) in NEWER_THAN_CORPUS:
                continue
            if name not in known:
                problems.add(f"{key.channel} {key.event_id}: {name} never seen in real renderings")
            elif type(value).__name__ not in known[name]:
                kind = type(value).__name__
                problems.add(f"{key.channel} {key.event_id}: {name} is {kind}, real: {dict(known[name])}")
        checked += 1
    assert not problems, sorted(problems)
    assert checked > len(events) // 2
