"""The SQLite journal's log is checkpointed beside a run's grouped writes, not only inside
them.

By itself SQLite copies the write-ahead log into the database inside whichever COMMIT
pushes the log past 1,000 pages, on the thread that commits: a run's event loop stopped for
a quarter to half a second, several times per 5,000 payouts. While a journal groups its
writes (and until it is closed), a thread of its own checkpoints too, so that commit finds
the log copied already; the log stays bounded and every commit is in the database.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from batchpay.journal import Journal
from batchpay.journal.sqlite import Checkpointer

pytestmark = pytest.mark.anyio

_NAME = "batchpay-journal-checkpoint"


def _checkpointers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == _NAME and t.is_alive()]


def _fill(j: Journal, commits: int, *, size: int = 20_000) -> None:
    """Many commits of fresh pages."""
    j.db.execute("CREATE TABLE IF NOT EXISTS filler (k INTEGER PRIMARY KEY, v BLOB)")
    for _ in range(commits):
        with j.transaction() as db:
            db.execute("INSERT INTO filler (v) VALUES (randomblob(?))", (size,))


def _rounds_after(c: Checkpointer, n: int) -> None:
    """Wait until the thread has made ``n`` more rounds."""
    target = c.rounds + n
    deadline = time.monotonic() + 10
    while c.rounds < target:
        assert time.monotonic() < deadline, "the checkpoint thread made no round"
        time.sleep(0.01)


def _rows_in_database_file(path: Path, tmp: Path) -> int:
    """The filler rows the database file itself holds, its log left aside (a copy of the
    file alone, opened read-only)."""
    alone = tmp / "alone.db"
    shutil.copyfile(path, alone)
    db = sqlite3.connect(f"file:{alone}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COUNT(*) FROM filler").fetchone()[0])
    finally:
        db.close()


async def test_the_thread_copies_the_log_into_the_database_before_sqlite_would(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.db"
    copies = tmp_path / "copies"
    copies.mkdir()
    with Journal(path) as j:
        assert not _checkpointers()
        async with j.grouped():
            assert len(_checkpointers()) == 1
            checkpointer = j._checkpointer
            assert checkpointer is not None
        # 100 commits of about 20 KB: some 500 pages, under the 1,000 at which a commit
        # of this connection would copy the log by itself.
        _fill(j, 100)
        _rounds_after(checkpointer, 2)
        assert _rows_in_database_file(path, copies) == 100


async def test_the_log_stays_bounded_under_continuous_writes(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with Journal(path) as j:
        async with j.grouped():
            pass
        # 40 MB of commits with no pause between them: the thread's rounds seldom complete
        # then, and SQLite's own checkpoint (kept) lets the log start over.
        _fill(j, 2000)
        assert Path(f"{path}-wal").stat().st_size < 16 * 1024 * 1024
    other = sqlite3.connect(path)
    try:
        assert other.execute("SELECT COUNT(*) FROM filler").fetchone()[0] == 2000
    finally:
        other.close()


async def test_closing_the_journal_stops_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with Journal(path) as j:
        async with j.grouped():
            pass
        async with j.grouped():  # a second group keeps the one thread
            assert len(_checkpointers()) == 1
        (thread,) = _checkpointers()
    assert not thread.is_alive()
    assert not _checkpointers()


def test_a_checkpointer_stops_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with Journal(path) as j:
        c = Checkpointer(str(path), interval=0.01)
        _fill(j, 20)
        _rounds_after(c, 1)
        c.stop()
        assert not _checkpointers()


async def test_an_in_memory_journal_starts_no_thread() -> None:
    with Journal(":memory:") as j:
        async with j.grouped():
            assert not _checkpointers()


def _wait_for_no_checkpointer() -> None:
    deadline = time.monotonic() + 10
    while _checkpointers():
        assert time.monotonic() < deadline, "the checkpoint thread outlived its journal"
        time.sleep(0.01)


async def test_a_journal_dropped_without_closing_stops_its_thread(tmp_path: Path) -> None:
    import gc

    j = Journal(tmp_path / "journal.db")
    async with j.grouped():
        assert len(_checkpointers()) == 1
    j.db.close()  # what freeing the connection does; the journal itself is not closed
    del j
    gc.collect()
    _wait_for_no_checkpointer()


async def test_a_journal_moved_away_while_open_leaves_no_empty_file_behind(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.db"
    with Journal(path) as j:
        path.rename(tmp_path / "moved.db")
        async with j.grouped():
            assert not _checkpointers()  # the thread could not open it: none started
    assert not path.exists()


async def test_a_closed_journal_starts_no_thread(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.db")
    j.close()
    j._checkpoint_aside()
    assert not _checkpointers()
