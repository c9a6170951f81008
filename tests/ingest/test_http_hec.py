"""Splunk HEC over real HTTP: events, raw, acks, health, every error code; the concatenated-JSON splitter."""

from __future__ import annotations

import gzip
import json
import uuid

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.ingest.conftest import IntakeWorld, Sender, StartIntake
from watchfloor.bus import SpoolConfig
from watchfloor.core.types import TenantId
from watchfloor.ingest import metrics
from watchfloor.ingest.hec import AckRegistry, split_concatenated_json
from watchfloor.ingest.http import IntakeSettings

EVENT = "/services/collector/event"
RAW = "/services/collector/raw"
ACK = "/services/collector/ack"


def splunk(sender: Sender) -> dict[str, str]:
    return {"Authorization": f"Splunk {sender.token}"}


def channel_headers(sender: Sender, channel: str) -> dict[str, str]:
    return {**splunk(sender), "X-Splunk-Request-Channel": channel}


def post(
    world: IntakeWorld,
    body: bytes | str,
    *,
    path: str = EVENT,
    headers: dict[str, str] | None = None,
    **kwargs: object,
):
    with world.client() as client:
        content = body.encode() if isinstance(body, str) else body
        return client.post(
            path, content=content, headers=splunk(world.clinic) if headers is None else headers, **kwargs
        )  # type: ignore[arg-type]


# --- events ---------------------------------------------------------------------------------------------


def test_event_objects_become_json_envelopes_with_hec_metadata(intake: IntakeWorld) -> None:
    body = {
        "time": 1700000000.5,
        "host": "dc01",
        "source": "WinEventLog:Security",
        "sourcetype": "XmlWinEventLog",
        "index": "main",
        "fields": {"site": "north", "tags": ["a", "b"]},
        "event": {"EventID": 4625, "User": "bob", "nested": {"x": [1, 2]}},
    }
    response = post(intake, json.dumps(body, indent=2))
    assert response.status_code == 200
    assert response.json() == {"text": "Success", "code": 0}
    [env] = intake.drain()
    assert env.tenant == "clinic"
    assert env.source == f"hec:{intake.clinic.token_id}"
    assert env.format == "json"
    assert env.body == orjson.dumps(body["event"])
    assert env.offset == "event 0"
    assert env.meta == {
        "time": "1700000000.5",
        "host": "dc01",
        "source": "WinEventLog:Security",
        "sourcetype": "XmlWinEventLog",
        "index": "main",
        "fields": '{"site":"north","tags":["a","b"]}',
    }


@pytest.mark.parametrize("path", ["/services/collector", EVENT, "/services/collector/event/1.0"])
def test_concatenated_events_on_every_event_path(intake: IntakeWorld, path: str) -> None:
    body = '{"event": {"n": 1}}{"event":"plain text line","time":"1700000001"}\n\n\t {"event": 42}  \r\n'
    response = post(intake, body, path=path)
    assert response.status_code == 200, response.text
    envs = intake.drain()
    assert [(e.format, e.body, e.offset) for e in envs] == [
        ("json", b'{"n":1}', "event 0"),
        ("text", b"plain text line", "event 1"),
        ("text", b"42", "event 2"),
    ]
    assert envs[1].meta == {"time": "1700000001"}


def test_query_parameters_give_default_metadata(intake: IntakeWorld) -> None:
    response = post(
        intake, '{"event":"x"}{"event":"y","host":"h2"}', params={"host": "h1", "sourcetype": "st"}
    )
    assert response.status_code == 200
    first, second = intake.drain()
    assert first.meta == {"host": "h1", "sourcetype": "st"}
    assert second.meta == {"host": "h2", "sourcetype": "st"}


