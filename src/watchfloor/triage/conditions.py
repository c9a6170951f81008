"""Conditions on an alert and its event: suppressions (per tenant, from an alert in one step) and
auto-close policies for known-benign patterns (content file `content/triage/autoclose.yml`).

A condition names a field and tests its values; a condition on a missing field is false, a field with
several values (a list) passes when any value does, and a condition value that is a tuple passes when any
of its items does. Strings compare case-insensitively (both sides `str.lower()`).

Fields:
- an event field by its dotted name, looked up as a flat key (`{"process.executable": ...}`) and as a
  nested path (`{"process": {"executable": ...}}`), descending into lists of objects; field names are exact
  (ECS names are lower-case);
- `alert.rule_id`, `alert.rule_title`, `alert.rule_author`, `alert.severity`, `alert.status`,
  `alert.techniques`, `alert.tactics`, and `alert.entity.<kind>` (the alert's entities of that kind).

Ops: `equals`, `in` (equals any of a list), `contains`, `startswith`, `endswith`, `regex` (RE2 syntax:
linear time on any input; search anywhere, anchor with `^`/`$`; backreferences and lookaround are
`ConditionError`s), `cidr` (the value is an IP inside one of the networks). There is no negation: a policy
narrows with more conditions (all must hold).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final, cast, get_args

import re2
import yaml

from watchfloor.core.content import content_dir
from watchfloor.core.errors import ConfigError, Location, WatchfloorError
from watchfloor.core.types import RuleId, TenantId
from watchfloor.triage.models import (
    ENTITY_KINDS,
    Alert,
    AutoClosePolicy,
    Condition,
    ConditionOp,
    Suppression,
)

__all__ = [
    "Closer",
    "ConditionError",
    "active",
    "auto_close_policy",
    "check",
    "closes",
    "closing_reason",
    "load_autoclose",
    "matches",
    "suppressed_by",
    "suppression_from_alert",
    "values_of",
]

OPS: Final[tuple[str, ...]] = get_args(ConditionOp)
_ALERT_FIELDS: Final = frozenset(
    {"rule_id", "rule_title", "rule_author", "severity", "status", "techniques", "tactics"}
)


class ConditionError(WatchfloorError):
    """A condition cannot be evaluated (bad op, regex syntax RE2 does not support, bad network) or a
    suppression cannot be built from an alert."""

    code = "triage.condition_invalid"


# -- field values ----------------------------------------------------------------------------------
def _text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return value if isinstance(value, str) else str(value)


def _scalars(value: Any, out: list[str]) -> None:
    if value is None or isinstance(value, Mapping):
        return
    if isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, Mapping | list | tuple):
                _scalars(item, out)
            elif item is not None:
                out.append(_text(item))
        return
    out.append(_text(value))


@functools.lru_cache(maxsize=4096)
def _segments(name: str) -> tuple[tuple[str, ...], ...]:
    """For each position i of the dotted name, the keys `parts[i:j]` joined, longest first."""
    parts = name.split(".")
    return tuple(tuple(".".join(parts[i:j]) for j in range(len(parts), i, -1)) for i in range(len(parts)))


def _walk(node: Any, segments: tuple[tuple[str, ...], ...], i: int, out: list[str]) -> None:
    if i == len(segments):
        _scalars(node, out)
        return
    if isinstance(node, Mapping):
        keys = segments[i]
        for offset, key in enumerate(keys):
            child = node.get(key)
            if child is not None:
                _walk(child, segments, i + len(keys) - offset, out)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, Mapping):
                _walk(item, segments, i, out)


def _event_values(event: Mapping[str, Any], name: str) -> list[str]:
    out: list[str] = []
    flat = event.get(name)
    if flat is not None:
        _scalars(flat, out)
        return out
    node: Any = event
    for part in _parts(name):  # the common case: a plain chain of objects
        node = node.get(part) if type(node) is dict else None
        if node is None:
            break
    else:
        if not isinstance(node, dict | list):
            out.append(_text(node))
            return out
    _walk(event, _segments(name), 0, out)  # dotted keys inside objects, lists of objects, misses
    return out


@functools.lru_cache(maxsize=4096)
def _parts(name: str) -> tuple[str, ...]:
    return tuple(name.split("."))


def values_of(alert: Alert, event: Mapping[str, Any], name: str) -> list[str]:
    """The texts a condition on `name` tests (see the module docstring); [] when the field is absent."""
    if name.startswith("alert."):
        rest = name[6:]
        if rest.startswith("entity."):
            kind = rest[7:]
            return [entity.value for entity in alert.entities if entity.kind == kind]
        if rest in _ALERT_FIELDS:
            value = getattr(alert, rest)
            return list(value) if isinstance(value, tuple) else [str(value)]
        return []
    return _event_values(event, name)


# -- compiled conditions ---------------------------------------------------------------------------
Test = Callable[[list[str]], bool]


def _items(condition: Condition) -> tuple[str, ...]:
    value = condition.value
    return (value,) if isinstance(value, str) else tuple(value)


def _regex(pattern: str, where: str) -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        msg = f"{where}: regex {pattern!r} is not RE2 syntax ({detail}); no backreferences or lookaround"
        raise ConditionError(msg) from None


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(items: tuple[str, ...], where: str) -> tuple[Network, ...]:
    nets: list[Network] = []
    for item in items:
        try:
            nets.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ConditionError(f"{where}: {item!r} is not a network (CIDR like 10.0.0.0/8)") from None
    return tuple(nets)


def _in_networks(text: str, nets: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in nets)


@functools.lru_cache(maxsize=8192)
def compile_condition(condition: Condition) -> Test:
    """The test of one condition over a field's texts; ConditionError when it cannot be evaluated."""
    where = f"condition {condition.field} {condition.op}"
    items = _items(condition)
    if not condition.field:
        raise ConditionError(f"{where}: the field name is empty")
    if not items:
        raise ConditionError(f"{where}: no value to compare with")
    if condition.field.startswith("alert."):
        rest = condition.field[6:]
        kind = rest[7:] if rest.startswith("entity.") else None
        if rest not in _ALERT_FIELDS and kind not in ENTITY_KINDS:
            raise ConditionError(f"{where}: unknown alert field (use alert.rule_id, alert.entity.host, ...)")
    op = condition.op
    lowered = tuple(item.lower() for item in items)
    if op in ("equals", "in"):
        wanted = frozenset(lowered)
        return lambda values: any(v.lower() in wanted for v in values)
    if op == "contains":
        return lambda values: any(n in v.lower() for v in values for n in lowered)
    if op == "startswith":
        return lambda values: any(v.lower().startswith(lowered) for v in values)
    if op == "endswith":
        return lambda values: any(v.lower().endswith(lowered) for v in values)
    if op == "regex":
        return _regex_test(tuple(_regex(item, where) for item in items))
    if op == "cidr":
        nets = _networks(items, where)
        return lambda values: any(_in_networks(v, nets) for v in values)
    raise ConditionError(f"{where}: unknown op (use one of {', '.join(OPS)})")


