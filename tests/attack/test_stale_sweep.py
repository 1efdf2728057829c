"""A per-row run that goes on after its sweep of the provider's ledger has gone stale.

A run sweeps the ledger once before its first payout; rows another home pays after that
are refused by the provider's idempotency keys (both homes send ``bp1-<row>-1``) — but only
while the provider remembers the other home's key (24 hours), and never for a batch's
payouts, which carry none. Found by attacking the command over a socket:

- a run that lasted past a day after another home paid the same file (a machine asleep, a
  stopped process, a slow rate limit) sent the rows it had not reached yet: paid twice;
- a run held its rows while another home's batch of the file was open, then, the batch
  paid, sent them: paid twice.

The run now reads the ledger again before it sends a row on a sweep begun more than
``LEDGER_MAX_AGE`` ago, or after another home's batch ended since its sweep began — both
as the row is checked and again just before its first request leaves.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from batchpay import ledger, pipeline
from batchpay.batches import Batches
from batchpay.journal.base import JournalBase
from batchpay.sandbox import Sandbox
from batchpay.testing import sandbox_settings

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio
DAY = 86400.0


class _HeldAnswer(httpx.AsyncBaseTransport):
    """The sandbox's transport; the answer to the ``nth`` ``POST /v1/payouts`` (its payout
    made at the provider) waits until ``go`` is set."""

    def __init__(self, inner: httpx.AsyncBaseTransport, nth: int, *, request: bool = False) -> None:
        self.inner = inner
        self.nth = nth
        self.request = request  # hold the request itself instead (it reaches the provider late)
        self.posts = 0
        self.go = asyncio.Event()
        self.holding = asyncio.Event()
        self.lists_after_go = 0  # pages of GET /v1/payouts asked once released

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        post = request.method == "POST" and request.url.path == "/v1/payouts"
        if self.go.is_set() and request.method == "GET" and request.url.path == "/v1/payouts":
            self.lists_after_go += 1
        if post and self.request:
            await self._hold()
        answer = await self.inner.handle_async_request(request)
        if post and not self.request:
            await self._hold()
        return answer

    async def _hold(self) -> None:
        self.posts += 1
        if self.posts == self.nth:
            self.holding.set()
            await self.go.wait()


def _stop_at_third_commit(
    monkeypatch: pytest.MonkeyPatch, journal_path: Any
) -> tuple[asyncio.Event, asyncio.Event]:
    """The process at ``journal_path`` stands still (a stopped process, a machine asleep)
    once its third commit has returned — an intent committed, its request next — until
    ``go`` is set; ``stopped`` is set when it does."""
    stopped, go = asyncio.Event(), asyncio.Event()
    durable = JournalBase.durable
    calls = 0

    async def durable_then_stop(self: JournalBase) -> None:
        nonlocal calls
        await durable(self)
        if Path(self.path) == Path(journal_path):
            calls += 1
            if calls == 3:
                stopped.set()
                await go.wait()

    monkeypatch.setattr(JournalBase, "durable", durable_then_stop)
    return stopped, go


def _made(sb: Sandbox) -> Counter[str]:
    """Payouts the provider made per reference, cancelled ones too: made twice is paid twice
    until someone recalls it."""
    return Counter(p["reference"] for p in sb.ledger())


async def _advance(sb: Sandbox) -> Any:
    async def advance(seconds: float) -> None:
        await sb.advance(1)

    return advance


async def test_a_run_that_goes_on_past_a_day_after_another_home_paid_the_file_pays_once(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    rows = [payee(i) for i in range(6)]
    f = write_csv(tmp_path / "p.csv", rows)
    held = _HeldAnswer(sandbox.transport(), nth=2)
    ka = run_kwargs(sandbox, sandbox_settings(tmp_path / "a"), tmp_path / "a", concurrency=1)
    ka["transport"] = held
    run_a = asyncio.create_task(pipeline.run_async(f, **ka))
    await asyncio.wait_for(held.holding.wait(), 10)  # A has made two payouts
    rb = await pipeline.run_async(f, **run_kwargs(sandbox, sandbox_settings(tmp_path / "b"),
                                                  tmp_path / "b"))  # fmt: skip
    assert rb.exit_code == 0
    await sandbox.advance(DAY + 3600)  # the provider forgets B's keys; A's clock moved too
    held.go.set()
    ra = await run_a
    assert _made(sandbox) == {r["reference"]: 1 for r in rows}
    assert {r.outcome for r in ra.report.rows[2:]} == {"already_paid"}


async def test_a_run_stopped_between_its_check_and_its_send_pays_once(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run stands still (a stopped process, a machine asleep) after its third row was
    checked and its intent committed, before the request left; meanwhile another home pays
    the file and a day passes. The request does not leave: the provider's payout of the
    key is recorded instead."""
    rows = [payee(i) for i in range(5)]
    f = write_csv(tmp_path / "p.csv", rows)
    home_a = sandbox_settings(tmp_path / "a")
    stopped, go = _stop_at_third_commit(monkeypatch, home_a.journal_path)
    ka = run_kwargs(sandbox, home_a, tmp_path / "a", concurrency=1)
    run_a = asyncio.create_task(pipeline.run_async(f, **ka))
    await asyncio.wait_for(stopped.wait(), 10)
    await pipeline.run_async(f, **run_kwargs(sandbox, sandbox_settings(tmp_path / "b"),
                                             tmp_path / "b"))  # fmt: skip
    await sandbox.advance(DAY + 3600)
    go.set()
    ra = await run_a
    assert _made(sandbox) == {r["reference"]: 1 for r in rows}
    assert ra.exit_code == 0
    assert [r.payout_id for r in ra.report.rows] == [
        p["id"] for p in sorted(sandbox.ledger(), key=lambda p: p["reference"])
    ]


