"""content/ecs/*.yml: loading, validation errors that say where, and agreement with ingest/cef.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from watchfloor.core.errors import ConfigError
from watchfloor.ingest.cef import CEF_FIELD_MAP
from watchfloor.normalize.ecs import to_ecs
from watchfloor.normalize.ecs_tables import default_ecs_tables, load_ecs_tables
from watchfloor.normalize.ecs_transforms import TRANSFORMS
from watchfloor.normalize.model import SourceKey

ECS_NAME = re.compile(r"@timestamp|message|tags|[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")


def test_shipped_tables_load_and_name_ecs_fields(content_dir: Path) -> None:
    tables = load_ecs_tables([content_dir / "ecs"])
    names = {rule.ecs for section in tables.sections for rule in section.rules}
    names |= {name for section in tables.sections for name in section.constants}
    assert {"event.action", "source.ip", "user.name", "process.command_line", "rule.name"} <= names
    assert not [name for name in names if not ECS_NAME.fullmatch(name)]
    products = {p for section in tables.sections for p in section.products}
    assert products >= {
        "windows",
        "aws",
        "azure",
        "m365",
        "okta",
        "gcp",
        "github",
        "linux",
        "zeek",
        "suricata",
    }


def test_cef_table_agrees_with_cef_field_map() -> None:
    """cef.yml is CEF_FIELD_MAP written as data: same keys, same ECS names."""
    (section,) = [s for s in default_ecs_tables().sections if s.channels == frozenset({"cef"})]
    table = {native: rule.ecs for rule in section.rules for native in rule.natives}
    for short, full, target, _ in CEF_FIELD_MAP:
        for name in (short, full):
            if name is None or target == "@timestamp":
                continue
            assert table.get(f"cef.extensions.{name}") == target, name
    assert "cef.extensions.rt" in section.timestamp


def test_sections_apply_in_order_later_wins(tmp_path: Path) -> None:
    path = tmp_path / "t.yml"
    path.write_text(
        "sections:\n"
        "  - match: {product: p}\n"
        "    constants: {event.kind: event}\n"
        "    fields: {user.name: a, host.name: h}\n"
        "  - match: {product: p, channel: c, event_ids: [1]}\n"
        "    fields:\n"
        "      user.name: b\n"
        "      source.port: {from: [missing, port], transform: port}\n"
        "      event.outcome: {from: r, values: {ok: success, '*': failure}, missing: unknown}\n",
        encoding="utf-8",
    )
    tables = load_ecs_tables([tmp_path])
    doc = {"a": "x", "b": "y", "h": "host", "port": "70000", "r": "OK"}
    fields = to_ecs(doc, SourceKey("p", "c", 1), tenant="t", raw=b"", source="s", tables=tables).fields
    assert dict(fields) == {
        "event.kind": "event",
        "user.name": "y",
        "host.name": "host",
        "event.outcome": "success",
    }  # port 70000 does not convert: left out
    other = to_ecs({"a": "x"}, SourceKey("p", "other"), tenant="t", raw=b"", source="s", tables=tables)
    assert dict(other.fields) == {"event.kind": "event", "user.name": "x"}
    missing = to_ecs({}, SourceKey("p", "c", 1), tenant="t", raw=b"", source="s", tables=tables)
    assert missing.fields["event.outcome"] == "unknown"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sections: []\n", "'sections' must be a non-empty list"),
        ("sections:\n  - match: {channel: x}\n", "sections[0].match: 'product' is required"),
        ("sections:\n  - match: {product: p}\n    feilds: {}\n", "sections[0]: unknown key 'feilds'"),
        (
            "sections:\n  - match: {product: p}\n    fields: {a.b: {from: x, transform: nope}}\n",
            "sections[0].fields.a.b.transform: unknown transform 'nope'",
        ),
        ("sections:\n  - match: {product: p}\n    fields: {a.b: {transform: int}}\n", "'from' is required"),
        ("sections:\n  - match: {product: p, event_ids: [x]}\n", "event_ids: must be an event id"),
        ("sections:\n  - match: {product: p, channel: a, channels: [b]}\n", "not both"),
        (
            "sections:\n  - match: {product: p}\n    constants: {a.b: {c: d}}\n",
            "constants.a.b: must be a scalar",
        ),
        ("sections: [\n", "invalid YAML"),
        ("- just a list\n", "file: must be a mapping"),
    ],
)
def test_invalid_tables_say_where(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_ecs_tables([path])
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ip", "10.0.0.1:443", "10.0.0.1"),
        ("ip", "[2001:db8::1]:443", "2001:db8::1"),
        ("ip", "fe80::1%eth0", "fe80::1"),
        ("hex_int", "0x1a2c", 6700),
        ("basename", "C:\\Windows\\System32\\cmd.exe", "cmd.exe"),
        ("basename", "/usr/bin/curl", "curl"),
        ("dirname", "/usr/bin/curl", "/usr/bin"),
        ("windows_user", "NT AUTHORITY\\SYSTEM", "SYSTEM"),
        ("windows_domain", "NT AUTHORITY\\SYSTEM", "NT AUTHORITY"),
        ("epoch_ms", 1621305118553, "2021-05-18T02:31:58.553000Z"),
        ("epoch_s", "1711717964.5", "2024-03-29T13:12:44.500000Z"),
        ("iso8601", "2017-07-05T04:04:34.009396+0200", "2017-07-05T02:04:34.009396Z"),
        ("windows_filetime", 133560000000000000, "2024-03-27T08:00:00.000000Z"),
        ("bool", "True", True),
        ("lower", "TCP", "tcp"),
        ("str", 4624, "4624"),
    ],
)
def test_transforms(name: str, value: object, expected: object) -> None:
    assert TRANSFORMS[name](value) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ip", "lambda.amazonaws.com"),
        ("int", True),
        ("int", "12a"),
        ("port", 70000),
        ("windows_domain", "bob"),
    ],
)
def test_transforms_reject(name: str, value: object) -> None:
    with pytest.raises(ValueError):  # SkipValueError is the ValueError every transform raises
        TRANSFORMS[name](value)
