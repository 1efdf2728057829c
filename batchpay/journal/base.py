"""What every group of journal verbs stands on: the connection, the clock, the run locks."""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from batchpay.journal.group import GroupCommit
from batchpay.journal.sqlite import Checkpointer
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
    _group: GroupCommit | None = None
    _checkpointer: Checkpointer | None = None
    _closed = False

    def now(self) -> str:
        """The journal's clock as an ISO timestamp."""
        return format_ts(self.clock())

    def transaction(self, *, single: bool = False) -> AbstractContextManager[Any]:
        """A write transaction that takes the database write lock up front.

        Inside :meth:`grouped`, a savepoint in the group's transaction instead (none for a
        verb that writes with one ``single`` statement, which undoes itself on failure).
        """
        if self._group is not None:
            return self._group.write(single=single)
        return self.db.write_transaction()

    @asynccontextmanager
    async def grouped(self, *, window: float | None = None) -> AsyncIterator[GroupCommit | None]:
        """Group the writes made inside into few commits (see :mod:`batchpay.journal.group`).

        Whatever must be durable before a request leaves is awaited with :meth:`durable`;
        everything is committed on leaving. On PostgreSQL (several workers, each write its
        own transaction under the journal's write lock) writes are not grouped: each verb
        commits as it returns, which is durable before any request leaves too.
        """
        if self._group is not None or self.dialect != "sqlite":
            yield self._group
            return
        db: Any = self.db
        self._checkpoint_aside()
        group = GroupCommit(db) if window is None else GroupCommit(db, window=window)
        self._group = group
        try:
            yield group
        except BaseException:
            self._group = None
            with suppress(Exception):  # the first failure is the one reported
                group.flush()  # keep what was written before the failure
            raise
        self._group = None
        group.flush()

    def _checkpoint_aside(self) -> None:
        """From now until :meth:`close`, checkpoint the SQLite journal in a thread of its
        own as well (:class:`~batchpay.journal.sqlite.Checkpointer`): many grouped writes
        follow, and none of their commits should stop the loop to copy the whole log."""
        if self._checkpointer is not None or self._closed or str(self.target) == ":memory:":
            return
        try:
            checkpointer = Checkpointer(str(self.target))
        except sqlite3.Error:  # not opened: SQLite's own checkpoints alone
            return
        self._checkpointer = checkpointer
        # A journal dropped without close() stops its thread when freed.
        weakref.finalize(self, checkpointer.stop, wait=False)

    def _stop_checkpointer(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None

    async def durable(self) -> None:
        """Return once every write made so far is committed (at once outside :meth:`grouped`)."""
        if self._group is not None:
            await self._group.durable()
