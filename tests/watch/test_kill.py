"""A real `batchpay watch --once` process, SIGKILLed mid-file, finishes the file on restart."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from batchpay.testing import payout_row, write_csv
from tests.e2e.server import cli_env, sandbox_server

pytestmark = [pytest.mark.socket, pytest.mark.slow]


def _kill_after_payouts(
    cmd: list[str], env: dict[str, str], cwd: Path, server: Any, payouts: int
) -> None:
    """Start ``cmd``; SIGKILL it once the sandbox holds ``payouts`` payouts."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 60
    while len(server.ledger()) < payouts:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no payouts were made"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


def test_watcher_killed_mid_file_finishes_it_on_restart_and_a_redrop_is_a_duplicate(
    tmp_path: Path,
) -> None:
    """SIGKILL while paying: the file stays in processing/; the restart pays the rest, each
    reference once, answers in processed/; the same file dropped again lands in failed/."""
    drop = tmp_path / "drop"
    drop.mkdir()
    rows = [payout_row(i) for i in range(24)]
    write_csv(drop / "pay.csv", rows)
    (drop / "pay.csv.ok").write_text("")
    cmd = [sys.executable, "-m", "batchpay.cli", "watch", str(drop), "--once",
           "--worker", "w1", "--concurrency", "2", "--skip-balance-check"]  # fmt: skip
    with sandbox_server(tmp_path, "--latency-ms", "150") as server:
        env = cli_env(tmp_path / "home", server.url)
        _kill_after_payouts(cmd, env, tmp_path, server, 3)
        assert len(server.ledger()) < len(rows), "the run finished before the kill"
        assert (drop / "processing" / "w1" / "pay.csv").exists()

        again = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True,
                               timeout=180)  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert "processed pay.csv" in again.stdout
        assert Counter(p["reference"] for p in server.ledger()) == Counter(
            r["reference"] for r in rows
        )
        day = datetime.now().astimezone().date().isoformat()
        answer = json.loads((drop / "processed" / day / "pay.csv.result.json").read_text())
        assert answer["exit_code"] == 0 and sum(answer["counts"].values()) == len(rows)
        assert (drop / "processed" / day / "pay.csv.report.xlsx").exists()

        write_csv(drop / "pay.csv", rows)
        (drop / "pay.csv.ok").write_text("")
        dup = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=120)  # fmt: skip
        assert dup.returncode == 5, dup.stderr
        refused = json.loads((drop / "failed" / day / "pay.csv.result.json").read_text())
        assert refused["earlier_run"] == answer["run_id"]
        assert len(server.ledger()) == len(rows)


@pytest.mark.parametrize("elsewhere", [False, True], ids=["same-host", "recreated-container"])
def test_a_claim_left_by_a_killed_watcher_is_finished_by_one_under_another_name(
    tmp_path: Path, elsewhere: bool
) -> None:
    """A watcher SIGKILLed mid-file under one name; the next starts under another (a pod
    recreated under a new host name, the default worker name): the claim was left in
    processing/ for ever, the rest of its rows never paid, every later pass exiting 0.
    Now the claim is adopted — its process ended on this host, or (another host's claim)
    this journal holds its unfinished run and no process holds that — and each reference
    is paid once."""
    drop = tmp_path / "drop"
    drop.mkdir()
    rows = [payout_row(i) for i in range(24)]
    write_csv(drop / "pay.csv", rows)
    (drop / "pay.csv.ok").write_text("")
    cmd = [sys.executable, "-m", "batchpay.cli", "watch", str(drop), "--once",
           "--concurrency", "2", "--skip-balance-check"]  # fmt: skip
    with sandbox_server(tmp_path, "--latency-ms", "150") as server:
        env = cli_env(tmp_path / "home", server.url)
        _kill_after_payouts([*cmd, "--worker", "pod-a"], env, tmp_path, server, 3)
        assert len(server.ledger()) < len(rows), "the run finished before the kill"
        claim_file = drop / "processing" / "pod-a" / "pay.csv.claim.json"
        if elsewhere:
            claim = json.loads(claim_file.read_text())
            claim_file.write_text(json.dumps({**claim, "host": "pod-a-7f9c", "pid": 1}))

        again = subprocess.run([*cmd, "--worker", "pod-b"], env=env, cwd=tmp_path,
                               capture_output=True, text=True, timeout=180)  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert "adopted pay.csv from watcher pod-a" in again.stderr
        assert "processed pay.csv" in again.stdout
        assert Counter(p["reference"] for p in server.ledger()) == Counter(
            r["reference"] for r in rows
        )
        assert not (drop / "processing" / "pod-a" / "pay.csv").exists()
