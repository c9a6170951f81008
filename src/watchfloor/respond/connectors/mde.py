"""Microsoft Defender for Endpoint API: isolate and release machines, follow machine actions.

App registration (application permissions, admin consent, "WindowsDefenderATP" API): `Machine.Read.All`,
`Machine.Isolate`. Token: client credentials, scope `https://api.securitycenter.microsoft.com/.default`.
Base URL `https://api.securitycenter.microsoft.com` (geo endpoints such as `https://eu.api.security.microsoft.com`
work too: set `mde_base`). Rate limit: 100 calls a minute, 1,500 an hour per machine-action API.

Pitfalls: a request is asynchronous (201 with a MachineAction `Pending`; poll `mde.get_machine_action`);
while one isolate/unisolate request is pending, another answers 400 `ActiveRequestAlreadyExists`;
`computerDnsName` is usually the FQDN and several stale records may share a name (the most recently seen
one wins); a device behind a full-tunnel VPN can lose its Defender connection once isolated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from watchfloor.respond.actions import ActionContext, ActionManifest, ActionResult, ConnectorError, InputSpec
from watchfloor.respond.connectors import ENTRA_CONFIG, ENTRA_SECRETS, HttpAction, entra_credentials
from watchfloor.respond.http import ConnectorHttp, check_base_url, path_segment

CONNECTOR: Final = "mde"
MDE_SCOPE: Final = "https://api.securitycenter.microsoft.com/.default"
DEFAULT_MDE_BASE: Final = "https://api.securitycenter.microsoft.com"
CONFIG: Final = (*ENTRA_CONFIG, "mde_base")
ISOLATION_TYPES: Final = ("Full", "Selective")
ACTIVE_STATUSES: Final = frozenset({"Pending", "InProgress"})
DONE_STATUSES: Final = frozenset({"Succeeded", "Failed", "Cancelled", "TimeOut"})
_MACHINE_ID: Final = re.compile(r"^[0-9a-fA-F]{40}$")

MACHINE_FIELDS: Final[Mapping[str, str]] = {
    "id": "machine_id",
    "computerDnsName": "computer_dns_name",
    "osPlatform": "os_platform",
    "lastSeen": "last_seen",
    "healthStatus": "health_status",
    "lastIpAddress": "last_ip_address",
    "aadDeviceId": "aad_device_id",
}
ACTION_FIELDS: Final[Mapping[str, str]] = {
    "id": "action_id",
    "type": "type",
    "status": "status",
    "machineId": "machine_id",
    "computerDnsName": "computer_dns_name",
    "requestor": "requestor",
    "requestorComment": "comment",
    "creationDateTimeUtc": "created",
    "lastUpdateDateTimeUtc": "updated",
}
# What each action asks for, and the MachineAction type the API records for it.
_VERBS: Final[Mapping[str, tuple[str, str, str]]] = {
    "Isolate": ("isolate", "isolated", "an isolation"),
    "Unisolate": ("unisolate", "released", "a release"),
}

_HOST_INPUT: Final = InputSpec(name="host", type="host", description="computer name, FQDN or MDE machine id")
_COMMENT_INPUT: Final = InputSpec(name="comment", required=False, description="shown in the Defender portal")


def _pick(entity: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    return {out: entity.get(name) for name, out in fields.items()}


def _odata_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class _MdeAction(HttpAction):
    def mde(self, ctx: ActionContext) -> ConnectorHttp:
        credentials = entra_credentials(ctx, scope=MDE_SCOPE, connector=CONNECTOR)
        base = ctx.config.get("mde_base") or DEFAULT_MDE_BASE
        base = check_base_url(base, key="mde_base", connector=CONNECTOR, tenant_id=ctx.tenant_id)
        return ConnectorHttp(
            connector=CONNECTOR,
            tenant_id=ctx.tenant_id,
            base_url=base,
            credentials=credentials,
            options=self.http,
            wall_clock=ctx.clock,
        )

    def resolve(self, api: ConnectorHttp, ctx: ActionContext, host: str) -> dict[str, Any]:
        """The machine for a host name, FQDN or machine id; ConnectorError `respond.target_not_found`."""
        if _MACHINE_ID.fullmatch(host):
            try:
                return _pick(api.get_json(f"/api/machines/{path_segment(host.lower())}"), MACHINE_FIELDS)
            except ConnectorError as exc:
                if exc.status != 404:
                    raise
            # Not an id after all: a 40-hex host name is odd but possible; look it up by name.
        name = host.lower()
        found = list(
            api.iter_odata("/api/machines", params={"$filter": f"computerDnsName eq {_odata_literal(name)}"})
        )
        if not found and "." not in name:  # a short name: the API holds FQDNs
            query = f"startswith(computerDnsName,{_odata_literal(name + '.')})"
            candidates = api.iter_odata("/api/machines", params={"$filter": query})
            found = [m for m in candidates if str(m.get("computerDnsName", "")).lower().split(".")[0] == name]
        if not found:
            raise ConnectorError(
                f"no machine named {host!r} in Defender for Endpoint (no computerDnsName matches it)",
                code="respond.target_not_found",
                location=self.where(ctx),
                status=404,
            )
        found.sort(key=lambda machine: str(machine.get("lastSeen") or ""), reverse=True)
        machine = _pick(found[0], MACHINE_FIELDS)
        machine["same_name_machine_ids"] = [m.get("id") for m in found[1:]]
        return machine

    @staticmethod
    def latest_isolation_action(api: ConnectorHttp, machine_id: str) -> dict[str, Any] | None:
        """The newest Isolate/Unisolate request on the machine that is pending, running or succeeded."""
        query = {"$filter": f"machineId eq {_odata_literal(machine_id)}"}
        relevant = [
            action
            for action in api.iter_odata("/api/machineactions", params=query)
            if action.get("type") in _VERBS and action.get("status") in ACTIVE_STATUSES | {"Succeeded"}
        ]
        if not relevant:
            return None
        return max(relevant, key=lambda action: str(action.get("creationDateTimeUtc") or ""))

    def machine_action(self, ctx: ActionContext, inputs: Mapping[str, Any], *, kind: str) -> ActionResult:
        """Isolate (`kind="Isolate"`) or release (`"Unisolate"`) the machine named by `inputs["host"]`."""
        path_verb = _VERBS[kind][0]
        host = self.text_input(ctx, inputs, "host")
        comment = self.text_input(
            ctx, inputs, "comment", default=f"Watchfloor run {ctx.run_id} step {ctx.step_id}"
        )
        # The tag lets a retried step recognise the request it made before.
        tag = f"[watchfloor {ctx.idempotency_key}]"
        body: dict[str, str] = {"Comment": f"{comment} {tag}"}
        if kind == "Isolate":
            body["IsolationType"] = self._isolation_type(ctx, inputs)
        with self.mde(ctx) as api:
            machine = self.resolve(api, ctx, host)
            name = machine["computer_dns_name"] or machine["machine_id"]
            output: dict[str, Any] = {**machine, "isolation_type": body.get("IsolationType")}
            latest = self.latest_isolation_action(api, machine["machine_id"])
            if latest is not None and latest.get("type") == kind:
                return self._already(latest, output, name, kind=kind, tag=tag)
            if ctx.dry_run:
                return ActionResult(
                    status="dry_run", summary=f"would {path_verb} machine {name} in Defender", output=output
                )
            try:
                response = api.request(
                    "POST", f"/api/machines/{path_segment(machine['machine_id'])}/{path_verb}", json=body
                )
            except ConnectorError as exc:
                if exc.vendor_code != "ActiveRequestAlreadyExists":
                    raise
                latest = self.latest_isolation_action(api, machine["machine_id"])
                if (
                    latest is not None
                    and latest.get("type") != kind
                    and latest.get("status") in ACTIVE_STATUSES
                ):
                    raise ConnectorError(
                        f"machine {name} has a pending {latest.get('type')} request ({latest.get('id')}); "
                        f"{path_verb} once it has completed",
                        code="respond.conflict",
                        location=self.where(ctx),
                        status=exc.status,
                        vendor_code=exc.vendor_code,
                        retryable=True,
                    ) from None
                # The same request is already pending (the action list may not show it yet).
                pending = (
                    latest if latest is not None and latest.get("type") == kind else {"status": "Pending"}
                )
                return self._already(pending, output, name, kind=kind, tag=tag)
            action = _pick(api.json_of(response), ACTION_FIELDS)
        output.update(action_id=action["action_id"], action_status=action["status"])
        return ActionResult(
            status="succeeded",
            summary=f"requested to {path_verb} machine {name} in Defender ({action['status']})",
            changed=True,
            output=output,
            external_ref=action["action_id"],
        )

    @staticmethod
    def _already(
        latest: Mapping[str, Any], output: dict[str, Any], name: str, *, kind: str, tag: str
    ) -> ActionResult:
        _, done_word, noun = _VERBS[kind]
        output.update(action_id=latest.get("id"), action_status=latest.get("status"))
        if latest.get("status") in ACTIVE_STATUSES:
            summary = f"{noun} request for machine {name} is already pending"
        else:
            summary = f"machine {name} is already {done_word}"
        # An earlier attempt of this very step made the request: the change is this step's.
        ours = tag in str(latest.get("requestorComment") or "")
        return ActionResult(
            status="succeeded", summary=summary, changed=ours, output=output, external_ref=latest.get("id")
        )

    def _isolation_type(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> str:
        wanted = self.text_input(ctx, inputs, "isolation_type", default="Full")
        for known in ISOLATION_TYPES:
            if wanted.lower() == known.lower():
                return known
        raise ConnectorError(
            f"isolation_type must be one of {', '.join(ISOLATION_TYPES)}, not {wanted!r}",
            code="respond.invalid_input",
            location=self.where(ctx),
        )


class IsolateMachine(_MdeAction):
    manifest = ActionManifest(
        id="mde.isolate_machine",
        title="Isolate a machine (Defender for Endpoint)",
        connector=CONNECTOR,
        description="Cuts the machine off the network except for the Defender service. Full or Selective "
        "(Outlook, Teams and Skype keep working). Asynchronous: the result holds the MachineAction id.",
        inputs=(
            _HOST_INPUT,
            _COMMENT_INPUT,
            InputSpec(name="isolation_type", required=False, description="Full (default) or Selective"),
        ),
        config=CONFIG,
        secrets=ENTRA_SECRETS,
        risk="containment",
        target="host",
        reversible=True,
        reverse_action="mde.release_machine",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        return self.machine_action(ctx, inputs, kind="Isolate")

    def rollback(self, ctx: ActionContext, inputs: Mapping[str, Any], done: ActionResult) -> ActionResult:
        if not done.changed:  # isolated before us, or by someone else: not ours to release
            return self.nothing_to_undo(done)
        host = done.output.get("machine_id") or inputs.get("host")
        comment = f"rollback of Watchfloor run {ctx.run_id} step {ctx.step_id}"
        return ReleaseMachine(http=self.http).run(ctx, {"host": host, "comment": comment})


class ReleaseMachine(_MdeAction):
    manifest = ActionManifest(
        id="mde.release_machine",
        title="Release a machine from isolation (Defender for Endpoint)",
        connector=CONNECTOR,
        description="Restores the machine's network access (unisolate); the rollback of mde.isolate_machine.",
        inputs=(_HOST_INPUT, _COMMENT_INPUT),
        config=CONFIG,
        secrets=ENTRA_SECRETS,
        risk="containment",
        target="host",
        reversible=True,
        reverse_action="mde.isolate_machine",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        return self.machine_action(ctx, inputs, kind="Unisolate")

    def rollback(self, ctx: ActionContext, inputs: Mapping[str, Any], done: ActionResult) -> ActionResult:
        if not done.changed:
            return self.nothing_to_undo(done)
        host = done.output.get("machine_id") or inputs.get("host")
        comment = f"rollback of Watchfloor run {ctx.run_id} step {ctx.step_id}"
        return IsolateMachine(http=self.http).run(ctx, {"host": host, "comment": comment})


class GetMachineAction(_MdeAction):
    manifest = ActionManifest(
        id="mde.get_machine_action",
        title="Follow a Defender machine action",
        connector=CONNECTOR,
        description="Status of an isolate/release request: Pending, InProgress, Succeeded, Failed, "
        "Cancelled or TimeOut; 'done' once it will not change any more.",
        inputs=(
            InputSpec(name="action_id", description="the MachineAction id an isolate or release returned"),
        ),
        config=CONFIG,
        secrets=ENTRA_SECRETS,
        risk="read_only",
        target="host",
        approval="never",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        action_id = self.text_input(ctx, inputs, "action_id")
        with self.mde(ctx) as api:
            action = _pick(api.get_json(f"/api/machineactions/{path_segment(action_id)}"), ACTION_FIELDS)
        action["done"] = action["status"] in DONE_STATUSES
        return ActionResult(
            status="succeeded",
            summary=f"{action['type']} {action_id} on {action['computer_dns_name']}: {action['status']}",
            output=action,
            external_ref=action_id,
        )


ACTIONS: Final = (IsolateMachine, ReleaseMachine, GetMachineAction)
