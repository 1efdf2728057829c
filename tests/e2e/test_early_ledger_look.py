"""The ledger look starts beside a new run's start-up, and still ends before anything is sent.

A new per-row run asks for other homes' open batches and sweeps the provider's ledger while
it checks the balance and records the run (``ledger.LedgerLook``). Nothing leaves before the
sweep has ended and its findings are on the rows; a sweep that fails stops the run before
any payout, as it did when the sweep came after the start-up.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from pathlib import Path

import httpx
import pytest

from batchpay import pipeline
from batchpay.config import Settings
from batchpay.errors import ApiError
from batchpay.journal import Journal
from batchpay.sandbox import Sandbox

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio


class Timeline(httpx.AsyncBaseTransport):
    """The sandbox transport, noting when each request was asked and answered."""

    def __init__(self, sb: Sandbox) -> None:
        self.inner = sb.transport()
        self.events: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        what = f"{request.method} {request.url.path}"
        self.events.append(("asked", what))
        await asyncio.sleep(0.005)  # a round trip: the other side of the run goes on
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.events.append(("answered", what))

    def first(self, event: str, what: str) -> int:
        return self.events.index((event, what))

    async def aclose(self) -> None:
        await self.inner.aclose()


def _per_reference(sb: Sandbox) -> Counter[str]:
    return Counter(p["reference"] for p in sb.ledger())


async def test_the_ledger_look_leaves_beside_the_balance_check_and_ends_before_any_payout(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """The batch look-up and the sweep's first page are asked while the balance check is
    still out; every sweep page is answered before the first payout is asked."""
    rows = [payee(i) for i in range(5)]
    f = write_csv(tmp_path / "p.csv", rows)
    timeline = Timeline(sandbox)
    kwargs = {**run_kwargs(sandbox, settings, tmp_path), "transport": timeline}
    result = await pipeline.run_async(f, **kwargs)
    assert _per_reference(sandbox) == Counter(r["reference"] for r in rows)
    assert {r.outcome for r in result.report.rows} == {"pending"}
    balance_answered = timeline.first("answered", "GET /v1/balances")
    assert timeline.first("asked", "GET /v1/batches") < balance_answered
    first_post = timeline.first("asked", "POST /v1/payouts")
    pages = [i for i, e in enumerate(timeline.events) if e == ("answered", "GET /v1/payouts")]
    assert pages and max(pages) < first_post
    # The look-up is answered before the sweep's first page is asked, as before.
    assert timeline.first("answered", "GET /v1/batches") < timeline.first(
        "asked", "GET /v1/payouts"
    )
    with Journal(settings.journal_path) as j:  # the look's calls are the run's
        paths = {(c["method"], c["path"]) for c in j.calls(result.run_id)}
    assert {("GET", "/v1/batches"), ("GET", "/v1/payouts")} <= paths


async def test_a_sweep_failing_during_the_start_up_sends_nothing_and_the_rerun_pays_once(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """The ledger cannot be read while the run is being recorded: the run stops before any
    payout, its rows stay planned, and the same command later pays each row once."""
    rows = [payee(i) for i in range(4)]
    f = write_csv(tmp_path / "p.csv", rows)
    sandbox.faults.plan("GET /v1/payouts", ["503"] * 40)
    with pytest.raises(ApiError):
        await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert sandbox.ledger() == []
    with Journal(settings.journal_path) as j:
        run_id = j.latest_run_id()
        assert run_id is not None
        assert {r.state for r in j.rows(run_id)} == {"planned"}
        assert not any(c["method"] == "POST" and c["path"] == "/v1/payouts"
                       for c in j.calls(run_id))  # fmt: skip
    sandbox.faults.clear()
    again = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert again.resumed
    assert _per_reference(sandbox) == Counter(r["reference"] for r in rows)


async def test_a_refused_balance_check_stops_the_look_without_a_stray_error(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """The balance check refuses the run while the look is under way: the refusal is what
    is raised (the look is stopped, its pages unread), and nothing is sent."""
    from batchpay.errors import PreflightError

    sandbox.set_balance("GBP", "0.00")
    sandbox.set_balance("EUR", "0.00")
    sandbox.set_balance("USD", "0.00")
    f = write_csv(tmp_path / "p.csv", [payee(i) for i in range(3)])
    with pytest.raises(PreflightError):
        await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert sandbox.ledger() == []


async def test_a_row_another_home_paid_is_found_by_the_early_sweep_and_not_sent(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """Another journal paid row 0 of the file: the sweep read beside the start-up marks
    the row already paid from the provider's ledger before any payout leaves."""
    rows = [payee(i) for i in range(3)]
    other = dataclasses.replace(settings, journal_path=tmp_path / "other" / "journal.db")
    (tmp_path / "other").mkdir()
    elsewhere = write_csv(tmp_path / "one.csv", rows[:1])
    await pipeline.run_async(elsewhere, **run_kwargs(sandbox, other, tmp_path / "o"))
    assert len(sandbox.ledger()) == 1
    f = write_csv(tmp_path / "p.csv", rows)
    result = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert _per_reference(sandbox) == Counter(r["reference"] for r in rows)
    by_ref = {r.reference: r for r in result.report.rows}
    assert by_ref[rows[0]["reference"]].outcome == "already_paid"
    assert by_ref[rows[0]["reference"]].payout_id == sandbox.ledger()[0]["id"]


