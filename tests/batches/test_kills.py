"""`batchpay run --via batches` killed at every step resumes the same batch; the ledger judges.

Each test runs a real `batchpay sandbox serve` and real `batchpay run` processes, kills one
with SIGKILL at a chosen step (a fault plan holds the server's answer there), runs the same
command again, and asks the server: one batch uploaded, every reference paid exactly once.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batchpay.testing import payout_row, write_csv
from tests.e2e.server import Server, cli_env, sandbox_server

pytestmark = [pytest.mark.socket, pytest.mark.slow]

ROWS = 12


def _cmd(csv: Path, tmp: Path, *extra: str, via: str = "batches") -> list[str]:
    return [sys.executable, "-m", "batchpay.cli", "run", str(csv), "--via", via,
            "--out", str(tmp / "reports"), "--skip-balance-check", *extra]  # fmt: skip


def _post(server: Server, path: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(server.url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _plan(server: Server, route: str, outcomes: list[str]) -> None:
    _post(server, "/_sandbox/faults", {"plan": {route: outcomes}})


def _batches(server: Server) -> list[dict[str, Any]]:
    return list(server.admin("/_sandbox/batches")["data"])


def _journal_state(home: Path) -> str | None:
    path = home / "journal.db"
    if not path.exists():
        return None
    db = sqlite3.connect(path, timeout=5)
    try:
        row = db.execute("SELECT state FROM batches").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        db.close()
    return str(row[0]) if row else None


def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool]) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds (it must not finish first)."""
    deadline = time.monotonic() + 60
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the kill point was never reached"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


def _judge(server: Server, rows: list[dict[str, str]]) -> None:
    """One batch, every reference paid exactly once, nothing else paid."""
    ledger = server.ledger()
    per_ref = Counter(p["reference"] for p in ledger)
    assert sorted(per_ref) == sorted(r["reference"] for r in rows)
    assert set(per_ref.values()) == {1}, per_ref
    batches = _batches(server)
    assert len(batches) == 1, batches
    assert {p["batch_id"] for p in ledger} == {batches[0]["id"]}


