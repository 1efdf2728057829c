"""Submission strategies: how a run's planned rows reach the provider.

A strategy takes a connection, the run and its checked file, and brings every row to a
payout intent the provider holds (or to a reason it was not sent). :class:`PerRow` sends
one ``POST /v1/payouts`` per row, each after finding or creating its beneficiary and
instrument; the provider's batch upload is the next strategy behind the same protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from batchpay import ledger
from batchpay.checks import CheckedFile
from batchpay.connection import Connection
from batchpay.errors import ApiError, AuthenticationError, JournalError, TransportError
from batchpay.holds import RELEASED_BY_RERUN
from batchpay.journal import CREATED, Journal, LivePayoutExists
from batchpay.journal.records import Row
from batchpay.options import RunOptions
from batchpay.resolve import Held, Refused, Resolver
from batchpay.states import ALREADY_PAID, HELD, IN_FLIGHT_ELSEWHERE, PAYOUT, PLANNED, ROW_REJECTED
from batchpay.submit import SendWithheld, Submitter

ProgressFn = Callable[[str, int, int], None]
T = TypeVar("T")
# Rows worked on at once when --concurrency is not given: the client's requests in flight
# (sized from the limit and the latency, at most ratelimit.max_in_flight()) are the real bound.
ROWS_IN_FLIGHT = 384
log = logging.getLogger(__name__)


class Submission(Protocol):
    """A way to submit a run's rows."""

    async def submit_run(
        self,
        conn: Connection,
        run_id: str,
        checked: CheckedFile,
        options: RunOptions,
        on_progress: ProgressFn | None = None,
    ) -> None:
        """Settle what is in flight, then send every row still to be paid."""


def waits_for_other_run(r: Row) -> bool:
    """A row held because another, unfinished run holds its payout in flight."""
    return bool(r.state == HELD and r.error_code == IN_FLIGHT_ELSEWHERE)


def close_run_if_done(journal: Journal, run_id: str, *, final_only: bool = False) -> None:
    """Mark the run finished when no row is left to send or settle.

    With ``final_only`` (a run asked to ``--wait``) the run also stays open while a payout
    has not reached a final status, so running the same command again follows it.
    """
    if not journal.has_unfinished_rows(run_id, final_only=final_only):
        journal.set_run_status(run_id, "finished")


class PerRow:
    """One ``POST /v1/payouts`` per row, ``concurrency`` rows at a time."""

    async def submit_run(
        self,
        conn: Connection,
        run_id: str,
        checked: CheckedFile,
        options: RunOptions,
        on_progress: ProgressFn | None = None,
    ) -> None:
        """Settle the run's intents in flight, then resolve and pay each row still planned."""
        await _PerRowRun(conn, run_id, checked, options, on_progress).run()


