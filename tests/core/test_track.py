"""Tracking: a polling round reads the payout list, not one GET per payout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from batchpay import pipeline, track
from batchpay.client import set_testing
from batchpay.config import Settings
from batchpay.connection import connect
from batchpay.journal import Journal
from batchpay.pipeline import RunOptions
from batchpay.sandbox import Sandbox
from batchpay.testing import payout_row, sandbox_settings, write_csv

pytestmark = pytest.mark.anyio

PAYOUTS = 250


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retries and the rate limiter do not sleep in tests."""
    set_testing(True)
    yield
    set_testing(False)


async def _submitted(sandbox: Sandbox, tmp_path: Path) -> tuple[Settings, str]:
    """Pay PAYOUTS rows without waiting; return the settings and the run id."""
    settings = sandbox_settings(tmp_path)
    f = write_csv(tmp_path / "pay.csv", [payout_row(i) for i in range(PAYOUTS)])
    run = await pipeline.run_async(
        f,
        settings=settings,
        options=RunOptions(out_dir=tmp_path / "reports"),
        transport=sandbox.transport(),
        clock=sandbox.clock.now,
    )
    return settings, run.run_id


async def _round(sandbox: Sandbox, settings: Settings, run_id: str) -> tuple[int, list[str]]:
    """One polling round over the run's open payouts: (still pending, paths it requested)."""
    with Journal(settings.journal_path, clock=sandbox.clock.now) as journal:
        before = journal.db.execute("SELECT MAX(id) FROM api_calls").fetchone()[0]
        async with connect(
            settings, journal, transport=sandbox.transport(), clock=sandbox.clock.now
        ) as conn:
            conn.run_id = run_id
            ids = track.pending_payouts(journal, run_id)
            assert len(ids) == PAYOUTS
            pending = await track.refresh(conn.client, journal, ids)
        paths = [
            str(r["path"])
            for r in journal.db.execute("SELECT path FROM api_calls WHERE id > ?", (before,))
        ]
    return pending, paths


def _journal_statuses(settings: Settings) -> dict[str, str]:
    with Journal(settings.journal_path) as journal:
        rows = journal.db.execute("SELECT payout_id, status FROM payouts").fetchall()
    return {str(r["payout_id"]): str(r["status"]) for r in rows}


async def test_a_round_over_hundreds_of_payouts_takes_a_few_list_pages(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """250 open payouts are brought up to date by 3 pages of GET /v1/payouts, no per-id GET."""
    settings, run_id = await _submitted(sandbox, tmp_path)
    await sandbox.advance(30)
    pending, paths = await _round(sandbox, settings, run_id)
    assert pending == 0
    assert paths == ["/v1/payouts"] * 3
    truth = {p["id"]: p["status"] for p in sandbox.ledger()}
    assert _journal_statuses(settings) == truth


async def test_payouts_that_have_not_moved_cost_no_request_each(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Payouts still at the status the journal has are concluded from the list, not fetched."""
    settings, run_id = await _submitted(sandbox, tmp_path)
    pending, paths = await _round(sandbox, settings, run_id)
    assert pending == PAYOUTS
    assert not any(p.startswith("/v1/payouts/") for p in paths)
    assert len(paths) <= 3


async def test_a_failing_list_falls_back_to_one_get_per_payout(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """When the list keeps failing, each payout is still brought up to date by its own GET."""
    settings, run_id = await _submitted(sandbox, tmp_path)
    await sandbox.advance(30)
    sandbox.faults.plan("GET /v1/payouts", ["503"] * 10)
    pending, paths = await _round(sandbox, settings, run_id)
    assert pending == 0
    assert sum(1 for p in paths if p.startswith("/v1/payouts/")) == PAYOUTS
    assert _journal_statuses(settings) == {p["id"]: p["status"] for p in sandbox.ledger()}
