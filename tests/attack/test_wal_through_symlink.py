"""A journal reached through a symbolic link: the group must sync the log SQLite writes.

Inside ``Journal.grouped()`` commits are made with ``synchronous=NORMAL`` and the
write-ahead log is fsync'd by a thread, on a file descriptor batchpay opens itself, at the
journal's path plus ``-wal``. SQLite resolves symbolic links: for ``home/journal.db ->
/disk/real.db`` it writes its log to ``/disk/real.db-wal``. With a file at
``home/journal.db-wal`` (a log left beside the link when the journal was moved to another
disk and linked back) the group synced that file instead, and the real log was never
synced before ``durable()`` returned: on a power loss, intents whose payouts had left
were gone. (With no such file it fell back to ``synchronous=FULL``: slow, but safe.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batchpay.journal import Journal

pytestmark = pytest.mark.anyio


async def test_the_group_syncs_the_log_beside_the_real_file(tmp_path: Path) -> None:
    real = tmp_path / "disk" / "real.db"
    real.parent.mkdir()
    Journal(real).close()
    home = tmp_path / "home"
    home.mkdir()
    link = home / "journal.db"
    link.symlink_to(real)
    (home / "journal.db-wal").write_bytes(b"")  # left beside the link
    with Journal(link) as j:
        j.db.execute("SELECT COUNT(*) FROM runs").fetchone()  # the log is open and exists
        async with j.grouped() as group:
            assert group is not None
            fd = group._wal
            assert fd is not None, "a journal in WAL mode is synced off the loop"
            synced = os.fstat(fd)
            written = os.stat(f"{real}-wal")
            assert (synced.st_dev, synced.st_ino) == (written.st_dev, written.st_ino)
