"""Preflight: refuse a run the balances cannot cover, before anything is sent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from batchpay.connection import Connection
from batchpay.errors import PreflightError
from batchpay.journal import Journal
from batchpay.money import parse_amount
from batchpay.submit import payout_method


def known_fees(journal: Journal, environment: str) -> dict[tuple[str, str], Decimal]:
    """The highest fee the provider charged per (payout method, fee currency) in this world."""
    return journal.known_fees(environment)


async def preflight(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a run whose source balances cannot cover its same-currency payouts.

    Fees are added where the journal has seen the provider charge them (same payout method
    and currency); cross-currency rows are left to the provider, whose rate is unknown here.
    """
    fees = known_fees(conn.journal, conn.settings.environment)
    need: dict[str, Decimal] = {}
    with_fees = False
    for r in rows:
        cur = str(r.get("source_currency") or r["currency"])
        if cur == r["currency"]:
            fee = fees.get((payout_method(str(r["payment_method"]), cur), cur), Decimal(0))
            with_fees = with_fees or fee > 0
            need[cur] = need.get(cur, Decimal(0)) + parse_amount(str(r["amount"])) + fee
    if not need:
        return
    balances = {str(b.get("currency")): b for b in await conn.client.list_balances()}
    short = []
    for cur, amount in sorted(need.items()):
        available = Decimal(str(balances.get(cur, {}).get("available", "0")))
        if available < amount:
            short.append(f"{cur} needs {amount} but {available} is available")
    if short:
        what = "including the fees seen before" if with_fees else "before fees"
        raise PreflightError(
            f"the balance cannot cover this run ({what}): " + "; ".join(short),
            hint="top up the balance, split the file, or pass --skip-balance-check",
        )
