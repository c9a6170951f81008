"""Okta: suspend and unsuspend a user, clear a user's sessions.

API token (Admin console, Security > API > Tokens) of an admin with the "Help Desk Administrator" role or
more; header `Authorization: SSWS <token>`. Config `org_url` (`https://clinic.okta.com`), `api_token`.

Pitfalls: only an ACTIVE user can be suspended (400 E0000001 otherwise; a DEPROVISIONED user cannot sign
in anyway); clearing sessions (`DELETE /users/{id}/sessions?oauthTokens=true`) also revokes the OAuth
refresh and access tokens Okta issued, but not tokens other IdPs or apps minted from them, and Okta cannot
say whether there were any sessions, so every call reports a change; 429 answers carry
`X-Rate-Limit-Reset` (epoch seconds) and no `Retry-After`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import httpx

from watchfloor.respond.actions import ActionContext, ActionManifest, ActionResult, InputSpec
from watchfloor.respond.connectors import HttpAction
from watchfloor.respond.connectors.falcon import hooked_options, retry_after_from_epoch
from watchfloor.respond.http import ConnectorHttp, check_base_url, parse_error_body, path_segment

CONNECTOR: Final = "okta"
CONFIG: Final = ("org_url", "api_token")
SECRETS: Final = ("api_token",)
USER_FIELDS: Final[Mapping[str, str]] = {"id": "user_id", "status": "status", "lastLogin": "last_login"}
_USER_INPUT: Final = InputSpec(
    name="user", type="user", description="Okta login (often the e-mail) or user id"
)


def okta_error(response: httpx.Response) -> tuple[str | None, str | None]:
    """`{"errorCode", "errorSummary", "errorCauses": [{"errorSummary"}]}` -> (code, summary; causes)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "errorCode" not in body:
        return parse_error_body(response)
    summary = str(body.get("errorSummary") or "")
    causes = [str(c.get("errorSummary")) for c in body.get("errorCauses") or () if isinstance(c, dict)]
    if causes:
        summary = f"{summary} ({'; '.join(causes)})"
    return str(body["errorCode"]), summary or None


class _OktaAction(HttpAction):
    def okta(self, ctx: ActionContext) -> ConnectorHttp:
        org_url, token = self.require(ctx, "org_url", "api_token")
        base = check_base_url(org_url, key="org_url", connector=CONNECTOR, tenant_id=ctx.tenant_id)
        return ConnectorHttp(
            connector=CONNECTOR,
            tenant_id=ctx.tenant_id,
            base_url=base,
            options=hooked_options(self.http, adjust=retry_after_from_epoch("X-Rate-Limit-Reset", ctx.clock)),
            wall_clock=ctx.clock,
            error_parser=okta_error,
            headers={"Authorization": f"SSWS {token}"},
        )

    @staticmethod
    def fetch_user(api: ConnectorHttp, user: str) -> dict[str, Any]:
        body = api.get_json(f"/api/v1/users/{path_segment(user)}")
        found = {out: body.get(name) for name, out in USER_FIELDS.items()}
        found["login"] = (body.get("profile") or {}).get("login")
        return found

    def lifecycle(self, ctx: ActionContext, inputs: Mapping[str, Any], *, suspend: bool) -> ActionResult:
        verb, wanted = ("suspend", "SUSPENDED") if suspend else ("unsuspend", "ACTIVE")
        with self.okta(ctx) as api:
            user = self.fetch_user(api, self.text_input(ctx, inputs, "user"))
            name = user["login"] or user["user_id"]
            output = {**user, "previous_status": user["status"]}
            idle = suspend and user["status"] == "DEPROVISIONED"  # deactivated: cannot sign in anyway
            if user["status"] == wanted or idle:
                return ActionResult(
                    status="succeeded",
                    summary=f"Okta user {name} is already {str(user['status']).lower()}",
                    output=output,
                    external_ref=user["user_id"],
                )
            if ctx.dry_run:
                return ActionResult(status="dry_run", summary=f"would {verb} Okta user {name}", output=output)
            # Not ACTIVE (or, to unsuspend, not SUSPENDED): Okta answers 400 E0000001, which we pass on.
            api.request("POST", f"/api/v1/users/{path_segment(user['user_id'])}/lifecycle/{verb}")
        output["status"] = wanted
        return ActionResult(
            status="succeeded",
            summary=f"{verb}ed Okta user {name}",
            changed=True,
            output=output,
            external_ref=user["user_id"],
        )


class SuspendUser(_OktaAction):
    manifest = ActionManifest(
        id="okta.suspend_user",
        title="Suspend an Okta user",
        connector=CONNECTOR,
        description="The user cannot sign in until unsuspended; apps, groups and factors are kept. Only "
        "ACTIVE users can be suspended.",
        inputs=(_USER_INPUT,),
        config=CONFIG,
        secrets=SECRETS,
        risk="containment",
        target="user",
        reversible=True,
        reverse_action="okta.unsuspend_user",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        return self.lifecycle(ctx, inputs, suspend=True)

    def rollback(self, ctx: ActionContext, inputs: Mapping[str, Any], done: ActionResult) -> ActionResult:
        if not done.changed:
            return self.nothing_to_undo(done)
        return UnsuspendUser(http=self.http).run(
            ctx, {"user": done.output.get("user_id") or inputs.get("user")}
        )


class UnsuspendUser(_OktaAction):
    manifest = ActionManifest(
        id="okta.unsuspend_user",
        title="Unsuspend an Okta user",
        connector=CONNECTOR,
        description="Returns a SUSPENDED user to ACTIVE; the rollback of okta.suspend_user.",
        inputs=(_USER_INPUT,),
        config=CONFIG,
        secrets=SECRETS,
        risk="containment",
        target="user",
        reversible=True,
        reverse_action="okta.suspend_user",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        return self.lifecycle(ctx, inputs, suspend=False)

    def rollback(self, ctx: ActionContext, inputs: Mapping[str, Any], done: ActionResult) -> ActionResult:
        if not done.changed:
            return self.nothing_to_undo(done)
        return SuspendUser(http=self.http).run(
            ctx, {"user": done.output.get("user_id") or inputs.get("user")}
        )


class ClearSessions(_OktaAction):
    manifest = ActionManifest(
        id="okta.clear_sessions",
        title="Clear an Okta user's sessions",
        connector=CONNECTOR,
        description="Ends every Okta session of the user and revokes the OAuth tokens Okta issued to them, "
        "forcing sign-in again. Cannot be undone.",
        inputs=(_USER_INPUT,),
        config=CONFIG,
        secrets=SECRETS,
        risk="containment",
        target="user",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        with self.okta(ctx) as api:
            user = self.fetch_user(api, self.text_input(ctx, inputs, "user"))
            name = user["login"] or user["user_id"]
            if ctx.dry_run:
                return ActionResult(
                    status="dry_run", summary=f"would clear the Okta sessions of {name}", output=user
                )
            api.request(
                "DELETE",
                f"/api/v1/users/{path_segment(user['user_id'])}/sessions",
                params={"oauthTokens": "true"},
            )
        return ActionResult(
            status="succeeded",
            summary=f"cleared the Okta sessions and OAuth tokens of {name}",
            changed=True,
            output={**user, "cleared_at": ctx.clock().isoformat()},
            external_ref=user["user_id"],
        )


ACTIONS: Final = (SuspendUser, UnsuspendUser, ClearSessions)
