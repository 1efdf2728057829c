"""The API client's requests and answers: envelopes, endpoints, headers, records, secrets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest

import batchpay.client
from batchpay.client import AntonClient, ApiKey, ApiResult, CallRecord, RateLimiter, RetryPolicy
from batchpay.errors import ApiError, ConfigError, NotFoundError, ServerError, TransportError

from .helpers import BASE_URL, SECRET, error_response, make_client

pytestmark = pytest.mark.anyio

PAYOUT = {"id": "pay_1", "status": "created", "source_amount": "500.00"}


# -- envelopes -----------------------------------------------------------------


@pytest.mark.parametrize("body", [PAYOUT, {"data": PAYOUT}], ids=["bare", "wrapped"])
async def test_single_resource_is_unwrapped_from_either_envelope(body: dict[str, Any]) -> None:
    """A resource reads the same whether it comes bare or inside {"data": ...}."""
    async with make_client(lambda r: httpx.Response(200, json=body)) as client:
        assert await client.get_payout("pay_1") == PAYOUT


async def test_resource_with_its_own_data_field_is_not_unwrapped() -> None:
    """An object with an id keeps its own ``data`` field (e.g. an event): it is not unwrapped."""
    event = {"id": "evt_1", "type": "payout.completed", "data": {"id": "pay_1"}}
    async with make_client(lambda r: httpx.Response(200, json=event)) as client:
        result = await client.request("GET", "/v1/webhooks/events/evt_1")
    assert result.data == event


@pytest.mark.parametrize(
    "body",
    [
        {"data": [{"currency": "USD"}, {"currency": "EUR"}]},
        [{"currency": "USD"}, {"currency": "EUR"}],
    ],
    ids=["envelope", "bare-list"],
)
async def test_list_is_unwrapped_from_envelope_or_bare_array(body: Any) -> None:
    """list_balances returns the items whether the list is wrapped or a bare array."""
    async with make_client(lambda r: httpx.Response(200, json=body)) as client:
        balances = await client.list_balances()
    assert [b["currency"] for b in balances] == ["USD", "EUR"]


async def test_numbers_with_fractions_decode_as_decimal() -> None:
    """A fractional number in an answer becomes a Decimal with its exact digits, never a float."""
    async with make_client(lambda r: httpx.Response(200, json={"fx_rate": 1.1})) as client:
        result = await client.request("GET", "/v1/fx/rate")
    # json=... above serialised 1.1; the client must not round-trip it through float.
    assert result.data["fx_rate"] == Decimal("1.1")
    assert isinstance(result.data["fx_rate"], Decimal)


async def test_list_of_non_objects_is_refused() -> None:
    """A list endpoint answering something other than objects raises instead of passing junk on."""
    async with make_client(lambda r: httpx.Response(200, json={"data": "nope"})) as client:
        with pytest.raises(ApiError) as info:
            await client.list_webhooks()
    assert info.value.code == "invalid_response"


# -- pagination ----------------------------------------------------------------


def _paged(pages: dict[str | None, dict[str, Any]], seen: list[httpx.Request]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=pages[request.url.params.get("cursor")])

    return handler


async def test_iter_payouts_follows_next_cursor_until_has_more_is_false() -> None:
    """Pages are followed by next_cursor with limit=100, and a full last page still ends it."""
    pages = {
        None: {"data": [{"id": "pay_1"}, {"id": "pay_2"}], "has_more": True, "next_cursor": "c1"},
        "c1": {"data": [{"id": "pay_3"}], "has_more": True, "next_cursor": "c2"},
        "c2": {"data": [{"id": "pay_4"}, {"id": "pay_5"}], "has_more": False},
    }
    seen: list[httpx.Request] = []
    async with make_client(_paged(pages, seen)) as client:
        ids = [p["id"] async for p in client.iter_payouts(reference="INV-1", status="failed")]
    assert ids == ["pay_1", "pay_2", "pay_3", "pay_4", "pay_5"]
    assert [r.url.params.get("cursor") for r in seen] == [None, "c1", "c2"]
    assert all(r.url.params["limit"] == "100" for r in seen)
    assert all(r.url.params["reference"] == "INV-1" for r in seen)
    assert all(r.url.params.get_list("status") == ["failed"] for r in seen)


async def test_iter_payouts_sends_filters_and_repeats_status() -> None:
    """Statuses repeat the parameter, datetimes go out as RFC 3339 UTC, extra filters pass."""
    seen: list[httpx.Request] = []
    pages: dict[str | None, dict[str, Any]] = {None: {"data": [], "has_more": False}}
    after = datetime(2026, 4, 15, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    async with make_client(_paged(pages, seen)) as client:
        found = [
            p
            async for p in client.iter_payouts(
                status=["completed", "failed"],
                batch_id="bat_1",
                created_after=after,
                dest_currency="EUR",
            )
        ]
    assert found == []
    params = seen[0].url.params
    assert params.get_list("status") == ["completed", "failed"]
    assert params["batch_id"] == "bat_1"
    assert params["created_after"] == "2026-04-15T10:00:00Z"
    assert params["dest_currency"] == "EUR"
    assert "reference" not in params


async def test_naive_datetime_filter_is_refused() -> None:
    """A timezone-less datetime filter is a bug, refused before anything is sent."""
    async with make_client(lambda r: httpx.Response(200, json={"data": []})) as client:
        with pytest.raises(ValueError, match="timezone"):
            async for _ in client.iter_payouts(created_before=datetime(2026, 1, 1)):
                pass


async def test_has_more_without_cursor_raises_instead_of_looping() -> None:
    """has_more with no next_cursor is an error, not an endless loop or a silent end."""
    pages: dict[str | None, dict[str, Any]] = {None: {"data": [{"id": "ben_1"}], "has_more": True}}
    async with make_client(_paged(pages, [])) as client:
        with pytest.raises(ApiError) as info:
            _ = [b async for b in client.iter_beneficiaries(status="active")]
    assert info.value.code == "invalid_pagination"


async def test_repeated_cursor_raises() -> None:
    """A server handing back a cursor it already gave stops the iteration with an error."""
    pages = {
        None: {"data": [{"id": "ins_1"}], "has_more": True, "next_cursor": "c1"},
        "c1": {"data": [{"id": "ins_2"}], "has_more": True, "next_cursor": "c1"},
    }
    async with make_client(_paged(pages, [])) as client:
        with pytest.raises(ApiError, match="next_cursor"):
            await client.list_instruments("ben_1")


async def test_list_instruments_collects_all_pages_of_one_beneficiary() -> None:
    """list_instruments reads every page of /v1/beneficiaries/{id}/instruments."""
    seen: list[httpx.Request] = []
    pages = {
        None: {"data": [{"id": "ins_1"}], "has_more": True, "next_cursor": "n"},
        "n": {"data": [{"id": "ins_2"}], "has_more": False},
    }
    async with make_client(_paged(pages, seen)) as client:
        instruments = await client.list_instruments("ben_7")
    assert [i["id"] for i in instruments] == ["ins_1", "ins_2"]
    assert {r.url.path for r in seen} == {"/v1/beneficiaries/ben_7/instruments"}


# -- endpoints, headers, results ---------------------------------------------------


async def test_every_method_hits_its_documented_endpoint() -> None:
    """Each client method sends the documented HTTP method and path."""
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        if request.method == "GET" and request.url.path.endswith(
            ("/v1/balances", "/events", "/v1/webhooks", "/instruments", "/v1/beneficiaries")
        ):
            return httpx.Response(200, json={"data": [], "has_more": False})
        return httpx.Response(200, json={"id": "x"})

    async with make_client(handler) as client:
        await client.list_balances()
        await client.get_balance("USD")
        await client.create_beneficiary({"type": "individual"}, "k1")
        await client.get_beneficiary("ben_1")
        _ = [b async for b in client.iter_beneficiaries()]
        await client.create_instrument("ben_1", {"method": "iban"}, "k2")
        await client.list_instruments("ben_1")
        await client.get_instrument("ins_1")
        await client.create_payout({"reference": "r"}, "k3")
        await client.get_payout("pay_1")
        await client.cancel_payout("pay_1", "k4", reason="wrong account")
        await client.list_payout_events("pay_1")
        await client.create_webhook("https://example.com/hook", ["payout.completed"], "k5")
        await client.list_webhooks()
    assert seen == [
        ("GET", "/v1/balances"),
        ("GET", "/v1/balances/USD"),
        ("POST", "/v1/beneficiaries"),
        ("GET", "/v1/beneficiaries/ben_1"),
        ("GET", "/v1/beneficiaries"),
        ("POST", "/v1/beneficiaries/ben_1/instruments"),
        ("GET", "/v1/beneficiaries/ben_1/instruments"),
        ("GET", "/v1/instruments/ins_1"),
        ("POST", "/v1/payouts"),
        ("GET", "/v1/payouts/pay_1"),
        ("POST", "/v1/payouts/pay_1/cancel"),
        ("GET", "/v1/payouts/pay_1/events"),
        ("POST", "/v1/webhooks"),
        ("GET", "/v1/webhooks"),
    ]


async def test_create_payout_sends_key_body_and_auth_headers() -> None:
    """A payout goes out with the caller's key, a JSON body, the bearer key and our request id."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"data": PAYOUT}, headers={"X-Request-ID": "req_srv"})

    body = {"reference": "INV-1", "source_amount": Decimal("500.00"), "tags": ("a", "b")}
    async with make_client(handler) as client:
        result = await client.create_payout(body, idempotency_key="payout-INV-1")
    request = seen[0]
    assert request.headers["Idempotency-Key"] == "payout-INV-1"
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Request-ID"].startswith("req_")
    assert request.headers["User-Agent"].startswith("batchpay/")
    assert json.loads(request.content) == {
        "reference": "INV-1",
        "source_amount": "500.00",
        "tags": ["a", "b"],
    }
    assert result == ApiResult(
        data=PAYOUT,
        status=201,
        request_id="req_srv",
        replayed=False,
        idempotency_key="payout-INV-1",
        attempts=1,
    )


