"""Notify actions against loopback servers speaking SMTP, Slack's and Teams' webhooks and a signed webhook."""

from __future__ import annotations

import logging
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.respond.fakes_notify import (
    Scripted,
    SignedWebhookFake,
    SlackFake,
    SmtpFake,
    TeamsFake,
    closed_port,
    teams_failed_in_200,
)
from watchfloor.core.types import TenantId
from watchfloor.respond.actions import ActionContext, ConnectorConfigError, ConnectorError
from watchfloor.respond.connectors.notify import (
    ACTIONS,
    EmailMessageAction,
    SentRecord,
    SlackMessage,
    TeamsMessage,
    WebhookPost,
    scrub,
    webhook_signature,
)
from watchfloor.respond.http import HttpOptions, RetryLaterError, RetryPolicy

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
SMTP_PASSWORD = "smtp-Pa55word-never-logged"
WEBHOOK_SECRET = "whsec-signing-secret-0123456789"


def make_ctx(config: dict[str, Any], *, key: str = "run-1/notify-1", dry_run: bool = False) -> ActionContext:
    return ActionContext(
        tenant_id=TenantId("clinic"),
        run_id="run-1",
        step_id="notify-1",
        idempotency_key=key,
        config=config,
        dry_run=dry_run,
        clock=lambda: NOW,
    )


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def options(sleeps: list[float]) -> HttpOptions:
    return HttpOptions(
        timeout=httpx.Timeout(2.0),
        retry=RetryPolicy(max_attempts=3, base_delay_seconds=1.0, max_total_wait_seconds=120.0),
        sleep=sleeps.append,
        random=lambda: 0.0,
    )


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake  # type: ignore[misc]


def slack_action(options: HttpOptions) -> SlackMessage:
    return SlackMessage(http=options, sent=SentRecord())


def test_every_notify_action_is_read_only_without_approval() -> None:
    ids = sorted(action.manifest.id for action in ACTIONS)
    assert ids == ["notify.email", "notify.slack", "notify.teams", "notify.webhook"]
    for action in ACTIONS:
        manifest = action.manifest
        assert (manifest.risk, manifest.approval, manifest.reversible) == ("read_only", "never", False)
        assert manifest.secrets, manifest.id


# -- Slack ----------------------------------------------------------------------------------------
def test_slack_posts_text_json(slack: SlackFake, options: HttpOptions) -> None:
    result = slack_action(options).run(
        make_ctx({"slack_webhook_url": slack.url}), {"text": "P1: ransomware on ws01"}
    )
    assert result.status == "succeeded"
    assert result.changed
    assert [r.json() for r in slack.requests] == [{"text": "P1: ransomware on ws01"}]
    assert slack.requests[0].headers["content-type"] == "application/json"
    assert slack.secret not in result.summary


@pytest.mark.parametrize(
    ("scripted", "status", "vendor_code"),
    [
        (Scripted(400, "invalid_payload"), 400, "invalid_payload"),
        (Scripted(410, "channel_is_archived"), 410, "channel_is_archived"),
        (Scripted(404, "no_service"), 404, "no_service"),
    ],
)
def test_slack_errors_carry_status_and_code(
    slack: SlackFake,
    options: HttpOptions,
    sleeps: list[float],
    scripted: Scripted,
    status: int,
    vendor_code: str,
) -> None:
    slack.script.append(scripted)
    with pytest.raises(ConnectorError) as caught:
        slack_action(options).run(make_ctx({"slack_webhook_url": slack.url}), {"text": "hi"})
    error = caught.value
    assert (error.status, error.vendor_code, error.retryable) == (status, vendor_code, False)
    assert vendor_code in error.message
    assert sleeps == []
    assert len(slack.requests) == 1


def test_slack_wrong_token_is_403_invalid_token(slack: SlackFake, options: HttpOptions) -> None:
    wrong = slack.url.replace(slack.secret, "revokedTokenValue999")
    with pytest.raises(ConnectorError) as caught:
        slack_action(options).run(make_ctx({"slack_webhook_url": wrong}), {"text": "hi"})
    assert (caught.value.status, caught.value.vendor_code) == (403, "invalid_token")
    assert "revokedTokenValue999" not in str(caught.value)


