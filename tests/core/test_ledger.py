"""The provider-ledger sweep: incremental from a high-water mark, with progress."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from batchpay import ledger
from batchpay.clocks import ProviderClock
from batchpay.journal import Journal

pytestmark = pytest.mark.anyio
ENV = "sandbox:test"
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


class FakeLedger:
    """A provider list endpoint over a fixed set of payouts (newest first), recording filters."""

    def __init__(self, payouts: list[dict[str, Any]]) -> None:
        self.payouts = payouts
        self.calls: list[dict[str, Any]] = []

    def iter_payouts(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        self.calls.append(filters)
        after = filters.get("created_after")

        async def gen() -> AsyncIterator[dict[str, Any]]:
            for p in sorted(self.payouts, key=lambda p: p["created_at"], reverse=True):
                if after is None or p["created_at"] >= after.strftime("%Y-%m-%dT%H:%M:%SZ"):
                    yield p

        return gen()


def _payout(n: int, at: datetime, *, ours: bool = True) -> dict[str, Any]:
    meta = {"batchpay_key": f"bp1-{n:040x}-1"} if ours else {"note": "made by hand"}
    return {"id": f"pay_{n}", "reference": f"R{n}", "status": "processing", "metadata": meta,
            "created_at": at.strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip


async def test_a_fresh_journal_bootstraps_once_then_sweeps_from_its_mark(tmp_path: Path) -> None:
    """The first sweep reads everything (with progress); the next asks only for what is new."""
    payouts = [_payout(n, T0 + timedelta(seconds=n), ours=n % 3 != 0) for n in range(1, 2501)]
    api = FakeLedger(payouts)
    clock = ProviderClock(lambda: T0 + timedelta(hours=1))
    clock.observe(T0 + timedelta(hours=1))
    progress: list[tuple[str, int, int]] = []
    with Journal(tmp_path / "j.db") as j:
        first = await ledger.sweep(
            api, j, ENV, provider_clock=clock, on_progress=lambda *a: progress.append(a)
        )
        assert first.bootstrap and first.payouts_read == 2500
        assert first.batchpay_payouts == sum(1 for n in range(1, 2501) if n % 3 != 0)
        assert api.calls[0]["created_after"] is None
        assert progress[0] == ("ledger", 100, 0) and progress[-1] == ("ledger", 2500, 2500)
        assert j.provider_payouts_for(ENV, f"{1:040x}")[0]["payout_id"] == "pay_1"
        again = await ledger.sweep(api, j, ENV, provider_clock=clock)
        assert not again.bootstrap
        # From the mark (the provider's time at the first sweep) less a minute of overlap.
        assert api.calls[1]["created_after"] == T0 + timedelta(hours=1) - ledger.OVERLAP
        assert again.payouts_read == 0


async def test_keys_that_are_not_batchpays_are_ignored() -> None:
    """Only metadata keys shaped like batchpay's payout keys count."""
    assert ledger.parse_key("bp1-" + "a" * 40 + "-2") == ("a" * 40, 2)
    for other in (
        "bp1-ben-" + "a" * 40,
        "bp1-" + "a" * 40 + "-0",
        "bp1-" + "A" * 40 + "-1",
        7,
        None,
    ):
        assert ledger.parse_key(other) is None


class _BatchList:
    """A provider's batch list (none of another home's), counting looks; each look waits
    for ``gate`` once it is cleared."""

    def __init__(self) -> None:
        self.looks = 0
        self.gate = asyncio.Event()
        self.gate.set()

    def iter_batches(self, *, created_after: Any = None) -> AsyncIterator[dict[str, Any]]:
        self.looks += 1

        async def gen() -> AsyncIterator[dict[str, Any]]:
            await self.gate.wait()
            return
            yield {}  # an async generator that lists nothing

        return gen()


async def test_the_batch_watch_answers_from_a_fresh_look_and_waits_for_one_under_way(
    tmp_path: Path,
) -> None:
    lister = _BatchList()
    with Journal(tmp_path / "j.db") as journal:
        watch = ledger.ForeignBatchWatch(lister, journal, since=T0, interval=60.0)
        assert await watch.open_batches() == [] and lister.looks == 1
        for _ in range(50):  # within the interval: no new look
            assert await watch.open_batches() == []
        assert lister.looks == 1
        assert await watch.open_batches(fresh=True) == [] and lister.looks == 2

        # A look under way (asked fresh): a caller meanwhile waits for its answer rather
        # than taking the older one, and asks nothing itself.
        lister.gate.clear()
        under_way = asyncio.ensure_future(watch.open_batches(fresh=True))
        await asyncio.sleep(0)
        beside = asyncio.ensure_future(watch.open_batches())
        await asyncio.sleep(0.01)
        assert not beside.done() and lister.looks == 3
        lister.gate.set()
        assert await under_way == [] and await beside == []
        assert lister.looks == 3

        stale = ledger.ForeignBatchWatch(lister, journal, since=T0, interval=0.0)
        await stale.open_batches()
        await stale.open_batches()
        assert lister.looks == 5  # no interval: every call looks
