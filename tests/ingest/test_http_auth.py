"""Intake authentication: header forms, the token cache, revocation, and the tenant always from the token."""

from __future__ import annotations

import base64
import logging
import time
import uuid

import orjson
import pytest

from tests.ingest.conftest import IntakeWorld, StartIntake
from watchfloor.ingest import metrics
from watchfloor.ingest.auth import AuthProblem, TokenResolver, credential_from_header
from watchfloor.ingest.http import IntakeSettings

TOKEN = "wf_abcdefgh_" + "S" * 43


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"Splunk {TOKEN}", TOKEN),
        (f"splunk   {TOKEN}  ", TOKEN),
        (f"Bearer {TOKEN}", TOKEN),
        (f"Basic {b64('anyone:' + TOKEN)}", TOKEN),
        (f"Basic {b64(':' + TOKEN)}", TOKEN),
        (f"ApiKey {b64('beats:' + TOKEN)}", TOKEN),
        (f"ApiKey {b64(TOKEN)}", TOKEN),
        (f"ApiKey {TOKEN}", TOKEN),
        ("Bearer something-else", "something-else"),
        (None, AuthProblem.MISSING),
        ("   ", AuthProblem.MISSING),
        ("Bearer", AuthProblem.MALFORMED),
        ("Digest abc", AuthProblem.MALFORMED),
        (TOKEN, AuthProblem.MALFORMED),
        ("Basic %%%", AuthProblem.MALFORMED),
        (f"Basic {b64('no-colon')}", AuthProblem.MALFORMED),
        ("Basic " + base64.b64encode(b"u:\xff").decode(), AuthProblem.MALFORMED),
        ("ApiKey ***", AuthProblem.MALFORMED),
    ],
)
def test_credential_forms(header: str | None, expected: str | AuthProblem) -> None:
    assert credential_from_header(header) == expected


def test_schemes_can_be_restricted() -> None:
    assert credential_from_header(f"Splunk {TOKEN}", schemes={"bearer"}) is AuthProblem.MALFORMED


def test_resolver_caches_positive_and_negative_answers_for_ttl(intake: IntakeWorld) -> None:
    now = [100.0]
    resolver = TokenResolver(intake.db, ttl_seconds=5.0, clock=lambda: now[0])
    principal = resolver.resolve(intake.clinic.token)
    assert principal is not None
    assert (principal.tenant, principal.token_id) == ("clinic", intake.clinic.token_id)
    intake.db.tokens.revoke(intake.clinic.tenant, intake.clinic.token_id, actor="test")
    assert resolver.resolve(intake.clinic.token) == principal  # cached
    now[0] += 5.0
    assert resolver.resolve(intake.clinic.token) is None  # revoked, once the entry expired
    # An unknown token is cached as unknown: a token created afterwards with that value is not possible,
    # so check the negative entry through `cached` instead.
    unknown = "wf_zzzzzzzz_" + "Q" * 43
    assert resolver.resolve(unknown) is None
    assert resolver.cached(unknown) == (True, None)
    now[0] += 5.0
    assert resolver.cached(unknown) == (False, None)
    assert resolver.resolve("garbage") is None
    assert resolver.cached("garbage") == (False, None)  # malformed tokens never reach the database


def test_resolver_is_bounded() -> None:
    class Tokens:
        @staticmethod
        def resolve(token: str) -> None:
            return None

    class Db:
        tokens = Tokens()

    resolver = TokenResolver(Db(), max_entries=3)  # type: ignore[arg-type]
    tokens = [f"wf_{i:08d}_" + "T" * 43 for i in range(5)]
    for token in tokens:
        resolver.resolve(token)
    assert [resolver.cached(t)[0] for t in tokens] == [False, False, True, True, True]


def test_revoked_token_is_refused_within_the_cache_ttl(start_intake: StartIntake) -> None:
    world = start_intake(IntakeSettings(token_cache_seconds=0.3))
    headers = {"Authorization": f"Splunk {world.clinic.token}"}
    with world.client(headers=headers) as client:
        assert client.post("/services/collector/event", content=b'{"event":"before"}').status_code == 200
        world.db.tokens.revoke(world.clinic.tenant, world.clinic.token_id, actor="test")
        time.sleep(0.4)
        response = client.post("/services/collector/event", content=b'{"event":"after"}')
        assert (response.status_code, response.json()["code"]) == (403, 4)
    assert [e.body for e in world.drain()] == [b"before"]


