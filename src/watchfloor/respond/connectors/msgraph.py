"""Microsoft Graph v1.0: Entra ID user accounts and Exchange Online inbox rules.

App registration (application permissions, admin consent): `User.Read.All` (enrich),
`User.EnableDisableAccount.All` or `User.ReadWrite.All` (disable/enable; disabling an admin also needs a
privileged role), `User.RevokeSessions.All` or `User.ReadWrite.All` (revoke sessions),
`MailboxSettings.ReadWrite` (inbox rules). Token: client credentials, scope `https://graph.microsoft.com/.default`.

Pitfalls: accounts synced from on-premises AD (`onPremisesSyncEnabled`) cannot be disabled in the cloud
(Graph answers 400); revoking sessions does not end access tokens already issued (up to about an hour,
unless the app supports continuous access evaluation); Graph sees only inbox rules, not mailbox-level
SMTP forwarding (`ForwardingSmtpAddress`) set in Exchange.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from watchfloor.respond.actions import ActionContext, ActionManifest, ActionResult, ConnectorError, InputSpec
from watchfloor.respond.connectors import ENTRA_CONFIG, ENTRA_SECRETS, HttpAction, entra_credentials
from watchfloor.respond.http import ConnectorHttp, check_base_url, path_segment

CONNECTOR: Final = "msgraph"
GRAPH_SCOPE: Final = "https://graph.microsoft.com/.default"
DEFAULT_GRAPH_BASE: Final = "https://graph.microsoft.com"
CONFIG: Final = (*ENTRA_CONFIG, "graph_base", "internal_domains")

# Graph user property -> output key; the keys are also the `$select` list.
USER_FIELDS: Final[Mapping[str, str]] = {
    "id": "user_id",
    "userPrincipalName": "user_principal_name",
    "displayName": "display_name",
    "mail": "mail",
    "accountEnabled": "account_enabled",
    "userType": "user_type",
    "jobTitle": "job_title",
    "department": "department",
    "onPremisesSyncEnabled": "on_premises_sync_enabled",
    "createdDateTime": "created",
}
# messageRule actions that send a copy of the mail elsewhere (recipient collections).
FORWARD_ACTIONS: Final = ("forwardTo", "redirectTo", "forwardAsAttachmentTo")

_USER_INPUT: Final = InputSpec(name="user", type="user", description="Entra object id or userPrincipalName")


def _user_path(user: str) -> str:
    return f"/v1.0/users/{path_segment(user)}"


def _rules_path(user_id: str) -> str:
    return f"{_user_path(user_id)}/mailFolders/inbox/messageRules"


def forwarding_targets(rule: Mapping[str, Any]) -> list[dict[str, str]]:
    """[{"action": "forwardTo", "address": "x@example.com"}, ...] for a Graph messageRule."""
    actions = rule.get("actions") or {}
    targets: list[dict[str, str]] = []
    for action in FORWARD_ACTIONS:
        for recipient in actions.get(action) or ():
            address = ((recipient or {}).get("emailAddress") or {}).get("address")
            if address:
                targets.append({"action": action, "address": str(address)})
    return targets


def _domain(address: object) -> str | None:
    if not isinstance(address, str) or "@" not in address:
        return None
    return address.rsplit("@", 1)[1].lower()


class _GraphAction(HttpAction):
    def graph(self, ctx: ActionContext) -> ConnectorHttp:
        credentials = entra_credentials(ctx, scope=GRAPH_SCOPE, connector=CONNECTOR)
        base = ctx.config.get("graph_base") or DEFAULT_GRAPH_BASE
        base = check_base_url(base, key="graph_base", connector=CONNECTOR, tenant_id=ctx.tenant_id)
        return ConnectorHttp(
            connector=CONNECTOR,
            tenant_id=ctx.tenant_id,
            base_url=base,
            credentials=credentials,
            options=self.http,
            wall_clock=ctx.clock,
        )

    @staticmethod
    def fetch_user(api: ConnectorHttp, user: str) -> dict[str, Any]:
        body = api.get_json(_user_path(user), params={"$select": ",".join(USER_FIELDS)})
        return {out: body.get(graph) for graph, out in USER_FIELDS.items()}

    def set_enabled(self, ctx: ActionContext, inputs: Mapping[str, Any], *, enabled: bool) -> ActionResult:
        verb = "enable" if enabled else "disable"
        with self.graph(ctx) as api:
            user = self.fetch_user(api, self.text_input(ctx, inputs, "user"))
            name = user["user_principal_name"] or user["user_id"]
            output = {
                "user_id": user["user_id"],
                "user_principal_name": user["user_principal_name"],
                "previous_account_enabled": user["account_enabled"],
                "account_enabled": enabled,
            }
            if user["account_enabled"] is enabled:
                return ActionResult(
                    status="succeeded",
                    summary=f"user {name} was already {verb}d in Entra ID",
                    output=output,
                    external_ref=user["user_id"],
                )
            if ctx.dry_run:
                output["account_enabled"] = user["account_enabled"]
                return ActionResult(
                    status="dry_run", summary=f"would {verb} user {name} in Entra ID", output=output
                )
            api.request("PATCH", _user_path(user["user_id"]), json={"accountEnabled": enabled})
        return ActionResult(
            status="succeeded",
            summary=f"{verb}d user {name} in Entra ID",
            changed=True,
            output=output,
            external_ref=user["user_id"],
        )

    def list_rules(self, api: ConnectorHttp, user_id: str) -> list[dict[str, Any]]:
        return list(api.iter_odata(_rules_path(user_id)))


class GetUser(_GraphAction):
    manifest = ActionManifest(
        id="msgraph.get_user",
        title="Look up an Entra ID user",
        connector=CONNECTOR,
        description="Reads the user's account: enabled or not, type, department, on-premises sync.",
        inputs=(_USER_INPUT,),
        config=CONFIG,
        secrets=ENTRA_SECRETS,
        risk="read_only",
        target="user",
        approval="never",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        with self.graph(ctx) as api:
            user = self.fetch_user(api, self.text_input(ctx, inputs, "user"))
        state = "enabled" if user["account_enabled"] else "disabled"
        return ActionResult(
            status="succeeded",
            summary=f"user {user['user_principal_name']} is {state} in Entra ID",
            output=user,
            external_ref=user["user_id"],
        )


class DisableUser(_GraphAction):
    manifest = ActionManifest(
        id="msgraph.disable_user",
        title="Disable an Entra ID user",
        connector=CONNECTOR,
        description="Blocks sign-in (accountEnabled=false). Existing sessions live on: pair with "
        "msgraph.revoke_sessions. Accounts synced from on-premises AD must be disabled there.",
        inputs=(_USER_INPUT,),
        config=CONFIG,
        secrets=ENTRA_SECRETS,
        risk="containment",
        target="user",
        reversible=True,
        reverse_action="msgraph.enable_user",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        return self.set_enabled(ctx, inputs, enabled=False)

    def rollback(self, ctx: ActionContext, inputs: Mapping[str, Any], done: ActionResult) -> ActionResult:
        if not done.changed:  # it was disabled before us: leave it so
            return self.nothing_to_undo(done)
        user = done.output.get("user_id") or inputs.get("user")
        return EnableUser(http=self.http).run(ctx, {"user": user})


class EnableUser(_GraphAction):
    manifest = ActionManifest(
        id="msgraph.enable_user",
        title="Enable an Entra ID user",
        connector=CONNECTOR,
        description="Allows sign-in again (accountEnabled=true); the rollback of msgraph.disable_user.",
        inputs=(_USER_INPUT,),
        config=CONFIG,
        secrets=ENTRA_SECRETS,
        risk="containment",
        target="user",
        reversible=True,
        reverse_action="msgraph.disable_user",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        return self.set_enabled(ctx, inputs, enabled=True)

    def rollback(self, ctx: ActionContext, inputs: Mapping[str, Any], done: ActionResult) -> ActionResult:
        if not done.changed:
            return self.nothing_to_undo(done)
        user = done.output.get("user_id") or inputs.get("user")
        return DisableUser(http=self.http).run(ctx, {"user": user})


class RevokeSessions(_GraphAction):
    manifest = ActionManifest(
        id="msgraph.revoke_sessions",
        title="Revoke a user's sign-in sessions",
        connector=CONNECTOR,
        description="Invalidates refresh tokens and session cookies (revokeSignInSessions), forcing "
        "sign-in again. Access tokens already issued stay valid until they expire (about an hour).",
        inputs=(_USER_INPUT,),
        config=CONFIG,
        secrets=ENTRA_SECRETS,
        risk="containment",
        target="user",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        with self.graph(ctx) as api:
            user = self.fetch_user(api, self.text_input(ctx, inputs, "user"))
            name = user["user_principal_name"] or user["user_id"]
            output = {"user_id": user["user_id"], "user_principal_name": user["user_principal_name"]}
            if ctx.dry_run:
                return ActionResult(
                    status="dry_run", summary=f"would revoke sign-in sessions of {name}", output=output
                )
            # Revoking twice is harmless, so a lost answer may be retried.
            response = api.request(
                "POST", f"{_user_path(user['user_id'])}/revokeSignInSessions", idempotent=True
            )
            if api.json_of(response).get("value") is not True:
                raise ConnectorError(
                    f"Graph did not confirm revoking the sessions of {name}",
                    code="respond.bad_response",
                    location=self.where(ctx),
                    status=response.status_code,
                )
        output["revoked_at"] = ctx.clock().isoformat()
        return ActionResult(
            status="succeeded",
            summary=f"revoked sign-in sessions of {name}",
            changed=True,
            output=output,
            external_ref=user["user_id"],
        )


class ListInboxRules(_GraphAction):
    manifest = ActionManifest(
        id="msgraph.list_inbox_rules",
        title="List inbox rules that forward mail",
        connector=CONNECTOR,
        description="Inbox rules that forward or redirect mail, with the addresses; 'external' marks "
        "addresses outside the mailbox's own domains and the tenant's internal_domains.",
        inputs=(_USER_INPUT,),
        config=CONFIG,
        secrets=ENTRA_SECRETS,
        risk="read_only",
        target="mailbox",
        approval="never",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        with self.graph(ctx) as api:
            user = self.fetch_user(api, self.text_input(ctx, inputs, "user"))
            rules = self.list_rules(api, user["user_id"])
        internal = self._internal_domains(ctx, user)
        forwarding: list[dict[str, Any]] = []
        for rule in rules:
            targets: list[dict[str, Any]] = [
                {**target, "external": _domain(target["address"]) not in internal}
                for target in forwarding_targets(rule)
            ]
            if targets:
                forwarding.append(
                    {
                        "id": rule.get("id"),
                        "display_name": rule.get("displayName"),
                        "is_enabled": rule.get("isEnabled"),
                        "targets": targets,
                        "external": any(target["external"] for target in targets),
                    }
                )
        external = [rule for rule in forwarding if rule["external"]]
        addresses = sorted({t["address"] for rule in external for t in rule["targets"] if t["external"]})
        name = user["user_principal_name"] or user["user_id"]
        summary = f"{len(rules)} inbox rule(s) of {name}; {len(forwarding)} forward or redirect mail"
        if addresses:
            summary += f", {len(external)} outside the organisation ({', '.join(addresses)})"
        return ActionResult(
            status="succeeded",
            summary=summary,
            output={
                "user_id": user["user_id"],
                "user_principal_name": user["user_principal_name"],
                "rule_count": len(rules),
                "forwarding_rules": forwarding,
                "external_rule_ids": [rule["id"] for rule in external],
                "external_addresses": addresses,
            },
        )

    @staticmethod
    def _internal_domains(ctx: ActionContext, user: Mapping[str, Any]) -> set[str]:
        configured = ctx.config.get("internal_domains") or ()
        if isinstance(configured, str):
            configured = configured.split(",")
        domains = {str(domain).strip().lower() for domain in configured if str(domain).strip()}
        domains.update(d for d in (_domain(user["user_principal_name"]), _domain(user["mail"])) if d)
        return domains


class RemoveInboxRules(_GraphAction):
    manifest = ActionManifest(
        id="msgraph.remove_inbox_rules",
        title="Remove inbox rules that forward mail",
        connector=CONNECTOR,
        description="Deletes the given inbox rules, or by default every rule that forwards or redirects "
        "mail. Not reversible; the output keeps each removed rule's full definition for the record.",
        inputs=(
            _USER_INPUT,
            InputSpec(
                name="rule_ids", type="list", required=False, description="rule ids; default: forwarding"
            ),
        ),
        config=CONFIG,
        secrets=ENTRA_SECRETS,
        risk="containment",
        target="mailbox",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        wanted = self.list_input(ctx, inputs, "rule_ids")
        with self.graph(ctx) as api:
            user = self.fetch_user(api, self.text_input(ctx, inputs, "user"))
            rules = self.list_rules(api, user["user_id"])
            if wanted is None:
                selected = [rule for rule in rules if forwarding_targets(rule)]
                not_found: list[str] = []
            else:
                selected = [rule for rule in rules if rule.get("id") in wanted]
                present = {rule.get("id") for rule in rules}
                not_found = [rule_id for rule_id in wanted if rule_id not in present]
            name = user["user_principal_name"] or user["user_id"]
            output: dict[str, Any] = {
                "user_id": user["user_id"],
                "user_principal_name": user["user_principal_name"],
                "removed": [],
                "kept_rule_ids": [rule.get("id") for rule in rules if rule not in selected],
                "not_found_rule_ids": not_found,
            }
            what = "the given inbox rules" if wanted is not None else "inbox rules forwarding mail"
            if not selected:
                return ActionResult(
                    status="succeeded", summary=f"no {what} of {name} to remove", output=output
                )
            if ctx.dry_run:
                output["would_remove"] = selected
                return ActionResult(
                    status="dry_run", summary=f"would remove {len(selected)} {what} of {name}", output=output
                )
            failure = self._delete_all(api, user["user_id"], selected, output)
        removed = output["removed"]
        addresses = sorted({t["address"] for rule in removed for t in forwarding_targets(rule)})
        to = f" (to {', '.join(addresses)})" if addresses else ""
        if failure is not None and not removed:
            raise failure
        if failure is not None:
            output["error"] = {
                "code": failure.code,
                "vendor_code": failure.vendor_code,
                "message": failure.message,
            }
            return ActionResult(
                status="failed",
                summary=f"removed {len(removed)} of {len(selected)} {what} of {name}{to}, then: {failure}",
                changed=bool(removed),
                output=output,
            )
        return ActionResult(
            status="succeeded",
            summary=f"removed {len(removed)} {what} of {name}{to}",
            changed=bool(removed),
            output=output,
        )

    @staticmethod
    def _delete_all(
        api: ConnectorHttp, user_id: str, selected: list[dict[str, Any]], output: dict[str, Any]
    ) -> ConnectorError | None:
        """Delete each rule, recording each removal as it happens: a failure half-way through still
        leaves the record of what was removed (returned, not raised, for that reason)."""
        for rule in selected:
            rule_id = str(rule.get("id"))
            try:
                api.request("DELETE", f"{_rules_path(user_id)}/{path_segment(rule_id)}")
            except ConnectorError as exc:
                if exc.status == 404:  # gone meanwhile: not ours to record as removed
                    output["not_found_rule_ids"].append(rule_id)
                    continue
                return exc
            output["removed"].append(rule)
        return None


ACTIONS: Final = (GetUser, DisableUser, EnableUser, RevokeSessions, ListInboxRules, RemoveInboxRules)
