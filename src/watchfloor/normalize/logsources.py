"""Sigma logsource -> event sources, loaded from the YAML data files in content/mappings/.

File format (every key is checked; unknown keys are errors):

    description: free text                        # optional
    entries:
      - product: windows                          # product / category / service: at least one
        category: process_creation
        note: caveats, or why there is no binding  # optional
        bindings:                                 # optional: an entry without bindings documents a gap
          - product: windows
            channel: Microsoft-Windows-Sysmon/Operational   # or `channels: [...]`: one binding each
            event_ids: [1]                        # omitted: every event of the channel
            fields:                               # Sigma field -> native name, or names tried in order
              Image: NewProcessName
            conditions:                           # native field == value (case-insensitive), all hold
              Provider_Name: Microsoft-Windows-Eventlog
            note: free text                       # optional, documentation only

Products, categories, services and channels are compared lower-cased. A rule's logsource matches an
entry when every attribute the rule specifies equals the entry's (attributes the rule omits are
wildcards); `bindings_for` returns the union of the matching entries' bindings, merged so that bindings
differing only in event ids become one.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import yaml

from watchfloor.core.content import content_dir
from watchfloor.core.errors import ConfigError, Location
from watchfloor.normalize.model import Binding, LogsourceEntry

__all__ = [
    "CoverageReport",
    "LogsourceCount",
    "LogsourceMap",
    "content_dir",
    "coverage_report",
    "default_logsource_map",
    "load_logsource_map",
]

_FILE_KEYS: Final = frozenset({"description", "entries"})
_ENTRY_KEYS: Final = frozenset({"product", "category", "service", "note", "bindings"})
_BINDING_KEYS: Final = frozenset(
    {"product", "channel", "channels", "event_ids", "fields", "conditions", "note"}
)

Triple = tuple[str | None, str | None, str | None]


class LogsourceMap:
    """Logsource entries and the bindings a rule's (product, category, service) resolves to."""

    __slots__ = ("_cache", "_entries")

    def __init__(self, entries: Iterable[LogsourceEntry] = ()) -> None:
        self._entries = tuple(entries)
        self._cache: dict[Triple, tuple[Binding, ...]] = {}

    @property
    def entries(self) -> tuple[LogsourceEntry, ...]:
        return self._entries

    def entries_for(
        self, product: str | None, category: str | None, service: str | None
    ) -> tuple[LogsourceEntry, ...]:
        """The entries a rule with this logsource matches (rule-omitted attributes are wildcards)."""
        want = (_fold(product), _fold(category), _fold(service))
        return tuple(
            entry
            for entry in self._entries
            if (want[0] is None or want[0] == entry.product)
            and (want[1] is None or want[1] == entry.category)
            and (want[2] is None or want[2] == entry.service)
        )

    def bindings_for(
        self, product: str | None, category: str | None, service: str | None
    ) -> tuple[Binding, ...]:
        """Union of the matching entries' bindings; bindings equal but for event ids are merged."""
        key = (_fold(product), _fold(category), _fold(service))
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = _merge(b for e in self.entries_for(*key) for b in e.bindings)
        return cached


def _fold(value: str | None) -> str | None:
    return value.lower() if value else None


def _merge(bindings: Iterable[Binding]) -> tuple[Binding, ...]:
    groups: dict[tuple[Any, ...], tuple[Binding, set[int] | None]] = {}
    for binding in bindings:
        key = (
            binding.product,
            binding.channel,
            tuple(sorted(binding.fields.items())),
            tuple(sorted(binding.conditions.items())),
        )
        seen = groups.get(key)
        if seen is None:
            groups[key] = (binding, None if binding.event_ids is None else set(binding.event_ids))
        elif seen[1] is not None:
            groups[key] = (seen[0], None if binding.event_ids is None else seen[1] | binding.event_ids)
    out: list[Binding] = []
    for first, ids in groups.values():
        event_ids = None if ids is None else frozenset(ids)
        out.append(first if event_ids == first.event_ids else _with_ids(first, event_ids))
    return tuple(out)


def _with_ids(binding: Binding, event_ids: frozenset[int] | None) -> Binding:
    return Binding(binding.product, binding.channel, event_ids, binding.fields, binding.conditions)


# -- loading ---------------------------------------------------------------------------------------
@functools.cache
def default_logsource_map() -> LogsourceMap:
    """Every content/mappings/*.yml, loaded once per process."""
    mappings = content_dir() / "mappings"
    files = sorted(mappings.glob("*.yml"))
    if not files:
        raise ConfigError("no logsource mapping files (*.yml)", location=Location(path=str(mappings)))
    return load_logsource_map(files)


