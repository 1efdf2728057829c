"""Authentication, request ids, the error envelope and body parsing."""

from __future__ import annotations

import httpx
import pytest

from batchpay.sandbox import Sandbox

from .helpers import error_code, individual, post

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("authorization", "status", "code", "message"),
    [
        (None, 401, "unauthorized", "missing Authorization header"),
        (
            "Token ak_test_batchpay_sandbox",
            401,
            "unauthorized",
            "invalid Authorization header format",
        ),
        ("Bearer", 401, "unauthorized", "invalid Authorization header format"),
        ("Bearer sk_test_123", 401, "invalid_api_key", "invalid API key format"),
        ("Bearer ak_test_unknown", 401, "invalid_api_key", "invalid API key"),
        ("Bearer ak_live_abc", 403, "key_environment_mismatch", None),
    ],
)
async def test_auth_refusals_use_catalog_codes(
    sandbox: Sandbox, authorization: str | None, status: int, code: str, message: str | None
) -> None:
    """Missing, malformed, unknown and live keys get the catalog's 401/403 answers."""
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx.AsyncClient(transport=sandbox.transport(), base_url="http://sb") as raw:
        response = await raw.get("/v1/balances", headers=headers)
    assert response.status_code == status
    assert error_code(response) == code
    if message:
        assert response.json()["error"]["message"] == message
    assert response.headers["x-request-id"]


async def test_valid_key_is_accepted_and_extra_keys_can_be_added(sandbox: Sandbox) -> None:
    """The default key works, and a key added at run time is accepted too."""
    async with sandbox.client() as c:
        assert (await c.get("/v1/balances")).status_code == 200
    sandbox.add_api_key("ak_test_second")
    async with sandbox.client(api_key="ak_test_second") as c:
        assert (await c.get("/v1/balances")).status_code == 200


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    """X-Request-ID echoes the caller's value, or is generated when none is sent."""
    echoed = await client.get("/v1/balances", headers={"X-Request-ID": "my-req-42"})
    assert echoed.headers["x-request-id"] == "my-req-42"
    first = await client.get("/v1/balances")
    second = await client.get("/v1/balances")
    assert first.headers["x-request-id"].startswith("req_")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_errors_carry_request_id_too(client: httpx.AsyncClient) -> None:
    """Error answers carry X-Request-ID like any other."""
    response = await client.get("/v1/payouts/pay_missing", headers={"X-Request-ID": "abc"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "abc"
    assert response.json() == {"error": {"code": "payout_not_found", "message": "payout not found"}}


async def test_unknown_route_and_method_use_the_envelope(client: httpx.AsyncClient) -> None:
    """Unknown endpoints and methods answer with the JSON envelope, not plain text."""
    missing = await client.get("/v1/nothing-here")
    assert missing.status_code == 404 and error_code(missing) == "not_found"
    wrong = await client.delete("/v1/payouts")
    assert wrong.status_code == 405 and error_code(wrong) == "method_not_allowed"


async def test_malformed_json_is_invalid_request_body(client: httpx.AsyncClient) -> None:
    """A body that is not JSON answers 400 invalid_request_body."""
    response = await client.post(
        "/v1/beneficiaries",
        content=b"{not json",
        headers={"Idempotency-Key": "k1", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert error_code(response) == "invalid_request_body"


async def test_wrong_content_type_is_invalid_request_body(client: httpx.AsyncClient) -> None:
    """A form-encoded body answers 400 invalid_request_body."""
    response = await client.post(
        "/v1/beneficiaries", data={"type": "individual"}, headers={"Idempotency-Key": "k2"}
    )
    assert response.status_code == 400
    assert error_code(response) == "invalid_request_body"


async def test_unknown_fields_are_refused_with_their_path(client: httpx.AsyncClient) -> None:
    """Unknown fields, nested ones included, answer 400 invalid_request_body naming them."""
    body = individual(nickname="JJ")
    body["individual"]["address"]["planet"] = "Earth"
    response = await post(client, "/v1/beneficiaries", body)
    assert response.status_code == 400
    assert error_code(response) == "invalid_request_body"
    assert "nickname" in response.json()["error"]["message"]


async def test_handler_crash_is_internal_error(
    sandbox: Sandbox, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected failure answers 500 internal_error with the fixed message."""

    def boom() -> list[dict[str, str]]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(sandbox._rt.bank, "list_balances", boom)
    response = await client.get("/v1/balances")
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "internal server error"}
    }
    assert response.headers["x-request-id"]


async def test_admin_routes_need_no_key(sandbox: Sandbox) -> None:
    """The /_sandbox admin surface answers without credentials."""
    async with httpx.AsyncClient(transport=sandbox.transport(), base_url="http://sb") as raw:
        response = await raw.get("/_sandbox/health")
    assert response.status_code == 200
    assert response.json()["ok"] is True
    assert "x-ratelimit-limit" not in response.headers
