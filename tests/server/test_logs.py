"""Structured logs: JSON per line, extras kept, credentials never written."""

from __future__ import annotations

import logging
import secrets

import orjson
from hypothesis import given
from hypothesis import strategies as st

from watchfloor.server.logs import REDACTED, JsonFormatter


def render(msg: str, *args: object, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("watchfloor.test", logging.WARNING, __file__, 1, msg, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return orjson.loads(JsonFormatter().format(record))  # type: ignore[no-any-return]


def token() -> str:
    return "wf_" + secrets.token_hex(4) + "_" + secrets.token_urlsafe(32)


def test_one_json_object_with_extras_and_tenant() -> None:
    line = render("refused %d events", 3, tenant="clinic", protocol="hec")
    assert line["msg"] == "refused 3 events"
    assert line["tenant"] == "clinic"
    assert line["protocol"] == "hec"
    assert line["level"] == "warning"
    assert str(line["ts"]).endswith("+00:00")


def test_credentials_are_redacted_in_messages_and_fields() -> None:
    secret = token()
    line = render("bad request with %s", f"Authorization: Splunk {secret}", token=secret, peer=f"x {secret}")
    text = orjson.dumps(line).decode()
    assert secret not in text
    assert line["token"] == REDACTED
    assert REDACTED in str(line["msg"])


@given(st.text(max_size=40), st.text(max_size=40))
def test_an_intake_token_anywhere_in_a_message_is_never_written(before: str, after: str) -> None:
    secret = token()
    line = render("%s%s%s", before, secret, after)
    assert secret not in orjson.dumps(line).decode()
