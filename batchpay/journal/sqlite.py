"""Journal connections: SQLite, configured once, whose failures are JournalErrors.

A journal is opened through :func:`connect` (WAL, full sync, foreign keys, a busy
timeout). Its connection and cursors turn the database's failures (a full disk, a
read-only file, a lock held too long, a damaged file) into one clear
:class:`~batchpay.errors.JournalError` with a hint; constraint violations and misuse keep
their sqlite3 types. A new journal is made under a temporary name and linked into place
(:func:`create_atomically`), and an empty or non-file journal is refused
(:func:`refuse_unusable`).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any

from batchpay.errors import JournalError
from batchpay.files import create_private_file, open_files_limit


def _switches() -> tuple[float, Callable[[sqlite3.Connection], None] | None]:
    """The busy timeout and the test hook, read when a connection needs them.

    They live on the package (``batchpay.journal.BUSY_TIMEOUT_SECONDS`` and
    ``batchpay.journal.connection_hook``), where tests set them, so they are looked up
    there each time rather than copied here at import.
    """
    import batchpay.journal as package

    return package.BUSY_TIMEOUT_SECONDS, package.connection_hook


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that takes the database write lock up front."""
    try:
        db.execute("BEGIN IMMEDIATE")
        yield db
        db.execute("COMMIT")
    except BaseException:
        # SQLite rolls back by itself after some failures (a full disk): roll back only
        # what is still open, and let the first error be the one reported.
        if db.in_transaction:
            with suppress(sqlite3.Error, JournalError):
                db.execute("ROLLBACK")
        raise


def create_atomically(path: Path, make: Callable[[sqlite3.Connection], None]) -> None:
    """Make a new journal under a temporary name with ``make``, then link it into place.

    A crash while creating leaves only the temporary file behind, never a half-made
    journal at ``path`` that the next run would refuse. If another process created the
    journal meanwhile, its file is used and ours is dropped.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.new")
    try:
        create_private_file(tmp)
    except OSError as exc:
        raise os_journal_error(path, exc) from None
    try:
        db = connect(str(tmp))
        try:
            make(db)
        finally:
            db.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it meanwhile: use theirs
        except OSError:
            # No hard links on this file system: rename, unless the journal appeared.
            if not path.exists():
                os.replace(tmp, path)
    except OSError as exc:
        raise os_journal_error(path, exc) from None
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)


def refuse_unusable(path: Path) -> bool:
    """Whether a journal exists at ``path``; raise JournalError if it cannot be one."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise os_journal_error(path, exc) from None
    if not stat.S_ISREG(st.st_mode):
        raise JournalError(
            f"the journal at {path} is not a file",
            hint="point BATCHPAY_JOURNAL (or --journal) at a batchpay journal file",
        )
    if st.st_size == 0:
        raise JournalError(
            f"the journal at {path} is empty (0 bytes); batchpay will not treat it as a new one",
            hint="an empty journal may be a truncated or failed copy: restore it from a backup, "
            "or delete the empty file only if no payout was ever made with it",
        )
    return True


def connect(target: str) -> _Connection:
    """Open and configure a journal connection whose failures are JournalErrors."""
    busy_timeout, hook = _switches()
    try:
        db = sqlite3.connect(
            target, isolation_level=None, timeout=busy_timeout, factory=_Connection
        )
    except sqlite3.Error as exc:
        raise journal_error(target, exc) from None
    assert isinstance(db, _Connection)
    db.journal_path = target
    db.row_factory = sqlite3.Row
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        if hook is not None:
            hook(db)
    except BaseException:
        db.close()
        raise
    return db


