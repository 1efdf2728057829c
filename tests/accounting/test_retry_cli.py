"""`batchpay retry-failed` at the command line: named outcomes, never exit 70; --wait."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchpay.testing import payout_row, write_csv

pytestmark = pytest.mark.slow


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI against the embedded sandbox kept under ``home``; stdin is /dev/null."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHPAY_")}
    env["BATCHPAY_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "batchpay.cli", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
        stdin=subprocess.DEVNULL, cwd=home.parent,
    )  # fmt: skip


def _run_id(done: subprocess.CompletedProcess[str]) -> str:
    line = next(line for line in done.stdout.splitlines() if line.startswith("Run run_"))
    return line.split()[1].rstrip(":")


def test_retry_failed_outcomes_at_the_command_line(tmp_path: Path) -> None:
    """Nothing to retry is said and exits 0; rows to retry without --yes and no terminal
    exit 2 sending nothing; --yes --wait pays them and follows them to a final status."""
    home = tmp_path / "home"
    ok = write_csv(tmp_path / "ok.csv", [payout_row(0)])
    done = _cli(home, "run", str(ok), "--wait")
    assert done.returncode == 0, done.stderr
    nothing = _cli(home, "retry-failed", _run_id(done))
    assert nothing.returncode == 0, nothing.stderr
    assert "nothing to do: run" in nothing.stdout and "no failed or returned rows" in nothing.stdout

    bad = write_csv(tmp_path / "bad.csv", [payout_row(1, amount="150.91"), payout_row(2)])
    failed = _cli(home, "run", str(bad), "--wait")
    assert failed.returncode == 1, failed.stderr
    run_id = _run_id(failed)
    unasked = _cli(home, "retry-failed", run_id)
    assert unasked.returncode == 2, unasked.stderr
    assert "no terminal to ask" in unasked.stderr and "--yes" in unasked.stderr
    again = _cli(home, "retry-failed", run_id, "--yes", "--wait")
    # the same amount fails again at the sandbox (its .91 trigger): followed to "failed"
    assert again.returncode == 1, again.stderr
    assert "retried as run_" in again.stdout
    assert "Outcomes: failed 1" in again.stdout
