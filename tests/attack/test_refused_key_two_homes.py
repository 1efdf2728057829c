"""Two homes and a row one of them saw refused: the same key for the row, or no second payout.

Home A's first attempt at a row was refused (``403 velocity_blocked``: nothing made). A home
that never saw the refusal sends the row's first key, ``bp1-<row>-1``; A sends either that
key again (revived) or its next attempt's. Found by attacking:

- A revived the refused key only after 25 hours, though the provider forgets a key at 24:
  run beside another home between the two, A sent key 2 and the other key 1, the provider
  had forgotten key 1 and made both (paid twice, both runs exit 0). A now revives the key
  once the provider *may* have forgotten it (23 hours): too early is answered with the old
  refusal or a conflict, never a payout. A key revived early and refused again keeps the
  time the provider first saw it, so it is not taken for a fresh one after.
- Another home's attempt 1 met A's refused key (``409 idempotency_conflict``: unknown); A
  then paid the row with attempt 2; a day later the other home settled its intent: the
  provider had forgotten key 1, the look-up found no payout *with that key* and sent it
  (paid twice). Settling now takes the row's live payout under any attempt's key.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from batchpay import pipeline
from batchpay.config import Settings
from batchpay.sandbox import Sandbox
from batchpay.testing import sandbox_settings

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio
HOUR = 3600.0


class _Together(httpx.AsyncBaseTransport):
    """The sandbox's transport; each ``POST /v1/payouts`` waits until ``n`` have arrived
    (both homes have checked the ledger and committed their intents)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, arrived: list[int], go: asyncio.Event,
                 n: int) -> None:  # fmt: skip
        self.inner, self.arrived, self.go, self.n = inner, arrived, go, n

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/v1/payouts":
            self.arrived.append(1)
            if len(self.arrived) >= self.n:
                self.go.set()
            await asyncio.wait_for(self.go.wait(), 10)
        return await self.inner.handle_async_request(request)


async def _both_at_once(
    sandbox: Sandbox, tmp_path: Path, a: Settings, b: Settings, row: dict[str, str]
) -> None:
    """Homes A and B pay a file of ``row`` at the same moment (each payout request waits
    until both have arrived)."""
    fixed = write_csv(tmp_path / "fixed.csv", [row])
    arrived: list[int] = []
    go = asyncio.Event()
    ka, kb = run_kwargs(sandbox, a, tmp_path / "a"), run_kwargs(sandbox, b, tmp_path / "b")
    ka["transport"] = _Together(sandbox.transport(), arrived, go, 2)
    kb["transport"] = _Together(sandbox.transport(), arrived, go, 2)
    await asyncio.gather(pipeline.run_async(fixed, **ka), pipeline.run_async(fixed, **kb))


def _live(sb: Sandbox) -> Counter[str]:
    return Counter(p["reference"] for p in sb.ledger() if p["status"] != "cancelled")


@pytest.mark.parametrize(
    ("refused_again_at", "hours"),
    [(None, 1.0), (None, 23.5), (None, 24.5), (None, 25.5), (23.5, 24.5), (23.5, 47.0)],
)
async def test_a_row_refused_in_one_home_is_paid_once_by_two_homes_at_the_same_moment(
    sandbox: Sandbox, tmp_path: Path, refused_again_at: float | None, hours: float
) -> None:
    r = payee(0, amount="100.96")  # refused at creation (velocity_blocked)
    a, b = sandbox_settings(tmp_path / "a"), sandbox_settings(tmp_path / "b")
    first = await pipeline.run_async(write_csv(tmp_path / "a1.csv", [r]),
                                     **run_kwargs(sandbox, a, tmp_path / "a"))  # fmt: skip
    assert first.exit_code != 0
    assert sandbox.ledger() == []
    waited = 0.0
    if refused_again_at is not None:  # the same row again, in another file: refused again
        await sandbox.advance(refused_again_at * HOUR)
        waited = refused_again_at
        again = await pipeline.run_async(write_csv(tmp_path / "a2.csv", [r, payee(9)]),
                                         **run_kwargs(sandbox, a, tmp_path / "a"))  # fmt: skip
        assert again.report.rows[0].outcome != "pending"
    await sandbox.advance((hours - waited) * HOUR)
    await _both_at_once(sandbox, tmp_path, a, b, dict(r, amount="100.00"))
    assert _live(sandbox)[r["reference"]] <= 1


