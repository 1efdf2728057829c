"""Run locks: who works on a run, held as OS locks on files beside the journal.

On SQLite, a run's lock is an ``flock`` on ``<journal>.locks/<run_id>.lock``: the kernel releases it
when its holder dies (SIGKILL, a crash, power loss), so it never needs to expire and never
outlives its holder. The file holds the owner's identity, for the message another process
shows when it finds the run taken. On PostgreSQL it is a session advisory lock
(:class:`AdvisoryLocks`), which the server drops with its holder's connection.
"""

from __future__ import annotations

import fcntl
import os
import socket
import uuid
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchpay.errors import RunLockedError
from batchpay.files import FILE_MODE, make_private_dir


@dataclass(frozen=True)
class LockOwner:
    """Who holds a run: host, process and a random token."""

    host: str
    pid: int
    token: str

    @classmethod
    def current(cls) -> LockOwner:
        """An owner identity for this process."""
        return cls(socket.gethostname(), os.getpid(), uuid.uuid4().hex[:12])

    def encode(self) -> str:
        """Serialised form stored in the runs table."""
        return f"{self.host}|{self.pid}|{self.token}"

    @classmethod
    def decode(cls, text: str) -> LockOwner:
        """Inverse of :meth:`encode`."""
        host, pid, token = text.split("|", 2)
        return cls(host, int(pid), token)


def _locked(run_id: str, holder: LockOwner | None) -> RunLockedError:
    who = f" (pid {holder.pid} on {holder.host})" if holder is not None else ""
    return RunLockedError(
        f"run {run_id} is being worked on by another batchpay process{who}",
        hint="wait for it to finish, or stop it; the lock is released the moment it exits",
    )


class RunLocks:
    """The run locks one journal connection holds: owner and descriptor per run.

    For an in-memory journal (no folder to lock in) the locks are only remembered here.
    """

    def __init__(self, journal_path: Path, *, memory: bool) -> None:
        self._journal_path = journal_path
        self._memory = memory
        self._held: dict[str, tuple[LockOwner, int | None]] = {}

    def _lock_path(self, run_id: str) -> Path:
        folder = self._journal_path.with_name(self._journal_path.name + ".locks")
        make_private_dir(folder)
        return folder / f"{run_id}.lock"

    def take(self, run_id: str, owner: LockOwner) -> None:
        """Hold the run's OS lock (released by the kernel when this process dies)."""
        held = self._held.get(run_id)
        if held is not None:
            if held[0] == owner:
                return
            raise _locked(run_id, held[0])
        if self._memory:
            self._held[run_id] = (owner, None)
            return
        path = self._lock_path(run_id)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = LockOwner.decode(os.pread(fd, 200, 0).decode("utf-8", "replace"))
            except ValueError:
                holder = None
            os.close(fd)
            raise _locked(run_id, holder) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, owner.encode().encode("utf-8"), 0)
        self._held[run_id] = (owner, fd)

    def drop(self, run_id: str, owner: LockOwner) -> None:
        """Let go of the run's OS lock, if ``owner`` holds it here."""
        held = self._held.get(run_id)
        if held is None or held[0] != owner:
            return
        del self._held[run_id]
        if held[1] is not None:
            os.close(held[1])  # closing the descriptor releases the lock

    def holds(self, run_id: str, owner: LockOwner) -> bool:
        """Whether ``owner`` holds the run's lock here."""
        held = self._held.get(run_id)
        return held is not None and held[0] == owner

    def drop_all(self) -> None:
        """Let go of every lock still held."""
        for run_id, (owner, _fd) in list(self._held.items()):
            self.drop(run_id, owner)


class AdvisoryLocks:
    """Run locks on a PostgreSQL journal: session advisory locks on the journal's connection.

    The server releases them when the session ends, however it ends (the process killed,
    its machine gone: the connection drops), so, like the ``flock`` on SQLite, a run's lock
    lives exactly as long as its holder. Who holds it is read from ``runs.lock_owner``.
    """

    def __init__(self, db: Any) -> None:
        self._db = db
        self._held: dict[str, LockOwner] = {}

    def take(self, run_id: str, owner: LockOwner) -> None:
        """Hold the run's lock for as long as this connection lives."""
        from batchpay.journal.postgres import RUN_LOCKS

        held = self._held.get(run_id)
        if held is not None:
            if held == owner:
                return
            raise _locked(run_id, held)
        got = self._db.execute(
            "SELECT pg_try_advisory_lock(?, hashtext(?))", (RUN_LOCKS, run_id)
        ).fetchone()[0]
        if not got:
            row = self._db.execute("SELECT lock_owner FROM runs WHERE id=?", (run_id,)).fetchone()
            holder = None
            if row is not None and row[0]:
                try:
                    holder = LockOwner.decode(str(row[0]))
                except ValueError:
                    holder = None
            raise _locked(run_id, holder)
        self._held[run_id] = owner

    def drop(self, run_id: str, owner: LockOwner) -> None:
        """Let go of the run's lock, if ``owner`` holds it here."""
        from batchpay.journal.postgres import RUN_LOCKS

        if self._held.get(run_id) != owner:
            return
        del self._held[run_id]
        with suppress(Exception):
            self._db.execute("SELECT pg_advisory_unlock(?, hashtext(?))", (RUN_LOCKS, run_id))

    def holds(self, run_id: str, owner: LockOwner) -> bool:
        """Whether ``owner`` holds the run's lock here."""
        return self._held.get(run_id) == owner

    def drop_all(self) -> None:
        """Let go of every lock still held."""
        for run_id, owner in list(self._held.items()):
            self.drop(run_id, owner)
