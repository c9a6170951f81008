"""CrowdStrike Falcon: network-contain a host and lift the containment.

API client (Falcon console, Support and resources > API clients and keys): scope `Hosts: Read` and
`Hosts: Write`. Token: `POST /oauth2/token` with `client_id` and `client_secret` (form) -> a bearer token
valid `expires_in` seconds (30 minutes). Base URL by cloud: `https://api.crowdstrike.com` (US-1),
`https://api.us-2.crowdstrike.com`, `https://api.eu-1.crowdstrike.com`, `https://api.laggar.gcw.crowdstrike.com`.

Pitfalls: containment is asynchronous (`status` goes `containment_pending` -> `contained`, and
`lift_containment_pending` -> `normal`); a host record is the sensor (`aid`) and several stale records may
share a hostname (the most recently seen one wins); hostnames are usually short names, not FQDNs; 429
answers carry `X-RateLimit-RetryAfter` (epoch seconds) beside `Retry-After`. The API keeps no comment with
a containment request, so a step retried after a lost answer finds the host pending and reports
`changed=False` (its rollback then leaves the host contained: the safe side).

This module also holds `hooked_options`, the transport hook the Falcon, Okta and AWS IAM connectors use
to read vendor rate-limit headers (and, for AWS, to sign each request as it leaves).
"""

from __future__ import annotations

import math
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from functools import cache
from typing import Any, Final

import httpx

from watchfloor.respond.actions import ActionContext, ActionManifest, ActionResult, ConnectorError, InputSpec
from watchfloor.respond.connectors import HttpAction
from watchfloor.respond.http import ClientCredentials, ConnectorHttp, HttpOptions, check_base_url

CONNECTOR: Final = "falcon"
DEFAULT_BASE: Final = "https://api.crowdstrike.com"
CONFIG: Final = ("base_url", "client_id", "client_secret")
SECRETS: Final = ("client_secret",)
_AID: Final = re.compile(r"^[0-9a-fA-F]{32}$")
_HOSTNAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")

DEVICE_FIELDS: Final[Mapping[str, str]] = {
    "device_id": "device_id",
    "hostname": "hostname",
    "status": "status",
    "last_seen": "last_seen",
    "platform_name": "platform_name",
    "os_version": "os_version",
    "local_ip": "local_ip",
}
# action_name -> (verb for summaries, status it leads to, its pending status, the opposite pending status)
_ACTIONS: Final[Mapping[str, tuple[str, str, str, str]]] = {
    "contain": ("contain", "contained", "containment_pending", "lift_containment_pending"),
    "lift_containment": ("lift containment of", "normal", "lift_containment_pending", "containment_pending"),
}
_HOST_INPUT: Final = InputSpec(
    name="host", type="host", description="hostname, FQDN or Falcon device id (aid)"
)


# -- transport hooks (shared with okta.py and aws_iam.py) ------------------------------------------------


