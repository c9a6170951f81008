"""The connector HTTP client against loopback fakes: tokens, retries, error bodies, paging, redaction."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.respond.fakes.msgraph import (
    CLIENT_ID,
    CLIENT_SECRET,
    DIRECTORY_ID,
    GRAPH_SCOPE,
    FakeGraph,
    GraphUser,
    graph_error_body,
    message_rule,
)
from tests.respond.fakes.server import LoopbackServer
from watchfloor.respond.actions import ConnectorConfigError, ConnectorError
from watchfloor.respond.http import (
    ClientCredentials,
    ConnectorHttp,
    HttpOptions,
    RetryLaterError,
    RetryPolicy,
    TokenCache,
    check_base_url,
    parse_retry_after,
    path_segment,
)

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


class Sleeps(list[float]):
    """An injected `sleep` that records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def graph() -> FakeGraph:
    fake = FakeGraph()
    fake.add_user("dana@clinic.example", mail="dana@clinic.example")
    return fake


@pytest.fixture
def server(graph: FakeGraph) -> Iterator[LoopbackServer]:
    with LoopbackServer(graph.app()) as running:
        yield running


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def cache() -> TokenCache:
    return TokenCache()


def client(
    server: LoopbackServer,
    *,
    sleeps: Sleeps,
    cache: TokenCache,
    secret: str = CLIENT_SECRET,
    retry: RetryPolicy | None = None,
    timeout: httpx.Timeout | None = None,
) -> ConnectorHttp:
    options = HttpOptions(
        sleep=sleeps,
        random=lambda: 0.5,
        token_cache=cache,
        retry=retry or RetryPolicy(max_attempts=4, base_delay_seconds=1.0, max_total_wait_seconds=60),
        timeout=timeout or httpx.Timeout(5.0),
    )
    credentials = ClientCredentials(
        token_url=f"{server.url}/{DIRECTORY_ID}/oauth2/v2.0/token",
        client_id=CLIENT_ID,
        client_secret=secret,
        scope=GRAPH_SCOPE,
    )
    return ConnectorHttp(
        connector="msgraph",
        tenant_id="clinic",
        base_url=server.url,
        credentials=credentials,
        options=options,
        wall_clock=lambda: NOW,
    )


def dana_path(graph: FakeGraph) -> str:
    return f"/v1.0/users/{next(iter(graph.users))}"


# -- tokens -------------------------------------------------------------------------------------------


def test_token_is_fetched_once_and_shared_by_clients_of_the_same_app(server, graph, sleeps, cache):
    with client(server, sleeps=sleeps, cache=cache) as api:
        api.get_json(dana_path(graph))
        api.get_json(dana_path(graph))
    with client(server, sleeps=sleeps, cache=cache) as api:
        api.get_json(dana_path(graph))
    token_requests = server.log("POST", "/oauth2/v2.0/token")
    assert len(token_requests) == 1
    assert token_requests[0].form() == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scope": GRAPH_SCOPE,
    }
    api_calls = server.log("GET", "/v1.0/users/")
    assert {r.headers["authorization"] for r in api_calls} == {f"Bearer {graph.entra.issued[0]}"}


def test_expired_token_is_refreshed_once_on_401(server, graph, sleeps, cache):
    with client(server, sleeps=sleeps, cache=cache) as api:
        api.get_json(dana_path(graph))
        graph.entra.expire_tokens()
        body = api.get_json(dana_path(graph))
    assert body["userPrincipalName"] == "dana@clinic.example"
    assert len(graph.entra.issued) == 2
    assert [r.status for r in server.log("GET", "/v1.0/users/")] == [200, 401, 200]
    assert sleeps == []  # a refresh is not a retry


def test_a_401_after_refreshing_is_an_error_not_a_loop(server, graph, sleeps, cache):
    body = graph_error_body("InvalidAuthenticationToken", "Access token validation failure.")
    server.faults.fail_next(5, 401, json=body, path_contains="/v1.0/")
    with client(server, sleeps=sleeps, cache=cache) as api, pytest.raises(ConnectorError) as caught:
        api.get_json(dana_path(graph))
    assert caught.value.code == "respond.unauthorized"
    assert caught.value.vendor_code == "InvalidAuthenticationToken"
    assert not caught.value.retryable
    assert len(server.log("GET", "/v1.0/")) == 2


