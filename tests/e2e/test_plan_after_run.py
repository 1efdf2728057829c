"""`validate` (pipeline.plan) after a run: the journal's set-based look-ups see what was paid."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchpay import pipeline
from batchpay.config import Settings
from batchpay.sandbox import Sandbox

from .conftest import payee, run_kwargs, write_csv


@pytest.mark.anyio
async def test_plan_after_a_run_sees_the_copy_the_paid_rows_and_the_known_payees(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A reordered copy names the earlier run; paid rows and known payees come from the journal."""
    rows = [payee(i) for i in range(3)]
    first = await pipeline.run_async(
        write_csv(tmp_path / "a.csv", rows), **run_kwargs(sandbox, settings, tmp_path)
    )
    copy = pipeline.plan(write_csv(tmp_path / "b.csv", rows[::-1]), settings=settings)
    assert copy.earlier_run == first.run_id
    assert (copy.already_paid, copy.rows_to_pay) == (3, 0)
    # Two of the rows again with a new one: two already paid, one to pay to a known payee.
    again = [rows[0], rows[1], payee(0, reference="INV-NEW-1")]
    p = pipeline.plan(write_csv(tmp_path / "c.csv", again), settings=settings)
    assert p.earlier_run is None
    assert (p.already_paid, p.rows_to_pay) == (2, 1)
    assert (p.known_beneficiaries, p.new_beneficiaries) == (1, 0)
