"""The journal's schema, declared once for SQLite and PostgreSQL: named, ordered migrations.

A journal records which migrations it has had (``migrations`` table); opening it applies
the missing ones in order, each in one transaction. Several processes may open an old
journal at once: each step is checked again inside its write transaction, so it is applied
exactly once.

Each step is written in the SQL both databases share; :func:`batchpay.journal.postgres.translate`
turns SQLite's row id (``INTEGER PRIMARY KEY``) into an identity column. A step that needs
something the other database spells differently carries its PostgreSQL text beside it
(``postgres``): the fee backfill of 0003 (JSON functions; a PostgreSQL journal starts
empty at this release, so it has nothing to backfill) and the state checks of 0004 (CHECK
constraints on PostgreSQL; on SQLite, which cannot add a CHECK to an existing table,
triggers that refuse the same values).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, NamedTuple

from batchpay.journal.states import PayoutState, ResourceState, RowState, RunStatus


class Migration(NamedTuple):
    """One named step of the schema: SQL statements separated by ``;``."""

    name: str
    sql: str
    postgres: str | None = None  # the step as PostgreSQL spells it, where it differs


# The columns whose values are states, and the states each may hold (batchpay.journal.states).
STATE_COLUMNS: dict[tuple[str, str], frozenset[str]] = {
    ("rows", "state"): frozenset(RowState),
    ("payouts", "state"): frozenset(PayoutState),
    ("runs", "status"): frozenset(RunStatus),
    ("beneficiaries", "state"): frozenset(ResourceState),
    ("instruments", "state"): frozenset(ResourceState),
}


def _allowed(values: frozenset[str]) -> str:
    return ", ".join(f"'{v}'" for v in sorted(values))


def _postgres_checks() -> str:
    return ";\n".join(
        f"ALTER TABLE {table} ADD CONSTRAINT {table}_{column}_check "
        f"CHECK ({column} IN ({_allowed(values)}))"
        for (table, column), values in STATE_COLUMNS.items()
    )


def _sqlite_checks() -> str:
    # SQLite cannot add a CHECK to a table that exists: triggers refuse the same values,
    # with the same kind of error (a constraint violation).
    return "\n".join(
        f"CREATE TRIGGER {table}_{column}_check_{when.lower()} BEFORE {when} ON {table} "
        f"WHEN NEW.{column} NOT IN ({_allowed(values)}) BEGIN "
        f"SELECT RAISE(ABORT, 'CHECK constraint failed: {table}.{column}'); END;"
        for (table, column), values in STATE_COLUMNS.items()
        for when in ("INSERT", "UPDATE")
    )


# Applied in this order, each recorded by name in the ``migrations`` table. A step is never
# edited once released: a change to the schema is a new step at the end.
MIGRATIONS: list[Migration] = [
    Migration(
        "0001_initial",
        """
        CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            environment TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            name TEXT NOT NULL,
            size INTEGER NOT NULL,
            format TEXT NOT NULL,
            row_count INTEGER NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX files_sha256 ON files(environment, sha256);
        CREATE INDEX files_fingerprint ON files(environment, fingerprint);

        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            file_id INTEGER NOT NULL REFERENCES files(id),
            environment TEXT NOT NULL,
            api_url TEXT NOT NULL,
            mode TEXT NOT NULL,
            status TEXT NOT NULL,
            parent_run_id TEXT REFERENCES runs(id),
            options TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            lock_owner TEXT,
            lock_expires_at REAL
        );
        CREATE INDEX runs_file ON runs(file_id);

        CREATE TABLE rows (
            run_id TEXT NOT NULL REFERENCES runs(id),
            row_number INTEGER NOT NULL,
            reference TEXT NOT NULL,
            beneficiary_ref TEXT NOT NULL,
            beneficiary_name TEXT NOT NULL DEFAULT '',
            row_key TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            amount TEXT,
            currency TEXT,
            source_currency TEXT,
            payment_method TEXT,
            masked_account TEXT,
            state TEXT NOT NULL,
            duplicate_of INTEGER,
            related_run TEXT,
            beneficiary_id TEXT,
            instrument_id TEXT,
            idempotency_key TEXT,
            error_code TEXT,
            error_message TEXT,
            request_id TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (run_id, row_number)
        );
        CREATE INDEX rows_key ON rows(row_key);

        CREATE TABLE payouts (
            idempotency_key TEXT PRIMARY KEY,
            environment TEXT NOT NULL,
            row_key TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            run_id TEXT NOT NULL REFERENCES runs(id),
            row_number INTEGER NOT NULL,
            reference TEXT NOT NULL,
            body TEXT NOT NULL,
            state TEXT NOT NULL,
            first_sent_at TEXT,
            last_sent_at TEXT,
            send_count INTEGER NOT NULL DEFAULT 0,
            payout_id TEXT,
            status TEXT,
            status_at TEXT,
            source_amount TEXT,
            source_currency TEXT,
            dest_amount TEXT,
            dest_currency TEXT,
            fee TEXT,
            fee_currency TEXT,
            exchange_rate TEXT,
            total_debited TEXT,
            total_debited_currency TEXT,
            failure_reason TEXT,
            error_code TEXT,
            error_message TEXT,
            request_id TEXT,
            settled_by TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE UNIQUE INDEX payouts_row_attempt ON payouts(environment, row_key, attempt);
        CREATE INDEX payouts_payout_id ON payouts(payout_id);
        CREATE INDEX payouts_run ON payouts(run_id);

        CREATE TABLE beneficiaries (
            environment TEXT NOT NULL,
            external_ref TEXT NOT NULL,
            pii_fingerprint TEXT NOT NULL,
            idempotency_key TEXT NOT NULL,
            beneficiary_id TEXT,
            display_name TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (environment, external_ref)
        );

        CREATE TABLE instruments (
            environment TEXT NOT NULL,
            beneficiary_id TEXT NOT NULL,
            credential_fingerprint TEXT NOT NULL,
            idempotency_key TEXT NOT NULL,
            instrument_id TEXT,
            method TEXT NOT NULL,
            currency TEXT NOT NULL,
            masked_account TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (environment, beneficiary_id, credential_fingerprint)
        );

        CREATE TABLE api_calls (
            id INTEGER PRIMARY KEY,
            run_id TEXT,
            started_at TEXT NOT NULL,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            status INTEGER,
            error_code TEXT,
            request_id TEXT,
            idempotency_key TEXT,
            attempt INTEGER NOT NULL,
            duration_ms REAL NOT NULL
        );
        CREATE INDEX api_calls_run ON api_calls(run_id);

        CREATE TABLE payout_events (
            id INTEGER PRIMARY KEY,
            payout_id TEXT NOT NULL,
            event_id TEXT UNIQUE,
            status TEXT NOT NULL,
            source TEXT NOT NULL,
            occurred_at TEXT,
            received_at TEXT NOT NULL
        );
        CREATE INDEX payout_events_payout ON payout_events(payout_id);
        """,
    ),
    Migration(
        "0002_one_live_payout_and_provider_ledger",
        """
        ALTER TABLE payouts ADD COLUMN live_key TEXT;
        ALTER TABLE payouts ADD COLUMN first_sent_provider_at TEXT;
        UPDATE payouts SET live_key = row_key
            WHERE state != 'rejected' AND (status IS NULL OR status NOT IN
            ('failed', 'returned', 'screening_failed', 'velocity_blocked', 'cancelled'));
        UPDATE payouts SET live_key = row_key || '#duplicate-' || attempt
            WHERE live_key IS NOT NULL AND attempt > (SELECT MIN(p2.attempt) FROM payouts p2
                WHERE p2.environment = payouts.environment AND p2.live_key = payouts.row_key);
        CREATE UNIQUE INDEX payouts_one_live ON payouts(environment, live_key);

        CREATE TABLE provider_payouts (
            environment TEXT NOT NULL,
            payout_id TEXT NOT NULL,
            idempotency_key TEXT NOT NULL,
            row_key TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            reference TEXT NOT NULL,
            status TEXT,
            created_at TEXT NOT NULL,
            seen_at TEXT NOT NULL,
            doc TEXT NOT NULL,
            PRIMARY KEY (environment, payout_id)
        );
        CREATE INDEX provider_payouts_row ON provider_payouts(environment, row_key);
        CREATE INDEX provider_payouts_key ON provider_payouts(idempotency_key);

        CREATE TABLE ledger_sweeps (
            environment TEXT PRIMARY KEY,
            high_water TEXT NOT NULL,
            swept_at TEXT NOT NULL,
            payouts_seen INTEGER NOT NULL
        );
        """,
    ),
    Migration(
        "0003_payout_fees",
        # The highest fee seen per payout method and fee currency, kept as payouts are
        # recorded, so a preflight reads a few rows however long the history. The backfill
        # keeps each distinct fee; the first payout recorded per method and currency
        # afterwards leaves only the highest (compared as decimals, not here as text).
        """
        CREATE TABLE payout_fees (
            environment TEXT NOT NULL,
            method TEXT NOT NULL,
            fee_currency TEXT NOT NULL,
            fee TEXT NOT NULL,
            PRIMARY KEY (environment, method, fee_currency, fee)
        );
        INSERT OR IGNORE INTO payout_fees (environment, method, fee_currency, fee)
            SELECT environment, method, fee_currency, fee FROM (
                SELECT environment, fee_currency, fee,
                    CAST(CASE WHEN json_valid(body) AND json_type(body) = 'object'
                         THEN json_extract(body, '$.method') END AS TEXT) AS method
                FROM payouts WHERE fee IS NOT NULL AND fee_currency IS NOT NULL
            ) WHERE method IS NOT NULL
        """,
        postgres="""
        CREATE TABLE payout_fees (
            environment TEXT NOT NULL,
            method TEXT NOT NULL,
            fee_currency TEXT NOT NULL,
            fee TEXT NOT NULL,
            PRIMARY KEY (environment, method, fee_currency, fee)
        )
        """,
    ),
    Migration("0004_state_checks", _sqlite_checks(), postgres=_postgres_checks()),
    Migration(
        "0005_row_claims",
        # Workers sharing a run on PostgreSQL (journal.claims): who holds a row, until when
        # (the server's clock, epoch seconds), who wrote the finished run's report, and the
        # provider's rate limit as one token bucket per provider world, shared by all.
        """
        ALTER TABLE rows ADD COLUMN claimed_by TEXT;
        ALTER TABLE rows ADD COLUMN claim_expires_at REAL;
        ALTER TABLE runs ADD COLUMN reported_by TEXT;
        CREATE TABLE rate_buckets (
            environment TEXT PRIMARY KEY,
            tokens REAL NOT NULL,
            updated_at REAL NOT NULL
        )
        """,
        postgres="""
        ALTER TABLE rows ADD COLUMN claimed_by TEXT;
        ALTER TABLE rows ADD COLUMN claim_expires_at DOUBLE PRECISION;
        ALTER TABLE runs ADD COLUMN reported_by TEXT;
        CREATE TABLE rate_buckets (
            environment TEXT PRIMARY KEY,
            tokens DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        )
        """,
    ),
    Migration(
        "0006_batches",
        # The provider's batch upload (batchpay.journal.batches): the exact file and the
        # keys, committed before each step, and which batch row is which row of the run.
        """
        CREATE TABLE batches (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs(id),
            current INTEGER NOT NULL DEFAULT 1,
            environment TEXT NOT NULL,
            file_name TEXT NOT NULL,
            file_format TEXT NOT NULL,
            file_sha256 TEXT NOT NULL,
            file BLOB NOT NULL,
            upload_key TEXT NOT NULL,
            state TEXT NOT NULL,
            batch_id TEXT,
            provider_status TEXT,
            confirm_key TEXT,
            detail TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE UNIQUE INDEX batches_current ON batches(run_id) WHERE current = 1;
        CREATE UNIQUE INDEX batches_batch_id ON batches(batch_id);
        CREATE TABLE batch_rows (
            batch INTEGER NOT NULL REFERENCES batches(id),
            batch_row INTEGER NOT NULL,
            row_number INTEGER NOT NULL,
            idempotency_key TEXT NOT NULL,
            warning TEXT,
            PRIMARY KEY (batch, batch_row)
        )
        """,
        postgres="""
        CREATE TABLE batches (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs(id),
            current INTEGER NOT NULL DEFAULT 1,
            environment TEXT NOT NULL,
            file_name TEXT NOT NULL,
            file_format TEXT NOT NULL,
            file_sha256 TEXT NOT NULL,
            file BYTEA NOT NULL,
            upload_key TEXT NOT NULL,
            state TEXT NOT NULL,
            batch_id TEXT,
            provider_status TEXT,
            confirm_key TEXT,
            detail TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE UNIQUE INDEX batches_current ON batches(run_id) WHERE current = 1;
        CREATE UNIQUE INDEX batches_batch_id ON batches(batch_id);
        CREATE TABLE batch_rows (
            batch BIGINT NOT NULL REFERENCES batches(id),
            batch_row INTEGER NOT NULL,
            row_number INTEGER NOT NULL,
            idempotency_key TEXT NOT NULL,
            warning TEXT,
            PRIMARY KEY (batch, batch_row)
        )
        """,
    ),
]


def statements(sql: str, dialect: str) -> list[str]:
    """A step's statements: split on ``;``, except inside a SQLite trigger's body."""
    out: list[str] = []
    pending = ""
    for piece in sql.split(";"):
        pending += piece + ";"
        if dialect == "sqlite" and not sqlite3.complete_statement(pending):
            continue
        if pending.strip(" \n;"):
            out.append(pending.strip().removesuffix(";"))
        pending = ""
    if pending.strip(" \n;"):
        out.append(pending.strip().removesuffix(";"))
    return out


def migrate(db: Any, now: Callable[[], str], dialect: str = "sqlite") -> None:
    """Apply the migrations ``db`` has not had yet, in order, recording each at ``now()``."""
    create = (
        "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    if dialect == "sqlite":
        db.execute(create)
    else:
        with db.write_transaction():  # serialised: two first opens must not race on DDL
            db.execute(create)
    applied = {r[0] for r in db.execute("SELECT name FROM migrations")}
    for step in MIGRATIONS:
        if step.name in applied:
            continue
        with db.write_transaction():
            if db.execute("SELECT 1 FROM migrations WHERE name=?", (step.name,)).fetchone():
                continue  # another process applied it meanwhile
            sql = step.postgres if dialect != "sqlite" and step.postgres is not None else step.sql
            for statement in statements(sql, dialect):
                db.execute(statement)
            db.execute("INSERT INTO migrations VALUES (?, ?)", (step.name, now()))