async def test_an_intent_in_conflict_with_a_refused_key_is_not_sent_once_another_home_paid_the_row(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    r = payee(0, amount="100.96")
    a, b = sandbox_settings(tmp_path / "a"), sandbox_settings(tmp_path / "b")
    await pipeline.run_async(write_csv(tmp_path / "a1.csv", [r]),
                             **run_kwargs(sandbox, a, tmp_path / "a"))  # fmt: skip
    await sandbox.advance(HOUR)
    f = write_csv(tmp_path / "fixed.csv", [dict(r, amount="100.00")])
    rb = await pipeline.run_async(f, **run_kwargs(sandbox, b, tmp_path / "b"))
    assert rb.exit_code == 10  # its key 1 met A's refused key with another body
    assert sandbox.ledger() == []
    ra = await pipeline.run_async(f, **run_kwargs(sandbox, a, tmp_path / "a"))
    assert [x.outcome for x in ra.report.rows] == ["pending"]  # paid by A's attempt 2
    await sandbox.advance(24 * HOUR)  # the provider forgets key 1
    rb2 = await pipeline.run_async(f, **run_kwargs(sandbox, b, tmp_path / "b"))
    assert _live(sandbox) == {r["reference"]: 1}
    assert rb2.exit_code == 0
    assert [x.payout_id for x in rb2.report.rows] == [p["id"] for p in sandbox.ledger()]


@pytest.mark.parametrize("via", ["rows", "batches"])
@pytest.mark.parametrize(("amount", "outcome"), [("150.00", "skipped"), ("100.00", "already_paid")])
async def test_a_row_another_home_paid_under_a_key_this_journal_saw_refused_is_settled(
    sandbox: Sandbox, tmp_path: Path, via: str, amount: str, outcome: str
) -> None:
    """A's attempt 1 was refused; more than a day later home B paid the row with the same
    key (the provider had forgotten it). A's next file with the row: the sweep lists B's
    payout, which A cannot adopt (it holds that very key, refused). The row stayed planned
    for ever (exit 10 each time, nothing said); it is now paid — or held
    ``amount_differs`` when A's file asks another amount."""
    from batchpay.batches import Batches

    r = payee(0, amount="100.96")
    a, b = sandbox_settings(tmp_path / "a"), sandbox_settings(tmp_path / "b")
    await pipeline.run_async(write_csv(tmp_path / "a1.csv", [r]),
                             **run_kwargs(sandbox, a, tmp_path / "a"))  # fmt: skip
    await sandbox.advance(26 * HOUR)
    rb = await pipeline.run_async(write_csv(tmp_path / "b.csv", [dict(r, amount="100.00")]),
                                  **run_kwargs(sandbox, b, tmp_path / "b"))  # fmt: skip
    assert rb.exit_code == 0

    async def advance(seconds: float) -> None:
        await sandbox.advance(1)

    ra = await pipeline.run_async(
        write_csv(tmp_path / "a2.csv", [dict(r, amount=amount)]),
        submission=Batches(confirm=True, sleep=advance) if via == "batches" else None,
        **run_kwargs(sandbox, a, tmp_path / "a"),
    )
    assert len(sandbox.ledger()) == 1
    assert [x.outcome for x in ra.report.rows] == [outcome]
    if outcome == "skipped":  # held, for a person
        assert ra.report.rows[0].error_code == "amount_differs"
    assert ra.exit_code != 10


@pytest.mark.parametrize("b_at", [1.0, 10.0, 20.0])
async def test_a_refusal_another_home_saw_as_a_replay_does_not_split_the_key(
    sandbox: Sandbox, tmp_path: Path, b_at: float, home_b: Settings
) -> None:
    """Home B never saw A's refusal of the row's key 1; it sent the same row with it and
    the provider replayed A's refusal. B dated the refusal from its own send, not from the
    provider's first sight of the key: at 24.5 h A revived key 1 and B sent key 2, and the
    provider, which had forgotten key 1, made both. A replayed refusal is now taken as the
    provider's a day before (the key may be forgotten at once; reviving early is safe)."""
    r = payee(0, amount="100.96")  # refused at creation (velocity_blocked)
    a, b = sandbox_settings(tmp_path / "a"), home_b  # B: SQLite, or PostgreSQL (workers)
    ra = await pipeline.run_async(write_csv(tmp_path / "a1.csv", [r]),
                                  **run_kwargs(sandbox, a, tmp_path / "a"))  # fmt: skip
    assert [x.error_code for x in ra.report.rows] == ["velocity_blocked"]
    await sandbox.advance(b_at * HOUR)
    rb = await pipeline.run_async(write_csv(tmp_path / "b1.csv", [r]),
                                  **run_kwargs(sandbox, b, tmp_path / "b"))  # fmt: skip
    # B met A's refusal, replayed under the same key (the identical body)
    assert [x.error_code for x in rb.report.rows] == ["velocity_blocked"]
    assert sandbox.ledger() == []
    await sandbox.advance((24.5 - b_at) * HOUR)
    await _both_at_once(sandbox, tmp_path, a, b, dict(r, amount="100.00"))
    assert _live(sandbox)[r["reference"]] <= 1, "the row was paid twice"
