"""Track: follow created payouts to a terminal status by polling.

Polling backs off (1 s doubling to 30 s by default) and goes through the same
rate-limited client as everything else, so following a run never starves a
submission. Statuses only move forward in the journal (see
:meth:`batchpay.journal.Journal.record_status`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from batchpay.errors import ApiError, AuthenticationError, TransportError
from batchpay.journal import CREATED, TERMINAL_STATUSES, Journal
from batchpay.submit import data_of


class TrackClient(Protocol):
    """The part of the API client tracking needs."""

    async def get_payout(self, payout_id: str) -> Any: ...


def pending_payouts(journal: Journal, run_id: str | None) -> list[str]:
    """Ids of created payouts of ``run_id`` (or of every run) not yet terminal."""
    return [
        str(p["payout_id"])
        for p in journal.open_payouts(run_id)
        if p["state"] == CREATED and p["payout_id"]
    ]


async def refresh(client: TrackClient, journal: Journal, payout_ids: list[str]) -> int:
    """Fetch each payout once and record its status; return how many are still pending."""
    pending = 0
    for payout_id in payout_ids:
        try:
            payout = data_of(await client.get_payout(payout_id))
        except AuthenticationError:
            raise
        except (TransportError, ApiError):
            pending += 1
            continue
        status = str(payout.get("status") or "")
        if status:
            reason = payout.get("cancelled_reason") or payout.get("failure_reason")
            journal.record_status(
                payout_id,
                status,
                source="poll",
                occurred_at=str(payout.get("updated_at") or "") or None,
                reason=str(reason) if reason else None,
            )
        if status not in TERMINAL_STATUSES:
            pending += 1
    return pending


async def follow(
    client: TrackClient,
    journal: Journal,
    run_id: str | None,
    *,
    timeout: float = 600.0,
    first_delay: float = 1.0,
    max_delay: float = 30.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_poll: Callable[[int], Awaitable[None] | None] | None = None,
) -> int:
    """Poll until every created payout of the run is terminal or ``timeout`` seconds pass.

    Returns the number of payouts still pending at the end.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = first_delay
    while True:
        ids = pending_payouts(journal, run_id)
        if not ids:
            return 0
        still = await refresh(client, journal, ids)
        if on_poll is not None:
            maybe = on_poll(still)
            if maybe is not None:
                await maybe
        if still == 0:
            return 0
        if loop.time() + delay > deadline:
            return still
        await sleep(delay)
        delay = min(max_delay, delay * 2)
