"""Child process for test_crash.py: append and flush archive events forever, printing what is durable.

Usage: python crash_writer.py <archive root> <cycle>

After each `flush()` returns, the record ids it made durable are printed on one line, so a printed line is
exactly a set of durable rows. The parent SIGKILLs this process at a random moment.
"""

from __future__ import annotations

import os
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from watchfloor.archive import ArchiveWriter, event_from_raw

RECEIVED = datetime(2026, 12, 1, tzinfo=UTC)


def main() -> None:
    root, cycle = Path(sys.argv[1]), int(sys.argv[2])
    writer = ArchiveWriter(root, flush_rows=10_000, flush_seconds=3600, background_flush=False)
    lock = threading.Lock()
    os.write(1, b"ready\n")

    def work(n: int) -> None:
        i = 0
        while True:
            with lock:
                batch = []
                for _ in range(200):
                    rid = f"{cycle}-{n}-{i}"
                    when = RECEIVED - timedelta(days=i % 3, seconds=i)
                    raw = orjson.dumps(
                        {
                            "Channel": "Security",
                            "EventID": 4624,
                            "TimeCreated": when.isoformat(),
                            "rid": rid,
                            "pad": "x" * (i % 500),
                        }
                    )
                    writer.append(
                        event_from_raw(raw, tenant=f"t{n % 2}", source="crash", received_at=RECEIVED)
                    )
                    batch.append(rid)
                    i += 1
                writer.flush()
                os.write(1, (" ".join(batch) + "\n").encode())

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
