"""The journal's log cannot be synced (EIO) in the middle of a run's grouped submission.

Inside ``Journal.grouped()`` the log is fsync'd by a thread; a failed sync fails the group
as a failed COMMIT does. Attack: let the sync fail while a run has many payouts in flight,
so that the group's next transaction is already open (outcomes and intents written after
the commit whose sync failed). The run must stop with the journal's one-line error and its
exit code, release its lock, and leave the connection as it found it (``synchronous=FULL``,
no transaction left open for the run's own bookkeeping to trip over); a rerun on a healthy
disk pays each row exactly once and accounts for every row.

``os.fsync`` is replaced as the group module calls it (the only way to make a real disk
answer EIO); everything else is the real journal and the in-process sandbox. (This held
on main at f636dcb: kept as a cheap guard.)
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from pathlib import Path

import httpx
import pytest

from batchpay import journal as journal_mod
from batchpay import pipeline
from batchpay.config import Settings
from batchpay.errors import ExitCode, JournalError
from batchpay.journal import Journal
from batchpay.journal import group as group_mod
from batchpay.sandbox import Sandbox

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio

_REAL_FSYNC = os.fsync


class _Counting(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.payouts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/v1/payouts":
            self.payouts += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("sent_before", [1, 100])
async def test_a_sync_failing_mid_run_stops_it_cleanly_and_a_rerun_pays_once(
    sandbox: Sandbox,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sent_before: int,
) -> None:
    rows = [payee(i) for i in range(400)]
    f = write_csv(tmp_path / "pay.csv", rows)
    Journal(settings.journal_path).close()
    kwargs = run_kwargs(sandbox, settings, tmp_path)
    counting = _Counting(kwargs["transport"])
    kwargs["transport"] = counting

    def failing(fd: int) -> None:
        if counting.payouts >= sent_before:
            raise OSError(5, "Input/output error")
        _REAL_FSYNC(fd)

    states: list[tuple[int, bool]] = []
    real_close = journal_mod.Journal.close

    def close(self: Journal) -> None:  # how the run leaves its connection
        with_db = getattr(self, "db", None)
        if with_db is not None:
            with_db_sync = int(with_db.execute("PRAGMA synchronous").fetchone()[0])
            states.append((with_db_sync, bool(with_db.in_transaction)))
        real_close(self)

    monkeypatch.setattr(group_mod.os, "fsync", failing)
    monkeypatch.setattr(journal_mod.Journal, "close", close)
    with pytest.raises(JournalError, match="could not be written to disk") as caught:
        await pipeline.run_async(f, **kwargs)
    assert caught.value.exit_code == ExitCode.CONFIG
    assert caught.value.hint
    assert states and all(s == (2, False) for s in states), states
    monkeypatch.undo()

    with Journal(settings.journal_path) as j:
        assert [r["lock_owner"] for r in j.list_runs()] == [None]
    result = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert result.exit_code == ExitCode.OK
    assert Counter(p["reference"] for p in sandbox.ledger()) == Counter(
        r["reference"] for r in rows
    )
    db = sqlite3.connect(settings.journal_path)
    assert db.execute("SELECT COUNT(*) FROM payouts WHERE state='created'").fetchone()[0] == 400
    db.close()
