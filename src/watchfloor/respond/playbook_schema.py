"""The playbook file format and its two small languages.

- The document: pydantic models of the YAML (shapes, names, ranges) and the JSON Schema editors validate
  against (`content/playbooks/playbook.schema.json`, `playbook_json_schema()`).
- Positions: a YAML text as (data, node tree), and a problem as `path:line: key.path: message`.
- References and templates (`{{ incident.entities.user[0] }}`) and conditions (`{ref: .., equals: ..}`):
  parsed at load time, resolved and evaluated at run time. No eval, no Jinja (see `respond.playbooks`).

Rules that span fields (step references, branch cycles, approvals before containment, manifests) are
checked by `respond.playbooks`, which builds the frozen `Playbook`.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from watchfloor.core.errors import ConfigError, Location, WatchfloorError
from watchfloor.core.types import SEVERITIES, IncidentState, Severity
from watchfloor.triage.models import ENTITY_KINDS

__all__ = [
    "ACTION_ID_PATTERN",
    "ACTION_KINDS",
    "INCIDENT_FIELDS",
    "STEP_FIELDS",
    "STEP_ID_PATTERN",
    "STEP_KINDS",
    "ActionStepDoc",
    "AllOf",
    "AnyOf",
    "ApprovalStepDoc",
    "BranchStepDoc",
    "Check",
    "Condition",
    "ConditionDoc",
    "Not",
    "PlaybookDoc",
    "PlaybookError",
    "PlaybookRuntimeError",
    "Problem",
    "Reference",
    "StepDoc",
    "Template",
    "TriggerDoc",
    "WaitStepDoc",
    "close_match",
    "duplicate_keys",
    "evaluate",
    "freeze",
    "key_text",
    "line_of",
    "located",
    "playbook_json_schema",
    "read_yaml",
    "reference_problem",
    "render",
    "schema_problems",
    "schema_text",
    "thaw",
]

PLAYBOOK_ID_PATTERN: Final = r"^[a-z][a-z0-9-]{0,62}$"
STEP_ID_PATTERN: Final = r"^[a-z][a-z0-9_]{0,62}$"  # usable in `steps.<id>` references: no hyphens
ACTION_ID_PATTERN: Final = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"
TECHNIQUE_PATTERN: Final = r"^T[0-9]{4}(\.[0-9]{3})?$"
NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,62}$"  # tenants, tiers, tags, contacts
ACTION_KINDS: Final = ("enrich", "notify", "contain", "ticket")
STEP_KINDS: Final = (*ACTION_KINDS, "approval", "branch", "wait")
_HINTS: Final = {  # what a pattern means, in words, by the field that failed it
    "id": "ids are lower-case letters, digits and '-' (playbooks) or '_' (steps), starting with a letter",
    "action": "action ids are '<connector>.<verb>' in lower case, e.g. msgraph.disable_user",
    "techniques": "ATT&CK technique ids look like T1059 or T1059.001",
    "all_techniques": "ATT&CK technique ids look like T1059 or T1059.001",
}

ActionKind = Literal["enrich", "notify", "contain", "ticket"]
OnError = Literal["stop", "continue"]
ApproverRole = Literal["mssp_admin", "soc_manager", "analyst", "customer_admin"]
Tactic = Literal[
    "reconnaissance",
    "resource-development",
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "defense-evasion",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
    "impact",
]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
StepId = Annotated[str, Field(pattern=STEP_ID_PATTERN)]
Technique = Annotated[str, Field(pattern=TECHNIQUE_PATTERN)]
Scalar = Annotated[int | float | str, Field(union_mode="left_to_right")]


# -- errors ------------------------------------------------------------------------------------------------
class PlaybookError(ConfigError):
    """A playbook file is invalid; the location is the file and line, the message starts with the key."""

    code = "playbook.invalid"


class PlaybookRuntimeError(WatchfloorError):
    """A reference or condition could not be resolved while running (the message starts with the
    reference, e.g. `steps.lookup.output.user_id: ...`; the location is the playbook file and step line)."""

    code = "playbook.reference"


# -- the document --------------------------------------------------------------------------------------------
class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TenantsDoc(_Doc):
    """Tenants the playbook runs for: `include` (empty: every tenant) minus `exclude`."""

    include: list[Name] = Field(default_factory=list)
    exclude: list[Name] = Field(default_factory=list)


class TriggerDoc(_Doc):
    """Conditions on the incident; every one given must hold (each list is any-of unless named all_)."""

    severity_at_least: Severity | None = Field(default=None, description="low, medium, high or critical")
    techniques: list[Technique] = Field(
        default_factory=list, description="any of these ATT&CK techniques; T1059 also matches T1059.001"
    )
    all_techniques: list[Technique] = Field(
        default_factory=list, description="every one of these techniques (prefix match as above)"
    )
    tactics: list[Tactic] = Field(default_factory=list, description="any of these ATT&CK tactics")
    rule_ids: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="any of the incident's alerts comes from one of these rules"
    )
    tenants: TenantsDoc = Field(default_factory=TenantsDoc)
    tiers: list[Name] = Field(default_factory=list, description="service tiers (empty: every tier)")
    states: list[IncidentState] = Field(
        default_factory=list, description="incident states (empty: every state but the closed ones)"
    )
    priority: int = Field(default=0, ge=-1000, le=1000, description="higher runs first among matches")


class ConditionDoc(_Doc):
    """One test (`ref` and one of equals, in, exists, gte, lte), or `all`/`any` of conditions, or `not`."""

    ref: str | None = Field(default=None, description="incident.*, tenant.* or steps.<id>.*")
    equals: JsonValue = None
    in_: list[JsonValue] | None = Field(default=None, alias="in")
    exists: bool | None = None
    gte: Scalar | None = Field(default=None, description="number, or severity compared by rank")
    lte: Scalar | None = Field(default=None, description="number, or severity compared by rank")
    default: JsonValue = Field(default=None, description="value used when the reference is missing")
    all_: list[ConditionDoc] | None = Field(default=None, alias="all")
    any_: list[ConditionDoc] | None = Field(default=None, alias="any")
    not_: ConditionDoc | None = Field(default=None, alias="not")


class _StepDoc(_Doc):
    id: StepId
    description: str = ""
    on_error: OnError = Field(default="stop", description="stop the run, or continue with the next step")


class ActionStepDoc(_StepDoc):
    """Run one response action with inputs; strings may hold `{{ reference }}` templates."""

    kind: ActionKind
    action: Annotated[str, Field(pattern=ACTION_ID_PATTERN)]
    with_: dict[str, JsonValue] = Field(default_factory=dict, alias="with")
    rollback_on_failure: bool = Field(
        default=False, description="undo this step (reversible actions) when the run fails later"
    )


class ApproversDoc(_Doc):
    roles: list[ApproverRole] = Field(default_factory=list)
    customer_contacts: list[Name] = Field(default_factory=list, description="the tenant's contact roles")


class ApprovalStepDoc(_StepDoc):
    """Wait for a person to approve; rejected or unanswered (fail_closed) stops the run and escalates."""

    kind: Literal["approval"]
    who: ApproversDoc
    timeout_minutes: int = Field(ge=1, le=10_080)
    on_timeout: Literal["fail_closed", "proceed"] = "fail_closed"
    message: str = ""
    auto_approve_if: ConditionDoc | None = Field(
        default=None, description="approved without asking when this holds (a tenant's standing approval)"
    )


class BranchStepDoc(_StepDoc):
    """Run the steps in `then` when the condition holds and those in `else` when it does not."""

    kind: Literal["branch"]
    if_: ConditionDoc = Field(alias="if")
    then: list[StepId] = Field(default_factory=list)
    else_: list[StepId] = Field(default_factory=list, alias="else")


class WaitStepDoc(_StepDoc):
    """Wait `minutes`, or `until` a condition holds (at most `timeout_minutes`)."""

    kind: Literal["wait"]
    minutes: int | None = Field(default=None, ge=1, le=10_080)
    until: ConditionDoc | None = None
    timeout_minutes: int | None = Field(default=None, ge=1, le=10_080)
    on_timeout: OnError = "stop"


StepDoc = Annotated[
    ActionStepDoc | ApprovalStepDoc | BranchStepDoc | WaitStepDoc, Field(discriminator="kind")
]


class PlaybookDoc(_Doc):
    """A Watchfloor response playbook (content/playbooks/*.yml)."""

    id: Annotated[str, Field(pattern=PLAYBOOK_ID_PATTERN)]
    name: Annotated[str, Field(min_length=1)]
    version: int = Field(ge=1, description="revision, raised on every change")
    description: Annotated[str, Field(min_length=1)]
    author: Annotated[str, Field(min_length=1)]
    trigger: TriggerDoc
    steps: list[StepDoc] = Field(min_length=1)
    tags: list[Name] = Field(default_factory=list)
    enabled: bool = True


def playbook_json_schema() -> dict[str, Any]:
    """The JSON Schema of a playbook file (what `content/playbooks/playbook.schema.json` holds)."""
    schema = PlaybookDoc.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_text() -> str:
    """`playbook_json_schema()` as the file is written: two-space indent, trailing newline."""
    return json.dumps(playbook_json_schema(), indent=2) + "\n"


# -- YAML with lines -----------------------------------------------------------------------------------------
Problem = tuple[tuple[str | int, ...], str]  # (key path, message)


class _Loader(yaml.SafeLoader):
    """SafeLoader without aliases: `*name` could multiply a small file into a huge document (and no
    playbook needs one)."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
            mark = cast("yaml.error.Mark | None", event.start_mark)
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in playbooks: repeat the value", mark
            )
        return super().compose_node(parent, index)


def read_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """(data, node tree) of one YAML document; yaml.YAMLError on bad syntax or an alias."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, node


def duplicate_keys(node: yaml.Node | None, path: tuple[str | int, ...] = ()) -> Iterator[Problem]:
    """Mapping keys given twice (YAML keeps the last one silently)."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                yield (*path, name), "duplicate key (YAML would keep only the last one)"
            seen.add(name)
            yield from duplicate_keys(value, (*path, name))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from duplicate_keys(item, (*path, index))


def line_of(node: yaml.Node | None, path: Sequence[str | int]) -> int | None:
    """1-based line of the deepest node on `path` (the key's line for mappings)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    current: yaml.Node = node
    for part in path:
        if isinstance(current, yaml.MappingNode):
            found = [(k, v) for k, v in current.value if str(k.value) == str(part)]
            if not found:
                break
            key, current = found[-1]
            line = key.start_mark.line + 1
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int) and part < len(current.value):
            current = current.value[part]
            line = current.start_mark.line + 1
        else:
            break
    return line


def key_text(path: Sequence[str | int]) -> str:
    """`("steps", 2, "with", "user")` -> `steps[2].with.user`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<file>"


_FIELD_NAMES: Final = sorted(
    {
        (info.alias or name)
        for model in (
            PlaybookDoc,
            TriggerDoc,
            TenantsDoc,
            ConditionDoc,
            ActionStepDoc,
            ApproversDoc,
            ApprovalStepDoc,
            BranchStepDoc,
            WaitStepDoc,
        )
        for name, info in model.model_fields.items()
    }
)


def schema_problems(exc: ValidationError) -> list[Problem]:
    """Pydantic's errors as (key path, message), without the union tags pydantic puts in `loc`."""
    problems: list[Problem] = []
    for error in exc.errors():
        loc = error["loc"]
        path: list[str | int] = []
        for index, part in enumerate(loc):
            tag = index > 0 and isinstance(loc[index - 1], int) and part in STEP_KINDS
            if not tag:
                path.append(part)
        problems.append((tuple(path), _message(error, path)))
    return problems


def _message(error: Any, path: Sequence[str | int]) -> str:
    kind: str = error["type"]
    value = error.get("input")
    last = next((p for p in reversed(path) if isinstance(p, str)), "")
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(last), _FIELD_NAMES, n=1)
        return "unknown field" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "union_tag_invalid":
        return f"unknown step kind {error['ctx']['tag']!r} (known: {', '.join(STEP_KINDS)})"
    if kind == "union_tag_not_found":
        return f"every step needs a `kind`: one of {', '.join(STEP_KINDS)}"
    if kind == "string_pattern_mismatch":
        return f"{_HINTS.get(str(last), 'does not match ' + str(error['ctx']['pattern']))}, got {value!r}"
    message = str(error["msg"])
    if isinstance(value, str | int | float | bool) or value is None:
        return f"{message}, got {value!r}"
    return f"{message}, got a {_yaml_type(value)}"


def _yaml_type(value: object) -> str:
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def located(path: str, node: yaml.Node | None, problem: Problem) -> PlaybookError:
    """The PlaybookError for a problem of the file at `path`."""
    keys, message = problem
    return PlaybookError(
        f"{key_text(keys)}: {message}", location=Location(path=path, line=line_of(node, keys))
    )


# -- references and templates -------------------------------------------------------------------------------
_NAME: Final = r"[A-Za-z_][A-Za-z0-9_]*"
_REFERENCE_RE: Final = re.compile(rf"{_NAME}(?:\.{_NAME}|\[[0-9]+\])*")
_PART_RE: Final = re.compile(rf"\.?({_NAME})|\[([0-9]+)\]")
_TEMPLATE_RE: Final = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_ROOTS: Final = ("incident", "tenant", "steps")

# What `incident.<field>` holds: one value, a list, or the entities by kind (see `incident_context`).
INCIDENT_FIELDS: Final[Mapping[str, Literal["value", "list", "entities"]]] = MappingProxyType(
    {
        "id": "value",
        "tenant_id": "value",
        "title": "value",
        "state": "value",
        "severity": "value",
        "risk": "value",
        "created_at": "value",
        "first_event_at": "value",
        "assignee": "value",
        "queue_tier": "value",
        "techniques": "list",
        "tactics": "list",
        "alert_ids": "list",
        "rule_ids": "list",
        "entities": "entities",
    }
)
STEP_FIELDS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "action": ("status", "output", "summary", "changed", "external_ref"),
        "approval": ("status", "decided_by"),
        "branch": ("status",),
        "wait": ("status",),
    }
)


@dataclass(frozen=True, slots=True)
class Reference:
    """A dotted path into the run context: `incident.entities.user[0]`, `steps.lookup.output.user_id`."""

    text: str
    parts: tuple[str | int, ...]

    @classmethod
    def parse(cls, text: str) -> Reference:
        """ValueError when `text` is not `name(.name|[index])*`."""
        text = text.strip()
        if not _REFERENCE_RE.fullmatch(text):
            raise ValueError(f"not a reference: {text!r} (write e.g. incident.entities.user[0])")
        parts = tuple(m[1] if m[1] is not None else int(m[2]) for m in _PART_RE.finditer(text))
        return cls(text, parts)

    def resolve(self, context: Mapping[str, Any], *, location: Location | None = None) -> Any:
        """The value at this path; PlaybookRuntimeError naming the reference when it is not there."""
        value: Any = context
        seen = ""
        for part in self.parts:
            if isinstance(part, int):
                if not isinstance(value, list | tuple):
                    raise self._error(f"{seen} is not a list", location)
                if part >= len(value):
                    raise self._error(f"{seen} has {len(value)} item(s), there is no [{part}]", location)
                value = value[part]
                seen += f"[{part}]"
            else:
                if not isinstance(value, Mapping):
                    raise self._error(f"{seen} is a single value, it has no {part!r}", location)
                if part not in value:
                    raise self._error(f"{seen or 'the context'} has no {part!r}", location)
                value = value[part]
                seen += f".{part}" if seen else part
        return value

    def _error(self, message: str, location: Location | None) -> PlaybookRuntimeError:
        return PlaybookRuntimeError(f"{self.text}: {message}", location=location)


@dataclass(frozen=True, slots=True)
class Template:
    """A string with `{{ reference }}` holes (`pieces`: text and references, in order)."""

    text: str
    pieces: tuple[str | Reference, ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        """ValueError on an unclosed `{{` or a hole that is not a reference."""
        pieces: list[str | Reference] = []
        end = 0
        for match in _TEMPLATE_RE.finditer(text):
            pieces.append(text[end : match.start()])
            pieces.append(Reference.parse(match[1]))
            end = match.end()
        pieces.append(text[end:])
        for piece in pieces:
            if isinstance(piece, str) and "{{" in piece:
                raise ValueError(f"unclosed '{{{{' in {text!r}")
        return cls(text, tuple(p for p in pieces if p != ""))

    @property
    def references(self) -> tuple[Reference, ...]:
        return tuple(p for p in self.pieces if isinstance(p, Reference))

    def render(self, context: Mapping[str, Any], *, location: Location | None = None) -> Any:
        """The value of a lone `{{ ref }}`; otherwise the text with each value written in."""
        if len(self.pieces) == 1 and isinstance(self.pieces[0], Reference):
            return self.pieces[0].resolve(context, location=location)
        return "".join(
            _text(p.resolve(context, location=location)) if isinstance(p, Reference) else p
            for p in self.pieces
        )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(thaw(value), sort_keys=True, default=str)
    return str(value)


def render(value: Any, context: Mapping[str, Any], *, location: Location | None = None) -> Any:
    """`value` with every string rendered as a template (mappings and lists deeply; others unchanged)."""
    if isinstance(value, str):
        return Template.parse(value).render(context, location=location) if "{{" in value else value
    if isinstance(value, Mapping):
        return {k: render(v, context, location=location) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render(v, context, location=location) for v in value]
    return value


def freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


# -- conditions ----------------------------------------------------------------------------------------------
CheckOp = Literal["equals", "in", "exists", "gte", "lte"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    ref: Reference
    op: CheckOp
    value: Any = None
    has_default: bool = False
    default: Any = None


@dataclass(frozen=True, slots=True)
class AllOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    condition: Condition


Condition = Check | AllOf | AnyOf | Not


def evaluate(condition: Condition, context: Mapping[str, Any], *, location: Location | None = None) -> bool:
    """Whether `condition` holds in `context` (`all`/`any` stop at the first deciding item)."""
    if isinstance(condition, AllOf):
        return all(evaluate(c, context, location=location) for c in condition.conditions)
    if isinstance(condition, AnyOf):
        return any(evaluate(c, context, location=location) for c in condition.conditions)
    if isinstance(condition, Not):
        return not evaluate(condition.condition, context, location=location)
    try:
        actual = condition.ref.resolve(context, location=location)
    except PlaybookRuntimeError:
        if condition.op == "exists":
            return not condition.value
        if not condition.has_default:
            raise
        actual = condition.default
    if condition.op == "exists":
        return _present(actual) == bool(condition.value)
    items = actual if isinstance(actual, list | tuple) else [actual]
    return any(_test(condition, item, location) for item in items)


def _present(value: Any) -> bool:
    return value is not None and value != "" and not (isinstance(value, list | tuple | Mapping) and not value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    return bool(a == b) and isinstance(a, bool) == isinstance(b, bool)


def _test(test: Check, actual: Any, location: Location | None) -> bool:
    if test.op == "equals":
        return _same(actual, test.value)
    if test.op == "in":
        return any(_same(actual, v) for v in test.value)
    low, high = (actual, test.value) if test.op == "gte" else (test.value, actual)
    return _rank(high, test, location) <= _rank(low, test, location)


def _rank(value: Any, test: Check, location: Location | None) -> float:
    if isinstance(value, str) and value.lower() in SEVERITIES:
        return SEVERITIES.index(value.lower())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise PlaybookRuntimeError(
        f"{test.ref.text}: cannot compare {value!r} with {test.op} (numbers, or severities by rank)",
        location=location,
    )


def reference_problem(ref: Reference, *, steps: Mapping[str, tuple[int, str]], index: int) -> str | None:
    """What is wrong with `ref` in the step at position `index` (None: nothing the loader can see).
    `steps`: step id -> (position, kind: action, approval, branch or wait)."""
    parts = ref.parts
    root, rest = parts[0], parts[1:]
    if root == "tenant":
        return None if rest and isinstance(rest[0], str) else "name a tenant setting: tenant.<name>"
    if root == "incident":
        name = rest[0] if rest else None
        if not isinstance(name, str) or name not in INCIDENT_FIELDS:
            known = ", ".join(INCIDENT_FIELDS)
            return f"unknown incident field{close_match(name, INCIDENT_FIELDS)} (known: {known})"
        shape, below = INCIDENT_FIELDS[name], rest[1:]
        if shape == "entities":
            kind = below[0] if below else None
            if not isinstance(kind, str) or kind not in ENTITY_KINDS:
                return f"incident.entities.<kind> with a kind of {', '.join(ENTITY_KINDS)}"
            below = below[1:]
            shape = "list"
        if shape == "value" and below:
            return f"incident.{name} is a single value, nothing is below it"
        if below and (len(below) > 1 or not isinstance(below[0], int)):
            return "a list takes one [index] and nothing more"
        return None
    if root == "steps":
        step = rest[0] if rest else None
        if not isinstance(step, str) or step not in steps:
            return f"unknown step{close_match(step, steps)}"
        position, kind = steps[step]
        if position >= index:
            return f"step {step!r} does not run before this one"
        fields = STEP_FIELDS[kind]
        attr = rest[1] if len(rest) > 1 else None
        if not isinstance(attr, str) or attr not in fields:
            return f"steps.{step}.<field> with a field of {', '.join(fields)}"
        if attr != "output" and len(rest) > 2:
            return f"steps.{step}.{attr} is a single value, nothing is below it"
        return None
    return f"a reference starts with {', '.join(_ROOTS)}"


def close_match(word: object, known: Iterable[str]) -> str:
    """` 'word' (did you mean 'other'?)` for messages, or ` 'word'` when nothing is close."""
    if not isinstance(word, str):
        return ""
    found = difflib.get_close_matches(word, list(known), n=1)
    return f" {word!r} (did you mean {found[0]!r}?)" if found else f" {word!r}"
