"""Preflight: refuse a run the balances cannot cover, before anything is sent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from batchpay.connection import Connection
from batchpay.errors import PreflightError
from batchpay.forecast import estimate_debits
from batchpay.journal import Journal


def known_fees(journal: Journal, environment: str) -> dict[tuple[str, str], Decimal]:
    """The highest fee the provider charged per (payout method, fee currency) in this world."""
    return journal.known_fees(environment)


async def preflight(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a run whose source balances cannot cover its same-currency payouts.

    Fees are added where the journal has seen the provider charge them (same payout method
    and currency); cross-currency rows are left to the provider, whose rate is unknown here.
    """
    estimates = estimate_debits(rows, known_fees(conn.journal, conn.settings.environment))
    need = {cur: e.debited for cur, e in estimates.items() if e.rows}
    with_fees = any(e.fees > 0 for e in estimates.values())
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