def test_token_cache_forgets_tokens_before_they_expire():
    now = [0.0]
    cache = TokenCache(margin_seconds=120, monotonic=lambda: now[0])
    key = ("clinic", "https://login.example/t/oauth2/v2.0/token", "app", "scope-a")
    cache.put(key, "token-1", 3599)
    cache.put((*key[:3], "scope-b"), "token-2", 3599)
    assert cache.get(key) == "token-1"
    assert cache.get((*key[:3], "scope-b")) == "token-2"
    now[0] = 3599 - 121
    assert cache.get(key) == "token-1"
    now[0] = 3599 - 119
    assert cache.get(key) is None
    cache.put(key, "token-3", 60)  # short-lived: kept for half its life
    now[0] += 29
    assert cache.get(key) == "token-3"
    cache.invalidate(key, "token-other")
    assert cache.get(key) == "token-3"
    cache.invalidate(key, "token-3")
    assert cache.get(key) is None


def test_wrong_client_secret_is_an_auth_error_with_the_vendor_message(server, graph, sleeps, cache):
    wrong = "Wr0ng~secret.value-123456"
    with (
        client(server, sleeps=sleeps, cache=cache, secret=wrong) as api,
        pytest.raises(ConnectorError) as caught,
    ):
        api.get_json(dana_path(graph))
    error = caught.value
    assert error.code == "respond.auth_failed"
    assert (error.status, error.vendor_code, error.retryable) == (401, "invalid_client", False)
    assert "AADSTS7000215" in error.message
    assert "Trace ID" not in error.message
    assert wrong not in str(error)
    assert server.log("GET", "/v1.0/") == []


# -- retries ------------------------------------------------------------------------------------------


def test_429_retry_after_is_honoured(server, graph, sleeps, cache):
    body = graph_error_body("TooManyRequests", "Too many requests")
    server.faults.fail_next(2, 429, json=body, headers={"Retry-After": "7"}, path_contains="/v1.0/")
    with client(server, sleeps=sleeps, cache=cache) as api:
        assert api.get_json(dana_path(graph))["accountEnabled"] is True
    assert sleeps == [7.0, 7.0]
    assert [r.status for r in server.log("GET", "/v1.0/")] == [429, 429, 200]


def test_429_gives_up_after_max_attempts_with_a_retryable_error(server, graph, sleeps, cache):
    body = graph_error_body("TooManyRequests", "Too many requests")
    server.faults.fail_next(10, 429, json=body, headers={"Retry-After": "2"}, path_contains="/v1.0/")
    with client(server, sleeps=sleeps, cache=cache) as api, pytest.raises(RetryLaterError) as caught:
        api.get_json(dana_path(graph))
    error = caught.value
    assert (error.code, error.status, error.vendor_code) == ("respond.rate_limited", 429, "TooManyRequests")
    assert error.retryable
    assert error.retry_after_seconds == 2.0
    assert "gave up after 4 tries" in error.message
    assert sleeps == [2.0, 2.0, 2.0]
    assert len(server.log("GET", "/v1.0/")) == 4


def test_a_retry_after_beyond_the_total_wait_budget_gives_up_at_once(server, graph, sleeps, cache):
    server.faults.fail_next(1, 429, headers={"Retry-After": "3600"}, path_contains="/v1.0/")
    with client(server, sleeps=sleeps, cache=cache) as api, pytest.raises(RetryLaterError) as caught:
        api.get_json(dana_path(graph))
    assert caught.value.retry_after_seconds == 3600
    assert sleeps == []


def test_retry_after_as_an_http_date(server, graph, sleeps, cache):
    when = format_datetime(NOW + timedelta(seconds=12), usegmt=True)
    server.faults.fail_next(1, 503, headers={"Retry-After": when}, path_contains="/v1.0/")
    with client(server, sleeps=sleeps, cache=cache) as api:
        api.get_json(dana_path(graph))
    assert sleeps == [12.0]


def test_parse_retry_after():
    assert parse_retry_after("5", now=NOW) == 5.0
    assert parse_retry_after(format_datetime(NOW - timedelta(seconds=5), usegmt=True), now=NOW) == 0.0
    assert parse_retry_after("soon", now=NOW) is None
    assert parse_retry_after(None, now=NOW) is None
    assert parse_retry_after("nan", now=NOW) is None


def test_5xx_is_retried_with_exponential_backoff_and_jitter(server, graph, sleeps, cache):
    server.faults.fail_next(1, 503, body=b"Service Unavailable", path_contains="/v1.0/")
    server.faults.fail_next(1, 502, body=b"Bad Gateway", path_contains="/v1.0/")
    server.faults.fail_next(1, 504, body=b"Gateway Timeout", path_contains="/v1.0/")
    with client(server, sleeps=sleeps, cache=cache) as api:
        api.get_json(dana_path(graph))
    # base 1 s doubling; equal jitter with random() = 0.5 -> 3/4 of each step
    assert sleeps == [0.75, 1.5, 3.0]


