"""Error mapping and retries: what the catalog says is safe is retried with the same request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from batchpay.client import CallRecord, RetryPolicy
from batchpay.errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    ConflictError,
    IdempotencyConflictError,
    IdempotencyInFlightError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    TransportError,
    UnprocessableError,
)

from .helpers import SleepRecorder, error_response, make_client

pytestmark = pytest.mark.anyio

BODY = {"beneficiary_id": "ben_1", "source_amount": "500.00", "reference": "INV-1"}
KEY = "payout-INV-1-ben_1"


class Script:
    """A MockTransport handler answering from a list; records every request it sees."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers: Iterator[httpx.Response | Exception] = iter(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = next(self.answers)
        if isinstance(answer, Exception):
            raise answer
        return answer


CREATED = httpx.Response(201, json={"id": "pay_1", "status": "created"})

# (status, code, exception class, retried?) — the catalog's status reference and retry table.
CATALOG = [
    (400, "missing_idempotency_key", InvalidRequestError, False),
    (400, "invalid_limit", InvalidRequestError, False),
    (401, "unauthorized", AuthenticationError, False),
    (401, "invalid_api_key", AuthenticationError, False),
    (403, "key_environment_mismatch", PermissionDeniedError, False),
    (403, "insufficient_permissions", PermissionDeniedError, False),
    (403, "velocity_blocked", PermissionDeniedError, False),
    (404, "beneficiary_not_found", NotFoundError, False),
    (409, "idempotency_conflict", IdempotencyConflictError, False),
    (409, "payout_not_cancellable", ConflictError, False),
    (409, "idempotency_in_flight", IdempotencyInFlightError, True),
    (410, "deprecated_endpoint", ApiError, False),
    (413, "file_too_large", ApiError, False),
    (422, "validation_error", UnprocessableError, False),
    (422, "insufficient_balance", UnprocessableError, False),
    (422, "duplicate_beneficiary", UnprocessableError, False),
    (429, "rate_limit_exceeded", RateLimitedError, True),
    (500, "internal_error", ServerError, True),
    (502, "fx_rates_unavailable", ServerError, True),
    (503, "idempotency_unavailable", ServerError, True),
    (504, "timeout", ServerError, True),
]


@pytest.mark.parametrize(("status", "code", "cls", "retried"), CATALOG)
async def test_catalog_error_maps_and_retries_as_documented(
    status: int, code: str, cls: type[ApiError], retried: bool
) -> None:
    """Each catalog status/code raises its error class with status, code and request id;
    only the retryable ones are sent again."""
    answer = error_response(status, code, headers={"X-Request-ID": "req_123"})
    script = Script(answer, answer, answer)
    async with make_client(script, retry=RetryPolicy.no_wait(max_attempts=3)) as client:
        with pytest.raises(cls) as info:
            await client.create_payout(BODY, KEY)
    error = info.value
    assert type(error) is cls
    assert (error.status, error.code, error.request_id) == (status, code, "req_123")
    assert len(script.requests) == (3 if retried else 1)


@pytest.mark.parametrize(
    ("status", "cls"), [(502, ServerError), (400, InvalidRequestError), (404, NotFoundError)]
)
async def test_non_json_error_body_still_maps(status: int, cls: type[ApiError]) -> None:
    """An HTML error page from a proxy maps by status, with the text kept as the body."""
    page = httpx.Response(status, text="<html>Bad Gateway</html>")
    async with make_client(Script(page), retry=RetryPolicy.never()) as client:
        with pytest.raises(cls) as info:
            await client.get_payout("pay_1")
    assert info.value.code == f"http_{status}"
    assert info.value.body == "<html>Bad Gateway</html>"
    assert info.value.request_id is not None  # our own X-Request-ID


async def test_retries_resend_the_same_key_and_identical_body_bytes() -> None:
    """5xx, 429, network errors and in-flight answers are retried with the same key and bytes."""
    script = Script(
        error_response(500, "internal_error"),
        httpx.ConnectError("connection refused"),
        error_response(429, "rate_limit_exceeded", headers={"Retry-After": "1"}),
        httpx.ReadError("connection reset by peer"),
        error_response(409, "idempotency_in_flight"),
        error_response(503, "idempotency_unavailable"),
        httpx.RemoteProtocolError("server disconnected"),
        httpx.Response(201, json={"id": "pay_1"}, headers={"X-Idempotent-Replayed": "true"}),
    )
    records: list[CallRecord] = []
    client = make_client(script, retry=RetryPolicy.no_wait(max_attempts=8), records=records)
    async with client:
        result = await client.create_payout(BODY, KEY)
    assert result.data == {"id": "pay_1"}
    assert result.replayed is True and result.attempts == 8
    assert len(script.requests) == 8
    assert {r.headers["Idempotency-Key"] for r in script.requests} == {KEY}
    assert len({r.content for r in script.requests}) == 1
    assert len({r.headers["X-Request-ID"] for r in script.requests}) == 8
    assert [r.error_code for r in records] == [
        "internal_error",
        "transport_error",
        "rate_limit_exceeded",
        "transport_error",
        "idempotency_in_flight",
        "idempotency_unavailable",
        "transport_error",
        None,
    ]
    assert [r.will_retry for r in records] == [True] * 7 + [False]


