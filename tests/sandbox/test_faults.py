"""Faults: per-request header, per-route plans, seeded whole-server rates, admin control."""

from __future__ import annotations

import time

import httpx
import pytest

from batchpay.sandbox import FaultSettings, Sandbox, SandboxConfig

from .helpers import error_code, payout, post

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("500", 500, "internal_error"),
        ("502", 502, "internal_error"),
        ("503", 503, "internal_error"),
        ("504", 504, "timeout"),
    ],
)
async def test_status_faults_change_nothing(
    sandbox: Sandbox,
    client: httpx.AsyncClient,
    payee: tuple[str, str],
    fault: str,
    status: int,
    code: str,
) -> None:
    """A forced 5xx answers with the envelope and creates nothing; the same key then works."""
    body = payout(*payee)
    faulted = await post(client, "/v1/payouts", body, key="k", headers={"X-Sandbox-Fault": fault})
    assert faulted.status_code == status and error_code(faulted) == code
    assert faulted.json()["error"]["message"] == "internal server error"
    assert sandbox.ledger() == []
    ok = await post(client, "/v1/payouts", body, key="k")
    assert ok.status_code == 201 and "x-idempotent-replayed" not in ok.headers


async def test_forced_429_has_retry_after(client: httpx.AsyncClient) -> None:
    """A forced 429 looks like the real limiter: Retry-After and Remaining 0."""
    response = await client.get("/v1/balances", headers={"X-Sandbox-Fault": "429"})
    assert response.status_code == 429 and error_code(response) == "rate_limit_exceeded"
    assert response.headers["retry-after"] == "1"
    assert response.headers["x-ratelimit-remaining"] == "0"


async def test_lost_response_commits_then_raises_read_error(
    sandbox: Sandbox, client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """lost_response: the payout exists, the client sees ReadError, a same-key retry replays."""
    body = payout(*payee)
    with pytest.raises(httpx.ReadError):
        await post(
            client, "/v1/payouts", body, key="lost", headers={"X-Sandbox-Fault": "lost_response"}
        )
    assert len(sandbox.ledger()) == 1
    retry = await post(client, "/v1/payouts", body, key="lost")
    assert retry.status_code == 201 and retry.headers["x-idempotent-replayed"] == "true"
    assert retry.json()["id"] == sandbox.ledger()[0]["id"]
    naive = await post(client, "/v1/payouts", body, key="a-new-key")
    assert naive.status_code == 201
    assert len(sandbox.ledger()) == 2  # a new key pays twice: the bug this fault catches


async def test_timeout_commits_then_raises_read_timeout(
    sandbox: Sandbox, client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """timeout in process: ReadTimeout at once (no real wait), after the payout committed."""
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        await post(client, "/v1/payouts", payout(*payee), headers={"X-Sandbox-Fault": "timeout"})
    assert time.monotonic() - started < 1
    assert len(sandbox.ledger()) == 1


async def test_latency_delays_the_answer(client: httpx.AsyncClient) -> None:
    """latency=<ms> holds the answer that long."""
    started = time.monotonic()
    response = await client.get("/v1/balances", headers={"X-Sandbox-Fault": "latency=120"})
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.12


async def test_unknown_fault_header_is_refused(client: httpx.AsyncClient) -> None:
    """A misspelt X-Sandbox-Fault is a 400, not silently ignored."""
    response = await client.get("/v1/balances", headers={"X-Sandbox-Fault": "explode"})
    assert response.status_code == 400 and error_code(response) == "invalid_sandbox_fault"


async def test_plan_applies_in_order_to_matching_route(
    sandbox: Sandbox, client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """A per-route plan hits the next matching requests in order; other routes are untouched."""
    sandbox.faults.plan("POST /v1/payouts", ["lost_response", None, "503"])
    assert (await client.get("/v1/balances")).status_code == 200
    with pytest.raises(httpx.ReadError):
        await post(client, "/v1/payouts", payout(*payee))
    assert (await post(client, "/v1/payouts", payout(*payee))).status_code == 201
    assert (await post(client, "/v1/payouts", payout(*payee))).status_code == 503
    assert (await post(client, "/v1/payouts", payout(*payee))).status_code == 201
    assert len(sandbox.ledger()) == 3
    assert sandbox.faults.pending() == {}


async def test_plan_matches_route_templates(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    """Plans name route templates, so /v1/payouts/{id} matches any payout id."""
    sandbox.faults.plan("GET /v1/payouts/{id}", ["502"])
    assert (await client.get("/v1/payouts/pay_abc")).status_code == 502
    assert (await client.get("/v1/payouts/pay_abc")).status_code == 404


async def test_seeded_rates_are_reproducible() -> None:
    """Whole-server rates with a seed give the same fault sequence every run."""

    async def statuses() -> list[int]:
        config = SandboxConfig(manual_clock=True, faults=FaultSettings(rate_5xx=0.3, seed=7))
        async with Sandbox(config) as sb, sb.client() as client:
            return [(await client.get("/v1/balances")).status_code for _ in range(40)]

    first, second = await statuses(), await statuses()
    assert first == second
    assert {s for s in first if s != 200} <= {500, 502, 503, 504}
    assert 4 <= sum(s != 200 for s in first) <= 20


async def test_admin_routes_are_never_faulted(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    """With every request failing, /_sandbox routes still answer and can switch faults off."""
    sandbox.faults.set(rate_5xx=1.0)
    assert (await client.get("/v1/balances")).status_code >= 500
    assert (await client.get("/_sandbox/ledger")).status_code == 200
    cleared = await client.delete("/_sandbox/faults")
    assert cleared.json()["rate_5xx"] == 0.0
    assert (await client.get("/v1/balances")).status_code == 200


async def test_admin_faults_route_sets_rates_and_plans(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    """POST /_sandbox/faults sets rates and plans; bad input is a 400."""
    response = await client.post(
        "/_sandbox/faults", json={"latency_ms": 1, "plan": {"GET /v1/balances": ["504"]}}
    )
    assert response.json()["latency_ms"] == 1
    assert response.json()["plan"] == {"GET /v1/balances": ["504"]}
    assert (await client.get("/v1/balances")).status_code == 504
    bad = await client.post("/_sandbox/faults", json={"rate_5xx": 2})
    assert bad.status_code == 400
    assert sandbox.faults.settings.rate_5xx == 0.0
