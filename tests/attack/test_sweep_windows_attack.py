"""Attacks on the provider-ledger sweep that reads windows side by side.

The sweep cuts ``[mark - 1 min, now]`` by ``created_at`` into sub-windows with inclusive
bounds. Each way a window's bound can fall short of what it was meant to cover loses the
payouts beyond it: a home that then pays the same file after the provider forgot the keys
pays them again. Judged by the sandbox's ledger.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from batchpay import ledger, pipeline
from batchpay.client import AntonClient, ApiKey, RateLimiter, RetryPolicy
from batchpay.clocks import ProviderClock
from batchpay.journal import Journal
from batchpay.sandbox import Sandbox
from batchpay.sandbox.bank.paging import Page, page_of
from batchpay.sandbox.bank.payouts import Payouts
from batchpay.testing import sandbox_settings

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio
DAY = 86400.0
ENV = "sandbox:test"
BASE = "http://sandbox.local"


@pytest.fixture
def sb(sandbox: Sandbox) -> Sandbox:
    """The root's manual-clock sandbox, with money for every payout."""
    sandbox.set_balance("GBP", "100000000.00")
    return sandbox


def _finer_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider keeps created_at to the microsecond and compares its filters so, while it
    shows whole seconds (the sweep's docs: "robust to a provider comparing finer than it
    shows")."""

    def list_payouts(
        self: Payouts,
        *,
        statuses: list[str],
        equals: dict[str, str],
        created_after: float | None,
        created_before: float | None,
        page: Page,
    ) -> dict[str, Any]:
        assert not statuses and not equals
        self.apply_due()
        where: list[str] = []
        params: list[Any] = []
        if created_after is not None:
            where.append("created_ts >= ?")
            params.append(created_after)
        if created_before is not None:
            where.append("created_ts <= ?")
            params.append(created_before)
        return page_of(self.store, "payouts", "payouts", where, params, page)

    monkeypatch.setattr(Payouts, "list_payouts", list_payouts)


@pytest.mark.parametrize("finer", [True, False])
async def test_a_provider_comparing_finer_than_it_shows_loses_the_rest_of_a_cut_second(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, finer: bool
) -> None:
    """A pays 150 rows within one second (shown ``…:00Z``, kept as ``…:00.5``), then 50 more
    a second later. A day later B pays the first file from a fresh home: its bootstrap's
    first page holds the 50 and 50 of the 150; the rest of that second went to a window whose
    upper bound was the shown ``…:00Z``, which ``…:00.5`` is after. B paid 100 rows again.
    (Without ``finer``: the sandbox as it is, comparing at the shown second.)"""
    if finer:
        _finer_filters(monkeypatch)
    a = sandbox_settings(tmp_path / "a")
    b = sandbox_settings(tmp_path / "b")
    sandbox.set_balance("USD", "100000000.00")
    sandbox.set_balance("EUR", "100000000.00")
    sandbox.set_balance("GBP", "100000000.00")
    await sandbox.advance(0.5)
    f = write_csv(tmp_path / "f.csv", [payee(i) for i in range(150)])
    await pipeline.run_async(f, **run_kwargs(sandbox, a, tmp_path / "a"))
    await sandbox.advance(1)
    g = write_csv(tmp_path / "g.csv", [payee(i) for i in range(200, 250)])
    await pipeline.run_async(g, **run_kwargs(sandbox, a, tmp_path / "a"))
    await sandbox.advance(DAY + 3600)  # the provider forgot the keys
    await pipeline.run_async(f, **run_kwargs(sandbox, b, tmp_path / "b"))
    counts = Counter(p["reference"] for p in sandbox.ledger())
    assert len(counts) == 200
    assert set(counts.values()) == {1}, Counter(counts.values())


class _Offsets(httpx.AsyncBaseTransport):
    """The sandbox, its payout list writing ``created_at`` at a UTC offset (``-05:00``)."""

    def __init__(self, sb: Sandbox, offset: timedelta) -> None:
        self.inner = sb.transport()
        self.tz = timezone(offset)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method != "GET" or request.url.path != "/v1/payouts":
            return response
        await response.aread()
        body = json.loads(response.content)
        for p in body.get("data", []):
            at = datetime.fromisoformat(p["created_at"].replace("Z", "+00:00"))
            p["created_at"] = at.astimezone(self.tz).isoformat()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx.Response(response.status_code, headers=headers, json=body)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _client(sb: Sandbox, transport: httpx.AsyncBaseTransport) -> AntonClient:
    return AntonClient(
        BASE, ApiKey(sb.config.api_keys[0]), transport=transport,
        retry=RetryPolicy.no_wait(max_attempts=4), rate_limiter=RateLimiter.unlimited(),
        max_concurrency=None,
    )  # fmt: skip


async def _payee(client: AntonClient) -> tuple[str, str]:
    ben = await client.create_beneficiary(
        {"type": "individual", "country": "GB", "external_ref": "w-1",
         "individual": {"first_name": "Jane", "last_name": "Smith", "email": "j@example.com",
                        "phone": "+442079460000", "date_of_birth": "1988-05-12",
                        "nationality": "GB",
                        "address": {"street_line_1": "10 Example Street", "city": "London",
                                    "postal_code": "SW1A 1AA", "country": "GB"}}},
        "ben-w",
    )  # fmt: skip
    ins = await client.create_instrument(
        ben.data["id"],
        {"method": "uk_bank",
         "credentials": {"sort_code": "12-34-56", "account_number": "12345678"}},
        "ins-w",
    )  # fmt: skip
    return ben.data["id"], ins.data["id"]


async def _make(client: AntonClient, who: tuple[str, str], i: int) -> None:
    body = {"beneficiary_id": who[0], "instrument_id": who[1], "source_amount": "1.00",
            "source_currency": "GBP", "dest_amount": "1.00", "dest_currency": "GBP",
            "method": "faster_payment", "purpose": "contractor_payment",
            "reference": f"W-{i}", "metadata": {"batchpay_key": f"bp1-{i:040x}-1"}}  # fmt: skip
    await client.create_payout(body, f"w-{i}")


def _clock(sb: Sandbox) -> ProviderClock:
    clock = ProviderClock(sb.clock.now)
    clock.observe(sb.clock.now())
    return clock


def _ours(sb: Sandbox) -> set[str]:
    out = set()
    for p in sb.ledger():
        key = ledger.parse_key((p.get("metadata") or {}).get("batchpay_key"))
        if key is not None:
            out.add(key[0])
    return out


@pytest.mark.parametrize("hours", [-5, 5, 0])
async def test_created_at_at_an_offset_from_utc_cuts_windows_the_provider_reads_alike(
    sb: Sandbox, tmp_path: Path, hours: int
) -> None:
    """A payout a minute for 130 minutes, listed with ``created_at`` at a UTC offset. A
    bootstrap cuts windows back in time from the page's oldest (at that offset) and wrote
    each bound's local digits with a ``Z``: at -05:00 the bounds fell five hours early and
    the windows between them read nothing."""
    async with _client(sb, sb.transport()) as maker:
        who = await _payee(maker)
        for i in range(130):
            await _make(maker, who, i)
            sb.clock.advance(60)
    async with _client(sb, _Offsets(sb, timedelta(hours=hours))) as client:
        with Journal(tmp_path / "j.db") as j:
            swept = await ledger.sweep(client, j, ENV, provider_clock=_clock(sb))
            missing = [k for k in _ours(sb) if not j.provider_payouts_for(ENV, k)]
            assert swept.payouts_read == 130 and not missing, (swept, len(missing))
            assert swept.high_water is not None
            mark = datetime.fromisoformat(swept.high_water.replace("Z", "+00:00"))
            assert mark <= sb.clock.now()


class _Repeats:
    """A list whose every page says has_more and hands back the cursor it was asked with."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.pages = 0

    async def payouts_page(
        self,
        *,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        cursor: str | None = None,
    ) -> Any:
        self.pages += 1
        if self.pages > 50:
            raise AssertionError("the sweep kept asking for the same page")
        at = self.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        data = [{"id": f"pay_{self.pages}_{i}", "created_at": at} for i in range(100)]
        return _Page(data, True, "c1", 200, None)


class _Page:
    def __init__(self, data: list[Any], more: bool, cursor: str, status: int, rid: Any) -> None:
        self.data, self.has_more, self.next_cursor = data, more, cursor
        self.status, self.request_id = status, rid


async def test_a_list_that_repeats_its_cursor_fails_the_sweep(tmp_path: Path) -> None:
    """The cursor walk refused a repeated next_cursor; the windows must too (not loop)."""
    from batchpay.errors import ApiError

    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    lister = _Repeats(now)
    clock = ProviderClock(lambda: now)
    with Journal(tmp_path / "j.db") as j:
        with pytest.raises(ApiError) as err:
            await ledger.sweep(lister, j, ENV, provider_clock=clock)  # type: ignore[arg-type]
        assert err.value.code == "invalid_pagination"
        assert j.ledger_high_water(ENV) is None


class _BatchDoneBetween(httpx.AsyncBaseTransport):
    """Home A's transport: its batch look-up (asked beside the sweep) is answered after the
    sweep's first page, and meanwhile the provider finishes another home's batch (time
    passes: the batch's remaining steps fall due)."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.inner = sb.transport()
        self.pages = 0
        self.moved = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/v1/batches" and not self.moved:
            for _ in range(1000):  # until the sweep's first page has been answered
                if self.pages:
                    break
                await asyncio.sleep(0)
            self.moved = True
            self.sb.clock.advance(1)  # B's batch is processed meanwhile
        response = await self.inner.handle_async_request(request)
        if request.method == "GET" and request.url.path == "/v1/payouts":
            self.pages += 1
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_another_homes_batch_that_ends_between_the_sweep_and_the_look_up(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """B's batch is confirmed and processing when A's sweep reads its first page (no
    payouts yet); it has ended when A's look-up beside the sweep is answered (not open). A
    saw neither, and its per-row payouts are not refused: the batch made them under no
    idempotency key. B confirmed more than a minute before, so A's after-run look (batches
    created since its sweep) missed it too: rows were paid twice. Fixed: the look-up is
    answered before the sweep's first page is asked."""
    from batchpay.batches import Batches

    rows = [payee(i) for i in range(3)]
    f = write_csv(tmp_path / "p.csv", rows)
    a = sandbox_settings(tmp_path / "a")
    b = sandbox_settings(tmp_path / "b")
    go = asyncio.Event()

    async def b_sleep(seconds: float) -> None:
        if any(x["status"] in ("confirmed", "processing") for x in sandbox.batches()):
            await go.wait()  # B's process is slow to poll again
        await sandbox.advance(1)

    run_b = asyncio.create_task(
        pipeline.run_async(
            f,
            submission=Batches(confirm=True, sleep=b_sleep),
            **run_kwargs(sandbox, b, tmp_path / "b"),
        )
    )
    for _ in range(2000):  # B's file is checked in a thread: real time, not loop turns
        if any(x["status"] == "confirmed" for x in sandbox.batches()):
            break
        await asyncio.sleep(0.005)
    assert [x["status"] for x in sandbox.batches()] == ["confirmed"]
    assert sandbox.ledger() == []
    sandbox.clock.advance(120)  # B confirmed a while ago; the provider takes its time
    ka = run_kwargs(sandbox, a, tmp_path / "a", skip_balance_check=True)
    ka["transport"] = _BatchDoneBetween(sandbox)
    await pipeline.run_async(f, **ka)
    go.set()
    await run_b
    live = Counter(p["reference"] for p in sandbox.ledger() if p["status"] != "cancelled")
    assert live == {r["reference"]: 1 for r in rows}, live
