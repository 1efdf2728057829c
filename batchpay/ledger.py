"""Paid before? The journal's history, and the provider's ledger as the last word.

The journal is one witness; other journals (another folder, machine or home) are others.
Before a row is sent for the first time, batchpay sweeps the provider's payout list for
payouts carrying a batchpay key (``metadata.batchpay_key = bp1-<row key>-<attempt>``)
and remembers them, so a row another journal paid is reported ``already_paid`` with the
provider's payout id instead of being sent again — even after the provider forgot the
idempotency key.

The sweep is incremental: ``GET /v1/payouts?created_after=<high-water mark>`` in pages
of 100, the mark being the provider's own ``created_at`` (never the local clock) less a
minute of overlap for payouts committed late. A fresh journal bootstraps once by reading
the whole list. On an up-to-date journal a sweep costs one request plus about one per
hundred payouts made since the last one, read side by side: the window is cut by
``created_at`` into sub-windows read concurrently (see :class:`_Reader`), so a sweep of
many pages takes a few round trips, not one per page.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from batchpay.clocks import ProviderClock
from batchpay.holds import AMOUNT_DIFFERS
from batchpay.journal import (
    CREATED,
    REJECTED,
    SETTLED_FAILURES,
    Journal,
    dumps_body,
    parse_ts,
)
from batchpay.journal.base import format_ts
from batchpay.journal.records import PayoutIntent, ProviderPayout
from batchpay.states import ALREADY_PAID, HELD, IN_FLIGHT_ELSEWHERE

METADATA_KEY = "batchpay_key"
_KEY_RE = re.compile(r"^bp1-([0-9a-f]{40})-([1-9][0-9]{0,8})$")
OVERLAP = timedelta(minutes=1)
# A per-row run sweeps again before it sends another row once its last sweep began this
# long ago (the provider's time): every payout another home made since then is then younger
# than the provider's 24-hour memory of its key, which refuses a second one with that key —
# however long the run lasts, or stood still (a machine asleep, a stopped process).
LEDGER_MAX_AGE = timedelta(hours=1)
# A per-row run asks for other homes' open batches before each payout, reusing an answer
# for at most this long (ForeignBatchWatch).
FOREIGN_BATCH_INTERVAL = 0.25
# How long a row whose intent is committed waits, before its first request, for another
# home's confirmed or processing batch to finish (its payouts may include the row): then
# the request is withheld, the intent left ``unknown`` for a later run (exit 10).
FOREIGN_BATCH_WAIT = 600.0
# How long after a batch is created a payout may still reach the provider from a per-row
# run whose last look came just before the batch existed: the reused answer's age, the
# journal write, the rate limiter's wait and two round trips, with room to spare. A batch
# is not confirmed before its last sweep can list such a payout (batchpay.batches).
FOREIGN_BATCH_GUARD = timedelta(seconds=5)
log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]


class LedgerClient(Protocol):
    """The part of the API client a sweep needs."""

    def iter_payouts(self, **filters: Any) -> Any: ...


@dataclass(frozen=True)
class Sweep:
    """What one sweep read."""

    bootstrap: bool
    payouts_read: int
    batchpay_payouts: int
    high_water: str | None


def parse_key(key: object) -> tuple[str, int] | None:
    """(row key, attempt) of a batchpay payout idempotency key, or None for any other text."""
    m = _KEY_RE.match(key) if isinstance(key, str) else None
    return (m.group(1), int(m.group(2))) if m else None


def _record(payout: Mapping[str, Any]) -> dict[str, Any] | None:
    meta = payout.get("metadata")
    parsed = parse_key(meta.get(METADATA_KEY)) if isinstance(meta, Mapping) else None
    if parsed is None or not payout.get("id") or not payout.get("created_at"):
        return None
    return {
        "payout_id": str(payout["id"]),
        "idempotency_key": str(meta[METADATA_KEY]),  # type: ignore[index]
        "row_key": parsed[0],
        "attempt": parsed[1],
        "reference": str(payout.get("reference") or ""),
        "status": str(payout.get("status") or "") or None,
        "created_at": str(payout["created_at"]),
        "doc": json.dumps(dict(payout), sort_keys=True, default=str),
    }


async def sweep(
    client: LedgerClient,
    journal: Journal,
    environment: str,
    *,
    provider_clock: ProviderClock,
    on_progress: ProgressFn | None = None,
    on_read: Callable[[], Any] | None = None,
) -> Sweep:
    """Read the payouts made since the last sweep and remember batchpay's among them.

    ``on_read`` is called once every page is read, before what they hold is stored (and
    awaited when it returns an awaitable): a request it starts is out meanwhile.

    Raises the client's TransportError / ApiError when the list cannot be read: then
    nothing may be sent for the first time, and the caller leaves those rows planned.
    """
    high_water = journal.ledger_high_water(environment)
    after: datetime | None = parse_ts(high_water) - OVERLAP if high_water else None
    reader = _Reader(provider_clock, on_progress)
    if isinstance(client, _PageLister):
        await reader.windows(client, after, _dense_seconds(journal, environment, after,
                                                          provider_clock))  # fmt: skip
    else:  # a client that lists only by iterating: one cursor walk
        async for payout in client.iter_payouts(created_after=after):
            reader.first_page_arrived()
            reader.take(payout)
    if on_read is not None and (pending := on_read()) is not None:
        await pending
    started = reader.started
    if started is None and provider_clock.observed:
        started = provider_clock.now()
    marks = [t for t in (reader.newest, started) if t is not None]
    mark = max(marks) if marks else None
    new_mark = _iso(mark) if mark is not None else None
    found = reader.found
    read = reader.read
    journal.record_ledger_sweep(environment, found, new_mark)
    if on_progress is not None and read:
        on_progress("ledger", read, read)
    log.info(
        "provider ledger %s: %d payout(s) read in %d page(s), %d made by batchpay, "
        "high-water mark %s",
        "bootstrapped" if high_water is None else "swept", read, reader.pages, len(found),
        new_mark,
        extra={"payouts_read": read, "batchpay_payouts": len(found), "high_water": new_mark,
               "pages": reader.pages},
    )  # fmt: skip
    return Sweep(high_water is None, read, len(found), new_mark or high_water)


# The sweep reads the window [after, now] side by side: a window whose first page says
# there is more splits the rest into sub-windows by time, each read the same way, until
# the rest of a window is estimated at a few pages, which it then reads by cursor.
PAGES_PER_WINDOW = 6
"""A window whose rest is estimated at no more pages than this reads on by cursor."""
MAX_SPLIT = 16
"""At most this many sub-windows from one page."""
GEOMETRIC_SPLIT = 6
"""Windows from one page whose rest is wide or unbounded (they double back in time)."""
SWEEP_PAGES_IN_FLIGHT = 32
"""Pages of one sweep asked for at once (the client's rate limiter and in-flight cap
still decide when each leaves)."""


@dataclass(frozen=True, slots=True)
class _Window:
    """Payouts created in [lo, hi] (both inclusive; None: unbounded), read on from cursor."""

    lo: datetime | None
    hi: str | None
    cursor: str | None = None
    cursors: frozenset[str] = frozenset()  # the cursors this window was read on from


@runtime_checkable
class _PageLister(Protocol):
    async def payouts_page(
        self,
        *,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        cursor: str | None = None,
    ) -> Any: ...


class _Reader:
    """What a sweep has read so far: every payout once (by id), batchpay's among them."""

    def __init__(self, provider_clock: ProviderClock, on_progress: ProgressFn | None) -> None:
        self.provider_clock = provider_clock
        self.on_progress = on_progress
        self.seen: set[str] = set()
        self.found: list[dict[str, Any]] = []
        self.newest: datetime | None = None
        self.started: datetime | None = None
        self.read = 0
        self.pages = 0
        self._per_stamp: dict[str, int] = {}  # payouts seen per created_at

    def first_page_arrived(self) -> None:
        if self.started is None and self.read == 0:
            # The provider's time as the first page arrived: everything created before
            # it (less the overlap) has now been listed.
            self.started = self.provider_clock.now() if self.provider_clock.observed else None

    def take(self, payout: Mapping[str, Any]) -> None:
        pid = payout.get("id")
        if pid is not None:
            if str(pid) in self.seen:  # windows share their inclusive bounds
                return
            self.seen.add(str(pid))
        self.read += 1
        at = str(payout.get("created_at"))
        self._per_stamp[at] = self._per_stamp.get(at, 0) + 1
        rec = _record(payout)
        if rec is not None:
            self.found.append(rec)
        created = _ts(payout.get("created_at"))
        if created is not None and (self.newest is None or created > self.newest):
            self.newest = created
        if self.on_progress is not None and self.read % 100 == 0:
            self.on_progress("ledger", self.read, 0)

    async def windows(
        self, client: _PageLister, after: datetime | None, dense: Iterable[datetime] = ()
    ) -> None:
        """Read every payout created since ``after``, windows side by side.

        ``dense`` are whole seconds where many payouts are expected (this journal's own,
        sent since ``after``): each gets a window of its own and the time between them
        too, all asked for at once, instead of being found page by page."""
        pending: set[asyncio.Future[list[_Window]]] = set()
        todo = _planned(after, dense) if after is not None else []
        if todo and self.provider_clock.observed:
            # Planned windows are all asked at once and answer in any order; the one that
            # holds the present need not be the top (a dense second the provider's clock
            # has not reached). The provider's time before any is asked is the mark.
            self.started = self.provider_clock.now()
        if not todo:
            todo = await self._page(client, _Window(after, None))
        try:
            while todo or pending:
                while todo and len(pending) < SWEEP_PAGES_IN_FLIGHT:
                    pending.add(asyncio.ensure_future(self._page(client, todo.pop())))
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                failed = [t.exception() for t in done if t.exception() is not None]
                if failed:  # a page that could not be read fails the sweep
                    raise failed[0]  # type: ignore[misc]
                for task in done:
                    todo.extend(task.result())
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
                for task in pending:
                    if not task.cancelled():
                        task.exception()  # seen: the first failure is the one raised

    async def _page(self, client: _PageLister, w: _Window) -> list[_Window]:
        """Read one page of ``w``; return what of ``w`` is left to read, as windows."""
        page = await client.payouts_page(created_after=w.lo, created_before=w.hi, cursor=w.cursor)
        self.pages += 1
        items: list[Mapping[str, Any]] = page.data
        if w.hi is None and w.cursor is None:  # the list as it stands now: the top window
            self.first_page_arrived()
        for payout in items:
            self.take(payout)
        if not page.has_more:
            return []
        if page.next_cursor in w.cursors or page.next_cursor == w.cursor:
            from batchpay.errors import ApiError

            raise ApiError(
                "GET /v1/payouts: the list says has_more but gives no new next_cursor",
                status=page.status,
                code="invalid_pagination",
                request_id=page.request_id,
            )
        seen = w.cursors | {w.cursor} if w.cursor is not None else w.cursors
        more = _Window(w.lo, w.hi, page.next_cursor, seen)
        top = _ts(items[0].get("created_at")) if items else None
        oldest = _ts(items[-1].get("created_at")) if items else None
        if top is None or oldest is None or oldest >= top:
            return [more]  # one timestamp (or none to go by): only the cursor moves on
        # Everything in ``w`` newer than ``oldest`` is read; the rest is [lo, oldest],
        # guessed as dense as the older half of this page.
        half = items[len(items) // 2 :]
        near = _ts(half[0].get("created_at")) or oldest
        whole = _whole_seconds(items)
        tick = 1.0 if whole else 1e-6
        per_second = len(half) / max((near - oldest).total_seconds(), tick)
        # A page can span less than a whole second of a burst: how many the sweep has seen
        # at this page's timestamps (pages before it counted too) is the better guess then.
        per_second = max(per_second, max(self._per_stamp[str(p.get("created_at"))]
                                         for p in items) / tick)  # fmt: skip
        points = _split_points(w.lo, oldest, per_second, whole=whole)
        if not points:
            return [more]
        bounds = [w.lo, *points]
        # The last window ends where the oldest payout's shown instant ends: a provider that
        # keeps finer time than it shows holds the rest of that instant after its start.
        highs = [_iso_at(p) for p in points] + [_end_of(str(items[-1]["created_at"]))]
        return [_Window(lo, hi) for lo, hi in zip(bounds, highs, strict=True)]


# A second of this journal's own payouts holding more than this many gets a window of its
# own in the sweep's first round (fewer: the windows between them find them).
DENSE_SECOND = 100


def _dense_seconds(
    journal: Journal, environment: str, after: datetime | None, provider_clock: ProviderClock
) -> list[datetime]:
    """The whole seconds (provider time) where this journal sent many payouts since
    ``after``: a guess of where the sweep will find them, so only ever a hint."""
    if after is None or not provider_clock.observed:
        return []
    offset = provider_clock.now() - provider_clock.local()
    since = format_ts(after - offset - timedelta(seconds=1))
    dense = []
    for second, n in journal.sent_per_second(environment, since).items():
        at = _ts(second + "Z")
        if n > DENSE_SECOND and at is not None:
            dense.append((at + offset).replace(microsecond=0))
    return sorted(set(dense))


def _planned(after: datetime, dense: Iterable[datetime]) -> list[_Window]:
    """[after, now] cut into windows read side by side from the start: each ``dense``
    second alone, the time between them, and an unbounded window above the last.

    The windows cover every instant from ``after`` on whatever the guess, so a wrong one
    costs a few pages, never a payout."""
    windows: list[_Window] = []
    at = after
    tick = timedelta(seconds=1)
    for second in sorted(s for s in set(dense) if s + tick > after):
        lo = max(second, after)
        if lo > at:
            windows.append(_Window(at, _iso(lo - timedelta(microseconds=1))))
        windows.append(_Window(lo, _iso(second + tick - timedelta(microseconds=1))))
        at = second + tick
    if not windows:
        return []
    return [*windows, _Window(at, None)]


def _split_points(
    lo: datetime | None, oldest: datetime, per_second: float, *, whole: bool
) -> list[datetime]:
    """Times strictly between ``lo`` and ``oldest`` cutting [lo, oldest] into windows.

    At the density guessed, a window of :data:`PAGES_PER_WINDOW` pages is ``width`` wide.
    A rest a few such windows wide is cut evenly; none when it is about one window (it is
    read on by cursor). A wider rest, or one with no floor (a bootstrap), is cut into
    windows twice as wide at each step back in time, the last reaching ``lo``: a guess
    that is wrong costs a few empty pages, never many.
    """
    width = timedelta(seconds=PAGES_PER_WINDOW * _PAGE / per_second)
    cuts: list[datetime]
    if lo is not None and oldest - lo <= width * MAX_SPLIT:
        span = oldest - lo
        n = math.ceil(span / width)
        if n < 2:
            return []
        cuts = [lo + span / n * i for i in range(1, n)]
    else:
        cuts = [oldest - width * (2**i - 1) for i in range(1, GEOMETRIC_SPLIT)]
    points: list[datetime] = []
    for p in cuts:
        if whole:  # the provider shows whole seconds: cut at whole seconds
            p = p.replace(microsecond=0)
        if (lo is None or p > lo) and p < oldest and p not in points:
            points.append(p)
    return sorted(points)


_PAGE = 100


def _whole_seconds(items: list[Mapping[str, Any]]) -> bool:
    return all("." not in str(p.get("created_at") or "") for p in items)


def _ts(value: object) -> datetime | None:
    try:
        return parse_ts(str(value))
    except ValueError:
        return None


def _end_of(shown: str) -> str:
    """The last microsecond of the instant ``shown`` names at its own precision (the end of
    its second for ``…:05Z``, of its millisecond for ``…:05.123Z``), as a window bound."""
    m = re.match(r"^[^.]*T[0-9:]+(?:\.([0-9]*))?(?:[Zz]|[+-][0-9:]+)$", shown)
    at = _ts(shown)
    if m is None or at is None:
        return shown
    digits = len(m.group(1) or "")
    if digits >= 6:
        return _iso(at)
    return _iso(at + timedelta(microseconds=10 ** (6 - digits) - 1))


def _iso_at(dt: datetime) -> str:
    """A window bound, written as the provider writes its timestamps (in UTC)."""
    if dt.microsecond:
        return _iso(dt)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso(dt: datetime) -> str:
    """A UTC timestamp to the microsecond; ``dt`` may be at any offset."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class RowLook:
    """What this journal knows of one row key: its intents (oldest attempt first) and the
    provider's payouts for it that a sweep saw. Read once per row and used for both
    questions asked of it before its intent — paid before? which attempt? — as the two
    reads would answer them; the intent's own transaction still refuses a second live one."""

    history: list[PayoutIntent]
    at_provider: list[ProviderPayout]

    @classmethod
    def read(cls, journal: Journal, environment: str, key: str) -> RowLook:
        return cls(
            journal.row_history(environment, key), journal.provider_payouts_for(environment, key)
        )

    @property
    def last_attempt(self) -> int:
        """:meth:`Journal.last_attempt` of the row key, from what was read."""
        attempts = [int(h.attempt) for h in self.history]
        attempts += [int(p.attempt) for p in self.at_provider]
        return max(attempts, default=0)


def paid_elsewhere_many(
    journal: Journal, environment: str, keys: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """What :func:`judge_history` makes of each key's history, every key at once (one
    query): only the keys it marks."""
    out = {}
    for key, history in journal.row_histories(environment, keys).items():
        if (fields := judge_history(history)) is not None:
            out[key] = fields
    return out


def judge_history(rows: Iterable[PayoutIntent]) -> dict[str, Any] | None:
    """What a row key's payout history (oldest attempt first) makes of a new row with it."""
    history = [h for h in rows if h.state != REJECTED]
    if not history:
        return None
    live = [h for h in history if not (h.state == CREATED and h.status in SETTLED_FAILURES)]
    if live:
        h = live[-1]
        other = str(h.run_id)
        if h.state == CREATED:
            return {"state": ALREADY_PAID, "related_run": other,
                    "error_message": f"already paid by run {other}",
                    "paid_amount": paid_amount(h)}  # fmt: skip
        return {
            "state": HELD,
            "related_run": other,
            "error_code": IN_FLIGHT_ELSEWHERE,
            "error_message": f"being paid by run {other}, which is not finished; run that "
            "file again to finish it, then this one",
        }
    last = history[-1]
    other = str(last.run_id)
    return {
        "state": HELD,
        "related_run": other,
        "error_code": "failed_in_other_run",
        "error_message": f"paid by run {other}, where its payout ended {last['status']}; "
        f"`batchpay retry-failed {other}` pays it again",
    }


def paid_amount(intent: PayoutIntent) -> tuple[str, str] | None:
    """(amount, currency) the beneficiary was to receive by ``intent`` (its request's
    ``dest_amount``; the provider's when the request is not readable)."""
    try:
        body = json.loads(str(intent.body or "{}"))
    except ValueError:
        body = {}
    amount = body.get("dest_amount") if isinstance(body, dict) else None
    currency = body.get("dest_currency") if isinstance(body, dict) else None
    amount, currency = amount or intent.dest_amount, currency or intent.dest_currency
    return (str(amount), str(currency)) if amount and currency else None


def amount_differs(
    row_amount: object, row_currency: object, paid: tuple[str, str] | None
) -> str | None:
    """The held row's message when a row already paid asks for another amount (a corrected
    file: the earlier payout stands, the difference is not paid by itself); else None."""
    if paid is None or row_amount in (None, "") or not row_currency:
        return None
    try:
        same = Decimal(str(row_amount)) == Decimal(paid[0]) and str(row_currency) == paid[1]
    except ArithmeticError:
        return None
    if same:
        return None
    return (
        f"already paid {paid[0]} {paid[1]}, but this file asks {row_amount} {row_currency}: "
        "the earlier payout stands; pay any difference as a row with a new reference"
    )


def held_if_amount_differs(found: dict[str, Any], asked: tuple[object, object]) -> dict[str, Any]:
    """``found`` (:func:`judge_history`'s fields for a row) without its paid amount; when it
    says already paid and the row ``asked`` (amount, currency) another amount, the row is
    held ``amount_differs`` instead: a corrected amount is never reported as paid."""
    paid = found.pop("paid_amount", None)
    differs = amount_differs(*asked, paid) if found.get("state") == ALREADY_PAID else None
    if differs is not None:
        found.update(state=HELD, error_code=AMOUNT_DIFFERS, error_message=differs)
    return found


def paid_before(
    journal: Journal, environment: str, row_key: str, asked: tuple[object, object]
) -> dict[str, Any] | None:
    """The row fields when a run of this journal (any, this one too) holds the row key's
    payout, held ``amount_differs`` when it paid another amount than ``asked``; None when
    none does. What a row is marked once the journal refused it a second live intent."""
    found = judge_history(journal.row_history(environment, row_key))
    return None if found is None else held_if_amount_differs(found, asked)


def paid_by_another_run(
    history: Iterable[PayoutIntent], run_id: str, asked: tuple[object, object]
) -> dict[str, Any] | None:
    """The row fields when another run of this journal holds the row's payout (its
    ``history``), held ``amount_differs`` when that run paid another amount than ``asked``;
    None when none does (or only ``run_id`` itself)."""
    found = judge_history(history)
    if found is None or found["related_run"] == run_id:
        return None
    return held_if_amount_differs(found, asked)


def request_body(payout: Mapping[str, Any]) -> dict[str, Any]:
    """The ``POST /v1/payouts`` body a provider payout was made with (for a retry of it)."""
    fields = ("beneficiary_id", "instrument_id", "source_amount", "source_currency",
              "dest_amount", "dest_currency", "method", "rail_type", "fixed_side", "fee_bearer",
              "purpose", "reference", "metadata")  # fmt: skip
    return {k: payout[k] for k in fields if payout.get(k) is not None}


def paid_at_provider(
    journal: Journal,
    environment: str,
    run_id: str,
    row_number: int,
    row_key: str,
    *,
    hold_failed: bool = True,
    look: RowLook | None = None,
    asked: tuple[object, object] | None = None,
) -> bool:
    """Whether the provider's ledger holds a payout for this row made from another journal.

    A live one is adopted (the row is ``already_paid`` with its payout id — or, when it paid
    another amount than the row's ``asked`` (amount, currency), held ``amount_differs``);
    one that ended without paying holds the row for a person, since paying it again is a
    decision — unless ``hold_failed`` is off (``retry-failed``, where that decision was made).
    """
    found = (
        look.at_provider if look is not None else journal.provider_payouts_for(environment, row_key)
    )
    if not found:
        return False
    live = [p for p in found if p.status not in SETTLED_FAILURES]
    if live:
        first = live[0]
        note = (
            f"already paid: the provider holds payout {first.payout_id} "
            f"({first.status or 'created'}) for this row, made outside this journal"
        )
        doc = json.loads(str(first.doc))
        paid = (str(doc.get("dest_amount")), str(doc.get("dest_currency")))
        differs = None if asked is None else amount_differs(*asked, paid)
        if journal.adopt_provider_payout(
            environment=environment,
            run_id=run_id,
            row_number=row_number,
            found=dict(first),
            body=dumps_body(request_body(doc)),
            note=note,
            hold=None if differs is None else (AMOUNT_DIFFERS, differs),
        ):
            journal.record_payout_created(
                str(first.idempotency_key), doc, request_id=None, settled_by="ledger"
            )
            return True
        # Not adopted: this journal holds a live intent for the row already (another run's,
        # or this run's, adopted before), or holds the payout's very key refused (the other
        # home sent it after the provider forgot this journal's refusal). Paid all the same:
        # never left planned, and a corrected amount is held, not reported paid.
        fields = judge_history(journal.row_history(environment, row_key))
        if fields is None:
            made = paid if doc.get("dest_amount") and doc.get("dest_currency") else None
            fields = {"state": ALREADY_PAID, "error_message": note, "paid_amount": made}
        if asked is not None:
            fields = held_if_amount_differs(fields, asked)
        fields.pop("paid_amount", None)
        journal.update_row(run_id, row_number, **fields)
        return True
    if not hold_failed:
        return False
    last = found[-1]
    journal.update_row(
        run_id,
        row_number,
        state=HELD,
        error_code="failed_elsewhere",
        error_message=f"the provider holds payout {last['payout_id']} for this row, made "
        f"outside this journal, which ended {last['status']}; pay it again from the journal "
        "that made it (batchpay retry-failed)",
    )
    return True


class _Canceller(LedgerClient, Protocol):
    async def cancel_payout(
        self, payout_id: str, idempotency_key: str, reason: str | None = None
    ) -> Any: ...


async def cancel_second_payouts(
    client: _Canceller,
    journal: Journal,
    environment: str,
    run_id: str,
    *,
    provider_clock: ProviderClock,
) -> int:
    """Before a run ends: read the ledger again and cancel this run's payout of a row the
    provider holds another live payout for, the later of the two; return how many.

    Two homes can pay one row at the same time when one of them goes through the
    provider's batch upload (its payouts carry batchpay's key in their metadata, but the
    provider made them under no idempotency key, so it cannot refuse the other home's
    per-row request). Both runs keep the oldest payout (by the provider's ``created_at``,
    then id), so they never cancel both. The cancels leave side by side (a payout is
    cancellable only until the provider approves it). A payout that can no longer be
    cancelled is kept on the row as ``duplicate_payout``: a person must recall it.
    """
    mine = [r for r in journal.rows(run_id) if r.payout_id and r.idempotency_key]
    if not mine:
        return 0
    await sweep(client, journal, environment, provider_clock=provider_clock)
    extra: list[tuple[Any, str]] = []
    for r in mine:
        live = [
            p
            for p in journal.provider_payouts_for(environment, r.row_key)
            if (p.status or "") not in SETTLED_FAILURES
        ]
        if len(live) < 2 or r.payout_id not in {p.payout_id for p in live}:
            continue
        keep = min(live, key=lambda p: (p.created_at, p.payout_id))
        if keep.payout_id != r.payout_id:
            extra.append((r, keep.payout_id))
    done = await asyncio.gather(*(_cancel_second(client, journal, run_id, r, k) for r, k in extra))
    return sum(done)


async def _cancel_second(
    client: _Canceller, journal: Journal, run_id: str, r: Any, keep: str
) -> bool:
    from batchpay.errors import ApiError, AuthenticationError, TransportError

    pid, key = str(r.payout_id), str(r.idempotency_key)
    try:
        result = await client.cancel_payout(pid, f"bp1-cancel-{pid}", reason=f"duplicate of {keep}")
    except (TransportError, ApiError) as exc:
        if isinstance(exc, AuthenticationError):
            raise
        journal.note_payout_problem(
            key,
            code="duplicate_payout",
            message=f"the provider also holds {keep} for this row (paid elsewhere at the "
            f"same time); {pid} could not be cancelled ({exc.message}): a person must "
            "recall it",
        )
        return False
    data = getattr(result, "data", None)
    status = str(data.get("status") or "cancelled") if isinstance(data, dict) else "cancelled"
    journal.record_status(pid, status, source="cancel")
    journal.note_payout_problem(
        key,
        code="duplicate_cancelled",
        message=f"paid elsewhere at the same time as {keep}; this run's payout {pid} was cancelled",
    )
    log.warning(
        "run %s: row %s was paid elsewhere at the same time (%s); %s cancelled",
        run_id, r.row_number, keep, pid,
        extra={"run_id": run_id, "row": r.row_number, "payout_id": pid},
    )  # fmt: skip
    return True


# A batch in these states may still turn into payouts (batchpay.batches' own sets).
_BATCH_OPEN = frozenset({"uploaded", "validating", "validated", "confirmed", "processing"})
BATCH_OPEN = _BATCH_OPEN
BATCH_PAYING = frozenset({"confirmed", "processing"})
"""Open batches past their home's last sweep: they pay whatever they hold."""
"""The statuses of a batch that may still make payouts."""
_BATCH_NEVER_PAID = frozenset({"validation_failed", "cancelled", "expired"})
BATCH_FILE_PREFIX = "batchpay-"


class _BatchLister(Protocol):
    def iter_batches(self, *, created_after: datetime | str | None = None) -> Any: ...


# A validated batch this long past its ``expires_at`` (the provider's clock) can no longer
# be confirmed: it is taken as expired (the provider's list still says ``validated``).
EXPIRY_MARGIN = timedelta(minutes=10)


async def foreign_batches(
    client: _BatchLister,
    journal: Journal,
    *,
    since: datetime,
    open_only: bool,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """batchpay's batches at the provider since ``since`` that this journal did not begin
    (another home's ``--via batches``): still open, or (``open_only=False``) any that may
    have paid. An account without the batch feature (403/404) has none.

    ``now`` is the provider's time: a validated batch past its confirmation deadline (with
    ``EXPIRY_MARGIN``) is never confirmed, so it is neither open nor paid — it held every
    per-row run of another home for the week the look goes back."""
    from batchpay.errors import ApiError

    found = []
    try:
        async for b in client.iter_batches(created_after=since):
            name = str(b.get("file_name") or "")
            status = str(b.get("status") or "")
            if not name.startswith(BATCH_FILE_PREFIX) or journal.knows_batch_file(name):
                continue
            if status == "validated" and now is not None:
                expires = _ts(b.get("expires_at"))
                if expires is not None and now > expires + EXPIRY_MARGIN:
                    continue
            if status in _BATCH_OPEN or (not open_only and status not in _BATCH_NEVER_PAID):
                found.append(dict(b))
    except ApiError as exc:
        if exc.status not in (403, 404):
            raise
    return found


class ForeignBatchWatch:
    """Another home's batchpay batches, asked at most every ``interval`` seconds.

    A per-row run asks before each payout it sends, so a batch another home uploads while
    the run is sending is seen within ``interval`` — while the provider still validates
    it, before it can be confirmed (its own last sweep before confirming then finds the
    payouts this run made meanwhile). Concurrent rows share one request.

    Each look lists the batches that may have paid as well as the open ones: a batch that
    ended after the run's last sweep began (:meth:`ended_since`) has made payouts that sweep
    did not list, which the run must read before it sends another row.
    """

    def __init__(
        self,
        client: _BatchLister,
        journal: Journal,
        *,
        since: datetime,
        interval: float = FOREIGN_BATCH_INTERVAL,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.client = client
        self.journal = journal
        self.since = since
        self.interval = interval
        self.clock = clock  # the provider's time (expired batches are not open)
        self._asked_at: float | None = None
        self._found: list[dict[str, Any]] = []
        self._ended: dict[str, datetime] = {}  # no longer open: id -> when it last changed
        self._lock = asyncio.Lock()

    async def open_batches(self, *, fresh: bool = False) -> list[dict[str, Any]]:
        """The open batches found by the latest look (looking again if it is stale, or
        ``fresh``: asked after this call began)."""
        began = time.monotonic()
        # A fresh answer and no look under way (else its answer is waited for): what taking
        # the free lock would have returned, without taking it.
        if not fresh and self._answer_fresh(began) and not self._lock.locked():
            return self._found
        async with self._lock:
            asked = self._asked_at
            stale = not self._answer_fresh(time.monotonic())
            if stale or (fresh and asked is not None and asked < began):
                found = await foreign_batches(
                    self.client, self.journal, since=self.since, open_only=False,
                    now=self.clock() if self.clock else None,
                )  # fmt: skip
                self._found = [b for b in found if b.get("status") in _BATCH_OPEN]
                self._ended = {
                    str(b.get("id")): _changed_at(b)
                    for b in found
                    if b.get("status") not in _BATCH_OPEN
                }
                self._asked_at = time.monotonic()
        return self._found

    def _answer_fresh(self, now: float) -> bool:
        """Whether the latest look was asked less than ``interval`` before ``now``."""
        return self._asked_at is not None and now - self._asked_at < self.interval

    def ended_since(self, at: datetime, *, known: frozenset[str] = frozenset()) -> set[str]:
        """Batches the latest look found no longer open that changed at ``at`` or later (the
        provider's time), less the ``known`` ones: they may have made payouts a sweep begun
        at ``at`` missed."""
        return {i for i, changed in self._ended.items() if changed >= at and i not in known}

    def answered(self, found: list[dict[str, Any]], *, asked_at: float) -> None:
        """Take the open batches another look found, asked at ``asked_at`` (this machine's
        monotonic clock, before the request left): :meth:`open_batches` within ``interval``
        of that ask answers with them instead of asking again. Its age is counted from the
        ask, not the answer, so it is never younger than an answer of the watch's own."""
        if self._asked_at is None or asked_at > self._asked_at:
            self._found = list(found)
            self._asked_at = asked_at


def _changed_at(batch: Mapping[str, Any]) -> datetime:
    """When a batch last changed (one without a readable time: the latest possible, so it
    is never taken for an old one)."""
    changed = _ts(batch.get("updated_at") or batch.get("created_at"))
    return changed if changed is not None else datetime.max.replace(tzinfo=UTC)


LOOK_STEPS = 8
"""Event-loop turns :meth:`LedgerLook.step` yields (an answer read, the next pages asked)."""


class LedgerLook:
    """Another home's open batches, then the sweep: started as soon as a new run's plan
    says it will send, so both read beside the run's own start-up (the balance check,
    the journal's inserts) instead of after it.

    Nothing is sent before :meth:`result` returns (the strategy awaits it before its
    first payout, as it awaited the sweep itself); a look that failed raises there.
    """

    def __init__(
        self,
        client: Any,
        journal: Journal,
        environment: str,
        *,
        provider_clock: ProviderClock,
        on_progress: ProgressFn | None = None,
    ) -> None:
        started = provider_clock.now() - OVERLAP
        self.watch = ForeignBatchWatch(client, journal, since=started - timedelta(days=7),
                                       clock=provider_clock.now)  # fmt: skip
        self.provider_clock = provider_clock
        self.since = started
        """Before the look asked for open batches (the provider's time, less the overlap):
        a batch created since may have been missed by the look (:meth:`made_since`)."""
        self._looked: list[dict[str, Any]] | None = None  # the open batches it found
        self._sending: tuple[Any, Journal] | None = None  # set by made_since_after
        self._made: asyncio.Future[list[dict[str, Any]]] | None = None
        self._task = asyncio.ensure_future(self._look(
            client, journal, environment, provider_clock, on_progress
        ))  # fmt: skip

    async def _look(
        self,
        client: Any,
        journal: Journal,
        environment: str,
        provider_clock: ProviderClock,
        on_progress: ProgressFn | None,
    ) -> list[dict[str, Any]]:
        # The batch look-up is answered before the sweep's first page is asked: a batch no
        # longer open then has made all its payouts, which that page lists.
        found = await self.watch.open_batches()
        self._looked = found
        # The provider's clock is observed now: the look-up was asked after this, less the
        # overlap (the clock read before it may have been this machine's own).
        self.since = min(self.since, provider_clock.now() - OVERLAP)
        await sweep(client, journal, environment, provider_clock=provider_clock,
                    on_progress=on_progress, on_read=self._pages_read)  # fmt: skip
        return found

    def _pages_read(self) -> Any:
        """Every page is read: a run already waiting to send asks :meth:`made_since` now,
        while the sweep's finds are stored (its request out one event-loop turn later)."""
        if self._sending is None or self._made is not None:
            return None
        self._made = asyncio.ensure_future(self.made_since(*self._sending))
        return asyncio.sleep(0)

    async def made_since_after(self, client: Any, journal: Journal) -> list[dict[str, Any]]:
        """:meth:`result`'s wait, then :meth:`made_since`: for a run whose start-up is over
        (it sends next). Asked as soon as the sweep's pages are read, not after their finds
        are stored, when the run was already waiting then."""
        self._sending = (client, journal)
        try:
            await self.result()
        except BaseException:
            if self._made is not None:
                self._made.cancel()
                await asyncio.wait([self._made])
            raise
        if self._made is None:
            self._made = asyncio.ensure_future(self.made_since(client, journal))
        return await self._made

    async def made_since(self, client: Any, journal: Journal) -> list[dict[str, Any]]:
        """Another home's batches created since the look asked for open ones, open or
        not: while the run's start-up went on after the look, one may have been uploaded
        and even paid (its payouts after the sweep's pages, no idempotency key to refuse
        ours), which neither the look nor a watch of open batches would see.

        Its answer is also the watch's: a batch open when it was asked was either created
        before the look began (then open when the look asked, and among the look's) or
        since (then among these). So the look's open batches with the open ones here are
        every batch open at that ask (a few perhaps closed since: held for, as the watch
        would), and the first payout's watch asks nothing new within its interval."""
        asked_at = time.monotonic()
        now = self.watch.clock() if self.watch.clock else None
        made = await foreign_batches(client, journal, since=self.since, open_only=False, now=now)
        if self._looked is not None:
            # (a sweep that failed is raised by result(): nothing is sent on this answer)
            still = [b for b in made if b.get("status") in _BATCH_OPEN]
            self.watch.answered([*self._looked, *still], asked_at=asked_at)
        return made

    async def step(self) -> None:
        """Let the look move on between two stretches of the run's own start-up (its answers
        read, its next pages asked), which hold the event loop while they last."""
        for _ in range(LOOK_STEPS):
            if self._task.done():
                return
            await asyncio.sleep(0)

    async def result(self) -> list[dict[str, Any]]:
        """Wait for the sweep; the open foreign batches found before it (raises as it did)."""
        return await self._task

    async def close(self) -> None:
        """Stop a look no longer wanted (the run ended or failed first); a failure it met
        is not raised here (:meth:`result` raised it, or the run's own error wins)."""
        if not self._task.done():
            self._task.cancel()
        await asyncio.wait([self._task])
        if not self._task.cancelled():
            self._task.exception()  # retrieved: the run's own error is the one raised


def withhold_beside_batches(journal: Journal, key: str, found: list[dict[str, Any]]) -> bool:
    """Leave an unfinished intent ``unknown`` (``in_flight_elsewhere``), not sent again,
    while another home's batches ``found`` are open — their payouts carry no key that could
    refuse a resend — unless the ledger already shows its payout. Whether it was held."""
    if not found or journal.provider_payout_for_key(key) is not None:
        return False
    journal.record_payout_unknown(
        key, code=IN_FLIGHT_ELSEWHERE, message=foreign_batch_hold(found), request_id=None
    )
    return True


def foreign_batch_hold(found: list[dict[str, Any]]) -> str:
    """The held row's message while another home's batch is open."""
    names = ", ".join(f"{b.get('id')} ({b.get('status')})" for b in found[:3])
    return (
        f"another batchpay home's batch is open at the provider ({names}) and may pay this "
        "row; run this file again once it has ended"
    )
