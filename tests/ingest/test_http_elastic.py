"""Elasticsearch-compatible intake over real HTTP: Beats/Fluent Bit/Vector/Logstash probes and `_bulk`."""

from __future__ import annotations

import base64
import gzip

import httpx
import orjson
import pytest

from tests.ingest.conftest import IntakeWorld, Sender, StartIntake
from watchfloor.bus import SpoolConfig
from watchfloor.ingest import metrics
from watchfloor.ingest.http import IntakeSettings


def api_key(sender: Sender, key_id: str = "beats") -> dict[str, str]:
    encoded = base64.b64encode(f"{key_id}:{sender.token}".encode()).decode()
    return {"Authorization": f"ApiKey {encoded}"}


def basic(sender: Sender, user: str = "fluentbit") -> httpx.BasicAuth:
    return httpx.BasicAuth(user, sender.token)


def ndjson(*lines: object) -> bytes:
    return b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines)


def test_beats_probe_sequence_then_bulk(intake: IntakeWorld) -> None:
    headers = api_key(intake.clinic)
    with intake.client(headers=headers) as client:
        root = client.get("/")
        assert root.status_code == 200
        assert root.headers["X-Elastic-Product"] == "Elasticsearch"
        info = root.json()
        assert info["version"]["number"] == "8.11.0"
        assert info["version"]["build_flavor"] == "default"
        assert info["tagline"] == "You Know, for Search"
        assert {"name", "cluster_name", "cluster_uuid"} <= info.keys()
        assert client.head("/").status_code == 200
        lic = client.get("/_license").json()["license"]
        assert (lic["type"], lic["status"]) == ("basic", "active")
        assert client.get("/_xpack").json()["features"]["ilm"]["enabled"] is True
        assert client.get("/_ilm/policy/filebeat").status_code == 200
        assert client.put("/_ilm/policy/filebeat", json={"policy": {"phases": {}}}).json() == {
            "acknowledged": True
        }
        assert client.head("/_index_template/filebeat-8.11.0").status_code == 200
        template = client.get("/_index_template/filebeat-8.11.0").json()
        assert template["index_templates"][0]["name"] == "filebeat-8.11.0"
        put = client.put("/_index_template/filebeat-8.11.0", json={"index_patterns": ["filebeat-8.11.0*"]})
        assert put.json() == {"acknowledged": True}
        assert (
            client.get("/_data_stream/filebeat-8.11.0").json()["data_streams"][0]["name"] == "filebeat-8.11.0"
        )
        assert client.get("/_ingest/pipeline/filebeat-8.11.0-system-auth").status_code == 200
        docs = [
            {"@timestamp": "2026-12-03T10:00:00Z", "message": f"line {i}", "agent": {"type": "filebeat"}}
            for i in range(3)
        ]
        body = ndjson(*(x for doc in docs for x in ({"create": {"_index": "filebeat-8.11.0"}}, doc)))
        bulk = client.post("/_bulk", content=body, headers={"Content-Type": "application/x-ndjson"})
    assert bulk.status_code == 200
    answer = bulk.json()
    assert answer["errors"] is False
    assert [item["create"]["status"] for item in answer["items"]] == [201, 201, 201]
    assert all(item["create"]["result"] == "created" and item["create"]["_id"] for item in answer["items"])
    envs = intake.drain()
    assert [e.body for e in envs] == [orjson.dumps(doc) for doc in docs]
    assert [e.offset for e in envs] == ["item 0", "item 1", "item 2"]
    assert {(e.tenant, e.source, e.format) for e in envs} == {("clinic", "bulk:filebeat-8.11.0", "json")}
    assert envs[0].meta == {"index": "filebeat-8.11.0", "action": "create"}


def test_fluent_bit_style_bulk_with_basic_auth(intake: IntakeWorld) -> None:
    body = (
        b'{"index":{"_index":"fluent-bit","_type":"_doc"}}\n{"@timestamp":"2026-12-03T10:00:00.000Z","log":"a"}\n'
        b'{"index":{"_index":"fluent-bit","_id":"abc"}}\r\n{"log":"b"}\r\n'
    )
    with intake.client() as client:
        response = client.post(
            "/_bulk",
            content=body,
            auth=basic(intake.clinic),
            headers={"Content-Type": "application/x-ndjson"},
        )
    assert response.status_code == 200
    items = response.json()["items"]
    assert [i["index"]["status"] for i in items] == [201, 201]
    assert items[1]["index"]["_id"] == "abc"
    envs = intake.drain()
    assert [e.body for e in envs] == [b'{"@timestamp":"2026-12-03T10:00:00.000Z","log":"a"}', b'{"log":"b"}']
    assert envs[1].meta == {"index": "fluent-bit", "action": "index", "id": "abc"}


