"""Group commit: the writes of many concurrent coroutines in one fsync'd transaction.

A run sends hundreds of payouts at once, each moving through several journal states. One
``BEGIN IMMEDIATE … COMMIT`` (and one fsync) per state change costs more CPU than the HTTP
request itself, and blocks the event loop's thread while it syncs. Inside
:meth:`~batchpay.journal.Journal.grouped`, the journal's verbs write into one open
transaction instead (each verb in its own ``SAVEPOINT``, so a verb that fails undoes only
its own writes) and the transaction is committed at most every ``window`` seconds.

The one rule this must not weaken — an intent and its key are durable before its request
leaves — is kept by :meth:`GroupCommit.durable`: the sender awaits it between committing
the intent and sending, and it returns only once a COMMIT holding the intent has
succeeded. Many intents share that commit; outcomes (created, rejected, the calls made)
are committed in the next group. A crash loses at most outcomes not yet committed: their
intents stay ``sending`` and are settled on the next run with their own keys, as after any
crash between an answer and its commit.

The fsync that makes a commit durable is not waited for on the event loop's thread. On a
journal in WAL mode, the group's commits are made with ``synchronous=NORMAL`` (the frames
are written, not synced) and the write-ahead log is then synced by ``os.fsync`` in a worker
thread, which releases the GIL: :meth:`GroupCommit.durable` returns only once a sync that
began after the intent's COMMIT has ended, so "durable before sent" holds exactly as with
``synchronous=FULL``, while the loop goes on answering and writing (later frames appended to
the log meanwhile are synced too, harmlessly). SQLite still syncs around its checkpoints
itself. A failed sync fails every waiter and every later write, as a failed COMMIT does; the
connection is back at ``synchronous=FULL`` once the group ends.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress

from batchpay.errors import JournalError

__all__ = ["GroupCommit"]

# Long enough to gather many payouts' writes into one commit, short beside an API call.
DEFAULT_WINDOW = 0.01
# The log is checkpointed into the database (by a connection of the sync thread's own) at
# most this often: SQLite's own automatic checkpoint (every 1,000 pages) would run, and sync,
# inside a COMMIT on the loop's thread.
CHECKPOINT_SECONDS = 0.5


class GroupCommit:
    """One open write transaction on ``db``, committed in groups on the running loop.

    ``wal_path``: the journal's write-ahead log, synced off the loop (see the module); None
    (a journal not in WAL mode, an in-memory one) commits with the connection's own sync.
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        *,
        window: float = DEFAULT_WINDOW,
        wal_path: str | None = None,
    ) -> None:
        self.db = db
        self.window = window
        self.commits = 0
        """How many COMMITs this group made."""
        self.syncs = 0
        """How many of those were made durable by a sync of the log off the loop."""
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        # (the commit number that makes the waiter durable, its future)
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._error: BaseException | None = None
        self._depth = 0
        self._open = False  # the group's BEGIN made, its COMMIT not yet
        self._synced = 0  # commits known durable
        self._syncing: asyncio.Task[None] | None = None
        self._wal_path = wal_path
        self._wal: int | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpointed_at = time.monotonic()  # when the log was last checkpointed
        self._autocheckpoint = 1000
        self._log_limit = 0  # the log's size (bytes) past which the loop checkpoints
        if wal_path is not None and not db.in_transaction:
            with suppress(OSError):
                self._wal = os.open(wal_path, os.O_RDONLY)
            if self._wal is not None:
                row = db.execute("PRAGMA wal_autocheckpoint").fetchone()
                self._autocheckpoint = int(row[0]) if row is not None else 1000
                page = db.execute("PRAGMA page_size").fetchone()
                self._log_limit = self._autocheckpoint * (int(page[0]) if page else 4096)
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA wal_autocheckpoint=0")
                self._thread = ThreadPoolExecutor(1, thread_name_prefix="journal-sync")

    @contextmanager
    def write(self, *, single: bool = False) -> Iterator[sqlite3.Connection]:
        """One verb's writes, inside the group's transaction (its own savepoint).

        ``single``: the verb writes with one statement, which SQLite undoes by itself
        when it fails (the transaction stays open): no savepoint is needed.
        """
        self._check_open()
        self._raise_if_failed()
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")
            self._open = True
        self._depth += 1
        if single:
            try:
                yield self.db
            except BaseException as exc:
                self._check_open(exc)
                raise
            finally:
                self._depth -= 1
                self._schedule()
            return
        self.db.execute("SAVEPOINT bp_verb")
        try:
            yield self.db
        except BaseException as exc:
            if self.db.in_transaction:
                with suppress(sqlite3.Error, JournalError):
                    self.db.execute("ROLLBACK TO bp_verb")
                    self.db.execute("RELEASE bp_verb")
            self._check_open(exc)
            raise
        else:
            self.db.execute("RELEASE bp_verb")
        finally:
            self._depth -= 1
            self._schedule()

    async def durable(self) -> None:
        """Return once every write made so far is committed and synced (raise if either
        failed)."""
        self._check_open()
        self._raise_if_failed()
        if self.db.in_transaction:
            needed = self.commits + 1  # the next COMMIT holds these writes
        elif self._synced < self.commits:
            needed = self.commits  # committed, its sync not yet ended
        else:
            return
        fut = self._loop.create_future()
        self._waiters.append((needed, fut))
        if self.db.in_transaction:
            self._schedule()
        else:
            self._start_sync()
        await fut

    def flush(self) -> None:
        """Commit now what is pending and sync it (on this thread); end the group's
        off-loop syncing; raise the group's failure, if it had one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._commit(sync_here=True)
        if self._error is not None and self.db.in_transaction:
            # Failed (a sync, a COMMIT): what the open transaction holds is not known
            # durable and is not committed now; the connection is left as it was found,
            # its later writes their own transactions again.
            with suppress(sqlite3.Error, JournalError):
                self.db.execute("ROLLBACK")
            self._open = False
        if self._syncing is not None and not self._syncing.done():
            self._syncing.cancel()  # all is synced above; a sync still in its thread ends alone
        if self._wal is not None:
            assert self._thread is not None
            self._thread.shutdown(wait=True)  # a checkpoint under way ends first
            if self._checkpointer is not None:
                with suppress(sqlite3.Error):
                    self._checkpointer.close()
            with suppress(OSError):
                os.close(self._wal)
            self._wal = None
            with suppress(sqlite3.Error, JournalError):
                if not self.db.in_transaction:
                    self.db.execute("PRAGMA synchronous=FULL")
                    self.db.execute(f"PRAGMA wal_autocheckpoint={self._autocheckpoint}")
        self._raise_if_failed()

    # -- internals ---------------------------------------------------------------------

    def _schedule(self) -> None:
        if self._timer is None and (self.db.in_transaction or self._waiters):
            self._timer = self._loop.call_later(self.window, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._depth:  # a verb is mid-write (cannot happen on one thread; be safe)
            self._schedule()
            return
        self._commit()

    def _commit(self, *, sync_here: bool = False) -> None:
        self._check_open()
        if self._error is None and self.db.in_transaction:
            try:
                self.db.execute("COMMIT")
                self._open = False
                self.commits += 1
                self._restart_log_if_big()
            except BaseException as exc:  # a full disk, an I/O error: nothing here is durable
                if self.db.in_transaction:
                    with suppress(sqlite3.Error, JournalError):
                        self.db.execute("ROLLBACK")
                self._fail(exc)
        if self._error is not None:
            self._fail(self._error)
        elif self._wal is None:
            self._synced = self.commits  # the connection synced its own commits
            self._wake()
        elif sync_here:
            self._sync_now()
        elif self._synced < self.commits:
            self._start_sync()
        else:
            self._wake()  # waiters of a commit that turned out empty

    def _start_sync(self) -> None:
        if self._syncing is None or self._syncing.done():
            self._syncing = self._loop.create_task(self._sync_loop())

    async def _sync_loop(self) -> None:
        while self._error is None and self._wal is not None and self._synced < self.commits:
            target, fd = self.commits, self._wal
            try:
                await self._loop.run_in_executor(self._thread, self._sync_log, fd)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: nothing is known durable
                self._fail(self._sync_error(exc))
                return
            self._synced = max(self._synced, target)
            self.syncs += 1
            self._wake()

    def _sync_log(self, fd: int) -> None:
        """(In the sync thread.) Sync the log; checkpoint it once it has grown enough (the
        commits already synced: a checkpoint moves only what is durable)."""
        os.fsync(fd)
        if time.monotonic() - self._checkpointed_at < CHECKPOINT_SECONDS:
            return
        try:
            if self._checkpointer is None:
                assert self._wal_path is not None
                self._checkpointer = sqlite3.connect(
                    self._wal_path.removesuffix("-wal"), isolation_level=None,
                    check_same_thread=False, timeout=0,
                )  # fmt: skip
                # Its checkpoints sync the log before and the database after them, whatever
                # the build's default: the log is overwritten once checkpointed.
                self._checkpointer.execute("PRAGMA synchronous=FULL")
            # PASSIVE: as much as it can without waiting on this group's own transaction;
            # SQLite syncs the log before and the database after it.
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            pass  # not a failure of any commit: a later sync tries again
        self._checkpointed_at = time.monotonic()

    def _restart_log_if_big(self) -> None:
        """(On the loop, right after a COMMIT.) Let the log start over once it has grown
        past SQLite's own checkpoint size.

        The sync thread's checkpoints copy the log into the database but cannot let it
        start over: SQLite rewinds the log only for a writer whose transaction began with
        every frame checkpointed, and this connection begins its next transaction as soon
        as it commits, before the thread's checkpoint has run. The log so grew without end
        (34 MB for a 5.6 MB journal after 1,500 payouts; a full disk for a journal that
        fitted). A checkpoint here, with no transaction open, moves the few frames the
        thread has not (it syncs the log before and the database after it), and the next
        transaction rewinds the log. Once the log file is longer than SQLite's own
        ``wal_autocheckpoint`` pages, and again each time it grows past its length."""
        if self._wal is None or self._log_limit <= 0:
            return
        try:
            size = os.fstat(self._wal).st_size
        except OSError:
            return
        if size <= self._log_limit:
            return
        # A log that started over is rewritten within its old length: asked again only
        # once it grows past it.
        self._log_limit = size
        with suppress(sqlite3.Error, JournalError):  # not a failure of any commit
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _sync_now(self) -> None:
        if self._wal is not None and self._synced < self.commits:
            target = self.commits
            try:
                os.fsync(self._wal)
            except OSError as exc:
                self._fail(self._sync_error(exc))
                return
            self._synced = target
        self._wake()

    def _sync_error(self, exc: Exception) -> JournalError:
        why = getattr(exc, "strerror", None) or type(exc).__name__
        return JournalError(
            f"the journal's log {self._wal_path} could not be written to disk ({why})",
            hint="free some disk space or check the disk, then run the same command again; "
            "nothing is sent twice",
        )

    def _wake(self) -> None:
        """Release the waiters whose commit is durable (and, with no write pending, those
        waiting for a commit that never came)."""
        still = []
        for needed, fut in self._waiters:
            if fut.done():
                continue
            if needed <= self._synced or (
                not self.db.in_transaction and self._synced >= self.commits
            ):
                fut.set_result(None)
            else:
                still.append((needed, fut))
        self._waiters = still

    def _check_open(self, cause: BaseException | None = None) -> None:
        """Fail the group if its transaction ended without its COMMIT: SQLite rolls a whole
        transaction back by itself after some failures of one statement (a full disk, an
        I/O error), and every write in it — other payouts' intents awaiting :meth:`durable`
        among them — is gone; none of their requests may leave."""
        if self._open and not self.db.in_transaction:
            self._open = False
            if self._error is None:
                self._fail(
                    cause
                    if isinstance(cause, JournalError)
                    else JournalError(
                        "the journal's open transaction was rolled back by the database "
                        "after a failed write (a full disk or an I/O error)",
                        hint="free some disk space or check the disk, then run the same "
                        "command again; nothing is sent twice",
                    )
                )

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        waiters, self._waiters = self._waiters, []
        for _, fut in waiters:
            if not fut.done():
                fut.set_exception(exc)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error
