"""SIGTERM (a service manager, a container stop) ends a run like Ctrl-C: cleanly, exit 143."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from batchpay.testing import payout_row, write_csv

from .server import cli_env, sandbox_server

pytestmark = pytest.mark.socket


def test_sigterm_mid_run_exits_143_releases_the_lock_and_a_rerun_pays_each_row_once(
    tmp_path: Path,
) -> None:
    """SIGTERM while payouts are in flight: message, exit 143, lock released; rerun finishes."""
    rows = [payout_row(i) for i in range(24)]
    f = write_csv(tmp_path / "pay.csv", rows)
    cmd = [sys.executable, "-m", "batchpay.cli", "run", str(f), "--out", str(tmp_path / "r"),
           "--concurrency", "2", "--skip-balance-check"]  # fmt: skip
    with sandbox_server(tmp_path, "--latency-ms", "150") as server:
        env = cli_env(tmp_path / "home", server.url)
        proc = subprocess.Popen(
            cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 60
        while len(server.ledger()) < 3:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no payouts were made"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, err
        assert "terminated (SIGTERM)" in err and "run the same command again" in err
        assert "Traceback" not in err + out
        paid_before = len(server.ledger())
        assert paid_before < len(rows), "the run finished before SIGTERM arrived"

        journal = sqlite3.connect(tmp_path / "home" / "journal.db")
        try:
            holders = [r[0] for r in journal.execute("SELECT lock_owner FROM runs")]
        finally:
            journal.close()
        assert holders == [None]  # the finally blocks ran: the run lock was given back

        again = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True,
                               timeout=120)  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert "resumed unfinished run" in again.stderr
        per_ref = Counter(p["reference"] for p in server.ledger())
        assert per_ref == Counter(r["reference"] for r in rows)


def test_a_reader_that_goes_away_ends_validate_quietly_with_141(tmp_path: Path) -> None:
    """`batchpay validate pay.csv | head`: no "internal error", no traceback; exit 141."""
    path = write_csv(tmp_path / "pay.csv", [payout_row(i) for i in range(5)])
    env = {**os.environ, "BATCHPAY_HOME": str(tmp_path / "home")}
    read, write = os.pipe()
    os.close(read)  # the reader is gone before a word is written
    proc = subprocess.run(
        [sys.executable, "-m", "batchpay.cli", "validate", str(path)],
        stdout=write, stderr=subprocess.PIPE, env=env, timeout=60, check=False,
    )  # fmt: skip
    os.close(write)
    assert proc.returncode == 141, proc.stderr
    assert b"internal error" not in proc.stderr and b"Traceback" not in proc.stderr
