"""Files, runs and their rows in the journal, and who holds a run."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from batchpay.errors import JournalError
from batchpay.journal.base import JournalBase
from batchpay.journal.locks import LockOwner
from batchpay.journal.records import PayoutIntent, Row, Run
from batchpay.journal.states import (
    CREATED,
    HELD,
    IN_FLIGHT_ELSEWHERE,
    PAYOUT,
    PLANNED,
    REJECTED,
    TERMINAL_STATUSES,
)


class RunExists(JournalError):
    """A run of the same file (or content) was created meanwhile by another process."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} already exists for this file")
        self.run_id = run_id


class RunVerbs(JournalBase):
    """The journal verbs for files, runs, run locks and rows."""

    # -- files and runs ---------------------------------------------------------------------

    def find_runs_for_file(self, environment: str, *, sha256: str, fingerprint: str) -> list[Run]:
        """Earlier runs of the same bytes or the same content in this environment, oldest first."""
        return _runs(
            self.db.execute(
                """
                SELECT runs.*, files.sha256, files.fingerprint, files.name AS file_name
                FROM runs JOIN files ON files.id = runs.file_id
                WHERE runs.environment = ? AND (files.sha256 = ? OR files.fingerprint = ?)
                  AND runs.parent_run_id IS NULL
                ORDER BY runs.created_at
                """,
                (environment, sha256, fingerprint),
            )
        )

    def create_run(
        self,
        *,
        environment: str,
        api_url: str,
        mode: str,
        file: Mapping[str, Any],
        rows: Sequence[Mapping[str, Any]],
        options: Mapping[str, Any],
        parent_run_id: str | None = None,
        owner: LockOwner | None = None,
    ) -> str:
        """Record a file, a new run and all its rows in one transaction; return the run id.

        With ``owner``, the new run's lock is taken before the run becomes visible.
        """
        now = self.now()
        run_id: str = "run_" + self.clock().strftime("%Y%m%d_%H%M%S_") + uuid.uuid4().hex[:6]
        if owner is not None:
            self._locks.take(run_id, owner)  # nobody else can know this id yet
        try:
            return self._insert_run(
                run_id, now, environment, api_url, mode, file, rows, options, parent_run_id, owner
            )
        except BaseException:
            if owner is not None:
                self._locks.drop(run_id, owner)
            raise

    def _insert_run(
        self,
        run_id: str,
        now: str,
        environment: str,
        api_url: str,
        mode: str,
        file: Mapping[str, Any],
        rows: Sequence[Mapping[str, Any]],
        options: Mapping[str, Any],
        parent_run_id: str | None,
        owner: LockOwner | None,
    ) -> str:
        with self.transaction() as db:
            if parent_run_id is None:
                # Checked again inside the write lock: two processes that ingested the same
                # file at once cannot both create a run for it.
                other = db.execute(
                    """SELECT runs.id FROM runs JOIN files ON files.id = runs.file_id
                       WHERE runs.environment = ? AND runs.parent_run_id IS NULL
                         AND (files.sha256 = ? OR files.fingerprint = ?)
                       ORDER BY runs.created_at LIMIT 1""",
                    (environment, file["sha256"], file["fingerprint"]),
                ).fetchone()
                if other is not None:
                    raise RunExists(str(other["id"]))
            cur = db.execute(
                """INSERT INTO files (environment, sha256, fingerprint, name, size, format,
                   row_count, created_at) VALUES (?,?,?,?,?,?,?,?) RETURNING id""",
                (
                    environment,
                    file["sha256"],
                    file["fingerprint"],
                    file["name"],
                    file["size"],
                    file["format"],
                    file["row_count"],
                    now,
                ),
            )
            file_id = cur.fetchone()[0]
            db.execute(
                """INSERT INTO runs (id, file_id, environment, api_url, mode, status,
                   parent_run_id, options, created_at, updated_at, lock_owner, lock_expires_at)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?)""",
                (
                    run_id,
                    file_id,
                    environment,
                    api_url,
                    mode,
                    "open",
                    parent_run_id,
                    json.dumps(dict(options), sort_keys=True),
                    now,
                    now,
                    owner.encode() if owner else None,
                    None,
                ),
            )
            db.executemany(
                """INSERT INTO rows (run_id, row_number, reference, beneficiary_ref,
                   beneficiary_name, row_key, content_hash, amount, currency, source_currency,
                   payment_method, masked_account, state, duplicate_of, related_run,
                   error_code, error_message, updated_at)
                   VALUES (:run_id, :row_number, :reference, :beneficiary_ref,
                   :beneficiary_name, :row_key, :content_hash, :amount, :currency,
                   :source_currency, :payment_method, :masked_account, :state, :duplicate_of,
                   :related_run, :error_code, :error_message, :updated_at)""",
                [
                    {
                        "duplicate_of": None,
                        "related_run": None,
                        "error_code": None,
                        "error_message": None,
                        "beneficiary_name": "",
                        **dict(r),
                        "run_id": run_id,
                        "updated_at": now,
                    }
                    for r in rows
                ],
            )
        return run_id

    def get_run(self, run_id: str) -> Run | None:
        """One run joined with its file, or None."""
        row = self.db.execute(
            """SELECT runs.*, files.sha256, files.fingerprint, files.name AS file_name,
                      files.row_count, files.format, files.size
               FROM runs JOIN files ON files.id = runs.file_id WHERE runs.id = ?""",
            (run_id,),
        ).fetchone()
        return Run.maybe(row)

    def list_runs(self, limit: int = 50) -> list[Run]:
        """Most recent runs first."""
        return _runs(
            self.db.execute(
                """SELECT runs.*, files.name AS file_name, files.row_count
                   FROM runs JOIN files ON files.id = runs.file_id
                   ORDER BY runs.created_at DESC LIMIT ?""",
                (limit,),
            )
        )

    def child_run_ids(self, run_id: str) -> list[str]:
        """The runs made from this one (``retry-failed``), oldest first."""
        return [
            str(r[0])
            for r in self.db.execute(
                "SELECT id FROM runs WHERE parent_run_id=? ORDER BY created_at", (run_id,)
            )
        ]

    def latest_run_id(self) -> str | None:
        """The most recently created run, if any."""
        row = self.db.execute("SELECT id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()
        return str(row[0]) if row else None

    def set_run_status(self, run_id: str, status: str) -> None:
        """Move a run to ``status`` (open, submitted, finished)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET status=?, updated_at=? WHERE id=?", (status, self.now(), run_id)
            )

    # -- locking ----------------------------------------------------------------------------

    def acquire_run_lock(self, run_id: str, owner: LockOwner, *, ttl: float = 60.0) -> None:
        """Take the run's lock for as long as this process lives, or raise RunLockedError.

        The lock is an OS lock on a file beside the journal: it cannot outlive its holder
        (SIGKILL, a crash or power loss release it) and it never expires while the holder
        works, however long the run takes. ``lock_owner`` in the runs table only says who
        holds it. ``ttl`` is kept for callers of the old lease API and is ignored.
        """
        del ttl
        if self.get_run(run_id) is None:
            raise JournalError(f"no run {run_id} in the journal")
        self._locks.take(run_id, owner)
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET lock_owner=?, lock_expires_at=NULL WHERE id=?",
                (owner.encode(), run_id),
            )

    def renew_run_lock(self, run_id: str, owner: LockOwner, *, ttl: float = 60.0) -> None:
        """Nothing to renew: the OS lock lasts as long as its holder (kept for old callers)."""

    def holds_run_lock(self, run_id: str, owner: LockOwner) -> bool:
        """Whether ``owner`` holds the run's lock through this journal connection."""
        return self._locks.holds(run_id, owner)

    def release_run_lock(self, run_id: str, owner: LockOwner) -> None:
        """Give the run's lock back."""
        if not self.holds_run_lock(run_id, owner):
            return
        try:
            with self.transaction() as db:
                db.execute(
                    "UPDATE runs SET lock_owner=NULL, lock_expires_at=NULL "
                    "WHERE id=? AND lock_owner=?",
                    (run_id, owner.encode()),
                )
        finally:
            self._locks.drop(run_id, owner)

    # -- rows -------------------------------------------------------------------------------

    _ROWS_SQL = """SELECT rows.*, p.state AS payout_state, p.payout_id, p.status AS payout_status,
                      p.first_sent_at, p.send_count, p.source_amount, p.source_currency AS
                      p_source_currency, p.dest_amount, p.dest_currency, p.fee,
                      p.fee_currency, p.exchange_rate, p.total_debited,
                      p.total_debited_currency, p.failure_reason, p.attempt,
                      p.error_code AS p_error_code, p.error_message AS p_error_message,
                      p.request_id AS p_request_id, p.settled_by, p.body AS payout_body
               FROM rows LEFT JOIN payouts p ON p.idempotency_key = rows.idempotency_key
               WHERE rows.run_id = ?"""

    def rows(self, run_id: str) -> list[Row]:
        """All rows of a run with their payout intent (if any), in file order."""
        found = self.db.execute(self._ROWS_SQL + " ORDER BY rows.row_number", (run_id,))
        return Row.from_rows(found)

    def row(self, run_id: str, row_number: int) -> Row | None:
        """One row of a run with its payout intent (if any)."""
        found = self.db.execute(
            self._ROWS_SQL + " AND rows.row_number = ?", (run_id, row_number)
        ).fetchone()
        return Row.maybe(found)

    def has_unfinished_rows(self, run_id: str, *, final_only: bool = False) -> bool:
        """Whether a row of the run is still to send or settle: planned, waiting for
        another run's payout, or with an intent neither created nor rejected; with
        ``final_only``, also a created payout not yet at a final status (one statement,
        however many rows the run has)."""
        terminal = sorted(str(s) for s in TERMINAL_STATUSES)
        sql = """SELECT 1 FROM rows LEFT JOIN payouts p
                 ON p.idempotency_key = rows.idempotency_key
                 WHERE rows.run_id = ? AND (rows.state = ?
                   OR (rows.state = ? AND rows.error_code = ?)
                   OR (rows.state = ? AND (p.state IS NULL OR p.state NOT IN (?, ?)))"""
        args: list[Any] = [run_id, str(PLANNED), str(HELD), IN_FLIGHT_ELSEWHERE, str(PAYOUT),
                           str(CREATED), str(REJECTED)]  # fmt: skip
        if final_only:
            marks = ", ".join("?" for _ in terminal)
            sql += f" OR (p.state = ? AND (p.status IS NULL OR p.status NOT IN ({marks})))"
            args += [str(CREATED), *terminal]
        sql += ") LIMIT 1"
        return self.db.execute(sql, args).fetchone() is not None

    def update_row(self, run_id: str, row_number: int, **fields: Any) -> None:
        """Set columns of one row."""
        if not fields:
            return
        fields["updated_at"] = self.now()
        assignments = ", ".join(f"{k}=?" for k in fields)
        with self.transaction(single=True) as db:
            db.execute(
                f"UPDATE rows SET {assignments} WHERE run_id=? AND row_number=?",
                (*fields.values(), run_id, row_number),
            )

    def row_history(self, environment: str, row_key: str) -> list[PayoutIntent]:
        """Every payout intent ever made for this business identity, oldest attempt first."""
        return PayoutIntent.from_rows(
            self.db.execute(
                "SELECT * FROM payouts WHERE environment=? AND row_key=? ORDER BY attempt",
                (environment, row_key),
            )
        )


def _runs(found: Any) -> list[Run]:
    return Run.from_rows(found)