def test_gzip_bodies_are_accepted(intake: IntakeWorld) -> None:
    body = gzip.compress(b'{"event":{"a":1}}\n{"event":{"a":2}}')
    response = post(intake, body, headers={**splunk(intake.clinic), "Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert [e.body for e in intake.drain()] == [b'{"a":1}', b'{"a":2}']


def test_broken_gzip_is_invalid_data_format(intake: IntakeWorld) -> None:
    response = post(
        intake, b"\x1f\x8b not really gzip", headers={**splunk(intake.clinic), "Content-Encoding": "gzip"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == 6
    assert intake.drain() == []


def test_unknown_content_encoding_is_refused(intake: IntakeWorld) -> None:
    response = post(intake, b"xx", headers={**splunk(intake.clinic), "Content-Encoding": "br"})
    assert response.status_code == 400
    assert intake.drain() == []


# --- a batch with an invalid event in the middle --------------------------------------------------------


def test_invalid_middle_event_keeps_the_prefix_and_dead_letters_the_bad_one(intake: IntakeWorld) -> None:
    body = '{"event":"first"} {"event":"second"} {"event": oops} {"event":"fourth"}'
    response = post(intake, body)
    assert response.status_code == 400
    assert response.json() == {"text": "Invalid data format", "code": 6, "invalid-event-number": 2}
    assert [e.body for e in intake.drain()] == [b"first", b"second"]
    [letter] = intake.db.dead_letters.list(intake.clinic.tenant)
    assert letter.source == f"hec:{intake.clinic.token_id}"
    assert letter.record_id == 2
    assert letter.code == "hec.invalid_json"
    assert "invalid JSON" in letter.message
    raw = intake.db.dead_letters.get_raw(intake.clinic.tenant, letter.id)
    assert raw is not None
    assert raw.startswith(b'{"event": oops}')
    assert intake.db.dead_letters.list(intake.lawfirm.tenant) == []


@pytest.mark.parametrize(
    ("bad", "status", "code", "dl_code"),
    [
        ('{"time": 1}', 400, 12, "hec.missing_event"),
        ('{"event": null}', 400, 12, "hec.missing_event"),
        ('{"event": "   "}', 400, 13, "hec.blank_event"),
        ('{"event": {}}', 400, 13, "hec.blank_event"),
        ('{"event": "x", "index": "Not An Index!"}', 400, 7, "hec.invalid_index"),
        ('{"event": "x", "index": 5}', 400, 7, "hec.invalid_index"),
        ('{"event": "x", "fields": {"deep": {"no": 1}}}', 400, 15, "hec.invalid_fields"),
        ('{"event": "x", "time": "yesterday"}', 400, 6, "hec.invalid_time"),
        ('{"event": "x", "host": ["a"]}', 400, 6, "hec.invalid_host"),
        ('["event", "x"]', 400, 6, "hec.invalid_json"),
        ('{"event": "\\ud800"}', 400, 6, "hec.invalid_json"),
        ('{"event": NaN}', 400, 6, "hec.invalid_json"),
    ],
)
def test_per_event_error_codes(intake: IntakeWorld, bad: str, status: int, code: int, dl_code: str) -> None:
    response = post(intake, '{"event":"ok"}\n' + bad + '\n{"event":"never"}')
    assert response.status_code == status
    assert response.json()["code"] == code
    assert response.json()["invalid-event-number"] == 1
    assert [e.body for e in intake.drain()] == [b"ok"]
    [letter] = intake.db.dead_letters.list(intake.clinic.tenant)
    assert (letter.code, letter.record_id) == (dl_code, 1)


def test_invalid_utf8_in_a_later_event(intake: IntakeWorld) -> None:
    response = post(intake, b'{"event":"a"}{"event":"b\xff"}')
    assert response.status_code == 400
    assert response.json() == {"text": "Invalid data format", "code": 6, "invalid-event-number": 1}
    assert [e.body for e in intake.drain()] == [b"a"]
    [letter] = intake.db.dead_letters.list(intake.clinic.tenant)
    assert "UTF-8" in letter.message


def test_allowed_indexes_are_enforced(start_intake: StartIntake) -> None:
    world = start_intake(IntakeSettings(hec_allowed_indexes=frozenset({"main"})))
    assert post(world, '{"event":"x","index":"main"}').status_code == 200
    response = post(world, '{"event":"x","index":"other"}')
    assert response.json()["code"] == 7
    response = post(world, '{"event":"x"}', params={"index": "other"})
    assert (response.status_code, response.json()["code"]) == (400, 7)


def test_oversized_event_is_refused_and_dead_lettered(start_intake: StartIntake) -> None:
    world = start_intake(IntakeSettings(max_event_bytes=100))
    response = post(world, '{"event":"small"}{"event":"' + "x" * 200 + '"}')
    assert response.json() == {"text": "Invalid data format", "code": 6, "invalid-event-number": 1}
    assert [e.body for e in world.drain()] == [b"small"]
    [letter] = world.db.dead_letters.list(world.clinic.tenant)
    assert letter.code == "hec.too_large"


# --- request-level error codes --------------------------------------------------------------------------


def test_token_required_code_2(intake: IntakeWorld) -> None:
    response = post(intake, '{"event":"x"}', headers={})
    assert (response.status_code, response.json()) == (401, {"text": "Token is required", "code": 2})


def test_query_string_token_is_not_enabled_code_16(intake: IntakeWorld) -> None:
    response = post(intake, '{"event":"x"}', headers={}, params={"token": intake.clinic.token})
    assert (response.status_code, response.json()["code"]) == (400, 16)
    assert intake.drain() == []


@pytest.mark.parametrize("header", ["Token abc", "Splunk", "justatoken", "Basic !!!notbase64"])
def test_invalid_authorization_code_3(intake: IntakeWorld, header: str) -> None:
    response = post(intake, '{"event":"x"}', headers={"Authorization": header})
    assert (response.status_code, response.json()) == (401, {"text": "Invalid authorization", "code": 3})


@pytest.mark.parametrize("token", ["not-a-token", "wf_abcdefgh_" + "A" * 43])
def test_invalid_token_code_4(intake: IntakeWorld, token: str) -> None:
    response = post(intake, '{"event":"x"}', headers={"Authorization": f"Splunk {token}"})
    assert (response.status_code, response.json()) == (403, {"text": "Invalid token", "code": 4})
    assert intake.drain() == []


@pytest.mark.parametrize("body", [b"", b"  \n\t "])
def test_no_data_code_5(intake: IntakeWorld, body: bytes) -> None:
    response = post(intake, body)
    assert (response.status_code, response.json()) == (400, {"text": "No data", "code": 5})


def test_first_event_invalid_json_code_6(intake: IntakeWorld) -> None:
    response = post(intake, "this is not json")
    assert response.json() == {"text": "Invalid data format", "code": 6, "invalid-event-number": 0}
    assert intake.drain() == []
    [letter] = intake.db.dead_letters.list(intake.clinic.tenant)
    assert letter.record_id == 0


def test_server_busy_code_9_with_retry_after(start_intake: StartIntake) -> None:
    world = start_intake(
        spool=SpoolConfig(min_free_bytes=0, high_water_bytes=1, throttle_retry_after_seconds=2.5)
    )
    assert post(world, '{"event":"first"}').status_code == 200
    response = post(world, '{"event":"second"}')
    assert response.status_code == 503
    assert response.json() == {"text": "Server is busy", "code": 9}
    assert response.headers["Retry-After"] == "3"
    assert [e.body for e in world.drain()] == [b"first"]
    assert world.db.dead_letters.list(world.clinic.tenant) == []


def test_spool_full_at_publish_time_is_code_9_and_stores_nothing(start_intake: StartIntake) -> None:
    world = start_intake(spool=SpoolConfig(min_free_bytes=0, max_bytes=1000, max_segment_bytes=4096))
    response = post(world, '{"event":"ok"}{"event":"' + "y" * 2000 + '"}{"event": bad}')
    assert (response.status_code, response.json()["code"]) == (503, 9)
    assert "Retry-After" in response.headers
    assert world.drain() == []
    assert world.db.dead_letters.list(world.clinic.tenant) == []


def test_channel_required_codes_10_and_11(start_intake: StartIntake) -> None:
    world = start_intake(IntakeSettings(hec_acks="required"))
    response = post(world, '{"event":"x"}')
    assert (response.status_code, response.json()) == (400, {"text": "Data channel is missing", "code": 10})
    response = post(world, '{"event":"x"}', headers=channel_headers(world.clinic, "not-a-guid"))
    assert (response.status_code, response.json()) == (400, {"text": "Invalid data channel", "code": 11})
    response = post(world, '{"event":"x"}', params={"channel": str(uuid.uuid4())})
    assert response.json() == {"text": "Success", "code": 0, "ackId": 0}
    assert len(world.drain()) == 1


def test_invalid_channel_is_refused_even_when_optional(intake: IntakeWorld) -> None:
    response = post(intake, '{"event":"x"}', headers=channel_headers(intake.clinic, "{nope}"))
    assert response.json()["code"] == 11
    assert intake.drain() == []


def test_ack_disabled_code_14(start_intake: StartIntake) -> None:
    world = start_intake(IntakeSettings(hec_acks="off"))
    channel = str(uuid.uuid4())
    response = post(world, '{"event":"x"}', headers=channel_headers(world.clinic, channel))
    assert response.json() == {"text": "Success", "code": 0}
    response = post(world, '{"acks":[0]}', path=ACK, headers=channel_headers(world.clinic, channel))
    assert (response.status_code, response.json()) == (400, {"text": "ACK is disabled", "code": 14})


def test_request_too_large_is_413(start_intake: StartIntake) -> None:
    world = start_intake(IntakeSettings(max_request_bytes=4096, max_event_bytes=1024))
    response = post(world, '{"event":"' + "z" * 8000 + '"}')
    assert response.status_code == 413
    assert world.drain() == []


# --- acks -----------------------------------------------------------------------------------------------


def test_ack_ids_are_true_only_once_and_only_for_issued_ids(intake: IntakeWorld) -> None:
    channel = str(uuid.uuid4())
    headers = channel_headers(intake.clinic, channel)
    assert post(intake, '{"event":"a"}', headers=headers).json() == {"text": "Success", "code": 0, "ackId": 0}
    assert post(intake, '{"event":"b"}', headers=headers).json()["ackId"] == 1
    assert post(intake, '{"event": broken}', headers=headers).status_code == 400  # no ackId for a refusal
    response = post(intake, '{"acks":[0,1,2,7]}', path=ACK, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"acks": {"0": True, "1": True, "2": False, "7": False}}
    # Reported true once, then forgotten.
    assert post(intake, '{"acks":[0,1]}', path=ACK, headers=headers).json() == {
        "acks": {"0": False, "1": False}
    }
    assert len(intake.drain()) == 2


def test_ack_state_is_isolated_per_tenant(intake: IntakeWorld) -> None:
    channel = str(uuid.uuid4())
    assert post(intake, '{"event":"a"}', headers=channel_headers(intake.clinic, channel)).json()["ackId"] == 0
    spy = post(intake, '{"acks":[0]}', path=ACK, headers=channel_headers(intake.lawfirm, channel))
    assert spy.json() == {"acks": {"0": False}}
    # The lawfirm's own ids on the same channel number from 0 and do not touch the clinic's.
    assert (
        post(intake, '{"event":"l"}', headers=channel_headers(intake.lawfirm, channel)).json()["ackId"] == 0
    )
    mine = post(intake, '{"acks":[0]}', path=ACK, params={"channel": channel}, headers=splunk(intake.clinic))
    assert mine.json() == {"acks": {"0": True}}
    tenants = [e.tenant for e in intake.drain()]
    assert tenants == ["clinic", "lawfirm"]


@pytest.mark.parametrize("body", ['{"acks": "0"}', '{"acks": [true]}', '{"acks": [-1]}', "[0]", "nope"])
def test_malformed_ack_query_is_code_6(intake: IntakeWorld, body: str) -> None:
    headers = channel_headers(intake.clinic, str(uuid.uuid4()))
    response = post(intake, body, path=ACK, headers=headers)
    assert (response.status_code, response.json()["code"]) == (400, 6)


def test_ack_query_needs_a_channel_and_a_token(intake: IntakeWorld) -> None:
    assert post(intake, '{"acks":[0]}', path=ACK).json()["code"] == 10
    response = post(intake, '{"acks":[0]}', path=ACK, headers={"X-Splunk-Request-Channel": str(uuid.uuid4())})
    assert response.json()["code"] == 2


def test_ack_registry_forgets_after_ttl_and_stays_bounded() -> None:
    now = [0.0]
    registry = AckRegistry(
        ttl_seconds=600, max_channels_per_tenant=2, max_pending_per_channel=3, clock=lambda: now[0]
    )
    clinic = TenantId("clinic")
    ids = [registry.issue(clinic, "c1") for _ in range(5)]
    assert ids == [0, 1, 2, 3, 4]
    assert registry.pending(clinic, "c1") == 3  # the oldest two were dropped
    assert registry.query(clinic, "c1", [0, 4]) == {"0": False, "4": True}
    now[0] = 601.0
    assert registry.query(clinic, "c1", [2, 3]) == {"2": False, "3": False}  # expired
    registry.issue(clinic, "c2")
    registry.issue(clinic, "c3")
    registry.issue(clinic, "c4")
    assert registry.pending(clinic, "c1") == 0
    assert registry.pending(clinic, "c2") == 0  # evicted: at most 2 channels per tenant
    assert registry.pending(clinic, "c4") == 1


# --- raw, health ----------------------------------------------------------------------------------------


def test_raw_endpoint_turns_lines_into_text_events(intake: IntakeWorld) -> None:
    body = b"first line\r\n\nsecond line\nthird \xff line\n"
    response = post(
        intake, body, path=RAW, params={"host": "fw1", "sourcetype": "pan:traffic", "source": "udp:514"}
    )
    assert response.json() == {"text": "Success", "code": 0}
    envs = intake.drain()
    assert [(e.format, e.body, e.offset) for e in envs] == [
        ("text", b"first line", "line 1"),
        ("text", b"second line", "line 3"),
        ("text", b"third \xff line", "line 4"),
    ]
    assert all(e.meta == {"host": "fw1", "sourcetype": "pan:traffic", "source": "udp:514"} for e in envs)
    assert all(e.source == f"hec:{intake.clinic.token_id}" for e in envs)


def test_raw_endpoint_issues_acks_and_dead_letters_oversized_lines(start_intake: StartIntake) -> None:
    world = start_intake(IntakeSettings(max_event_bytes=50))
    channel = str(uuid.uuid4())
    body = "short\n" + "L" * 80 + "\nafter\n"
    response = post(world, body, path="/services/collector/raw/1.0", params={"channel": channel})
    assert response.json() == {"text": "Success", "code": 0, "ackId": 0}
    assert [e.body for e in world.drain()] == [b"short", b"after"]
    [letter] = world.db.dead_letters.list(world.clinic.tenant)
    assert (letter.line, letter.code) == (2, "hec.too_large")


def test_health_is_17_and_18_when_the_spool_is_full(start_intake: StartIntake) -> None:
    world = start_intake()
    with world.client() as client:
        response = client.get("/services/collector/health")
        assert (response.status_code, response.json()) == (200, {"text": "HEC is healthy", "code": 17})
    full = start_intake(spool=SpoolConfig(min_free_bytes=1 << 62))
    with full.client() as client:
        response = client.get("/services/collector/health")
        assert response.status_code == 503
        assert response.json() == {"text": "HEC is unhealthy, queues are full", "code": 18}
        assert response.headers["Retry-After"] == "5"


# --- metrics --------------------------------------------------------------------------------------------


def test_metrics_move(intake: IntakeWorld) -> None:
    labels = {"tenant": "clinic", "protocol": "hec"}
    before = {
        name: metrics.sample(f"watchfloor_intake_{name}_total", **labels)
        for name in ("received", "accepted", "bytes")
    }
    rejected = metrics.sample("watchfloor_intake_rejected_total", reason="invalid_json", **labels)
    unauth = metrics.sample(
        "watchfloor_intake_rejected_total", tenant="-", protocol="hec", reason="auth_missing"
    )
    post(intake, '{"event":"a"}{"event":"b"}{"event": x}')
    post(intake, '{"event":"a"}', headers={})
    assert metrics.sample("watchfloor_intake_received_total", **labels) == before["received"] + 3
    assert metrics.sample("watchfloor_intake_accepted_total", **labels) == before["accepted"] + 2
    assert metrics.sample("watchfloor_intake_bytes_total", **labels) > before["bytes"]
    assert metrics.sample("watchfloor_intake_rejected_total", reason="invalid_json", **labels) == rejected + 1
    assert (
        metrics.sample("watchfloor_intake_rejected_total", tenant="-", protocol="hec", reason="auth_missing")
        == unauth + 1
    )


# --- the splitter, property-based ----------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
whitespace = st.text(alphabet=" \t\r\n", max_size=4)


@settings(max_examples=100, deadline=None)
@given(events=st.lists(objects, max_size=6), gaps=st.lists(whitespace, min_size=7, max_size=7))
def test_splitter_returns_the_same_events_for_any_whitespace(
    events: list[dict[str, object]], gaps: list[str]
) -> None:
    body = gaps[0] + "".join(json.dumps(event) + gap for event, gap in zip(events, gaps[1:], strict=False))
    raws, error = split_concatenated_json(body.encode())
    assert error is None
    assert [orjson.loads(raw) for raw in raws] == events
    compact, error = split_concatenated_json(
        "".join(json.dumps(e, separators=(",", ":")) for e in events).encode()
    )
    assert error is None
    assert [orjson.loads(raw) for raw in compact] == events


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_splitter_never_raises_on_arbitrary_bytes(body: bytes) -> None:
    raws, error = split_concatenated_json(body)
    assert all(raw.startswith(b"{") and raw.endswith(b"}") for raw in raws)
    if error is not None:
        assert error.index == len(raws)
        assert error.reason


@settings(max_examples=100, deadline=None)
@given(prefix=st.lists(objects, max_size=3), junk=st.binary(min_size=1, max_size=50))
def test_splitter_keeps_the_valid_prefix(prefix: list[dict[str, object]], junk: bytes) -> None:
    body = b"".join(orjson.dumps(e) for e in prefix) + b"\n" + b"!" + junk
    raws, error = split_concatenated_json(body)
    assert [orjson.loads(raw) for raw in raws] == prefix
    assert error is not None
    assert error.index == len(prefix)
    assert error.raw.startswith(b"!")


def test_splitter_survives_deep_nesting() -> None:
    raws, error = split_concatenated_json(b'{"a":' * 100_000 + b"1" + b"}" * 100_000)
    assert raws == []
    assert error is not None
    assert error.index == 0
