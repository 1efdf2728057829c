"""The provider's batch upload in the journal: each step committed before it is taken.

A batch run records, in one transaction and *before* the upload leaves, the exact file,
the upload's idempotency key, and for every row a live payout intent in state
``batched`` (its key is the one the row would have per row, written into the payout's
metadata). The batch id is recorded as soon as it is known; the confirm key is fixed
before the confirm is sent. ``batched`` intents are never settled by ``POST /v1/payouts``
(they are not *open* intents): only the batch's own results settle them, ``created`` with
the provider's payout, or ``rejected``. Until then they hold their row keys, so no other
run pays those rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batchpay.journal.base import JournalBase
from batchpay.journal.payouts import LivePayoutExists
from batchpay.journal.payouts import _remember_fee as remember_fee
from batchpay.journal.states import CREATED, REJECTED, SETTLED_FAILURES

BATCHED = "batched"  # payout intent: its row is in an uploaded batch, not yet processed

# The batch's own steps (``batches.state``).
UPLOADING = "uploading"  # intent committed; the upload may or may not have arrived
UPLOADED = "uploaded"  # the provider's batch id is known
CONFIRMING = "confirming"  # the confirm key is fixed; the confirm may or may not have arrived
CONFIRMED = "confirmed"  # the provider holds the confirmation
SETTLED = "settled"  # every row's intent is settled from the batch's results
EXPIRED = "expired"  # the confirmation window passed; nothing was paid
ENDED = "ended"  # refused or cancelled before processing; nothing was paid
CANCELLING = "cancelling"  # our own cancel may or may not have arrived (detail: code: why)


@dataclass(frozen=True)
class BatchRowIntent:
    """One row of a batch file: where it is in the file and the intent it stands for."""

    batch_row: int
    row_number: int
    row_key: str
    reference: str
    attempt: int
    idempotency_key: str
    body: str


class BatchVerbs(JournalBase):
    """The journal verbs for batch uploads."""

    def batch_for_run(self, run_id: str) -> sqlite3.Row | None:
        """The run's current batch record, if the run goes through the provider's batches."""
        found: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM batches WHERE run_id=? AND current=1", (run_id,)
        ).fetchone()
        return found

    def knows_batch_file(self, file_name: str) -> bool:
        """Whether this journal began a batch with this file name (any run, any state)."""
        found = self.db.execute("SELECT 1 FROM batches WHERE file_name=?", (file_name,)).fetchone()
        return found is not None

    def batch_count(self, run_id: str) -> int:
        """How many batches the run has had (retired ones included)."""
        row = self.db.execute("SELECT COUNT(*) FROM batches WHERE run_id=?", (run_id,))
        return int(row.fetchone()[0])

    def _current(self, db: sqlite3.Connection, run_id: str) -> int:
        row = db.execute("SELECT id FROM batches WHERE run_id=? AND current=1", (run_id,))
        found = row.fetchone()
        if found is None:
            raise LookupError(f"run {run_id} has no current batch")
        return int(found[0])

    def retire_batch(self, run_id: str) -> None:
        """Keep an ended batch on record but no longer the run's: a new one may be uploaded."""
        with self.transaction() as db:
            db.execute(
                "UPDATE batches SET current=0, updated_at=? WHERE run_id=? AND current=1",
                (self.now(), run_id),
            )

    def begin_batch(
        self,
        *,
        environment: str,
        run_id: str,
        file_name: str,
        file_format: str,
        file_sha256: str,
        data: bytes,
        upload_key: str,
        rows: Sequence[BatchRowIntent],
    ) -> None:
        """Commit the upload intent: the file, its key and every row's live intent.

        Raises LivePayoutExists (and commits nothing) when another run holds a live intent
        for one of the rows.
        """
        now = self.now()
        with self.transaction() as db:
            db.execute(
                """INSERT INTO batches (run_id, environment, file_name, file_format,
                   file_sha256, file, upload_key, state, created_at, updated_at)
                   VALUES (?,?,?,?,?,?,?,?,?,?)""",
                (run_id, environment, file_name, file_format, file_sha256, data, upload_key,
                 UPLOADING, now, now),
            )  # fmt: skip
            batch = self._current(db, run_id)
            for r in rows:
                live = db.execute(
                    """SELECT run_id, row_number FROM payouts WHERE environment=? AND
                       live_key=?""",
                    (environment, r.row_key),
                ).fetchone()
                if live is not None:
                    raise LivePayoutExists(str(live["run_id"]), int(live["row_number"]))
                db.execute(
                    """INSERT INTO payouts (idempotency_key, environment, row_key, attempt,
                       run_id, row_number, reference, body, state, live_key, settled_by,
                       created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,'batch',?,?)""",
                    (r.idempotency_key, environment, r.row_key, r.attempt, run_id, r.row_number,
                     r.reference, r.body, BATCHED, r.row_key, now, now),
                )  # fmt: skip
                db.execute(
                    """INSERT INTO batch_rows (batch, batch_row, row_number, idempotency_key)
                       VALUES (?,?,?,?)""",
                    (batch, r.batch_row, r.row_number, r.idempotency_key),
                )
                db.execute(
                    """UPDATE rows SET state='payout', idempotency_key=?, updated_at=?
                       WHERE run_id=? AND row_number=?""",
                    (r.idempotency_key, now, run_id, r.row_number),
                )

    def update_batch(self, run_id: str, **fields: Any) -> None:
        """Record a step of the run's batch (``state``, ``batch_id``, ``confirm_key`` …)."""
        fields["updated_at"] = self.now()
        assignments = ", ".join(f"{k}=?" for k in fields)
        with self.transaction() as db:
            db.execute(
                f"UPDATE batches SET {assignments} WHERE run_id=? AND current=1",
                (*fields.values(), run_id),
            )

    def batch_rows(self, run_id: str) -> list[sqlite3.Row]:
        """The batch's rows with their intents, in file order."""
        return list(
            self.db.execute(
                """SELECT b.batch_row, b.row_number, b.idempotency_key, b.warning,
                          p.state, p.payout_id
                   FROM batch_rows b JOIN payouts p ON p.idempotency_key = b.idempotency_key
                   JOIN batches ON batches.id = b.batch
                   WHERE batches.run_id=? AND batches.current=1 ORDER BY b.batch_row""",
                (run_id,),
            )
        )

    def note_batch_warning(self, run_id: str, batch_row: int, text: str) -> None:
        """Keep the provider's validation warning for a row (shown in the report)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE batch_rows SET warning=? WHERE batch=? AND batch_row=?",
                (text, self._current(db, run_id), batch_row),
            )

    def batch_warnings(self, run_id: str) -> dict[int, str]:
        """The provider's warnings by batchpay row number."""
        return {
            int(r["row_number"]): str(r["warning"])
            for r in self.db.execute(
                """SELECT b.row_number, b.warning FROM batch_rows b
                   JOIN batches ON batches.id = b.batch
                   WHERE batches.run_id=? AND batches.current=1 AND b.warning IS NOT NULL""",
                (run_id,),
            )
        }

    def end_batch_rows(
        self,
        run_id: str,
        *,
        code: str,
        message: str,
        replan: bool = False,
        batch: Mapping[str, Any] | None = None,
    ) -> None:
        """Every row of the batch still ``batched`` is refused: nothing was paid for it.

        ``batch``: fields of the run's batch record written in the same transaction (its
        end: ``state``, ``detail`` …), so a stop never leaves the batch ended and its rows
        not, or the other way round.

        With ``replan`` (a batch that can never be confirmed: expired, or cancelled by us)
        the rows go back to ``planned`` and the unconfirmed intents are archived under
        suffixed keys, so the row keys and their ``bp1-…`` keys are free for the rows' next
        batch; the run stays open. Only an explicit ``--new-batch`` (or our own cancel)
        plans them again; nothing uploads them silently.
        """
        now = self.now()
        with self.transaction() as db:
            if batch:  # the batch's own record, in the same write (``update_batch``'s fields)
                fields = {**batch, "updated_at": now}
                db.execute(
                    f"UPDATE batches SET {', '.join(f'{k}=?' for k in fields)} "
                    "WHERE run_id=? AND current=1",
                    (*fields.values(), run_id),
                )
            if replan:
                current = self._current(db, run_id)
                suffix = f"#unconfirmed-{current}"
                db.execute(
                    """UPDATE rows SET state='planned', idempotency_key=NULL, error_code=?,
                       error_message=?, updated_at=? WHERE run_id=? AND idempotency_key IN
                       (SELECT idempotency_key FROM payouts WHERE run_id=? AND state=?)""",
                    (code, message, now, run_id, run_id, BATCHED),
                )
                db.execute(
                    """UPDATE batch_rows SET idempotency_key = idempotency_key || ?
                       WHERE batch=? AND idempotency_key IN
                       (SELECT idempotency_key FROM payouts WHERE run_id=? AND state=?)""",
                    (suffix, current, run_id, BATCHED),
                )
                db.execute(
                    """UPDATE payouts SET state=?, error_code=?, error_message=?, live_key=NULL,
                       idempotency_key = idempotency_key || ?, row_key = row_key || ?,
                       updated_at=? WHERE run_id=? AND state=?""",
                    (REJECTED, code, message, suffix, suffix, now, run_id, BATCHED),
                )
                return
            db.execute(
                """UPDATE payouts SET state=?, error_code=?, error_message=?, live_key=NULL,
                   updated_at=? WHERE run_id=? AND state=?""",
                (REJECTED, code, message, now, run_id, BATCHED),
            )


