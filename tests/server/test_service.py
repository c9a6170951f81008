"""The whole service in one process on loopback: HEC and syslog in, detections stored, ops endpoints."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn

from tests.respond.fakes.mde import MDE_SCOPE, FakeMde
from tests.respond.fakes.msgraph import CLIENT_ID, CLIENT_SECRET, DIRECTORY_ID, FakeEntra
from tests.respond.fakes.server import LoopbackServer
from tests.server.test_crash import free_port, office_macro_event
from watchfloor.api import hash_admin_token
from watchfloor.server.service import Service
from watchfloor.server.settings import ServeSettings

ADMIN_TOKEN = "operator-token-for-tests-0123456789"


class Running:
    def __init__(self, service: Service, url: str) -> None:
        self.service = service
        self.url = url


@pytest.fixture
def running(tmp_path: Path, db_url: str) -> Iterator[Running]:
    port = free_port()
    settings = ServeSettings.load(
        None,
        data_dir=tmp_path / "data",
        database_url=db_url,
        port=port,
        admin_token_sha256=hash_admin_token(ADMIN_TOKEN),
        archive_flush_seconds=0.2,
        syslog_udp_port=0,
        syslog_tcp_port=0,
        syslog_tenant="clinic",
    )
    service = Service(settings)
    service.db.tenants.create("clinic", name="Clinic", vertical="healthcare", tier="standard", actor="test")
    server = uvicorn.Server(uvicorn.Config(service.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield Running(service, url)
    finally:
        server.should_exit = True
        thread.join(15)
        service.close()


def wait_for(predicate: object, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_hec_events_become_stored_detections_and_metrics(running: Running) -> None:
    db = running.service.db
    token = db.tokens.create("clinic", description="winlogbeat", actor="test").plaintext  # type: ignore[arg-type]
    body = b"\n".join(orjson.dumps({"event": office_macro_event(r)}) for r in range(1, 11))
    response = httpx.post(
        f"{running.url}/services/collector/event", content=body, headers={"Authorization": f"Splunk {token}"}
    )
    assert response.status_code == 200, response.text
    assert wait_for(lambda: db.detections.count("clinic") == 10)  # type: ignore[arg-type]
    stored = db.detections.list("clinic", limit=20)  # type: ignore[arg-type]
    assert {d.rule_title for d in stored} == {"Encoded PowerShell Launched by an Office Application"}
    # the raw and normalized events are archived (acked only once their Parquet file is durable)
    assert wait_for(lambda: running.service.bus.stats().consumers[("ingest.raw", "detect")].pending == 0)
    found = httpx.get(
        f"{running.url}/api/v1/tenants/clinic/events/search",
        params={"since": "2026-11-01T00:00:00Z", "until": "2026-11-03T00:00:00Z", "where": "EventID=1"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert found.status_code == 200, found.text
    assert found.json()["count"] == 10
    running.service.health_tick()  # telemetry health: the source is known, with its volume
    sources = {h.source: h for h in db.health.list("clinic")}  # type: ignore[arg-type]
    sysmon = sources["windows/microsoft-windows-sysmon/operational"]
    assert sysmon.events_total == 10
    assert sysmon.status == "ok"
    ready = httpx.get(f"{running.url}/readyz").json()
    assert ready["ready"] is True
    metrics = httpx.get(f"{running.url}/metrics").text
    assert 'watchfloor_detect_detections_total{tenant="clinic"} 10.0' in metrics
    assert 'watchfloor_intake_accepted_total{protocol="hec",tenant="clinic"}' in metrics
    # a wrong token is refused and counted, nothing published
    refused = httpx.post(
        f"{running.url}/services/collector/event", content=body, headers={"Authorization": "Splunk wf_nope"}
    )
    assert refused.status_code in (401, 403)


def test_syslog_over_udp_and_tcp_reaches_the_pipeline(running: Running) -> None:
    ports = running.service.syslog_ports
    line = b"<38>Dec  3 10:00:00 web01 sshd[4242]: Failed password for root from 203.0.113.9 port 22 ssh2"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(line, ("127.0.0.1", ports["udp"]))
    with socket.create_connection(("127.0.0.1", ports["tcp"])) as tcp:
        tcp.sendall(line + b"\n")
    worker = running.service.worker
    assert wait_for(lambda: worker.counters.received.get("clinic", 0) >= 2)
    assert worker.counters.dead_letters.get("clinic", 0) == 0


def test_disk_full_refuses_new_data_and_keeps_what_is_stored(tmp_path: Path) -> None:
    """Free space below the spool's floor: HEC answers 503 with Retry-After; nothing stored is touched."""
    db_url = f"sqlite:///{tmp_path / 'wf.db'}"
    body = b"\n".join(orjson.dumps({"event": office_macro_event(r)}) for r in range(1, 6))
    token = ""
    for floor in (0, 2**62):  # a normal disk, then one "full" (the floor exceeds any free space)
        port = free_port()
        settings = ServeSettings.load(
            None, data_dir=tmp_path / "data", database_url=db_url, port=port, spool_min_free_bytes=floor
        )
        service = Service(settings)
        if not token:
            service.db.tenants.create(
                "clinic", name="Clinic", vertical="healthcare", tier="standard", actor="t"
            )
            token = service.db.tokens.create("clinic", description="x", actor="t").plaintext  # type: ignore[arg-type]
        server = uvicorn.Server(uvicorn.Config(service.app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            assert wait_for(lambda server=server: server.started)
            url = f"http://127.0.0.1:{port}/services/collector/event"
            response = httpx.post(url, content=body, headers={"Authorization": f"Splunk {token}"})
            if floor == 0:
                assert response.status_code == 200
                assert wait_for(lambda s=service: s.db.detections.count("clinic") == 5)  # type: ignore[arg-type]
            else:
                assert response.status_code == 503
                assert int(response.headers["Retry-After"]) >= 1
                assert response.json()["code"] == 9  # HEC "server is busy"
                assert service.db.detections.count("clinic") == 5  # type: ignore[arg-type]
                assert service.bus.stats().subjects["ingest.raw"].messages == 5
        finally:
            server.should_exit = True
            thread.join(15)
            service.close()


def test_admin_api_creates_a_tenant_and_replays_dead_letters_through_the_running_stage(
    running: Running,
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Watchfloor-Actor": "dana"}
    created = httpx.post(
        f"{running.url}/api/v1/tenants",
        json={"id": "lawfirm", "name": "Law Firm", "vertical": "legal", "tier": "premium"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    token = httpx.post(
        f"{running.url}/api/v1/tenants/lawfirm/tokens", json={"description": "fluent-bit"}, headers=admin
    ).json()["plaintext"]
    sent = httpx.post(
        f"{running.url}/api/v1/ingest/ndjson",
        content=b"{broken\n",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert sent.status_code in (200, 207, 400), sent.text
    letters = httpx.get(f"{running.url}/api/v1/tenants/lawfirm/dead-letters", headers=admin).json()
    assert len(letters) == 1
    replay = httpx.post(
        f"{running.url}/api/v1/tenants/lawfirm/dead-letters/replay",
        json={"ids": [letters[0]["id"]]},
        headers=admin,
    )
    assert replay.status_code == 202, replay.text
    worker = running.service.worker
    assert wait_for(lambda: worker.counters.dead_letters.get("lawfirm", 0) == 1)  # still broken: dead again
    assert (
        httpx.get(
            f"{running.url}/api/v1/tenants/clinic/dead-letters", headers={"Authorization": "Bearer wrong"}
        ).status_code
        == 401
    )


def test_a_flood_of_malformed_input_is_counted_and_kept_and_the_service_stays_up(running: Running) -> None:
    db = running.service.db
    token = db.tokens.create("clinic", description="fluent-bit", actor="test").plaintext  # type: ignore[arg-type]
    rng = random.Random(3)
    garbage = [b"{not json", b"\xff\xfe\x00binary", b"[1,2,3]", b'"a string"', b"{" * 500, b"null"]
    sent_bad = 0
    with httpx.Client(timeout=30) as client:
        for _request in range(20):
            lines = [rng.choice(garbage) for _ in range(100)]
            lines.append(orjson.dumps({"ok": True}))
            response = client.post(
                f"{running.url}/api/v1/ingest/ndjson",
                content=b"\n".join(lines),
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code in (200, 207, 400), response.text
            sent_bad += 100
        huge = b'{"x": "' + b"a" * (1024 * 1024 + 10) + b'"}'
        response = client.post(
            f"{running.url}/api/v1/ingest/ndjson", content=huge, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code in (200, 207, 400, 413)
        sent_bad += 1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for _ in range(50):
            udp.sendto(b"\x00\x01\x02 not syslog at all", ("127.0.0.1", running.service.syslog_ports["udp"]))
    stored = db.dead_letters.list("clinic", limit=100_000)  # type: ignore[arg-type]
    assert len(stored) == sent_bad  # every bad record kept, with its reason and line
    assert all(d.code and d.message for d in stored)
    assert httpx.get(f"{running.url}/readyz").json()["ready"] is True
    worker = running.service.worker
    assert wait_for(lambda: worker.counters.received.get("clinic", 0) >= 20)  # the good lines went through


def test_detections_become_an_incident_the_analyst_works_over_the_api(running: Running) -> None:
    """The served chain: HEC -> detection stage -> triage stage -> incident -> API -> acknowledgement."""
    db = running.service.db
    token = db.tokens.create("clinic", description="winlogbeat", actor="test").plaintext  # type: ignore[arg-type]
    body = b"\n".join(orjson.dumps({"event": office_macro_event(r)}) for r in range(1, 6))
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = httpx.post(
        f"{running.url}/services/collector/event", content=body, headers={"Authorization": f"Splunk {token}"}
    )
    assert response.status_code == 200, response.text

    def incidents() -> list[dict[str, object]]:
        found = httpx.get(f"{running.url}/api/v1/tenants/clinic/incidents", headers=auth)
        assert found.status_code == 200, found.text
        return list(found.json())

    assert wait_for(lambda: len(incidents()) == 1 and db.alerts.count("clinic") >= 1, 30)  # type: ignore[arg-type]
    (incident,) = incidents()
    shown = httpx.get(f"{running.url}/api/v1/tenants/clinic/incidents/{incident['id']}", headers=auth).json()
    (alert,) = shown["alerts"]
    assert alert["rule_title"] == "Encoded PowerShell Launched by an Office Application"
    assert alert["rule_author"]  # the Detection Rule License asks for the author wherever matches show
    assert alert["count"] == 5  # five repeats on one host: one alert, not five
    assert {f["name"] for f in shown["incident"]["risk"]["factors"]} >= {"rule_level"}
    acked = httpx.post(
        f"{running.url}/api/v1/tenants/clinic/incidents/{incident['id']}/acknowledge", headers=auth
    )
    assert acked.status_code == 200, acked.text
    assert acked.json()["state"] == "acknowledged"
    timeline = httpx.get(
        f"{running.url}/api/v1/tenants/clinic/incidents/{incident['id']}/timeline", headers=auth
    ).json()
    assert [e["kind"] for e in timeline][:1] == ["created"]
    assert timeline[-1]["kind"] == "state_changed"
    assert httpx.get(f"{running.url}/readyz").json()["checks"]["triage_stage"] is True


SERVED_PLAYBOOK = """
id: isolate-office-powershell
name: Isolate a host where Office started encoded PowerShell
version: 1
author: tests
description: ask the duty manager, then isolate the host with Defender for Endpoint
trigger: {severity_at_least: high, techniques: [T1059.001]}
steps:
  - id: approve
    kind: approval
    who: {roles: [soc_manager]}
    timeout_minutes: 30
    message: "Isolate {{ incident.entities.host[0] }}?"
  - id: isolate
    kind: contain
    action: mde.isolate_machine
    with: {host: "{{ incident.entities.host[0] }}", comment: "incident {{ incident.id }}"}
"""


def test_the_served_chain_from_an_event_to_an_approved_isolation(tmp_path: Path) -> None:
    """HEC -> detection -> incident -> playbook run -> approval over the API -> Defender for Endpoint (a
    loopback fake of its API) isolates the host with credentials sealed at rest -> the incident is
    contained."""

    mde = FakeMde(FakeEntra(scopes=(MDE_SCOPE,)))
    mde.add_machine("ws01.clinic.local", last_seen="2026-12-04T08:00:00Z")
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "isolate.yml").write_text(SERVED_PLAYBOOK, encoding="utf-8")
    port = free_port()
    settings = ServeSettings.load(
        None,
        data_dir=tmp_path / "data",
        port=port,
        admin_token_sha256=hash_admin_token(ADMIN_TOKEN),
        dev_mode=True,  # a local secrets key in the data folder
        playbooks_dir=playbooks,
        response_interval_seconds=0.2,
        sla_interval_seconds=3600,
    )
    service = Service(settings)
    db = service.db
    db.tenants.create("clinic", name="Clinic", vertical="healthcare", tier="premium", actor="test")
    token = db.tokens.create("clinic", description="winlogbeat", actor="test").plaintext  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn.Config(service.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with LoopbackServer(mde.app()) as vendor:
        thread.start()
        try:
            assert wait_for(lambda: server.started, 30)
            put = httpx.put(
                f"{url}/api/v1/tenants/clinic/connectors/mde/credentials",
                json={
                    "values": {
                        "tenant_id": DIRECTORY_ID,
                        "client_id": CLIENT_ID,
                        "client_secret": CLIENT_SECRET,
                        "authority": vendor.url,
                        "mde_base": vendor.url,
                    }
                },
                headers=auth,
            )
            assert put.status_code == 204, put.text
            body = b"\n".join(orjson.dumps({"event": office_macro_event(r)}) for r in range(1, 4))
            sent = httpx.post(
                f"{url}/services/collector/event", content=body, headers={"Authorization": f"Splunk {token}"}
            )
            assert sent.status_code == 200, sent.text

            def open_approvals() -> list[dict[str, object]]:
                found = httpx.get(f"{url}/api/v1/approvals", params={"tenant": "clinic"}, headers=auth)
                assert found.status_code == 200, found.text
                return list(found.json())

            assert wait_for(lambda: len(open_approvals()) == 1, 30)
            (approval,) = open_approvals()
            assert mde.actions == []  # nothing happens before someone with the authority says yes
            decided = httpx.post(
                f"{url}/api/v1/tenants/clinic/runs/{approval['run_id']}/approvals/{approval['step_id']}",
                json={"decision": "approve", "reason": "confirmed malicious macro with the customer"},
                headers=auth,
            )
            assert decided.status_code == 200, decided.text
            assert wait_for(lambda: [a["type"] for a in mde.actions] == ["Isolate"], 30)
            (incident,) = db.incidents.list(["clinic"])  # type: ignore[list-item]
            assert wait_for(lambda: db.incidents.get("clinic", incident.id).contained_at is not None, 30)  # type: ignore[arg-type]
            run = httpx.get(f"{url}/api/v1/tenants/clinic/runs/{approval['run_id']}", headers=auth).json()
            assert run["run"]["state"] == "succeeded"
            # the sealed credentials never come back, and never sit in the database in clear
            listed = httpx.get(f"{url}/api/v1/tenants/clinic/connectors", headers=auth).text
            assert CLIENT_SECRET not in listed
            with db.store.read() as connection:
                raw = connection.exec_driver_sql("SELECT * FROM connector_credentials").fetchall()
            assert raw
            assert CLIENT_SECRET not in repr(raw)
        finally:
            server.should_exit = True
            thread.join(15)
            service.close()