async def test_replayed_header_is_reported() -> None:
    """X-Idempotent-Replayed: true shows up as ApiResult.replayed and in the call record."""
    records: list[CallRecord] = []
    headers = {"X-Idempotent-Replayed": "true"}
    handler = lambda r: httpx.Response(201, json=PAYOUT, headers=headers)  # noqa: E731
    async with make_client(handler, records=records) as client:
        result = await client.create_beneficiary({"type": "business"}, "ben-key")
    assert result.replayed is True
    assert records[0].replayed is True


async def test_request_id_falls_back_to_ours_when_server_sends_none() -> None:
    """Without an X-Request-ID answer the result carries the id we sent, so it still correlates."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=PAYOUT)

    async with make_client(handler) as client:
        result = await client.request("GET", "/v1/payouts/pay_1")
    assert result.request_id == seen[0].headers["X-Request-ID"]


async def test_cancel_payout_sends_reason() -> None:
    """cancel_payout posts the reason (or an empty object) with its idempotency key."""
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(200, json={"id": "pay_1", "status": "cancelled"})

    async with make_client(handler) as client:
        result = await client.cancel_payout("pay_1", "cancel-pay_1", reason="duplicate")
        await client.cancel_payout("pay_2", "cancel-pay_2")
    assert result.data["status"] == "cancelled"
    assert [json.loads(b) for b in bodies] == [{"reason": "duplicate"}, {}]


async def test_ids_are_quoted_into_one_path_segment() -> None:
    """An id with slashes or '?' cannot escape its path segment."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})

    async with make_client(handler) as client:
        with pytest.raises(NotFoundError):
            await client.get_payout("../balances?x=1")
    assert seen[0].url.raw_path == b"/v1/payouts/..%2Fbalances%3Fx%3D1"


