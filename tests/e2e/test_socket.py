"""batchpay as a user runs it: the CLI in its own process against a sandbox server on a port."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from batchpay.testing import payout_row, write_csv

from .server import cli_env, sandbox_server

pytestmark = pytest.mark.socket


def _batchpay(tmp: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchpay.cli", *args, "--out", str(tmp / "reports")]
        if args[0] == "run"
        else [sys.executable, "-m", "batchpay.cli", *args],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp,
    )  # fmt: skip


def test_run_against_a_separate_server(tmp_path: Path) -> None:
    """The same run works over a real socket with the key from the environment."""
    rows = [payout_row(i) for i in range(12)]
    f = write_csv(tmp_path / "pay.csv", rows)
    with sandbox_server(tmp_path) as server:
        env = cli_env(tmp_path / "home", server.url)
        first = _batchpay(tmp_path, env, "run", str(f))
        assert first.returncode == 0, first.stderr
        assert f"SANDBOX at {server.url}" in first.stderr
        assert "no money moves" in first.stderr
        assert len(server.ledger()) == 12
        again = _batchpay(tmp_path, env, "run", str(f))
        assert again.returncode == 5 and "already run" in again.stderr
        assert "Traceback" not in again.stderr
        assert len(server.ledger()) == 12


def test_two_processes_on_one_file_never_both_submit(tmp_path: Path) -> None:
    """Two batchpay processes started together: one pays, the other waits out or refuses."""
    rows = [payout_row(i) for i in range(30)]
    f = write_csv(tmp_path / "pay.csv", rows)
    with sandbox_server(tmp_path, "--latency-ms", "30") as server:
        env = cli_env(tmp_path / "home", server.url)
        cmd = [sys.executable, "-m", "batchpay.cli", "run", str(f), "--out", str(tmp_path / "r")]
        procs = [
            subprocess.Popen(
                cmd,
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
        for p in procs:
            for stream in (p.stdout, p.stderr):
                if stream:
                    stream.close()
        codes = sorted(code for code, _ in results)
        assert codes[0] == 0, results
        assert codes[1] in (5, 8), results  # refused: already paid, or locked by the other
        if codes[1] == 8:
            assert any("another batchpay process" in err for _, err in results)
        per_ref = Counter(p["reference"] for p in server.ledger())
        assert per_ref == Counter(r["reference"] for r in rows)


def test_wrong_key_stops_with_exit_7_and_no_traceback(tmp_path: Path) -> None:
    """A key the server does not know stops the run with a clear message."""
    f = write_csv(tmp_path / "pay.csv", [payout_row(0)])
    with sandbox_server(tmp_path) as server:
        env = cli_env(tmp_path / "home", server.url)
        env["BATCHPAY_API_KEY"] = "ak_test_not_a_known_key_123"
        result = _batchpay(tmp_path, env, "run", str(f))
        assert result.returncode == 7, result.stderr
        assert "Traceback" not in result.stderr
        assert "ak_test_not_a_known_key_123" not in result.stderr + result.stdout
        assert server.ledger() == []


@pytest.mark.slow
def test_chaos_kills_and_faults_pay_each_row_exactly_once(tmp_path: Path) -> None:
    """SIGKILLed 20 times against a faulty server, 200 rows end paid exactly once."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "chaos.py"
    result = subprocess.run(
        [sys.executable, str(script), "--rows", "200", "--kills", "20",
         "--workdir", str(tmp_path / "chaos")],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    import json

    summary = json.loads(result.stdout)
    assert summary["kills"] >= 20
    assert summary["duplicates"] == [] and summary["missing"] == [] and summary["strays"] == []
    assert summary["report_disagreements"] == []
    assert summary["ok"], summary


def test_chaos_with_oauth_pays_each_row_exactly_once(tmp_path: Path) -> None:
    """The same chaos with OAuth + DPoP (the server refuses keys), at a small size."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "chaos.py"
    result = subprocess.run(
        [sys.executable, str(script), "--rows", "60", "--kills", "8", "--auth", "oauth",
         "--workdir", str(tmp_path / "chaos")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    import json

    summary = json.loads(result.stdout)
    assert summary["kills"] >= 8
    assert summary["duplicates"] == [] and summary["missing"] == [] and summary["strays"] == []
    assert summary["report_disagreements"] == []
    assert summary["ok"], summary
    assert "API keys refused" in (tmp_path / "chaos" / "server.log").read_text()


@pytest.mark.slow
def test_chaos_three_processes_at_once_in_mixed_homes_pay_each_row_exactly_once(
    tmp_path: Path,
) -> None:
    """Three processes at once, two sharing a home, killed 10 times: 60 rows paid once."""
    import json

    script = Path(__file__).resolve().parents[2] / "scripts" / "chaos.py"
    result = subprocess.run(
        [sys.executable, str(script), "--rows", "60", "--kills", "10", "--processes", "3",
         "--homes", "mixed", "--workdir", str(tmp_path / "chaos")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    summary = json.loads(result.stdout)
    assert summary["kills"] >= 10
    assert summary["duplicates"] == [] and summary["missing"] == [] and summary["strays"] == []
    assert [h["processes"] for h in summary["per_home"]] == [[0, 1], [2]]
    for home in summary["per_home"]:
        assert home["final_exit"] in (0, 1, 5), home
        assert home["report_disagreements"] == [], home
        assert home["report_outcomes"].get("unknown", 0) == 0, home
        assert home["report_rows"] == 60, home
    assert summary["ok"], summary


@pytest.mark.slow
def test_kills_during_grouped_submission_lose_nothing_and_duplicate_nothing(
    tmp_path: Path,
) -> None:
    """1,000 rows at 100 ms latency with no limit announced (up to 256 requests in flight, their
    journal writes grouped), SIGKILLed mid-send: each row's payout exists exactly once."""
    import json

    script = Path(__file__).resolve().parents[2] / "scripts" / "chaos.py"
    result = subprocess.run(
        [sys.executable, str(script), "--rows", "1000", "--kills", "4", "--latency-ms", "100",
         "--rate-limit", "off",
         "--fault-5xx", "0", "--fault-429", "0", "--fault-lost", "0", "--fault-timeout", "0",
         "--client-timeout", "10", "--min-delay", "1.0", "--max-delay", "2.5", "--seed", "3",
         "--workdir", str(tmp_path / "chaos")],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    summary = json.loads(result.stdout)
    # A fast machine may finish before every kill lands; at least two must land mid-send.
    assert summary["kills"] >= 2
    assert summary["duplicates"] == [] and summary["missing"] == [] and summary["strays"] == []
    assert summary["ledger_payouts"] == 1000
    assert summary["report_disagreements"] == []
    assert summary["ok"], summary


@pytest.mark.slow
def test_a_run_killed_while_its_ledger_look_overlaps_the_start_up_pays_each_row_once(
    tmp_path: Path,
) -> None:
    """SIGKILLed while the look at the provider's ledger reads beside the start-up (the
    batch look-up or a sweep page just answered): the rerun pays each row exactly once."""
    import signal
    import sqlite3
    import time

    with sandbox_server(tmp_path, "--latency-ms", "150", "--rate-limit", "off") as server:
        env = cli_env(tmp_path / "home", server.url)
        first = write_csv(tmp_path / "a.csv", [payout_row(i) for i in range(150)])
        assert _batchpay(tmp_path, env, "run", str(first)).returncode == 0
        journal = tmp_path / "home" / "journal.db"
        for n, path in enumerate(["/v1/batches", "/v1/payouts"]):
            rows = [payout_row(i, reference=f"K{n}-{i}") for i in range(150)]
            f = write_csv(tmp_path / f"k{n}.csv", rows)
            db = sqlite3.connect(journal)
            (mark,) = db.execute("SELECT COALESCE(MAX(id), 0) FROM api_calls").fetchone()
            proc = subprocess.Popen(
                [sys.executable, "-m", "batchpay.cli", "run", str(f),
                 "--out", str(tmp_path / "reports")],
                env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                (seen,) = db.execute(
                    "SELECT COUNT(*) FROM api_calls WHERE id > ? AND method='GET' AND path=?",
                    (mark, path),
                ).fetchone()
                if seen:
                    break
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            db.close()
            again = _batchpay(tmp_path, env, "run", str(f))
            assert again.returncode == 0, again.stderr
            made = Counter(p["reference"] for p in server.ledger())
            assert all(made[r["reference"]] == 1 for r in rows), made
        assert len(server.ledger()) == 450
