"""The rolling 60-second rate limit and its headers."""

from __future__ import annotations

import httpx
import pytest

from batchpay.sandbox import Sandbox, SandboxConfig

from .helpers import error_code

pytestmark = pytest.mark.anyio


async def test_headers_on_every_response(client: httpx.AsyncClient) -> None:
    """Success and error answers both carry X-RateLimit-Limit/Remaining/Reset."""
    ok = await client.get("/v1/balances")
    missing = await client.get("/v1/payouts/pay_nope")
    for response in (ok, missing):
        assert response.headers["x-ratelimit-limit"] == "1000"
        assert int(response.headers["x-ratelimit-reset"]) > 0
    assert int(ok.headers["x-ratelimit-remaining"]) == 999
    assert int(missing.headers["x-ratelimit-remaining"]) == 998


async def test_limit_then_429_then_window_rolls(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    """Past the ceiling: 429 rate_limit_exceeded with Retry-After; 60 s later it is lifted."""
    sandbox.set_rate_limit(3)
    for _ in range(3):
        assert (await client.get("/v1/balances")).status_code == 200
    refused = await client.get("/v1/balances")
    assert refused.status_code == 429
    assert error_code(refused) == "rate_limit_exceeded"
    assert refused.headers["retry-after"] == "60"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    await sandbox.advance(30)
    assert (await client.get("/v1/balances")).status_code == 429
    await sandbox.advance(30)
    assert (await client.get("/v1/balances")).status_code == 200


async def test_window_is_rolling_not_fixed(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    """Requests free up one by one as each leaves the 60-second window."""
    sandbox.set_rate_limit(2)
    await client.get("/v1/balances")
    await sandbox.advance(40)
    await client.get("/v1/balances")
    refused = await client.get("/v1/balances")
    assert refused.headers["retry-after"] == "20"
    await sandbox.advance(20)
    assert (await client.get("/v1/balances")).status_code == 200
    assert (await client.get("/v1/balances")).status_code == 429


async def test_tier_multiplier_and_off(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    """The tier multiplier scales the ceiling; None turns limiting (and its headers) off."""
    sandbox.set_rate_limit(1000, multiplier=5)
    assert (await client.get("/v1/balances")).headers["x-ratelimit-limit"] == "5000"
    sandbox.set_rate_limit(None)
    response = await client.get("/v1/balances")
    assert response.status_code == 200 and "x-ratelimit-limit" not in response.headers
    with pytest.raises(ValueError):
        sandbox.set_rate_limit(1000, multiplier=3)


async def test_admin_route_sets_limit_and_is_never_limited(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    """POST /_sandbox/rate-limit changes the ceiling; admin calls never count or get refused."""
    set_limit = await client.post("/_sandbox/rate-limit", json={"per_minute": 1})
    assert set_limit.json() == {"limit_per_minute": 1}
    await client.get("/v1/balances")
    assert (await client.get("/v1/balances")).status_code == 429
    for _ in range(5):
        assert (await client.get("/_sandbox/ledger")).status_code == 200


async def test_config_sets_initial_limit() -> None:
    """SandboxConfig.rate_limit_per_minute and multiplier set the starting ceiling."""
    async with (
        Sandbox(
            SandboxConfig(manual_clock=True, rate_limit_per_minute=100, rate_limit_multiplier=2)
        ) as sb,
        sb.client() as client,
    ):
        response = await client.get("/v1/balances")
    assert response.headers["x-ratelimit-limit"] == "200"
