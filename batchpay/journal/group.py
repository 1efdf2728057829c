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
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from batchpay.errors import JournalError

__all__ = ["GroupCommit"]

# Long enough to gather many payouts' writes into one commit, short beside an API call.
DEFAULT_WINDOW = 0.01


class GroupCommit:
    """One open write transaction on ``db``, committed in groups on the running loop."""

    def __init__(self, db: sqlite3.Connection, *, window: float = DEFAULT_WINDOW) -> None:
        self.db = db
        self.window = window
        self.commits = 0
        """How many COMMITs this group made."""
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._error: BaseException | None = None
        self._depth = 0
        self._open = False  # the group's BEGIN made, its COMMIT not yet

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
        """Return once every write made so far is committed (raise if the commit failed)."""
        self._check_open()
        self._raise_if_failed()
        if not self.db.in_transaction:
            return
        fut = self._loop.create_future()
        self._waiters.append(fut)
        self._schedule()
        await fut

    def flush(self) -> None:
        """Commit now what is pending; raise the group's failure, if it had one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._commit()
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

    def _commit(self) -> None:
        self._check_open()
        waiters, self._waiters = self._waiters, []
        if self._error is None and self.db.in_transaction:
            try:
                self.db.execute("COMMIT")
                self._open = False
                self.commits += 1
            except BaseException as exc:  # a full disk, an I/O error: nothing here is durable
                if self.db.in_transaction:
                    with suppress(sqlite3.Error, JournalError):
                        self.db.execute("ROLLBACK")
                self._error = exc
        for fut in waiters:
            if fut.done():
                continue
            if self._error is not None:
                fut.set_exception(self._error)
            else:
                fut.set_result(None)

    def _check_open(self, cause: BaseException | None = None) -> None:
        """Fail the group if its transaction ended without its COMMIT: SQLite rolls a whole
        transaction back by itself after some failures of one statement (a full disk, an
        I/O error), and every write in it — other payouts' intents awaiting :meth:`durable`
        among them — is gone; none of their requests may leave."""
        if self._open and not self.db.in_transaction:
            self._open = False
            if self._error is None:
                self._error = (
                    cause
                    if isinstance(cause, JournalError)
                    else JournalError(
                        "the journal's open transaction was rolled back by the database "
                        "after a failed write (a full disk or an I/O error)",
                        hint="free some disk space or check the disk, then run the same "
                        "command again; nothing is sent twice",
                    )
                )
                waiters, self._waiters = self._waiters, []
                for fut in waiters:
                    if not fut.done():
                        fut.set_exception(self._error)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error
