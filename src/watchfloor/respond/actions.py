"""What every response action is: a manifest (what it needs, how risky, reversible or not) and a class
that runs it through a connector. The run engine, approvals, blast-radius limits and the audit trail are
the framework's (`respond/`), never the action's.

An action is a small class:

    class DisableUser(Action):
        manifest = ActionManifest(id="msgraph.disable_user", connector="msgraph", ...)

        def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult: ...
        def rollback(self, ctx, inputs, done: ActionResult) -> ActionResult: ...  # reversible ones

`run` must be idempotent for the same `ctx.idempotency_key` (disabling a disabled user is success with
`changed=False`), honour `ctx.dry_run` (say what would be done, change nothing, make no write call), and
raise `ConnectorError` (or a subclass) for failures, with the vendor's error code and message (never a
secret). Retries with backoff, 429 Retry-After and timeouts live in the connector's HTTP client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal

from watchfloor.core.errors import Location, WatchfloorError
from watchfloor.core.types import TenantId

Risk = Literal["read_only", "containment", "destructive"]
RISKS: Final[tuple[Risk, ...]] = ("read_only", "containment", "destructive")
Approval = Literal["never", "by_policy", "always"]
InputType = Literal["string", "user", "host", "ip", "domain", "url", "email", "hash", "int", "bool", "list"]
Target = Literal["user", "host", "credential", "network", "mailbox", "ticket", "message", "none"]
ResultStatus = Literal["succeeded", "failed", "skipped", "dry_run"]


class ConnectorError(WatchfloorError):
    """A vendor call failed: `status` is the HTTP status (0: no answer), `vendor_code` the vendor's own
    error code from its error body; `retryable` whether trying later may help (429, 5xx, timeouts)."""

    code = "respond.connector_failed"

    def __init__(
        self,
        message: str,
        *,
        location: Location | None = None,
        code: str | None = None,
        status: int = 0,
        vendor_code: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, location=location, code=code)
        self.status = status
        self.vendor_code = vendor_code
        self.retryable = retryable


class ConnectorConfigError(ConnectorError):
    """The tenant's connector configuration is missing a key or holds a bad value."""

    code = "respond.connector_config"


@dataclass(frozen=True, slots=True, kw_only=True)
class InputSpec:
    name: str
    type: InputType = "string"
    required: bool = True
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionManifest:
    """Beside every action (STYLE item 6): what it needs and what it risks."""

    id: str  # "<connector>.<verb>", e.g. msgraph.disable_user
    title: str
    connector: str  # msgraph, mde, falcon, okta, aws_iam, smtp, slack, teams, webhook, connectwise, ...
    description: str
    inputs: tuple[InputSpec, ...]
    config: tuple[str, ...] = ()  # connector configuration keys it needs (tenant id, base URL, ...)
    secrets: tuple[str, ...] = ()  # which of `config` are secrets (encrypted at rest, never logged)
    risk: Risk = "read_only"
    target: Target = "none"  # what blast-radius limits count (users, hosts, ... per tenant per hour)
    reversible: bool = False
    reverse_action: str | None = None  # the action id that undoes it (rollback)
    approval: Approval = "by_policy"  # never (read-only, notify), by the tenant's policy, or always
    idempotent: bool = True

    def __post_init__(self) -> None:
        if "." not in self.id or not self.id.startswith(f"{self.connector}."):
            msg = f"action id {self.id!r} must be '<connector>.<verb>' with connector {self.connector!r}"
            raise ValueError(msg)
        if self.reversible != (self.reverse_action is not None) and self.reverse_action is not None:
            msg = f"action {self.id}: reverse_action given but reversible is False"
            raise ValueError(msg)
        unknown = set(self.secrets) - set(self.config)
        if unknown:
            msg = f"action {self.id}: secrets {sorted(unknown)} are not among its config keys"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionContext:
    """What the framework hands an action for one step of one run."""

    tenant_id: TenantId
    run_id: str
    step_id: str
    idempotency_key: str  # stable for the step across retries and restarts
    config: Mapping[str, Any] = field(default_factory=dict, repr=False)  # secrets included: never log
    dry_run: bool = False
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(tz=UTC), compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionResult:
    status: ResultStatus
    summary: str  # one sentence for the timeline ("disabled user dana@clinic.example in Entra ID")
    changed: bool = False  # False when the target was already in the wanted state (idempotent repeat)
    output: Mapping[str, Any] = field(default_factory=dict)  # what later steps may use; no secrets
    external_ref: str | None = None  # the vendor's id for what was done (ticket number, action id)


class Action:
    """Base class of every action (see the module docstring)."""

    manifest: ClassVar[ActionManifest]

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        raise NotImplementedError

    def rollback(
        self,
        ctx: ActionContext,  # noqa: ARG002 - the signature reversible actions implement
        inputs: Mapping[str, Any],  # noqa: ARG002
        done: ActionResult,  # noqa: ARG002
    ) -> ActionResult:
        """Undo `done` (only for reversible actions)."""
        msg = f"action {self.manifest.id} is not reversible"
        raise ConnectorError(msg, code="respond.not_reversible")

    @classmethod
    def require(cls, ctx: ActionContext, *keys: str) -> list[Any]:
        """The connector config values for `keys`, or ConnectorConfigError naming the missing ones."""
        missing = [k for k in keys if ctx.config.get(k) in (None, "")]
        if missing:
            msg = f"{cls.manifest.connector} connector for tenant {ctx.tenant_id} lacks {', '.join(missing)}"
            raise ConnectorConfigError(msg, location=Location(tenant=ctx.tenant_id, path=cls.manifest.id))
        return [ctx.config[k] for k in keys]
