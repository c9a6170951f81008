"""Response playbooks: the frozen `Playbook` and its steps, the run context its references resolve in,
and the loader that checks a YAML file (`content/playbooks/*.yml`) down to the offending line. The file
format, templates and conditions are in `respond.playbook_schema` (re-exported here).

A playbook is a trigger (`respond.triggers.Trigger`) and steps run in order:

- action steps, `kind` enrich | notify | contain | ticket: run `action` (`<connector>.<verb>`, see
  `respond.actions`) with the inputs under `with:`; `rollback_on_failure` undoes the step (reversible
  actions only) when the run fails later;
- `approval`: ask `who` (roles, the tenant's customer contacts), wait at most `timeout_minutes`; rejected or
  unanswered with `on_timeout: fail_closed` (the default, and the only choice when a containment step
  follows) stops the run and escalates; `auto_approve_if` skips the question (a tenant's standing approval);
- `branch`: the steps in `then` run only when `if` holds, those in `else` only when it does not (both name
  later steps; a step follows at most one branch; a skipped branch skips every step it gates);
- `wait`: `minutes`, or `until` a condition holds within `timeout_minutes` (`on_timeout` stop | continue).

Every step has an `id` and `on_error` (stop | continue).

**References** name a value of the run's context: `incident.<field>` (see `INCIDENT_FIELDS`;
`incident.entities.<kind>` is the list of that kind's values, `[0]` the first), `tenant.<setting>...` (the
tenant's settings, e.g. `tenant.edr`), `steps.<id>.<field>` (an earlier step's record: `status`, and for
actions `output.<key>...`, `summary`, `changed`, `external_ref`; approvals also `decided_by`).
**Templates**: strings in `with:` and approval messages may hold `{{ reference }}`; a string that is one
template alone becomes the value itself (a list stays a list), otherwise values are written into the text.
There is no expression language, no filters and no escape for a literal `{{`.
**Conditions**: `{ref: R, equals: V}`, `in: [..]`, `exists: true|false` (present and not empty), `gte`/`lte`
(numbers, or severities by rank); `all: [..]`, `any: [..]`, `not: {..}`. A list value passes when any item
does; strings compare case-insensitively; a missing reference is an error unless the test gives `default`.

What the loader can see (unknown fields and steps, later steps referenced, incident fields, cycles, ...) is
a `PlaybookError` at `path:line` with the key path first; what only a run can see (a tenant setting or step
output that is absent, an index past the end) is a `PlaybookRuntimeError` naming the reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal

import yaml
from pydantic import ValidationError

from watchfloor.core.content import content_dir
from watchfloor.core.errors import Location
from watchfloor.core.types import ANALYST_TIERS, INCIDENT_STATES, SEVERITIES
from watchfloor.respond.actions import ActionManifest, ActionResult
from watchfloor.respond.playbook_schema import (
    INCIDENT_FIELDS,
    ActionKind,
    ActionStepDoc,
    AllOf,
    AnyOf,
    ApprovalStepDoc,
    ApproverRole,
    BranchStepDoc,
    Check,
    CheckOp,
    Condition,
    ConditionDoc,
    Not,
    OnError,
    PlaybookDoc,
    PlaybookError,
    PlaybookRuntimeError,
    Problem,
    Reference,
    Template,
    TriggerDoc,
    WaitStepDoc,
    close_match,
    duplicate_keys,
    evaluate,
    freeze,
    line_of,
    located,
    playbook_json_schema,
    read_yaml,
    reference_problem,
    render,
    schema_problems,
    schema_text,
    thaw,
)
from watchfloor.respond.triggers import Trigger
from watchfloor.triage.models import ENTITY_KINDS

if TYPE_CHECKING:
    from watchfloor.cases.models import Incident
    from watchfloor.triage.models import Alert

__all__ = [
    "INCIDENT_FIELDS",
    "ActionStep",
    "AllOf",
    "AnyOf",
    "ApprovalStep",
    "BranchStep",
    "Check",
    "Condition",
    "Not",
    "Playbook",
    "PlaybookError",
    "PlaybookRuntimeError",
    "PlaybookSet",
    "Reference",
    "Step",
    "Template",
    "WaitStep",
    "evaluate",
    "incident_context",
    "load_playbook",
    "load_playbooks",
    "parse_playbook",
    "playbook_json_schema",
    "render",
    "resolve_inputs",
    "run_context",
    "schema_text",
    "step_record",
]


# -- the playbook -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class _Step:
    id: str
    description: str = ""
    on_error: OnError = "stop"
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionStep(_Step):
    kind: ActionKind
    action: str
    inputs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    rollback_on_failure: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalStep(_Step):
    kind: Literal["approval"] = "approval"
    roles: tuple[ApproverRole, ...] = ()
    customer_contacts: tuple[str, ...] = ()
    timeout_minutes: int
    on_timeout: Literal["fail_closed", "proceed"] = "fail_closed"
    message: str = ""
    auto_approve_if: Condition | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BranchStep(_Step):
    kind: Literal["branch"] = "branch"
    condition: Condition
    then: tuple[str, ...] = ()
    else_: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitStep(_Step):
    kind: Literal["wait"] = "wait"
    minutes: int | None = None
    until: Condition | None = None
    timeout_minutes: int | None = None
    on_timeout: OnError = "stop"


Step = ActionStep | ApprovalStep | BranchStep | WaitStep


@dataclass(frozen=True, slots=True, kw_only=True)
class Playbook:
    id: str
    name: str
    version: int
    description: str
    author: str
    trigger: Trigger
    steps: tuple[Step, ...]
    tags: tuple[str, ...] = ()
    enabled: bool = True
    source: Location = field(default_factory=Location, compare=False)  # file and line of `id`

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def gate_of(self, step_id: str) -> tuple[str, bool] | None:
        """(branch id, side) of the branch that gates `step_id` (True: its `then`), or None."""
        for step in self.steps:
            if isinstance(step, BranchStep):
                if step_id in step.then:
                    return step.id, True
                if step_id in step.else_:
                    return step.id, False
        return None

    def should_run(self, step_id: str, decisions: Mapping[str, bool]) -> bool:
        """Whether `step_id` runs given the branches decided so far (branch id -> condition held).
        A branch that did not run (absent from `decisions`) skips every step it gates."""
        gate = self.gate_of(step_id)
        while gate is not None:
            branch, side = gate
            if decisions.get(branch) is not side:
                return False
            gate = self.gate_of(branch)
        return True

    def location_of(self, step: Step) -> Location:
        return Location(path=self.source.path, line=step.line)


def resolve_inputs(playbook: Playbook, step: ActionStep, context: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs of `step` for its action, templates rendered (errors located at the step)."""
    rendered = render(step.inputs, context, location=playbook.location_of(step))
    return dict(rendered)


