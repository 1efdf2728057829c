"""A run resumed while another home's batch is paying the same rows.

Home B's run committed its intents and then lost them (killed, or the network gone) before
any reached the provider; home A's batch, swept before confirming, saw no payout of those
rows and paid them all. Home B run again while A's batch was confirmed: B settled its
unfinished intents by resending them with their keys — and a batch's payouts carry no
idempotency key the provider could refuse ours with, so every row was paid twice, both runs
exit 0 (the check after sending ran only when new rows were sent). Unfinished intents are
now held like new rows while another home's batch is open, and settled from the ledger once
it has paid.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from batchpay import pipeline
from batchpay.batches import Batches
from batchpay.config import Settings
from batchpay.sandbox import Sandbox
from batchpay.testing import sandbox_settings

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio


class _Unreachable(httpx.AsyncBaseTransport):
    """The sandbox's transport, where every ``POST /v1/payouts`` finds no connection."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/v1/payouts":
            raise httpx.ReadTimeout("lost", request=request)
        return await self.inner.handle_async_request(request)


def _live(sb: Sandbox) -> Counter[str]:
    return Counter(p["reference"] for p in sb.ledger() if p["status"] not in ("cancelled",))


@pytest.mark.parametrize("batch_status", ["confirmed", "processing"])
async def test_unfinished_intents_are_not_resent_while_another_homes_batch_pays_them(
    sandbox: Sandbox, tmp_path: Path, batch_status: str, home_b: Settings
) -> None:
    rows = [payee(i) for i in range(3)]
    f = write_csv(tmp_path / "p.csv", rows)
    a, b = sandbox_settings(tmp_path / "a"), home_b
    kb = run_kwargs(sandbox, b, tmp_path / "b")
    lost = await pipeline.run_async(f, **{**kb, "transport": _Unreachable(sandbox.transport())})
    assert lost.exit_code != 0
    assert sandbox.ledger() == []  # B's intents are committed; none reached the provider

    resumed: list[Any] = []

    async def sleep(seconds: float) -> None:
        # B runs again while A's batch is at ``batch_status``
        if not resumed and any(x["status"] == batch_status for x in sandbox.batches()):
            resumed.append(await pipeline.run_async(f, **run_kwargs(sandbox, b, tmp_path / "b")))
        await sandbox.advance(1)

    ra = await pipeline.run_async(
        f, submission=Batches(confirm=True, sleep=sleep), **run_kwargs(sandbox, a, tmp_path / "a")
    )
    assert resumed, f"the batch never was {batch_status}"
    (rb,) = resumed
    assert ra.exit_code == 0
    assert _live(sandbox) == {r["reference"]: 1 for r in rows}  # A's batch paid each once
    assert rb.exit_code == 10, rb.exit_code  # B says its rows wait for another home's batch
    assert {r.error_code for r in rb.report.rows} == {"in_flight_elsewhere"}
    # Once A's batch has paid, B's next run finds each row paid, and sends nothing.
    again = await pipeline.run_async(f, **run_kwargs(sandbox, b, tmp_path / "b"))
    assert _live(sandbox) == {r["reference"]: 1 for r in rows}
    assert again.exit_code == 0
    assert len(sandbox.ledger()) == len(rows)


async def test_an_unfinished_intent_settled_by_another_homes_payout_at_another_amount_is_held(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A's payout of a row got no answer (nothing reached the provider); home B paid the
    corrected export (the row at 5000.00) as a batch, whose payout carries the row's key.
    A's next run settles its intent from the ledger with B's payout: the row was reported
    paid at A's 100.00; it is held ``amount_differs`` (nothing sent)."""
    r = payee(0)
    a, b = sandbox_settings(tmp_path / "a"), sandbox_settings(tmp_path / "b")
    fa = write_csv(tmp_path / "a.csv", [r])
    lost = await pipeline.run_async(
        fa,
        **{
            **run_kwargs(sandbox, a, tmp_path / "a"),
            "transport": _Unreachable(sandbox.transport()),
        },
    )
    assert lost.exit_code == 10

    async def advance(seconds: float) -> None:
        await sandbox.advance(1)

    rb = await pipeline.run_async(
        write_csv(tmp_path / "b.csv", [dict(r, amount="5000.00")]),
        submission=Batches(confirm=True, sleep=advance), **run_kwargs(sandbox, b, tmp_path / "b"),
    )  # fmt: skip
    assert rb.exit_code == 0
    again = await pipeline.run_async(fa, **run_kwargs(sandbox, a, tmp_path / "a"))
    assert [p["dest_amount"] for p in sandbox.ledger()] == ["5000.00"]
    assert [(x.outcome, x.error_code) for x in again.report.rows] == [("skipped", "amount_differs")]


async def test_track_does_not_resend_an_unfinished_intent_beside_another_homes_batch(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """``batchpay track RUN`` settles a run's unfinished intents too: it resent them with
    no look at the ledger or at other homes' batches, and only the cancel of the second
    payout kept each row paid once. It now holds them while such a batch is open, and
    settles them from the batch's payouts after."""
    from batchpay import manage

    rows = [payee(i) for i in range(3)]
    f = write_csv(tmp_path / "p.csv", rows)
    a, b = sandbox_settings(tmp_path / "a"), sandbox_settings(tmp_path / "b")
    ka = run_kwargs(sandbox, a, tmp_path / "a")
    lost = await pipeline.run_async(f, **{**ka, "transport": _Unreachable(sandbox.transport())})
    assert lost.exit_code == 10
    tracked: list[Any] = []

    async def track() -> Any:
        rep, _ = await manage.track_async(lost.run_id, settings=a, timeout=0,
                                          out_dir=tmp_path / "a" / "reports",
                                          transport=sandbox.transport(),
                                          clock=sandbox.clock.now)  # fmt: skip
        return rep

    async def sleep(seconds: float) -> None:
        if not tracked and any(x["status"] == "confirmed" for x in sandbox.batches()):
            tracked.append(await track())
        await sandbox.advance(1)

    rb = await pipeline.run_async(f, submission=Batches(confirm=True, sleep=sleep),
                                  **run_kwargs(sandbox, b, tmp_path / "b"))  # fmt: skip
    assert rb.exit_code == 0
    (during,) = tracked
    assert {r.error_code for r in during.rows} == {"in_flight_elsewhere"}
    after = await track()
    made = Counter(p["reference"] for p in sandbox.ledger())  # cancelled ones too
    assert made == {r["reference"]: 1 for r in rows}
    assert {r.payout_id for r in after.rows} == {p["id"] for p in sandbox.ledger()}