def test_slack_429_honours_retry_after(slack: SlackFake, options: HttpOptions, sleeps: list[float]) -> None:
    slack.script.append(Scripted(429, "rate_limited", {"Retry-After": "7"}))
    result = slack_action(options).run(make_ctx({"slack_webhook_url": slack.url}), {"text": "hi"})
    assert result.status == "succeeded"
    assert sleeps == [7.0]
    assert len(slack.requests) == 2


def test_slack_long_retry_after_is_left_to_the_run_engine(
    slack: SlackFake, options: HttpOptions, sleeps: list[float]
) -> None:
    slack.script.append(Scripted(429, "rate_limited", {"Retry-After": "3600"}))
    with pytest.raises(RetryLaterError) as caught:
        slack_action(options).run(make_ctx({"slack_webhook_url": slack.url}), {"text": "hi"})
    assert caught.value.retryable
    assert caught.value.status == 429
    assert caught.value.retry_after_seconds == 3600
    assert sleeps == []


def test_slack_5xx_is_retried_then_given_up(
    slack: SlackFake, options: HttpOptions, sleeps: list[float]
) -> None:
    slack.script.extend([Scripted(500, "internal_error"), Scripted(503, "service_unavailable")] * 2)
    with pytest.raises(RetryLaterError) as caught:
        slack_action(options).run(make_ctx({"slack_webhook_url": slack.url}), {"text": "hi"})
    assert caught.value.retryable
    assert caught.value.code == "respond.vendor_unavailable"
    assert len(slack.requests) == 3
    assert sleeps == [0.5, 1.0]  # equal-jitter backoff with random() = 0


def test_slack_answer_is_not_followed_through_a_redirect(slack: SlackFake, options: HttpOptions) -> None:
    slack.script.append(Scripted(302, "", {"Location": "http://127.0.0.1:9/elsewhere"}))
    with pytest.raises(ConnectorError) as caught:
        slack_action(options).run(make_ctx({"slack_webhook_url": slack.url}), {"text": "hi"})
    assert caught.value.status == 302
    assert len(slack.requests) == 1


def test_timeouts_are_retryable(slack: SlackFake, sleeps: list[float]) -> None:
    slack.script.extend([Scripted(200, "ok", delay_seconds=1.0)] * 2)
    quick = HttpOptions(
        timeout=httpx.Timeout(0.2), retry=RetryPolicy(max_attempts=2), sleep=sleeps.append, random=lambda: 0.0
    )
    with pytest.raises(RetryLaterError) as caught:
        slack_action(quick).run(make_ctx({"slack_webhook_url": slack.url}), {"text": "hi"})
    assert "timed out" in caught.value.message
    assert caught.value.code == "respond.vendor_unreachable"
    assert caught.value.status == 0


def test_unreachable_webhook_is_retryable(options: HttpOptions, sleeps: list[float]) -> None:
    url = f"http://127.0.0.1:{closed_port()}/services/T0001/B0001/secretSecretSecret"
    with pytest.raises(RetryLaterError) as caught:
        slack_action(options).run(make_ctx({"slack_webhook_url": url}), {"text": "hi"})
    assert caught.value.retryable
    assert "secretSecretSecret" not in str(caught.value)
    assert len(sleeps) == 2


def test_dry_run_sends_nothing(slack: SlackFake, options: HttpOptions) -> None:
    result = slack_action(options).run(
        make_ctx({"slack_webhook_url": slack.url}, dry_run=True), {"text": "hello"}
    )
    assert result.status == "dry_run"
    assert result.summary.startswith("would post a 5-character message")
    assert not result.changed
    assert slack.requests == []


def test_the_same_idempotency_key_is_sent_once(slack: SlackFake, options: HttpOptions) -> None:
    action = slack_action(options)
    config = {"slack_webhook_url": slack.url}
    first = action.run(make_ctx(config, key="k1"), {"text": "hi"})
    again = action.run(make_ctx(config, key="k1"), {"text": "hi"})
    other = action.run(make_ctx(config, key="k2"), {"text": "hi"})
    assert (first.changed, again.changed, other.changed) == (True, False, True)
    assert again.status == "succeeded"
    assert "not sent again" in again.summary
    assert len(slack.requests) == 2


