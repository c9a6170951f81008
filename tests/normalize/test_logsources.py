"""Logsource mapping: loading and validating the YAML data, rule logsource resolution, coverage."""

from __future__ import annotations

import gzip
import textwrap
from collections import Counter
from pathlib import Path

import orjson
import pytest

from watchfloor.core.errors import ConfigError
from watchfloor.normalize.logsources import (
    LogsourceMap,
    content_dir,
    coverage_report,
    default_logsource_map,
    load_logsource_map,
)
from watchfloor.normalize.model import Binding, SourceKey
from watchfloor.normalize.shapes import classify

# Windows logsources SigmaHQ rules use that have no binding on purpose; each has a `note` in windows.yml.
WINDOWS_UNBOUND = {("windows", "file_access", None), ("windows", "file_rename", None)}
# Cloud logsources without a binding; each has a `note` in cloud.yml.
CLOUD_UNBOUND = {("azure", None, "pim")}
CLOUD_PRODUCTS = {"aws", "azure", "m365", "okta", "gcp", "github"}


def write(tmp_path: Path, text: str, name: str = "map.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


MINIMAL = """\
    description: test map
    entries:
      - product: windows
        category: process_creation
        bindings:
          - product: windows
            channel: Microsoft-Windows-Sysmon/Operational
            event_ids: [1]
          - product: Windows
            channels: [Security, ForwardedEvents]
            event_ids: 4688
            fields:
              Image: NewProcessName
              User: [SubjectUserName, TargetUserName]
            conditions:
              Provider_Name: Microsoft-Windows-Security-Auditing
              Version: 2
              Enabled: true
      - product: windows
        service: security
        note: every Security event
        bindings:
          - {product: windows, channel: Security}
      - product: windows
        service: sysmon
        bindings:
          - {product: windows, channel: Microsoft-Windows-Sysmon/Operational, event_ids: [3]}
          - {product: windows, channel: Microsoft-Windows-Sysmon/Operational, event_ids: [5]}
      - category: antivirus
        note: no source
"""


@pytest.fixture
def minimal(tmp_path: Path) -> LogsourceMap:
    return load_logsource_map([write(tmp_path, MINIMAL)])


# -- loading -------------------------------------------------------------------------------------
def test_load_normalises_names_and_expands_channels(minimal: LogsourceMap) -> None:
    sysmon, security, forwarded = minimal.bindings_for("windows", "process_creation", None)
    assert sysmon == Binding("windows", "microsoft-windows-sysmon/operational", frozenset({1}))
    assert (security.product, security.channel, forwarded.channel) == (
        "windows",
        "security",
        "forwardedevents",
    )
    assert security.event_ids == frozenset({4688})
    assert security.native_names("Image") == ("NewProcessName",)
    assert security.native_names("User") == ("SubjectUserName", "TargetUserName")
    assert security.native_names("CommandLine") == ("CommandLine",)
    assert dict(security.conditions) == {
        "Provider_Name": "Microsoft-Windows-Security-Auditing",
        "Version": "2",
        "Enabled": "true",
    }
    assert minimal.entries[1].note == "every Security event"
    assert minimal.entries[3].bindings == ()


def test_bindings_are_immutable(minimal: LogsourceMap) -> None:
    binding = minimal.bindings_for("windows", "process_creation", None)[1]
    with pytest.raises(TypeError):
        binding.fields["Image"] = ("x",)  # type: ignore[index]


def test_rule_attributes_left_out_are_wildcards(minimal: LogsourceMap) -> None:
    assert minimal.bindings_for("windows", None, "security") == (Binding("windows", "security"),)
    assert minimal.bindings_for(None, "process_creation", None) == minimal.bindings_for(
        "WINDOWS", "Process_Creation", ""
    )
    everything = minimal.bindings_for("windows", None, None)
    assert Binding("windows", "security") in everything
    assert len(everything) == 4  # sysmon {1} + {3, 5} merged, security 4688 (fields), security, forwarded
    assert minimal.bindings_for("linux", "process_creation", None) == ()
    assert minimal.bindings_for("windows", "process_creation", "sysmon") == ()  # no entry has all three
    assert minimal.bindings_for(None, "antivirus", None) == ()


def test_bindings_differing_only_in_event_ids_are_merged(minimal: LogsourceMap) -> None:
    (sysmon,) = minimal.bindings_for("windows", None, "sysmon")
    assert sysmon.event_ids == frozenset({3, 5})
    merged = minimal.bindings_for("windows", None, None)
    sysmon_all = [b for b in merged if b.channel == "microsoft-windows-sysmon/operational"]
    assert [b.event_ids for b in sysmon_all] == [frozenset({1, 3, 5})]


def test_binding_accepts_classified_events(minimal: LogsourceMap) -> None:
    doc = {"Event": {"System": {"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1}}}
    key = classify(doc)
    assert key is not None
    assert any(b.accepts(key) for b in minimal.bindings_for("windows", "process_creation", None))
    assert not any(b.accepts(key) for b in minimal.bindings_for("windows", None, "security"))


def test_directory_paths_load_every_yml(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL, "a.yml")
    write(
        tmp_path,
        "entries:\n  - product: okta\n    service: okta\n    bindings: [{product: okta, channel: okta}]\n",
        "b.yml",
    )
    mapping = load_logsource_map([tmp_path])
    assert mapping.bindings_for("okta", None, "okta") == (Binding("okta", "okta"),)


def one_binding(flow: str) -> str:
    """A file with one entry whose single binding is the given YAML flow mapping (on line 4)."""
    return f"entries:\n  - product: windows\n    bindings:\n      - {flow}\n"


INVALID = [
    ("entries: [", "invalid YAML", 1),
    ("", "empty mapping file", None),
    ("- product: windows\n", "file: must be a mapping, not a list", 1),
    ("entries: []\n", "'entries' must be a non-empty list", 1),
    ("entries:\n  - product: windows\nextra: 1\n", "file: unknown key 'extra'", 1),
    ("description: [1]\nentries:\n  - product: windows\n", "file.description: must be a string", 1),
    ("entries:\n  - prodct: windows\n", "entries[0]: unknown key 'prodct'", 2),
    ("entries:\n  - note: nothing\n", "entries[0]: needs at least one of product, category, service", 2),
    ("entries:\n  - product: ''\n", "entries[0].product: must be a non-empty string", 2),
    ("entries:\n  - product: 3\n", "entries[0].product: must be a non-empty string", 2),
    ("entries:\n  - product: windows\n    bindings: {}\n", "entries[0].bindings: must be a list", 2),
    ("entries:\n  - product: windows\n    bindings: [3]\n", "entries[0].bindings[0]: must be a mapping", 2),
    (
        "entries:\n  - product: windows\n    bindings:\n      - channel: Security\n",
        "entries[0].bindings[0]: 'product' is required",
        4,
    ),
    (
        one_binding("{product: windows}"),
        "give exactly one of 'channel' or 'channels'",
        4,
    ),
    (
        one_binding("{product: windows, channel: a, channels: [b]}"),
        "give exactly one of 'channel' or 'channels'",
        4,
    ),
    (
        one_binding("{product: windows, channels: []}"),
        "entries[0].bindings[0].channel: must be a non-empty string",
        4,
    ),
    (
        one_binding("{product: windows, chanel: a}"),
        "entries[0].bindings[0]: unknown key 'chanel' (expected one of: channel, channels,",
        4,
    ),
    (
        one_binding("{product: windows, channel: a, event_ids: ['1']}"),
        "event_ids: must be an event id or a non-empty list",
        4,
    ),
    (
        one_binding("{product: windows, channel: a, event_ids: [true]}"),
        "event_ids: must be an event id",
        4,
    ),
    (
        one_binding("{product: windows, channel: a, event_ids: []}"),
        "event_ids: must be an event id",
        4,
    ),
    (
        one_binding("{product: windows, channel: a, fields: [Image]}"),
        "fields: must be a mapping, not a list",
        4,
    ),
    (
        one_binding("{product: windows, channel: a, fields: {Image: 3}}"),
        "fields.Image: must be a non-empty string or a non-empty list",
        4,
    ),
    (
        one_binding("{product: windows, channel: a, fields: {Image: []}}"),
        "fields.Image: must be a non-empty string or a non-empty list",
        4,
    ),
    (
        one_binding("{product: windows, channel: a, conditions: {X: [1]}}"),
        "conditions.X: the value must be a string or a number",
        4,
    ),
    ("entries:\n  - product: windows\n    product: linux\n", "duplicate key 'product'", 3),
    ("entries:\n  - {[1]: x}\n", "mapping key must be a scalar", 2),
]


@pytest.mark.parametrize(("text", "reason", "line"), INVALID)
def test_invalid_files_raise_config_error_with_path_line_and_reason(
    tmp_path: Path, text: str, reason: str, line: int | None
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_logsource_map([path])
    error = caught.value
    assert reason in error.message
    assert error.code == "config.invalid"
    assert error.location is not None
    assert error.location.path == str(path)
    assert error.location.line == line
    assert str(path) in str(error)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read mapping file"):
        load_logsource_map([tmp_path / "nope.yml"])


# -- the shipped mapping files -----------------------------------------------------------------------
def test_every_shipped_mapping_file_loads(content_dir: Path) -> None:
    files = sorted((content_dir / "mappings").glob("*.yml"))
    assert {f.name for f in files} >= {"windows.yml", "cloud.yml", "linux.yml"}
    for file in files:
        assert load_logsource_map([file]).entries


def test_default_map_is_cached_and_reads_the_content_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    default = default_logsource_map()
    assert default is default_logsource_map()
    assert content_dir() == Path(__file__).resolve().parents[2] / "content"
    (tmp_path / "mappings").mkdir()
    write(tmp_path / "mappings", "entries:\n  - product: okta\n")
    monkeypatch.setenv("WATCHFLOOR_CONTENT_DIR", str(tmp_path))
    default_logsource_map.cache_clear()
    try:
        assert [e.product for e in default_logsource_map().entries] == ["okta"]
        (tmp_path / "mappings" / "map.yml").unlink()
        default_logsource_map.cache_clear()
        with pytest.raises(ConfigError, match=r"no logsource mapping files"):
            default_logsource_map()
    finally:
        default_logsource_map.cache_clear()


@pytest.mark.parametrize(
    ("logsource", "key"),
    [
        (
            ("windows", "process_creation", None),
            SourceKey("windows", "microsoft-windows-sysmon/operational", 1),
        ),
        (("windows", "process_creation", None), SourceKey("windows", "security", 4688)),
        (("windows", "registry_set", None), SourceKey("windows", "microsoft-windows-sysmon/operational", 13)),
        (("windows", "ps_script", None), SourceKey("windows", "powershellcore/operational", 4104)),
        (("windows", "ps_classic_start", None), SourceKey("windows", "windows powershell", 400)),
        (("windows", None, "security"), SourceKey("windows", "security", 1102)),
        (
            ("windows", None, "bits-client"),
            SourceKey("windows", "microsoft-windows-bits-client/operational", 59),
        ),
        (("windows", None, None), SourceKey("windows", "application", 1000)),
        (
            (None, "antivirus", None),
            SourceKey("windows", "microsoft-windows-windows defender/operational", 1116),
        ),
        (("linux", "process_creation", None), SourceKey("linux", "linux-sysmon/operational", 1)),
        (("aws", None, "cloudtrail"), SourceKey("aws", "cloudtrail")),
        (("azure", None, "signinlogs"), SourceKey("azure", "signinlogs")),
        (("azure", None, "riskdetection"), SourceKey("azure", "signinlogs")),
        (("m365", None, "audit"), SourceKey("m365", "exchange")),
        (("m365", None, "threat_management"), SourceKey("m365", "securitycompliancecenter")),
        (("okta", None, "okta"), SourceKey("okta", "okta")),
        (("gcp", None, "gcp.audit"), SourceKey("gcp", "gcp.audit")),
        (("gcp", None, "google_workspace.admin"), SourceKey("gcp", "google_workspace.admin")),
        (("github", None, "audit"), SourceKey("github", "audit")),
    ],
)
def test_shipped_map_accepts_the_expected_sources(
    logsource: tuple[str | None, str | None, str | None], key: SourceKey
) -> None:
    assert any(b.accepts(key) for b in default_logsource_map().bindings_for(*logsource))


def test_security_4688_renames_follow_pysigma() -> None:
    (binding,) = [
        b
        for b in default_logsource_map().bindings_for("windows", "process_creation", None)
        if b.channel == "security"
    ]
    assert binding.native_names("Image") == ("NewProcessName",)
    assert binding.native_names("ParentImage") == ("ParentProcessName",)
    assert binding.native_names("LogonId") == ("SubjectLogonId",)
    assert binding.native_names("CommandLine") == ("CommandLine",)


def test_entries_without_bindings_explain_why() -> None:
    for entry in default_logsource_map().entries:
        assert entry.bindings or entry.note, entry


def test_coverage_report_on_inline_rules(tmp_path: Path, minimal: LogsourceMap) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    write(
        rules,
        "logsource: {product: windows, category: process_creation}\ndetection: {sel: {Image|endswith: x}}\n",
        "a.yml",
    )
    write(
        rules,
        "logsource: {product: windows, category: file_access}\ndetection: {sel: {TargetFilename: x}}\n",
        "b.yml",
    )
    write(
        rules,
        "logsource: {category: antivirus}\ndetection: {sel: [{Signature: x}, {Filename: y}]}\n",
        "c.yml",
    )
    write(rules, "title: a correlation\ncorrelation: {type: event_count}\n", "d.yml")
    write(rules, "logsource: [\n", "e.yml")
    report = coverage_report([rules], minimal)
    assert (report.rules, report.bound_rules, report.unreadable) == (3, 1, 1)
    labels = {c.label(): c for c in report.unbound}
    assert set(labels) == {"product:windows/category:file_access", "category:antivirus"}
    assert labels["category:antivirus"].notes == ("no source",)
    assert dict(labels["category:antivirus"].fields) == {"Signature": 1, "Filename": 1}
    assert "| category:antivirus | 1 | no source |" in report.render()


# -- against SigmaHQ -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sigma_coverage(shared_dir: Path) -> Counter[tuple[str | None, str | None, str | None]]:
    report = coverage_report(sorted((shared_dir / "sigma").glob("rules*")))
    assert report.unreadable == 0
    return Counter({(c.product, c.category, c.service): c.bindings for c in report.logsources})


@pytest.mark.shared
def test_every_sigmahq_windows_rule_resolves_except_documented(
    sigma_coverage: Counter[tuple[str | None, str | None, str | None]],
) -> None:
    unbound = {ls for ls, bindings in sigma_coverage.items() if ls[0] == "windows" and not bindings}
    assert unbound == WINDOWS_UNBOUND
    for logsource in unbound:
        assert all(e.note for e in default_logsource_map().entries_for(*logsource))


@pytest.mark.shared
def test_every_sigmahq_cloud_rule_resolves_except_documented(
    sigma_coverage: Counter[tuple[str | None, str | None, str | None]],
) -> None:
    unbound = {ls for ls, bindings in sigma_coverage.items() if ls[0] in CLOUD_PRODUCTS and not bindings}
    assert unbound == CLOUD_UNBOUND
    for logsource in unbound:
        assert all(e.note for e in default_logsource_map().entries_for(*logsource))


@pytest.mark.shared
def test_cloud_bindings_accept_sample_events(shared_dir: Path) -> None:
    keys: set[SourceKey] = set()
    for path in (shared_dir / "datasets" / "cloud").glob("*/*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            key = classify(orjson.loads(line))
            if key is not None:
                keys.add(key)
    mapping = default_logsource_map()
    for logsource in [
        ("aws", None, "cloudtrail"),
        ("azure", None, "signinlogs"),
        ("azure", None, "auditlogs"),
        ("azure", None, "activitylogs"),
        ("azure", None, "riskdetection"),
        ("m365", None, "audit"),
        ("m365", None, "exchange"),
        ("okta", None, "okta"),
        ("gcp", None, "gcp.audit"),
        ("gcp", None, "google_workspace.admin"),
        ("gcp", None, "google_workspace.login"),
        ("github", None, "audit"),
    ]:
        assert any(b.accepts(k) for b in mapping.bindings_for(*logsource) for k in keys), logsource


@pytest.mark.shared
def test_most_windows_sample_events_have_a_binding(shared_dir: Path) -> None:
    bindings = default_logsource_map().bindings_for("windows", None, None)
    accepted = total = 0
    with gzip.open(shared_dir / "datasets" / "windows-evtx" / "events.jsonl.gz") as lines:
        for line in lines:
            key = classify(orjson.loads(line))
            assert key is not None
            total += 1
            accepted += any(b.accepts(key) for b in bindings)
    assert accepted / total > 0.9
