"""The sweep's high-water mark when its windows are planned from this journal's dense seconds.

The mark says "everything created before this, less one ``OVERLAP``, has been listed": the
provider's time as the *top* window's first page (the list as it stands now) arrived. With
planned windows (branch runfast3) every window is asked at once and the top one need not
answer first; the reader took that time only when no payout had been read yet, so a dense
second's page answering first left it unset and the mark became the time the sweep *ended*.
A payout another home made after the top page was answered, more than one ``OVERLAP``
before the sweep ended (a long sweep, a provider clock that moved on), was then never
listed by any later sweep: once the provider forgot its key, this home paid its row again.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from batchpay import pipeline
from batchpay.config import Settings
from batchpay.sandbox import Sandbox
from batchpay.testing import sandbox_settings

from .conftest import payee, run_kwargs, write_csv

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
DAY = 86400.0


class _SweepTransport(httpx.AsyncBaseTransport):
    """The sandbox's transport, holding the sweep's pages as a subclass says until it has
    run ``meanwhile`` (another home pays) once: then it passes everything."""

    def __init__(self, sb: Sandbox, meanwhile: object) -> None:
        self.sb = sb
        self.inner = sb.transport()
        self.meanwhile = meanwhile
        self.others_in_flight = 0
        self.others_done = 0
        self.armed = True

    def held(self, request: httpx.Request) -> tuple[bool, bool]:
        """(whether the request is a payout listing to hold, whether it is the top window's
        first page: no ``created_before``, no cursor)."""
        params = request.url.params
        listing = self.armed and request.method == "GET" and request.url.path == "/v1/payouts"
        return listing, listing and "created_before" not in params and "cursor" not in params


class _TopLast(_SweepTransport):
    """The sandbox's transport: the sweep's top window (no ``created_before``, no cursor)
    answers after its other windows' first pages; once it has, ``meanwhile`` runs (another
    home pays) and the provider's clock moves on two minutes before the answer is read;
    a window read on by cursor then answers, at the provider's new time."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        listing, top = self.held(request)
        if not listing:
            return await self.inner.handle_async_request(request)
        if not top and "cursor" in request.url.params:  # read on after the top window answered
            while self.armed:
                await asyncio.sleep(0.01)
            return await self.inner.handle_async_request(request)
        if not top:
            self.others_in_flight += 1
            try:
                return await self.inner.handle_async_request(request)
            finally:
                self.others_in_flight -= 1
                self.others_done += 1
        for _ in range(500):
            if self.others_done and not self.others_in_flight:
                break
            await asyncio.sleep(0.01)
        response = await self.inner.handle_async_request(request)
        await response.aread()
        await self.meanwhile()  # type: ignore[operator]
        self.sb.clock.advance(120)
        self.armed = False
        return response


def _paid(sb: Sandbox) -> Counter[str]:
    return Counter(p["reference"] for p in sb.ledger() if p["status"] != "cancelled")


async def _dense_second_then_x(
    sb: Sandbox, tmp_path: Path, pause: float
) -> tuple[Settings, Path, Callable[[], Awaitable[None]]]:
    """Home A pays 120 rows within one (sandbox) second, a dense second of its journal, and
    ``pause`` seconds pass; returns A's settings, file X (another payee) and home C paying X."""
    for currency in ("EUR", "USD", "GBP"):
        sb.set_balance(currency, "100000000.00")
    a = sandbox_settings(tmp_path / "a")
    first = write_csv(tmp_path / "first.csv", [payee(i) for i in range(120)])
    r1 = await pipeline.run_async(first, **run_kwargs(sb, a, tmp_path / "a"))
    assert r1.exit_code == 0
    await sb.advance(pause)
    x = write_csv(tmp_path / "x.csv", [payee(201)])

    async def home_c_pays_x() -> None:
        rc = await pipeline.run_async(
            x, **run_kwargs(sb, sandbox_settings(tmp_path / "c"), tmp_path / "c")
        )
        assert rc.exit_code == 0

    return a, x, home_c_pays_x


async def test_a_payout_made_after_the_top_window_answered_is_found_by_the_next_sweep(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # A pays 120 rows within one (sandbox) second: a dense second of its journal.
    a, x, home_c_pays_x = await _dense_second_then_x(sandbox, tmp_path, 10)
    # A's next run (another file): its sweep plans windows around that second.
    kw = run_kwargs(sandbox, a, tmp_path / "a")
    top_last = _TopLast(sandbox, home_c_pays_x)
    kw["transport"] = top_last
    y = write_csv(tmp_path / "y.csv", [payee(200)])
    r2 = await pipeline.run_async(y, **kw)
    assert r2.exit_code == 0
    assert not top_last.armed  # the top window answered last, C paid X meanwhile
    assert _paid(sandbox)[payee(201)["reference"]] == 1
    # A day later the provider has forgotten C's key; A is given X to pay.
    await sandbox.advance(DAY + 3600)
    r3 = await pipeline.run_async(x, **run_kwargs(sandbox, a, tmp_path / "a"))
    assert _paid(sandbox)[payee(201)["reference"]] == 1
    assert {r.outcome for r in r3.report.rows} == {"already_paid"}


class _TopAfterTheRest(_SweepTransport):
    """The sandbox's transport: the sweep's top window is asked only once its other first
    pages are answered, another home has paid meanwhile (``meanwhile``) and the provider's
    clock has moved on two minutes."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        listing, top = self.held(request)
        if not listing:
            return await self.inner.handle_async_request(request)
        if not top:
            response = await self.inner.handle_async_request(request)
            self.others_done += 1
            return response
        for _ in range(500):
            if self.others_done:
                break
            await asyncio.sleep(0.01)
        self.armed = False
        await self.meanwhile()  # type: ignore[operator]
        self.sb.clock.advance(120)
        return await self.inner.handle_async_request(request)


async def test_a_dense_second_the_provider_has_not_reached_loses_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """This machine's clock stepped back 30 s after A's dense second (NTP, a VM resumed):
    shifted to the provider's clock, that second lies ahead of the provider's now, so the
    window below it holds the present. A payout made after that window answered and before
    the top window (above the dense second) answers, two minutes on, must still be listed by
    a later sweep: the mark may not be later than the first round was asked."""
    from datetime import timedelta

    a, x, home_c_pays_x = await _dense_second_then_x(sandbox, tmp_path, 5)
    kw = run_kwargs(sandbox, a, tmp_path / "a")
    kw["clock"] = lambda: sandbox.clock.now() - timedelta(seconds=30)
    late = _TopAfterTheRest(sandbox, home_c_pays_x)
    kw["transport"] = late
    r2 = await pipeline.run_async(write_csv(tmp_path / "y.csv", [payee(200)]), **kw)
    assert r2.exit_code == 0
    assert not late.armed
    assert _paid(sandbox)[payee(201)["reference"]] == 1
    await sandbox.advance(DAY + 3600)
    kw = run_kwargs(sandbox, a, tmp_path / "a")
    kw["clock"] = lambda: sandbox.clock.now() - timedelta(seconds=30)
    r3 = await pipeline.run_async(x, **kw)
    assert _paid(sandbox)[payee(201)["reference"]] == 1
    assert {r.outcome for r in r3.report.rows} == {"already_paid"}
