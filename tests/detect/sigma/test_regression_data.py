"""Every positive sample in SigmaHQ's regression_data is matched by its rule (EVTX and JSON forms)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from watchfloor.core.types import TenantId
from watchfloor.detect.sigma.engine import SigmaEngine
from watchfloor.detect.sigma.loader import RuleSet, load_rules
from watchfloor.normalize.logsources import default_logsource_map
from watchfloor.normalize.readers import MemoryDeadLetters, read_records

TENANT = TenantId("regression")


def _cases(shared: Path) -> list[tuple[str, str, Path]]:
    cases = []
    for info in sorted((shared / "sigma/regression_data").rglob("info.yml")):
        data = yaml.safe_load(info.read_text(encoding="utf-8"))
        tests = data.get("regression_tests_info") or []
        if not any(t.get("type") == "evtx" for t in tests):
            continue  # SigmaHQ disabled it (one Cisco raw-text sample, commented out upstream)
        cases.extend(
            (str(rule["id"]), str(rule.get("title", "")), info.parent)
            for rule in data.get("rule_metadata", [])
        )
    return cases


@pytest.fixture(scope="module")
def regression_engine(shared_dir: Path) -> tuple[SigmaEngine, RuleSet]:
    ruleset = load_rules(sorted(shared_dir.joinpath("sigma").glob("rules*")))
    return SigmaEngine(ruleset, default_logsource_map()), ruleset


def _json_events(folder: Path) -> Iterator[dict[str, Any]]:
    """The .json samples hold one object, or several pretty-printed objects one after another."""
    import json

    decoder = json.JSONDecoder()
    for path in sorted(folder.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        index = 0
        while index < len(text):
            while index < len(text) and text[index].isspace():
                index += 1
            if index >= len(text):
                break
            obj, index = decoder.raw_decode(text, index)
            yield obj


def test_every_regression_sample_is_matched_by_its_rule(
    shared_dir: Path, regression_engine: tuple[SigmaEngine, RuleSet]
) -> None:
    engine, ruleset = regression_engine
    known = {meta.id for _, meta in ruleset.rules}
    cases = _cases(shared_dir)
    assert len(cases) == 202
    missed_evtx: list[str] = []
    missed_json: list[str] = []
    for rule_id, title, folder in cases:
        assert rule_id in known, f"{folder}: rule {rule_id} ({title}) not loaded"
        sink = MemoryDeadLetters()
        evtx_hit = False
        for record in read_records(sorted(folder.glob("*.evtx")), tenant=TENANT, sink=sink):
            _, matched = engine.evaluate(record.raw, TENANT)
            evtx_hit = evtx_hit or any(c.meta.id == rule_id for c in matched)
        assert not sink.dead_letters, sink.dead_letters
        if not evtx_hit:
            missed_evtx.append(f"{rule_id} {title} ({folder})")
        json_hit = False
        for doc in _json_events(folder):
            raw = orjson.dumps(doc)
            _, matched = engine.evaluate(raw, TENANT)
            json_hit = json_hit or any(c.meta.id == rule_id for c in matched)
        if not json_hit:
            missed_json.append(f"{rule_id} {title} ({folder})")
    assert not missed_evtx, f"{len(missed_evtx)} of {len(cases)} EVTX samples missed:\n" + "\n".join(
        missed_evtx
    )
    assert not missed_json, f"{len(missed_json)} of {len(cases)} JSON samples missed:\n" + "\n".join(
        missed_json
    )
