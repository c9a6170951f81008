"""The ECS mapping tables (`content/ecs/*.yml`): typed sections, loading and validation.

The file format is documented in `normalize.ecs` and `docs/schema.md`. Every key is checked: an unknown key,
a wrong type or an unknown transform raises `ConfigError` naming the file and the section (`sections[3]`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import yaml

from watchfloor.core.errors import ConfigError, Location
from watchfloor.normalize.ecs_transforms import TRANSFORMS
from watchfloor.normalize.logsources import content_dir
from watchfloor.normalize.model import SourceKey

__all__ = ["EcsTables", "FieldRule", "Section", "default_ecs_tables", "load_ecs_tables"]

_FILE_KEYS: Final = frozenset({"description", "sections"})
_SECTION_KEYS: Final = frozenset({"match", "note", "constants", "timestamp", "record_id", "fields"})
_MATCH_KEYS: Final = frozenset({"product", "channel", "channels", "event_ids"})
_RULE_KEYS: Final = frozenset({"from", "transform", "values", "missing"})
_CACHE_MAX: Final = 4096


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One ECS field: the native names tried in order, an optional transform and value map."""

    ecs: str
    natives: tuple[str, ...]
    transform: str | None = None
    values: Mapping[str, object] | None = None
    missing: object = None


@dataclass(frozen=True, slots=True)
class Section:
    """Mapping rules for the SourceKeys `match` accepts. `origin` is `file#sections[i]`."""

    products: frozenset[str]
    channels: frozenset[str] | None
    event_ids: frozenset[int] | None
    constants: Mapping[str, object]
    rules: tuple[FieldRule, ...]
    timestamp: tuple[str, ...] = ()
    record_id: tuple[str, ...] = ()
    origin: str = ""

    def accepts(self, key: SourceKey) -> bool:
        if key.product not in self.products and "*" not in self.products:
            return False
        if self.channels is not None and key.channel not in self.channels:
            return False
        return self.event_ids is None or key.event_id in self.event_ids

    def natives(self) -> tuple[str, ...]:
        """Every native name this section reads (fields, timestamp, record id), in order."""
        names = [name for rule in self.rules for name in rule.natives]
        return tuple(dict.fromkeys([*names, *self.timestamp, *self.record_id]))


class EcsTables:
    """All mapping sections, and the ones a SourceKey selects (cached per key)."""

    __slots__ = ("_cache", "_sections")

    def __init__(self, sections: Iterable[Section] = ()) -> None:
        self._sections = tuple(sections)
        self._cache: dict[SourceKey, tuple[Section, ...]] = {}

    @property
    def sections(self) -> tuple[Section, ...]:
        return self._sections

    def sections_for(self, key: SourceKey | None) -> tuple[Section, ...]:
        if key is None:
            return ()
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            found = self._cache[key] = tuple(s for s in self._sections if s.accepts(key))
        return found


@functools.cache
def default_ecs_tables() -> EcsTables:
    """Every `content/ecs/*.yml` (under WATCHFLOOR_CONTENT_DIR when set), loaded once per process."""
    directory = content_dir() / "ecs"
    files = sorted(directory.glob("*.yml"))
    if not files:
        raise ConfigError("no ECS mapping tables (*.yml)", location=Location(path=str(directory)))
    return load_ecs_tables(files)


def load_ecs_tables(paths: Iterable[Path]) -> EcsTables:
    """Load table files (a directory stands for its *.yml); ConfigError on any invalid file."""
    sections: list[Section] = []
    for path in paths:
        for file in sorted(path.glob("*.yml")) if path.is_dir() else [path]:
            sections.extend(_load_file(file))
    return EcsTables(sections)


# -- validation ------------------------------------------------------------------------------------
def _load_file(path: Path) -> list[Section]:
    where = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read ECS table: {exc}", location=Location(path=where)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"invalid YAML: {exc}", location=Location(path=where, line=line)) from exc
    root = _mapping(data, "file", where)
    _keys(root, _FILE_KEYS, "file", where)
    raw = root.get("sections")
    if not isinstance(raw, list) or not raw:
        raise _error("'sections' must be a non-empty list", where)
    return [_section(item, f"sections[{i}]", where) for i, item in enumerate(raw)]


