"""SQLite-backed sandbox state: ``:memory:`` by default, a file with ``--state``; one code path.

Rows keep the API representation as a JSON ``doc`` plus the columns lists filter on.
Every change runs inside :meth:`Store.tx`, so a restarted server with a state file
finds its payouts, balances and idempotency keys exactly as they were committed.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS balances (
    currency TEXT PRIMARY KEY, available TEXT NOT NULL, pending TEXT NOT NULL,
    updated_ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS beneficiaries (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, created_ts REAL NOT NULL,
    status TEXT NOT NULL, type TEXT NOT NULL, country TEXT NOT NULL, external_ref TEXT,
    fingerprint TEXT NOT NULL, doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS beneficiaries_fp ON beneficiaries (fingerprint);
CREATE TABLE IF NOT EXISTS instruments (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, created_ts REAL NOT NULL,
    beneficiary_id TEXT NOT NULL, method TEXT NOT NULL, currency TEXT NOT NULL,
    country TEXT NOT NULL, status TEXT NOT NULL, fingerprint TEXT NOT NULL, doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS instruments_ben ON instruments (beneficiary_id);
CREATE TABLE IF NOT EXISTS payouts (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, created_ts REAL NOT NULL,
    beneficiary_id TEXT NOT NULL, instrument_id TEXT NOT NULL, batch_id TEXT,
    status TEXT NOT NULL, dest_currency TEXT NOT NULL, reference TEXT NOT NULL,
    next_due_ts REAL, idempotency_key TEXT, plan TEXT NOT NULL, doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS payouts_due ON payouts (next_due_ts);
CREATE INDEX IF NOT EXISTS payouts_ref ON payouts (reference);
CREATE INDEX IF NOT EXISTS payouts_created ON payouts (created_ts, seq);
CREATE TABLE IF NOT EXISTS payout_events (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, payout_id TEXT NOT NULL, doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS payout_events_payout ON payout_events (payout_id);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, state TEXT NOT NULL,
    status INTEGER, body BLOB, created_ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency (created_ts);
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, status TEXT NOT NULL,
    secret TEXT NOT NULL, previous_secret TEXT, previous_until REAL, doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_events (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, type TEXT NOT NULL,
    created_ts REAL NOT NULL, body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, event_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
    next_attempt_ts REAL, doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_ts);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, created_ts REAL NOT NULL,
    status TEXT NOT NULL, file_hash TEXT NOT NULL, next_due_ts REAL,
    work TEXT NOT NULL, doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_due ON batches (next_due_ts);
CREATE INDEX IF NOT EXISTS batches_hash ON batches (file_hash);
CREATE INDEX IF NOT EXISTS batches_created ON batches (created_ts, seq);
"""

_TABLES = (
    "balances",
    "beneficiaries",
    "instruments",
    "payouts",
    "payout_events",
    "idempotency",
    "webhooks",
    "webhook_events",
    "deliveries",
    "batches",
)


class Store:
    """One SQLite connection guarded by a re-entrant lock (the server and a test may share it)."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            path or ":memory:", check_same_thread=False, isolation_level=None
        )
        self._conn.row_factory = sqlite3.Row
        if path:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        with self.tx():
            row = self.one("SELECT value FROM meta WHERE key = 'schema_version'")
            if row is None:
                self.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?), ('seq', '0')",
                    (str(SCHEMA_VERSION),),
                )
            elif int(row["value"]) != SCHEMA_VERSION:
                raise RuntimeError(
                    f"state file {path} has schema {row['value']}, expected {SCHEMA_VERSION}"
                )
            # A request that was running when the last process died never answered;
            # its key is released so a retry runs again.
            self.execute("DELETE FROM idempotency WHERE state = 'in_flight'")

    @property
    def fresh(self) -> bool:
        """Whether the store has never been seeded (no balances row yet)."""
        return self.one("SELECT 1 FROM meta WHERE key = 'seeded'") is None

    def mark_seeded(self) -> None:
        """Record that the initial balances were loaded."""
        self.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('seeded', '1')")

    @contextmanager
    def tx(self) -> Iterator[None]:
        """One atomic unit of work (nestable: inner blocks join the outer transaction)."""
        with self._lock:
            if self._conn.in_transaction:
                yield
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Run one statement."""
        with self._lock:
            return self._conn.execute(sql, params)

    def one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        """First row of a query, or None."""
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Every row of a query."""
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    def next_seq(self) -> int:
        """A strictly increasing number shared by every table (orders lists and cursors)."""
        with self.tx():
            self.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'seq'")
            row = self.one("SELECT value FROM meta WHERE key = 'seq'")
            assert row is not None
            return int(row["value"])

    def reset(self) -> None:
        """Delete every row of sandbox state (balances are reseeded by the caller)."""
        with self.tx():
            for table in _TABLES:
                self.execute(f"DELETE FROM {table}")
            self.execute("DELETE FROM meta WHERE key = 'seeded'")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


def load(doc: str) -> dict[str, Any]:
    """Decode a stored JSON document."""
    value: dict[str, Any] = json.loads(doc)
    return value


def store_doc(value: dict[str, Any]) -> str:
    """Encode a document for storage."""
    return json.dumps(value, separators=(",", ":"), sort_keys=False)