def test_a_failed_send_can_be_retried_with_the_same_key(slack: SlackFake, options: HttpOptions) -> None:
    action = slack_action(options)
    slack.script.append(Scripted(410, "channel_is_archived"))
    with pytest.raises(ConnectorError):
        action.run(make_ctx({"slack_webhook_url": slack.url}, key="k"), {"text": "hi"})
    assert action.run(make_ctx({"slack_webhook_url": slack.url}, key="k"), {"text": "hi"}).changed
    assert len(slack.requests) == 2


def test_sent_record_is_bounded_and_tracks_sends_in_flight() -> None:
    record = SentRecord(maxsize=2)
    from watchfloor.respond.actions import ActionResult

    done = ActionResult(status="succeeded", summary="x", changed=True)
    assert record.begin(("a", "t", "1")) is True
    assert record.begin(("a", "t", "1")) is False  # in flight
    record.finish(("a", "t", "1"), done)
    assert record.begin(("a", "t", "1")) == done
    for key in ("2", "3"):
        assert record.begin(("a", "t", key)) is True
        record.finish(("a", "t", key), done)
    assert len(record) == 2
    assert record.begin(("a", "t", "1")) is True  # the oldest was forgotten
    record.abandon(("a", "t", "1"))
    assert record.begin(("a", "t", "1")) is True


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.slack.example/services/T/B/plainHttpSecret",
        "https://user:pw@hooks.slack.example/services/T/B/x",
        "ftp://hooks.slack.example/x",
        "https://hooks.slack.example/a b",
    ],
)
def test_bad_webhook_urls_are_config_errors_that_do_not_quote_them(url: str, options: HttpOptions) -> None:
    with pytest.raises(ConnectorConfigError) as caught:
        slack_action(options).run(make_ctx({"slack_webhook_url": url}), {"text": "hi"})
    assert "slack_webhook_url" in caught.value.message
    assert "hooks.slack.example" not in str(caught.value)


def test_missing_config_and_inputs(options: HttpOptions) -> None:
    with pytest.raises(ConnectorConfigError, match="slack_webhook_url"):
        slack_action(options).run(make_ctx({}), {"text": "hi"})
    with pytest.raises(ConnectorError) as caught:
        slack_action(options).run(
            make_ctx({"slack_webhook_url": "https://hooks.slack.example/x"}), {"text": " "}
        )
    assert caught.value.code == "respond.invalid_input"


