"""The API's resources as methods: balances, beneficiaries, instruments, payouts, webhooks
(and batches, from :mod:`batchpay.client.batches`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from batchpay.client import wire
from batchpay.client.batches import BatchMethods
from batchpay.client.records import ApiResult
from batchpay.client.wire import Json

__all__ = ["AntonClient"]


class AntonClient(BatchMethods):
    """Async client for the Anton Payments API, shared by all concurrent tasks of a run.

    ``transport`` plugs in the in-process sandbox (``httpx.ASGITransport``) or an
    ``httpx.MockTransport``. ``on_call`` is called synchronously for every HTTP
    attempt; an exception it raises propagates to the caller (a journal that
    cannot record must stop the run). Close with :meth:`aclose` or ``async with``.

    ``max_concurrency`` caps requests in flight; it must cover pace × latency to
    fill the limit (8 slots at 0.5 s per request give 16/s, about 960/min). ``None``
    sizes it from the limit learned and the latency observed (twice pace × latency,
    8 to 256; 256 when no limit is announced; halved by a 429), as ``batchpay run`` does.
    """

    # -- balances --------------------------------------------------------------

    async def list_balances(self) -> list[Json]:
        """Every balance of the merchant, one per currency."""
        return wire.page_items(await self.request("GET", "/v1/balances"), "/v1/balances")

    async def get_balance(self, currency: str) -> Json:
        """The merchant's balance in one currency."""
        return await self._get(f"/v1/balances/{wire.path_segment(currency)}")

    # -- beneficiaries ---------------------------------------------------------

    async def create_beneficiary(self, body: Mapping[str, Any], idempotency_key: str) -> ApiResult:
        """Create a beneficiary (``POST /v1/beneficiaries``)."""
        return await self.request(
            "POST", "/v1/beneficiaries", json=body, idempotency_key=idempotency_key
        )

    async def get_beneficiary(self, beneficiary_id: str) -> Json:
        """One beneficiary by id."""
        return await self._get(f"/v1/beneficiaries/{wire.path_segment(beneficiary_id)}")

    def iter_beneficiaries(self, **filters: Any) -> AsyncIterator[Json]:
        """Every beneficiary matching ``filters`` (``status``, ``type``, ``country``), all pages."""
        return self._paginate("/v1/beneficiaries", filters)

    # -- instruments -----------------------------------------------------------

    async def create_instrument(
        self, beneficiary_id: str, body: Mapping[str, Any], idempotency_key: str
    ) -> ApiResult:
        """Attach a payment instrument to a beneficiary."""
        return await self.request(
            "POST",
            f"/v1/beneficiaries/{wire.path_segment(beneficiary_id)}/instruments",
            json=body,
            idempotency_key=idempotency_key,
        )

    async def list_instruments(self, beneficiary_id: str) -> list[Json]:
        """Every instrument of one beneficiary, all pages."""
        return await self._collect(
            f"/v1/beneficiaries/{wire.path_segment(beneficiary_id)}/instruments"
        )

    async def get_instrument(self, instrument_id: str) -> Json:
        """One instrument by id."""
        return await self._get(f"/v1/instruments/{wire.path_segment(instrument_id)}")

    # -- payouts ---------------------------------------------------------------

    async def create_payout(self, body: Mapping[str, Any], idempotency_key: str) -> ApiResult:
        """Create a payout; a ``TransportError`` means the outcome is unknown (see module doc)."""
        return await self.request("POST", "/v1/payouts", json=body, idempotency_key=idempotency_key)

    async def create_payout_text(self, body: str, idempotency_key: str) -> ApiResult:
        """:meth:`create_payout` of a body already serialised (the journal's stored text):
        those bytes are sent as they are, not parsed and encoded again. The journal's text
        (:func:`batchpay.journal.dumps_body`: sorted keys, no spaces, UTF-8) is byte for byte
        what :meth:`create_payout` would send of the body it parses to."""
        return await self.request(
            "POST", "/v1/payouts", content=(body.encode("utf-8"), "application/json"),
            idempotency_key=idempotency_key,
        )  # fmt: skip

    async def get_payout(self, payout_id: str) -> Json:
        """One payout by id."""
        return await self._get(f"/v1/payouts/{wire.path_segment(payout_id)}")

    def iter_payouts(
        self,
        *,
        reference: str | None = None,
        status: str | Sequence[str] | None = None,
        batch_id: str | None = None,
        beneficiary_id: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        **filters: Any,
    ) -> AsyncIterator[Json]:
        """Every payout matching the filters, all pages (newest first).

        Other documented filters (``instrument_id``, ``dest_currency``) pass through ``filters``.
        """
        params = {
            **filters,
            "reference": reference,
            "status": [status] if isinstance(status, str) else status,
            "batch_id": batch_id,
            "beneficiary_id": beneficiary_id,
            "created_after": wire.timestamp(created_after),
            "created_before": wire.timestamp(created_before),
        }
        return self._paginate("/v1/payouts", params)

    async def payouts_page(
        self,
        *,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        cursor: str | None = None,
    ) -> ApiResult:
        """One page (up to 100, newest first) of the payouts created in a window, both
        bounds inclusive: ``data`` holds the items, ``has_more``/``next_cursor`` the rest.

        The provider's ledger sweep (:mod:`batchpay.ledger`) reads windows side by side.
        """
        params = {
            "created_after": wire.timestamp(created_after),
            "created_before": wire.timestamp(created_before),
        }
        return await self._page("/v1/payouts", params, cursor)

    async def cancel_payout(
        self, payout_id: str, idempotency_key: str, reason: str | None = None
    ) -> ApiResult:
        """Cancel a payout not yet handed to a rail."""
        body: Json = {"reason": reason} if reason is not None else {}
        return await self.request(
            "POST",
            f"/v1/payouts/{wire.path_segment(payout_id)}/cancel",
            json=body,
            idempotency_key=idempotency_key,
        )

    async def list_payout_events(self, payout_id: str) -> list[Json]:
        """Every status transition of a payout, oldest first."""
        path = f"/v1/payouts/{wire.path_segment(payout_id)}/events"
        return wire.page_items(await self.request("GET", path), path)

    # -- webhooks --------------------------------------------------------------

    async def create_webhook(
        self, url: str, events: Sequence[str], idempotency_key: str
    ) -> ApiResult:
        """Subscribe ``url`` to ``events``; the answer holds the signing secret, shown once."""
        return await self.request(
            "POST",
            "/v1/webhooks",
            json={"url": url, "events": list(events)},
            idempotency_key=idempotency_key,
        )

    async def list_webhooks(self) -> list[Json]:
        """Every webhook subscription of the merchant."""
        return wire.page_items(await self.request("GET", "/v1/webhooks"), "/v1/webhooks")
