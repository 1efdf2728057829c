"""The provider-ledger sweep reads windows side by side and still misses no payout.

Against the in-process sandbox (whole-second ``created_at``, newest first, inclusive
``created_after``/``created_before``): bursts, ties at one timestamp, quiet stretches,
payouts made while the sweep runs, and faults (5xx, 429, lost answers) on its pages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from batchpay import ledger
from batchpay.client import AntonClient, ApiKey, RateLimiter, RetryPolicy, set_testing
from batchpay.clocks import ProviderClock
from batchpay.journal import Journal
from batchpay.sandbox import Sandbox

pytestmark = pytest.mark.anyio
ENV = "sandbox:test"
BASE = "http://sandbox.local"


class Counting(httpx.AsyncBaseTransport):
    """The sandbox transport, counting list pages and the most asked for at once; a hook
    starts as the n-th page is asked for (payouts made during the sweep)."""

    def __init__(self, sb: Sandbox) -> None:
        self.inner = sb.transport()
        self.pages = 0
        self.now = 0
        self.most = 0
        self.answered = 0
        self.first_round = 0  # pages asked for before the first one was answered
        self.before_page: dict[int, Any] = {}
        self.made: list[asyncio.Future[None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        listing = request.method == "GET" and request.url.path == "/v1/payouts"
        if listing:
            self.pages += 1
            self.now += 1
            self.most = max(self.most, self.now)
            self.first_round += self.answered == 0
            hook = self.before_page.pop(self.pages, None)
            if hook is not None:  # beside the sweep, as another home's run would
                self.made.append(asyncio.ensure_future(hook()))
            await asyncio.sleep(0.001)  # let the other windows' requests leave too
        try:
            return await self.inner.handle_async_request(request)
        finally:
            if listing:
                self.now -= 1
                self.answered += 1

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(autouse=True)
def _no_waits() -> Iterator[None]:
    """Retry-After pauses and backoff without real waiting."""
    set_testing(True)
    yield
    set_testing(False)


@pytest.fixture
def sb(sandbox: Sandbox) -> Sandbox:
    """A sandbox on a manual clock with money for every payout."""
    sandbox.set_balance("GBP", "100000000.00")
    return sandbox


def _client(sb: Sandbox, transport: httpx.AsyncBaseTransport) -> AntonClient:
    return AntonClient(
        BASE, ApiKey(sb.config.api_keys[0]), transport=transport,
        retry=RetryPolicy.no_wait(max_attempts=12), rate_limiter=RateLimiter.unlimited(),
        max_concurrency=None,
    )  # fmt: skip


class Maker:
    """Makes payouts to one payee, some with batchpay keys in their metadata."""

    def __init__(self, client: AntonClient) -> None:
        self.client = client
        self.n = 0
        self.payee: tuple[str, str] | None = None

    async def make(self, count: int) -> None:
        if self.payee is None:
            ben = await self.client.create_beneficiary(_individual(), "ben-w")
            ins = await self.client.create_instrument(
                ben.data["id"],
                {"method": "uk_bank",
                 "credentials": {"sort_code": "12-34-56", "account_number": "12345678"}},
                "ins-w",
            )  # fmt: skip
            self.payee = (ben.data["id"], ins.data["id"])
        ben_id, ins_id = self.payee

        async def one(i: int) -> None:
            meta = {"batchpay_key": f"bp1-{i:040x}-1"} if i % 4 else {}
            body = {"beneficiary_id": ben_id, "instrument_id": ins_id, "source_amount": "1.00",
                    "source_currency": "GBP", "dest_amount": "1.00", "dest_currency": "GBP",
                    "method": "faster_payment", "purpose": "contractor_payment",
                    "reference": f"W-{i}", "metadata": meta}  # fmt: skip
            await self.client.create_payout(body, f"w-{i}")

        first, self.n = self.n, self.n + count
        for start in range(first, self.n, 64):
            await asyncio.gather(*(one(i) for i in range(start, min(start + 64, self.n))))


def _individual() -> dict[str, Any]:
    return {"type": "individual", "country": "GB", "external_ref": "w-1",
            "individual": {"first_name": "Jane", "last_name": "Smith", "email": "j@example.com",
                           "phone": "+442079460000", "date_of_birth": "1988-05-12",
                           "nationality": "GB",
                           "address": {"street_line_1": "10 Example Street", "city": "London",
                                       "postal_code": "SW1A 1AA", "country": "GB"}}}  # fmt: skip


async def _ledger_with_bursts(sb: Sandbox, maker: Maker) -> None:
    """350 at one second (a tie over four pages), a payout a second for 90 s, an hour of
    nothing, bursts of 120 a second for 8 s, a day of nothing, 250 more at one second."""
    await maker.make(350)
    for _ in range(90):
        await sb.advance(1)
        await maker.make(1)
    await sb.advance(3600)
    for _ in range(8):
        await sb.advance(1)
        await maker.make(120)
    await sb.advance(86400)
    await maker.make(250)


def _ours(sb: Sandbox) -> dict[str, str]:
    """Row key -> payout id of every payout in the sandbox carrying a batchpay key."""
    out = {}
    for p in sb.ledger():
        key = ledger.parse_key((p.get("metadata") or {}).get("batchpay_key"))
        if key is not None:
            out[key[0]] = p["id"]
    return out


def _clock(sb: Sandbox) -> ProviderClock:
    clock = ProviderClock(sb.clock.now)
    clock.observe(sb.clock.now())
    return clock


@pytest.mark.slow
async def test_a_bootstrap_reads_windows_side_by_side_and_misses_nothing(
    sb: Sandbox, tmp_path: Path
) -> None:
    """Every payout (ties, bursts, gaps) is read once, as a plain cursor walk reads them,
    with pages asked for side by side and about as many pages as the walk takes."""
    transport = Counting(sb)
    async with _client(sb, transport) as client:
        await _ledger_with_bursts(sb, Maker(client))
        walk = [p["id"] async for p in client.iter_payouts()]
        walk_pages = transport.pages
        transport.pages = transport.most = 0
        with Journal(tmp_path / "j.db") as j:
            swept = await ledger.sweep(client, j, ENV, provider_clock=_clock(sb))
            ours = _ours(sb)
            assert swept.bootstrap
            assert swept.payouts_read == len(walk) == len(set(walk)) == len(sb.ledger())
            assert swept.batchpay_payouts == len(ours)
            for row_key, pid in ours.items():
                assert [p.payout_id for p in j.provider_payouts_for(ENV, row_key)] == [pid]
    assert transport.most > 1, "the windows were read one after another"
    assert transport.pages <= walk_pages * 1.5 + 2, (transport.pages, walk_pages)


@pytest.mark.slow
async def test_an_incremental_sweep_under_faults_with_payouts_made_meanwhile(
    sb: Sandbox, tmp_path: Path
) -> None:
    """5xx, 429 and lost answers on the sweep's pages, and payouts made while it reads:
    the sweep (and the next, from its mark) still finds every batchpay payout."""
    transport = Counting(sb)
    async with _client(sb, transport) as client:
        maker = Maker(client)
        await maker.make(5)
        with Journal(tmp_path / "j.db") as j:
            await ledger.sweep(client, j, ENV, provider_clock=_clock(sb))  # sets the mark
            await _ledger_with_bursts(sb, maker)

            async def more() -> None:  # made while the sweep is under way
                await maker.make(30)
                await sb.advance(1)
                await maker.make(30)

            transport.before_page = {transport.pages + 2: more, transport.pages + 5: more}
            sb.faults.set(rate_5xx=0.15, rate_429=0.1, rate_lost=0.1, seed=7)
            try:
                await ledger.sweep(client, j, ENV, provider_clock=_clock(sb))
                assert transport.made and not transport.before_page
                await asyncio.gather(*transport.made)
            finally:
                sb.faults.clear()
            await sb.advance(1)
            await ledger.sweep(client, j, ENV, provider_clock=_clock(sb))
            ours = _ours(sb)
            assert len(ours) == sum(1 for i in range(maker.n) if i % 4)
            for row_key, pid in ours.items():
                assert [p.payout_id for p in j.provider_payouts_for(ENV, row_key)] == [pid]


async def test_a_page_that_cannot_be_read_fails_the_sweep_and_moves_no_mark(
    sb: Sandbox, tmp_path: Path
) -> None:
    """When a window's page keeps failing, the sweep raises and the journal's mark stays."""
    from batchpay.errors import ApiError

    async with _client(sb, sb.transport()) as client:
        maker = Maker(client)
        await maker.make(450)
        for _ in range(5):
            await sb.advance(1)
            await maker.make(60)
        with Journal(tmp_path / "j.db") as j:
            sb.faults.plan("GET /v1/payouts", [None] + ["503"] * 40)
            with pytest.raises(ApiError):
                await ledger.sweep(client, j, ENV, provider_clock=_clock(sb))
            assert j.ledger_high_water(ENV) is None
            sb.faults.clear()
            swept = await ledger.sweep(client, j, ENV, provider_clock=_clock(sb))
            assert swept.payouts_read == len(sb.ledger())


def _later(second: str, by: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` ``by`` seconds later (across a minute's end too: the hint
    shifted by three seconds, not wrapped back to the minute's start)."""
    shifted = datetime.fromisoformat(second) + timedelta(seconds=by)
    return shifted.strftime("%Y-%m-%dT%H:%M:%S")