class SlowBalance(Timeline):
    """The balance check answers late: the start-up outlasts the look by ``delay`` seconds."""

    def __init__(self, sb: Sandbox, delay: float) -> None:
        super().__init__(sb)
        self.delay = delay

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/balances":
            await asyncio.sleep(self.delay)
        return await super().handle_async_request(request)


async def test_the_batches_asked_after_a_long_start_up_answer_the_first_payouts_watch(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A start-up longer than the watch's interval: the batches made since the look began
    are asked before the first payout, and that answer is the watch's too — the first
    payout asks for no third list (two before it: the look's and that one)."""
    from batchpay import ledger

    rows = [payee(i) for i in range(3)]
    f = write_csv(tmp_path / "p.csv", rows)
    timeline = SlowBalance(sandbox, delay=ledger.FOREIGN_BATCH_INTERVAL + 0.2)
    kwargs = {**run_kwargs(sandbox, settings, tmp_path), "transport": timeline}
    await pipeline.run_async(f, **kwargs)
    assert _per_reference(sandbox) == Counter(r["reference"] for r in rows)
    first_post = timeline.first("asked", "POST /v1/payouts")
    before = timeline.events[:first_post]
    assert before.count(("asked", "GET /v1/batches")) == 2


class SlowPages(Timeline):
    """The sweep's pages answer late: the run's start-up is over, waiting on the look."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/v1/payouts":
            await asyncio.sleep(0.2)
        return await super().handle_async_request(request)


async def test_the_batches_made_meanwhile_are_asked_before_the_sweeps_finds_are_stored(
    sandbox: Sandbox, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run waiting on the look asks for the batches made since it began as soon as the
    sweep's last page is answered, not after the sweep's finds are written to the journal:
    the answer travels while they are. Still after every page, and before any payout."""
    rows = [payee(i) for i in range(3)]
    f = write_csv(tmp_path / "p.csv", rows)
    timeline = SlowPages(sandbox)
    stored = Journal.record_ledger_sweep

    def noted(self: Journal, *args: object, **kwargs: object) -> None:
        timeline.events.append(("stored", "sweep"))
        stored(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Journal, "record_ledger_sweep", noted)
    kwargs = {**run_kwargs(sandbox, settings, tmp_path), "transport": timeline}
    await pipeline.run_async(f, **kwargs)
    assert _per_reference(sandbox) == Counter(r["reference"] for r in rows)
    asks = [i for i, e in enumerate(timeline.events) if e == ("asked", "GET /v1/batches")]
    pages = [i for i, e in enumerate(timeline.events) if e == ("answered", "GET /v1/payouts")]
    first_store = timeline.events.index(("stored", "sweep"))
    first_post = timeline.first("asked", "POST /v1/payouts")
    made_since = asks[1]  # the look's own is the first
    assert max(p for p in pages if p < first_post) < made_since < first_store < first_post


async def test_a_file_that_cannot_be_read_is_said_first_when_the_journal_cannot_open(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """The file is checked in a thread while the journal opens: an unreadable file and a
    damaged journal together still say the file's problem (as when the file was read
    before the journal was opened), and nothing is asked of the provider."""
    from batchpay.errors import InputError

    settings.journal_path.parent.mkdir(parents=True, exist_ok=True)
    settings.journal_path.write_bytes(b"this is not a journal" * 100)
    f = tmp_path / "p.csv"
    f.write_bytes(b"reference,amount\nINV-1,\xff\xfe12.00\n")
    timeline = Timeline(sandbox)
    kwargs = {**run_kwargs(sandbox, settings, tmp_path), "transport": timeline}
    with pytest.raises(InputError):
        await pipeline.run_async(f, **kwargs)
    assert timeline.events == []


async def test_a_run_cancelled_while_its_file_is_checked_stops_cleanly(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """The run is cancelled while its file is checked in the check's thread: the thread
    still ends without an error of its own (the future it fills was cancelled with its
    waiter), and nothing is sent."""
    f = write_csv(tmp_path / "p.csv", [payee(i) for i in range(3000)])
    task = asyncio.create_task(pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sandbox.ledger() == []
