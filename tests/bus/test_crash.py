"""A real crash: SIGKILL a publishing process at random moments; every acknowledged message survives."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.bus.conftest import SUBJECT, OpenBus, segment_files
from watchfloor.bus.framing import scan

CYCLES = 24
CHILD = Path(__file__).with_name("crash_publisher.py")


def parse_acknowledged(text: bytes) -> list[tuple[int, bytes]]:
    lines = text.split(b"\n")[:-1]  # a last line without its newline was cut by the kill: not acknowledged
    out = []
    for line in lines:
        if line == b"ready":
            continue
        seq, _, hexed = line.partition(b" ")
        out.append((int(seq), bytes.fromhex(hexed.decode())))
    return out


def run_cycle(spool_dir: Path, out_file: Path, cycle: int, rng: random.Random) -> list[tuple[int, bytes]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    with out_file.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(spool_dir), str(cycle), str(rng.randrange(2**32))],
            stdout=out,
            stderr=subprocess.PIPE,
            env=env,
        )
        deadline = time.monotonic() + 20
        while out_file.stat().st_size == 0 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.25))
        child.send_signal(signal.SIGKILL)
        _, stderr = child.communicate(timeout=20)
    assert child.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    return parse_acknowledged(out_file.read_bytes())


def test_sigkill_at_random_moments_loses_no_acknowledged_message(
    open_bus: OpenBus, spool_dir: Path, tmp_path: Path
) -> None:
    rng = random.Random(20261203)
    acknowledged: dict[int, bytes] = {}
    torn_tails = 0
    for cycle in range(CYCLES):
        acked = run_cycle(spool_dir, tmp_path / f"out{cycle}.txt", cycle, rng)
        for seq, body in acked:
            assert seq not in acknowledged, f"sequence {seq} acknowledged twice (cycle {cycle})"
            acknowledged[seq] = body
        # Reopen after every kill, as a restarted service would.
        bus = open_bus()
        torn_tails += sum(1 for e in bus.recovery_report() if e.kind == "torn_tail")
        assert all(e.kind == "torn_tail" for e in bus.recovery_report())
        bus.close()
    assert len(acknowledged) > CYCLES * 10, "the publisher barely ran; the test proves nothing"

    on_disk = scan(b"".join(p.read_bytes() for p in segment_files(spool_dir))).sequences
    assert on_disk == list(range(1, len(on_disk) + 1)), "sequences are contiguous and never duplicated"
    bus = open_bus()
    consumer = bus.consumer(SUBJECT, "verify")
    stored: dict[int, bytes] = {}
    while batch := consumer.fetch(1000, 0):
        assert all(m.delivery_count == 1 and m.sequence not in stored for m in batch)
        stored.update((m.sequence, m.payload) for m in batch)
        consumer.ack_many(batch)
    assert len(stored) == len(on_disk)
    missing = [seq for seq in acknowledged if seq not in stored]
    assert missing == []
    assert all(stored[seq] == body for seq, body in acknowledged.items())
    print(f"crash test: {len(acknowledged)} acknowledged, {len(stored)} stored, {torn_tails} torn tails")