def _regex_test(patterns: tuple[Any, ...]) -> Test:
    """Regex results are remembered per value (bounded): executables and command lines repeat, and one
    RE2 call from Python costs about as much as twenty dictionary lookups."""
    known: dict[str, bool] = {}

    def test(values: list[str]) -> bool:
        for value in values:
            hit = known.get(value)
            if hit is None:
                hit = any(p.search(value) is not None for p in patterns)
                if len(known) >= 4096:
                    known.clear()
                known[value] = hit
            if hit:
                return True
        return False

    return test


def check(conditions: Sequence[Condition]) -> None:
    """Raise ConditionError if any condition cannot be evaluated (call it when a suppression is saved)."""
    for condition in conditions:
        compile_condition(condition)


def matches(
    conditions: Sequence[Condition],
    alert: Alert,
    event: Mapping[str, Any],
    *,
    memo: dict[str, list[str]] | None = None,
) -> bool:
    """Whether every condition holds for the alert and its event (an empty list holds). `memo` keeps
    field values between calls on the same alert and event (several policies read the same fields)."""
    for condition in conditions:
        name = condition.field
        known = memo.get(name) if memo is not None else None
        if known is not None:
            values = known
        else:
            values = values_of(alert, event, name)
            if memo is not None:
                memo[name] = values
        if not values or not compile_condition(condition)(values):
            return False
    return True


# -- suppressions ----------------------------------------------------------------------------------
def active(suppression: Suppression, now: datetime) -> bool:
    """Enabled and not yet expired at `now`."""
    return suppression.enabled and (suppression.expires_at is None or now < suppression.expires_at)


