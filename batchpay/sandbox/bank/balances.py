"""Balances: available and pending funds per currency, and the moves payouts make."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from batchpay.money import format_amount

from .._util import iso
from ..clock import SandboxClock
from ..config import SandboxConfig
from ..problems import not_found
from ..store import Store


class Balances:
    """The merchant's balances; reads do not apply due payout transitions (the Bank does)."""

    def __init__(self, store: Store, clock: SandboxClock, config: SandboxConfig) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.merchant_id = config.merchant_id

    def seed(self) -> None:
        """Load the configured balances and mark the store seeded."""
        now = self.clock.time()
        for currency, amount in self.config.balances.items():
            self.store.execute(
                "INSERT OR REPLACE INTO balances (currency, available, pending, updated_ts)"
                " VALUES (?, ?, '0', ?)",
                (currency, str(Decimal(amount)), now),
            )
        self.store.mark_seeded()

    def _balance_doc(self, row: Any) -> dict[str, Any]:
        currency = row["currency"]
        available = Decimal(row["available"])
        pending = Decimal(row["pending"])
        return {
            "id": f"bal_{currency.lower()}",
            "merchant_id": self.merchant_id,
            "currency": currency,
            "available": format_amount(available, currency),
            "pending": format_amount(pending, currency),
            "total": format_amount(available + pending, currency),
            "updated_at": iso(row["updated_ts"]),
        }

    def list_balances(self) -> list[dict[str, Any]]:
        """Every balance, by currency."""
        rows = self.store.all("SELECT * FROM balances ORDER BY currency")
        return [self._balance_doc(r) for r in rows]

    def get_balance(self, currency: str) -> dict[str, Any]:
        """One balance; 404 ``balance_not_found`` when the merchant holds none."""
        row = self.store.one("SELECT * FROM balances WHERE currency = ?", (currency,))
        if row is None:
            raise not_found("balance")
        return self._balance_doc(row)

    def set_balance(self, currency: str, available: str) -> None:
        """Set the available funds in one currency (creating the balance if needed)."""
        amount = Decimal(available)
        with self.store.tx():
            row = self.store.one("SELECT pending FROM balances WHERE currency = ?", (currency,))
            pending = row["pending"] if row else "0"
            self.store.execute(
                "INSERT OR REPLACE INTO balances (currency, available, pending, updated_ts)"
                " VALUES (?, ?, ?, ?)",
                (currency, str(amount), pending, self.clock.time()),
            )

    def move(self, currency: str, available: Decimal, pending: Decimal, at: float) -> None:
        """Add to a held balance's available and pending funds (inside the caller's tx)."""
        row = self.store.one("SELECT * FROM balances WHERE currency = ?", (currency,))
        assert row is not None
        self.store.execute(
            "UPDATE balances SET available = ?, pending = ?, updated_ts = ? WHERE currency = ?",
            (
                str(Decimal(row["available"]) + available),
                str(Decimal(row["pending"]) + pending),
                at,
                currency,
            ),
        )