def test_a_502_on_a_post_is_not_sent_again_unless_the_call_is_idempotent(server, graph, sleeps, cache):
    path = f"{dana_path(graph)}/revokeSignInSessions"
    server.faults.fail_next(1, 502, path_contains="revokeSignInSessions")
    with client(server, sleeps=sleeps, cache=cache) as api:
        with pytest.raises(ConnectorError) as caught:
            api.request("POST", path)
        assert (caught.value.code, caught.value.retryable) == ("respond.vendor_unavailable", True)
        server.faults.fail_next(1, 502, path_contains="revokeSignInSessions")
        assert api.request("POST", path, idempotent=True).json()["value"] is True
    user: GraphUser = next(iter(graph.users.values()))
    assert user.revocations == 1


def test_a_slow_answer_times_out_and_is_retried(server, graph, sleeps, cache):
    server.faults.delay_next(1, 0.3, path_contains="/v1.0/")
    with client(server, sleeps=sleeps, cache=cache, timeout=httpx.Timeout(0.1)) as api:
        api.get_json(dana_path(graph))
    assert len(sleeps) == 1
    assert len(server.log("GET", "/v1.0/")) == 2


def test_a_vendor_that_never_answers_is_a_retryable_error(sleeps, cache):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: connections are refused
    options = HttpOptions(sleep=sleeps, token_cache=cache, retry=RetryPolicy(max_attempts=3))
    api = ConnectorHttp(
        connector="mde", tenant_id="clinic", base_url=f"http://127.0.0.1:{port}", options=options
    )
    with api, pytest.raises(RetryLaterError) as caught:
        api.get_json("/api/machines")
    assert (caught.value.code, caught.value.status) == ("respond.vendor_unreachable", 0)
    assert len(sleeps) == 2


# -- error bodies -------------------------------------------------------------------------------------


def test_404_maps_to_target_not_found_with_the_vendor_message(server, sleeps, cache):
    with client(server, sleeps=sleeps, cache=cache) as api, pytest.raises(ConnectorError) as caught:
        api.get_json("/v1.0/users/nobody@clinic.example")
    error = caught.value
    assert (error.code, error.status, error.vendor_code) == (
        "respond.target_not_found",
        404,
        "Request_ResourceNotFound",
    )
    assert not error.retryable
    assert "Resource 'nobody@clinic.example' does not exist" in error.message
    assert str(error).startswith("tenant=clinic msgraph GET /v1.0/users/nobody@clinic.example:")


def test_403_authorization_denied_is_not_retryable(server, graph, sleeps, cache):
    graph.denied.add("read_user")
    with client(server, sleeps=sleeps, cache=cache) as api, pytest.raises(ConnectorError) as caught:
        api.get_json(dana_path(graph))
    error = caught.value
    assert (error.code, error.vendor_code, error.retryable) == (
        "respond.forbidden",
        "Authorization_RequestDenied",
        False,
    )
    assert "Insufficient privileges" in error.message
    assert sleeps == []


# -- pagination ---------------------------------------------------------------------------------------


def test_odata_pagination_follows_next_links_over_three_pages(server, graph, sleeps, cache):
    user = next(iter(graph.users.values()))
    user.rules = [message_rule(f"rule {n}") for n in range(5)]
    with client(server, sleeps=sleeps, cache=cache) as api:
        rules = list(api.iter_odata(f"/v1.0/users/{user.id}/mailFolders/inbox/messageRules"))
    assert [r["displayName"] for r in rules] == [f"rule {n}" for n in range(5)]
    pages = server.log("GET", "/messageRules")
    assert len(pages) == 3
    assert [p.query.get("$skiptoken") for p in pages] == [None, ["2"], ["4"]]


def _paging_app(next_links: dict[str, str]) -> Starlette:
    async def items(request: Request) -> Response:
        page = request.query_params.get("page", "1")
        headers = {"Link": next_links[page]} if page in next_links else {}
        body = {"value": [{"page": page}], "@odata.nextLink": next_links.get(f"odata{page}")}
        return JSONResponse({k: v for k, v in body.items() if v is not None}, headers=headers)

    return Starlette(routes=[Route("/items", items)])


