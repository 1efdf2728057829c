"""A batch run stopped while its own cancel of its batch is on the way.

A ``--via batches`` run cancels its batch, never confirmed, when the provider's balance
check refuses it or another home paid one of its rows meanwhile; the rows are planned again
for a new batch. Killed after the cancel took effect and before its answer was recorded, the
run's journal still said ``uploaded``; the next run found the batch ``cancelled``, took it for
a batch a person cancelled, and refused every row for good ("nothing was paid", the run
closed, the file refused from then on): rows nobody paid were never paid. The cancel is now
recorded (``cancelling``) before it leaves, and a run that finds it so sends it again with
its key and plans the rows again.
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
from pathlib import Path
from typing import Any

import httpx
import pytest

from batchpay import pipeline
from batchpay.batches import Batches
from batchpay.sandbox import Sandbox
from batchpay.testing import payout_row, sandbox_settings
from tests.e2e.server import Server, cli_env, sandbox_server

from .conftest import payee, run_kwargs, write_csv


class _Killed(BaseException):
    """The process stops here, as SIGKILL would: nothing more reaches the journal."""


class _StopsAfterCancel(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path.endswith("/cancel"):
            await response.aread()
            raise _Killed
        return response


class _NoBatchList(httpx.AsyncBaseTransport):
    """A provider without the batch list (404): the other home cannot see open batches."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/v1/batches":
            return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})
        return await self.inner.handle_async_request(request)


@pytest.mark.anyio
async def test_a_run_stopped_in_its_own_cancel_pays_the_rows_nobody_paid(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    rows = [payee(i) for i in range(3)]
    f = write_csv(tmp_path / "p.csv", rows)
    paid_elsewhere: list[int] = []

    async def sleep(seconds: float) -> None:
        batches = sandbox.batches()
        if not paid_elsewhere and batches and batches[0]["status"] == "validated":
            # another home pays the first row while the batch waits to be confirmed
            kb = run_kwargs(sandbox, sandbox_settings(tmp_path / "b"), tmp_path / "b")
            kb["transport"] = _NoBatchList(sandbox.transport())
            rb = await pipeline.run_async(write_csv(tmp_path / "b.csv", rows[:1]), **kb)
            paid_elsewhere.append(rb.exit_code)
        await sandbox.advance(1)

    kw = run_kwargs(sandbox, sandbox_settings(tmp_path / "a"), tmp_path / "a")
    stopping = kw | {"transport": _StopsAfterCancel(sandbox.transport())}
    with pytest.raises(_Killed):
        await pipeline.run_async(f, submission=Batches(confirm=True, sleep=sleep), **stopping)
    assert paid_elsewhere == [0]
    assert [b["status"] for b in sandbox.batches()] == ["cancelled"]
    again = await pipeline.run_async(f, submission=Batches(confirm=True, sleep=sleep), **kw)
    assert again.exit_code == 0
    assert [r.outcome for r in again.report.rows] == ["already_paid", "pending", "pending"]
    live = Counter(p["reference"] for p in sandbox.ledger() if p["status"] != "cancelled")
    assert live == {r["reference"]: 1 for r in rows}


def _post(server: Server, path: str, doc: Any) -> None:
    headers = {"Content-Type": "application/json"}
    req = urllib.request.Request(server.url + path, data=json.dumps(doc).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def _balances(server: Server, amount: str) -> None:
    for currency in ("EUR", "GBP", "USD"):
        _post(server, "/_sandbox/balances", {"currency": currency, "available": amount})


@pytest.mark.socket
@pytest.mark.slow
def test_a_run_killed_in_its_own_cancel_pays_the_file_once_funded(tmp_path: Path) -> None:
    """Over a socket, with SIGKILL: the provider's balance check refuses the batch, the run
    cancels it and is killed before the answer (it comes 30 s late); funded, the same
    command pays every row once."""
    rows = [payout_row(i) for i in range(4)]
    csv = write_csv(tmp_path / "pay.csv", rows)
    cmd = [sys.executable, "-m", "batchpay.cli", "run", str(csv), "--out", str(tmp_path / "r"),
           "--skip-balance-check", "--via", "batches", "--confirm"]  # fmt: skip
    with sandbox_server(tmp_path, "--timeout-seconds", "30") as server:
        env = cli_env(tmp_path / "home", server.url, BATCHPAY_HTTP_TIMEOUT="60")
        _balances(server, "1.00")
        _post(server, "/_sandbox/faults", {"plan": {"POST /v1/batches/{id}/cancel": ["timeout"]}})
        run = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 60
        while [b["status"] for b in server.admin("/_sandbox/batches")["data"]] != ["cancelled"]:
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=30)
        with sqlite3.connect(tmp_path / "home" / "journal.db") as db:
            assert db.execute("SELECT state FROM batches").fetchall() == [("cancelling",)]
        _balances(server, "1000000.00")
        again = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True,
                               timeout=120)  # fmt: skip
        assert again.returncode == 0, again.stderr[-2000:]
        live = Counter(p["reference"] for p in server.ledger() if p["status"] != "cancelled")
        assert live == {r["reference"]: 1 for r in rows}
