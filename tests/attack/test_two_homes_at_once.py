"""Two homes at the same instant, one of which had a row refused more than a day earlier.

Attempt numbers are journal-local: home A knows attempt 1 was refused (insufficient
balance) and mints attempt 2; home B never heard of it and sends attempt 1, whose stored
refusal the provider has forgotten. Both sweeps ran before either send, so neither sees
the other's payout: the row is paid twice. Also: a payout adopted from another journal that
then fails is reported ``already_paid`` and the run exits 5 ("nothing was sent").
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from batchpay import manage as runs
from batchpay import pipeline
from batchpay.sandbox import Sandbox
from batchpay.testing import sandbox_settings

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio
DAY = 86400.0


async def test_two_homes_with_different_attempt_histories_pay_a_row_twice(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    a = sandbox_settings(tmp_path / "a")
    b = sandbox_settings(tmp_path / "b")
    sandbox.set_balance("USD", "10.00")
    r0 = await pipeline.run_async(
        write_csv(tmp_path / "0.csv", [payee(1)]),
        **run_kwargs(sandbox, a, tmp_path, skip_balance_check=True),
    )
    assert [r.error_code for r in r0.report.rows] == ["insufficient_balance"]
    sandbox.set_balance("USD", "1000000.00")
    await sandbox.advance(DAY + 3600)
    f = write_csv(tmp_path / "p.csv", [payee(1), payee(4)])
    await asyncio.gather(
        pipeline.run_async(f, **run_kwargs(sandbox, a, tmp_path / "a")),
        pipeline.run_async(f, **run_kwargs(sandbox, b, tmp_path / "b")),
    )
    counts = Counter(p["reference"] for p in sandbox.ledger())
    assert counts == {payee(1)["reference"]: 1, payee(4)["reference"]: 1}


async def test_an_adopted_payout_that_fails_is_not_reported_as_paid(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    rows = [payee(1, amount="150.91")]  # .91: fails at the rail
    f = write_csv(tmp_path / "p.csv", rows)
    a = sandbox_settings(tmp_path / "a")
    b = sandbox_settings(tmp_path / "b")
    await pipeline.run_async(f, **run_kwargs(sandbox, a, tmp_path / "a"))  # A: no --wait
    rb = await pipeline.run_async(f, **run_kwargs(sandbox, b, tmp_path / "b", wait=True))
    (row,) = rb.report.rows
    assert row.payout_status == "failed"  # B's journal knows it failed...
    # ...but says "already paid, nothing sent" (exit 5) instead of "needs a person" (exit 1).
    assert (row.outcome, rb.exit_code) == ("failed", 1)


async def test_retry_failed_of_an_adopted_payout_sends_an_empty_body(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    rows = [payee(1, amount="150.91")]
    f = write_csv(tmp_path / "p.csv", rows)
    a = sandbox_settings(tmp_path / "a")
    b = sandbox_settings(tmp_path / "b")
    await pipeline.run_async(f, **run_kwargs(sandbox, a, tmp_path / "a"))
    rb = await pipeline.run_async(f, **run_kwargs(sandbox, b, tmp_path / "b", wait=True))
    plan = runs.retry_plan(rb.run_id, settings=b)
    if plan.rows:  # offering it at all is questionable; if offered, it must be a real payout
        _, rep, _ = await runs.retry_failed_async(
            rb.run_id,
            confirm=True,
            settings=b,
            transport=sandbox.transport(),
            clock=sandbox.clock.now,
            out_dir=tmp_path / "r",
        )
        assert [r.error_code for r in rep.rows] != ["validation_error"]


async def test_two_homes_within_a_day_of_a_refusal_pay_a_row_once(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Inside the provider's key memory the fresh home's attempt 1 is answered with the old
    refusal, while the home that saw it sends attempt 2: one payout, never two."""
    a = sandbox_settings(tmp_path / "a")
    b = sandbox_settings(tmp_path / "b")
    sandbox.set_balance("USD", "10.00")
    await pipeline.run_async(
        write_csv(tmp_path / "0.csv", [payee(1)]),
        **run_kwargs(sandbox, a, tmp_path, skip_balance_check=True),
    )
    sandbox.set_balance("USD", "1000000.00")
    await sandbox.advance(2 * 3600)
    f = write_csv(tmp_path / "p.csv", [payee(1), payee(4)])
    await asyncio.gather(
        pipeline.run_async(f, **run_kwargs(sandbox, a, tmp_path / "a")),
        pipeline.run_async(f, **run_kwargs(sandbox, b, tmp_path / "b")),
    )
    counts = Counter(p["reference"] for p in sandbox.ledger())
    assert counts[payee(1)["reference"]] <= 1 and counts[payee(4)["reference"]] == 1