async def test_exhausted_retries_raise_the_last_error() -> None:
    """When attempts run out the caller gets the last error, after exactly max_attempts tries."""
    script = Script(
        error_response(500, "internal_error"),
        error_response(502, "bad_gateway"),
        error_response(503, "service_unavailable", headers={"X-Request-ID": "req_last"}),
    )
    async with make_client(script, retry=RetryPolicy.no_wait(max_attempts=3)) as client:
        with pytest.raises(ServerError) as info:
            await client.create_payout(BODY, KEY)
    assert (info.value.status, info.value.request_id) == (503, "req_last")
    assert len(script.requests) == 3


async def test_401_stops_immediately() -> None:
    """A refused credential is never looped on, whatever the attempt budget."""
    script = Script(*[error_response(401, "invalid_api_key")] * 5)
    async with make_client(script, retry=RetryPolicy.no_wait(max_attempts=5)) as client:
        with pytest.raises(AuthenticationError):
            await client.list_balances()
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.WriteTimeout("write timed out"),
        httpx.PoolTimeout("pool timed out"),
    ],
)
async def test_timeouts_raise_transport_error_with_timeout_flag(exc: Exception) -> None:
    """Every kind of timeout surfaces as TransportError(timeout=True), after the retries."""
    records: list[CallRecord] = []
    script = Script(exc, exc)
    client = make_client(script, retry=RetryPolicy.no_wait(max_attempts=2), records=records)
    async with client:
        with pytest.raises(TransportError) as info:
            await client.create_payout(BODY, KEY)
    assert info.value.timeout is True
    assert info.value.request_id == script.requests[-1].headers["X-Request-ID"]
    assert not isinstance(info.value, ApiError)
    assert [r.error_code for r in records] == ["timeout", "timeout"]
    assert all(r.status is None for r in records)


async def test_read_error_on_post_says_outcome_unknown() -> None:
    """A connection lost after sending a payout is reported as an unknown outcome."""
    script = Script(httpx.ReadError("reset"))
    async with make_client(script, retry=RetryPolicy.never()) as client:
        with pytest.raises(TransportError, match="outcome unknown") as info:
            await client.create_payout(BODY, KEY)
    assert info.value.timeout is False and info.value.sent is None
    assert isinstance(info.value.__cause__, httpx.ReadError)  # kept for --debug


