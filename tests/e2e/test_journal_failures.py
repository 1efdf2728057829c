"""A journal failing in the middle of a run stops it with a JournalError; a rerun pays once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from batchpay import journal as journal_mod
from batchpay import pipeline
from batchpay.config import Settings
from batchpay.errors import ExitCode, JournalError
from batchpay.journal import Journal
from batchpay.sandbox import Sandbox
from batchpay.testing import disk_full_after

from .conftest import payee, run_kwargs, write_csv


@pytest.mark.anyio
async def test_disk_full_after_some_payouts_stops_the_run_and_a_rerun_pays_each_row_once(
    sandbox: Sandbox, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up mid-run: JournalError (exit 6), lock released, rerun completes once."""
    rows = [payee(i) for i in range(30)]
    f = write_csv(tmp_path / "pay.csv", rows)
    Journal(settings.journal_path).close()

    monkeypatch.setattr(journal_mod, "connection_hook", disk_full_after(8))
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


_FULL_SOON = """
import sys
import batchpay.journal as journal
from batchpay.testing import disk_full_after
journal.connection_hook = disk_full_after(int(sys.argv.pop(1)))
from batchpay.cli import program
sys.argv = ["batchpay", *sys.argv[1:]]
program()
"""


@pytest.mark.slow
def test_a_disk_full_with_hundreds_in_flight_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """The `batchpay run` process fills its journal's disk with 256 payouts in flight: it ends
    with the one-line error, its hint and exit 6 — the other rows stopped before the journal
    closed, not each ending in a traceback as the event loop shut down (hundreds did) — and
    the same command later pays each row once."""
    import subprocess
    import sys

    from batchpay.testing import payout_row
    from batchpay.testing import write_csv as write_rows

    from .server import cli_env, sandbox_server

    rows = [payout_row(i) for i in range(400)]
    f = write_rows(tmp_path / "pay.csv", rows)
    with sandbox_server(tmp_path, "--rate-limit", "off", "--latency-ms", "50") as server:
        env = cli_env(tmp_path / "home", server.url)
        run = [sys.executable, "-c", _FULL_SOON, "120", "run", str(f), "--out",
               str(tmp_path / "r"), "--skip-balance-check"]  # fmt: skip
        failed = subprocess.run(run, env=env, capture_output=True, text=True, timeout=300)
        assert failed.returncode == 6, failed.stderr[-2000:]
        assert "Traceback" not in failed.stderr and "unhandled" not in failed.stderr
        assert "error: the journal at" in failed.stderr and "the disk is full" in failed.stderr
        assert "hint: free some disk space" in failed.stderr
        again = subprocess.run([sys.executable, "-m", "batchpay.cli", *run[4:]], env=env,
                               capture_output=True, text=True, timeout=300)  # fmt: skip
        assert again.returncode == 0, again.stderr[-2000:]
        paid = Counter(p["reference"] for p in server.ledger())
    assert paid == Counter(r["reference"] for r in rows)
