"""Webhooks over real sockets: the sandbox posts signed events, the receiver settles the run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from batchpay import pipeline
from batchpay.cli import main
from batchpay.config import Mode, Secret, Settings
from batchpay.journal import Journal
from batchpay.sandbox import DEFAULT_API_KEY, Sandbox, SandboxConfig
from batchpay.testing import payout_row, write_csv
from batchpay.webhooks import create_receiver

from .helpers import (
    KNOWN_PAYOUT,
    SECRET,
    bound_socket,
    delivery,
    envelope,
    make_journal,
    payout_status,
    serving,
)

pytestmark = pytest.mark.socket


def test_sandbox_webhooks_complete_a_run_without_polling(tmp_path: Path) -> None:
    """Subscribe (CLI), run a file, advance the sandbox: final statuses arrive by webhook only."""
    journal = tmp_path / "home" / "journal.db"
    sb = Sandbox(SandboxConfig(manual_clock=True, rate_limit_per_minute=None))
    receiver_sock = bound_socket()
    hook_url = f"http://127.0.0.1:{receiver_sock.getsockname()[1]}/webhooks/anton"
    with serving(sb.app) as api_url:
        env = {
            "BATCHPAY_API_URL": api_url,
            "BATCHPAY_API_KEY": DEFAULT_API_KEY,
            "BATCHPAY_HOME": str(tmp_path / "home"),
            "BATCHPAY_JOURNAL": str(journal),
        }
        subscribed = CliRunner().invoke(main, ["webhooks", "subscribe", hook_url], env=env)
        assert subscribed.exit_code == 0, subscribed.output
        found = re.fullmatch(r"BATCHPAY_WEBHOOK_SECRET=(whsec_[0-9a-f]{64})\n", subscribed.stdout)
        assert found, subscribed.stdout
        assert "only this once" in subscribed.stderr
        assert subscribed.output.count(found.group(1)) == 1

        settings = Settings(
            mode=Mode.SANDBOX,
            api_url=api_url,
            api_key=Secret(DEFAULT_API_KEY),
            home=tmp_path / "home",
            journal_path=journal,
        )
        rows = [payout_row(i) for i in range(3)] + [payout_row(3, amount="250.91")]
        f = write_csv(tmp_path / "pay.csv", rows)
        app = create_receiver(journal, [Secret(found.group(1))])
        with serving(app, receiver_sock), httpx.Client(base_url=api_url) as admin:
            run = pipeline.run(
                f, settings=settings, options=pipeline.RunOptions(out_dir=tmp_path / "reports")
            )
            assert {r.outcome for r in run.report.rows} == {"pending"}
            # The sandbox applies every due transition and delivers its events before answering.
            assert admin.post("/_sandbox/clock/advance", json={"seconds": 30}).status_code == 200
            deliveries = admin.get("/_sandbox/webhooks/deliveries").json()["data"]

    assert {(d["status"], d["response_status"]) for d in deliveries} == {("success", 200)}
    types = Counter(d["event_type"] for d in deliveries)
    assert (types["payout.completed"], types["payout.failed"]) == (3, 1)
    rep, _ = pipeline.report_for(run.run_id, settings=settings, out_dir=tmp_path / "reports")
    outcomes = {r.reference: (r.outcome, r.error_message) for r in rep.rows}
    assert [outcomes[r["reference"]][0] for r in rows] == ["completed"] * 3 + ["failed"]
    assert outcomes["INV-2026-1003"][1]
    with Journal(journal) as j:
        calls = [(r["method"], r["path"]) for r in j.db.execute("SELECT * FROM api_calls")]
        finals = Counter(
            (r["source"], r["status"])
            for r in j.db.execute("SELECT * FROM payout_events WHERE event_id IS NOT NULL")
        )
    # No polling: the one payout-list read is the ledger sweep before anything was sent.
    assert [c for c in calls if c[0] == "GET" and c[1].startswith("/v1/payouts")] == [
        ("GET", "/v1/payouts")
    ], calls
    assert (finals["webhook", "completed"], finals["webhook", "failed"]) == (3, 1)


def test_serve_command_records_a_delivery(tmp_path: Path) -> None:
    """`batchpay webhooks serve` listens, verifies with the secret from the environment, records."""
    journal = make_journal(tmp_path / "journal.db")
    sock = bound_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHPAY_")}
    env.update(BATCHPAY_WEBHOOK_SECRET=SECRET, BATCHPAY_HOME=str(tmp_path))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batchpay.cli",
            "webhooks",
            "serve",
            "--port",
            str(port),
            "--journal",
            str(journal),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            deadline = time.monotonic() + 15
            while True:
                try:
                    assert client.get("/health").status_code == 200
                    break
                except httpx.TransportError:
                    assert proc.poll() is None and time.monotonic() < deadline, "no server"
                    time.sleep(0.05)
            body, headers = delivery(envelope(status="completed"), timestamp=int(time.time()))
            response = client.post("/webhooks/anton", content=body, headers=headers)
            forged = client.post("/webhooks/anton", content=body + b" ", headers=headers)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert response.json() == {"status": "ok"} and forged.status_code == 400
    assert payout_status(journal, KNOWN_PAYOUT)[0] == "completed"
    assert b"listening on" in err and SECRET.encode() not in err


def test_serve_without_a_secret_exits_6_with_a_hint(tmp_path: Path) -> None:
    """No BATCHPAY_WEBHOOK_SECRET: the receiver does not start, and says what to set."""
    result = CliRunner().invoke(
        main,
        ["webhooks", "serve", "--journal", str(tmp_path / "j.db")],
        env={"BATCHPAY_WEBHOOK_SECRET": "", "BATCHPAY_WEBHOOK_SECRET_FILE": ""},
    )
    assert result.exit_code == 6
    assert "no webhook signing secret" in result.stderr
    assert "hint: set BATCHPAY_WEBHOOK_SECRET" in result.stderr