class Checkpointer:
    """Checkpoints a WAL journal from a thread of its own while the journal writes.

    By itself SQLite copies the log into the database inside whichever COMMIT pushes the
    log past 1,000 pages: that commit then copies up to 4 MB of scattered pages and syncs
    them, a quarter to half a second on the thread that made it — a run's event loop,
    stopped, several times per 5,000 payouts. A thread with a connection of its own
    checkpoints every ``interval`` seconds instead, PASSIVE (it never waits for nor blocks
    a writer, and SQLite releases the GIL while it copies), so the commit that reaches
    1,000 pages finds the log already copied but for the last moments' pages.

    That commit's own checkpoint is kept: it runs between two writes, so it completes, and
    only a completed checkpoint lets the next write start the log over. (The thread's rarely
    complete while writes go on: the log would grow without end on its own.)

    Durability is untouched: a commit is durable once its log frames are synced, before
    and after any checkpoint. A round that fails (a busy reader, a full disk) leaves the
    log to the next round or to SQLite's own.
    """

    INTERVAL = 0.05

    def __init__(self, target: str, *, interval: float | None = None) -> None:
        self.interval = self.INTERVAL if interval is None else interval
        self.rounds = 0
        """How many checkpoints the thread has made (for tests)."""
        self._stop = threading.Event()
        # Opened here: a journal the thread cannot open raises to the caller, which keeps
        # SQLite's own checkpoints alone. Never created: a journal moved or deleted
        # meanwhile must not leave an empty file where it was.
        uri = "file:" + urllib.parse.quote(os.path.abspath(target)) + "?mode=rw"
        self._own = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        self._thread = threading.Thread(
            target=self._loop, name="batchpay-journal-checkpoint", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    self._own.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.rounds += 1
                except sqlite3.Error:
                    pass  # busy or failing: the next round, or SQLite's own, does it
        finally:
            self._own.close()

    def stop(self, *, wait: bool = True) -> None:
        """Stop the thread (its connection closed); wait for it unless ``wait`` is False
        (a journal freed without being closed: its finaliser may run on any thread)."""
        self._stop.set()
        if wait and threading.current_thread() is not self._thread:
            self._thread.join()


def _translates(exc: sqlite3.Error) -> bool:
    # Constraint violations and API misuse keep their type: the first is handled by the
    # callers (duplicate webhook events), the second is a bug in batchpay.
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


class _Connection(sqlite3.Connection):
    """A sqlite3 connection that turns the database's failures into JournalErrors."""

    journal_path = ""

    def write_transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction that takes the database write lock up front."""
        return transaction(self)

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        cursor = self.cursor(_Cursor)
        try:
            return cursor.execute(sql, parameters)
        except sqlite3.Error as exc:
            if _translates(exc):
                raise journal_error(self.journal_path, exc) from None
            raise

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        cursor = self.cursor(_Cursor)
        try:
            return cursor.executemany(sql, parameters)
        except sqlite3.Error as exc:
            if _translates(exc):
                raise journal_error(self.journal_path, exc) from None
            raise


class _Cursor(sqlite3.Cursor):
    """Reads rows lazily, so reading can fail too (a damaged page, an I/O error)."""

    def _wrap(self, exc: sqlite3.Error) -> BaseException:
        connection = self.connection
        where = connection.journal_path if isinstance(connection, _Connection) else "?"
        return journal_error(where, exc) if _translates(exc) else exc

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            raise self._wrap(exc) from None

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            raise self._wrap(exc) from None

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        try:
            return super().fetchmany(size)
        except sqlite3.Error as exc:
            raise self._wrap(exc) from None

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as exc:
            raise self._wrap(exc) from None


def journal_error(path: str, exc: sqlite3.Error) -> JournalError:
    """One clear line and a hint for a SQLite failure on the journal at ``path``."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary result code
    again = "then run the same command again; nothing is sent twice"
    if code == sqlite3.SQLITE_FULL:
        return JournalError(
            f"the journal at {path} cannot be written: the disk is full",
            hint=f"free some disk space, {again}",
        )
    if code == sqlite3.SQLITE_READONLY:
        return JournalError(
            f"the journal at {path} is read-only",
            hint="give this user write access to the journal, its -wal and -shm files and its "
            f"folder, {again}",
        )
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return JournalError(
            f"the journal at {path} stayed locked by another process for over "
            f"{_switches()[0]:.0f} seconds",
            hint=f"wait for the other batchpay process (or backup tool) to let go, {again}",
        )
    if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return JournalError(
            f"cannot open the journal at {path}: it is not a batchpay journal "
            "(not a SQLite database, or damaged)",
            hint="point BATCHPAY_JOURNAL (or --journal) at the right file, or restore the "
            "journal from a backup; batchpay never overwrites it",
        )
    if code == sqlite3.SQLITE_CANTOPEN and _out_of_descriptors(path):
        return JournalError(
            f"cannot open the journal at {path}: this process may open no more files "
            f"(its limit is {open_files_limit() or 'unlimited'})",
            hint="raise the open-files limit (ulimit -n), or for a run pass a lower "
            f"--concurrency, {again}",
        )
    if code in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH):
        return JournalError(
            f"cannot open the journal at {path}",
            hint="check the path (BATCHPAY_JOURNAL) and that this user may read and write it "
            "and its folder",
        )
    if code == sqlite3.SQLITE_IOERR:
        return JournalError(
            f"the disk failed while batchpay used the journal at {path} ({exc})",
            hint=f"check the disk and the file system, {again}",
        )
    return JournalError(
        f"the journal at {path} failed: {exc}",
        hint="check the path (BATCHPAY_JOURNAL) points at a batchpay journal you can write",
    )


def _out_of_descriptors(path: str) -> bool:
    """Whether SQLite could not open ``path`` because this process has no file descriptor
    left (it says only "unable to open database file"): opening it needs one, as SQLite's
    open did."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        return exc.errno in (errno.EMFILE, errno.ENFILE)
    os.close(fd)
    return False


def os_journal_error(path: Path, exc: OSError) -> JournalError:
    if exc.errno == errno.ENOSPC:
        return JournalError(
            f"the journal at {path} cannot be created: the disk is full",
            hint="free some disk space, then run the same command again",
        )
    return JournalError(
        f"cannot create the journal at {path} ({exc.strerror or exc})",
        hint="set BATCHPAY_HOME (or --journal) to a folder this user can write",
    )
