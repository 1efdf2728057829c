"""Two homes paying one file at the same time, one row by row and one as a provider batch.

Row-by-row runs in two homes are kept apart by the provider's idempotency keys (both send
``bp1-<row>-1``); a batch's payouts are made by the provider from the file, under no
idempotency key, so nothing stops the other home's per-row requests. Here home B (rows)
sweeps the ledger and sends its requests, which reach the provider only after home A's
batch was uploaded, confirmed and turned into payouts: every row was paid twice and both
runs exited 0. The fix: before a run ends, the ledger is read again and a payout of this
run that is the second one the provider holds for its row is cancelled (and said).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from batchpay import pipeline
from batchpay.batches import Batches
from batchpay.config import Settings
from batchpay.errors import ConfirmationRequired
from batchpay.journal import Journal
from batchpay.sandbox import Sandbox
from batchpay.testing import sandbox_settings

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio


class _HeldCreates(httpx.AsyncBaseTransport):
    """The sandbox's transport, holding every ``POST /v1/payouts`` until ``go`` is set."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.go = asyncio.Event()
        self.sending = asyncio.Event()  # a payout request has arrived

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/v1/payouts":
            self.sending.set()
            await self.go.wait()
        elif self.go.is_set() and request.url.path == "/v1/batches":
            await asyncio.sleep(0.05)  # a round trip: the report is built meanwhile
        return await self.inner.handle_async_request(request)


def _home_b_sending_held(
    sandbox: Sandbox, tmp_path: Path, f: Path, home_b: Settings | None = None
) -> tuple[_HeldCreates, asyncio.Task[Any]]:
    """Home B's per-row run of ``f``, started; its payout requests wait for ``held.go``."""
    held = _HeldCreates(sandbox.transport())
    kb = run_kwargs(sandbox, home_b or sandbox_settings(tmp_path / "b"), tmp_path / "b")
    kb["transport"] = held
    return held, asyncio.create_task(pipeline.run_async(f, **kb))


def _batches(sb: Sandbox) -> Batches:
    async def advance(seconds: float) -> None:
        await sb.advance(1)

    return Batches(confirm=True, sleep=advance)


def _live(sb: Sandbox) -> Counter[str]:
    return Counter(p["reference"] for p in sb.ledger() if p["status"] not in ("cancelled",))


async def test_rows_sent_while_another_home_pays_them_as_a_batch_are_not_paid_twice(
    sandbox: Sandbox, tmp_path: Path, home_b: Settings
) -> None:
    rows = [payee(i) for i in range(4)]
    f = write_csv(tmp_path / "p.csv", rows)
    a = sandbox_settings(tmp_path / "a")
    held, run_b = _home_b_sending_held(sandbox, tmp_path, f, home_b)
    await asyncio.wait_for(held.sending.wait(), 30)  # B has swept the (empty) ledger, sends
    ra = await pipeline.run_async(
        f, submission=_batches(sandbox), **run_kwargs(sandbox, a, tmp_path / "a")
    )
    assert ra.exit_code == 0
    assert _live(sandbox) == {r["reference"]: 1 for r in rows}  # A's batch paid each once
    await sandbox.advance(1)  # B's requests arrive after A's payouts were made
    held.go.set()
    rb = await run_b
    assert _live(sandbox) == {r["reference"]: 1 for r in rows}
    assert rb.exit_code != 0  # B says what happened to its rows
    # ... as its journal now holds it: the report is of the run after its second payouts
    # were cancelled, not the one built while the check after sending was out.
    from batchpay.report.from_journal import build_report

    with Journal(home_b.journal_path) as jb:
        again = build_report(jb, rb.run_id, home_b)
    assert [(r.outcome, r.payout_status) for r in rb.report.rows] == [
        (r.outcome, r.payout_status) for r in again.rows
    ]
    assert {r.payout_status for r in rb.report.rows} == {"cancelled"}
    # The files too: the report written while the check was out was written again.
    assert rb.paths is not None
    written = json.loads(rb.paths.json.read_text(encoding="utf-8"))
    assert {r["payout_status"] for r in written["rows"]} == {"cancelled"}
    assert "cancelled" in rb.paths.csv.read_text(encoding="utf-8")


