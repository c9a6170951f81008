"""The AWS IAM access key actions against a loopback fake of the IAM Query API that checks SigV4; and the
signer against AWS's documented examples."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.respond.fakes.aws_iam import ACCESS_KEY_ID, SECRET_ACCESS_KEY, FakeIam, iam_error_xml
from tests.respond.fakes.server import LoopbackServer
from watchfloor.core.types import TenantId
from watchfloor.respond.actions import ActionContext, ConnectorError
from watchfloor.respond.connectors.aws_iam import (
    ActivateAccessKey,
    DeactivateAccessKey,
    canonical_request,
    iam_error,
    signature,
    signing_key,
)
from watchfloor.respond.http import HttpOptions, TokenCache

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
KEY = "AKIA2EXAMPLEKEY00001"
INPUTS = {"user": "ci-deploy", "access_key_id": KEY}
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def iam() -> FakeIam:
    fake = FakeIam(page_size=2)
    fake.add_user("ci-deploy", "AKIA2EXAMPLEKEY00000", KEY, "AKIA2EXAMPLEKEY00002")  # two pages
    fake.add_user("old-svc", "AKIA2EXAMPLEKEY00009", status="Inactive")
    return fake


@pytest.fixture
def server(iam: FakeIam) -> Iterator[LoopbackServer]:
    with LoopbackServer(iam.app()) as running:
        yield running


@pytest.fixture
def http() -> HttpOptions:
    return HttpOptions(sleep=lambda _: None, token_cache=TokenCache())


def context(server: LoopbackServer, *, dry_run: bool = False, **config: str) -> ActionContext:
    return ActionContext(
        tenant_id=TenantId("clinic"),
        run_id="run-9",
        step_id="deactivate",
        idempotency_key="run-9/deactivate",
        config={
            "endpoint": server.url,
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            **config,
        },
        dry_run=dry_run,
        clock=lambda: NOW,
    )


# -- Signature Version 4 ----------------------------------------------------------------------------------


def test_sigv4_matches_the_documented_iam_example():
    # "Examples of the complete Signature Version 4 signing process" (IAM ListUsers, 2015-08-30).
    canonical, names = canonical_request(
        "GET",
        "/",
        "Action=ListUsers&Version=2010-05-08",
        {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "Host": "iam.amazonaws.com",
            "X-Amz-Date": "20150830T123600Z",
        },
        b"",
    )
    assert names == "content-type;host;x-amz-date"
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
    )
    sig = signature(
        secret_access_key=EXAMPLE_SECRET,
        amz_date="20150830T123600Z",
        region="us-east-1",
        service="iam",
        canonical=canonical,
    )
    assert sig == "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"


def test_sigv4_signing_key_and_get_vanilla_examples():
    key = signing_key(EXAMPLE_SECRET, "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    canonical, _ = canonical_request(
        "GET", "/", "", {"Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"}, b""
    )
    sig = signature(
        secret_access_key=EXAMPLE_SECRET,
        amz_date="20150830T123600Z",
        region="us-east-1",
        service="service",
        canonical=canonical,
    )
    assert sig == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"


def test_changing_any_signed_element_changes_the_signature():
    base = {
        "method": "POST",
        "path": "/",
        "query": "",
        "headers": {"host": "iam.amazonaws.com", "x-amz-date": "20261204T090000Z"},
        "payload": b"Action=UpdateAccessKey&Status=Inactive",
    }

    def sign(**change: object) -> str:
        parts = {**base, **change}
        canonical, _ = canonical_request(
            parts["method"],
            parts["path"],
            parts["query"],
            parts["headers"],
            parts["payload"],  # type: ignore[arg-type]
        )
        return signature(
            secret_access_key=str(change.get("secret", EXAMPLE_SECRET)),
            amz_date=str(change.get("amz_date", "20261204T090000Z")),
            region=str(change.get("region", "us-east-1")),
            service="iam",
            canonical=canonical,
        )

    reference = sign()
    variants = [
        sign(method="GET"),
        sign(path="/x"),
        sign(query="a=b"),
        sign(headers={**base["headers"], "host": "iam.amazonaws.com.evil"}),  # type: ignore[dict-item]
        sign(payload=b"Action=UpdateAccessKey&Status=Active"),
        sign(secret=EXAMPLE_SECRET + "x"),
        sign(amz_date="20261204T090001Z"),
        sign(region="eu-west-1"),
    ]
    assert reference not in variants
    assert len(set(variants)) == len(variants)


# -- the actions ------------------------------------------------------------------------------------------


def test_deactivate_an_access_key(server, iam, http):
    result = DeactivateAccessKey(http=http).run(context(server), INPUTS)
    assert (result.status, result.changed, result.external_ref) == ("succeeded", True, KEY)
    assert iam.users["ci-deploy"].keys[KEY] == "Inactive"
    assert result.output["previous_status"] == "Active"
    (post,) = server.writes()
    assert post.status == 200
    assert post.form() == {
        "Action": "UpdateAccessKey",
        "UserName": "ci-deploy",
        "AccessKeyId": KEY,
        "Status": "Inactive",
        "Version": "2010-05-08",
    }
    assert post.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20261204/us-east-1/iam/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, Signature="
    )
    assert len(server.log("GET")) == 2  # ListAccessKeys, two pages


def test_dry_run_makes_no_write_call(server, iam, http):
    result = DeactivateAccessKey(http=http).run(context(server, dry_run=True), INPUTS)
    assert (result.status, result.output["status"]) == ("dry_run", "Active")
    assert server.writes() == []
    assert iam.updates == []


def test_deactivating_again_changes_nothing(server, iam, http):
    DeactivateAccessKey(http=http).run(context(server), INPUTS)
    again = DeactivateAccessKey(http=http).run(context(server), INPUTS)
    assert (again.changed, again.summary) == (
        False,
        f"access key {KEY} of IAM user ci-deploy is already inactive",
    )
    assert len(iam.updates) == 1


def test_rollback_activates_the_key_again(server, iam, http):
    action = DeactivateAccessKey(http=http)
    done = action.run(context(server), INPUTS)
    undone = action.rollback(context(server), INPUTS, done)
    assert (undone.status, undone.changed) == ("succeeded", True)
    assert iam.users["ci-deploy"].keys[KEY] == "Active"


def test_rollback_of_a_key_inactive_before_us_does_nothing(server, iam, http):
    inputs = {"user": "old-svc", "access_key_id": "AKIA2EXAMPLEKEY00009"}
    done = DeactivateAccessKey(http=http).run(context(server), inputs)
    assert DeactivateAccessKey(http=http).rollback(context(server), inputs, done).status == "skipped"
    assert iam.updates == []
    assert ActivateAccessKey(http=http).run(context(server, dry_run=True), inputs).status == "dry_run"
    assert server.writes() == []


def test_temporary_credentials_send_the_session_token(server, iam, http):
    iam.session_token = "FwoGZXIvYXdzEXAMPLE-session-token"
    result = DeactivateAccessKey(http=http).run(context(server, session_token=iam.session_token), INPUTS)
    assert result.changed
    assert "x-amz-security-token" in server.writes()[0].headers["authorization"]


def test_a_wrong_secret_fails_the_signature_check_without_naming_it(server, iam, http, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrongSECRETwrongSECRETwrongSECRET0000"
    with pytest.raises(ConnectorError) as caught:
        DeactivateAccessKey(http=http).run(context(server, secret_access_key=wrong), INPUTS)
    error = caught.value
    assert (error.status, error.code, error.vendor_code) == (
        403,
        "respond.forbidden",
        "SignatureDoesNotMatch",
    )
    assert "does not match the signature you provided" in error.message
    assert iam.updates == []
    for text in (str(error), repr(error), caplog.text):
        assert wrong not in text
        assert SECRET_ACCESS_KEY not in text


def test_throttling_is_retried(server, iam):
    waits: list[float] = []
    http = HttpOptions(sleep=waits.append, token_cache=TokenCache(), random=lambda: 0.0)
    body = iam_error_xml("Throttling", "Rate exceeded")
    server.faults.fail_next(2, 400, body=body, headers={"content-type": "text/xml"}, method="POST")
    result = DeactivateAccessKey(http=http).run(context(server), INPUTS)
    assert result.changed
    assert waits == [0.5, 1.0]  # backoff with no jitter
    assert [r.status for r in server.log("POST")] == [400, 400, 200]


def test_throttling_that_does_not_stop_is_a_retryable_error(server, iam):
    http = HttpOptions(sleep=lambda _: None, token_cache=TokenCache())
    body = iam_error_xml("Throttling", "Rate exceeded")
    server.faults.fail_next(10, 400, body=body, headers={"content-type": "text/xml"})
    with pytest.raises(ConnectorError) as caught:
        DeactivateAccessKey(http=http).run(context(server), INPUTS)
    assert (caught.value.vendor_code, caught.value.retryable) == ("Throttling", True)


def test_an_unknown_user_is_not_found(server, http):
    with pytest.raises(ConnectorError) as caught:
        DeactivateAccessKey(http=http).run(context(server), {"user": "nobody", "access_key_id": KEY})
    assert (caught.value.code, caught.value.vendor_code, caught.value.status) == (
        "respond.target_not_found",
        "NoSuchEntity",
        404,
    )
    assert "The user with name nobody cannot be found." in caught.value.message


def test_an_unknown_key_is_not_found(server, http):
    with pytest.raises(ConnectorError) as caught:
        DeactivateAccessKey(http=http).run(
            context(server), {**INPUTS, "access_key_id": "AKIA2EXAMPLEKEY99999"}
        )
    assert caught.value.code == "respond.target_not_found"
    assert server.writes() == []


def test_bad_inputs_are_refused_before_any_call(server, http):
    with pytest.raises(ConnectorError) as caught:
        DeactivateAccessKey(http=http).run(context(server), {"user": "a b", "access_key_id": "x"})
    assert caught.value.code == "respond.invalid_input"
    assert server.log() == []


def test_xml_with_a_dtd_is_not_parsed():
    import httpx

    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
        b"<ErrorResponse><Error><Code>&a;</Code></Error></ErrorResponse>"
    )
    response = httpx.Response(400, content=bomb)
    code, _ = iam_error(response)
    assert code is None