def suppressed_by(
    suppressions: Sequence[Suppression], alert: Alert, event: Mapping[str, Any], now: datetime
) -> Suppression | None:
    """The first active suppression of the alert's tenant, in scope for its rule, that matches."""
    memo: dict[str, list[str]] = {}
    for suppression in suppressions:
        if (
            suppression.tenant_id == alert.tenant_id
            and (suppression.rule_id is None or suppression.rule_id == alert.rule_id)
            and active(suppression, now)
            and matches(suppression.conditions, alert, event, memo=memo)
        ):
            return suppression
    return None


def auto_close_policy(
    policies: Sequence[AutoClosePolicy], alert: Alert, event: Mapping[str, Any]
) -> AutoClosePolicy | None:
    """The first policy for the alert's tenant (or every tenant) and rule that matches."""
    memo: dict[str, list[str]] = {}
    for policy in policies:
        if (
            (policy.tenant_id is None or policy.tenant_id == alert.tenant_id)
            and (policy.rule_id is None or policy.rule_id == alert.rule_id)
            and matches(policy.conditions, alert, event, memo=memo)
        ):
            return policy
    return None


Closer = Suppression | AutoClosePolicy


def closing_reason(closer: Closer) -> str:
    """The closed_reason an alert gets: `suppressed by <id> (<author>): <reason>` or
    `auto-closed by policy <name>: <reason>` (the engine reads the id or name back when seeding)."""
    if isinstance(closer, Suppression):
        return f"suppressed by {closer.id} ({closer.author}): {closer.reason}"
    return f"auto-closed by policy {closer.name}: {closer.reason}"


def closes(closer: Closer, alert: Alert, event: Mapping[str, Any], now: datetime) -> bool:
    """Whether this suppression or policy closes the alert with this event (scope, expiry, conditions)."""
    if isinstance(closer, Suppression):
        return suppressed_by((closer,), alert, event, now) is not None
    return auto_close_policy((closer,), alert, event) is not None


def suppression_from_alert(
    alert: Alert,
    event: Mapping[str, Any],
    fields: Sequence[str],
    *,
    author: str,
    reason: str,
    expires_at: datetime | None,
    now: datetime,
    scope_rule: bool = True,
) -> Suppression:
    """A suppression built from one alert in one step: for each chosen field, `equals` its value in this
    alert (or `in` its values when it has several), scoped to the alert's rule unless `scope_rule` is
    False. The id is stable for the same tenant, rule scope, conditions, author and time."""
    where = f"suppression from alert {alert.id}"
    if not author.strip():
        raise ConditionError(f"{where}: the author is empty")
    if not reason.strip():
        raise ConditionError(f"{where}: give a reason (it is shown on every alert it closes)")
    if now.tzinfo is None or (expires_at is not None and expires_at.tzinfo is None):
        raise ConditionError(f"{where}: times must be timezone-aware")
    if expires_at is not None and expires_at <= now:
        raise ConditionError(f"{where}: expires_at {expires_at.isoformat()} is not after now")
    if not fields and not scope_rule:
        raise ConditionError(f"{where}: choose at least one field or scope it to the rule")
    conditions: list[Condition] = []
    for name in dict.fromkeys(fields):
        found = list(dict.fromkeys(values_of(alert, event, name)))
        if not found:
            raise ConditionError(f"{where}: field {name!r} has no value in this alert or its event")
        if len(found) == 1:
            conditions.append(Condition(field=name, op="equals", value=found[0]))
        else:
            conditions.append(Condition(field=name, op="in", value=tuple(found)))
    rule_id = RuleId(alert.rule_id) if scope_rule else None
    material = "\x1f".join(
        [alert.tenant_id, rule_id or "*", author, now.isoformat()]
        + [f"{c.field}\x1e{c.op}\x1e{_items(c)}" for c in conditions]
    )
    digest = hashlib.blake2b(material.encode(), digest_size=8).hexdigest()
    return Suppression(
        id=f"sup-{digest}",
        tenant_id=TenantId(alert.tenant_id),
        conditions=tuple(conditions),
        rule_id=rule_id,
        reason=reason.strip(),
        author=author.strip(),
        created_at=now,
        expires_at=expires_at,
    )


# -- auto-close content ----------------------------------------------------------------------------
_POLICY_KEYS: Final = frozenset({"name", "reason", "rule_id", "conditions", "note"})
_CONDITION_KEYS: Final = frozenset({"field", "op", "value"})


