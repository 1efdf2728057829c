"""The early ledger look failing while the run's start-up goes on beside it.

Branch runfast3 reads the look (another home's open batches, then the sweep) beside the
balance check and the run's journal inserts. Whichever of its requests fails for good
(a 5xx or 429 that outlasts the retries, an answer lost on the way back), the start-up
may finish, but nothing may be sent: the rows stay visibly unpaid, and a rerun once the
provider answers again pays each exactly once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from batchpay import pipeline
from batchpay.errors import BatchpayError
from batchpay.sandbox import Sandbox
from batchpay.testing import sandbox_settings

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("route", ["GET /v1/batches", "GET /v1/payouts"])
@pytest.mark.parametrize("outcome", ["503", "429", "lost_response"])
async def test_a_failed_early_look_sends_nothing(
    sandbox: Sandbox, tmp_path: Path, route: str, outcome: str
) -> None:
    rows = [payee(i) for i in range(5)]
    f = write_csv(tmp_path / "p.csv", rows)
    settings = sandbox_settings(tmp_path / "home")
    # A first run gives the journal a high-water mark: the sweep reads windows.
    first = write_csv(tmp_path / "first.csv", [payee(i, reference=f"F-{i}") for i in range(3)])
    done = await pipeline.run_async(first, **run_kwargs(sandbox, settings, tmp_path))
    assert done.exit_code == 0
    before = len(sandbox.ledger())
    sandbox.faults.plan(route, [outcome] * 40)
    code: int | None = None
    try:
        result = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
        code = int(result.exit_code)
        assert {r.outcome for r in result.report.rows} <= {"not_sent", "planned", "held"}
    except BatchpayError as exc:
        code = int(exc.exit_code)
    assert code not in (0, 70)
    assert len(sandbox.ledger()) == before  # nothing sent
    sandbox.faults.clear()
    again = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert again.exit_code == 0
    made = Counter(p["reference"] for p in sandbox.ledger())
    assert all(made[r["reference"]] == 1 for r in rows), made
