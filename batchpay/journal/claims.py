"""Rows claimed by workers sharing one run on a PostgreSQL journal, under a lease.

A worker claims a few rows at a time (``FOR UPDATE SKIP LOCKED``): the rows still to be
paid, and the rows whose intent is in flight (``sending``/``unknown``) — once no live lease
covers them. A lease is ``claim_expires_at``, on the *database server's* clock, so the
workers' own clocks never matter; a worker renews its leases while it works, and a worker
killed mid-row leaves its rows to the others when its lease ends. Exactly-once never rests
on the lease: a row taken over with its intent in flight is settled by the same
replay-or-look-up as a resumed run (same key, never a new one), and the unique live-intent
index refuses any second intent. A row a worker tried and left planned (a transient
failure) is *parked* (``claimed_by`` set, no expiry) so that no worker retries it in a
loop; the next pass (a worker started again) unparks it.
"""

from __future__ import annotations

from batchpay.journal.base import JournalBase
from batchpay.journal.states import IN_FLIGHT_ELSEWHERE, PayoutState, RowState

_NOW = "extract(epoch from clock_timestamp())"
_IN_FLIGHT = f"('{PayoutState.SENDING}', '{PayoutState.UNKNOWN}')"
# A row with work left: planned, waiting for another run's payout in flight, or its own
# intent not settled.
_WORK = f"""(rows.state = '{RowState.PLANNED}'
    OR (rows.state = '{RowState.HELD}' AND rows.error_code = '{IN_FLIGHT_ELSEWHERE}')
    OR (rows.state = '{RowState.PAYOUT}' AND
    EXISTS (SELECT 1 FROM payouts p WHERE p.idempotency_key = rows.idempotency_key
            AND p.state IN {_IN_FLIGHT})))"""


class ClaimVerbs(JournalBase):
    """The journal verbs for sharing one run's rows between workers (PostgreSQL only)."""

    def claim_rows(self, run_id: str, worker: str, *, limit: int, lease: float) -> list[int]:
        """Claim up to ``limit`` rows with work left that no live lease covers; their numbers."""
        with self.transaction() as db:
            # The rows are picked first, once (MATERIALIZED): as ``row_number IN (SELECT …
            # LIMIT n FOR UPDATE SKIP LOCKED)`` PostgreSQL may run the subquery again for
            # the outer rows, and one worker then claims far more than ``limit``.
            found = db.execute(
                f"""WITH picked AS MATERIALIZED (
                      SELECT row_number FROM rows WHERE run_id = ? AND {_WORK}
                        AND (claimed_by IS NULL
                             OR (claim_expires_at IS NOT NULL AND claim_expires_at < {_NOW}))
                      ORDER BY row_number LIMIT ? FOR UPDATE SKIP LOCKED)
                    UPDATE rows SET claimed_by = ?, claim_expires_at = {_NOW} + ?
                    FROM picked WHERE rows.run_id = ? AND rows.row_number = picked.row_number
                    RETURNING rows.row_number""",
                (run_id, limit, worker, lease, run_id),
            ).fetchall()
        return sorted(int(r[0]) for r in found)

    def renew_claims(self, run_id: str, worker: str, *, lease: float) -> None:
        """Extend the leases this worker holds on the run's rows."""
        with self.transaction() as db:
            db.execute(
                f"""UPDATE rows SET claim_expires_at = {_NOW} + ? WHERE run_id = ?
                    AND claimed_by = ? AND claim_expires_at IS NOT NULL""",
                (lease, run_id, worker),
            )

    def finish_claim(self, run_id: str, row_number: int, worker: str) -> None:
        """This worker is done with the row: free it, or park it if work is left."""
        with self.transaction() as db:
            db.execute(
                f"""UPDATE rows SET claim_expires_at = NULL,
                    claimed_by = CASE WHEN {_WORK} THEN claimed_by ELSE NULL END
                    WHERE run_id = ? AND row_number = ? AND claimed_by = ?""",
                (run_id, row_number, worker),
            )

    def unpark_rows(self, run_id: str) -> None:
        """A new pass: rows parked by earlier passes may be tried again."""
        with self.transaction() as db:
            db.execute(
                """UPDATE rows SET claimed_by = NULL WHERE run_id = ?
                   AND claimed_by IS NOT NULL AND claim_expires_at IS NULL""",
                (run_id,),
            )

    def rows_leased_elsewhere(self, run_id: str, worker: str) -> int:
        """Rows with work left under another worker's live lease (this worker waits for them)."""
        row = self.db.execute(
            f"""SELECT COUNT(*) FROM rows WHERE run_id = ? AND {_WORK}
                AND claimed_by IS NOT NULL AND claimed_by != ?
                AND claim_expires_at IS NOT NULL AND claim_expires_at >= {_NOW}""",
            (run_id, worker),
        ).fetchone()
        return int(row[0])

    def claim_report(self, run_id: str, worker: str) -> bool:
        """Whether this worker writes the finished run's report (exactly one does)."""
        with self.transaction() as db:
            won = db.execute(
                """UPDATE runs SET reported_by = ? WHERE id = ? AND status = 'finished'
                   AND reported_by IS NULL RETURNING id""",
                (worker, run_id),
            ).fetchone()
        return won is not None

    def take_rate_token(self, environment: str, rate: float, burst: float) -> float:
        """Take one request's token from the world's shared bucket: 0.0, or seconds to wait.

        The bucket refills at ``rate`` per second up to ``burst`` on the server's clock, so
        every worker on every machine draws from one budget: the provider's limit is shared,
        not multiplied by the number of workers. One statement under the bucket's row lock
        (not the journal's write lock): one round trip per request.
        """
        take = f"""WITH cur AS (
                SELECT LEAST(?, tokens + GREATEST(0, {_NOW} - updated_at) * ?) AS x
                FROM rate_buckets WHERE environment = ? FOR UPDATE)
            UPDATE rate_buckets SET updated_at = {_NOW},
                tokens = CASE WHEN cur.x >= 1 THEN cur.x - 1 ELSE cur.x END
            FROM cur WHERE environment = ? RETURNING cur.x"""
        args = (burst, rate, environment, environment)
        found = self.db.execute(take, args).fetchone()
        if found is None:  # the world's first request: a full bucket
            self.db.execute(
                f"""INSERT INTO rate_buckets (environment, tokens, updated_at)
                    VALUES (?, ?, {_NOW}) ON CONFLICT (environment) DO NOTHING""",
                (environment, burst),
            )
            found = self.db.execute(take, args).fetchone()
        tokens = float(found[0])
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate
