"""Another home's batch made while this run's start-up is still going, after its early look.

Branch runfast3 starts the ledger look (another home's open batches, then the sweep) beside
the run's start-up (balance check, the run's journal inserts) instead of just before the
first payout. A batch uploaded by another home after the look and paid before the start-up
ends was seen by nothing: the look found no batch and its sweep no payouts, the watch asked
before each payout finds no *open* batch (it is completed), and the check after sending asks
for batches since one ``OVERLAP`` before the look *ended* — a start-up longer than that
(a large file's inserts, a balance check retried after 429s) puts the batch before it.
Each row was paid twice (a batch's payouts carry no idempotency key to refuse ours) and
the run exited 0.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from batchpay import pipeline
from batchpay.batches import Batches
from batchpay.errors import ConfirmationRequired
from batchpay.sandbox import Sandbox
from batchpay.testing import sandbox_settings

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio


class _SlowStartUp(httpx.AsyncBaseTransport):
    """The sandbox's transport, holding the balance check until ``go`` is set."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.go = asyncio.Event()
        self.held = asyncio.Event()
        self.listed = 0  # GET /v1/payouts answered (the sweep's pages)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.startswith("/v1/balances"):
            self.held.set()
            await self.go.wait()
        response = await self.inner.handle_async_request(request)
        if request.method == "GET" and request.url.path == "/v1/payouts":
            self.listed += 1
        return response


async def _b_held_in_its_start_up(
    sandbox: Sandbox, tmp_path: Path, f: Path
) -> tuple[_SlowStartUp, asyncio.Task[Any]]:
    """Home B's run of ``f``, started and held at its balance check once its early look has
    read the sweep's pages (no open batch, no payout)."""
    slow = _SlowStartUp(sandbox.transport())
    kb = run_kwargs(sandbox, sandbox_settings(tmp_path / "b"), tmp_path / "b")
    kb["transport"] = slow
    run_b = asyncio.create_task(pipeline.run_async(f, **kb))
    await asyncio.wait_for(slow.held.wait(), 10)
    for _ in range(200):  # B's early look: no open batch, the sweep's pages read
        if slow.listed:
            break
        await asyncio.sleep(0.01)
    return slow, run_b


def _live(sb: Sandbox) -> Counter[str]:
    return Counter(p["reference"] for p in sb.ledger() if p["status"] != "cancelled")


async def test_a_batch_paid_during_a_slow_start_up_is_not_paid_again(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    rows = [payee(i) for i in range(4)]
    f = write_csv(tmp_path / "p.csv", rows)
    slow, run_b = await _b_held_in_its_start_up(sandbox, tmp_path, f)
    for _ in range(50):
        await asyncio.sleep(0)
    assert not run_b.done()

    async def advance(seconds: float) -> None:
        await sandbox.advance(1)

    ra = await pipeline.run_async(
        f, submission=Batches(confirm=True, sleep=advance),
        **run_kwargs(sandbox, sandbox_settings(tmp_path / "a"), tmp_path / "a"),
    )  # fmt: skip
    assert ra.exit_code == 0
    for _ in range(10):  # the batch's payouts move on
        await sandbox.advance(10)
    assert _live(sandbox) == {r["reference"]: 1 for r in rows}
    slow.go.set()  # B's start-up ends, a little over a minute after the batch was made
    rb = await run_b
    assert _live(sandbox) == {r["reference"]: 1 for r in rows}
    assert {r.outcome for r in rb.report.rows} == {"already_paid"}


async def test_a_batch_left_open_during_a_slow_start_up_holds_every_row(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The same slow start-up, with another home's batch uploaded and left open (awaiting
    its confirmation): the batches made since the look began find it open, that answer is
    also the watch's before the first payout, and no row is sent."""
    rows = [payee(i) for i in range(4)]
    f = write_csv(tmp_path / "p.csv", rows)
    slow, run_b = await _b_held_in_its_start_up(sandbox, tmp_path, f)

    async def advance(seconds: float) -> None:
        await sandbox.advance(1)

    with pytest.raises(ConfirmationRequired):  # validated, left for a person to confirm
        await pipeline.run_async(
            f, submission=Batches(confirm=False, sleep=advance),
            **run_kwargs(sandbox, sandbox_settings(tmp_path / "a"), tmp_path / "a"),
        )  # fmt: skip
    assert sandbox.ledger() == []  # A's batch is open, awaiting its confirmation
    await asyncio.sleep(0.3)  # longer than the watch's interval since B's look
    slow.go.set()
    rb = await run_b
    assert sandbox.ledger() == []
    assert {r.error_code for r in rb.report.rows} == {"in_flight_elsewhere"}
