"""The client against the in-process sandbox: the real contract, faults and all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from batchpay.client import AntonClient, ApiKey, CallRecord, RateLimiter, RetryPolicy
from batchpay.errors import (
    AuthenticationError,
    IdempotencyConflictError,
    NotFoundError,
    UnprocessableError,
)

from .helpers import FakeTime, loop_clock, run_virtual

sandbox_module = pytest.importorskip("batchpay.sandbox")
Sandbox = sandbox_module.Sandbox
SandboxConfig = sandbox_module.SandboxConfig

pytestmark = pytest.mark.anyio

BASE_URL = "http://sandbox.local"


def individual(ref: str) -> dict[str, Any]:
    """A valid individual beneficiary."""
    return {
        "type": "individual",
        "country": "GB",
        "external_ref": ref,
        "individual": {
            "first_name": "Jane",
            "last_name": f"Smith-{ref}",
            "email": f"{ref}@example.com",
            "phone": "+442079460000",
            "date_of_birth": "1988-05-12",
            "nationality": "GB",
            "address": {
                "street_line_1": "10 Example Street",
                "city": "London",
                "postal_code": "SW1A 1AA",
                "country": "GB",
            },
        },
    }


UK_BANK = {
    "method": "uk_bank",
    "credentials": {"sort_code": "12-34-56", "account_number": "12345678"},
}


def payout(ben_id: str, ins_id: str, reference: str, amount: str = "100.00") -> dict[str, Any]:
    """A GBP Faster Payments payout."""
    return {
        "beneficiary_id": ben_id,
        "instrument_id": ins_id,
        "source_amount": amount,
        "source_currency": "GBP",
        "dest_amount": amount,
        "dest_currency": "GBP",
        "method": "faster_payment",
        "purpose": "contractor_payment",
        "reference": reference,
    }


@pytest.fixture
async def sandbox() -> AsyncIterator[Any]:
    """A fresh in-memory sandbox on a manual clock."""
    sb = Sandbox(SandboxConfig(manual_clock=True))
    yield sb
    await sb.aclose()


@pytest.fixture
def records() -> list[CallRecord]:
    """Call records the client emits."""
    return []


@pytest.fixture
async def client(sandbox: Any, records: list[CallRecord]) -> AsyncIterator[AntonClient]:
    """An AntonClient wired to the sandbox in process, retrying without waits."""
    client = AntonClient(
        BASE_URL,
        ApiKey(sandbox.config.api_keys[0]),
        transport=sandbox.transport(),
        retry=RetryPolicy.no_wait(max_attempts=4),
        rate_limiter=FakeTime().limiter(1000),
        on_call=records.append,
    )
    async with client:
        yield client


async def _payee(client: AntonClient, ref: str) -> tuple[str, str]:
    ben = await client.create_beneficiary(individual(ref), idempotency_key=f"ben-{ref}")
    ins = await client.create_instrument(ben.data["id"], UK_BANK, idempotency_key=f"ins-{ref}")
    return ben.data["id"], ins.data["id"]


async def test_whole_payout_flow(client: AntonClient) -> None:
    """Balances, beneficiary, instrument, payout, lookups and events all read back consistently."""
    balances = await client.list_balances()
    assert "GBP" in {b["currency"] for b in balances}
    assert (await client.get_balance("GBP"))["currency"] == "GBP"
    ben_id, ins_id = await _payee(client, "c-1")
    assert (await client.get_beneficiary(ben_id))["id"] == ben_id
    assert [i["id"] for i in await client.list_instruments(ben_id)] == [ins_id]
    assert (await client.get_instrument(ins_id))["id"] == ins_id

    created = await client.create_payout(payout(ben_id, ins_id, "INV-1"), "pay-INV-1")
    assert created.status == 201 and created.replayed is False
    assert created.request_id and created.idempotency_key == "pay-INV-1"
    payout_id = created.data["id"]
    assert (await client.get_payout(payout_id))["reference"] == "INV-1"
    found = [p["id"] async for p in client.iter_payouts(reference="INV-1")]
    assert found == [payout_id]
    assert isinstance(await client.list_payout_events(payout_id), list)
    assert ben_id in [b["id"] async for b in client.iter_beneficiaries()]


async def test_same_key_replays_instead_of_paying_twice(client: AntonClient, sandbox: Any) -> None:
    """Sending a payout again with its key answers the same payout, marked as a replay."""
    ben_id, ins_id = await _payee(client, "c-2")
    body = payout(ben_id, ins_id, "INV-2")
    first = await client.create_payout(body, "pay-INV-2")
    again = await client.create_payout(body, "pay-INV-2")
    assert again.replayed is True and again.data["id"] == first.data["id"]
    assert [p["reference"] for p in sandbox.ledger()].count("INV-2") == 1


@pytest.mark.parametrize("fault", ["lost_response", "timeout", "503", "429", "500"])
async def test_fault_on_create_is_retried_into_exactly_one_payout(
    client: AntonClient, sandbox: Any, records: list[CallRecord], fault: str
) -> None:
    """A lost answer, timeout, 5xx or 429 on POST /v1/payouts ends in one payout, not two."""
    ben_id, ins_id = await _payee(client, f"c-{fault}")
    sandbox.faults.plan("POST /v1/payouts", [fault])
    records.clear()
    result = await client.create_payout(payout(ben_id, ins_id, f"INV-{fault}"), f"pay-{fault}")
    assert result.attempts == 2
    assert [p["reference"] for p in sandbox.ledger()].count(f"INV-{fault}") == 1
    # After a committed-but-lost request, the retry is the idempotent replay.
    assert result.replayed is (fault in {"lost_response", "timeout"})
    assert [r.attempt for r in records] == [1, 2]
    assert len({r.idempotency_key for r in records}) == 1


async def test_changed_body_under_same_key_is_a_conflict(client: AntonClient) -> None:
    """Reusing a key with another body raises IdempotencyConflictError, sent once."""
    ben_id, ins_id = await _payee(client, "c-3")
    await client.create_payout(payout(ben_id, ins_id, "INV-3"), "pay-INV-3")
    with pytest.raises(IdempotencyConflictError) as info:
        await client.create_payout(payout(ben_id, ins_id, "INV-3", amount="999.00"), "pay-INV-3")
    assert info.value.status == 409 and info.value.request_id


async def test_business_refusal_maps_to_unprocessable(client: AntonClient) -> None:
    """A payout the sandbox refuses (invalid body) raises UnprocessableError with its code."""
    ben_id, ins_id = await _payee(client, "c-4")
    body = payout(ben_id, ins_id, "INV-4")
    body["dest_currency"] = "XXX"
    with pytest.raises(UnprocessableError) as info:
        await client.create_payout(body, "pay-INV-4")
    assert info.value.code


async def test_unknown_payout_is_not_found(client: AntonClient) -> None:
    """Reading a payout that does not exist raises NotFoundError."""
    with pytest.raises(NotFoundError):
        await client.get_payout("pay_doesnotexist")


async def test_wrong_key_is_refused_once(sandbox: Any) -> None:
    """A key the sandbox does not know raises AuthenticationError after a single attempt."""
    records: list[CallRecord] = []
    client = AntonClient(
        BASE_URL,
        ApiKey("ak_test_not_a_real_key_0000"),
        transport=sandbox.transport(),
        retry=RetryPolicy.no_wait(),
        rate_limiter=RateLimiter.unlimited(),
        on_call=records.append,
    )
    async with client:
        with pytest.raises(AuthenticationError):
            await client.list_balances()
    assert len(records) == 1


async def test_limit_is_learned_from_sandbox_headers(sandbox: Any, client: AntonClient) -> None:
    """After one answer the limiter knows the sandbox's configured ceiling."""
    sandbox.set_rate_limit(120)
    await client.list_balances()
    assert client.rate_limiter.limit == 120


