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
the whole list. On an up-to-date journal a sweep costs one request plus one per hundred
payouts made since the last one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from batchpay.clocks import ProviderClock
from batchpay.journal import (
    CREATED,
    REJECTED,
    SETTLED_FAILURES,
    Journal,
    dumps_body,
    parse_ts,
)
from batchpay.journal.records import PayoutIntent
from batchpay.states import ALREADY_PAID, HELD, IN_FLIGHT_ELSEWHERE

METADATA_KEY = "batchpay_key"
_KEY_RE = re.compile(r"^bp1-([0-9a-f]{40})-([1-9][0-9]{0,8})$")
OVERLAP = timedelta(minutes=1)
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
) -> Sweep:
    """Read the payouts made since the last sweep and remember batchpay's among them.

    Raises the client's TransportError / ApiError when the list cannot be read: then
    nothing may be sent for the first time, and the caller leaves those rows planned.
    """
    high_water = journal.ledger_high_water(environment)
    after: datetime | None = parse_ts(high_water) - OVERLAP if high_water else None
    found: list[dict[str, Any]] = []
    newest: datetime | None = None
    started: datetime | None = None
    read = 0
    async for payout in client.iter_payouts(created_after=after):
        if started is None:
            # The provider's time as the first page arrived: everything created before
            # it (less the overlap) has now been listed.
            started = provider_clock.now() if provider_clock.observed else None
        read += 1
        rec = _record(payout)
        if rec is not None:
            found.append(rec)
        try:
            created = parse_ts(str(payout.get("created_at")))
        except ValueError:
            created = None
        if created is not None and (newest is None or created > newest):
            newest = created
        if on_progress is not None and read % 100 == 0:
            on_progress("ledger", read, 0)
    if started is None and provider_clock.observed:
        started = provider_clock.now()
    marks = [t for t in (newest, started) if t is not None]
    mark = max(marks) if marks else None
    new_mark = _iso(mark) if mark is not None else None
    journal.record_ledger_sweep(environment, found, new_mark)
    if on_progress is not None and read:
        on_progress("ledger", read, read)
    log.info(
        "provider ledger %s: %d payout(s) read, %d made by batchpay, high-water mark %s",
        "bootstrapped" if high_water is None else "swept", read, len(found), new_mark,
        extra={"payouts_read": read, "batchpay_payouts": len(found), "high_water": new_mark},
    )  # fmt: skip
    return Sweep(high_water is None, read, len(found), new_mark or high_water)


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def paid_elsewhere(journal: Journal, environment: str, key: str) -> dict[str, Any] | None:
    """Row fields marking a row whose payout another run holds, or None if none does.

    A payout the provider confirmed makes the row ``already_paid``; one still in flight in
    an unfinished run holds the row (the other run must be finished first), so the report
    never claims a payment that may yet be refused; one that ended without paying (failed,
    returned …) holds the row with the command that pays it again.
    """
    return judge_history(journal.row_history(environment, key))


def paid_elsewhere_many(
    journal: Journal, environment: str, keys: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """:func:`paid_elsewhere` of every key at once (one query): only the keys it marks."""
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
                    "error_message": f"already paid by run {other}"}  # fmt: skip
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
) -> bool:
    """Whether the provider's ledger holds a payout for this row made from another journal.

    A live one is adopted (the row is ``already_paid`` with its payout id); one that ended
    without paying holds the row for a person, since paying it again is a decision — unless
    ``hold_failed`` is off (``retry-failed``, where that decision was made).
    """
    found = journal.provider_payouts_for(environment, row_key)
    if not found:
        return False
    live = [p for p in found if p.status not in SETTLED_FAILURES]
    if live:
        first = live[0]
        note = (
            f"already paid: the provider holds payout {first.payout_id} "
            f"({first.status or 'created'}) for this row, made outside this journal"
        )
        if journal.adopt_provider_payout(
            environment=environment,
            run_id=run_id,
            row_number=row_number,
            found=dict(first),
            body=dumps_body(request_body(json.loads(str(first.doc)))),
            note=note,
        ):
            doc = json.loads(str(first.doc))
            journal.record_payout_created(
                str(first.idempotency_key), doc, request_id=None, settled_by="ledger"
            )
            return True
        elsewhere = paid_elsewhere(journal, environment, row_key)
        if elsewhere is not None:
            journal.update_row(run_id, row_number, **elsewhere)
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
_BATCH_NEVER_PAID = frozenset({"validation_failed", "cancelled", "expired"})
BATCH_FILE_PREFIX = "batchpay-"


class _BatchLister(Protocol):
    def iter_batches(self, *, created_after: datetime | str | None = None) -> Any: ...


async def foreign_batches(
    client: _BatchLister, journal: Journal, *, since: datetime, open_only: bool
) -> list[dict[str, Any]]:
    """batchpay's batches at the provider since ``since`` that this journal did not begin
    (another home's ``--via batches``): still open, or (``open_only=False``) any that may
    have paid. An account without the batch feature (403/404) has none."""
    from batchpay.errors import ApiError

    found = []
    try:
        async for b in client.iter_batches(created_after=since):
            name = str(b.get("file_name") or "")
            status = str(b.get("status") or "")
            if not name.startswith(BATCH_FILE_PREFIX) or journal.knows_batch_file(name):
                continue
            if status in _BATCH_OPEN or (not open_only and status not in _BATCH_NEVER_PAID):
                found.append(dict(b))
    except ApiError as exc:
        if exc.status not in (403, 404):
            raise
    return found


class ForeignBatchWatch:
    """Another home's open batchpay batches, asked at most every ``interval`` seconds.

    A per-row run asks before each payout it sends, so a batch another home uploads while
    the run is sending is seen within ``interval`` — while the provider still validates
    it, before it can be confirmed (its own last sweep before confirming then finds the
    payouts this run made meanwhile). Concurrent rows share one request.
    """

    def __init__(
        self, client: _BatchLister, journal: Journal, *, since: datetime, interval: float = 0.25
    ) -> None:
        self.client = client
        self.journal = journal
        self.since = since
        self.interval = interval
        self._asked_at: float | None = None
        self._found: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()

    async def open_batches(self) -> list[dict[str, Any]]:
        """The open batches found by the latest look (looking again if it is stale)."""
        async with self._lock:
            now = time.monotonic()
            if self._asked_at is None or now - self._asked_at >= self.interval:
                self._found = await foreign_batches(
                    self.client, self.journal, since=self.since, open_only=True
                )
                self._asked_at = time.monotonic()
        return self._found


def foreign_batch_hold(found: list[dict[str, Any]]) -> str:
    """The held row's message while another home's batch is open."""
    names = ", ".join(f"{b.get('id')} ({b.get('status')})" for b in found[:3])
    return (
        f"another batchpay home's batch is open at the provider ({names}) and may pay this "
        "row; run this file again once it has ended"
    )
