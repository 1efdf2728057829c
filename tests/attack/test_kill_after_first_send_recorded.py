"""SIGKILL once a new intent's first send is recorded in the INSERT that stores it.

Branch runfast3 records a new intent's first send in the INSERT that stores it
(``begin_payout(sending=True)``) and no longer reads it back; its request leaves right
after. A ``batchpay run`` killed then (the intent committed, its request on the wire or
answered but not yet recorded) and run again must settle each such intent with its own
key: the sandbox's ledger shows each reference paid once, and the rerun's report accounts
for every row.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from batchpay.testing import payout_row, write_csv
from tests.e2e.server import cli_env, sandbox_server

pytestmark = pytest.mark.slow


def _run(tmp: Path, env: dict[str, str], f: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "batchpay.cli", "run", str(f), "--out", str(tmp / "reports"),
         "--concurrency", "16"],
        env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.parametrize("wanted", [1, 6])
def test_a_run_killed_with_intents_recorded_as_sent_pays_each_row_once(
    tmp_path: Path, wanted: int
) -> None:
    with sandbox_server(tmp_path, "--latency-ms", "200", "--rate-limit", "off") as server:
        env = cli_env(tmp_path / "home", server.url)
        rows = [payout_row(i) for i in range(60)]
        f = write_csv(tmp_path / "p.csv", rows)
        proc = _run(tmp_path, env, f)
        journal = tmp_path / "home" / "journal.db"
        deadline = time.monotonic() + 60
        sent = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=0.05)
                (sent,) = db.execute(
                    "SELECT COUNT(*) FROM payouts WHERE state='sending' AND send_count=1"
                ).fetchone()
                db.close()
            except sqlite3.Error:
                sent = 0
            if sent >= wanted:
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert sent >= wanted  # killed with intents committed as sent, not yet settled
        again = subprocess.run(
            [sys.executable, "-m", "batchpay.cli", "run", str(f), "--out",
             str(tmp_path / "reports")],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        made = Counter(p["reference"] for p in server.ledger())
        assert made == {r["reference"]: 1 for r in rows}