def test_link_header_pagination(sleeps, cache):
    links = {
        "1": '</items?page=2>; rel="next"',
        "2": '</items?page=3>; rel="next", </items?page=1>; rel="first"',
    }
    with LoopbackServer(_paging_app(links)) as server:
        options = HttpOptions(sleep=sleeps, token_cache=cache)
        with ConnectorHttp(connector="psa", tenant_id="clinic", base_url=server.url, options=options) as api:
            pages = [page.json()["value"][0]["page"] for page in api.iter_link_pages("/items")]
    assert pages == ["1", "2", "3"]


def test_a_next_link_to_another_host_is_not_followed_with_our_token(sleeps, cache):
    links = {"odata1": "https://attacker.example/items?page=2"}
    with LoopbackServer(_paging_app(links)) as server:
        options = HttpOptions(sleep=sleeps, token_cache=cache)
        with ConnectorHttp(
            connector="msgraph", tenant_id="clinic", base_url=server.url, options=options
        ) as api:
            items = api.iter_odata("/items")
            assert next(items) == {"page": "1"}
            with pytest.raises(ConnectorError, match="another origin"):
                next(items)


# -- configuration ------------------------------------------------------------------------------------


def test_base_urls_must_be_https_except_on_loopback():
    assert check_base_url(
        "https://graph.microsoft.com/", key="graph_base", connector="msgraph", tenant_id="t"
    ) == ("https://graph.microsoft.com")
    assert (
        check_base_url("http://127.0.0.1:8080", key="k", connector="c", tenant_id="t")
        == "http://127.0.0.1:8080"
    )
    with pytest.raises(ConnectorConfigError, match="plain http"):
        check_base_url("http://graph.microsoft.com", key="graph_base", connector="msgraph", tenant_id="t")
    with pytest.raises(ConnectorConfigError):
        check_base_url(
            "https://graph.microsoft.com?x=1", key="graph_base", connector="msgraph", tenant_id="t"
        )


def test_timeouts_are_mandatory_and_tls_is_verified_by_default():
    assert HttpOptions().verify is True
    with pytest.raises(ValueError, match="timeout"):
        HttpOptions(timeout=httpx.Timeout(None))
    with pytest.raises(ValueError, match="timeout"):
        HttpOptions(timeout=httpx.Timeout(5.0, read=None))


def test_path_segments_are_escaped():
    assert path_segment("ann_fabrikam.com#EXT#@clinic.onmicrosoft.com") == (
        "ann_fabrikam.com%23EXT%23@clinic.onmicrosoft.com"
    )
    assert path_segment("a/b?c d") == "a%2Fb%3Fc%20d"


# -- secrets ------------------------------------------------------------------------------------------


def test_secrets_and_tokens_appear_in_no_log_record_and_no_error(server, graph, sleeps, cache, caplog):
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    throttled = graph_error_body("TooManyRequests", "Too many requests")
    server.faults.fail_next(1, 429, json=throttled, headers={"Retry-After": "1"}, path_contains="/v1.0/")
    with client(server, sleeps=sleeps, cache=cache) as api:
        api.get_json(dana_path(graph))
        graph.entra.expire_tokens()
        api.get_json(dana_path(graph))
        graph.denied.add("read_user")
        try:
            api.get_json(dana_path(graph))
        except ConnectorError as exc:
            errors.append(exc)
        # A vendor echoing the bearer token back must not get it into our error either.
        token = graph.entra.issued[-1]
        server.faults.fail_next(1, 400, json=graph_error_body("BadRequest", f"bad token {token}"))
        try:
            api.get_json(dana_path(graph))
        except ConnectorError as exc:
            errors.append(exc)
        texts = [repr(api), repr(api.options), repr(api._credentials)]
    wrong = "Wr0ng~" + CLIENT_SECRET
    with client(server, sleeps=sleeps, cache=TokenCache(), secret=wrong) as api:
        try:
            api.get_json(dana_path(graph))
        except ConnectorError as exc:
            errors.append(exc)

    assert len(errors) == 3
    assert "[redacted]" in errors[1].message
    assert len(caplog.records) > 3  # the client did log: requests, retry, new tokens
    texts += [record.getMessage() for record in caplog.records]
    texts += [str(record.args) for record in caplog.records]
    for error in errors:
        texts += [str(error), repr(error), *traceback.format_exception(error)]
    secrets = [CLIENT_SECRET, wrong, *graph.entra.issued]
    leaks = [(secret, text) for text in texts for secret in secrets if secret in text]
    assert leaks == []
    assert not any("Bearer " in text or "authorization:" in text.lower() for text in texts)
