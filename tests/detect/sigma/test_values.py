"""EvalContext field lookup: the evtx fast path must agree with flatten() on real events."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson

from watchfloor.detect.sigma.values import EvalContext, to_number, to_text


def _slow(doc: dict[str, object], name: str) -> tuple[bool, object]:
    ctx = EvalContext(doc)
    _ = ctx.flat  # forces the flattened path
    return ctx.value((name,))


def test_fast_path_agrees_with_flatten_on_every_field_of_the_corpus(shared_dir: Path) -> None:
    checked = 0
    with gzip.open(shared_dir / "datasets/windows-evtx/events.jsonl.gz", "rb") as fh:
        for line in fh:
            doc = orjson.loads(line)
            data = doc.get("Event", {}).get("EventData")
            if not isinstance(data, dict):
                continue
            names = [
                *data,
                *(k.lower() for k in data),
                *doc["Event"].get("System", {}),
                "EventID",
                "eventid",
                "Channel",
                "Computer",
                "Provider_Name",
                "TimeCreated",
                "Security_UserID",
                "System.Channel",
                "OriginalFileName",
                "NoSuchField",
            ]
            for name in names:
                assert EvalContext(doc).value((name,)) == _slow(doc, name), (name, line[:200])
                checked += 1
    assert checked > 100_000


def test_fast_path_on_inline_events() -> None:
    doc = {
        "Event": {
            "System": {"EventID": 4688, "Channel": "Security"},
            "EventData": {
                "EventID": "9999",
                "NewProcessName": "C:\\x.exe",
                "Nested": {"a": 1},
                "Empty": None,
            },
        }
    }
    for name in (
        "EventID",
        "NewProcessName",
        "newprocessname",
        "Nested",
        "Nested.a",
        "a",
        "Empty",
        "Channel",
        "Missing",
    ):
        assert EvalContext(doc).value((name,)) == _slow(doc, name)
    assert EvalContext(doc).value(("EventID",)) == (True, 4688)


def test_text_and_number_conversions() -> None:
    assert to_text(True) == "true"
    assert to_text(4688) == "4688"
    assert to_text(1.5) == "1.5"
    assert to_text(None) is None
    assert to_number("4688") == 4688
    assert to_number(" 12.5 ") == 12.5
    assert to_number("0x10") is None
    assert to_number(True) is None