class HookTransport(httpx.BaseTransport):
    """The transport `ConnectorHttp` sends through, wrapped: `prepare` sees every request just before it
    leaves (each retry too), `adjust` every response before `ConnectorHttp` looks at it."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        *,
        prepare: Callable[[httpx.Request], None] | None = None,
        adjust: Callable[[httpx.Response], None] | None = None,
    ) -> None:
        self._inner = inner
        self._prepare = prepare
        self._adjust = adjust

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self._prepare is not None:
            self._prepare(request)
        response = self._inner.handle_request(request)
        if self._adjust is not None:
            self._adjust(response)
        return response

    def close(self) -> None:
        self._inner.close()


@cache
def _tls(verify: bool | str) -> ssl.SSLContext | bool:
    if verify is False:
        return False
    if verify is True:
        return httpx.create_ssl_context()
    return ssl.create_default_context(cafile=verify)


def hooked_options(
    options: HttpOptions,
    *,
    prepare: Callable[[httpx.Request], None] | None = None,
    adjust: Callable[[httpx.Response], None] | None = None,
) -> HttpOptions:
    """`options` with its transport (or a new verifying one) wrapped in a `HookTransport`."""
    inner = options.transport or httpx.HTTPTransport(
        verify=_tls(options.verify), socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    )
    return replace(options, transport=HookTransport(inner, prepare=prepare, adjust=adjust))


def retry_after_from_epoch(header: str, clock: Callable[[], datetime]) -> Callable[[httpx.Response], None]:
    """A response hook: a 429/503 without `Retry-After` but with `header` (the epoch second the limit
    resets) gets a `Retry-After` of the seconds until then, which `ConnectorHttp` honours."""

    def adjust(response: httpx.Response) -> None:
        if response.status_code not in {429, 503} or "Retry-After" in response.headers:
            return
        try:
            reset = float(response.headers.get(header, ""))
        except ValueError:
            return
        if math.isfinite(reset):
            response.headers["Retry-After"] = str(max(0, math.ceil(reset - clock().timestamp())))

    return adjust


# -- the actions -------------------------------------------------------------------------------------------


class _FalconAction(HttpAction):
    def falcon(self, ctx: ActionContext) -> ConnectorHttp:
        client_id, client_secret = self.require(ctx, "client_id", "client_secret")
        base = check_base_url(
            ctx.config.get("base_url") or DEFAULT_BASE,
            key="base_url",
            connector=CONNECTOR,
            tenant_id=ctx.tenant_id,
        )
        credentials = ClientCredentials(
            token_url=f"{base}/oauth2/token",
            client_id=str(client_id),
            client_secret=str(client_secret),
            scope="",
        )
        options = hooked_options(
            self.http, adjust=retry_after_from_epoch("X-RateLimit-RetryAfter", ctx.clock)
        )
        return ConnectorHttp(
            connector=CONNECTOR,
            tenant_id=ctx.tenant_id,
            base_url=base,
            credentials=credentials,
            options=options,
            wall_clock=ctx.clock,
        )

    def resolve(self, api: ConnectorHttp, ctx: ActionContext, host: str) -> dict[str, Any]:
        """The device for a hostname, FQDN or aid (most recently seen first); `respond.target_not_found`."""
        if _AID.fullmatch(host):
            ids = [host.lower()]
        else:
            if not _HOSTNAME.fullmatch(host):
                raise ConnectorError(
                    f"host {host!r} is not a hostname", code="respond.invalid_input", location=self.where(ctx)
                )
            ids = self._query(api, host)
            if not ids and "." in host:  # Falcon usually holds the short name
                ids = self._query(api, host.split(".", 1)[0])
        devices = [device for aid in ids for device in self._devices(api, aid)]
        if not devices:
            raise ConnectorError(
                f"no host named {host!r} in CrowdStrike Falcon",
                code="respond.target_not_found",
                location=self.where(ctx),
                status=404,
            )
        devices.sort(key=lambda device: str(device.get("last_seen") or ""), reverse=True)
        device = {out: devices[0].get(name) for name, out in DEVICE_FIELDS.items()}
        device["same_name_device_ids"] = [d.get("device_id") for d in devices[1:]]
        return device

    @staticmethod
    def _query(api: ConnectorHttp, hostname: str) -> list[str]:
        body = api.get_json(
            "/devices/queries/devices/v1", params={"filter": f"hostname:'{hostname.lower()}'"}
        )
        return [str(aid) for aid in body.get("resources") or () if aid]

    @staticmethod
    def _devices(api: ConnectorHttp, aid: str) -> list[dict[str, Any]]:
        body = api.get_json("/devices/entities/devices/v2", params={"ids": aid})
        return [d for d in body.get("resources") or () if isinstance(d, dict)]

    def device_action(self, ctx: ActionContext, inputs: Mapping[str, Any], *, action: str) -> ActionResult:
        verb, wanted, pending, opposite = _ACTIONS[action]
        host = self.text_input(ctx, inputs, "host")
        with self.falcon(ctx) as api:
            device = self.resolve(api, ctx, host)
            name, aid, status = (
                device["hostname"] or device["device_id"],
                device["device_id"],
                device["status"],
            )
            output = {**device, "previous_status": status}
            if status in {wanted, pending}:
                state = "already " + ("pending" if status == pending else wanted)
                return ActionResult(
                    status="succeeded",
                    summary=f"host {name} in Falcon: {action.replace('_', ' ')} {state}",
                    output=output,
                    external_ref=aid,
                )
            if status == opposite:
                raise ConnectorError(
                    f"host {name} has {status}; {verb} it once that has completed",
                    code="respond.conflict",
                    location=self.where(ctx),
                    status=409,
                    retryable=True,
                )
            if ctx.dry_run:
                return ActionResult(
                    status="dry_run", summary=f"would {verb} host {name} in Falcon", output=output
                )
            # Asking twice for the same state is harmless, so a lost answer may be retried.
            response = api.request(
                "POST",
                "/devices/entities/devices-actions/v2",
                params={"action_name": action},
                json={"ids": [aid]},
                idempotent=True,
            )
            body = api.json_of(response)
            errors = [e for e in body.get("errors") or () if isinstance(e, dict)]
            if errors or aid not in [r.get("id") for r in body.get("resources") or () if isinstance(r, dict)]:
                first = errors[0] if errors else {}
                why = first.get("message", "no resource returned")
                raise ConnectorError(
                    f"Falcon did not accept to {verb} host {name}: {why}",
                    code="respond.bad_response",
                    location=self.where(ctx),
                    status=response.status_code,
                    vendor_code=str(first["code"]) if "code" in first else None,
                )
        output["status"] = pending
        return ActionResult(
            status="succeeded",
            summary=f"requested to {verb} host {name} in Falcon ({pending})",
            changed=True,
            output=output,
            external_ref=aid,
        )


class ContainHost(_FalconAction):
    manifest = ActionManifest(
        id="falcon.contain_host",
        title="Network-contain a host (CrowdStrike Falcon)",
        connector=CONNECTOR,
        description="Cuts the host off the network except for the Falcon cloud. Asynchronous: the host is "
        "containment_pending until the sensor confirms.",
        inputs=(_HOST_INPUT,),
        config=CONFIG,
        secrets=SECRETS,
        risk="containment",
        target="host",
        reversible=True,
        reverse_action="falcon.lift_containment",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        return self.device_action(ctx, inputs, action="contain")

    def rollback(self, ctx: ActionContext, inputs: Mapping[str, Any], done: ActionResult) -> ActionResult:
        if not done.changed:  # contained before us: not ours to lift
            return self.nothing_to_undo(done)
        host = done.output.get("device_id") or inputs.get("host")
        return LiftContainment(http=self.http).run(ctx, {"host": host})


class LiftContainment(_FalconAction):
    manifest = ActionManifest(
        id="falcon.lift_containment",
        title="Lift the network containment of a host (CrowdStrike Falcon)",
        connector=CONNECTOR,
        description="Restores the host's network access; the rollback of falcon.contain_host.",
        inputs=(_HOST_INPUT,),
        config=CONFIG,
        secrets=SECRETS,
        risk="containment",
        target="host",
        reversible=True,
        reverse_action="falcon.contain_host",
    )

    def run(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> ActionResult:
        return self.device_action(ctx, inputs, action="lift_containment")

    def rollback(self, ctx: ActionContext, inputs: Mapping[str, Any], done: ActionResult) -> ActionResult:
        if not done.changed:
            return self.nothing_to_undo(done)
        host = done.output.get("device_id") or inputs.get("host")
        return ContainHost(http=self.http).run(ctx, {"host": host})


ACTIONS: Final = (ContainHost, LiftContainment)
