"""kill -9 the real server while a shipper sends over Splunk HEC: every acknowledged event is stored and
detected exactly once after restarts (issue 3's crash test, 20+ cycles)."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from watchfloor.storage import Database

CYCLES = 20
BATCH = 25


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def office_macro_event(record: int) -> dict[str, object]:
    """A Sysmon process creation our content rule 'Encoded PowerShell Launched by an Office Application'
    detects; each record id is a distinct event."""
    return {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                "EventID": 1,
                "EventRecordID": record,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": "WS01.clinic.local",
                "TimeCreated": {"#attributes": {"SystemTime": "2026-11-02T09:00:00.000000Z"}},
            },
            "EventData": {
                "Image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
                "ParentImage": "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
                "CommandLine": f"powershell.exe -nop -w hidden -enc SQBFAFgA{record}",
                "User": "CLINIC\\dana",
            },
        }
    }


class Server:
    def __init__(self, data_dir: Path, db_url: str) -> None:
        self.port = free_port()
        env = {**os.environ, "WATCHFLOOR_DATA_DIR": str(data_dir), "WATCHFLOOR_DATABASE_URL": db_url}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from watchfloor.cli.main import main; main()",
                "serve",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.proc.kill()
        raise AssertionError("server did not start")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def send_until_killed(
    url: str, token: str, next_record: list[int], acked: set[int], stop: threading.Event
) -> None:
    with httpx.Client(timeout=5) as client:
        while not stop.is_set():
            records = list(range(next_record[0], next_record[0] + BATCH))
            next_record[0] += BATCH
            body = b"\n".join(
                orjson.dumps({"event": office_macro_event(r), "sourcetype": "xmlwineventlog"})
                for r in records
            )
            try:
                response = client.post(
                    f"{url}/services/collector/event",
                    content=body,
                    headers={"Authorization": f"Splunk {token}"},
                )
            except httpx.TransportError:
                return  # the server died mid-request: not acknowledged
            if response.status_code == 200:
                acked.update(records)


@pytest.mark.slow
def test_acknowledged_events_survive_kill_9_and_are_detected_exactly_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    db_url = f"sqlite:///{tmp_path / 'wf.db'}"
    db = Database.open(db_url)
    db.tenants.create("clinic", name="Clinic", vertical="healthcare", tier="standard", actor="test")
    token = db.tokens.create("clinic", description="winlogbeat", actor="test").plaintext  # type: ignore[arg-type]
    rng = random.Random(20261203)
    acked: set[int] = set()
    next_record = [1]
    for _cycle in range(CYCLES):
        server = Server(data_dir, db_url)
        stop = threading.Event()
        sender = threading.Thread(
            target=send_until_killed, args=(server.url, token, next_record, acked, stop)
        )
        sender.start()
        time.sleep(rng.uniform(0.2, 1.2))
        server.kill()
        stop.set()
        sender.join(10)
    assert len(acked) > CYCLES * BATCH  # the test did send and get acknowledgements
    server = Server(data_dir, db_url)  # the last start drains the spool
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            stored = {int(d.record_id) for d in db.detections.list("clinic", limit=10**7) if d.record_id}  # type: ignore[arg-type]
            if acked <= stored:
                break
            time.sleep(0.5)
    finally:
        server.kill()
    rows = db.detections.list("clinic", limit=10**7)  # type: ignore[arg-type]
    per_record: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (row.rule_id, row.event_key)
        per_record[key] = per_record.get(key, 0) + 1
    assert acked <= stored, f"{len(acked - stored)} acknowledged events lost"
    assert all(count == 1 for count in per_record.values())  # exactly once per (rule, event)
    db.close()
