"""Payouts: pricing, validation, balances, list filters and pagination, cancel, events."""

from __future__ import annotations

import httpx
import pytest

from batchpay.sandbox import Sandbox

from .helpers import error_code, fields, iban, make_payee, payout, post, us_bank

pytestmark = pytest.mark.anyio


async def test_same_currency_payout_debits_amount_plus_fee(
    client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """A GBP faster_payment debits source + fee and shows it pending until it settles."""
    before = (await client.get("/v1/balances/GBP")).json()
    response = await post(client, "/v1/payouts", payout(*payee, "250.00"))
    assert response.status_code == 201
    pay = response.json()
    assert pay["status"] == "created"
    assert (pay["source_amount"], pay["dest_amount"], pay["fee"]) == ("250.00", "250.00", "0.40")
    assert pay["total_debited"] == "250.40" and pay["total_debited_currency"] == "GBP"
    assert "exchange_rate" not in pay
    after = (await client.get("/v1/balances/GBP")).json()
    assert after["available"] == f"{float(before['available']) - 250.40:.2f}"
    assert after["pending"] == "250.40"
    assert after["total"] == before["total"]


async def test_cross_currency_fixed_dest_and_fixed_source(client: httpx.AsyncClient) -> None:
    """USD->EUR prices from the fixed table; fixed_source recomputes the dest amount."""
    ben, ins = await make_payee(client, iban())
    fixed_dest = payout(ben, ins, "500.00", "EUR", method="sepa", source_currency="USD")
    pay = (await post(client, "/v1/payouts", fixed_dest)).json()
    assert pay["exchange_rate"] == "0.920000"
    assert (pay["source_amount"], pay["dest_amount"]) == ("543.48", "500.00")
    assert (pay["fee"], pay["total_debited"]) == ("0.50", "543.98")
    fixed_source = dict(fixed_dest, fixed_side="fixed_source", source_amount="100.00")
    pay = (await post(client, "/v1/payouts", fixed_source)).json()
    assert (pay["source_amount"], pay["dest_amount"], pay["total_debited"]) == (
        "100.00",
        "92.00",
        "100.50",
    )


async def test_fee_bearer_beneficiary_reduces_dest(client: httpx.AsyncClient) -> None:
    """fee_bearer=beneficiary takes the fee from what the beneficiary receives."""
    ben, ins = await make_payee(client, us_bank())
    body = payout(ben, ins, "100.00", "USD", method="ach", fee_bearer="beneficiary")
    pay = (await post(client, "/v1/payouts", body)).json()
    assert (pay["fee"], pay["dest_amount"], pay["total_debited"]) == ("0.25", "99.75", "100.00")


async def test_missing_source_currency_defaults_to_held_dest_currency(
    client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """Without source_currency, a payout is funded from the dest currency's balance."""
    body = payout(*payee, "10.00")
    del body["source_currency"]
    pay = (await post(client, "/v1/payouts", body)).json()
    assert pay["source_currency"] == "GBP"


async def test_validation_errors_are_collected(
    client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """Bad ids, amounts, currencies and enums come back together in one validation_error."""
    body = payout(*payee)
    body.update(
        beneficiary_id="nope",
        source_amount="-5",
        dest_amount="1.234",
        dest_currency="usd",
        method="pigeon",
        reference="x" * 101,
    )
    del body["purpose"]
    response = await post(client, "/v1/payouts", body)
    assert response.status_code == 422
    assert set(fields(response)) == {
        "beneficiary_id",
        "source_amount",
        "dest_currency",
        "method",
        "reference",
        "purpose",
    }


async def test_too_many_decimals_for_currency(
    client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """An amount with more decimals than the currency allows is refused on that field."""
    response = await post(client, "/v1/payouts", payout(*payee, "10.001"))
    assert response.status_code == 422
    assert "dest_amount" in fields(response)
    ok = await post(client, "/v1/payouts", payout(*payee, "10.100"))
    assert ok.status_code == 201 and ok.json()["dest_amount"] == "10.10"


async def test_float_amount_is_refused(client: httpx.AsyncClient, payee: tuple[str, str]) -> None:
    """Amounts must be decimal strings; a JSON number is a validation error."""
    body = payout(*payee)
    body["dest_amount"] = 10.5
    response = await post(client, "/v1/payouts", body)
    assert response.status_code == 422 and "dest_amount" in fields(response)


async def test_unknown_beneficiary_and_instrument(
    client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """Unknown ids answer 404 beneficiary_not_found / instrument_not_found."""
    ben, ins = payee
    no_ben = await post(client, "/v1/payouts", payout("ben_missing", ins))
    assert no_ben.status_code == 404 and error_code(no_ben) == "beneficiary_not_found"
    no_ins = await post(client, "/v1/payouts", payout(ben, "ins_missing"))
    assert no_ins.status_code == 404 and error_code(no_ins) == "instrument_not_found"


async def test_instrument_must_belong_and_rail_must_fit(
    client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """Another beneficiary's instrument, or a rail that cannot pay it, is a validation error."""
    ben, _ = payee
    _, other_ins = await make_payee(client, iban())
    response = await post(client, "/v1/payouts", payout(ben, other_ins, method="ach"))
    assert response.status_code == 422
    assert fields(response) == ["instrument_id", "method", "dest_currency"]


async def test_insufficient_balance(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    """A payout larger than the available balance answers 422 and debits nothing."""
    ben, ins = await make_payee(client)
    sandbox.set_balance("GBP", "100.00")
    response = await post(client, "/v1/payouts", payout(ben, ins, "100.00"))
    assert response.status_code == 422 and error_code(response) == "insufficient_balance"
    assert sandbox.balance("GBP")["available"] == "100.00"
    assert sandbox.ledger() == []
    missing = await post(client, "/v1/payouts", payout(ben, ins, "1.00", source_currency="MXN"))
    assert error_code(missing) == "insufficient_balance"


async def test_list_filters(client: httpx.AsyncClient, payee: tuple[str, str]) -> None:
    """reference, status (repeatable), dest_currency and batch_id filters narrow the list."""
    a = (await post(client, "/v1/payouts", payout(*payee, reference="REF-A"))).json()
    b = (await post(client, "/v1/payouts", payout(*payee, reference="REF-B"))).json()
    await client.post(f"/v1/payouts/{b['id']}/cancel", headers={"Idempotency-Key": "c-b"})
    by_ref = (await client.get("/v1/payouts", params={"reference": "REF-A"})).json()
    assert [p["id"] for p in by_ref["data"]] == [a["id"]]
    both = await client.get("/v1/payouts", params=[("status", "created"), ("status", "cancelled")])
    assert [p["id"] for p in both.json()["data"]] == [b["id"], a["id"]]
    cancelled = (await client.get("/v1/payouts", params={"status": "cancelled"})).json()
    assert [p["id"] for p in cancelled["data"]] == [b["id"]]
    eur = (await client.get("/v1/payouts", params={"dest_currency": "EUR"})).json()
    assert eur["data"] == []
    batch = (await client.get("/v1/payouts", params={"batch_id": "bat_1"})).json()
    assert batch["data"] == []
    by_ins = (await client.get("/v1/payouts", params={"instrument_id": payee[1]})).json()
    assert len(by_ins["data"]) == 2


async def test_date_filters_are_inclusive(
    sandbox: Sandbox, client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """created_after / created_before select by creation time, both bounds inclusive."""
    first = (await post(client, "/v1/payouts", payout(*payee))).json()
    await sandbox.advance(3600)
    second = (await post(client, "/v1/payouts", payout(*payee))).json()
    after = await client.get("/v1/payouts", params={"created_after": second["created_at"]})
    assert [p["id"] for p in after.json()["data"]] == [second["id"]]
    before = await client.get("/v1/payouts", params={"created_before": first["created_at"]})
    assert [p["id"] for p in before.json()["data"]] == [first["id"]]
    bad = await client.get("/v1/payouts", params={"created_after": "yesterday"})
    assert bad.status_code == 400 and error_code(bad) == "invalid_parameter"


async def test_payout_limit_is_silently_capped(
    client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """Payouts use the older silent cap: limit=200 works, nonsense falls back to 20."""
    for _ in range(3):
        await post(client, "/v1/payouts", payout(*payee, "1.00"))
    big = await client.get("/v1/payouts", params={"limit": "200"})
    assert big.status_code == 200 and len(big.json()["data"]) == 3
    junk = await client.get("/v1/payouts", params={"limit": "lots"})
    assert junk.status_code == 200 and len(junk.json()["data"]) == 3
    paged = (await client.get("/v1/payouts", params={"limit": "2"})).json()
    assert paged["has_more"] is True
    rest = (await client.get("/v1/payouts", params={"cursor": paged["next_cursor"]})).json()
    assert len(rest["data"]) == 1 and rest["has_more"] is False


async def test_cancel_releases_funds_and_converges(
    sandbox: Sandbox, client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """Cancel from a cancellable state releases the debit; a second cancel converges."""
    before = sandbox.balance("GBP")["available"]
    pay = (await post(client, "/v1/payouts", payout(*payee))).json()
    cancel = await post(client, f"/v1/payouts/{pay['id']}/cancel", {"reason": "changed mind"})
    assert cancel.status_code == 200
    assert cancel.json()["status"] == "cancelled"
    assert cancel.json()["cancelled_reason"] == "changed mind"
    assert sandbox.balance("GBP")["available"] == before
    assert sandbox.balance("GBP")["pending"] == "0.00"
    again = await post(client, f"/v1/payouts/{pay['id']}/cancel", None)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    await sandbox.advance(60)
    assert (await client.get(f"/v1/payouts/{pay['id']}")).json()["status"] == "cancelled"


async def test_cancel_after_processing_is_refused(
    sandbox: Sandbox, client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """Once the rail has the payout, cancel answers 409 payout_not_cancellable."""
    pay = (await post(client, "/v1/payouts", payout(*payee))).json()
    await sandbox.advance(4)
    assert (await client.get(f"/v1/payouts/{pay['id']}")).json()["status"] == "processing"
    response = await post(client, f"/v1/payouts/{pay['id']}/cancel", {})
    assert response.status_code == 409 and error_code(response) == "payout_not_cancellable"
    unknown = await post(client, "/v1/payouts/pay_nope/cancel", {})
    assert unknown.status_code == 404 and error_code(unknown) == "payout_not_found"


async def test_events_record_every_transition(
    sandbox: Sandbox, client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """The events endpoint lists every transition oldest first, each with its predecessor."""
    pay = (await post(client, "/v1/payouts", payout(*payee))).json()
    await sandbox.advance(30)
    events = (await client.get(f"/v1/payouts/{pay['id']}/events")).json()["data"]
    statuses = [e["status"] for e in events]
    assert statuses == [
        "created",
        "pending_screening",
        "pending_approval",
        "approved",
        "processing",
        "sent",
        "completed",
    ]
    assert [e.get("previous_status") for e in events[1:]] == statuses[:-1]
    missing = await client.get("/v1/payouts/pay_nope/events")
    assert missing.status_code == 404 and error_code(missing) == "payout_not_found"
