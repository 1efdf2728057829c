"""The payout state machine on the sandbox clock, and the triggers for every outcome."""

from __future__ import annotations

import httpx
import pytest

from batchpay.sandbox import Sandbox, SandboxConfig

from .helpers import error_code, make_payee, payout, post

pytestmark = pytest.mark.anyio

HAPPY = ["created", "pending_screening", "pending_approval", "approved", "processing", "sent"]
REVIEW = ["created", "manual_review", "approved", "processing", "sent", "completed"]


@pytest.mark.parametrize(
    ("amount", "path", "balance_released"),
    [
        ("100.00", [*HAPPY, "completed"], False),
        ("100.91", [*HAPPY, "failed"], True),
        ("100.92", [*HAPPY, "returned"], True),
        ("100.93", ["created", "pending_screening", "screening_failed"], True),
        ("100.94", ["created", "pending_screening", "pending_approval", "velocity_blocked"], True),
        ("100.95", REVIEW, False),
        ("100.97", ["created", "manual_review", "cancelled"], True),
    ],
)
async def test_triggers_walk_the_documented_paths(
    sandbox: Sandbox,
    client: httpx.AsyncClient,
    payee: tuple[str, str],
    amount: str,
    path: list[str],
    balance_released: bool,
) -> None:
    """Each cents trigger reaches its outcome one step per second, settling the balance."""
    before = sandbox.balance("GBP")
    pay = (await post(client, "/v1/payouts", payout(*payee, amount))).json()
    seen = [pay["status"]]
    for _ in range(len(path) + 2):
        await sandbox.advance(1)
        status = (await client.get(f"/v1/payouts/{pay['id']}")).json()["status"]
        if status != seen[-1]:
            seen.append(status)
    assert seen == path
    after = sandbox.balance("GBP")
    assert after["pending"] == "0.00"
    if balance_released:
        assert after["available"] == before["available"]
    else:
        assert after["available"] != before["available"]
        assert after["total"] == after["available"]


async def test_bad_endings_carry_a_reason(
    sandbox: Sandbox, client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """failed, screening_failed and ops-cancelled payouts explain why in cancelled_reason."""
    ids = [
        (await post(client, "/v1/payouts", payout(*payee, amount))).json()["id"]
        for amount in ("1.91", "1.93", "1.97")
    ]
    await sandbox.advance(60)
    for payout_id in ids:
        pay = (await client.get(f"/v1/payouts/{payout_id}")).json()
        assert pay["cancelled_reason"]
    completed_at = (await client.get(f"/v1/payouts/{ids[0]}")).json()
    assert "failed_at" in completed_at


async def test_sync_velocity_block_creates_nothing(
    sandbox: Sandbox, client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """Cents .96 answers 403 velocity_blocked at once: nothing created, nothing debited."""
    before = sandbox.balance("GBP")["available"]
    response = await post(client, "/v1/payouts", payout(*payee, "10.96"))
    assert response.status_code == 403 and error_code(response) == "velocity_blocked"
    assert sandbox.ledger() == []
    assert sandbox.balance("GBP")["available"] == before


async def test_held_review_stays_until_cancelled(
    sandbox: Sandbox, client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """Cents .98 holds the payout in manual_review until the merchant cancels it."""
    pay = (await post(client, "/v1/payouts", payout(*payee, "5.98"))).json()
    await sandbox.advance(3600)
    assert (await client.get(f"/v1/payouts/{pay['id']}")).json()["status"] == "manual_review"
    cancelled = await post(client, f"/v1/payouts/{pay['id']}/cancel", {})
    assert cancelled.json()["status"] == "cancelled"


async def test_trigger_uses_minor_units_for_zero_decimal_currency(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    """For JPY the trigger is the last two digits of the whole amount (1093 -> screening)."""
    from .helpers import iban

    ben, ins = await make_payee(client, iban())
    body = payout(ben, ins, "1093", "JPY", method="swift")
    pay = (await post(client, "/v1/payouts", body)).json()
    await sandbox.advance(10)
    assert (await client.get(f"/v1/payouts/{pay['id']}")).json()["status"] == "screening_failed"


async def test_fixed_source_triggers_on_source_amount(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    """With fixed_source the trigger reads the source amount the caller fixed."""
    from .helpers import iban

    ben, ins = await make_payee(client, iban())
    body = payout(ben, ins, "100.91", "EUR", method="sepa", source_currency="USD")
    body["fixed_side"] = "fixed_source"
    pay = (await post(client, "/v1/payouts", body)).json()
    await sandbox.advance(10)
    assert (await client.get(f"/v1/payouts/{pay['id']}")).json()["status"] == "failed"


async def test_transitions_are_lazy_and_time_stamped_on_schedule(
    sandbox: Sandbox, client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """Without a tick, a read applies due transitions, dated when they fell due."""
    pay = (await post(client, "/v1/payouts", payout(*payee))).json()
    sandbox.clock.advance(100)  # clock only: no tick ran
    done = (await client.get(f"/v1/payouts/{pay['id']}")).json()
    assert done["status"] == "completed"
    events = (await client.get(f"/v1/payouts/{pay['id']}/events")).json()["data"]
    from batchpay.sandbox._util import parse_iso

    offsets = [parse_iso(e["occurred_at"]) - parse_iso(pay["created_at"]) for e in events]
    assert offsets == [0, 1, 2, 3, 4, 5, 6]


async def test_step_seconds_is_configurable() -> None:
    """step_seconds sets the pace of the state machine."""
    config = SandboxConfig(manual_clock=True, step_seconds=10)
    async with Sandbox(config) as sb, sb.client() as client:
        ben, ins = await make_payee(client)
        pay = (await post(client, "/v1/payouts", payout(ben, ins))).json()
        await sb.advance(9)
        assert (await client.get(f"/v1/payouts/{pay['id']}")).json()["status"] == "created"
        await sb.advance(1)
        status = (await client.get(f"/v1/payouts/{pay['id']}")).json()["status"]
        assert status == "pending_screening"


async def test_ledger_lists_every_payout_oldest_first(
    sandbox: Sandbox, client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """Sandbox.ledger() lists payouts oldest first with the key that created each."""
    await post(client, "/v1/payouts", payout(*payee, reference="R1"), key="key-r1")
    await post(client, "/v1/payouts", payout(*payee, reference="R2"), key="key-r2")
    ledger = sandbox.ledger()
    assert [(p["reference"], p["idempotency_key"]) for p in ledger] == [
        ("R1", "key-r1"),
        ("R2", "key-r2"),
    ]
    admin = (await client.get("/_sandbox/ledger")).json()["data"]
    assert [p["id"] for p in admin] == [p["id"] for p in ledger]
