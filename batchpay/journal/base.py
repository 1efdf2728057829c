"""What every group of journal verbs stands on: the connection, the clock, the run locks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from batchpay.journal.target import JournalTarget


def format_ts(dt: datetime) -> str:
    """A datetime as a journal timestamp: UTC, microseconds, ``Z``."""
    return dt.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_ts(text: str) -> datetime:
    """Parse a journal timestamp back into an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Cursor(Protocol):
    """The rows of one statement (``sqlite3.Row`` or :class:`~batchpay.journal.postgres.Row`)."""

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Database(Protocol):
    """A journal connection, SQLite's or PostgreSQL's: the surface the verbs use."""

    @property
    def in_transaction(self) -> bool: ...
    def execute(self, sql: str, parameters: Any = (), /) -> Any: ...
    def executemany(self, sql: str, parameters: Any, /) -> Any: ...
    def write_transaction(self) -> AbstractContextManager[Any]: ...
    def close(self) -> None: ...


class Locks(Protocol):
    """Run locks (``flock`` files on SQLite, advisory locks on PostgreSQL)."""

    def take(self, run_id: str, owner: Any) -> None: ...
    def drop(self, run_id: str, owner: Any) -> None: ...
    def holds(self, run_id: str, owner: Any) -> bool: ...
    def drop_all(self) -> None: ...


class JournalBase:
    """The state a journal connection keeps; :class:`~batchpay.journal.Journal` sets it."""

    path: Path
    target: JournalTarget
    dialect: str  # "sqlite" or "postgresql"
    clock: Any
    db: Database  # sqlite3's connection (journal.sqlite), or journal.postgres.Connection
    _locks: Locks

    def now(self) -> str:
        """The journal's clock as an ISO timestamp."""
        return format_ts(self.clock())

    def transaction(self) -> AbstractContextManager[Any]:
        """A write transaction that takes the database write lock up front."""
        return self.db.write_transaction()
