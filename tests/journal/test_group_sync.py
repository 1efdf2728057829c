"""Group commit with the log synced off the event loop (``batchpay.journal.group``).

Inside ``Journal.grouped()`` on a journal in WAL mode, commits are written without a sync
and the write-ahead log is synced in a thread: ``durable()`` must still return only after a
sync that began after the writes' COMMIT, a failed sync must fail the group like a failed
COMMIT, and the connection is back to ``synchronous=FULL`` afterwards.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

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


def _pragma(j: Journal, name: str) -> int:
    return int(j.db.execute(f"PRAGMA {name}").fetchone()[0])


class _Fsyncs:
    """``os.fsync`` as the group module calls it: recorded, and held until ``release``."""

    def __init__(self, wal: Path) -> None:
        self.wal = wal
        self.calls: list[tuple[int, int]] = []  # (the log's size, commits in the db) at each
        self.gate = threading.Event()
        self.fail: OSError | None = None

    def __call__(self, fd: int) -> None:
        self.gate.wait(10)
        if self.fail is not None:
            raise self.fail
        self.calls.append((os.fstat(fd).st_size, 0))
        _REAL_FSYNC(fd)


async def test_durable_waits_for_a_sync_of_the_log_that_follows_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = Journal(tmp_path / "journal.db")
    j.record_call(None, _CALL)  # the log exists
    wal = tmp_path / "journal.db-wal"
    syncs = _Fsyncs(wal)
    monkeypatch.setattr(group_mod.os, "fsync", syncs)
    async with j.grouped() as group:
        assert group is not None
        assert _pragma(j, "synchronous") == 1  # NORMAL: the group syncs the log itself
        j.record_call(None, _CALL)
        waiter = asyncio.ensure_future(j.durable())
        await asyncio.sleep(0.1)  # committed by now (the window is 10 ms), not yet synced
        assert group.commits == 1
        assert not waiter.done()
        size_at_commit = wal.stat().st_size
        syncs.gate.set()
        await asyncio.wait_for(waiter, 5)
        assert syncs.calls and syncs.calls[0][0] >= size_at_commit
        assert group.syncs >= 1
        # nothing written since: durable returns at once
        await asyncio.wait_for(j.durable(), 1)
    assert _pragma(j, "synchronous") == 2  # FULL again
    assert _pragma(j, "wal_autocheckpoint") == 1000
    assert j.db.execute("SELECT COUNT(*) FROM api_calls").fetchone()[0] == 2
    j.close()


async def test_a_failed_sync_fails_the_waiter_and_every_later_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = Journal(tmp_path / "journal.db")
    j.record_call(None, _CALL)
    syncs = _Fsyncs(tmp_path / "journal.db-wal")
    syncs.fail = OSError(5, "Input/output error")
    syncs.gate.set()
    monkeypatch.setattr(group_mod.os, "fsync", syncs)
    with pytest.raises(JournalError, match="could not be written to disk"):  # on leaving
        async with j.grouped():
            j.record_call(None, _CALL)
            with pytest.raises(JournalError, match="could not be written to disk") as failed:
                await j.durable()
            assert failed.value.hint and "nothing is sent twice" in failed.value.hint
            with pytest.raises(JournalError):
                j.record_call(None, _CALL)
    j.close()


async def test_writes_made_while_a_sync_runs_wait_for_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit made while the previous one's sync is still in its thread is not durable by
    that sync: its waiter is released only by a sync that began after its own commit."""
    j = Journal(tmp_path / "journal.db")
    j.record_call(None, _CALL)
    syncs = _Fsyncs(tmp_path / "journal.db-wal")
    monkeypatch.setattr(group_mod.os, "fsync", syncs)
    async with j.grouped() as group:
        assert group is not None
        j.record_call(None, _CALL)
        first = asyncio.ensure_future(j.durable())
        await asyncio.sleep(0.05)  # commit 1 made, its sync held at the gate
        j.record_call(None, _CALL)
        second = asyncio.ensure_future(j.durable())
        await asyncio.sleep(0.05)  # commit 2 made while sync 1 is held
        assert group.commits == 2 and not first.done() and not second.done()
        syncs.gate.set()
        await asyncio.wait_for(asyncio.gather(first, second), 5)
        assert len(syncs.calls) >= 2  # the second waiter needed a sync of its own
    j.close()


async def test_the_log_is_checkpointed_off_the_loop_and_kept_small(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's own checkpoint (inside a COMMIT) is off in the group; the sync thread
    checkpoints instead, so the log does not grow without bound."""
    monkeypatch.setattr(group_mod, "CHECKPOINT_SECONDS", 0.0)
    j = Journal(tmp_path / "journal.db")
    j.record_call(None, _CALL)
    async with j.grouped():
        assert _pragma(j, "wal_autocheckpoint") == 0
        for _ in range(40):
            for _ in range(50):
                j.record_call(None, {**_CALL, "path": "/v1/" + "x" * 500})
            await j.durable()
        frames = j.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    # after a checkpoint of the sync thread's, few frames were left to move
    checkpointed: Any = frames[2]
    assert int(checkpointed) < 2000
    assert j.db.execute("SELECT COUNT(*) FROM api_calls").fetchone()[0] == 2001
    j.close()


async def test_a_journal_without_a_log_commits_with_its_own_sync(tmp_path: Path) -> None:
    """Not in WAL mode (the log file missing): commits sync themselves, as before."""
    j = Journal(tmp_path / "journal.db")
    j.db.execute("PRAGMA journal_mode=DELETE")
    async with j.grouped() as group:
        assert group is not None
        assert _pragma(j, "synchronous") == 2
        j.record_call(None, _CALL)
        await asyncio.wait_for(j.durable(), 5)
        assert group.commits == 1 and group.syncs == 0
    j.close()