# -- the run context -----------------------------------------------------------------------------------------
def incident_context(incident: Incident, alerts: Iterable[Alert] = ()) -> dict[str, Any]:
    """`incident.*` of the run context: the fields of `INCIDENT_FIELDS`, entities grouped by kind (every
    kind present, possibly empty), `rule_ids` and extra entities from the incident's own alerts."""
    own = [
        a
        for a in alerts
        if a.tenant_id == incident.tenant_id and (a.incident_id == incident.id or a.id in incident.alert_ids)
    ]
    entities: dict[str, list[str]] = {kind: [] for kind in ENTITY_KINDS}
    for entity in (*incident.entities, *(e for a in own for e in a.entities)):
        if entity.value not in entities[entity.kind]:
            entities[entity.kind].append(entity.value)
    return {
        "id": incident.id,
        "tenant_id": str(incident.tenant_id),
        "title": incident.title,
        "state": incident.state,
        "severity": incident.severity,
        "risk": incident.risk.score,
        "created_at": incident.created_at.isoformat(),
        "first_event_at": incident.first_event_at.isoformat(),
        "assignee": incident.assignee,
        "queue_tier": incident.queue_tier,
        "techniques": list(dict.fromkeys([*incident.techniques, *(t for a in own for t in a.techniques)])),
        "tactics": list(dict.fromkeys([*incident.tactics, *(t for a in own for t in a.tactics)])),
        "alert_ids": list(incident.alert_ids),
        "rule_ids": list(dict.fromkeys(str(a.rule_id) for a in own)),
        "entities": entities,
    }


def step_record(result: ActionResult) -> dict[str, Any]:
    """`steps.<id>` of the run context for an action step that ran."""
    return {
        "status": result.status,
        "summary": result.summary,
        "changed": result.changed,
        "output": thaw(result.output),
        "external_ref": result.external_ref,
    }