def test_vector_style_health_check_and_index_in_path_with_gzip(intake: IntakeWorld) -> None:
    with intake.client(auth=basic(intake.clinic, "vector")) as client:
        health = client.get("/_cluster/health")
        assert (health.status_code, health.json()["status"]) == (200, "green")
        body = gzip.compress(ndjson({"create": {}}, {"m": 1}, {"create": {"_index": "other"}}, {"m": 2}))
        response = client.post(
            "/logs-vector-default/_bulk",
            params={"timeout": "60s"},
            content=body,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/x-ndjson"},
        )
    assert response.status_code == 200
    assert [i["create"]["_index"] for i in response.json()["items"]] == ["logs-vector-default", "other"]
    assert [e.source for e in intake.drain()] == ["bulk:logs-vector-default", "bulk:other"]


def test_nodes_and_security_probes(intake: IntakeWorld) -> None:
    with intake.client(headers=api_key(intake.clinic)) as client:
        nodes = client.get("/_nodes/http").json()
        [node] = nodes["nodes"].values()
        assert node["http"]["publish_address"] == intake.url.removeprefix("http://")
        assert client.get("/_nodes").status_code == 200
        assert client.get("/_security/_authenticate").json()["username"] == intake.clinic.token_id
        assert client.put("/_component_template/x", json={}).json() == {"acknowledged": True}
        assert client.put("/_template/legacy", json={}).json() == {"acknowledged": True}


def test_mixed_valid_and_invalid_items(intake: IntakeWorld) -> None:
    body = b"".join(
        [
            b'{"index":{"_index":"app"}}\n{"ok":1}\n',  # item 0, lines 1-2
            b'{"create":{"_index":"app"}}\n{"broken":\n',  # item 1, lines 3-4: not JSON
            b'{"delete":{"_index":"app","_id":"1"}}\n',  # item 2, line 5
            b'{"update":{"_index":"app","_id":"2"}}\n{"doc":{"a":1}}\n',  # item 3, lines 6-7
            b'{"index":{"_index":"app"}}\n[1,2,3]\n',  # item 4, lines 8-9: not an object
            b'{"index":{"_index":"app"}}\n{"bad":"\xff"}\n',  # item 5, lines 10-11: invalid UTF-8
            b'{"index":{}}\n{"no":"index"}\n',  # item 6, lines 12-13: no index
            b'{"index":{"_index":"Bad*Name"}}\n{"a":1}\n',  # item 7, lines 14-15
            b'{"create":{"_index":"app"}}\n{"ok":2}\n',  # item 8, lines 16-17
        ]
    )
    with intake.client(headers=api_key(intake.clinic)) as client:
        response = client.post("/_bulk", content=body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["errors"] is True
    statuses = [next(iter(item.values()))["status"] for item in answer["items"]]
    assert statuses == [201, 400, 400, 400, 400, 400, 400, 400, 201]
    errors = [next(iter(item.values())).get("error", {}).get("type") for item in answer["items"]]
    assert errors[1] == errors[4] == errors[5] == "mapper_parsing_exception"
    assert errors[6] == "action_request_validation_exception"
    assert errors[7] == "invalid_index_name_exception"
    assert list(answer["items"][2]) == ["delete"]
    assert [e.body for e in intake.drain()] == [b'{"ok":1}', b'{"ok":2}']
    letters = intake.db.dead_letters.list(intake.clinic.tenant)
    assert [(dl.line, dl.record_id, dl.code) for dl in letters] == [
        (4, 1, "bulk.invalid_json"),
        (7, 3, "bulk.unsupported_action"),
        (9, 4, "bulk.not_object"),
        (11, 5, "bulk.invalid_utf8"),
        (13, 6, "bulk.missing_index"),
        (15, 7, "bulk.invalid_index"),
    ]
    assert intake.db.dead_letters.get_raw(intake.clinic.tenant, letters[0].id) == b'{"broken":'


def test_oversized_document_is_a_per_item_error(start_intake: StartIntake) -> None:
    world = start_intake(IntakeSettings(max_event_bytes=64))
    body = ndjson({"index": {"_index": "a"}}, {"x": "y" * 100}, {"index": {"_index": "a"}}, {"x": 1})
    with world.client(headers=api_key(world.clinic)) as client:
        items = client.post("/_bulk", content=body).json()["items"]
    assert [i["index"]["status"] for i in items] == [400, 201]
    assert [dl.code for dl in world.db.dead_letters.list(world.clinic.tenant)] == ["bulk.too_large"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"index":{}\n{"a":1}\n',
        b'{"frobnicate":{}}\n{"a":1}\n',
        b'{"index":{},"create":{}}\n{"a":1}\n',
        b'{"index":"app"}\n{"a":1}\n',
        b'{"index":{"_index":"a"}}\n',
    ],
)
def test_malformed_action_line_refuses_the_request(intake: IntakeWorld, body: bytes) -> None:
    with intake.client(headers=api_key(intake.clinic)) as client:
        response = client.post("/_bulk", content=b'{"index":{"_index":"a"}}\n{"first":1}\n' + body)
    assert response.status_code == 400
    assert response.json()["status"] == 400
    assert response.json()["error"]["type"] in {"x_content_parse_exception", "illegal_argument_exception"}
    assert intake.drain() == []
    [letter] = intake.db.dead_letters.list(intake.clinic.tenant)
    assert letter.code == "bulk.malformed_action"
    assert letter.line == 3


