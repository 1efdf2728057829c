"""A group whose log sync failed must not leave its connection half-configured.

When the sync thread's fsync fails, the group fails (as a failed COMMIT does) — but the
group's next transaction may already be open (writes made while the failed sync ran).
``flush()`` then skipped its COMMIT and, finding a transaction open, also skipped putting the
connection back to ``synchronous=FULL`` and SQLite's own checkpoints: the journal object
went on with an open transaction at ``synchronous=NORMAL``. Every later write on it failed
("cannot start a transaction within a transaction"), and a later ``grouped()`` on it (a
long-lived process: the drop-folder watcher, Airflow) would see the open transaction, skip
its own sync of the log and trust the connection's commits to sync themselves — at NORMAL
they do not: intents sent before they were on disk.

``os.fsync`` is replaced as the group module calls it (the only way to get EIO); the
journal is real.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from batchpay.errors import JournalError
from batchpay.journal import Journal
from batchpay.journal import group as group_mod

pytestmark = pytest.mark.anyio

_REAL_FSYNC = os.fsync
_CALL = {
    "started_at": "2026-12-01T00:00:00Z", "method": "GET", "path": "/v1/x", "status": 200,
    "error_code": None, "request_id": "req_1", "idempotency_key": None, "attempt": 1,
    "duration_ms": 1.0,
}  # fmt: skip


async def test_a_failed_sync_with_the_next_transaction_open_leaves_the_connection_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    failing = False

    def fsync(fd: int) -> None:
        gate.wait(10)
        if failing:
            raise OSError(5, "Input/output error")
        _REAL_FSYNC(fd)

    j = Journal(tmp_path / "journal.db")
    j.record_call(None, _CALL)
    monkeypatch.setattr(group_mod.os, "fsync", fsync)
    with pytest.raises(JournalError, match="could not be written to disk"):
        async with j.grouped() as group:
            assert group is not None
            j.record_call(None, _CALL)
            first = asyncio.ensure_future(j.durable())
            await asyncio.sleep(0.05)  # committed; its sync held in the thread
            j.record_call(None, _CALL)  # the next transaction is open meanwhile
            assert j.db.in_transaction
            failing = True
            gate.set()
            with pytest.raises(JournalError):
                await first
    monkeypatch.undo()
    assert not j.db.in_transaction
    assert int(j.db.execute("PRAGMA synchronous").fetchone()[0]) == 2
    assert int(j.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]) == 1000
    j.record_call(None, _CALL)  # the journal still takes writes of its own
    async with j.grouped() as again:
        assert again is not None
        j.record_call(None, _CALL)
        await asyncio.wait_for(j.durable(), 5)
        assert again.syncs >= 1  # synced by the group, not trusted to a NORMAL commit
    j.close()