@pytest.mark.parametrize("key", ["", "a" * 256, "has space", "naïve", "new\nline"])
async def test_bad_idempotency_keys_are_refused_before_sending(key: str) -> None:
    """A key that is empty, too long or not header-safe raises before any request leaves."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={})

    async with make_client(handler) as client:
        with pytest.raises(ValueError):
            await client.create_payout({"reference": "r"}, key)
    assert seen == []


async def test_float_in_body_is_refused() -> None:
    """A float anywhere in a request body is refused: money travels as decimal strings."""
    async with make_client(lambda r: httpx.Response(201, json={})) as client:
        with pytest.raises(TypeError, match="float"):
            await client.create_payout({"items": [{"amount": 10.5}]}, "k")


# -- call records --------------------------------------------------------------


async def test_every_attempt_is_recorded_with_its_outcome() -> None:
    """Each HTTP attempt, failed ones included, yields one CallRecord with attempt numbers."""
    answers = iter(
        [
            error_response(503, "service_unavailable", headers={"X-Request-ID": "r1"}),
            httpx.Response(201, json=PAYOUT, headers={"X-Request-ID": "r2"}),
        ]
    )
    records: list[CallRecord] = []
    async with make_client(lambda r: next(answers), records=records) as client:
        await client.create_payout({"reference": "INV-9"}, "key-9")
    assert [(r.attempt, r.status, r.error_code, r.request_id, r.will_retry) for r in records] == [
        (1, 503, "service_unavailable", "r1", True),
        (2, 201, None, "r2", False),
    ]
    assert all(r.method == "POST" and r.path == "/v1/payouts" for r in records)
    assert all(r.idempotency_key == "key-9" for r in records)
    assert all(r.duration_ms >= 0 and r.started_at.tzinfo is UTC for r in records)


async def test_record_path_has_no_query_string() -> None:
    """CallRecord.path is the path alone: filter values in the query are not recorded."""
    records: list[CallRecord] = []
    async with make_client(lambda r: httpx.Response(200, json={"data": []}), records=records) as c:
        _ = [p async for p in c.iter_payouts(reference="INV-secret-ish")]
    assert records[0].path == "/v1/payouts"
    assert "INV" not in repr(records[0])


async def test_record_as_dict_is_storable() -> None:
    """CallRecord.as_dict gives plain values with an ISO timestamp for the journal."""
    records: list[CallRecord] = []
    async with make_client(lambda r: httpx.Response(200, json=PAYOUT), records=records) as client:
        await client.get_payout("pay_1")
    row = records[0].as_dict()
    assert row["method"] == "GET" and row["status"] == 200 and row["attempt"] == 1
    assert datetime.fromisoformat(row["started_at"]) == records[0].started_at
    json.dumps(row)


async def test_on_call_exception_propagates() -> None:
    """A journal that cannot record a call stops the caller instead of being ignored."""

    def broken(_: CallRecord) -> None:
        raise RuntimeError("journal is gone")

    client = AntonClient(
        BASE_URL,
        ApiKey(SECRET),
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=PAYOUT)),
        on_call=broken,
    )
    async with client:
        with pytest.raises(RuntimeError, match="journal is gone"):
            await client.get_payout("pay_1")


# -- secrets -------------------------------------------------------------------


def test_api_key_repr_and_str_are_masked() -> None:
    """ApiKey shows only its prefix and last four characters."""
    key = ApiKey(SECRET)
    assert repr(key) == "ApiKey('ak_test_…f00d')"
    assert str(key) == repr(key)
    assert SECRET not in f"{key} {key!r} {key!s}"
    assert repr(ApiKey("ak_live_short")) == "ApiKey('ak_live_…')"


@pytest.mark.parametrize("secret", ["", "   ", "ak_test_abc def", "ak_test_\nx"])
def test_api_key_rejects_empty_or_spaced_keys(secret: str) -> None:
    """An empty key or one with whitespace is a configuration error, and the error hides it."""
    with pytest.raises(ConfigError) as info:
        ApiKey(secret)
    assert not secret.strip() or secret.strip() not in str(info.value)


async def test_secret_never_leaks_into_errors_records_or_reprs() -> None:
    """Even when the server echoes the key, it is absent from errors, records and reprs."""
    records: list[CallRecord] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("boom"):
            raise httpx.ConnectError(f"refused while sending {SECRET}", request=request)
        return httpx.Response(
            500,
            json={"error": {"code": "internal_error", "message": f"bad key {SECRET}"}},
        )

    client = make_client(handler, records=records, retry=RetryPolicy.no_wait(max_attempts=2))
    async with client:
        with pytest.raises(ServerError) as api_info:
            await client.get_payout("pay_1")
        with pytest.raises(TransportError) as net_info:
            await client.get_payout("boom")
        texts = [
            repr(client),
            str(api_info.value),
            repr(api_info.value),
            api_info.value.message,
            json.dumps(api_info.value.body),
            str(net_info.value),
            str(net_info.value.__cause__),
            *(repr(r) for r in records),
        ]
    assert len(records) == 4
    assert all(SECRET not in text for text in texts)
    assert "ak_test_…f00d" in api_info.value.message


def test_public_names_are_exactly_all() -> None:
    """__all__ is exactly what the package defines publicly plus its deliberate re-exports."""
    module = batchpay.client
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (getattr(value, "__module__", None) or "").startswith(module.__name__)
    }
    reexported = {"DEFAULT_USER_AGENT", "RateLimiter", "RetryPolicy", "set_testing"}
    assert set(module.__all__) == defined | reexported
    assert all(hasattr(module, name) for name in module.__all__)


async def test_client_closes_its_transport() -> None:
    """aclose closes the transport; the context manager calls it."""
    closed: list[bool] = []

    class Transport(httpx.MockTransport):
        async def aclose(self) -> None:
            closed.append(True)

    transport = Transport(lambda r: httpx.Response(200, json=PAYOUT))
    async with AntonClient(
        BASE_URL, ApiKey(SECRET), transport=transport, rate_limiter=RateLimiter.unlimited()
    ):
        pass
    assert closed == [True]
