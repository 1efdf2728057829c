"""The sandbox's books: beneficiaries, instruments, payouts, balances, webhook records.

Everything here is synchronous and transactional over :class:`~..store.Store`; the
HTTP layer (``app.py``) and the Python handle (``Sandbox``) both call into it.
Payout transitions are applied lazily by :meth:`Bank.apply_due`, which every read
calls first, so state is a pure function of the sandbox clock.

:class:`Bank` is the one handle callers hold; each part of the books is its own module:
``balances``, ``beneficiaries`` (with instruments), ``payouts`` (creation and the
lifecycle walk), ``events`` (webhook subscriptions, events and deliveries) and
``paging`` (cursors and list parameters).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..clock import SandboxClock
from ..config import SandboxConfig
from ..lifecycle import outcome_for
from ..store import Store
from ..validation import BeneficiaryInput, InstrumentInput, PayoutInput, WebhookInput
from .balances import Balances
from .batches import Batches
from .beneficiaries import Beneficiaries
from .events import DeliveryJob, Events
from .paging import Listing, Page, check_choice, parse_limit
from .payouts import Payouts

__all__ = ["Bank", "Batches", "DeliveryJob", "Listing", "Page", "check_choice", "parse_limit"]


class Bank:
    """Sandbox state and the rules that move it."""

    def __init__(self, store: Store, clock: SandboxClock, config: SandboxConfig) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.merchant_id = config.merchant_id
        self._balances = Balances(store, clock, config)
        self._events = Events(store, clock, config)
        self._beneficiaries = Beneficiaries(store, clock, config, self._events)
        self._payouts = Payouts(
            store, clock, config, self._balances, self._events, self._outcome_for
        )
        self.batches = Batches(
            store, clock, config, self._balances, self._beneficiaries, self._payouts, self._events
        )
        with store.tx():
            if store.fresh:
                self._balances.seed()

    @staticmethod
    def _outcome_for(amount: Decimal, currency: str) -> str:
        # Looked up in this module at call time: ``bank.outcome_for`` is the seam a test
        # patches to script a payout's outcome.
        return outcome_for(amount, currency)

    # ------------------------------------------------------------------ basics

    def now(self) -> float:
        """Sandbox time, Unix seconds."""
        return self.clock.time()

    def reset(self) -> None:
        """Forget everything and reload the configured balances."""
        with self.store.tx():
            self.store.reset()
            self._balances.seed()

    def apply_due(self, now: float | None = None) -> int:
        """Apply every payout and batch step due by ``now``; return how many were applied."""
        return self._payouts.apply_due(now) + self.batches.apply_due(now)

    # ------------------------------------------------------------------ balances

    def list_balances(self) -> list[dict[str, Any]]:
        """Every balance, by currency."""
        self.apply_due()
        return self._balances.list_balances()

    def get_balance(self, currency: str) -> dict[str, Any]:
        """One balance; 404 ``balance_not_found`` when the merchant holds none."""
        self.apply_due()
        return self._balances.get_balance(currency)

    def set_balance(self, currency: str, available: str) -> dict[str, Any]:
        """Set the available funds in one currency (creating the balance if needed)."""
        self._balances.set_balance(currency, available)
        return self.get_balance(currency)

    # ------------------------------------------------------------------ beneficiaries

    def create_beneficiary(self, inp: BeneficiaryInput) -> dict[str, Any]:
        """Create a beneficiary; 422 ``duplicate_beneficiary`` on the same PII fingerprint."""
        return self._beneficiaries.create_beneficiary(inp)

    def get_beneficiary(self, beneficiary_id: str) -> dict[str, Any]:
        """One beneficiary or 404 ``beneficiary_not_found``."""
        return self._beneficiaries.get_beneficiary(beneficiary_id)

    def list_beneficiaries(self, filters: dict[str, str], page: Page) -> Listing:
        """Beneficiaries, newest first, filtered by status/type/country/external_ref."""
        return self._beneficiaries.list_beneficiaries(filters, page)

    def create_instrument(self, beneficiary_id: str, inp: InstrumentInput) -> dict[str, Any]:
        """Attach an instrument; 422 ``duplicate_instrument`` on the same credential."""
        return self._beneficiaries.create_instrument(beneficiary_id, inp)

    def get_instrument(self, instrument_id: str) -> dict[str, Any]:
        """One instrument or 404 ``instrument_not_found``."""
        return self._beneficiaries.get_instrument(instrument_id)

    def list_instruments(self, filters: dict[str, str], page: Page) -> Listing:
        """Instruments, newest first, filtered by beneficiary/method/currency/country/status."""
        return self._beneficiaries.list_instruments(filters, page)

    # ------------------------------------------------------------------ payouts

    def create_payout(self, inp: PayoutInput, idempotency_key: str | None) -> dict[str, Any]:
        """Create a payout: check, price, debit the balance and start its lifecycle."""
        return self._payouts.create_payout(inp, idempotency_key)

    def get_payout(self, payout_id: str) -> dict[str, Any]:
        """One payout (with due transitions applied) or 404 ``payout_not_found``."""
        return self._payouts.get_payout(payout_id)

    def list_payouts(
        self,
        *,
        statuses: list[str],
        equals: dict[str, str],
        created_after: float | None,
        created_before: float | None,
        page: Page,
    ) -> Listing:
        """Payouts, newest first, with the spec's filters."""
        return self._payouts.list_payouts(
            statuses=statuses,
            equals=equals,
            created_after=created_after,
            created_before=created_before,
            page=page,
        )

    def payout_events(self, payout_id: str) -> list[dict[str, Any]]:
        """Every recorded transition of a payout, oldest first."""
        return self._payouts.payout_events(payout_id)

    def cancel_payout(self, payout_id: str, reason: str | None) -> dict[str, Any]:
        """Cancel from a cancellable state (funds released); cancelling twice converges."""
        return self._payouts.cancel_payout(payout_id, reason)

    def ledger(self) -> list[dict[str, Any]]:
        """Every payout ever created, oldest first, with the idempotency key that made it."""
        return self._payouts.ledger()

    # ------------------------------------------------------------------ webhooks

    def create_webhook(self, inp: WebhookInput) -> dict[str, Any]:
        """Register a subscription; the answer carries the one-time signing secret."""
        return self._events.create_webhook(inp)

    def list_webhooks(self, status: str | None) -> list[dict[str, Any]]:
        """Subscriptions, newest first."""
        return self._events.list_webhooks(status)

    def get_webhook(self, webhook_id: str) -> dict[str, Any]:
        """One subscription or 404 ``webhook_subscription_not_found``."""
        return self._events.get_webhook(webhook_id)

    def rotate_webhook_secret(self, webhook_id: str) -> str:
        """New secret now; the previous one keeps co-signing for the grace window."""
        return self._events.rotate_webhook_secret(webhook_id)

    def due_deliveries(self, now: float | None = None) -> list[DeliveryJob]:
        """Deliveries whose next attempt is due, oldest first."""
        return self._events.due_deliveries(now)

    def record_delivery(
        self,
        job: DeliveryJob,
        *,
        status_code: int | None,
        error: str | None,
        duration_ms: int,
        request_headers: dict[str, str],
        response_body: str,
    ) -> None:
        """Record one attempt: success, or schedule the next retry, or abandon."""
        self._events.record_delivery(
            job,
            status_code=status_code,
            error=error,
            duration_ms=duration_ms,
            request_headers=request_headers,
            response_body=response_body,
        )

    def deliveries(self) -> list[dict[str, Any]]:
        """Every webhook delivery record, oldest first (with its event type)."""
        return self._events.deliveries()

    def webhook_events(self) -> list[dict[str, Any]]:
        """Every webhook event generated, oldest first (the exact bodies sent)."""
        return self._events.webhook_events()
