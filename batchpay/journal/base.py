"""What every group of journal verbs stands on: the connection, the clock, the run locks."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchpay.journal.group import GroupCommit
from batchpay.journal.locks import RunLocks
from batchpay.journal.sqlite import transaction


def format_ts(dt: datetime) -> str:
    """A datetime as a journal timestamp: UTC, microseconds, ``Z``."""
    return dt.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_ts(text: str) -> datetime:
    """Parse a journal timestamp back into an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class JournalBase:
    """The state a journal connection keeps; :class:`~batchpay.journal.Journal` sets it."""

    path: Path
    clock: Any
    db: sqlite3.Connection
    _locks: RunLocks
    _group: GroupCommit | None = None

    def now(self) -> str:
        """The journal's clock as an ISO timestamp."""
        return format_ts(self.clock())

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction that takes the database write lock up front.

        Inside :meth:`grouped`, a savepoint in the group's transaction instead.
        """
        if self._group is not None:
            return self._group.write()
        return transaction(self.db)

    @asynccontextmanager
    async def grouped(self, *, window: float | None = None) -> AsyncIterator[GroupCommit]:
        """Group the writes made inside into few commits (see :mod:`batchpay.journal.group`).

        Whatever must be durable before a request leaves is awaited with :meth:`durable`;
        everything is committed on leaving.
        """
        if self._group is not None:
            yield self._group
            return
        group = GroupCommit(self.db) if window is None else GroupCommit(self.db, window=window)
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

    async def durable(self) -> None:
        """Return once every write made so far is committed (at once outside :meth:`grouped`)."""
        if self._group is not None:
            await self._group.durable()
