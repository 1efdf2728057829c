"""The journal: batchpay's durable memory, in SQLite.

It records every file, run, row, beneficiary, instrument, payout intent and API
call. The exactly-once promise rests on two rules kept here:

* a payout's idempotency key and exact request body are committed (state
  ``sending``) *before* the request leaves, and never change afterwards;
* one row of business identity (``row_key``) has at most one live payout
  intent per environment — the UNIQUE index on ``(environment, row_key,
  attempt)`` and the checks in :meth:`Journal.begin_payout` make a second
  submission impossible, across files, runs and processes.

Writes go through ``BEGIN IMMEDIATE`` transactions, so several processes can
share one journal file safely (WAL mode, busy timeout).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchpay.clocks import utcnow as utcnow
from batchpay.errors import MAX_MESSAGE_CHARS, JournalError, server_text
from batchpay.files import make_private_dir
from batchpay.journal.locks import LockOwner as LockOwner
from batchpay.journal.locks import RunLocks
from batchpay.journal.schema import MIGRATIONS as MIGRATIONS
from batchpay.journal.schema import migrate
from batchpay.journal.sqlite import connect, create_atomically, refuse_unusable, transaction
from batchpay.journal.states import CREATED as CREATED
from batchpay.journal.states import REJECTED as REJECTED
from batchpay.journal.states import SENDING as SENDING
from batchpay.journal.states import SETTLED_FAILURES as SETTLED_FAILURES
from batchpay.journal.states import STATUS_RANK as _STATUS_RANK
from batchpay.journal.states import TERMINAL_STATUSES as TERMINAL_STATUSES
from batchpay.journal.states import UNKNOWN as UNKNOWN

BUSY_TIMEOUT_SECONDS = 30.0

# For tests: called with every new journal connection, e.g. to set ``PRAGMA max_page_count``
# (a full disk) or ``PRAGMA query_only`` (a read-only journal) in a way root cannot bypass.
connection_hook: Callable[[sqlite3.Connection], None] | None = None


class LivePayoutExists(JournalError):
    """Another run already holds a live payout intent for this row identity."""

    def __init__(self, run_id: str, row_number: int) -> None:
        super().__init__(f"row already has a live payout in run {run_id} (row {row_number})")
        self.run_id = run_id
        self.row_number = row_number


class RunExists(JournalError):
    """A run of the same file (or content) was created meanwhile by another process."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} already exists for this file")
        self.run_id = run_id


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_ts(text: str) -> datetime:
    """Parse a journal timestamp back into an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Journal:
    """A connection to the journal database. Not shared between threads.

    Every SQLite failure of a journal operation (disk full, read-only file or folder, a lock
    held past the busy timeout, a damaged file) surfaces as a :class:`JournalError`.
    """

    def __init__(self, path: Path | str, *, clock: Any = utcnow) -> None:
        self.path = Path(path)
        self.clock = clock
        self._locks = RunLocks(self.path, memory=str(path) == ":memory:")
        target = str(path)
        if target != ":memory:":
            try:
                make_private_dir(self.path.parent)
            except OSError as exc:
                raise JournalError(
                    f"cannot create the journal's folder {self.path.parent} ({exc.strerror})",
                    hint="set BATCHPAY_HOME (or --journal) to a folder you can write",
                ) from None
            if not refuse_unusable(self.path):
                self._create(self.path)
        self.db = connect(target)
        try:
            self._migrate()
        except BaseException:
            self.db.close()
            raise

    def _create(self, path: Path) -> None:
        """Make a new, migrated journal at ``path`` (see :func:`create_atomically`)."""

        def make(db: sqlite3.Connection) -> None:
            self.db = db
            self._migrate()

        create_atomically(path, make)

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (and give back any run lock still held)."""
        self._locks.drop_all()
        self.db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> str:
        """The journal's clock as an ISO timestamp."""
        return _iso(self.clock())

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction that takes the database write lock up front."""
        return transaction(self.db)

    def _migrate(self) -> None:
        migrate(self.db, self.now)

    def applied_migrations(self) -> list[str]:
        """Names of the migrations applied to this journal, in order."""
        return [r[0] for r in self.db.execute("SELECT name FROM migrations ORDER BY name")]

    # -- files and runs ---------------------------------------------------------------------

    def find_runs_for_file(
        self, environment: str, *, sha256: str, fingerprint: str
    ) -> list[sqlite3.Row]:
        """Earlier runs of the same bytes or the same content in this environment, oldest first."""
        return list(
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
                   row_count, created_at) VALUES (?,?,?,?,?,?,?,?)""",
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
            file_id = cur.lastrowid
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

    def get_run(self, run_id: str) -> sqlite3.Row | None:
        """One run joined with its file, or None."""
        row: sqlite3.Row | None = self.db.execute(
            """SELECT runs.*, files.sha256, files.fingerprint, files.name AS file_name,
                      files.row_count, files.format, files.size
               FROM runs JOIN files ON files.id = runs.file_id WHERE runs.id = ?""",
            (run_id,),
        ).fetchone()
        return row

    def list_runs(self, limit: int = 50) -> list[sqlite3.Row]:
        """Most recent runs first."""
        return list(
            self.db.execute(
                """SELECT runs.*, files.name AS file_name, files.row_count
                   FROM runs JOIN files ON files.id = runs.file_id
                   ORDER BY runs.created_at DESC LIMIT ?""",
                (limit,),
            )
        )

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

    def rows(self, run_id: str) -> list[sqlite3.Row]:
        """All rows of a run with their payout intent (if any), in file order."""
        return list(self.db.execute(self._ROWS_SQL + " ORDER BY rows.row_number", (run_id,)))

    def row(self, run_id: str, row_number: int) -> sqlite3.Row | None:
        """One row of a run with its payout intent (if any)."""
        found: sqlite3.Row | None = self.db.execute(
            self._ROWS_SQL + " AND rows.row_number = ?", (run_id, row_number)
        ).fetchone()
        return found

    def update_row(self, run_id: str, row_number: int, **fields: Any) -> None:
        """Set columns of one row."""
        if not fields:
            return
        fields["updated_at"] = self.now()
        assignments = ", ".join(f"{k}=?" for k in fields)
        with self.transaction() as db:
            db.execute(
                f"UPDATE rows SET {assignments} WHERE run_id=? AND row_number=?",
                (*fields.values(), run_id, row_number),
            )

    def row_history(self, environment: str, row_key: str) -> list[sqlite3.Row]:
        """Every payout intent ever made for this business identity, oldest attempt first."""
        return list(
            self.db.execute(
                "SELECT * FROM payouts WHERE environment=? AND row_key=? ORDER BY attempt",
                (environment, row_key),
            )
        )

    # -- payout intents ---------------------------------------------------------------------

    def begin_payout(
        self,
        *,
        environment: str,
        run_id: str,
        row_number: int,
        row_key: str,
        reference: str,
        attempt: int,
        idempotency_key: str,
        body: str,
        after_failure: bool = False,
        revive: bool = False,
    ) -> sqlite3.Row:
        """Commit the intent to send (state ``sending``) before any request leaves.

        With ``revive``, an intent with this key that the provider definitively refused (and
        has since forgotten) is made live again with ``body``: the same key for the same
        row, so two journals that disagree on how often a row was refused still send the
        same key (the provider answers the second with the first's payout).

        Returns the stored intent. If an intent with this key already exists, it is
        returned unchanged: its body, not the new one, is what will be sent.
        Raises LivePayoutExists if another *live* intent exists for the same row_key
        (the caller checked, but another process may have raced us). With
        ``after_failure`` (``retry-failed``), a payout that ended ``failed`` or
        ``returned`` does not count as live; a completed or pending one always does.
        """
        now = self.now()
        with self.transaction() as db:
            existing = db.execute(
                "SELECT * FROM payouts WHERE idempotency_key=?", (idempotency_key,)
            ).fetchone()
            if existing is not None and revive and existing["state"] == REJECTED:
                # The refusal stays on record (and in its run's report) under an archived
                # key; the key itself becomes this new intent's.
                archived = f"{idempotency_key}#refused-{uuid.uuid4().hex[:8]}"
                db.execute(
                    "UPDATE payouts SET idempotency_key=?, row_key=row_key || '#refused' "
                    "WHERE idempotency_key=?",
                    (archived, idempotency_key),
                )
                db.execute(
                    "UPDATE rows SET idempotency_key=? WHERE idempotency_key=?",
                    (archived, idempotency_key),
                )
                existing = None
            if existing is None:
                may_follow = {"failed", "returned"} if after_failure else set()
                for other in db.execute(
                    """SELECT run_id, row_number, state, status FROM payouts
                       WHERE environment=? AND row_key=? AND state != ?
                       ORDER BY attempt""",
                    (environment, row_key, REJECTED),
                ):
                    if not (other["state"] == CREATED and other["status"] in may_follow):
                        raise LivePayoutExists(str(other["run_id"]), int(other["row_number"]))
                try:
                    db.execute(
                        """INSERT INTO payouts (idempotency_key, environment, row_key, attempt,
                           run_id, row_number, reference, body, state, live_key, created_at,
                           updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)""",
                        (
                            idempotency_key,
                            environment,
                            row_key,
                            attempt,
                            run_id,
                            row_number,
                            reference,
                            body,
                            SENDING,
                            row_key,
                            now,
                            now,
                        ),
                    )
                except sqlite3.IntegrityError:
                    # The database's own guard (one live intent per row key) fired: some
                    # path got past the check above. Never a second live intent.
                    live = db.execute(
                        "SELECT run_id, row_number FROM payouts WHERE environment=? AND live_key=?",
                        (environment, row_key),
                    ).fetchone()
                    if live is None:
                        raise
                    raise LivePayoutExists(str(live["run_id"]), int(live["row_number"])) from None
            db.execute(
                """UPDATE rows SET state='payout', idempotency_key=?, updated_at=?
                   WHERE run_id=? AND row_number=?""",
                (idempotency_key, now, run_id, row_number),
            )
            row: sqlite3.Row = db.execute(
                "SELECT * FROM payouts WHERE idempotency_key=?", (idempotency_key,)
            ).fetchone()
        return row

    def mark_sent_attempt(self, idempotency_key: str, *, provider_at: datetime | None) -> None:
        """Record that a request with this key is about to leave (first and every resend).

        ``provider_at`` is the provider's clock at the first send, which alone decides how
        long the provider still remembers the key.
        """
        now = self.now()
        provider = _iso(provider_at) if provider_at is not None else None
        with self.transaction() as db:
            db.execute(
                """UPDATE payouts SET first_sent_at=COALESCE(first_sent_at, ?), last_sent_at=?,
                   first_sent_provider_at=COALESCE(first_sent_provider_at, ?),
                   send_count=send_count+1, updated_at=? WHERE idempotency_key=?""",
                (now, now, provider, now, idempotency_key),
            )

    def record_payout_created(
        self,
        idempotency_key: str,
        payout: Mapping[str, Any],
        *,
        request_id: str | None,
        settled_by: str,
    ) -> None:
        """The provider holds a payout for this intent: store its id, amounts and status."""
        now = self.now()
        with self.transaction() as db:
            db.execute(
                """UPDATE payouts SET state=?, payout_id=?, source_amount=?, source_currency=?,
                   dest_amount=?, dest_currency=?, fee=?, fee_currency=?, exchange_rate=?,
                   total_debited=?, total_debited_currency=?, request_id=COALESCE(?, request_id),
                   settled_by=?, error_code=NULL, error_message=NULL, updated_at=?
                   WHERE idempotency_key=?""",
                (
                    CREATED,
                    payout.get("id"),
                    payout.get("source_amount"),
                    payout.get("source_currency"),
                    payout.get("dest_amount"),
                    payout.get("dest_currency"),
                    payout.get("fee"),
                    payout.get("fee_currency"),
                    payout.get("exchange_rate"),
                    payout.get("total_debited"),
                    payout.get("total_debited_currency"),
                    request_id,
                    settled_by,
                    now,
                    idempotency_key,
                ),
            )
        status = payout.get("status")
        if isinstance(status, str) and payout.get("id"):
            self.record_status(
                str(payout["id"]),
                status,
                source=settled_by,
                reason=_reason(payout),
            )

    def record_payout_rejected(
        self, idempotency_key: str, *, code: str, message: str, request_id: str | None
    ) -> None:
        """The provider definitively refused the payout; nothing was created."""
        with self.transaction() as db:
            db.execute(
                """UPDATE payouts SET state=?, error_code=?, error_message=?, request_id=?,
                   live_key=NULL, updated_at=? WHERE idempotency_key=?""",
                (REJECTED, code, message, request_id, self.now(), idempotency_key),
            )

    def record_payout_unknown(
        self, idempotency_key: str, *, code: str, message: str, request_id: str | None
    ) -> None:
        """Retries ran out without an answer: the outcome is unknown until settled."""
        with self.transaction() as db:
            db.execute(
                """UPDATE payouts SET state=?, error_code=?, error_message=?,
                   request_id=COALESCE(?, request_id), updated_at=?
                   WHERE idempotency_key=? AND state != ?""",
                (UNKNOWN, code, message, request_id, self.now(), idempotency_key, CREATED),
            )

    def note_payout_problem(self, idempotency_key: str, *, code: str, message: str) -> None:
        """Keep a problem a person must see on a created payout (its row needs a person)."""
        with self.transaction() as db:
            db.execute(
                """UPDATE payouts SET error_code=?, error_message=?, updated_at=?
                   WHERE idempotency_key=?""",
                (code, message, self.now(), idempotency_key),
            )

    def record_status(
        self,
        payout_id: str,
        status: str,
        *,
        source: str,
        event_id: str | None = None,
        occurred_at: str | None = None,
        reason: str | None = None,
    ) -> bool:
        """Record an observed payout status; return False for a duplicate event.

        The stored status only moves forward: a late ``sent`` never overwrites
        ``completed``. ``reason`` is the provider's text: bounded and redacted here.
        """
        reason = server_text(reason, MAX_MESSAGE_CHARS) or None if reason else None
        now = self.now()
        with self.transaction() as db:
            try:
                db.execute(
                    """INSERT INTO payout_events (payout_id, event_id, status, source,
                       occurred_at, received_at) VALUES (?,?,?,?,?,?)""",
                    (payout_id, event_id, status, source, occurred_at, now),
                )
            except sqlite3.IntegrityError:
                return False
            row = db.execute(
                "SELECT status FROM payouts WHERE payout_id=?", (payout_id,)
            ).fetchone()
            if row is not None:
                # Events that arrived before batchpay knew this payout id (a webhook racing
                # a lost response) count too: the furthest status seen wins.
                seen = [
                    str(e["status"])
                    for e in db.execute(
                        "SELECT status FROM payout_events WHERE payout_id=?", (payout_id,)
                    )
                ]
                status = max(seen, key=lambda st: _STATUS_RANK.get(st, -1))
                current = row["status"]
                if current is None or _STATUS_RANK.get(status, -1) > _STATUS_RANK.get(current, -1):
                    db.execute(
                        """UPDATE payouts SET status=?, status_at=?, updated_at=?,
                           failure_reason=COALESCE(?, failure_reason),
                           live_key=CASE WHEN ? THEN NULL ELSE live_key END
                           WHERE payout_id=?""",
                        (
                            status,
                            occurred_at or now,
                            now,
                            reason,
                            status in SETTLED_FAILURES,
                            payout_id,
                        ),
                    )
        return True

    def open_payouts(self, run_id: str | None = None) -> list[sqlite3.Row]:
        """Intents whose outcome is not final: sending, unknown, or created but not terminal."""
        sql = """SELECT * FROM payouts WHERE (state IN (?, ?) OR (state = ? AND
                 (status IS NULL OR status NOT IN ({}))))""".format(
            ",".join("?" * len(TERMINAL_STATUSES))
        )
        args: list[Any] = [SENDING, UNKNOWN, CREATED, *sorted(TERMINAL_STATUSES)]
        if run_id is not None:
            sql += " AND run_id = ?"
            args.append(run_id)
        return list(self.db.execute(sql + " ORDER BY run_id, row_number", args))

    def last_attempt(self, environment: str, row_key: str) -> int:
        """The highest attempt this journal or the provider's ledger knows for a row key."""
        row = self.db.execute(
            """SELECT MAX(a) FROM (
                 SELECT MAX(attempt) AS a FROM payouts WHERE environment=? AND row_key=?
                 UNION ALL
                 SELECT MAX(attempt) AS a FROM provider_payouts
                 WHERE environment=? AND row_key=?)""",
            (environment, row_key, environment, row_key),
        ).fetchone()
        return int(row[0] or 0)

    # -- the provider's ledger, as swept ------------------------------------------------------

    def ledger_high_water(self, environment: str) -> str | None:
        """The newest ``created_at`` (provider time) a completed sweep of this world saw."""
        row = self.db.execute(
            "SELECT high_water FROM ledger_sweeps WHERE environment=?", (environment,)
        ).fetchone()
        return str(row[0]) if row else None

    def record_ledger_sweep(
        self, environment: str, payouts: Sequence[Mapping[str, Any]], high_water: str | None
    ) -> None:
        """Store what a completed sweep found and move the world's high-water mark."""
        now = self.now()
        with self.transaction() as db:
            db.executemany(
                """INSERT INTO provider_payouts (environment, payout_id, idempotency_key,
                   row_key, attempt, reference, status, created_at, seen_at, doc)
                   VALUES (:environment, :payout_id, :idempotency_key, :row_key, :attempt,
                   :reference, :status, :created_at, :seen_at, :doc)
                   ON CONFLICT (environment, payout_id) DO UPDATE SET status=excluded.status,
                   seen_at=excluded.seen_at, doc=excluded.doc""",
                [{**p, "environment": environment, "seen_at": now} for p in payouts],
            )
            if high_water is not None:
                db.execute(
                    """INSERT INTO ledger_sweeps (environment, high_water, swept_at, payouts_seen)
                       VALUES (?,?,?,?) ON CONFLICT (environment) DO UPDATE SET
                       high_water=MAX(high_water, excluded.high_water),
                       swept_at=excluded.swept_at,
                       payouts_seen=payouts_seen + excluded.payouts_seen""",
                    (environment, high_water, now, len(payouts)),
                )

    def provider_payouts_for(self, environment: str, row_key: str) -> list[sqlite3.Row]:
        """Payouts the provider holds for this row key (any journal's), oldest attempt first."""
        return list(
            self.db.execute(
                """SELECT * FROM provider_payouts WHERE environment=? AND row_key=?
                   ORDER BY attempt, created_at""",
                (environment, row_key),
            )
        )

    def provider_payout_for_key(self, idempotency_key: str) -> sqlite3.Row | None:
        """The provider's payout made with this idempotency key, if a sweep saw one."""
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM provider_payouts WHERE idempotency_key=? ORDER BY created_at LIMIT 1",
            (idempotency_key,),
        ).fetchone()
        return row

    def adopt_provider_payout(
        self,
        *,
        environment: str,
        run_id: str,
        row_number: int,
        found: Mapping[str, Any],
        body: str,
        note: str,
    ) -> bool:
        """Record a payout the provider already holds for a row (made from another journal).

        The row becomes ``already_paid`` with the provider's payout id; the payout is
        journalled as this row's live intent, so nothing in this journal sends it again.
        Returns False when this journal already holds a live intent for the row key.
        """
        now = self.now()
        with self.transaction() as db:
            try:
                db.execute(
                    """INSERT INTO payouts (idempotency_key, environment, row_key, attempt,
                       run_id, row_number, reference, body, state, payout_id, status,
                       settled_by, live_key, created_at, updated_at)
                       VALUES (?,?,?,?,?,?,?,?,?,?,?,'ledger',?,?,?)""",
                    (
                        found["idempotency_key"],
                        environment,
                        found["row_key"],
                        found["attempt"],
                        run_id,
                        row_number,
                        found["reference"],
                        body,
                        CREATED,
                        found["payout_id"],
                        found["status"],
                        found["row_key"],
                        now,
                        now,
                    ),
                )
            except sqlite3.IntegrityError:
                return False
            db.execute(
                """UPDATE rows SET state='already_paid', idempotency_key=?, error_message=?,
                   updated_at=? WHERE run_id=? AND row_number=?""",
                (found["idempotency_key"], note, now, run_id, row_number),
            )
        return True

    # -- beneficiaries and instruments ------------------------------------------------------

    def get_beneficiary(self, environment: str, external_ref: str) -> sqlite3.Row | None:
        """The cached beneficiary for ``external_ref`` in this environment."""
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM beneficiaries WHERE environment=? AND external_ref=?",
            (environment, external_ref),
        ).fetchone()
        return row

    def begin_beneficiary(
        self, environment: str, external_ref: str, pii_fingerprint: str, idempotency_key: str
    ) -> sqlite3.Row:
        """Commit the intent to create a beneficiary (or return the existing record)."""
        now = self.now()
        with self.transaction() as db:
            db.execute(
                """INSERT OR IGNORE INTO beneficiaries (environment, external_ref,
                   pii_fingerprint, idempotency_key, state, created_at, updated_at)
                   VALUES (?,?,?,?,?,?,?)""",
                (environment, external_ref, pii_fingerprint, idempotency_key, SENDING, now, now),
            )
            row: sqlite3.Row = db.execute(
                "SELECT * FROM beneficiaries WHERE environment=? AND external_ref=?",
                (environment, external_ref),
            ).fetchone()
        return row

    def record_beneficiary(
        self, environment: str, external_ref: str, beneficiary_id: str, display_name: str
    ) -> None:
        """The provider holds this beneficiary."""
        with self.transaction() as db:
            db.execute(
                """UPDATE beneficiaries SET beneficiary_id=?, display_name=?, state=?,
                   updated_at=? WHERE environment=? AND external_ref=?""",
                (beneficiary_id, display_name, CREATED, self.now(), environment, external_ref),
            )

    def forget_beneficiary(self, environment: str, external_ref: str) -> None:
        """Drop an unfinished beneficiary intent the provider definitively refused."""
        with self.transaction() as db:
            db.execute(
                "DELETE FROM beneficiaries WHERE environment=? AND external_ref=? AND state!=?",
                (environment, external_ref, CREATED),
            )

    def get_instrument(
        self, environment: str, beneficiary_id: str, credential_fingerprint: str
    ) -> sqlite3.Row | None:
        """The cached instrument for these credentials under this beneficiary."""
        row: sqlite3.Row | None = self.db.execute(
            """SELECT * FROM instruments WHERE environment=? AND beneficiary_id=?
               AND credential_fingerprint=?""",
            (environment, beneficiary_id, credential_fingerprint),
        ).fetchone()
        return row

    def instruments_of(self, environment: str, beneficiary_id: str) -> list[sqlite3.Row]:
        """Every instrument batchpay created or found for this beneficiary."""
        return list(
            self.db.execute(
                "SELECT * FROM instruments WHERE environment=? AND beneficiary_id=? AND state=?",
                (environment, beneficiary_id, CREATED),
            )
        )

    def begin_instrument(
        self,
        environment: str,
        beneficiary_id: str,
        credential_fingerprint: str,
        idempotency_key: str,
        *,
        method: str,
        currency: str,
        masked_account: str,
    ) -> sqlite3.Row:
        """Commit the intent to create an instrument (or return the existing record)."""
        now = self.now()
        with self.transaction() as db:
            db.execute(
                """INSERT OR IGNORE INTO instruments (environment, beneficiary_id,
                   credential_fingerprint, idempotency_key, method, currency, masked_account,
                   state, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)""",
                (
                    environment,
                    beneficiary_id,
                    credential_fingerprint,
                    idempotency_key,
                    method,
                    currency,
                    masked_account,
                    SENDING,
                    now,
                    now,
                ),
            )
            row: sqlite3.Row = db.execute(
                """SELECT * FROM instruments WHERE environment=? AND beneficiary_id=?
                   AND credential_fingerprint=?""",
                (environment, beneficiary_id, credential_fingerprint),
            ).fetchone()
        return row

    def record_instrument(
        self, environment: str, beneficiary_id: str, credential_fingerprint: str, instrument_id: str
    ) -> None:
        """The provider holds this instrument."""
        with self.transaction() as db:
            db.execute(
                """UPDATE instruments SET instrument_id=?, state=?, updated_at=?
                   WHERE environment=? AND beneficiary_id=? AND credential_fingerprint=?""",
                (
                    instrument_id,
                    CREATED,
                    self.now(),
                    environment,
                    beneficiary_id,
                    credential_fingerprint,
                ),
            )

    def forget_instrument(
        self, environment: str, beneficiary_id: str, credential_fingerprint: str
    ) -> None:
        """Drop an unfinished instrument intent the provider definitively refused."""
        with self.transaction() as db:
            db.execute(
                """DELETE FROM instruments WHERE environment=? AND beneficiary_id=?
                   AND credential_fingerprint=? AND state!=?""",
                (environment, beneficiary_id, credential_fingerprint, CREATED),
            )

    # -- API calls --------------------------------------------------------------------------

    def record_call(self, run_id: str | None, call: Mapping[str, Any]) -> None:
        """Store one HTTP exchange (no bodies, no secrets)."""
        with self.transaction() as db:
            db.execute(
                """INSERT INTO api_calls (run_id, started_at, method, path, status, error_code,
                   request_id, idempotency_key, attempt, duration_ms)
                   VALUES (?,?,?,?,?,?,?,?,?,?)""",
                (
                    run_id,
                    call["started_at"],
                    call["method"],
                    call["path"],
                    call.get("status"),
                    call.get("error_code"),
                    call.get("request_id"),
                    call.get("idempotency_key"),
                    call.get("attempt", 1),
                    call.get("duration_ms", 0.0),
                ),
            )

    def calls(self, run_id: str) -> list[sqlite3.Row]:
        """API calls made by a run, in order."""
        return list(
            self.db.execute("SELECT * FROM api_calls WHERE run_id=? ORDER BY id", (run_id,))
        )


def _reason(payout: Mapping[str, Any]) -> str | None:
    for key in ("cancelled_reason", "reason", "failure_reason"):
        value = payout.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def dumps_body(body: Mapping[str, Any]) -> str:
    """The canonical serialisation of a request body: what is stored is what is sent."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
