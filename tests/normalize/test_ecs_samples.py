"""to_ecs on the shared cloud and Windows samples (read in place from ../shared, skipped when absent)."""

from __future__ import annotations

import gzip
import itertools
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from watchfloor.normalize.ecs import Event, to_ecs
from watchfloor.normalize.ecs_tables import default_ecs_tables
from watchfloor.normalize.fields import fold_keys, lookup
from watchfloor.normalize.model import SourceKey
from watchfloor.normalize.shapes import classify, flatten

pytestmark = pytest.mark.shared

RECEIVED = datetime(2024, 3, 29, 14, 0, tzinfo=UTC)
WINDOWS_SAMPLE = 4000  # lines of events.jsonl.gz read by the Windows tests (every channel appears early)

# Per product: ECS fields every classified record of that source must carry (non-empty).
CORE: dict[str, tuple[str, ...]] = {
    "aws": ("event.action", "event.provider", "cloud.provider", "event.outcome"),
    "azure": ("event.action", "cloud.provider"),
    "m365": ("event.action", "event.provider", "user.name"),
    "okta": ("event.action", "user.name"),
    "gcp": ("event.action",),
    "github": ("event.action",),
    "windows": ("event.code", "host.name", "event.provider"),
}


def empty(value: object) -> bool:
    return value is None or value == "" or value == []


def cloud_records(shared: Path) -> list[tuple[str, bytes]]:
    files = sorted((shared / "datasets" / "cloud").glob("*/*.jsonl"))
    return [
        (f"{path.parent.name}/{path.name}:{n}", line)
        for path in files
        for n, line in enumerate(path.read_bytes().splitlines(), start=1)
        if line.strip()
    ]


def windows_records(shared: Path) -> list[bytes]:
    with gzip.open(shared / "datasets" / "windows-evtx" / "events.jsonl.gz") as handle:
        return [line.rstrip(b"\n") for line in itertools.islice(handle, WINDOWS_SAMPLE)]


def normalize(line: bytes) -> tuple[dict[str, Any], SourceKey | None, Event]:
    doc = orjson.loads(line)
    key = classify(doc)
    return doc, key, to_ecs(doc, key, tenant="clinic", raw=line, source="shared", received_at=RECEIVED)


def test_every_cloud_sample_normalizes_with_its_core_fields(shared_dir: Path) -> None:
    """Every record becomes an Event with its bytes; per source, >= 90% carry each core field (the samples
    include deliberately truncated unit-test records, e.g. a CloudTrail record with only eventName)."""
    records = cloud_records(shared_dir)
    assert len(records) > 1500
    totals: Counter[str] = Counter()
    have: Counter[tuple[str, str]] = Counter()
    unclassified = 0
    for _, line in records:
        _, key, event = normalize(line)
        assert event.original == line
        assert event.timestamp.tzinfo is UTC
        if key is None:
            unclassified += 1
            assert dict(event.fields) == {}
            continue
        if key.product == "github" and key.channel == "webhook":
            assert event.fields["event.dataset"] == "github.webhook"
            continue  # webhooks carry no actor or time of their own
        totals[key.product] += 1
        have.update((key.product, name) for name in CORE[key.product] if not empty(event.fields.get(name)))
    low = {
        f"{product}/{name}": f"{have[product, name]}/{n}"
        for product, n in totals.items()
        for name in CORE[product]
        if have[product, name] < 0.9 * n
    }
    assert not low, low
    assert set(totals) == set(CORE) - {"windows"}
    assert unclassified <= 15


