"""A deterministic day of Windows events at a small business, with injected attacks and their ground truth.

The business (`winorg`) is a dental practice, Harbor Dental: a domain controller, a file server
without Sysmon and a workstation per member of staff. The benign day is in `windows_background`, the
attack stories in `windows_attacks`, the event builders in `winevent`.

Events are in the nested shape the `evtx` package renders (see `winevent`). For one seed (and the
same other arguments) the output is the same, byte for byte, across runs and machines.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from watchfloor.samples import windows_attacks
from watchfloor.samples.truth import GroundTruth
from watchfloor.samples.windows_background import Background
from watchfloor.samples.winevent import EventLog, boot_processes, to_us
from watchfloor.samples.winorg import HOUR, PLACEHOLDERS, Org, build_org

__all__ = [
    "PLACEHOLDERS",
    "GroundTruth",
    "Org",
    "generate_windows_events",
    "write_jsonl",
]


def generate_windows_events(
    *, seed: int, hosts: int = 5, hours: float = 24.0, start: datetime, attacks: bool = True
) -> tuple[list[dict[str, Any]], list[GroundTruth]]:
    """Events (sorted by time) and the ground truth of the injected attacks (empty without attacks).

    The benign background depends only on (seed, hosts, hours, start), so `attacks=False` gives the
    same background without the attack events. Attacks need at least 4 hosts (DC01, FS01, WS01, WS02)
    and 3 hours. `start` must be timezone-aware.
    """
    if start.tzinfo is None:
        msg = "start must be timezone-aware (e.g. datetime(2026, 12, 1, tzinfo=UTC))"
        raise ValueError(msg)
    if hosts < 1:
        msg = f"hosts must be at least 1, got {hosts}"
        raise ValueError(msg)
    if hours <= 0:
        msg = f"hours must be positive, got {hours}"
        raise ValueError(msg)
    if attacks and (hosts < 4 or hours < 3):
        msg = f"the attack stories need hosts >= 4 and hours >= 3 (got hosts={hosts}, hours={hours})"
        raise ValueError(msg)
    org_rng = random.Random(f"watchfloor-samples:{seed}:org")  # noqa: S311 - sample data, not security
    org = build_org(org_rng, hosts)
    log = EventLog(random.Random(f"watchfloor-samples:{seed}:background"))  # noqa: S311
    org.procs = {h.name: boot_processes(log, h) for h in org.hosts}
    begin = to_us(start)
    end = begin + int(hours * HOUR)
    Background(log, org, begin, end).run()
    log.drafts = [d for d in log.drafts if begin <= d.at_us < end]  # jitter may step over the edges
    steps: list[windows_attacks.Step] = []
    if attacks:
        log.rng = random.Random(f"watchfloor-samples:{seed}:attacks")  # noqa: S311
        steps = windows_attacks.inject(log, org, begin, end)
    bases = {
        h.name: (index + 1) * 1_000_000 + org_rng.randrange(1_000, 400_000)
        for index, h in enumerate(org.hosts)
    }
    events = log.finish(bases)
    return events, [step.truth() for step in steps]


def write_jsonl(events: Sequence[dict[str, Any]], path: Path) -> int:
    """One compact JSON object per line (UTF-8, `\\n`); returns the number of bytes written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join(orjson.dumps(event) + b"\n" for event in events)
    path.write_bytes(data)
    return len(data)