def test_fills_the_sandbox_rate_limit_in_virtual_time() -> None:
    """Against the sandbox's own window (200/min, 3 virtual minutes): ≥ 95 % used, ≤ 1 % 429s."""
    sandbox = Sandbox(SandboxConfig(manual_clock=True))
    sandbox.set_rate_limit(200)
    start = sandbox.clock.time()
    records: list[CallRecord] = []
    duration = 180.0

    class InSync(httpx.AsyncBaseTransport):
        """Moves the sandbox clock with the virtual loop and adds some latency."""

        def __init__(self) -> None:
            self.inner: httpx.AsyncBaseTransport = sandbox.transport()

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(0.04)
            behind = start + loop_clock() - sandbox.clock.time()
            if behind > 0:
                sandbox.clock.advance(behind)
            response: httpx.Response = await self.inner.handle_async_request(request)
            await asyncio.sleep(0.04)
            return response

        async def aclose(self) -> None:
            await self.inner.aclose()

    async def main() -> None:
        client = AntonClient(
            BASE_URL,
            ApiKey(sandbox.config.api_keys[0]),
            transport=InSync(),
            retry=RetryPolicy(max_attempts=10, sleep=asyncio.sleep),
            rate_limiter=RateLimiter(
                clock=loop_clock, wall_clock=lambda: start + loop_clock(), sleep=asyncio.sleep
            ),
            on_call=records.append,
        )

        async def worker() -> None:
            while loop_clock() < duration:
                await client.get_balance("GBP")

        async with client:
            await asyncio.gather(*(worker() for _ in range(8)))
        await sandbox.aclose()

    run_virtual(main)
    ok = sum(1 for r in records if r.status == 200)
    throttled = sum(1 for r in records if r.status == 429)
    assert ok / (3 * 200) >= 0.95
    assert throttled / len(records) <= 0.01
