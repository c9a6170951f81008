"""Service benchmark: sustained HTTP (Splunk HEC) intake with all SigmaHQ Windows rules on, and the latency
from intake to stored detection at a fixed rate, on SQLite and on PostgreSQL.

Usage: python bench/bench_service.py [--seconds 30] [--rate 5000] [--db sqlite|postgresql|both] [--json FILE]

Starts the real `watchfloor serve` in a subprocess (SigmaHQ rules/windows, rules-emerging-threats and
rules-threat-hunting from ../shared), creates a tenant and an intake token, then:
  1. throughput: CLIENTS threads post HEC batches of BATCH events (the shared Windows corpus, each line
     sent as `{"event": <line>}`) as fast as the server acknowledges them, for --seconds; reports the
     acknowledged rate (durable in the spool), the rate the detection stage processed in the same window
     (from /metrics), and how long the backlog took to drain after sending stopped;
  2. latency: batches paced to --rate events/s, each with one marker event that a rule detects; the latency
     of a marker is its detection's `matched_at` (set by the detection stage just before the batch's
     insert commits) minus the moment its POST was sent. Reports p50/p95/p99/max.
PostgreSQL runs in a private cluster with its durable defaults (fsync on), as tests/pg.py starts it.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.pg import start_cluster

from watchfloor.storage import Database

BATCH = 200
CLIENTS = 4
TENANT = "bench"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def corpus_bodies(shared: Path) -> list[bytes]:
    with gzip.open(shared / "datasets/windows-evtx/events.jsonl.gz", "rb") as fh:
        lines = [line.strip() for line in fh if line.strip()]
    return [
        b"\n".join(b'{"event":' + line + b"}" for line in lines[i : i + BATCH])
        for i in range(0, len(lines), BATCH)
    ]


def marker(record: int) -> bytes:
    event = {
        "Event": {
            "System": {
                "EventID": 1,
                "EventRecordID": record,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": "BENCH-MARKER",
                "TimeCreated": {"#attributes": {"SystemTime": datetime.now(tz=UTC).isoformat()}},
            },
            "EventData": {
                "Image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
                "ParentImage": "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
                "CommandLine": f"powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoA{record}",
                "OriginalFileName": "PowerShell.EXE",
            },
        }
    }
    return orjson.dumps({"event": event})


class Served:
    def __init__(self, data_dir: Path, db_url: str, rules: list[Path]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-c", "from watchfloor.cli.main import main; main()", "serve"]
        argv += ["--data-dir", str(data_dir), "--database-url", db_url, "--port", str(self.port)]
        for path in rules:
            argv += ["--rules", str(path)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit("server did not become ready")

    def detected_received(self) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith(f'watchfloor_detect_received_total{{tenant="{TENANT}"}}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def throughput(served: Served, token: str, bodies: list[bytes], seconds: float) -> dict[str, float]:
    acked = [0] * CLIENTS
    refused = [0] * CLIENTS
    stop = threading.Event()

    def client(index: int) -> None:
        with httpx.Client(timeout=30) as http:
            for body in itertools.cycle(bodies[index::CLIENTS] or bodies):
                if stop.is_set():
                    return
                response = http.post(
                    f"{served.url}/services/collector/event",
                    content=body,
                    headers={"Authorization": f"Splunk {token}"},
                )
                if response.status_code == 200:
                    acked[index] += body.count(b"\n") + 1
                else:
                    refused[index] += 1
                    time.sleep(float(response.headers.get("Retry-After", "0.2")))

    before = served.detected_received()
    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    detected_in_window = served.detected_received() - before
    total = sum(acked)
    drain_started = time.perf_counter()
    while served.detected_received() - before < total and time.perf_counter() - drain_started < 600:
        time.sleep(0.5)
    drain = time.perf_counter() - drain_started
    return {
        "acknowledged_events_per_s": round(total / elapsed),
        "detected_events_per_s_in_window": round(detected_in_window / elapsed),
        "sustained_events_per_s": round(total / (elapsed + drain)),
        "backlog_drain_s": round(drain, 1),
        "acknowledged": total,
        "refused_requests": sum(refused),
        "window_s": round(elapsed, 1),
    }


def latency(
    served: Served, db: Database, token: str, bodies: list[bytes], rate: int, seconds: float
) -> dict[str, float]:
    interval = BATCH / rate
    sent: dict[int, float] = {}
    record = 10_000_000
    with httpx.Client(timeout=30) as http:
        deadline = time.time() + seconds
        next_at = time.time()
        for body in itertools.cycle(bodies):
            if time.time() >= deadline:
                break
            record += 1
            payload = body + b"\n" + marker(record)
            sent[record] = time.time()
            http.post(
                f"{served.url}/services/collector/event",
                content=payload,
                headers={"Authorization": f"Splunk {token}"},
            )
            next_at += interval
            pause = next_at - time.time()
            if pause > 0:
                time.sleep(pause)
    waited = time.time() + 120
    found: dict[int, float] = {}
    while time.time() < waited and len(found) < len(sent):
        for detection in db.detections.list(
            TENANT, limit=10**6, since=datetime.fromtimestamp(min(sent.values()) - 5, tz=UTC)
        ):  # type: ignore[arg-type]
            if detection.event_key.startswith("BENCH-MARKER/") and detection.record_id:
                rid = int(detection.record_id)
                if rid in sent:
                    found[rid] = min(found.get(rid, 1e18), detection.matched_at.timestamp())
        time.sleep(1)
    lat = sorted(found[r] - sent[r] for r in found)
    if not lat:
        return {"markers": len(sent), "detected": 0}

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 3)

    return {
        "rate_events_per_s": rate,
        "markers": len(sent),
        "detected": len(found),
        "p50_s": pct(0.5),
        "p95_s": pct(0.95),
        "p99_s": pct(0.99),
        "max_s": round(lat[-1], 3),
    }


def run_one(kind: str, rules: list[Path], bodies: list[bytes], args: argparse.Namespace) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix=f"wf-bench-{kind}-"))
    cluster = None
    try:
        if kind == "postgresql":
            cluster = start_cluster(durable=True)
            db_url = cluster.url(cluster.create_database())
        else:
            db_url = f"sqlite:///{work / 'watchfloor.db'}"
        db = Database.open(db_url)
        db.tenants.create(TENANT, name="Bench", vertical="other", tier="standard", actor="bench")
        token = db.tokens.create(TENANT, description="bench", actor="bench").plaintext  # type: ignore[arg-type]
        served = Served(work / "data", db_url, rules)
        try:
            result: dict[str, object] = {"database": kind}
            result["throughput"] = throughput(served, token, bodies, args.seconds)
            result["latency"] = latency(served, db, token, bodies, args.rate, args.seconds)
            print(json.dumps(result, indent=2), flush=True)
            return result
        finally:
            served.stop()
            db.close()
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not (args.shared / "sigma").is_dir():
        raise SystemExit(
            f"needs ../shared (SigmaHQ rules and the Windows corpus); not found at {args.shared}"
        )
    sigma = args.shared / "sigma"
    rules = [sigma / "rules/windows", sigma / "rules-emerging-threats", sigma / "rules-threat-hunting"]
    bodies = corpus_bodies(args.shared)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    results = {
        "date": datetime.now(tz=UTC).date().isoformat(),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": "python bench/bench_service.py " + " ".join(sys.argv[1:]),
        "batch_events": BATCH,
        "clients": CLIENTS,
        "runs": [run_one(kind, rules, bodies, args) for kind in kinds],
    }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