@dataclass(frozen=True)
class BatchRowOutcome:
    """How the provider's batch settled one row: its payout, or why there is none.

    ``payee`` is (external_ref, PII fingerprint, beneficiary key, display name, credential
    fingerprint, instrument key, method, currency, masked account), to remember the
    beneficiary and instrument a batch made as a per-row run would.
    """

    idempotency_key: str
    row_number: int
    payout: Mapping[str, Any] | None = None
    code: str = ""
    message: str = ""
    payee: tuple[str, ...] | None = None


class BatchSettleVerbs(JournalBase):
    """Settling a batch's rows in one transaction (thousands of rows, one commit)."""

    def settle_batch(
        self, environment: str, run_id: str, outcomes: Sequence[BatchRowOutcome]
    ) -> None:
        """Every ``batched`` intent of ``outcomes`` becomes ``created`` or ``rejected``."""
        now = self.now()
        with self.transaction() as db:
            for o in outcomes:
                if o.payout is None:
                    db.execute(
                        """UPDATE payouts SET state=?, error_code=?, error_message=?,
                           live_key=NULL, updated_at=? WHERE idempotency_key=? AND state=?""",
                        (REJECTED, o.code, o.message, now, o.idempotency_key, BATCHED),
                    )
                    continue
                p = o.payout
                status = str(p.get("status") or "created")
                db.execute(
                    """UPDATE payouts SET state=?, payout_id=?, status=?, status_at=?,
                       source_amount=?, source_currency=?, dest_amount=?, dest_currency=?,
                       fee=?, fee_currency=?, exchange_rate=?, total_debited=?,
                       total_debited_currency=?, settled_by='batch', error_code=NULL,
                       error_message=NULL, live_key=CASE WHEN ? THEN NULL ELSE live_key END,
                       updated_at=? WHERE idempotency_key=? AND state=?""",
                    (CREATED, p.get("id"), status, now, p.get("source_amount"),
                     p.get("source_currency"), p.get("dest_amount"), p.get("dest_currency"),
                     p.get("fee"), p.get("fee_currency"), p.get("exchange_rate"),
                     p.get("total_debited"), p.get("total_debited_currency"),
                     status in SETTLED_FAILURES, now, o.idempotency_key, BATCHED),
                )  # fmt: skip
                db.execute(
                    """INSERT INTO payout_events (payout_id, event_id, status, source,
                       occurred_at, received_at) VALUES (?,NULL,?,'batch',?,?)""",
                    (p.get("id"), status, p.get("updated_at"), now),
                )
                remember_fee(db, o.idempotency_key, p)
                db.execute(
                    """UPDATE rows SET beneficiary_id=?, instrument_id=?, updated_at=?
                       WHERE run_id=? AND row_number=?""",
                    (p.get("beneficiary_id"), p.get("instrument_id"), now, run_id, o.row_number),
                )
                if o.payee is not None and p.get("beneficiary_id") and p.get("instrument_id"):
                    ref, pii, ben_key, name, cred, ins_key, method, currency, masked = o.payee
                    db.execute(
                        """INSERT OR IGNORE INTO beneficiaries (environment, external_ref,
                           pii_fingerprint, idempotency_key, beneficiary_id, display_name,
                           state, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)""",
                        (environment, ref, pii, ben_key, p["beneficiary_id"], name, CREATED,
                         now, now),
                    )  # fmt: skip
                    db.execute(
                        """INSERT OR IGNORE INTO instruments (environment, beneficiary_id,
                           credential_fingerprint, idempotency_key, instrument_id, method,
                           currency, masked_account, state, created_at, updated_at)
                           VALUES (?,?,?,?,?,?,?,?,?,?,?)""",
                        (environment, p["beneficiary_id"], cred, ins_key, p["instrument_id"],
                         method, currency, masked, CREATED, now, now),
                    )  # fmt: skip