async def test_rows_are_held_while_another_homes_batch_is_open(
    sandbox: Sandbox, tmp_path: Path, home_b: Settings
) -> None:
    """Home A's batch is validated, waiting for its confirmation, when home B runs the file
    row by row: B sends nothing (the rows are held, visibly); once A's batch is paid, B's
    next run finds every row already paid."""
    rows = [payee(i) for i in range(3)]
    f = write_csv(tmp_path / "p.csv", rows)
    a = sandbox_settings(tmp_path / "a")
    b = home_b

    async def advance(seconds: float) -> None:
        await sandbox.advance(1)

    with pytest.raises(ConfirmationRequired):
        await pipeline.run_async(
            f, submission=Batches(confirm=False, sleep=advance),
            **run_kwargs(sandbox, a, tmp_path / "a"),
        )  # fmt: skip
    rb = await pipeline.run_async(f, **run_kwargs(sandbox, b, tmp_path / "b"))
    assert sandbox.ledger() == []
    assert {r.error_code for r in rb.report.rows} == {"in_flight_elsewhere"}
    assert rb.exit_code != 0
    ra = await pipeline.run_async(
        f, submission=_batches(sandbox), **run_kwargs(sandbox, a, tmp_path / "a")
    )
    assert ra.exit_code == 0
    rb2 = await pipeline.run_async(f, **run_kwargs(sandbox, b, tmp_path / "b"))
    assert _live(sandbox) == {r["reference"]: 1 for r in rows}
    assert {r.outcome for r in rb2.report.rows} == {"already_paid"}


async def test_a_batch_is_not_confirmed_while_payouts_sent_without_seeing_it_can_arrive(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Home B looked for open batches just before home A uploaded its batch, so B sends;
    B's payouts reach the provider only after A's batch was validated. A waits
    ``FOREIGN_BATCH_GUARD`` of the provider's time after creating the batch before the
    last sweep ahead of its confirmation, so that sweep lists B's payouts: A's batch is
    cancelled unconfirmed and each row is paid once, by B, with nothing to cancel."""
    rows = [payee(i) for i in range(4)]
    f = write_csv(tmp_path / "p.csv", rows)
    a = sandbox_settings(tmp_path / "a")
    held, run_b = _home_b_sending_held(sandbox, tmp_path, f)
    await asyncio.wait_for(held.sending.wait(), 10)  # B swept, saw no open batch, sends

    async def sleep(seconds: float) -> None:
        # B's requests arrive once A's batch could be confirmed (or, without the wait,
        # after it was)
        past = {"validated", "confirmed", "processing", "completed"}
        if not held.go.is_set() and any(x["status"] in past for x in sandbox.batches()):
            held.go.set()
            for _ in range(300):  # B's requests through its journal and client
                if run_b.done():
                    break
                await asyncio.sleep(0.01)
        await sandbox.advance(1)

    ra = await pipeline.run_async(
        f, submission=Batches(confirm=True, sleep=sleep), **run_kwargs(sandbox, a, tmp_path / "a")
    )
    rb = await run_b
    assert _live(sandbox) == {r["reference"]: 1 for r in rows}
    assert [p for p in sandbox.ledger() if p["status"] == "cancelled"] == []
    assert all(p.get("batch_id") is None for p in sandbox.ledger())  # B's, none of A's batch
    assert [x["status"] for x in sandbox.batches()] == ["cancelled"]
    assert rb.exit_code == 0
    assert {r.outcome for r in ra.report.rows} == {"already_paid"}


@pytest.mark.parametrize(("hours", "held"), [(0.5, True), (2.0, False), (48.0, False)])
async def test_another_homes_batch_left_unconfirmed_holds_rows_only_until_it_expires(
    sandbox: Sandbox, tmp_path: Path, home_b: Settings, hours: float, held: bool
) -> None:
    """A's batch was validated and never confirmed. The provider's list still says
    ``validated`` after its confirmation deadline (an hour in the sandbox), so every
    per-row run of home B was held for the week its look goes back, even for other rows.
    Past ``expires_at`` (and a margin) it can never be confirmed: B pays."""
    with pytest.raises(ConfirmationRequired):
        await pipeline.run_async(
            write_csv(tmp_path / "a.csv", [payee(0)]),
            submission=Batches(confirm=False, sleep=_advance_of(sandbox)),
            **run_kwargs(sandbox, sandbox_settings(tmp_path / "a"), tmp_path / "a"),
        )
    await sandbox.advance(hours * 3600)
    assert [x["status"] for x in sandbox.batches()] == ["validated"]
    rb = await pipeline.run_async(write_csv(tmp_path / "b.csv", [payee(5)]),
                                  **run_kwargs(sandbox, home_b, tmp_path / "b"))  # fmt: skip
    assert (rb.exit_code == 10) is held
    assert len(sandbox.ledger()) == (0 if held else 1)


def _advance_of(sb: Sandbox) -> Any:
    async def advance(seconds: float) -> None:
        await sb.advance(1)

    return advance
