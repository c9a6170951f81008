"""Child process for test_crash.py: publish from 4 threads forever, printing each acknowledged message.

Usage: python crash_publisher.py <spool dir> <cycle> <seed>

A line `<sequence> <payload hex>` is written to stdout only after `publish`/`publish_batch` returned, so a
printed line is exactly an acknowledged message. The parent SIGKILLs this process at a random moment.
"""

from __future__ import annotations

import os
import random
import sys
import threading
from pathlib import Path

from watchfloor.bus import SpoolBus, SpoolConfig
from watchfloor.core.types import TenantId

TENANT = TenantId("crash")
SUBJECT = "ingest.raw"


def main() -> None:
    spool, cycle, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    bus = SpoolBus(spool, SpoolConfig(max_segment_bytes=32 * 1024, min_free_bytes=0))
    out_lock = threading.Lock()

    def emit(seqs: list[int], payloads: list[bytes]) -> None:
        text = "".join(f"{s} {p.hex()}\n" for s, p in zip(seqs, payloads, strict=True)).encode()
        with out_lock:
            os.write(1, text)

    def worker(n: int) -> None:
        rng = random.Random(seed * 31 + n)
        i = 0
        while True:
            count = 1 if rng.random() < 0.6 else rng.randint(2, 8)
            payloads = []
            for _ in range(count):
                i += 1
                payloads.append(f"c{cycle}t{n}i{i}:".encode() + rng.randbytes(rng.randint(0, 1200)))
            if count == 1:
                seqs = [bus.publish(SUBJECT, TENANT, payloads[0])]
            else:
                seqs = bus.publish_batch(SUBJECT, [(TENANT, p, None) for p in payloads])
            emit(seqs, payloads)

    os.write(1, b"ready\n")
    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