async def test_rows_held_for_another_homes_batch_are_not_sent_once_it_has_paid(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Home A sends row by row; home B pays the rest of the file as a batch while A waits
    for an answer; A's next rows find B's payouts instead of being sent again."""
    rows = [payee(i) for i in range(12)]
    f = write_csv(tmp_path / "p.csv", rows)
    theirs = write_csv(tmp_path / "b.csv", rows[:8])  # B's file: A's last rows are A's alone
    held = _HeldAnswer(sandbox.transport(), nth=2)
    ka = run_kwargs(sandbox, sandbox_settings(tmp_path / "a"), tmp_path / "a", concurrency=1)
    ka["transport"] = held
    run_a = asyncio.create_task(pipeline.run_async(f, **ka))
    await asyncio.wait_for(held.holding.wait(), 10)
    rb = await pipeline.run_async(
        theirs,
        submission=Batches(confirm=True, sleep=await _advance(sandbox)),
        **run_kwargs(sandbox, sandbox_settings(tmp_path / "b"), tmp_path / "b"),
    )
    assert rb.exit_code == 0
    assert any(p.get("batch_id") for p in sandbox.ledger())
    await asyncio.sleep(0.3)  # A's last look for open batches is older than its interval
    held.go.set()
    ra = await run_a
    assert _made(sandbox) == {r["reference"]: 1 for r in rows}
    assert {r.outcome for r in ra.report.rows[2:8]} == {"already_paid"}
    assert {r.outcome for r in ra.report.rows[8:]} == {"pending"}
    # One sweep again for the batch that ended, not one for each row sent after it
    assert held.lists_after_go <= 3


async def test_a_day_passing_at_the_provider_unseen_by_the_run_leaves_no_second_payout(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider's clock moves a day ahead while the run's own does not (a clock that
    stood still, or a provider that jumped): the run cannot know before its next answer.
    Its second payout, held on the way, reaches the provider after the jump and is made
    anew — the provider forgot the other home's key — and the answer's clock shows the day
    passed: the payout is looked up, the second one cancelled and the row recorded as the
    other home's."""
    # No request between the held answer and the next payout (the open batches asked
    # within the watch's interval): nothing tells the run of the provider's new time.
    defaults = {**(ledger.ForeignBatchWatch.__init__.__kwdefaults__ or {}), "interval": 600.0}
    monkeypatch.setattr(ledger.ForeignBatchWatch.__init__, "__kwdefaults__", defaults)
    rows = [payee(i) for i in range(5)]
    f = write_csv(tmp_path / "p.csv", rows)
    held = _HeldAnswer(sandbox.transport(), nth=2, request=True)
    ka = run_kwargs(sandbox, sandbox_settings(tmp_path / "a"), tmp_path / "a", concurrency=1)
    start, t0 = sandbox.clock.now(), time.monotonic()
    ka["clock"] = lambda: start + timedelta(seconds=time.monotonic() - t0)  # not the sandbox's
    ka["transport"] = held
    run_a = asyncio.create_task(pipeline.run_async(f, **ka))
    await asyncio.wait_for(held.holding.wait(), 10)
    await pipeline.run_async(f, **run_kwargs(sandbox, sandbox_settings(tmp_path / "b"),
                                             tmp_path / "b"))  # fmt: skip
    await sandbox.advance(DAY + 3600)
    held.go.set()
    ra = await run_a
    live = Counter(p["reference"] for p in sandbox.ledger() if p["status"] != "cancelled")
    assert live == {r["reference"]: 1 for r in rows}
    kept = {p["reference"]: p["id"] for p in sandbox.ledger() if p["status"] != "cancelled"}
    assert {r.reference: r.payout_id for r in ra.report.rows} == kept


async def test_a_payout_waiting_for_another_homes_stuck_batch_is_withheld_not_waited_forever(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run A stood still between a row's check and its send; meanwhile home B's batch of
    the rest of the file was confirmed, and stays so (a provider slow to process
    it). A waited for that batch with no end and said nothing. It now waits for at most
    ``FOREIGN_BATCH_WAIT``, withholds the request (the intent ``unknown``, exit 10), and its
    next run, once B's batch has paid, finds the rows paid: each paid once."""
    rows = [payee(i) for i in range(5)]
    f = write_csv(tmp_path / "p.csv", rows)
    theirs = write_csv(tmp_path / "b.csv", rows[2:])
    home_a = sandbox_settings(tmp_path / "a")
    stopped, go = _stop_at_third_commit(monkeypatch, home_a.journal_path)
    run_a = asyncio.create_task(
        pipeline.run_async(f, **run_kwargs(sandbox, home_a, tmp_path / "a", concurrency=1))
    )
    await asyncio.wait_for(stopped.wait(), 10)
    confirmed, release = asyncio.Event(), asyncio.Event()

    async def sleep(seconds: float) -> None:
        if any(x["status"] == "confirmed" for x in sandbox.batches()) and not release.is_set():
            confirmed.set()
            await release.wait()
        await sandbox.advance(1)

    kb = run_kwargs(sandbox, sandbox_settings(tmp_path / "b"), tmp_path / "b")
    run_b = asyncio.create_task(
        pipeline.run_async(theirs, submission=Batches(confirm=True, sleep=sleep), **kb)
    )
    await asyncio.wait_for(confirmed.wait(), 10)
    monkeypatch.setattr(ledger, "LEDGER_MAX_AGE", timedelta(0))  # A's sweep is stale now
    monkeypatch.setattr(ledger, "FOREIGN_BATCH_WAIT", 0.2)
    go.set()
    ra = await asyncio.wait_for(run_a, 20)
    assert ra.exit_code == 10
    # The stopped row's intent is left unknown, the rows after it held: none sent
    assert {(r.outcome, r.error_code) for r in ra.report.rows} == {
        ("unknown", "in_flight_elsewhere")
    }
    assert sandbox.ledger() == []
    monkeypatch.undo()
    release.set()
    assert (await run_b).exit_code == 0
    again = await pipeline.run_async(f, **run_kwargs(sandbox, home_a, tmp_path / "a"))
    assert _made(sandbox) == {r["reference"]: 1 for r in rows}
    assert again.exit_code == 0, [(r.outcome, r.error_code) for r in again.report.rows]