def test_retired_tenant_is_refused(start_intake: StartIntake) -> None:
    world = start_intake(IntakeSettings(token_cache_seconds=0))
    world.db.tenants.retire(world.lawfirm.tenant, actor="test")
    with world.client(headers={"Authorization": f"Bearer {world.lawfirm.token}"}) as client:
        assert client.post("/api/v1/ingest/ndjson", content=b'{"a":1}').status_code == 401


def test_tenant_comes_from_the_token_never_from_the_body_or_url(intake: IntakeWorld) -> None:
    clinic = intake.clinic
    claim = {"tenant": "lawfirm", "tenant_id": "lawfirm", "index": "lawfirm"}
    with intake.client() as client:
        hec = {"event": claim, "index": "lawfirm", "fields": {"tenant": "lawfirm"}, "host": "lawfirm"}
        headers = {"Authorization": f"Splunk {clinic.token}", "X-Watchfloor-Tenant": "lawfirm"}
        assert (
            client.post(
                "/services/collector/event",
                content=orjson.dumps(hec),
                headers=headers,
                params={"tenant": "lawfirm"},
            ).status_code
            == 200
        )
        bulk = (
            orjson.dumps({"index": {"_index": "lawfirm", "tenant": "lawfirm"}})
            + b"\n"
            + orjson.dumps(claim)
            + b"\n"
        )
        assert client.post("/lawfirm/_bulk", content=bulk, auth=("lawfirm", clinic.token)).status_code == 200
        assert (
            client.post(
                "/api/v1/ingest/ndjson",
                content=orjson.dumps(claim),
                headers={"Authorization": f"Bearer {clinic.token}"},
            ).status_code
            == 200
        )
        lawfirm = {"Authorization": f"Bearer {intake.lawfirm.token}"}
        assert client.post("/api/v1/ingest/ndjson", content=b'{"own":1}', headers=lawfirm).status_code == 200
    envs = intake.drain()
    assert [e.tenant for e in envs] == ["clinic", "clinic", "clinic", "lawfirm"]


def test_a_second_token_of_the_same_tenant_is_named_in_the_source(intake: IntakeWorld) -> None:
    extra = intake.sender("clinic")
    with intake.client(headers={"Authorization": f"Splunk {extra.token}"}) as client:
        client.post("/services/collector/event", content=b'{"event":"x"}')
    [env] = intake.drain()
    assert (env.tenant, env.source) == ("clinic", f"hec:{extra.token_id}")


def test_tokens_never_reach_the_logs(intake: IntakeWorld, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bogus = "wf_qqqqqqqq_" + "Z" * 43
    with intake.client() as client:
        for token in (intake.clinic.token, bogus):
            client.post(
                "/services/collector/event",
                content=b'{"event":"x"}',
                headers={"Authorization": f"Splunk {token}"},
            )
            client.post("/_bulk", content=b"{]\n", auth=("u", token))
            client.post(
                "/services/collector/ack",
                content=b'{"acks":[0]}',
                headers={"Authorization": f"Splunk {token}", "X-Splunk-Request-Channel": str(uuid.uuid4())},
            )
    # the 43-character secret after `wf_<id>_` (it may itself contain "_", so not rsplit: a short tail
    # after its last "_" could occur in any log line by chance)
    secrets = (intake.clinic.token, intake.clinic.token[len("wf_12345678_") :], bogus)
    assert not [r for r in caplog.records if any(s in r.getMessage() for s in secrets)]


def test_unauthenticated_requests_count_under_dash(intake: IntakeWorld) -> None:
    def value(protocol: str, reason: str) -> float:
        return metrics.sample(
            "watchfloor_intake_rejected_total", tenant="-", protocol=protocol, reason=reason
        )

    before = (
        value("hec", "auth_invalid"),
        value("elastic", "auth_missing"),
        value("ndjson", "auth_malformed"),
    )
    with intake.client() as client:
        client.post("/services/collector/event", content=b"{}", headers={"Authorization": "Splunk nope"})
        client.get("/")
        client.post("/api/v1/ingest/ndjson", content=b"{}", headers={"Authorization": "Basic abc"})
    after = (
        value("hec", "auth_invalid"),
        value("elastic", "auth_missing"),
        value("ndjson", "auth_malformed"),
    )
    assert after == tuple(b + 1 for b in before)
    assert metrics.sample("watchfloor_intake_received_total", tenant="-", protocol="hec") >= 1
