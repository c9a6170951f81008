"""Load Sigma rules (pySigma 2.x) from files and folders; every failure is reported with path:line.

pySigma parses the YAML, applies value modifiers and meta-filters, and resolves correlation
references. It does not parse conditions until asked and it does not track line numbers, so this
module parses every condition eagerly and finds the line of the offending key in the file itself.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.rule import SigmaRule

from watchfloor.core.types import RuleLevel, rule_level

RULE_SUFFIXES = (".yml", ".yaml")
CACHE_FORMAT = "watchfloor-rules-1"


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleMeta:
    """What is shown next to a match. `author` must be shown wherever matches are shown (DRL 1.1)."""

    id: str
    title: str
    level: RuleLevel
    author: str
    tags: tuple[str, ...]
    status: str
    path: str
    line: int | None
    name: str | None = None
    logsource: tuple[str | None, str | None, str | None] = (None, None, None)
    falsepositives: tuple[str, ...] = ()
    references: tuple[str, ...] = ()

    @property
    def attack_techniques(self) -> tuple[str, ...]:
        return tuple(
            t.split(".", 1)[1].upper() for t in self.tags if re.fullmatch(r"attack\.t\d{4}(\.\d{3})?", t)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadError:
    """A rule file or document that did not load, with where and why."""

    path: str
    line: int | None
    code: str
    reason: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: [{self.code}] {self.reason}"


@dataclass(slots=True)
class RuleSet:
    """Detection rules and correlation rules loaded from one or more paths, with load errors."""

    rules: list[tuple[SigmaRule, RuleMeta]] = field(default_factory=list)
    correlations: list[tuple[SigmaCorrelationRule, RuleMeta]] = field(default_factory=list)
    errors: list[LoadError] = field(default_factory=list)
    files: int = 0

    def by_id(self) -> dict[str, RuleMeta]:
        return {meta.id: meta for _, meta in (*self.rules, *self.correlations)}


def iter_rule_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files and folders (recursive) -> rule files, sorted for a stable order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())
        else:
            yield path


def _line_of(text: str, needle: str | None) -> int | None:
    """1-based line of the first occurrence of `needle` as a YAML key or value token in `text`."""
    if not needle:
        return None
    pattern = re.compile(r"(^|[\s'\"|])" + re.escape(needle) + r"($|[\s:'\"|])", re.MULTILINE)
    found = pattern.search(text)
    if found is None:
        return None
    return text.count("\n", 0, found.start()) + 1


def _doc_lines(text: str) -> list[int]:
    """1-based first line of each YAML document in a (possibly multi-document) file."""
    return [1] + [text.count("\n", 0, m.start()) + 2 for m in re.finditer(r"^---\s*$", text, re.MULTILINE)]


def _meta(rule: SigmaRule | SigmaCorrelationRule, path: Path, line: int | None) -> RuleMeta:
    logsource: tuple[str | None, str | None, str | None] = (None, None, None)
    if isinstance(rule, SigmaRule):
        ls = rule.logsource
        logsource = (ls.product, ls.category, ls.service)
    return RuleMeta(
        id=str(rule.id) if rule.id is not None else (rule.name or f"{path.name}:{line}"),
        title=rule.title,
        level=rule_level(rule.level.name.lower() if rule.level is not None else None),
        author=rule.author or "unknown",
        tags=tuple(str(t) for t in rule.tags),
        status=rule.status.name.lower() if rule.status is not None else "",
        path=str(path),
        line=line,
        name=rule.name,
        logsource=logsource,
        falsepositives=tuple(str(f) for f in (rule.falsepositives or ())),
        references=tuple(str(r) for r in (rule.references or ())),
    )


def _error_line(text: str, error: SigmaError, default: int | None) -> int | None:
    message = str(error)
    for quoted in re.findall(r"'([^']+)'", message):
        line = _line_of(text, quoted.split("|")[0])
        if line is not None:
            return line
    return default


def _check_conditions(rule: SigmaRule) -> None:
    """Parse every condition now, so undefined identifiers and bad grammar surface at load."""
    for condition in rule.detection.parsed_condition:
        condition.parse()


def default_cache_dir() -> Path | None:
    """WATCHFLOOR_CACHE_DIR, else ~/.cache/watchfloor; WATCHFLOOR_CACHE_DIR=off disables the cache."""
    configured = os.environ.get("WATCHFLOOR_CACHE_DIR")
    if configured == "off":
        return None
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "watchfloor"


def _cache_key(files: list[Path]) -> str:
    from importlib.metadata import version

    digest = hashlib.sha256(f"{CACHE_FORMAT} pysigma={version('pysigma')}".encode())
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            continue
        digest.update(f"\0{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def load_rules(paths: Sequence[Path], *, cache_dir: Path | bool | None = True) -> RuleSet:
    """Load every rule document under `paths`. Never raises for bad rules: they land in `errors`.

    Parsing ~3,800 SigmaHQ files takes ~10 s; the parsed set is cached (pickle, keyed by every
    file's path, size and mtime and the pySigma version) under the user's cache folder, which only
    this user writes. Pass cache_dir=False to bypass it.
    """
    files = list(iter_rule_files(paths))
    directory = default_cache_dir() if cache_dir is True else (cache_dir or None)
    cache_file = directory / f"rules-{_cache_key(files)}.pickle" if isinstance(directory, Path) else None
    if cache_file is not None and cache_file.is_file():
        try:
            with cache_file.open("rb") as fh:
                cached = pickle.load(fh)  # noqa: S301 - our own cache file in the user's cache folder
            if isinstance(cached, RuleSet):
                return cached
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            pass  # a stale or broken cache is rebuilt below
    ruleset = _load_files(files)
    if cache_file is not None:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            partial = cache_file.with_suffix(f".{os.getpid()}.tmp")
            with partial.open("wb") as fh:
                pickle.dump(ruleset, fh, protocol=pickle.HIGHEST_PROTOCOL)
            partial.replace(cache_file)
        except OSError:
            pass  # caching is an optimisation only
    return ruleset


def _load_files(files: list[Path]) -> RuleSet:
    ruleset = RuleSet()
    collections: list[tuple[SigmaCollection, Path, str]] = []
    for path in files:
        ruleset.files += 1
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            ruleset.errors.append(
                LoadError(path=str(path), line=None, code="rule.unreadable", reason=str(exc))
            )
            continue
        try:
            collection = SigmaCollection.from_yaml(
                text,
                collect_errors=True,
                source=SigmaRuleLocation(path),
                collect_filters=True,
                resolve_references=False,
            )
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            reason = " ".join(str(exc).split())
            ruleset.errors.append(
                LoadError(path=str(path), line=line, code="rule.yaml_invalid", reason=reason)
            )
            continue
        except (SigmaError, ValueError, TypeError, KeyError, AttributeError) as exc:
            ruleset.errors.append(
                LoadError(
                    path=str(path), line=None, code="rule.invalid", reason=f"{type(exc).__name__}: {exc}"
                )
            )
            continue
        collections.append((collection, path, text))
    _collect(ruleset, collections)
    # pySigma reports a rule's errors on the rule and again on its collection
    ruleset.errors = list(dict.fromkeys(ruleset.errors))
    return ruleset


def _collect(ruleset: RuleSet, collections: list[tuple[SigmaCollection, Path, str]]) -> None:
    placed: dict[int, tuple[Path, str, int | None]] = {}
    for collection, path, text in collections:
        starts = _doc_lines(text)
        for error in collection.errors:
            ruleset.errors.append(_to_load_error(error, path, text, None))
        documents: list[Any] = [*collection.rules, *collection.filters]
        for index, rule in enumerate(documents):
            placed[id(rule)] = (path, text, starts[index] if index < len(starts) else None)
    try:
        merged = SigmaCollection.merge([c for c, _, _ in collections], resolve_references=True)
    except SigmaError as exc:
        # An unresolvable correlation reference poisons the merge: resolve without references,
        # then report each correlation that fails on its own.
        source = exc.source
        where = str(source.path) if source is not None else "<rules>"
        ruleset.errors.append(
            LoadError(path=where, line=None, code="rule.reference_unresolved", reason=str(exc))
        )
        merged = SigmaCollection.merge([c for c, _, _ in collections], resolve_references=False)
        merged.rules = [r for r in merged.rules if not isinstance(r, SigmaCorrelationRule)]
    for rule in merged.rules:
        path, text, line = placed.get(id(rule), (Path("<unknown>"), "", None))
        if isinstance(rule, SigmaRule):
            if rule.errors:
                ruleset.errors.extend(_to_load_error(e, path, text, line) for e in rule.errors)
                continue
            try:
                _check_conditions(rule)
            except SigmaError as exc:
                ruleset.errors.append(_to_load_error(exc, path, text, line))
                continue
            ruleset.rules.append((rule, _meta(rule, path, line)))
        elif isinstance(rule, SigmaCorrelationRule):
            if rule.errors:
                ruleset.errors.extend(_to_load_error(e, path, text, line) for e in rule.errors)
                continue
            ruleset.correlations.append((rule, _meta(rule, path, line)))


def _to_load_error(error: SigmaError, path: Path, text: str, default_line: int | None) -> LoadError:
    source = getattr(error, "source", None)
    line = source.line if source is not None and source.line is not None else None
    if line is None:
        line = _error_line(text, error, default_line)
    code = "rule." + re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__.removeprefix("Sigma")).lower()
    message = str(error)
    # pySigma appends the location to messages; keep the reason only.
    reason = message.split(" in ", 1)[0] if source is not None and " in /" in message else message
    return LoadError(path=str(path), line=line, code=code, reason=reason)
