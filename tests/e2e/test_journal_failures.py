"""A journal failing in the middle of a run stops it with a JournalError; a rerun pays once."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from batchpay import journal as journal_mod
from batchpay import pipeline
from batchpay.config import Settings
from batchpay.errors import ExitCode, JournalError
from batchpay.journal import Journal
from batchpay.sandbox import Sandbox

from .conftest import payee, run_kwargs, write_csv


@pytest.mark.anyio
async def test_disk_full_after_some_payouts_stops_the_run_and_a_rerun_pays_each_row_once(
    sandbox: Sandbox, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up mid-run: JournalError (exit 6), lock released, rerun completes once."""
    rows = [payee(i) for i in range(30)]
    f = write_csv(tmp_path / "pay.csv", rows)
    Journal(settings.journal_path).close()

    def full_soon(db: sqlite3.Connection) -> None:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count={pages + 8}")

    monkeypatch.setattr(journal_mod, "connection_hook", full_soon)
    with pytest.raises(JournalError, match="the disk is full") as caught:
        await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path, concurrency=2))
    assert caught.value.exit_code == ExitCode.CONFIG
    assert 0 < len(sandbox.ledger()) < len(rows)  # it failed mid-run, not at the start

    monkeypatch.setattr(journal_mod, "connection_hook", None)
    with Journal(settings.journal_path) as j:
        assert [r["lock_owner"] for r in j.list_runs()] == [None]
    result = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert result.resumed and result.exit_code == ExitCode.OK
    assert Counter(p["reference"] for p in sandbox.ledger()) == Counter(
        r["reference"] for r in rows
    )
