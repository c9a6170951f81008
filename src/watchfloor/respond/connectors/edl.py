"""Blocking without a firewall API: actions that put values on the tenant's external dynamic lists (and
take them off), which its Palo Alto, FortiGate or pfSense firewalls poll (`respond/edl.py`, `api/edl.py`).

| action | inputs | undone by |
|---|---|---|
| `edl.block_ip` | ip, reason, ttl_minutes?, incident_id? | `edl.unblock_ip` |
| `edl.block_domain` | domain, reason, ttl_minutes?, incident_id? | `edl.unblock_domain` |
| `edl.block_url` | url, reason, ttl_minutes?, incident_id? | `edl.unblock_url` |
| `edl.unblock_*` | ip / domain / url | (not reversible) |

These actions talk to the system of record, not to a vendor: each is constructed with the EDL repository,
`BlockIp(db.edl)`, and `edl_actions(db)` builds all six for a registry. Nothing reaches the firewall
until its next poll (PAN-OS: every five minutes at the shortest), so "blocked" means "listed".

Blocking is idempotent (blocking a listed value again is success with `changed=False`, or extends its
expiry); a dry run validates the value and says whether it is listed, writing nothing. Rollback of a block
removes the entry only when that block created it; a value listed before the step stays listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Final

from sqlalchemy.exc import OperationalError

from watchfloor.core.errors import Location
from watchfloor.respond.actions import (
    Action,
    ActionContext,
    ActionManifest,
    ActionResult,
    ConnectorError,
    InputSpec,
)
from watchfloor.respond.edl import EdlValueError, ListKind, normalize
from watchfloor.storage.errors import StorageError

if TYPE_CHECKING:
    from watchfloor.storage.database import Database
    from watchfloor.storage.edl import EdlRepository

MAX_TTL_MINUTES: Final = 366 * 24 * 60
INVALID_INPUT: Final = "respond.invalid_input"

_COMMON_INPUTS: Final = (
    InputSpec(name="reason", description="why it is blocked (shown in the list's audit trail)"),
    InputSpec(
        name="ttl_minutes",
        type="int",
        required=False,
        description=f"minutes until the block lapses, 1-{MAX_TTL_MINUTES} (default: until unblocked)",
    ),
    InputSpec(
        name="incident_id", required=False, description="the incident the block belongs to (default: the run)"
    ),
)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


class _EdlAction(Action):
    kind: ClassVar[ListKind]
    field: ClassVar[str]  # the input naming the value: ip, domain or url

    def __init__(self, lists: EdlRepository) -> None:
        self._lists = lists

    def _fail(
        self, ctx: ActionContext, message: str, *, code: str | None = None, retryable: bool = False
    ) -> ConnectorError:
        return ConnectorError(
            message,
            location=Location(tenant=ctx.tenant_id, path=self.manifest.id),
            code=code,
            retryable=retryable,
        )

    def _value(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> str:
        raw = inputs.get(self.field)
        if not isinstance(raw, str):
            raise self._fail(ctx, f"input {self.field!r} must be text", code=INVALID_INPUT)
        try:
            return normalize(self.kind, raw)
        except EdlValueError as exc:
            raise self._fail(ctx, str(exc), code=INVALID_INPUT) from None

    def _storage(self, ctx: ActionContext, exc: Exception) -> ConnectorError:
        if isinstance(exc, OperationalError):
            return self._fail(ctx, "the database is busy or unreachable; try again", retryable=True)
        message = exc.message if isinstance(exc, StorageError) else str(exc)
        code = exc.code if isinstance(exc, StorageError) else INVALID_INPUT
        return self._fail(ctx, f"the {self.kind} list could not be changed: {message}", code=code)


class _Block(_EdlAction):
    def _ttl(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> int | None:
        raw = inputs.get("ttl_minutes")
        if raw is None or raw == "":
            return None
        if isinstance(raw, str) and raw.strip().isdigit():
            raw = int(raw.strip())
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_TTL_MINUTES:
            raise self._fail(
                ctx, f"ttl_minutes must be a whole number from 1 to {MAX_TTL_MINUTES}", code=INVALID_INPUT
            )
        return raw

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        value = self._value(ctx, inputs)
        reason = inputs.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise self._fail(ctx, "input 'reason' must say why the value is blocked", code=INVALID_INPUT)
        ttl = self._ttl(ctx, inputs)
        incident = inputs.get("incident_id")
        source_ref = str(incident) if incident else f"run:{ctx.run_id}/{ctx.step_id}"
        lasting = "until unblocked" if ttl is None else f"for {ttl} minutes"
        if ctx.dry_run:
            current = self._lists.get(ctx.tenant_id, kind=self.kind, value=value)
            listed = current is not None and current.active(self._lists.now())
            state = "it is listed already" if listed else "it is not listed yet"
            return ActionResult(
                status="dry_run",
                summary=f"would block {self.kind} {value} {lasting} ({state}); nothing changed",
            )
        expires_at = None if ttl is None else ctx.clock() + timedelta(minutes=ttl)
        try:
            change = self._lists.add(
                ctx.tenant_id,
                kind=self.kind,
                value=value,
                reason=reason,
                actor=f"run:{ctx.run_id}",
                expires_at=expires_at,
                source_ref=source_ref,
            )
        except (StorageError, OperationalError, ValueError) as exc:
            raise self._storage(ctx, exc) from None
        until = (
            "until unblocked" if change.entry.expires_at is None else f"until {_iso(change.entry.expires_at)}"
        )
        summaries = {
            "added": f"blocked {self.kind} {value} on the tenant's EDL {until}",
            "extended": f"{self.kind} {value} was blocked already; block extended {until}",
            "unchanged": f"{self.kind} {value} was blocked already ({until}); nothing changed",
        }
        return ActionResult(
            status="succeeded",
            summary=summaries[change.outcome],
            changed=change.changed,
            output={
                "list_kind": self.kind,
                "value": value,
                "expires_at": _iso(change.entry.expires_at),
                "created": change.outcome == "added",
            },
            external_ref=f"edl:{self.kind}:{value}",
        )

    def rollback(self, ctx: ActionContext, inputs: Mapping[str, Any], done: ActionResult) -> ActionResult:
        value = str(done.output.get("value") or self._value(ctx, inputs))
        if not done.output.get("created"):
            return ActionResult(
                status="skipped", summary=f"{self.kind} {value} was listed before this step; left on the list"
            )
        if ctx.dry_run:
            return ActionResult(
                status="dry_run", summary=f"would unblock {self.kind} {value}; nothing changed"
            )
        try:
            removed = self._lists.remove(
                ctx.tenant_id, kind=self.kind, value=value, actor=f"run:{ctx.run_id}"
            )
        except (StorageError, OperationalError, ValueError) as exc:
            raise self._storage(ctx, exc) from None
        summary = (
            f"unblocked {self.kind} {value}" if removed else f"{self.kind} {value} was not listed any more"
        )
        return ActionResult(status="succeeded", summary=summary, changed=removed)


class _Unblock(_EdlAction):
    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        value = self._value(ctx, inputs)
        if ctx.dry_run:
            listed = self._lists.get(ctx.tenant_id, kind=self.kind, value=value) is not None
            state = "it is listed" if listed else "it is not listed"
            return ActionResult(
                status="dry_run", summary=f"would unblock {self.kind} {value} ({state}); nothing changed"
            )
        try:
            removed = self._lists.remove(
                ctx.tenant_id, kind=self.kind, value=value, actor=f"run:{ctx.run_id}"
            )
        except (StorageError, OperationalError, ValueError) as exc:
            raise self._storage(ctx, exc) from None
        summary = (
            f"unblocked {self.kind} {value}"
            if removed
            else f"{self.kind} {value} was not listed; nothing changed"
        )
        return ActionResult(
            status="succeeded",
            summary=summary,
            changed=removed,
            output={"list_kind": self.kind, "value": value},
            external_ref=f"edl:{self.kind}:{value}",
        )


def _block_manifest(kind: ListKind, field: str, noun: str) -> ActionManifest:
    return ActionManifest(
        id=f"edl.block_{kind}",
        title=f"Block {noun} on the firewall's dynamic list",
        connector="edl",
        description=f"List {noun} on the tenant's {kind} external dynamic list, which its firewalls poll.",
        inputs=(InputSpec(name=field, type=kind, description=f"the {noun} to block"), *_COMMON_INPUTS),
        risk="containment",
        target="network",
        reversible=True,
        reverse_action=f"edl.unblock_{kind}",
        approval="by_policy",
    )


def _unblock_manifest(kind: ListKind, field: str, noun: str) -> ActionManifest:
    return ActionManifest(
        id=f"edl.unblock_{kind}",
        title=f"Unblock {noun} on the firewall's dynamic list",
        connector="edl",
        description=f"Take {noun} off the tenant's {kind} external dynamic list.",
        inputs=(InputSpec(name=field, type=kind, description=f"the {noun} to unblock"),),
        risk="containment",
        target="network",
        approval="by_policy",
    )


class BlockIp(_Block):
    kind = "ip"
    field = "ip"
    manifest = _block_manifest("ip", "ip", "an IP address or network")


class UnblockIp(_Unblock):
    kind = "ip"
    field = "ip"
    manifest = _unblock_manifest("ip", "ip", "an IP address or network")


class BlockDomain(_Block):
    kind = "domain"
    field = "domain"
    manifest = _block_manifest("domain", "domain", "a domain")


class UnblockDomain(_Unblock):
    kind = "domain"
    field = "domain"
    manifest = _unblock_manifest("domain", "domain", "a domain")


class BlockUrl(_Block):
    kind = "url"
    field = "url"
    manifest = _block_manifest("url", "url", "a URL")


class UnblockUrl(_Unblock):
    kind = "url"
    field = "url"
    manifest = _unblock_manifest("url", "url", "a URL")


EDL_ACTIONS: Final[tuple[type[_EdlAction], ...]] = (
    BlockIp,
    UnblockIp,
    BlockDomain,
    UnblockDomain,
    BlockUrl,
    UnblockUrl,
)


def edl_actions(db: Database) -> dict[str, Action]:
    """One instance of each EDL action, bound to `db`'s lists, by action id."""
    return {cls.manifest.id: cls(db.edl) for cls in EDL_ACTIONS}