def load_autoclose(path: Path | None = None) -> tuple[AutoClosePolicy, ...]:
    """The auto-close policies of a content file (default `content/triage/autoclose.yml`); every key is
    checked, and a ConfigError names the file, the key path and (when known) the line."""
    path = path if path is not None else content_dir() / "triage" / "autoclose.yml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"cannot read auto-close policies: {exc.strerror}"
        raise ConfigError(msg, location=Location(path=str(path)), code="triage.autoclose_invalid") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            "not valid YAML", location=Location(path=str(path), line=line), code="triage.autoclose_invalid"
        ) from None
    return _Loader(path, root).policies(doc)


class _Loader:
    def __init__(self, path: Path, root: yaml.Node | None) -> None:
        self.path = path
        self.root = root

    def fail(self, keys: tuple[str | int, ...], message: str) -> ConfigError:
        label = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys).lstrip(".") or "<root>"
        where = Location(path=str(self.path), line=self._line(keys))
        return ConfigError(f"{label}: {message}", location=where, code="triage.autoclose_invalid")

    def _line(self, keys: tuple[str | int, ...]) -> int | None:
        node = self.root
        for key in keys:
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if k.value == key), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
            else:
                break
            if node is None:
                return None
        return node.start_mark.line + 1 if node is not None else None

    def policies(self, doc: object) -> tuple[AutoClosePolicy, ...]:
        if not isinstance(doc, dict):
            raise self.fail((), "expected a mapping with `policies:`")
        unknown = set(doc) - {"description", "policies"}
        if unknown:
            raise self.fail((min(map(str, unknown)),), "unknown key (use description, policies)")
        items = doc.get("policies")
        if not isinstance(items, list) or not items:
            raise self.fail(("policies",), "expected a non-empty list of policies")
        out: list[AutoClosePolicy] = []
        names: set[str] = set()
        for index, item in enumerate(items):
            policy = self.policy(("policies", index), item)
            if policy.name in names:
                raise self.fail(("policies", index, "name"), f"duplicate policy name {policy.name!r}")
            names.add(policy.name)
            out.append(policy)
        return tuple(out)

    def policy(self, keys: tuple[str | int, ...], item: object) -> AutoClosePolicy:
        if not isinstance(item, dict):
            raise self.fail(keys, "expected a mapping (name, reason, conditions, rule_id)")
        for key in item:
            if key not in _POLICY_KEYS:
                raise self.fail((*keys, str(key)), f"unknown key (use {', '.join(sorted(_POLICY_KEYS))})")
        name, reason = item.get("name"), item.get("reason")
        if not isinstance(name, str) or not name.strip():
            raise self.fail((*keys, "name"), "a non-empty name is required")
        if not isinstance(reason, str) or not reason.strip():
            raise self.fail((*keys, "reason"), "a non-empty reason is required (it is shown on each closure)")
        rule_id = item.get("rule_id")
        if rule_id is not None and not isinstance(rule_id, str):
            raise self.fail((*keys, "rule_id"), "expected a rule id (text)")
        raw = item.get("conditions")
        if not isinstance(raw, list) or not raw:
            raise self.fail((*keys, "conditions"), "expected a non-empty list of conditions")
        conditions = tuple(self.condition((*keys, "conditions", i), c) for i, c in enumerate(raw))
        return AutoClosePolicy(
            name=name.strip(),
            conditions=conditions,
            reason=" ".join(reason.split()),
            rule_id=RuleId(rule_id) if rule_id else None,
        )

    def condition(self, keys: tuple[str | int, ...], item: object) -> Condition:
        if not isinstance(item, dict):
            raise self.fail(keys, "expected a mapping (field, op, value)")
        for key in item:
            if key not in _CONDITION_KEYS:
                raise self.fail((*keys, str(key)), "unknown key (use field, op, value)")
        field, op, value = item.get("field"), item.get("op"), item.get("value")
        if not isinstance(field, str) or not field:
            raise self.fail((*keys, "field"), "a field name is required")
        if op not in OPS:
            raise self.fail((*keys, "op"), f"unknown op {op!r} (use one of {', '.join(OPS)})")
        texts: str | tuple[str, ...]
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            texts = str(value)
        elif isinstance(value, list) and value and all(isinstance(v, str | int | float) for v in value):
            texts = tuple(str(v) for v in value)
        else:
            raise self.fail((*keys, "value"), "expected a text or a non-empty list of texts")
        condition = Condition(field=field, op=cast(ConditionOp, op), value=texts)
        try:
            compile_condition(condition)
        except ConditionError as exc:
            raise self.fail(keys, exc.message) from None
        return condition