def test_known_cloud_records(shared_dir: Path) -> None:
    cloud = shared_dir / "datasets" / "cloud"
    first = {
        path.parent.name + "/" + path.name: path.read_bytes().splitlines()[0]
        for path in cloud.glob("*/*.jsonl")
    }
    _, key, trail = normalize(first["aws_cloudtrail/panther_test_scenarios.jsonl"])
    assert key == SourceKey("aws", "cloudtrail")
    assert trail.timestamp == datetime(2020, 10, 30, 23, 25, 32, tzinfo=UTC)
    assert {
        "event.action": "ConsoleLogin",
        "event.provider": "signin.amazonaws.com",
        "source.ip": "92.55.146.245",
        "cloud.region": "us-east-1",
        "cloud.account.id": "493859302102",
        "user.name": "root",
        "event.outcome": "success",
    }.items() <= trail.fields.items()
    _, _, denied = normalize(first["aws_cloudtrail/stratus_red_team_detonations.jsonl"])
    assert (denied.fields["event.outcome"], denied.fields["error.code"]) == (
        "failure",
        "Client.UnauthorizedOperation",
    )
    assert denied.record_id == "450230d4-b39e-4a18-a6a0-d07a6e2105cb"
    _, _, okta = normalize(first["okta/panther_test_scenarios.jsonl"])
    assert {
        "event.action": "user.session.start",
        "event.outcome": "failure",
        "user.name": "tracey_stone@acme.io",
        "source.ip": "92.55.146.245",
    }.items() <= okta.fields.items()
    _, _, entra = normalize(first["entra_id/panther_tests_Azure_Audit.jsonl"])
    assert (entra.fields["user.name"], entra.fields["event.action"]) == (
        "denethor@lotr.com",
        "Update authentication methods policy",
    )
    _, _, m365 = normalize(
        first["m365_unified_audit/panther_tests_Microsoft365_Audit_Exchange_lowercased.jsonl"]
    )
    assert (m365.fields["event.action"], m365.fields["user.name"], m365.fields["source.ip"]) == (
        "Set-Mailbox",
        "homer.simpson@simpsons.onmicrosoft.com",
        "1.2.3.4",
    )
    _, _, gcp = normalize(first["gcp_audit/panther_tests_GCP_AuditLog.jsonl"])
    assert (gcp.fields["cloud.project.id"], gcp.fields["user.email"]) == ("test-project", "user1@company.io")
    _, _, github = normalize(first["github_audit/panther_tests_GitHub_Audit.jsonl"])
    assert github.timestamp == datetime(2021, 5, 18, 2, 31, 58, 553000, tzinfo=UTC)  # created_at, epoch ms
    assert (github.fields["event.action"], github.fields["user.name"]) == ("protected_branch.destroy", "cat")


def test_windows_samples_normalize(shared_dir: Path) -> None:
    channels: Counter[str] = Counter()
    for line in windows_records(shared_dir):
        _, key, event = normalize(line)
        assert key is not None
        assert key.product in {"windows", "linux"}
        assert event.original == line
        if key.product == "windows":
            channels[key.channel] += 1
            missing = [name for name in CORE["windows"] if empty(event.fields.get(name))]
            assert not missing, (missing, line[:300])
    assert channels["security"]
    assert channels["microsoft-windows-sysmon/operational"]


def test_known_windows_records(shared_dir: Path) -> None:
    seen: dict[tuple[str, int | None], Event] = {}
    for line in windows_records(shared_dir):
        _, key, event = normalize(line)
        if key is not None:
            seen.setdefault((key.channel, key.event_id), event)
    sysmon = seen[("microsoft-windows-sysmon/operational", 1)].fields
    assert sysmon["process.executable"] == "C:\\Users\\IEUser\\Downloads\\Flash_update.exe"
    assert sysmon["process.name"] == "Flash_update.exe"
    assert sysmon["process.pid"] == 2680
    assert sysmon["event.code"] == "1"
    assert sysmon["host.name"] == "IEWIN7"
    assert isinstance(sysmon["process.command_line"], str)
    assert isinstance(sysmon["process.parent.executable"], str)
    logon = seen.get(("security", 4624))
    if logon is not None:
        assert logon.fields["event.outcome"] == "success"
        assert logon.fields["user.name"]
    created = seen.get(("security", 4688))
    if created is not None:
        assert isinstance(created.fields["process.pid"], int)  # NewProcessId is hex text


def test_every_cloud_and_windows_table_field_occurs_in_a_sample(shared_dir: Path) -> None:
    """A native name in content/ecs/{windows,aws,azure,m365,okta,gcp,github}.yml that no sample of its
    source carries is a typo (or a field of a shape we have no sample of: then say so in the table)."""
    flats: list[tuple[SourceKey, dict[str, Any], dict[str, str]]] = []
    lines = [line for _, line in cloud_records(shared_dir)]
    with gzip.open(shared_dir / "datasets" / "windows-evtx" / "events.jsonl.gz") as handle:
        lines.extend(handle)
    for line in lines:
        doc = orjson.loads(line)
        key = classify(doc)
        if key is not None:
            flat = flatten(doc)
            flats.append((key, flat, fold_keys(flat)))
    missing: list[str] = []
    for section in default_ecs_tables().sections:
        if not section.products & set(CORE):
            continue
        accepted = [(flat, folded) for key, flat, folded in flats if section.accepts(key)]
        if not accepted:
            missing.append(f"{section.origin}: no sample of this source")
            continue
        missing.extend(
            f"{section.origin}: {name}"
            for name in section.natives()
            if not any(lookup(flat, name, folded=folded)[0] for flat, folded in accepted)
        )
    assert not missing, missing
