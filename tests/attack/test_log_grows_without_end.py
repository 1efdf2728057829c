"""A grouped submission's write-ahead log must start over, not grow without end.

Inside ``Journal.grouped()`` SQLite's own checkpoint is off (``wal_autocheckpoint=0``) and
a thread checkpoints the log every half second on a connection of its own. SQLite rewinds
the log only for a writer whose transaction *began* with every frame checkpointed; the
group's connection begins its next transaction right after each COMMIT, before the
thread's checkpoint runs, so the log was copied into the database but never started over:
a 1,500-payout run against ``batchpay sandbox serve`` left a 29–34 MB log beside a 5.6 MB
journal (4.4 MB before the change), growing with the run, so a run that fitted on the
disk failed with "the disk is full".

Writes go on while each ``durable()`` waits, as a run's rows do; the log must stay near
SQLite's own checkpoint size.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from batchpay.journal import Journal
from batchpay.journal import group as group_mod

pytestmark = pytest.mark.anyio

_CALL = {
    "started_at": "2026-12-01T00:00:00Z", "method": "GET", "path": "/v1/" + "x" * 500,
    "status": 200, "error_code": None, "request_id": "req_1", "idempotency_key": None,
    "attempt": 1, "duration_ms": 1.0,
}  # fmt: skip


async def test_the_log_starts_over_while_writes_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (a checkpoint after every sync, should the log be synced off the loop again)
    monkeypatch.setattr(group_mod, "CHECKPOINT_SECONDS", 0.0, raising=False)
    j = Journal(tmp_path / "journal.db")
    j.record_call(None, _CALL)
    j.db.execute("PRAGMA wal_autocheckpoint=100")  # 100 pages: a small log is expected
    limit = 100 * int(j.db.execute("PRAGMA page_size").fetchone()[0])
    wal = tmp_path / "journal.db-wal"
    longest = 0
    waiters = []
    async with j.grouped():
        for _ in range(300):
            for _ in range(20):
                j.record_call(None, _CALL)
            waiters.append(asyncio.ensure_future(j.durable()))
            await asyncio.sleep(0.002)  # the loop goes on; other rows write meanwhile
            longest = max(longest, wal.stat().st_size)
        await asyncio.gather(*waiters)
    assert j.db.execute("SELECT COUNT(*) FROM api_calls").fetchone()[0] == 6001
    j.close()
    assert longest < 4 * limit, f"the log grew to {longest} bytes (its limit {limit})"
