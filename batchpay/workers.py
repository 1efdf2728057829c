"""Several workers on one run: the submission strategy for a shared PostgreSQL journal.

``batchpay run FILE`` started on several processes or machines against one PostgreSQL
journal shares the run's rows: each process claims a few rows at a time under a lease
(:mod:`batchpay.journal.claims`), settles or pays them exactly as :class:`PerRow` does
(sweep first, the same keys, look-up before any resend), and waits while other workers
hold live leases; a worker killed mid-row leaves its rows to the others when its lease
ends. With SQLite there is no sharing: a second process exits 8 as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import timedelta
from typing import Any

from batchpay import ledger
from batchpay.checks import CheckedFile
from batchpay.connection import Connection
from batchpay.journal import CREATED, REJECTED, UNKNOWN
from batchpay.options import RunOptions
from batchpay.ratelimit import Permit, RateLimiter
from batchpay.retry import is_testing
from batchpay.states import PAYOUT
from batchpay.strategies import ProgressFn, _PerRowRun, waits_for_other_run

log = logging.getLogger(__name__)

# How long a claim lasts without renewal (the server's clock), and how often a worker
# that waits for other workers' rows looks again.
DEFAULT_LEASE_SECONDS = 60.0
POLL_SECONDS = 0.5


def worker_name() -> str:
    """This process's name in claims: host, pid and a random tag."""
    return f"{socket.gethostname()}|{os.getpid()}|{uuid.uuid4().hex[:8]}"


CLAIM_BATCH = 32


class SharedRateLimiter(RateLimiter):
    """This process's pacing, then a token from the bucket every worker shares.

    The local limiter still learns the limit from the provider's headers and honours
    ``Retry-After``; the shared bucket (``rate_buckets``, on the database server's clock)
    keeps the sum of every worker's requests inside that limit.
    """

    def __init__(self, journal: Any, environment: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._journal = journal
        self._environment = environment

    async def acquire(self) -> Permit:
        permit = await super().acquire()
        rate = self.rate
        if rate is None or is_testing():
            return permit
        burst = max(1.0, (self.limit or 1) * 0.015)
        while (wait := self._journal.take_rate_token(self._environment, rate, burst)) > 0:
            await asyncio.sleep(wait)
        return permit


class Shared:
    """Claim rows under a lease, pay them, and wait for the rows other workers hold."""

    def __init__(self, *, lease: float = DEFAULT_LEASE_SECONDS, worker: str | None = None):
        self.lease = lease
        self.worker = worker or worker_name()

    async def submit_run(
        self,
        conn: Connection,
        run_id: str,
        checked: CheckedFile,
        options: RunOptions,
        on_progress: ProgressFn | None = None,
    ) -> None:
        """Work on the run's rows with the other workers until none is left to claim."""
        await _SharedRun(conn, run_id, checked, options, on_progress, self).run()


class _SharedRun(_PerRowRun):
    def __init__(
        self,
        conn: Connection,
        run_id: str,
        checked: CheckedFile,
        options: RunOptions,
        on_progress: ProgressFn | None,
        shared: Shared,
    ) -> None:
        super().__init__(conn, run_id, checked, options, on_progress)
        self.lease = shared.lease
        self.worker = shared.worker

    async def run(self) -> None:
        j = self.journal
        j.unpark_rows(self.run_id)
        began = self.conn.provider_clock.now() - ledger.OVERLAP
        # Another home's batchpay batches, as a per-row run asks for them (answered before
        # the sweep's first page is asked; again before each row is sent): its payouts carry
        # no idempotency key that could refuse this run's.
        self.batch_watch = ledger.ForeignBatchWatch(
            self.conn.client, j, since=began - timedelta(days=7),
            clock=self.conn.provider_clock.now,
        )  # fmt: skip
        await self.batch_watch.open_batches()
        await ledger.sweep(
            self.conn.client, j, self.env, provider_clock=self.conn.provider_clock,
            on_progress=self.on_progress,
        )  # fmt: skip
        self.swept_at = began  # swept again once stale (_PerRowRun._sweep_again)
        rows = j.rows(self.run_id)
        self.total = len(rows)
        self.resolver.remember_known({str(r.beneficiary_ref) for r in rows if r.state == "planned"})
        # Rows claimed at a time: as asked, else enough to keep a worker busy without
        # taking so many that the others wait (the client sizes its requests in flight).
        batch = max(1, self.options.concurrency or CLAIM_BATCH)
        renewing = asyncio.create_task(self._renew())
        try:
            await self._work(batch)
        finally:
            renewing.cancel()
        # A batch another home made while these rows were sent: a second payout of a row
        # that this run made is cancelled, as after a per-row run.
        await self._after_sending(began)

    async def _renew(self) -> None:
        """Keep this worker's leases alive while it works (a third of the lease apart)."""
        while True:
            await asyncio.sleep(self.lease / 3)
            self.journal.renew_claims(self.run_id, self.worker, lease=self.lease)

    async def _work(self, batch: int) -> None:
        j = self.journal
        while not self.stop:
            claimed = j.claim_rows(self.run_id, self.worker, limit=batch, lease=self.lease)
            if not claimed:
                if j.rows_leased_elsewhere(self.run_id, self.worker) == 0:
                    break
                await asyncio.sleep(POLL_SECONDS)  # others hold rows: wait, or take them over
                continue
            log.info("worker %s claimed rows %s", self.worker, claimed,
                     extra={"run_id": self.run_id, "rows": claimed})  # fmt: skip
            await asyncio.gather(*(self._one(n) for n in claimed))
        if self.stop:
            raise self.stop[0]

    async def _one(self, number: int) -> None:
        j = self.journal
        try:
            j.renew_claims(self.run_id, self.worker, lease=self.lease)
            row = j.row(self.run_id, number)
            if row is None:
                return
            if row.payout_state is not None and row.payout_state != CREATED:
                # Its intent is in flight (a worker died mid-send, or its answer was lost):
                # settled by replay or look-up with its own key, never sent afresh.
                intent = next(
                    (p for p in j.open_payouts(self.run_id) if p.row_number == number), None
                )
                if intent is not None and intent.state in ("sending", UNKNOWN):
                    if not await self._held_for_foreign_batch(intent):
                        await self.submitter.settle(intent)
                    self._tick()
                return
            await self._pay(row)
            self._relink_own_intent(number)
        finally:
            j.finish_claim(self.run_id, number, self.worker)

    def _relink_own_intent(self, number: int) -> None:
        """A row held "in flight elsewhere" whose live intent is its own (another worker of
        this run committed it meanwhile) is that intent's row again, not held."""
        row = self.journal.row(self.run_id, number)
        if row is None or not waits_for_other_run(row) or row.related_run != self.run_id:
            return
        own = [
            p for p in self.journal.row_history(self.env, str(row.row_key))
            if p.run_id == self.run_id and p.row_number == number
            and p.state != REJECTED
        ]  # fmt: skip
        if own:
            self._set(number, state=PAYOUT, idempotency_key=own[-1].idempotency_key,
                      error_code=None, error_message=None, related_run=None)  # fmt: skip