def run_context(
    incident: Incident,
    *,
    alerts: Iterable[Alert] = (),
    tenant: Mapping[str, Any] | None = None,
    steps: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The context references resolve in: `incident`, `tenant` (settings) and `steps` (records so far)."""
    return {
        "incident": incident_context(incident, alerts),
        "tenant": dict(tenant or {}),
        "steps": dict(steps or {}),
    }


# -- loading ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PlaybookSet:
    """What `load_playbooks` found: the valid playbooks and one error per problem."""

    playbooks: tuple[Playbook, ...]
    errors: tuple[PlaybookError, ...]

    def get(self, playbook_id: str) -> Playbook:
        for playbook in self.playbooks:
            if playbook.id == playbook_id:
                return playbook
        raise KeyError(playbook_id)


def check_playbook(
    text: str, *, path: str = "<memory>", known_actions: Mapping[str, ActionManifest] | None = None
) -> tuple[Playbook | None, list[PlaybookError]]:
    """(the playbook or None, every problem found) for one YAML text."""
    try:
        data, node = read_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        line = mark.line + 1 if mark is not None else None
        return None, [PlaybookError(f"invalid YAML: {problem}", location=Location(path=path, line=line))]
    if not isinstance(data, dict):
        what = "empty" if data is None else f"a {type(data).__name__}"
        message = f"<file>: a playbook is a mapping (id, name, trigger, steps, ...), this file is {what}"
        return None, [PlaybookError(message, location=Location(path=path, line=1))]
    problems = list(duplicate_keys(node))
    try:
        doc = PlaybookDoc.model_validate(data)
    except ValidationError as exc:
        problems += schema_problems(exc)
        doc = None
    playbook = None
    if doc is not None:
        builder = _Builder(doc, node, path, known_actions)
        playbook = builder.build()
        problems += builder.problems
    errors = [located(path, node, p) for p in problems]
    errors.sort(key=lambda e: (e.location.line or 0) if e.location else 0)
    return (playbook if not errors else None), errors


def parse_playbook(
    text: str, *, path: str = "<memory>", known_actions: Mapping[str, ActionManifest] | None = None
) -> Playbook:
    """The playbook in `text`; PlaybookError (the first problem, by line) when it is invalid."""
    playbook, errors = check_playbook(text, path=path, known_actions=known_actions)
    if errors or playbook is None:
        raise errors[0]
    return playbook


def load_playbook(path: Path, known_actions: Mapping[str, ActionManifest] | None = None) -> Playbook:
    """The playbook in the file at `path`; PlaybookError at path:line when it is invalid."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlaybookError(f"cannot read: {exc.strerror}", location=Location(path=str(path))) from None
    return parse_playbook(text, path=str(path), known_actions=known_actions)


def load_playbooks(
    folder: Path | None = None, known_actions: Mapping[str, ActionManifest] | None = None
) -> PlaybookSet:
    """Every `*.yml`/`*.yaml` under `folder` (default `content_dir()/playbooks`), sorted by path; invalid
    files and playbook ids used twice are reported in `errors`, the rest are loaded."""
    folder = content_dir() / "playbooks" if folder is None else folder
    files = sorted(p for p in folder.rglob("*") if p.suffix in {".yml", ".yaml"} and p.is_file())
    playbooks: list[Playbook] = []
    errors: list[PlaybookError] = []
    seen: dict[str, str] = {}
    for file in files:
        try:
            playbook, problems = check_playbook(
                file.read_text(encoding="utf-8"), path=str(file), known_actions=known_actions
            )
        except OSError as exc:
            errors.append(PlaybookError(f"cannot read: {exc.strerror}", location=Location(path=str(file))))
            continue
        errors += problems
        if playbook is None:
            continue
        if playbook.id in seen:
            message = f"id: playbook id {playbook.id!r} is already used by {seen[playbook.id]}"
            errors.append(PlaybookError(message, location=playbook.source))
            continue
        seen[playbook.id] = str(file)
        playbooks.append(playbook)
    return PlaybookSet(tuple(playbooks), tuple(errors))


# -- checks that span fields ---------------------------------------------------------------------------------
Path_ = tuple[str | int, ...]
_VOCABULARY: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {"incident.severity": SEVERITIES, "incident.state": INCIDENT_STATES, "incident.queue_tier": ANALYST_TIERS}
)


