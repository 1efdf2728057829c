"""What every group of journal verbs stands on: the connection, the clock, the run locks."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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

    def now(self) -> str:
        """The journal's clock as an ISO timestamp."""
        return format_ts(self.clock())

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction that takes the database write lock up front."""
        return transaction(self.db)