def _finish(cmd: list[str], env: dict[str, str], tmp: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done


@pytest.fixture
def rows() -> list[dict[str, str]]:
    """A small file of valid rows to three kinds of payee."""
    return [payout_row(i) for i in range(ROWS)]


@pytest.mark.parametrize("fault", ["timeout", "latency=4000"])
def test_killed_during_upload_resumes_the_same_upload(
    tmp_path: Path, rows: list[dict[str, str]], fault: str
) -> None:
    """Killed while the upload is in flight — answered after commit (timeout) or before
    (latency): the next run sends the same file under the same key; one batch, paid once."""
    csv = write_csv(tmp_path / "pay.csv", rows)
    home = tmp_path / "home"
    with sandbox_server(tmp_path, "--timeout-seconds", "30") as server:
        env = cli_env(home, server.url, BATCHPAY_HTTP_TIMEOUT="60")
        _plan(server, "POST /v1/batches", [fault])
        proc = subprocess.Popen(_cmd(csv, tmp_path, "--confirm"), env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        if fault == "timeout":
            _kill_when(proc, lambda: len(_batches(server)) == 1)
        else:
            _kill_when(proc, lambda: _journal_state(home) == "uploading")
            assert _batches(server) == []
        assert _journal_state(home) == "uploading"
        _finish(_cmd(csv, tmp_path, "--confirm"), env, tmp_path)
        _judge(server, rows)


def test_upload_answer_lost_past_every_retry_is_found_in_the_batch_list(
    tmp_path: Path, rows: list[dict[str, str]]
) -> None:
    """Every answer to the upload lost: the batch is found by listing, not uploaded again."""
    csv = write_csv(tmp_path / "pay.csv", rows)
    with sandbox_server(tmp_path) as server:
        env = cli_env(tmp_path / "home", server.url, BATCHPAY_HTTP_TIMEOUT="60")
        _plan(server, "POST /v1/batches", ["lost_response"] * 30)
        _finish(_cmd(csv, tmp_path, "--confirm"), env, tmp_path)
        _judge(server, rows)


def test_not_confirmed_then_confirmed_uses_the_same_batch(
    tmp_path: Path, rows: list[dict[str, str]]
) -> None:
    """Without --confirm (no terminal) the plan is shown and nothing is paid (exit 2); with
    it, the same batch is confirmed. A kill while reading the validation: the same again."""
    csv = write_csv(tmp_path / "pay.csv", rows)
    home = tmp_path / "home"
    with sandbox_server(tmp_path, "--timeout-seconds", "30") as server:
        env = cli_env(home, server.url, BATCHPAY_HTTP_TIMEOUT="60")
        asked = subprocess.run(_cmd(csv, tmp_path), env=env, cwd=tmp_path, capture_output=True,
                               text=True, timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
        assert asked.returncode == 2, asked.stderr
        assert "not confirmed" in asked.stderr and "hint: " in asked.stderr
        assert f"{ROWS} valid" in asked.stderr
        assert server.ledger() == [] and len(_batches(server)) == 1
        _plan(server, "GET /v1/batches/{id}/errors", ["timeout"])
        proc = subprocess.Popen(_cmd(csv, tmp_path, "--confirm"), env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        _kill_when(proc, lambda: not server.admin("/_sandbox/faults")["plan"])
        assert server.ledger() == []
        _finish(_cmd(csv, tmp_path, "--confirm"), env, tmp_path)
        _judge(server, rows)


def test_killed_during_confirm_never_confirms_twice(
    tmp_path: Path, rows: list[dict[str, str]]
) -> None:
    """The confirm committed, its answer withheld, the process killed: the next run reads the
    batch, sees it confirmed, and follows it to its results."""
    csv = write_csv(tmp_path / "pay.csv", rows)
    home = tmp_path / "home"
    with sandbox_server(tmp_path, "--timeout-seconds", "30") as server:
        env = cli_env(home, server.url, BATCHPAY_HTTP_TIMEOUT="60")
        _plan(server, "POST /v1/batches/{id}/confirm", ["timeout"])
        proc = subprocess.Popen(_cmd(csv, tmp_path, "--confirm"), env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        _kill_when(proc, lambda: any(b.get("confirmed_at") for b in _batches(server)))
        assert _journal_state(home) == "confirming"
        _finish(_cmd(csv, tmp_path, "--confirm"), env, tmp_path)
        _judge(server, rows)


def test_killed_while_processing_follows_the_same_batch(
    tmp_path: Path, rows: list[dict[str, str]]
) -> None:
    """Killed while the provider turns rows into payouts: the next run follows the batch."""
    csv = write_csv(tmp_path / "pay.csv", rows)
    home = tmp_path / "home"
    with sandbox_server(tmp_path, "--batch-rows-per-step", "2") as server:
        env = cli_env(home, server.url, BATCHPAY_HTTP_TIMEOUT="60")
        proc = subprocess.Popen(_cmd(csv, tmp_path, "--confirm"), env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        _kill_when(proc, lambda: len(server.ledger()) >= 2)
        assert _journal_state(home) == "confirmed"
        assert len(server.ledger()) < ROWS
        done = _finish(_cmd(csv, tmp_path, "--confirm"), env, tmp_path)
        assert "resumed unfinished run" in done.stderr
        _judge(server, rows)


def test_an_expired_confirmation_is_reported_not_uploaded_again(
    tmp_path: Path, rows: list[dict[str, str]]
) -> None:
    """Validated, not confirmed, then the deadline passes: exit 9 with a hint, nothing paid,
    and no second upload however often the command is run again, until --new-batch."""
    csv = write_csv(tmp_path / "pay.csv", rows)
    with sandbox_server(tmp_path) as server:
        env = cli_env(tmp_path / "home", server.url, BATCHPAY_HTTP_TIMEOUT="60")
        asked = subprocess.run(_cmd(csv, tmp_path), env=env, cwd=tmp_path, capture_output=True,
                               text=True, timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
        assert asked.returncode == 2, asked.stderr
        _post(server, "/_sandbox/clock/advance", {"seconds": 3601})  # past the hour to confirm
        late = subprocess.run(_cmd(csv, tmp_path, "--confirm"), env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert late.returncode == 9, late.stderr
        assert "expired before it was confirmed" in late.stderr and "hint: " in late.stderr
        assert "Traceback" not in late.stderr
        again = subprocess.run(_cmd(csv, tmp_path, "--confirm"), env=env, cwd=tmp_path,
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert again.returncode == 9, again.stderr
        assert server.ledger() == []
        assert len(_batches(server)) == 1
        # Only on purpose: a new batch, confirmed, pays each row once.
        _finish(_cmd(csv, tmp_path, "--confirm", "--new-batch"), env, tmp_path)
        per_ref = Counter(p["reference"] for p in server.ledger())
        assert set(per_ref.values()) == {1} and len(per_ref) == ROWS
        assert len(_batches(server)) == 2


def test_rows_the_provider_refuses_are_reported_by_batchpay_row_number(
    tmp_path: Path, rows: list[dict[str, str]]
) -> None:
    """The documented trigger (.99) refused at validation: that row is rejected in the report
    under its own row number with the provider's reason; the others are paid once."""
    rows[4]["amount"] = "104.99"
    csv = write_csv(tmp_path / "pay.csv", rows)
    with sandbox_server(tmp_path) as server:
        env = cli_env(tmp_path / "home", server.url, BATCHPAY_HTTP_TIMEOUT="60")
        done = subprocess.run(_cmd(csv, tmp_path, "--confirm"), env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert "row 6: the provider refused this row: amount:" in done.stderr
        report = json.loads(next((tmp_path / "reports").glob("*/*.json")).read_text())
        by_row = {r["row"]: r for r in report["rows"]}
        assert by_row[6]["outcome"] == "rejected"
        assert by_row[6]["error_code"] == "provider_validation"
        assert ".99" in by_row[6]["error_message"]
        paid = {p["reference"] for p in server.ledger()}
        assert paid == {r["reference"] for i, r in enumerate(rows) if i != 4}


def test_a_later_per_row_run_pays_nothing_the_batch_paid(
    tmp_path: Path, rows: list[dict[str, str]]
) -> None:
    """The per-row ledger sweep recognises batch payouts: from a fresh home, `--via rows` of
    the same file finds every row already paid; a file with one new row pays only it."""
    csv = write_csv(tmp_path / "pay.csv", rows)
    with sandbox_server(tmp_path) as server:
        _finish(
            _cmd(csv, tmp_path, "--confirm"),
            cli_env(tmp_path / "home", server.url, BATCHPAY_HTTP_TIMEOUT="60"),
            tmp_path,
        )
        fresh = cli_env(tmp_path / "other-home", server.url, BATCHPAY_HTTP_TIMEOUT="60")
        again = subprocess.run(_cmd(csv, tmp_path, via="rows"), env=fresh, cwd=tmp_path,
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert again.returncode == 5, again.stderr
        more = write_csv(tmp_path / "more.csv", [*rows, payout_row(ROWS)])
        _finish(
            _cmd(more, tmp_path, via="rows"),
            cli_env(tmp_path / "home", server.url, BATCHPAY_HTTP_TIMEOUT="60"),
            tmp_path,
        )
        per_ref = Counter(p["reference"] for p in server.ledger())
        assert set(per_ref.values()) == {1} and len(per_ref) == ROWS + 1