class _Builder:
    """Turns a schema-valid document into a Playbook, collecting every cross-field problem."""

    def __init__(
        self,
        doc: PlaybookDoc,
        node: yaml.Node | None,
        path: str,
        known: Mapping[str, ActionManifest] | None,
    ) -> None:
        self.doc = doc
        self.node = node
        self.path = path
        self.known = known
        self.problems: list[Problem] = []
        self.steps_seen: dict[str, tuple[int, str]] = {}  # step id -> (position, kind group)

    def fail(self, where: Path_, message: str) -> None:
        self.problems.append((where, message))

    def line(self, where: Path_) -> int | None:
        return line_of(self.node, where)

    def build(self) -> Playbook | None:
        doc = self.doc
        trigger = self.trigger(doc.trigger)
        for i, step in enumerate(doc.steps):
            if step.id in self.steps_seen:
                first = self.steps_seen[step.id][0]
                self.fail(("steps", i, "id"), f"duplicate step id {step.id!r} (also steps[{first}])")
            else:
                group = "action" if isinstance(step, ActionStepDoc) else step.kind
                self.steps_seen[step.id] = (i, group)
        steps = tuple(self.step(i, s) for i, s in enumerate(doc.steps))
        self.branches()
        self.approvals()
        if self.problems or trigger is None:
            return None
        return Playbook(
            id=doc.id,
            name=doc.name,
            version=doc.version,
            description=doc.description.strip(),
            author=doc.author,
            trigger=trigger,
            steps=steps,
            tags=tuple(doc.tags),
            enabled=doc.enabled,
            source=Location(path=self.path, line=self.line(("id",))),
        )

    def trigger(self, t: TriggerDoc) -> Trigger | None:
        if not (t.severity_at_least or t.techniques or t.all_techniques or t.tactics or t.rule_ids):
            self.fail(
                ("trigger",),
                "needs at least one of severity_at_least, techniques, all_techniques, tactics, rule_ids "
                "(a playbook for every incident is almost always a mistake)",
            )
            return None
        both = sorted(set(t.tenants.include) & set(t.tenants.exclude))
        if both:
            self.fail(("trigger", "tenants", "exclude"), f"tenants both included and excluded: {both}")
            return None
        return Trigger(
            severity_at_least=t.severity_at_least,
            techniques=tuple(t.techniques),
            all_techniques=tuple(t.all_techniques),
            tactics=tuple(t.tactics),
            rule_ids=tuple(t.rule_ids),
            tenants_include=frozenset(t.tenants.include),
            tenants_exclude=frozenset(t.tenants.exclude),
            tiers=frozenset(t.tiers),
            states=frozenset(t.states),
            priority=t.priority,
        )

    def step(self, i: int, s: ActionStepDoc | ApprovalStepDoc | BranchStepDoc | WaitStepDoc) -> Step:
        where: Path_ = ("steps", i)
        common: dict[str, Any] = {
            "id": s.id,
            "description": s.description.strip(),
            "on_error": s.on_error,
            "line": self.line(where),
        }
        if isinstance(s, ActionStepDoc):
            for name, value in s.with_.items():
                self.templates(value, (*where, "with", name), i)
            if self.known is not None:
                self.manifest(i, s, self.known)
            return ActionStep(
                **common,
                kind=s.kind,
                action=s.action,
                inputs=freeze(s.with_),
                rollback_on_failure=s.rollback_on_failure,
            )
        if isinstance(s, ApprovalStepDoc):
            if not s.who.roles and not s.who.customer_contacts:
                self.fail((*where, "who"), "name at least one of roles, customer_contacts")
            self.templates(s.message, (*where, "message"), i)
            auto = self.condition(s.auto_approve_if, (*where, "auto_approve_if"), i)
            return ApprovalStep(
                **common,
                roles=tuple(s.who.roles),
                customer_contacts=tuple(s.who.customer_contacts),
                timeout_minutes=s.timeout_minutes,
                on_timeout=s.on_timeout,
                message=s.message,
                auto_approve_if=auto,
            )
        if isinstance(s, BranchStepDoc):
            condition = self.condition(s.if_, (*where, "if"), i)
            return BranchStep(
                **common, condition=condition or AllOf(()), then=tuple(s.then), else_=tuple(s.else_)
            )
        if (s.minutes is None) == (s.until is None):
            self.fail(where, "a wait gives either minutes or until")
        if s.until is not None and s.timeout_minutes is None:
            self.fail((*where, "timeout_minutes"), "required with until (a wait cannot be endless)")
        if s.minutes is not None and "timeout_minutes" in s.model_fields_set:
            self.fail((*where, "timeout_minutes"), "only with until (minutes is already the wait)")
        return WaitStep(
            **common,
            minutes=s.minutes,
            until=self.condition(s.until, (*where, "until"), i),
            timeout_minutes=s.timeout_minutes,
            on_timeout=s.on_timeout,
        )

    # -- templates and references
    def templates(self, value: Any, where: Path_, index: int) -> None:
        if isinstance(value, str):
            try:
                template = Template.parse(value)
            except ValueError as exc:
                self.fail(where, str(exc))
                return
            for ref in template.references:
                self.reference(ref, where, index)
        elif isinstance(value, dict):
            for key, item in value.items():
                self.templates(item, (*where, key), index)
        elif isinstance(value, list):
            for j, item in enumerate(value):
                self.templates(item, (*where, j), index)

    def reference(self, ref: Reference, where: Path_, index: int) -> None:
        problem = reference_problem(ref, steps=self.steps_seen, index=index)
        if problem:
            self.fail(where, f"reference {ref.text!r}: {problem}")

    # -- conditions
    def condition(self, c: ConditionDoc | None, where: Path_, index: int) -> Condition | None:
        if c is None:
            return None
        given = c.model_fields_set
        forms = [f for f in ("ref", "all_", "any_", "not_") if f in given]
        ops = [f for f in ("equals", "in_", "exists", "gte", "lte") if f in given]
        if len(forms) != 1:
            self.fail(where, "a condition is one of: ref with a test, all, any, not")
            return None
        if forms[0] != "ref":
            if ops or "default" in given:
                self.fail(where, f"{forms[0].rstrip('_')} takes conditions only, not {', '.join(ops)}")
                return None
            if forms[0] == "not_":
                inner = self.condition(c.not_, (*where, "not"), index)
                return Not(inner) if inner is not None else None
            key = forms[0].rstrip("_")
            items = (c.all_ if key == "all" else c.any_) or []
            if not items:
                self.fail((*where, key), "needs at least one condition")
            built = [self.condition(item, (*where, key, j), index) for j, item in enumerate(items)]
            kept = tuple(b for b in built if b is not None)
            return AllOf(kept) if key == "all" else AnyOf(kept)
        if len(ops) != 1:
            self.fail(where, "give exactly one test of equals, in, exists, gte, lte with ref")
            return None
        try:
            ref = Reference.parse(c.ref or "")
        except ValueError as exc:
            self.fail((*where, "ref"), str(exc))
            return None
        self.reference(ref, (*where, "ref"), index)
        op: CheckOp = "in" if ops[0] == "in_" else ops[0]
        value = {"equals": c.equals, "in": c.in_, "exists": c.exists, "gte": c.gte, "lte": c.lte}[op]
        if value is None and op != "equals":
            self.fail((*where, op), f"{op} needs a value")
            return None
        if op == "in" and not isinstance(value, list):
            self.fail((*where, op), "in needs a list")
            return None
        if op == "exists" and "default" in given:
            self.fail((*where, "default"), "exists needs no default (a missing reference is just absent)")
        self.values(ref, op, value, (*where, op))
        return Check(ref=ref, op=op, value=freeze(value), has_default="default" in given, default=c.default)

    def values(self, ref: Reference, op: CheckOp, value: Any, where: Path_) -> None:
        """Values of incident fields with a fixed vocabulary are checked now; gte/lte compare numbers or
        severities."""
        allowed = _VOCABULARY.get(ref.text)
        if allowed is not None and op != "exists":
            if ref.text != "incident.severity" and op in ("gte", "lte"):
                self.fail(where, f"{ref.text} has no order: use equals or in")
                return
            for item in value if isinstance(value, list) else [value]:
                if not isinstance(item, str) or item not in allowed:
                    self.fail(where, f"{ref.text} is one of {', '.join(allowed)}, got {item!r}")
            return
        if op in ("gte", "lte") and isinstance(value, str) and value.lower() not in SEVERITIES:
            self.fail(where, f"{op} compares numbers, or severities by rank ({', '.join(SEVERITIES)})")

    # -- manifests, branches, approvals
    def manifest(self, i: int, s: ActionStepDoc, known: Mapping[str, ActionManifest]) -> None:
        where: Path_ = ("steps", i)
        manifest = known.get(s.action)
        if manifest is None:
            self.fail((*where, "action"), f"unknown action{close_match(s.action, known)}")
            return
        names = [spec.name for spec in manifest.inputs]
        listing = ", ".join(f"{n.name}{'' if n.required else '?'}" for n in manifest.inputs) or "none"
        missing = [n.name for n in manifest.inputs if n.required and n.name not in s.with_]
        if missing:
            self.fail(
                (*where, "with"), f"{s.action} needs the inputs {', '.join(missing)} (inputs: {listing})"
            )
        for name in s.with_:
            if name not in names:
                self.fail((*where, "with", name), f"{s.action} has no input {name!r} (inputs: {listing})")
        if manifest.risk != "read_only" and s.kind != "contain":
            self.fail((*where, "kind"), f"{s.action} is a {manifest.risk} action: its kind is contain")
        if s.rollback_on_failure and not manifest.reversible:
            self.fail((*where, "rollback_on_failure"), f"{s.action} is not reversible")
        if manifest.approval == "always" and not any(
            isinstance(prior, ApprovalStepDoc) for prior in self.doc.steps[:i]
        ):
            self.fail((*where, "action"), f"{s.action} always needs approval: put an approval step before it")

    def branches(self) -> None:
        gates: dict[str, str] = {}  # step id -> the branch that gates it
        targets: list[tuple[Path_, str, str, int]] = []  # (where, branch, target, branch position)
        for i, s in enumerate(self.doc.steps):
            if not isinstance(s, BranchStepDoc):
                continue
            if not s.then and not s.else_:
                self.fail(("steps", i), "a branch needs steps in then or else")
            for key, ids in (("then", s.then), ("else", s.else_)):
                for j, target in enumerate(ids):
                    where: Path_ = ("steps", i, key, j)
                    if target not in self.steps_seen:
                        self.fail(where, f"unknown step{close_match(target, self.steps_seen)}")
                    elif target == s.id:
                        self.fail(where, f"branch {s.id!r} cannot gate itself (a cycle)")
                    elif target in gates:
                        self.fail(where, f"step {target!r} already follows branch {gates[target]!r}")
                    else:
                        gates[target] = s.id
                        targets.append((where, s.id, target, i))
        in_cycle: set[str] = set()
        for where, branch, target, _ in targets:
            # The edge branch -> target closes a cycle when target is an ancestor of branch (gates map a
            # step to the branch gating it, so walking them from `branch` climbs its ancestors).
            chain = [branch]
            while chain[-1] in gates and chain[-1] != target and len(chain) <= len(gates):
                chain.append(gates[chain[-1]])
            if chain[-1] == target and not in_cycle.intersection(chain):
                cycle = [branch, *reversed(chain)]
                self.fail(where, f"branch targets form a cycle: {' -> '.join(cycle)}")
                in_cycle.update(chain)
        for where, branch, target, position in targets:
            if branch not in in_cycle and self.steps_seen[target][0] < position:
                self.fail(
                    where, f"step {target!r} comes before branch {branch!r}: a branch gates later steps"
                )

    def approvals(self) -> None:
        for i, s in enumerate(self.doc.steps):
            if not isinstance(s, ApprovalStepDoc) or s.on_timeout != "proceed":
                continue
            for later in self.doc.steps[i + 1 :]:
                if isinstance(later, ActionStepDoc) and self._containment(later):
                    self.fail(
                        ("steps", i, "on_timeout"),
                        f"must be fail_closed: containment step {later.id!r} follows "
                        "(no answer by the deadline means do not act, and escalate)",
                    )
                    break

    def _containment(self, s: ActionStepDoc) -> bool:
        manifest = self.known.get(s.action) if self.known is not None else None
        return s.kind == "contain" or (manifest is not None and manifest.risk != "read_only")