def _section(raw: object, what: str, path: str) -> Section:
    node = _mapping(raw, what, path)
    _keys(node, _SECTION_KEYS, what, path)
    if not isinstance(node.get("note", ""), str):
        raise _error(f"{what}.note: must be a string", path)
    match = _mapping(node.get("match"), f"{what}.match", path)
    _keys(match, _MATCH_KEYS, f"{what}.match", path)
    if "product" not in match:
        raise _error(f"{what}.match: 'product' is required", path)
    products = frozenset(p.lower() for p in _strings(match["product"], f"{what}.match.product", path))
    if "channel" in match and "channels" in match:
        raise _error(f"{what}.match: give 'channel' or 'channels', not both", path)
    raw_channels = match.get("channel", match.get("channels"))
    channels = (
        None
        if raw_channels is None
        else frozenset(c.lower() for c in _strings(raw_channels, f"{what}.match.channel", path))
    )
    event_ids = _event_ids(match.get("event_ids"), f"{what}.match.event_ids", path)
    constants = _mapping(node.get("constants", {}), f"{what}.constants", path)
    for name, value in constants.items():
        if not isinstance(name, str) or not _json_like(value):
            raise _error(f"{what}.constants.{name}: must be a scalar or a list of scalars", path)
    rules = tuple(
        _rule(name, value, f"{what}.fields.{name}", path)
        for name, value in _mapping(node.get("fields", {}), f"{what}.fields", path).items()
    )
    return Section(
        products=products,
        channels=channels,
        event_ids=event_ids,
        constants=MappingProxyType(dict(constants)),
        rules=rules,
        timestamp=_names(node, "timestamp", what, path),
        record_id=_names(node, "record_id", what, path),
        origin=f"{path}#{what}",
    )


def _rule(ecs: object, raw: object, what: str, path: str) -> FieldRule:
    if not isinstance(ecs, str) or not ecs:
        raise _error(f"{what}: ECS names must be non-empty strings", path)
    if not isinstance(raw, dict):
        return FieldRule(ecs, tuple(_strings(raw, what, path)))
    _keys(raw, _RULE_KEYS, what, path)
    if "from" not in raw:
        raise _error(f"{what}: 'from' is required", path)
    transform = raw.get("transform")
    if transform is not None and transform not in TRANSFORMS:
        known = ", ".join(sorted(TRANSFORMS))
        raise _error(f"{what}.transform: unknown transform {transform!r} (known: {known})", path)
    values = raw.get("values")
    if values is not None:
        values = _mapping(values, f"{what}.values", path)
        if not all(_json_like(v) for v in values.values()):
            raise _error(f"{what}.values: values must be scalars", path)
        values = MappingProxyType({str(k).lower(): v for k, v in values.items()})
    missing = raw.get("missing")
    if not _json_like(missing):
        raise _error(f"{what}.missing: must be a scalar or a list of scalars", path)
    return FieldRule(ecs, tuple(_strings(raw["from"], f"{what}.from", path)), transform, values, missing)


def _names(node: Mapping[Any, Any], key: str, what: str, path: str) -> tuple[str, ...]:
    return tuple(_strings(node[key], f"{what}.{key}", path)) if key in node else ()


def _json_like(value: object) -> bool:
    if isinstance(value, list):
        return all(isinstance(v, str | int | float | bool) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


def _event_ids(raw: object, what: str, path: str) -> frozenset[int] | None:
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in items):
        raise _error(f"{what}: must be an event id or a non-empty list of event ids", path)
    return frozenset(items)


def _mapping(raw: object, what: str, path: str) -> dict[Any, Any]:
    if not isinstance(raw, dict):
        raise _error(f"{what}: must be a mapping", path)
    return raw


def _keys(node: Mapping[Any, Any], allowed: frozenset[str], what: str, path: str) -> None:
    unknown = [key for key in node if key not in allowed]
    if unknown:
        expected = ", ".join(sorted(allowed))
        raise _error(f"{what}: unknown key {unknown[0]!r} (expected one of: {expected})", path)


def _strings(raw: object, what: str, path: str) -> list[str]:
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(item, str) and item for item in items):
        raise _error(f"{what}: must be a non-empty string or a non-empty list of them", path)
    return [str(item) for item in items]


def _error(message: str, path: str) -> ConfigError:
    return ConfigError(message, location=Location(path=path))
