"""NDJSON intake over real HTTP: accepted lines, dead-lettered lines with line numbers, limits, capacity."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import pytest

from tests.ingest.conftest import IntakeWorld, Sender, StartIntake
from watchfloor.bus import SpoolConfig
from watchfloor.ingest import metrics
from watchfloor.ingest.http import IntakeSettings

PATH = "/api/v1/ingest/ndjson"


def bearer(sender: Sender) -> dict[str, str]:
    return {"Authorization": f"Bearer {sender.token}"}


def test_lines_become_json_envelopes_as_received(intake: IntakeWorld) -> None:
    body = b'{"a": 1,  "b": "two"}\n\n{"c":[1,2]}\r\n   \n{"d":null}'
    with intake.client(headers=bearer(intake.clinic)) as client:
        response = client.post(PATH, content=body)
    assert response.status_code == 200
    assert response.json() == {"accepted": 3, "rejected": 0, "errors": []}
    envs = intake.drain()
    assert [(e.body, e.offset) for e in envs] == [
        (b'{"a": 1,  "b": "two"}', "line 1"),
        (b'{"c":[1,2]}', "line 3"),
        (b'{"d":null}', "line 5"),
    ]
    assert {(e.tenant, e.source, e.format) for e in envs} == {("clinic", "ndjson", "json")}


def test_bad_lines_are_reported_and_dead_lettered_with_line_numbers(start_intake: StartIntake) -> None:
    world = start_intake(IntakeSettings(max_event_bytes=40))
    body = b"\n".join(
        [
            b'{"ok":1}',  # 1
            b"not json at all",  # 2
            b'{"bad":"\xff\xfe"}',  # 3
            b"[1,2,3]",  # 4
            b'"just a string"',  # 5
            b'{"big":"' + b"x" * 50 + b'"}',  # 6
            b'{"ok":2}',  # 7
            b'{"trailing":',  # 8
        ]
    )
    with world.client(headers=bearer(world.clinic)) as client:
        response = client.post(PATH, content=body)
    assert response.status_code == 200
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (2, 6)
    assert [e["line"] for e in answer["errors"]] == [2, 3, 4, 5, 6, 8]
    assert "UTF-8" in answer["errors"][1]["reason"]
    assert [e.body for e in world.drain()] == [b'{"ok":1}', b'{"ok":2}']
    letters = world.db.dead_letters.list(world.clinic.tenant)
    assert [(dl.line, dl.code, dl.source) for dl in letters] == [
        (2, "ndjson.invalid_json", "ndjson"),
        (3, "ndjson.invalid_utf8", "ndjson"),
        (4, "ndjson.not_object", "ndjson"),
        (5, "ndjson.not_object", "ndjson"),
        (6, "ndjson.too_large", "ndjson"),
        (8, "ndjson.invalid_json", "ndjson"),
    ]
    assert world.db.dead_letters.get_raw(world.clinic.tenant, letters[1].id) == b'{"bad":"\xff\xfe"}'
    assert world.db.dead_letters.list(world.lawfirm.tenant) == []


def test_reported_errors_are_capped_but_all_are_dead_lettered(start_intake: StartIntake) -> None:
    world = start_intake(IntakeSettings(max_reported_errors=3))
    with world.client(headers=bearer(world.clinic)) as client:
        answer = client.post(PATH, content=b"x\n" * 10).json()
    assert (answer["rejected"], len(answer["errors"]), answer["errors_truncated"]) == (10, 3, True)
    assert len(world.db.dead_letters.list(world.clinic.tenant)) == 10


def test_gzip_body(intake: IntakeWorld) -> None:
    with intake.client(headers={**bearer(intake.clinic), "Content-Encoding": "gzip"}) as client:
        response = client.post(PATH, content=gzip.compress(b'{"z":1}\n{"z":2}\n'))
    assert response.json()["accepted"] == 2


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Splunk x"}, {"Authorization": "Bearer"}],
)
def test_unauthorized_is_a_problem_document(intake: IntakeWorld, headers: dict[str, str]) -> None:
    with intake.client() as client:
        response = client.post(PATH, content=b'{"a":1}', headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert intake.drain() == []


def test_basic_auth_is_not_accepted_here(intake: IntakeWorld) -> None:
    with intake.client() as client:
        response = client.post(PATH, content=b'{"a":1}', auth=("user", intake.clinic.token))
    assert response.status_code == 401


def test_empty_body_is_400(intake: IntakeWorld) -> None:
    with intake.client(headers=bearer(intake.clinic)) as client:
        assert client.post(PATH, content=b"\n \n").status_code == 400


def test_413_with_content_length_chunked_and_gzip_bomb(start_intake: StartIntake) -> None:
    world = start_intake(IntakeSettings(max_request_bytes=64 * 1024, max_event_bytes=1024))
    line = b'{"pad":"' + b"p" * 100 + b'"}\n'
    with world.client(headers=bearer(world.clinic)) as client:
        response = client.post(PATH, content=line * 2000)
        assert response.status_code == 413

        def chunks() -> Iterator[bytes]:
            for _ in range(2000):
                yield line

        response = client.post(PATH, content=chunks())
        assert response.status_code == 413
        bomb = gzip.compress(line * 5000)
        assert len(bomb) < 64 * 1024
        response = client.post(PATH, content=bomb, headers={"Content-Encoding": "gzip"})
        assert response.status_code == 413
        # The connection pool still works afterwards.
        assert client.post(PATH, content=line).json()["accepted"] == 1
    assert len(world.drain()) == 1


def test_throttle_429_then_full_503(start_intake: StartIntake) -> None:
    world = start_intake(
        spool=SpoolConfig(min_free_bytes=0, high_water_bytes=1, throttle_retry_after_seconds=0.2)
    )
    with world.client(headers=bearer(world.clinic)) as client:
        assert client.post(PATH, content=b'{"a":1}').status_code == 200
        response = client.post(PATH, content=b'{"a":2}\nnot json\n')
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "1"
    assert [e.body for e in world.drain()] == [b'{"a":1}']
    # Nothing of a refused request reaches the dead-letter store: the sender retries it whole.
    assert world.db.dead_letters.list(world.clinic.tenant) == []
    full = start_intake(spool=SpoolConfig(min_free_bytes=1 << 62, full_retry_after_seconds=7))
    with full.client(headers=bearer(full.clinic)) as client:
        response = client.post(PATH, content=b'{"a":1}')
        assert (response.status_code, response.headers["Retry-After"]) == (503, "7")


def test_spool_refusing_at_publish_time_is_503_and_stores_nothing(start_intake: StartIntake) -> None:
    world = start_intake(spool=SpoolConfig(min_free_bytes=0, max_bytes=300, max_segment_bytes=4096))
    body = b'{"pad":"' + b"q" * 400 + b'"}\nnot json\n'
    with world.client(headers=bearer(world.clinic)) as client:
        response = client.post(PATH, content=body)
    assert response.status_code == 503
    assert "Retry-After" in response.headers
    assert world.drain() == []
    assert world.db.dead_letters.list(world.clinic.tenant) == []


def test_metrics_count_lines_and_reasons(intake: IntakeWorld) -> None:
    labels = {"tenant": "lawfirm", "protocol": "ndjson"}
    before = metrics.sample("watchfloor_intake_rejected_total", reason="not_object", **labels)
    accepted = metrics.sample("watchfloor_intake_accepted_total", **labels)
    with intake.client(headers=bearer(intake.lawfirm)) as client:
        client.post(PATH, content=b'{"a":1}\n[]\n7\n')
    assert metrics.sample("watchfloor_intake_rejected_total", reason="not_object", **labels) == before + 2
    assert metrics.sample("watchfloor_intake_accepted_total", **labels) == accepted + 1
