"""Track: follow created payouts to a terminal status by polling.

A polling round reads the payout list, not each payout: ``GET /v1/payouts`` filtered to the
statuses that would be news and to payouts created since the oldest one followed, 100 a
page, matched by id. A payout the list cannot vouch for (sent before the provider's clock
was known, or the list failed) is fetched by id. Polling backs off (1 s doubling to 30 s by
default) and goes through the same rate-limited client as everything else, so following a
run never starves a submission. Statuses only move forward in the journal (see
:meth:`batchpay.journal.Journal.record_status`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from batchpay.errors import ApiError, AuthenticationError, TransportError
from batchpay.journal import CREATED, TERMINAL_STATUSES, Journal
from batchpay.journal.base import parse_ts
from batchpay.journal.states import STATUS_RANK
from batchpay.submit import data_of

# How far before the oldest followed payout's first send the list starts: the provider's
# clock is known to the second, and its created_at follows the request's arrival.
LIST_MARGIN = timedelta(minutes=10)
# The client's page size: a listing that would read more pages than the payouts it still
# has to find gives way to one GET each.
LIST_PAGE_SIZE = 100


class TrackClient(Protocol):
    """The part of the API client tracking needs."""

    async def get_payout(self, payout_id: str) -> Any: ...

    def iter_payouts(
        self, *, status: Sequence[str] | None = None, created_after: datetime | None = None
    ) -> AsyncIterator[Any]: ...


class _Followed(NamedTuple):
    """What the journal knows of a payout being followed."""

    rank: int  # of its furthest status so far; -1 when none
    sent_at: datetime | None  # the provider's clock at its first send, when known


def pending_payouts(journal: Journal, run_id: str | None) -> list[str]:
    """Ids of created payouts of ``run_id`` (or of every run) not yet terminal."""
    return [
        str(p.payout_id) for p in journal.open_payouts(run_id) if p.state == CREATED and p.payout_id
    ]


def _followed(journal: Journal, payout_ids: Sequence[str]) -> dict[str, _Followed]:
    wanted = set(payout_ids)
    found: dict[str, _Followed] = {}
    for p in journal.open_payouts(None):
        pid = str(p.payout_id or "")
        if pid in wanted:
            sent = p.first_sent_provider_at
            found[pid] = _Followed(
                STATUS_RANK.get(str(p.status or ""), -1), parse_ts(sent) if sent else None
            )
    return found


async def _from_list(
    client: TrackClient, followed: dict[str, _Followed]
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Payouts found in one listing, and the ids it shows have no news (absent from it).

    The list asks only for statuses ranked above the least advanced payout followed, from
    just before the oldest one was sent: a payout created in that window and not shown is
    still at or below a status the journal has. Empty results when the list fails.
    """
    windowed = {pid: f for pid, f in followed.items() if f.sent_at is not None}
    if not windowed:
        return {}, set()
    lowest = min(f.rank for f in windowed.values())
    statuses = [status for status, rank in STATUS_RANK.items() if rank > lowest]
    since = min(f.sent_at for f in windowed.values() if f.sent_at is not None) - LIST_MARGIN
    found: dict[str, dict[str, Any]] = {}
    listing = client.iter_payouts(status=statuses, created_after=since)
    scanned = 0
    try:
        async for item in listing:
            payout = data_of(item)
            pid = str(payout.get("id") or "")
            if pid in followed:
                found[pid] = payout
            scanned += 1
            if scanned % LIST_PAGE_SIZE == 0 and scanned // LIST_PAGE_SIZE > len(
                windowed.keys() - found.keys()
            ):
                return found, set()  # cheaper now to fetch the rest one by one
    except AuthenticationError:
        raise
    except (TransportError, ApiError):
        return found, set()
    finally:
        aclose = getattr(listing, "aclose", None)
        if aclose is not None:
            await aclose()
    return found, windowed.keys() - found.keys()


def _record(journal: Journal, payout_id: str, payout: dict[str, Any]) -> str:
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
    return status


async def refresh(client: TrackClient, journal: Journal, payout_ids: list[str]) -> int:
    """Learn each payout's status once and record it; return how many are still pending."""
    ids = list(dict.fromkeys(payout_ids))
    found, unchanged = await _from_list(client, _followed(journal, ids))
    pending = 0
    for payout_id in ids:
        if payout_id in unchanged:
            pending += 1
            continue
        payout = found.get(payout_id)
        if payout is None:
            try:
                payout = data_of(await client.get_payout(payout_id))
            except AuthenticationError:
                raise
            except (TransportError, ApiError):
                pending += 1
                continue
        if _record(journal, payout_id, payout) not in TERMINAL_STATUSES:
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