async def _side_by_side(
    work: Callable[[T], Awaitable[None]], items: Sequence[T], *, width: int
) -> None:
    """``work`` on each item, at most ``width`` at once, in the items' order: ``width``
    workers take the next item as each finishes one (no task, nor wait on a semaphore, per
    item). On the first error (a journal that cannot be written, say) the others are
    stopped and waited for — their own ``finally`` blocks run while the journal is still
    open — before it is raised: none is left running into the journal's close (each would
    end in a traceback as the event loop shuts down)."""
    queue = iter(items)

    async def worker() -> None:
        for item in queue:  # (one iterator, taken from on the loop's thread only)
            await work(item)

    tasks = [asyncio.ensure_future(worker()) for _ in range(max(1, min(width, len(items))))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class _PerRowRun:
    """The state of one per-row submission: the run, its stages and its progress."""

    def __init__(
        self,
        conn: Connection,
        run_id: str,
        checked: CheckedFile,
        options: RunOptions,
        on_progress: ProgressFn | None,
    ) -> None:
        self.conn = conn
        self.journal = conn.journal
        self.env = conn.settings.environment
        self.run_id = run_id
        self.checked = checked
        self.options = options
        self.on_progress = on_progress
        self.submitter = Submitter(
            conn.client,
            self.journal,
            self.env,
            clock=conn.clock,
            provider_clock=conn.provider_clock,
            before_first_send=self._before_first_send,
            ledger_stale=self._ledger_stale,
        )
        self.resolver = Resolver(
            conn.client,
            self.journal,
            self.env,
            allow_new_bank_details=options.allow_new_bank_details,
            clock=conn.clock,
        )
        self.done = 0
        self.total = 0
        self.stop: list[BaseException] = []
        self.batch_watch: ledger.ForeignBatchWatch | None = None
        self._said_waiting = False  # the wait for another home's batch was logged
        # When the last sweep of the provider's ledger began (its time, less the overlap):
        # rows are not sent on a sweep older than ledger.LEDGER_MAX_AGE, nor on one a
        # foreign batch that ended since has outdated (_sweep_again).
        self.swept_at: datetime | None = None
        self._sweeping = asyncio.Lock()
        self._swept_batches: frozenset[str] = frozenset()  # ended before the last sweep began
        # A resumed run may be fed a re-saved copy whose rows moved: journal rows are
        # matched to the file's rows by business identity and content, never by number.
        # Keys and content hashes on whole columns (the planner's own, oracle-tested against
        # the per-row functions), so no row is hashed again in Python while sending.
        self.by_key: dict[str, Mapping[str, Any]] = {}
        self.hash_by_key: dict[str, str] = {}
        keys = checked.valid_keys(self.env)
        hashes = checked.valid_hashes.to_list()
        for key, content_hash, row in zip(keys, hashes, checked.valid_rows.values(), strict=True):
            if key not in self.by_key:
                self.by_key[key] = row
                self.hash_by_key[key] = content_hash

    def _tick(self) -> None:
        self.done += 1
        if self.on_progress is not None:
            self.on_progress("submit", self.done, self.total)

    async def run(self) -> None:
        rows = self.journal.rows(self.run_id)
        if self.conn.ledger_look is not None:  # its answers read, its next pages asked
            await self.conn.ledger_look.step()
        open_intents = [p for p in self.journal.open_payouts(self.run_id) if p.state != CREATED]
        todo = [r for r in rows if r.state == PLANNED or waits_for_other_run(r)]
        if self.options.allow_new_bank_details:
            todo += [r for r in rows if r.state == HELD and not waits_for_other_run(r)]
        else:  # read again: paid when the row is now what the run planned
            todo += [r for r in rows if r.state == HELD and r.error_code in RELEASED_BY_RERUN]
        self.total = len(open_intents) + sum(1 for r in rows if r.state in (PLANNED, HELD))
        # The payees the journal holds as the run begins: read while the ledger look is out.
        self.resolver.remember_known({str(r.beneficiary_ref) for r in todo})
        started = self.conn.provider_clock.now() - ledger.OVERLAP
        swept_at = started  # before any sweep of this run begins
        look = self.conn.ledger_look  # closed by the pipeline once the run ends
        if look is not None and not (open_intents or todo):
            await look.close()
        elif look is not None:
            # Started beside the run's start-up (pipeline): the same look, in the same
            # order, ended before anything is sent.
            if not todo:
                found = await look.result()
            started = swept_at = look.since  # every batch made since is asked after
            if todo or open_intents:
                self.batch_watch = look.watch
                # The start-up went on after the look: a batch made meanwhile (even one
                # already paid) is asked for now, once the sweep's pages are read and
                # before the sweep is read again, in the same order as the look (a batch
                # no longer open has made its payouts).
                made = await look.made_since_after(self.conn.client, self.journal)
                found = await look.result()
                if made:
                    found += [b for b in made if b.get("status") in ledger.BATCH_OPEN]
                    await ledger.sweep(self.conn.client, self.journal, self.env,
                                       provider_clock=self.conn.provider_clock,
                                       on_progress=self.on_progress)  # fmt: skip
                todo = self._hold_for_foreign_batches(todo, found)
        elif open_intents or todo:
            # The provider's ledger is the last word: learn what it already holds (and its
            # clock) before settling or sending anything. Another home's open batches are
            # asked for first (a week back from now).
            swept = ledger.sweep(
                self.conn.client,
                self.journal,
                self.env,
                provider_clock=self.conn.provider_clock,
                on_progress=self.on_progress,
            )
            self.batch_watch = ledger.ForeignBatchWatch(
                self.conn.client, self.journal, since=started - timedelta(days=7),
                clock=self.conn.provider_clock.now,
            )  # fmt: skip
            # The look-up is answered before the sweep's first page is asked: a batch no
            # longer open then has made all its payouts, which that page lists. (Beside
            # it, a batch ending between the two was seen by neither.)
            try:
                found = await self.batch_watch.open_batches()
            except BaseException:
                swept.close()
                raise
            await swept
            todo = self._hold_for_foreign_batches(todo, found)
            started = self.conn.provider_clock.now() - ledger.OVERLAP  # as swept
        self.swept_at = swept_at
        if self.on_progress is not None:
            self.on_progress("submit", 0, self.total)
        # The journal's writes are committed in groups; each intent is still committed
        # before its request leaves (Submitter awaits journal.durable()).
        async with self.journal.grouped():
            await self._settle_and_send(open_intents, todo)
        if not (todo or open_intents):
            return
        check = asyncio.ensure_future(self._after_sending(started))
        if self.options.wait:  # followed to final statuses next: settled first
            await check
            return
        # The pipeline awaits it (before the run is closed and its lock let go), building the
        # report while the answer travels; its request leaves now.
        self.conn.final_check = check
        for _ in range(ledger.LOOK_STEPS):
            if check.done():
                break
            await asyncio.sleep(0)

    async def _after_sending(self, started: datetime) -> bool:
        """Whether another home made a batch while these rows were sent — its payouts carry no
        idempotency key that could refuse ours — and so a second payout of a row was
        cancelled (one payout per row is kept)."""
        if not await ledger.foreign_batches(
            self.conn.client, self.journal, since=started, open_only=False
        ):
            return False
        await ledger.cancel_second_payouts(
            self.conn.client, self.journal, self.env, self.run_id,
            provider_clock=self.conn.provider_clock,
        )  # fmt: skip
        return True

    async def _held_for_foreign_batch(self, intent: Any) -> bool:
        """An unfinished intent is not sent again while another home's batchpay batch is
        open: the batch was swept before this intent's payout reached the provider (if it
        ever did), so it may pay the row too, and its payouts carry no idempotency key to
        refuse a resend. Left ``unknown`` (said, exit 10) — unless the ledger already shows
        its payout, which settles it without a request — and settled by a run after the
        batch has ended, from the ledger's payout of the batch or by its own key."""
        key = str(intent["idempotency_key"])
        if self.batch_watch is None or self.journal.provider_payout_for_key(key) is not None:
            return False  # (settled by the ledger: no need to ask for batches)
        found = await self.batch_watch.open_batches()
        return ledger.withhold_beside_batches(self.journal, key, found)

    def _hold_for_foreign_batches(self, todo: list[Row], found: list[dict[str, Any]]) -> list[Row]:
        """Rows are not sent while another home's batchpay batch is open at the provider:
        it may hold them, and its payouts carry no idempotency key to refuse ours."""
        if not found:
            return todo
        message = ledger.foreign_batch_hold(found)
        for r in todo:
            if r.state == PLANNED or waits_for_other_run(r):
                self._set(int(r.row_number), state=HELD, error_code=IN_FLIGHT_ELSEWHERE,
                          error_message=message)  # fmt: skip
        log.warning("run %s: %s", self.run_id, message, extra={"run_id": self.run_id})
        return [r for r in todo if not (r.state == PLANNED or waits_for_other_run(r))]

    async def _settle_and_send(self, open_intents: list[Any], todo: list[Any]) -> None:
        # Rows in flight: as asked, or enough for the client's own in-flight sizing.
        width = max(1, self.options.concurrency or ROWS_IN_FLIGHT)

        # 1. Unfinished intents first: settle them with their own keys (each its own key,
        # so side by side; a run killed with many in flight resumes as fast as it sent).
        async def settle(intent: Any) -> None:
            if self.stop:
                return
            if await self._held_for_foreign_batch(intent):
                self._tick()
                return
            try:
                await self.submitter.settle(intent)
            except AuthenticationError as exc:
                self.stop.append(exc)
                return
            self._tick()

        await _side_by_side(settle, open_intents, width=width)
        if self.stop:
            raise self.stop[0]

        # 2. Rows not yet handed to the provider.
        async def one(r: Row) -> None:
            if not self.stop:
                await self._pay(r)

        await _side_by_side(one, todo, width=width)
        if self.stop:
            raise self.stop[0]

    async def _pay(self, r: Row) -> None:
        """Resolve one row's destination and submit its payout; record why if it cannot be."""
        number = int(r.row_number)
        row = self.by_key.get(str(r.row_key))
        if row is None or self.hash_by_key.get(str(r.row_key)) != r.content_hash:
            self._set(
                number,
                state=HELD,
                error_code="row_changed",
                error_message="the file being resumed no longer holds this row as planned",
            )
            return
        sent: str | None = None
        try:
            sent = await self._resolve_and_submit(r, number, row)
        except LivePayoutExists:
            # Another process got there between our check and our intent (held, as any
            # row paid before, when it paid another amount than this file asks).
            asked = (row.get("amount"), row.get("currency"))
            found = ledger.paid_before(self.journal, self.env, str(r.row_key), asked)
            if found is not None:
                self._set(number, **found)
        except Held as exc:
            self._set(number, state=HELD, error_code=exc.code, error_message=exc.message)
        except Refused as exc:
            self._set(number, state=ROW_REJECTED, error_code=exc.code,
                      error_message=exc.message, request_id=exc.request_id)  # fmt: skip
        except AuthenticationError as exc:
            self.stop.append(exc)
        except (TransportError, ApiError) as exc:
            # Could not resolve now: the row stays planned and is retried next run.
            self._set(number, error_code=getattr(exc, "code", "network_error"),
                      error_message=exc.message)  # fmt: skip
        finally:
            self._tick()
            self._log_outcome(number, sent)

    async def _resolve_and_submit(self, r: Row, number: int, row: Mapping[str, Any]) -> str | None:
        """The intent's journal state once sent (None: not sent, the row says why)."""
        key = str(r.row_key)
        # Paid before? Asked first (local look-ups only): a row another run or journal paid
        # costs no request at all, not even its beneficiary's.
        look = ledger.RowLook.read(self.journal, self.env, key)
        if self._paid_before(number, key, look):
            return None
        dest = await self.resolver.resolve(row)
        name = dest.display_name or r.beneficiary_name
        destination = (dest.beneficiary_id, dest.instrument_id, None if name is None else str(name))
        # Paid meanwhile, by a process beside this one? Only while a request was awaited:
        # a destination from the journal alone leaves no time for it (begin_payout checks
        # again inside its own transaction).
        if not dest.local:
            self._set_destination(number, destination)
            look = ledger.RowLook.read(self.journal, self.env, key)
            if self._paid_before(number, key, look):
                return None
        try:
            if self.batch_watch is not None and (found := await self.batch_watch.open_batches()):
                raise Held(IN_FLIGHT_ELSEWHERE, ledger.foreign_batch_hold(found))
            # Paid meanwhile by a foreign batch that has ended, or by another home after a
            # sweep too old to trust? Read the ledger again, then this row's look.
            if await self._sweep_again():
                look = ledger.RowLook.read(self.journal, self.env, key)
                if self._paid_before(number, key, look):
                    return None
            # The attempt is chosen from the same look (begin_payout still refuses a second
            # live intent for the row inside its own transaction, whatever was read before);
            # the destination is written on the row with the intent.
            return await self.submitter.submit(
                run_id=self.run_id,
                row=row,
                row_number=number,
                row_key=key,
                beneficiary_id=dest.beneficiary_id,
                instrument_id=dest.instrument_id,
                default_purpose=self.checked.default_purpose or "contractor_payment",
                look=look,
                destination=destination if dest.local else None,
            )
        except BaseException:
            if dest.local:  # the row shows where it was to be paid, whatever stopped it
                with contextlib.suppress(JournalError):  # (not over a failing journal's own error)
                    self._set_destination(number, destination)
            raise

    def _ledger_stale(self) -> bool:
        swept_at = self.swept_at
        if swept_at is None:
            return False
        if self.conn.provider_clock.now() - swept_at >= ledger.LEDGER_MAX_AGE:
            return True
        watch = self.batch_watch
        return watch is not None and bool(watch.ended_since(swept_at, known=self._swept_batches))

    async def _sweep_again(self) -> bool:
        """Sweep the provider's ledger again when the last sweep is stale: it began more
        than ``LEDGER_MAX_AGE`` ago (a long run, a machine asleep), or another home's batch
        ended after it began. Whether this row waited for such a sweep (one at a time;
        rows waiting meanwhile take its result)."""
        if not self._ledger_stale():
            return False
        async with self._sweeping:
            if self._ledger_stale():
                clock = self.conn.provider_clock
                began = clock.now() - ledger.OVERLAP
                # Batches seen ended before this sweep began: it lists their payouts.
                ended = self.batch_watch.ended_since(began) if self.batch_watch else set()
                await ledger.sweep(self.conn.client, self.journal, self.env, provider_clock=clock)
                self.swept_at = began
                self._swept_batches = frozenset(ended)
        return True

    async def _before_first_send(self, key: str) -> dict[str, Any] | None:
        """Asked by the submitter just before an intent's first request leaves: the
        provider's payout of this key when the ledger shows one (then nothing is sent).

        The row was checked against the ledger moments before, unless the process stood
        still in between (stopped, asleep) while another home paid it: a stale sweep is
        read again first, and while another home's batch is confirmed or processing (past
        its own last sweep, so it will not see this payout) its payouts are waited for —
        for at most ``ledger.FOREIGN_BATCH_WAIT``; then the request is withheld
        (:class:`SendWithheld`: the intent is left ``unknown`` for a later run)."""
        if not await self._sweep_again():
            return None  # checked moments ago, on a fresh sweep: nothing to read
        until: float | None = None
        while True:
            seen = self.journal.provider_payout_for_key(key)
            if seen is not None:
                doc = json.loads(str(seen["doc"]))
                return doc if isinstance(doc, dict) else None
            if self.batch_watch is None:
                return None
            found = await self.batch_watch.open_batches(fresh=True)
            paying = [b for b in found if b.get("status") in ledger.BATCH_PAYING]
            if paying:
                # Waited for at most FOREIGN_BATCH_WAIT: a batch stuck at the provider
                # leaves the intent unsent and said (exit 10), not a run that never ends.
                now = time.monotonic()
                if until is None:
                    until = now + ledger.FOREIGN_BATCH_WAIT
                if not self._said_waiting:
                    self._said_waiting = True
                    log.warning(
                        "run %s: a payout waits, at most %d s, for another batchpay home's "
                        "batch %s (%s) to finish before it is sent", self.run_id,
                        ledger.FOREIGN_BATCH_WAIT, paying[0].get("id"), paying[0].get("status"),
                        extra={"run_id": self.run_id},
                    )  # fmt: skip
                if now >= until:
                    raise SendWithheld(IN_FLIGHT_ELSEWHERE, ledger.foreign_batch_hold(paying))
                await asyncio.sleep(ledger.FOREIGN_BATCH_INTERVAL * 4)
            elif not self._ledger_stale():
                return None
            await self._sweep_again()

    def _set_destination(self, number: int, destination: tuple[str, str, str | None]) -> None:
        ben, ins, name = destination
        self._set(number, beneficiary_id=ben, instrument_id=ins, beneficiary_name=name)

    def _paid_before(self, number: int, key: str, look: ledger.RowLook) -> bool:
        row = self.by_key.get(key) or {}
        asked = (row.get("amount"), row.get("currency"))
        elsewhere = ledger.paid_by_another_run(look.history, self.run_id, asked)
        if elsewhere is not None:
            self._set(number, **elsewhere)
            return True
        return ledger.paid_at_provider(self.journal, self.env, self.run_id, number, key,
                                       look=look, asked=asked)  # fmt: skip

    def _log_outcome(self, number: int, sent: str | None = None) -> None:
        if not log.isEnabledFor(logging.WARNING):
            return
        if sent == CREATED and not log.isEnabledFor(logging.INFO):
            return  # created: an INFO line, not worth reading the row back for
        row = self.journal.row(self.run_id, number)
        if row is None:
            return
        state = str(row.payout_state or row.state) if row.state == PAYOUT else row.state
        level = logging.INFO if state in (PLANNED, CREATED, ALREADY_PAID) else logging.WARNING
        if not log.isEnabledFor(level):
            return
        log.log(
            level, "row %d: %s%s", number, state,
            f" ({row.error_code})" if row.error_code else "",
            extra={"run_id": self.run_id, "row": number, "state": state,
                   "payout_id": row.payout_id, "error_code": row.error_code},
        )  # fmt: skip

    def _set(self, number: int, **fields: Any) -> None:
        self.journal.update_row(self.run_id, number, **fields)
