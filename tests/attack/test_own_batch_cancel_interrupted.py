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


class _StopsBeforeCancel(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/cancel"):
            raise _Killed
        return await self.inner.handle_async_request(request)


class _NoBatchList(httpx.AsyncBaseTransport):
    """A provider without the batch list (404): the other home cannot see open batches."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/v1/batches":
            return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})
        return await self.inner.handle_async_request(request)


def _paying_the_first_row_elsewhere(
    sandbox: Sandbox, tmp_path: Path, rows: list[dict[str, str]], paid_elsewhere: list[int]
) -> Any:
    """The batch's sleep: another home pays the first row while the batch waits to be
    confirmed (so the batch is cancelled before its confirmation)."""

    async def sleep(seconds: float) -> None:
        batches = sandbox.batches()
        if not paid_elsewhere and batches and batches[0]["status"] == "validated":
            kb = run_kwargs(sandbox, sandbox_settings(tmp_path / "b"), tmp_path / "b")
            kb["transport"] = _NoBatchList(sandbox.transport())
            rb = await pipeline.run_async(write_csv(tmp_path / "b.csv", rows[:1]), **kb)
            paid_elsewhere.append(rb.exit_code)
        await sandbox.advance(1)

    return sleep


@pytest.mark.anyio
async def test_a_run_stopped_in_its_own_cancel_pays_the_rows_nobody_paid(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    rows = [payee(i) for i in range(3)]
    f = write_csv(tmp_path / "p.csv", rows)
    paid_elsewhere: list[int] = []
    sleep = _paying_the_first_row_elsewhere(sandbox, tmp_path, rows, paid_elsewhere)

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


@pytest.mark.anyio
async def test_a_run_stopped_between_ending_its_batch_and_its_rows_pays_them(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's end and its rows' replanning were two writes: stopped between them, the
    batch was ``ended`` and its rows still in it, and every later run exited 10 with the
    rows unknown. Both are one write now."""
    from batchpay.journal import Journal

    rows = [payee(i) for i in range(3)]
    f = write_csv(tmp_path / "p.csv", rows)
    sleep = _paying_the_first_row_elsewhere(sandbox, tmp_path, rows, [])
    real, stops = Journal.end_batch_rows, [1]

    def end_batch_rows(self: Journal, *args: Any, **kwargs: Any) -> None:
        if stops:
            stops.pop()
            raise _Killed
        real(self, *args, **kwargs)

    monkeypatch.setattr(Journal, "end_batch_rows", end_batch_rows)
    kw = run_kwargs(sandbox, sandbox_settings(tmp_path / "a"), tmp_path / "a")
    with pytest.raises(_Killed):
        await pipeline.run_async(f, submission=Batches(confirm=True, sleep=sleep), **kw)
    assert [b["status"] for b in sandbox.batches()] == ["cancelled"]
    again = await pipeline.run_async(f, submission=Batches(confirm=True, sleep=sleep), **kw)
    assert again.exit_code == 0
    live = Counter(p["reference"] for p in sandbox.ledger() if p["status"] != "cancelled")
    assert live == {r["reference"]: 1 for r in rows}


@pytest.mark.anyio
async def test_a_batch_a_person_confirmed_before_the_runs_cancel_arrived_is_followed(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The run stopped as its cancel was to leave; a person then confirmed the batch in the
    provider's dashboard and it paid. Every later run ended on the cancel's
    ``batch_not_cancellable``; the batch is now followed as the run's own, its payouts
    recorded (the row paid twice by the person's confirm is said, for a person)."""
    rows = [payee(i) for i in range(3)]
    f = write_csv(tmp_path / "p.csv", rows)
    sleep = _paying_the_first_row_elsewhere(sandbox, tmp_path, rows, [])
    kw = run_kwargs(sandbox, sandbox_settings(tmp_path / "a"), tmp_path / "a")
    stopping = kw | {"transport": _StopsBeforeCancel(sandbox.transport())}
    with pytest.raises(_Killed):
        await pipeline.run_async(f, submission=Batches(confirm=True, sleep=sleep), **stopping)
    (batch,) = sandbox.batches()
    async with sandbox.client() as c:  # a person confirms it in the dashboard
        answer = await c.post(f"/v1/batches/{batch['id']}/confirm",
                              headers={"Idempotency-Key": "person-1"}, json={})  # fmt: skip
        assert answer.status_code == 200
    for _ in range(30):
        await sandbox.advance(5)
    assert [b["status"] for b in sandbox.batches()] == ["completed"]
    again = await pipeline.run_async(f, submission=Batches(confirm=True, sleep=sleep), **kw)
    ids = {p["id"] for p in sandbox.ledger() if p.get("batch_id")}
    assert {r.payout_id for r in again.report.rows[1:]} <= ids  # the batch's payouts, recorded
    assert len(ids) == 3