def test_empty_bulk_is_a_validation_error(intake: IntakeWorld) -> None:
    with intake.client(headers=api_key(intake.clinic)) as client:
        response = client.post("/_bulk", content=b"\n")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "action_request_validation_exception"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "ApiKey bm90LWEtdG9rZW4="},
        {"Authorization": "Basic dXNlcjp3cm9uZw=="},
        {"Authorization": "Bearer wf_abcdefgh_" + "A" * 43},
        {"Authorization": "Splunk whatever"},
    ],
)
def test_missing_or_invalid_credentials_are_401_security_exceptions(
    intake: IntakeWorld, headers: dict[str, str]
) -> None:
    with intake.client() as client:
        for method, path in (
            ("GET", "/"),
            ("POST", "/_bulk"),
            ("GET", "/_license"),
            ("PUT", "/_index_template/x"),
        ):
            response = client.request(
                method, path, headers=headers, content=ndjson({"index": {"_index": "a"}}, {"a": 1})
            )
            assert response.status_code == 401
            assert response.json()["error"]["type"] == "security_exception"
            assert response.json()["status"] == 401
            challenges = response.headers.get_list("WWW-Authenticate")
            assert any(c.startswith("Basic") for c in challenges)
            assert "ApiKey" in challenges
    assert intake.drain() == []


def test_throttle_is_429_and_full_is_503_with_retry_after(start_intake: StartIntake) -> None:
    world = start_intake(spool=SpoolConfig(min_free_bytes=0, high_water_bytes=1))
    body = ndjson({"index": {"_index": "a"}}, {"a": 1})
    with world.client(headers=api_key(world.clinic)) as client:
        assert client.post("/_bulk", content=body).status_code == 200
        throttled = client.post("/_bulk", content=body)
        assert throttled.status_code == 429
        assert throttled.json()["error"]["type"] == "es_rejected_execution_exception"
        assert throttled.headers["Retry-After"] == "1"
        assert client.get("/_cluster/health").json()["status"] == "yellow"
    assert len(world.drain()) == 1
    full = start_intake(spool=SpoolConfig(min_free_bytes=0, max_bytes=200, max_segment_bytes=4096))
    with full.client(headers=api_key(full.clinic)) as client:
        response = client.post("/_bulk", content=ndjson({"index": {"_index": "a"}}, {"a": "x" * 500}))
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
    assert full.drain() == []


def test_body_over_the_limit_is_413(start_intake: StartIntake) -> None:
    world = start_intake(IntakeSettings(max_request_bytes=2048, max_event_bytes=1024))
    body = ndjson(*([{"index": {"_index": "a"}}, {"a": "b" * 100}] * 20))
    with world.client(headers=api_key(world.clinic)) as client:
        assert client.post("/_bulk", content=body).status_code == 413
        bomb = gzip.compress(b"\n" * 100_000)
        response = client.post("/_bulk", content=bomb, headers={"Content-Encoding": "gzip"})
        assert response.status_code == 413
    assert world.drain() == []


def test_metrics_count_bulk_items(intake: IntakeWorld) -> None:
    labels = {"tenant": "clinic", "protocol": "elastic"}
    received = metrics.sample("watchfloor_intake_received_total", **labels)
    accepted = metrics.sample("watchfloor_intake_accepted_total", **labels)
    body = ndjson({"index": {"_index": "a"}}, {"a": 1}, {"delete": {"_index": "a", "_id": "1"}})
    with intake.client(headers=api_key(intake.clinic)) as client:
        client.post("/_bulk", content=body)
    assert metrics.sample("watchfloor_intake_received_total", **labels) == received + 2
    assert metrics.sample("watchfloor_intake_accepted_total", **labels) == accepted + 1