class _Hinting(Journal):
    """A journal whose own sends (the sweep's density hint) are what the test says."""

    hint: ClassVar[dict[str, int]] = {}

    def sent_per_second(self, environment: str, since: str) -> dict[str, int]:
        return dict(self.hint)


@pytest.mark.slow
@pytest.mark.parametrize("hint", ["true", "empty seconds", "shifted", "one"])
async def test_windows_planned_from_the_journals_own_sends_miss_nothing(
    sb: Sandbox, tmp_path: Path, hint: str
) -> None:
    """The seconds this journal sent many payouts in get windows of their own, all asked
    for at once; right, wrong, shifted or partial, the sweep still reads every payout
    once, in about the walk's pages."""
    transport = Counting(sb)
    async with _client(sb, transport) as client:
        maker = Maker(client)
        await maker.make(5)
        with _Hinting(tmp_path / "j.db") as j:
            await ledger.sweep(client, j, ENV, provider_clock=_clock(sb))  # sets the mark
            for _ in range(6):  # six seconds of 350 (each a tie over four pages)
                await sb.advance(1)
                await maker.make(350)
            made = [p for p in sb.ledger() if p["reference"] != "W-0"][5:]
            seconds = sorted({str(p["created_at"])[:19] for p in made})
            _Hinting.hint = {
                "true": {s: 350 for s in seconds},
                "empty seconds": {"2020-01-01T00:00:00": 500, seconds[0][:17] + "59": 500},
                "shifted": {_later(s, 3): 350 for s in seconds},
                "one": {seconds[2]: 350},
            }[hint]
            transport.pages = 0
            walk = [p["id"] async for p in client.iter_payouts(created_after=seconds[0] + "Z")]
            walk_pages = transport.pages
            transport.pages = transport.answered = transport.first_round = 0
            swept = await ledger.sweep(client, j, ENV, provider_clock=_clock(sb))
            ours = _ours(sb)
            assert swept.payouts_read >= len(walk) == 6 * 350
            for row_key, pid in ours.items():
                assert [p.payout_id for p in j.provider_payouts_for(ENV, row_key)] == [pid]
    if hint == "true":  # all six seconds (and the time around them) in the first round
        assert transport.first_round >= 8, "the hinted seconds were not asked for side by side"
    # A right guess costs fewer pages than none (32 here), a wrong one a few more.
    most = walk_pages * 1.3 if hint == "true" else walk_pages * 1.5 + 4
    assert transport.pages <= most, (transport.pages, walk_pages)