def load_logsource_map(paths: Iterable[Path]) -> LogsourceMap:
    """Load mapping files (a directory stands for its *.yml files); ConfigError on any invalid file."""
    entries: list[LogsourceEntry] = []
    for path in paths:
        files = sorted(path.glob("*.yml")) if path.is_dir() else [path]
        for file in files:
            entries.extend(_load_file(file))
    return LogsourceMap(entries)


class _Map(dict[Any, Any]):
    """A YAML mapping that remembers its line."""

    line: int = 0


class _Loader(yaml.SafeLoader):
    """SafeLoader that records mapping lines and rejects duplicate keys."""

    path = ""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        where = Location(path=loader.path, line=key_node.start_mark.line + 1)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise ConfigError(f"mapping key must be a scalar, not {type(key).__name__}", location=where)
        if key in out:
            raise ConfigError(f"duplicate key {key!r}", location=where)
        out[key] = loader.construct_object(value_node, deep=True)
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _load_file(path: Path) -> list[LogsourceEntry]:
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read mapping file: {exc}", location=Location(path=where)) from exc
    loader = _Loader(text)
    loader.path = where
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        reason = exc.problem or str(exc)
        raise ConfigError(f"invalid YAML: {reason}", location=Location(path=where, line=line)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", location=Location(path=where)) from exc
    finally:
        loader.dispose()
    if data is None:
        raise ConfigError("empty mapping file", location=Location(path=where))
    root = _mapping(data, "file", where, 1)
    _keys(root, _FILE_KEYS, "file", where)
    _text(root, "description", "file", where)
    raw_entries = root.get("entries")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise ConfigError("'entries' must be a non-empty list", location=Location(path=where, line=root.line))
    return [_entry(raw, f"entries[{i}]", where, root.line) for i, raw in enumerate(raw_entries)]


def _entry(raw: object, what: str, path: str, line: int) -> LogsourceEntry:
    node = _mapping(raw, what, path, line)
    _keys(node, _ENTRY_KEYS, what, path)
    product, category, service = (_name(node, key, what, path) for key in ("product", "category", "service"))
    if product is None and category is None and service is None:
        raise _error(f"{what}: needs at least one of product, category, service", path, node.line)
    raw_bindings = node.get("bindings", [])
    if not isinstance(raw_bindings, list):
        raise _error(f"{what}.bindings: must be a list", path, node.line)
    bindings: list[Binding] = []
    for i, raw_binding in enumerate(raw_bindings):
        bindings.extend(_bindings(raw_binding, f"{what}.bindings[{i}]", path, node.line))
    return LogsourceEntry(product, category, service, tuple(bindings), _text(node, "note", what, path))


def _bindings(raw: object, what: str, path: str, line: int) -> list[Binding]:
    node = _mapping(raw, what, path, line)
    _keys(node, _BINDING_KEYS, what, path)
    _text(node, "note", what, path)
    product = _name(node, "product", what, path)
    if product is None:
        raise _error(f"{what}: 'product' is required", path, node.line)
    if ("channel" in node) == ("channels" in node):
        raise _error(f"{what}: give exactly one of 'channel' or 'channels'", path, node.line)
    channels = _strings(
        node["channel"] if "channel" in node else node["channels"], f"{what}.channel", path, node.line
    )
    event_ids = _event_ids(node.get("event_ids"), f"{what}.event_ids", path, node.line)
    fields = _fields(node.get("fields"), f"{what}.fields", path, node.line)
    conditions = _conditions(node.get("conditions"), f"{what}.conditions", path, node.line)
    return [Binding(product, channel.lower(), event_ids, fields, conditions) for channel in channels]


def _event_ids(raw: object, what: str, path: str, line: int) -> frozenset[int] | None:
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in items):
        raise _error(
            f"{what}: must be an event id or a non-empty list of event ids (integers >= 0)", path, line
        )
    return frozenset(items)