async def test_real_timeout_from_transport_maps_to_transport_error() -> None:
    """A handler slower than the client's timeout raises TransportError(timeout=True)."""

    class Slow(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            timeout = request.extensions["timeout"]["read"]
            try:
                await asyncio.wait_for(asyncio.sleep(1), timeout)
            except TimeoutError as exc:
                raise httpx.ReadTimeout("timed out", request=request) from exc
            return httpx.Response(200, json={})

    from batchpay.client import AntonClient, ApiKey, RateLimiter

    client = AntonClient(
        "https://api.anton.test",
        ApiKey("ak_test_0000000000000000"),
        transport=Slow(),
        timeout=0.01,
        retry=RetryPolicy.never(),
        rate_limiter=RateLimiter.unlimited(),
    )
    async with client:
        with pytest.raises(TransportError) as info:
            await client.get_payout("pay_1")
    assert info.value.timeout is True


async def test_unreadable_success_body_is_retried_as_unknown_outcome() -> None:
    """A 2xx whose body is not JSON is not trusted: retried with the same key, then read."""
    script = Script(httpx.Response(201, text="<html>ok</html>"), CREATED)
    records: list[CallRecord] = []
    async with make_client(script, records=records) as client:
        result = await client.create_payout(BODY, KEY)
    assert result.data["id"] == "pay_1" and result.attempts == 2
    assert records[0].error_code == "invalid_response" and records[0].status == 201


async def test_post_without_key_is_not_repeated_after_an_ambiguous_failure() -> None:
    """Without an idempotency key, a 5xx or a lost answer is not retried (it might duplicate)."""
    script = Script(error_response(503, "service_unavailable"), CREATED)
    async with make_client(script) as client:
        with pytest.raises(ServerError):
            await client.request("POST", "/v1/payouts", json=BODY)
    assert len(script.requests) == 1


async def test_post_without_key_is_repeated_when_never_sent() -> None:
    """Without a key, a refused connection or a 429 (provably not processed) is still retried."""
    script = Script(
        httpx.ConnectError("refused"),
        error_response(429, "rate_limit_exceeded"),
        CREATED,
    )
    async with make_client(script) as client:
        result = await client.request("POST", "/v1/payouts", json=BODY)
    assert result.status == 201 and len(script.requests) == 3


async def test_unsupported_url_scheme_is_a_config_error_not_retried() -> None:
    """A non-http(s) base URL is a configuration error, raised once."""
    script = Script(httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'"))
    async with make_client(script) as client:
        with pytest.raises(ConfigError):
            await client.get_payout("pay_1")
    assert len(script.requests) == 1


# -- waits ---------------------------------------------------------------------


def _policy(sleep: SleepRecorder, **kwargs: Any) -> RetryPolicy:
    return RetryPolicy(sleep=sleep, **kwargs)


async def test_retry_after_is_honoured() -> None:
    """After a 429 with Retry-After: 7 the client waits at least 7 seconds before retrying."""
    sleep = SleepRecorder()
    script = Script(
        error_response(429, "rate_limit_exceeded", headers={"Retry-After": "7"}), CREATED
    )
    async with make_client(script, retry=_policy(sleep, base_delay=0.5)) as client:
        await client.create_payout(BODY, KEY)
    assert len(sleep.waits) == 1
    assert 7.0 <= sleep.waits[0] <= 7.5


async def test_retry_after_on_503_is_honoured_too() -> None:
    """A Retry-After on a 5xx answer also sets the minimum wait."""
    sleep = SleepRecorder()
    script = Script(
        error_response(503, "service_unavailable", headers={"Retry-After": "3"}), CREATED
    )
    async with make_client(script, retry=_policy(sleep, jitter=0.0)) as client:
        await client.create_payout(BODY, KEY)
    assert sleep.waits == [3.0]


async def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    """Without Retry-After the waits double from base_delay and stop at max_delay."""
    sleep = SleepRecorder()
    script = Script(*[error_response(500, "internal_error")] * 5, CREATED)
    policy = _policy(sleep, max_attempts=6, base_delay=0.5, max_delay=3.0, jitter=0.0)
    async with make_client(script, retry=policy) as client:
        await client.create_payout(BODY, KEY)
    assert sleep.waits == [0.5, 1.0, 2.0, 3.0, 3.0]


async def test_jitter_spreads_waits_below_the_nominal_delay() -> None:
    """With jitter each wait lies in [delay × (1 − jitter), delay], and they differ."""
    sleep = SleepRecorder()
    script = Script(*[error_response(500, "internal_error")] * 20, CREATED)
    policy = _policy(sleep, max_attempts=21, base_delay=1.0, max_delay=1.0, jitter=0.5)
    async with make_client(script, retry=policy) as client:
        await client.create_payout(BODY, KEY)
    assert all(0.5 <= w <= 1.0 for w in sleep.waits)
    assert len(set(sleep.waits)) > 1


async def test_retry_after_beyond_the_limit_is_not_waited_for() -> None:
    """A Retry-After longer than max_retry_after raises at once instead of stalling the run."""
    sleep = SleepRecorder()
    script = Script(error_response(429, "rate_limit_exceeded", headers={"Retry-After": "3600"}))
    async with make_client(script, retry=_policy(sleep, max_retry_after=120)) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.create_payout(BODY, KEY)
    assert info.value.retry_after == 3600.0
    assert sleep.waits == []


async def test_testing_mode_turns_default_backoff_off(testing_mode: None) -> None:
    """Under set_testing(True) the default policy retries without sleeping."""
    script = Script(*[error_response(503, "service_unavailable")] * 3, CREATED)
    started = time.perf_counter()
    async with make_client(script, retry=RetryPolicy(max_attempts=4, base_delay=5.0)) as client:
        result = await client.create_payout(BODY, KEY)
    assert result.attempts == 4
    assert time.perf_counter() - started < 2.0


def test_policy_rejects_nonsense() -> None:
    """A policy with no attempts or jitter outside [0, 1] is refused at construction."""
    bad: list[Callable[[], RetryPolicy]] = [
        lambda: RetryPolicy(max_attempts=0),
        lambda: RetryPolicy(jitter=1.5),
        lambda: RetryPolicy(base_delay=-1),
    ]
    for make in bad:
        with pytest.raises(ValueError):
            make()
