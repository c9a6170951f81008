"""A real crash: SIGKILL a writing process at random moments; only complete, readable files are visible."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from watchfloor.archive import ArchiveWriter, search

CYCLES = 8
CHILD = Path(__file__).with_name("crash_writer.py")


def run_cycle(root: Path, out_file: Path, cycle: int, rng: random.Random) -> list[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    with out_file.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(root), str(cycle)], stdout=out, stderr=subprocess.PIPE, env=env
        )
        deadline = time.monotonic() + 30
        while out_file.stat().st_size < 10 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.005)
        if cycle % 2:
            time.sleep(rng.uniform(0.05, 0.4))
        else:  # aim at the window between creating the temp file and renaming it
            time.sleep(rng.uniform(0.0, 0.1))
            while not any(root.rglob("*.tmp")) and time.monotonic() < deadline:
                pass
        child.send_signal(signal.SIGKILL)
        _, stderr = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    lines = out_file.read_bytes().split(b"\n")[:-1]  # a last line without newline was cut by the kill
    return [rid for line in lines if line != b"ready" for rid in line.decode().split()]


def test_sigkill_during_writes_leaves_only_complete_files(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    rng = random.Random(20261203)
    durable: set[str] = set()
    torn = 0
    for cycle in range(CYCLES):
        durable.update(run_cycle(root, tmp_path / f"out{cycle}.txt", cycle, rng))
        torn += len(list(root.rglob("*.tmp")))  # the next writer removes them when it opens
    assert len(durable) > CYCLES * 100, "the writer barely ran; the test proves nothing"

    # Every visible file is complete and readable, by pyarrow and by DuckDB.
    visible = sorted(root.rglob("part-*.parquet"))
    assert visible
    stored: list[str] = []
    for part in visible:
        table = pq.read_table(part)
        assert table.num_rows > 0
    con = duckdb.connect()
    (count,) = con.execute(
        "SELECT count(*) FROM read_parquet(?)", [[str(p) for p in visible]]
    ).fetchone() or (0,)
    assert count == sum(pq.ParquetFile(p).metadata.num_rows for p in visible)

    # Nothing printed as durable is missing; the search sees it all (both tenants).
    since, until = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)
    for tenant in ("t0", "t1"):
        rows = search(root, tenant, since=since, until=until, limit=100_000, columns=["fields"])
        stored.extend(r["fields"]["rid"] for r in rows)
    assert len(stored) == len(set(stored))
    assert durable - set(stored) == set()

    # Temp files of the killed writers are hidden from readers and removed by the next writer.
    assert torn, "no kill landed inside a file write; the test proves less than it claims"
    ArchiveWriter(root, background_flush=False).close()
    assert not list(root.rglob("*.tmp"))