def _fields(raw: object, what: str, path: str, line: int) -> Mapping[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    if raw is None:
        return MappingProxyType(out)
    node = _mapping(raw, what, path, line)
    for sigma, native in node.items():
        if not isinstance(sigma, str) or not sigma:
            raise _error(f"{what}: field names must be non-empty strings, got {sigma!r}", path, node.line)
        out[sigma] = tuple(_strings(native, f"{what}.{sigma}", path, node.line))
    return MappingProxyType(out)


def _conditions(raw: object, what: str, path: str, line: int) -> Mapping[str, str]:
    out: dict[str, str] = {}
    if raw is None:
        return MappingProxyType(out)
    node = _mapping(raw, what, path, line)
    for name, value in node.items():
        if not isinstance(name, str) or not name:
            raise _error(f"{what}: field names must be non-empty strings, got {name!r}", path, node.line)
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            out[name] = str(value)
        else:
            raise _error(f"{what}.{name}: the value must be a string or a number", path, node.line)
    return MappingProxyType(out)


def _mapping(raw: object, what: str, path: str, line: int) -> _Map:
    if not isinstance(raw, _Map):
        raise _error(f"{what}: must be a mapping, not {_kind(raw)}", path, line)
    return raw


def _keys(node: _Map, allowed: frozenset[str], what: str, path: str) -> None:
    unknown = [key for key in node if key not in allowed]
    if unknown:
        expected = ", ".join(sorted(allowed))
        raise _error(f"{what}: unknown key {unknown[0]!r} (expected one of: {expected})", path, node.line)


def _name(node: _Map, key: str, what: str, path: str) -> str | None:
    value = node.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _error(f"{what}.{key}: must be a non-empty string", path, node.line)
    return value.strip().lower()


def _text(node: _Map, key: str, what: str, path: str) -> str:
    value = node.get(key, "")
    if not isinstance(value, str):
        raise _error(f"{what}.{key}: must be a string", path, node.line)
    return value.strip()


def _strings(raw: object, what: str, path: str, line: int) -> list[str]:
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(item, str) and item for item in items):
        raise _error(f"{what}: must be a non-empty string or a non-empty list of them", path, line)
    return [str(item) for item in items]


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return "empty" if value is None else type(value).__name__


def _error(message: str, path: str, line: int | None) -> ConfigError:
    return ConfigError(message, location=Location(path=path, line=line))


# -- coverage --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LogsourceCount:
    """How many rules use one logsource, how many bindings it resolves to, and what the map says."""

    product: str | None
    category: str | None
    service: str | None
    rules: int
    bindings: int
    notes: tuple[str, ...] = ()
    fields: tuple[tuple[str, int], ...] = ()  # Sigma field -> number of rules using it, most used first

    def label(self) -> str:
        return "/".join(
            f"{k}:{v}"
            for k, v in (("product", self.product), ("category", self.category), ("service", self.service))
            if v
        )


@dataclass(frozen=True, slots=True)
class CoverageReport:
    """Rules per logsource under some rule directories, against one LogsourceMap."""

    rules: int
    unreadable: int
    logsources: tuple[LogsourceCount, ...]  # most rules first

    @property
    def bound_rules(self) -> int:
        return sum(c.rules for c in self.logsources if c.bindings)

    @property
    def unbound(self) -> tuple[LogsourceCount, ...]:
        return tuple(c for c in self.logsources if not c.bindings)

    def render(self) -> str:
        """A Markdown summary: totals, then the logsources without bindings."""
        lines = [
            (
                f"rules: {self.rules}, with at least one binding: {self.bound_rules}, "
                f"without: {self.rules - self.bound_rules}, unreadable files: {self.unreadable}"
            ),
            "",
            "| logsource | rules | why no binding |",
            "|---|---:|---|",
        ]
        lines.extend(
            f"| {c.label()} | {c.rules} | {' '.join(c.notes) or 'not mapped'} |" for c in self.unbound
        )
        return "\n".join(lines)


def coverage_report(rules_dirs: Iterable[Path], logsources: LogsourceMap | None = None) -> CoverageReport:
    """Count SigmaHQ rules per logsource (PyYAML only, no pySigma) and resolve each through the map."""
    mapping = logsources if logsources is not None else default_logsource_map()
    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    rules: Counter[Triple] = Counter()
    fields: dict[Triple, Counter[str]] = {}
    unreadable = 0
    for root in rules_dirs:
        for file in sorted(root.rglob("*.yml")):
            try:
                docs = list(yaml.load_all(file.read_text(encoding="utf-8"), Loader=loader))
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                unreadable += 1
                continue
            for doc in docs:
                if not isinstance(doc, dict) or not isinstance(doc.get("logsource"), dict):
                    continue
                source = doc["logsource"]
                key = (
                    _fold(_opt(source.get("product"))),
                    _fold(_opt(source.get("category"))),
                    _fold(_opt(source.get("service"))),
                )
                rules[key] += 1
                fields.setdefault(key, Counter()).update(_rule_fields(doc.get("detection")))
    counts = []
    for key, n in rules.most_common():
        notes = tuple(dict.fromkeys(e.note for e in mapping.entries_for(*key) if e.note and not e.bindings))
        counts.append(
            LogsourceCount(*key, n, len(mapping.bindings_for(*key)), notes, tuple(fields[key].most_common()))
        )
    return CoverageReport(sum(rules.values()), unreadable, tuple(counts))


def _opt(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _rule_fields(detection: object) -> set[str]:
    """Field names (modifiers stripped) that a rule's detection section uses."""
    out: set[str] = set()
    if not isinstance(detection, dict):
        return out
    stack: list[object] = [v for k, v in detection.items() if k not in {"condition", "timeframe"}]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            out.update(str(k).split("|", 1)[0] for k in item)
        elif isinstance(item, list):
            stack.extend(i for i in item if isinstance(i, dict | list))
    return out