def test_secrets_never_reach_logs_or_errors(
    slack: SlackFake, options: HttpOptions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # The vendor echoes the URL it was called on: quoted errors must not carry it.
    slack.script.extend(
        [
            Scripted(503, f"overloaded at {slack.url}"),
            Scripted(400, f"bad request to /services/T0001/B0001/{slack.secret}"),
        ]
    )
    with pytest.raises(ConnectorError) as caught:
        slack_action(options).run(make_ctx({"slack_webhook_url": slack.url}), {"text": "hi"})
    slack_action(options).run(make_ctx({"slack_webhook_url": slack.url}, key="ok"), {"text": "hi"})
    texts = [caplog.text, str(caught.value), repr(caught.value), str(caught.value.location)]
    assert "[redacted]" in str(caught.value)
    for text in texts:
        assert slack.secret not in text
    assert "retrying" in caplog.text


# -- Teams ----------------------------------------------------------------------------------------
def test_teams_posts_a_message_card(options: HttpOptions) -> None:
    with TeamsFake() as teams:
        result = TeamsMessage(http=options, sent=SentRecord()).run(
            make_ctx({"teams_webhook_url": teams.url}), {"text": "**P1** contained ws01"}
        )
        card = teams.requests[0].json()
    assert result.status == "succeeded"
    assert card == {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": "**P1** contained ws01",
        "text": "**P1** contained ws01",
    }


def test_teams_workflows_answers_202_and_its_sig_stays_secret(
    options: HttpOptions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with TeamsFake(workflows=True) as teams:
        teams.script.append(Scripted(429, "Too Many Requests", {"Retry-After": "2"}))
        result = TeamsMessage(http=options, sent=SentRecord()).run(
            make_ctx({"teams_webhook_url": teams.url}), {"text": "x"}
        )
    assert result.output == {"status": 202}
    assert teams.secret not in caplog.text
    assert teams.secret not in result.summary


def test_teams_errors(options: HttpOptions, sleeps: list[float]) -> None:
    action = TeamsMessage(http=options, sent=SentRecord())
    with TeamsFake() as teams:
        teams.script.append(Scripted(400, "Summary or Text is required."))
        with pytest.raises(ConnectorError) as caught:
            action.run(make_ctx({"teams_webhook_url": teams.url}, key="a"), {"text": "x"})
        assert (caught.value.status, caught.value.retryable) == (400, False)
        assert "Summary or Text is required." in caught.value.message
        # A 200 that says the delivery failed with 429 is a 429: retried.
        teams.script.append(teams_failed_in_200(429))
        assert action.run(make_ctx({"teams_webhook_url": teams.url}, key="b"), {"text": "x"}).changed
        assert len(teams.requests) == 3
        teams.script.append(teams_failed_in_200(413))
        with pytest.raises(ConnectorError) as caught:
            action.run(make_ctx({"teams_webhook_url": teams.url}, key="c"), {"text": "x"})
        assert (caught.value.status, caught.value.vendor_code, caught.value.retryable) == (413, "413", False)
    assert sleeps == [0.5]


def test_teams_refuses_cards_over_28_kb(options: HttpOptions) -> None:
    with pytest.raises(ConnectorError, match="28000 bytes"):
        TeamsMessage(http=options).run(
            make_ctx({"teams_webhook_url": "https://x.example/h"}), {"text": "x" * 30_000}
        )


# -- generic webhook -----------------------------------------------------------------------------
def test_webhook_is_signed_and_the_fake_verifies_it(options: HttpOptions) -> None:
    payload = {"incident": "inc-1", "severity": "high", "entities": ["ws01"]}
    with SignedWebhookFake(WEBHOOK_SECRET) as hook:
        config = {"webhook_url": hook.url, "webhook_secret": WEBHOOK_SECRET}
        result = WebhookPost(http=options, sent=SentRecord()).run(make_ctx(config), {"payload": payload})
        again = WebhookPost(http=options, sent=SentRecord()).run(make_ctx(config), {"payload": payload})
    assert hook.verified == [True, True]
    first, second = hook.requests
    assert first.json() == payload
    assert first.headers["x-watchfloor-timestamp"] == str(int(NOW.timestamp()))
    assert first.headers["x-watchfloor-signature"] == webhook_signature(
        WEBHOOK_SECRET, str(int(NOW.timestamp())), first.body
    )
    # Another process (fresh record) sends again, with the same delivery id for the receiver to drop it.
    assert first.headers["x-watchfloor-delivery"] == second.headers["x-watchfloor-delivery"]
    assert result.external_ref == first.headers["x-watchfloor-delivery"]
    assert "receiverToken123456" not in result.summary
    assert again.changed


def test_webhook_with_the_wrong_secret_is_refused(
    options: HttpOptions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with SignedWebhookFake(WEBHOOK_SECRET) as hook:
        config = {"webhook_url": hook.url, "webhook_secret": "not-the-receivers-secret"}
        with pytest.raises(ConnectorError) as caught:
            WebhookPost(http=options).run(make_ctx(config), {"payload": [1, 2]})
    assert hook.verified == [False]
    assert caught.value.status == 401
    assert "bad signature" in caught.value.message
    for text in (caplog.text, str(caught.value)):
        assert "not-the-receivers-secret" not in text
        assert "receiverToken123456" not in text


def test_webhook_payload_must_be_json(options: HttpOptions) -> None:
    config = {"webhook_url": "https://hooks.example/x", "webhook_secret": WEBHOOK_SECRET}
    with pytest.raises(ConnectorError) as caught:
        WebhookPost(http=options).run(make_ctx(config), {"payload": {"when": NOW}})
    assert caught.value.code == "respond.invalid_input"
    with pytest.raises(ConnectorConfigError, match="webhook_secret"):
        WebhookPost(http=options).run(make_ctx({"webhook_url": "https://hooks.example/x"}), {"payload": 1})


def test_scrub_removes_url_paths_and_queries() -> None:
    url = "https://prod.example/workflows/abc123456/invoke?api-version=1&sig=S3cretSig0000"
    text = f"failed posting to {url}; path /workflows/abc123456/invoke; query api-version=1&sig=S3cretSig0000"
    cleaned = scrub(text, [url])
    assert "S3cretSig0000" not in cleaned
    assert "abc123456" not in cleaned


# -- email ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def server_tls(files: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*files)
    return context


def smtp_config(port: int, **extra: Any) -> dict[str, Any]:
    return {"smtp_host": "127.0.0.1", "smtp_port": port, "from_address": "soc@watchfloor.test", **extra}


EMAIL = {
    "to": "sam@clinic.example, dana@clinic.example",
    "subject": "P1 incident inc-7",
    "body": "Contained.\n",
}


def test_email_is_delivered_with_subject_and_recipients(options: HttpOptions) -> None:
    with SmtpFake() as smtp:
        result = EmailMessageAction(http=options, sent=SentRecord()).run(
            make_ctx(smtp_config(smtp.port, starttls=False)), EMAIL
        )
    (mail,) = smtp.mail
    assert mail.rcpt_to == ["sam@clinic.example", "dana@clinic.example"]
    assert mail.mail_from == "soc@watchfloor.test"
    assert mail.message["Subject"] == "P1 incident inc-7"
    assert mail.message["To"] == "sam@clinic.example, dana@clinic.example"
    assert mail.message.get_payload().strip() == "Contained."
    assert result.external_ref == mail.message["Message-ID"]
    assert result.output["recipients"] == ["sam@clinic.example", "dana@clinic.example"]


def test_email_over_starttls_with_auth(tls_files: tuple[Path, Path], sleeps: list[float]) -> None:
    trusting = HttpOptions(verify=str(tls_files[0]), sleep=sleeps.append, timeout=httpx.Timeout(5.0))
    config = smtp_config(0, smtp_username="alerts", smtp_password=SMTP_PASSWORD, starttls=True)
    with SmtpFake(users={"alerts": SMTP_PASSWORD}, tls=server_tls(tls_files)) as smtp:
        config["smtp_port"] = smtp.port
        EmailMessageAction(http=trusting, sent=SentRecord()).run(make_ctx(config), EMAIL)
    (mail,) = smtp.mail
    assert mail.over_tls
    assert mail.authenticated_as == "alerts"


def test_starttls_with_an_untrusted_certificate_fails_without_retry(
    tls_files: tuple[Path, Path], options: HttpOptions, sleeps: list[float]
) -> None:
    with SmtpFake(tls=server_tls(tls_files)) as smtp, pytest.raises(ConnectorError) as caught:
        EmailMessageAction(http=options).run(make_ctx(smtp_config(smtp.port, starttls=True)), EMAIL)
    assert not caught.value.retryable
    assert "certificate" in caught.value.message.lower()
    assert sleeps == []
    assert smtp.mail == []


def test_starttls_required_but_not_offered_is_refused(options: HttpOptions) -> None:
    with SmtpFake() as smtp, pytest.raises(ConnectorError) as caught:
        EmailMessageAction(http=options).run(make_ctx(smtp_config(smtp.port, starttls=True)), EMAIL)
    assert "STARTTLS" in caught.value.message
    assert not caught.value.retryable
    assert smtp.mail == []


def test_email_auth_failure_is_535_and_keeps_the_password_out(
    options: HttpOptions, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = smtp_config(0, smtp_username="alerts", smtp_password=SMTP_PASSWORD, starttls=False)
    with SmtpFake(users={"alerts": "the-real-password"}) as smtp:
        config["smtp_port"] = smtp.port
        with pytest.raises(ConnectorError) as caught:
            EmailMessageAction(http=options).run(make_ctx(config), EMAIL)
    error = caught.value
    assert (error.status, error.vendor_code, error.retryable) == (535, "5.7.8", False)
    assert error.code == "respond.auth_failed"
    assert "535" in error.message
    assert sleeps == []
    assert smtp.auth_attempts  # the password did go over the wire (loopback relay), but nowhere else:
    for text in (caplog.text, str(error), repr(error)):
        assert SMTP_PASSWORD not in text


def test_email_server_down_is_retryable(options: HttpOptions, sleeps: list[float]) -> None:
    with pytest.raises(RetryLaterError) as caught:
        EmailMessageAction(http=options).run(make_ctx(smtp_config(closed_port(), starttls=False)), EMAIL)
    assert caught.value.retryable
    assert caught.value.status == 0
    assert "127.0.0.1" in caught.value.message
    assert len(sleeps) == 2


def test_email_busy_server_and_temporary_failures_are_retried(
    options: HttpOptions, sleeps: list[float]
) -> None:
    with SmtpFake() as smtp:
        smtp.data_replies.append("451 4.3.0 Temporary lookup failure")
        result = EmailMessageAction(http=options, sent=SentRecord()).run(
            make_ctx(smtp_config(smtp.port, starttls=False)), EMAIL
        )
    assert result.changed
    assert len(smtp.mail) == 1
    assert sleeps == [0.5]
    busy_greeting = "421 4.3.2 Service not available, closing channel"
    with SmtpFake(greeting=busy_greeting) as busy, pytest.raises(RetryLaterError) as caught:
        EmailMessageAction(http=options).run(make_ctx(smtp_config(busy.port, starttls=False)), EMAIL)
    assert caught.value.status == 421


def test_email_refused_recipients(options: HttpOptions) -> None:
    with SmtpFake(reject={"dana@clinic.example", "sam@clinic.example"}) as smtp:
        with pytest.raises(ConnectorError) as caught:
            EmailMessageAction(http=options).run(make_ctx(smtp_config(smtp.port, starttls=False)), EMAIL)
        assert (caught.value.status, caught.value.retryable) == (550, False)
        smtp.reject = {"dana@clinic.example"}
        result = EmailMessageAction(http=options, sent=SentRecord()).run(
            make_ctx(smtp_config(smtp.port, starttls=False), key="partial"), EMAIL
        )
    assert result.output["refused"] == ["dana@clinic.example"]
    assert result.output["recipients"] == ["sam@clinic.example"]


def test_email_dry_run_connects_to_nothing(options: HttpOptions) -> None:
    with SmtpFake() as smtp:
        result = EmailMessageAction(http=options).run(
            make_ctx(smtp_config(smtp.port, starttls=False), dry_run=True), EMAIL
        )
    assert result.status == "dry_run"
    assert "P1 incident inc-7" in result.summary
    assert smtp.mail == []


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({**EMAIL, "subject": "hi\r\nBcc: everyone@example.com"}, "one line"),
        ({**EMAIL, "to": "sam@clinic.example\r\nRCPT TO:<x@y.z>"}, "not plain email addresses"),
        ({**EMAIL, "to": []}, "recipients"),
        ({**EMAIL, "body": None}, "body"),
    ],
)
def test_email_inputs_are_checked(options: HttpOptions, inputs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConnectorError, match=message) as caught:
        EmailMessageAction(http=options).run(make_ctx(smtp_config(25, starttls=False)), inputs)
    assert caught.value.code == "respond.invalid_input"


def test_password_in_clear_to_a_remote_relay_is_refused(options: HttpOptions) -> None:
    config = {**smtp_config(25, starttls=False), "smtp_host": "mail.example.com"}
    config |= {"smtp_username": "alerts", "smtp_password": SMTP_PASSWORD}
    with pytest.raises(ConnectorConfigError) as caught:
        EmailMessageAction(http=options).run(make_ctx(config), EMAIL)
    assert "clear" in caught.value.message
    assert SMTP_PASSWORD not in str(caught.value)


def test_summaries_say_what_was_sent(options: HttpOptions) -> None:
    inputs = {**EMAIL, "subject": "please post the email report"}
    with SmtpFake() as smtp:
        config = smtp_config(smtp.port, starttls=False)
        preview = EmailMessageAction(http=options).run(make_ctx(config, dry_run=True), inputs)
        done = EmailMessageAction(http=options, sent=SentRecord()).run(make_ctx(config), inputs)
    assert preview.summary.startswith("would email 'please post the email report' to sam@clinic.example")
    assert done.summary.startswith("emailed 'please post the email report' to sam@clinic.example")
    assert done.summary.endswith(f"via 127.0.0.1:{smtp.port}")
