"""After submission: track, cancel, retry-failed and show, from the journal and the API."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchpay import manage as runs
from batchpay import pipeline
from batchpay.config import Settings
from batchpay.errors import BatchpayError
from batchpay.sandbox import Sandbox
from batchpay.testing import fake_live_key

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio


def _kw(sb: Sandbox, tmp_path: Path) -> dict[str, object]:
    return {"transport": sb.transport(), "clock": sb.clock.now, "out_dir": tmp_path / "r"}


async def test_track_follows_a_submitted_run_to_final_statuses(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """`track` polls until every payout is terminal and rewrites the report."""
    rows = [payee(0), payee(1, amount="150.91"), payee(2, amount="99.92")]
    first = await pipeline.run_async(
        write_csv(tmp_path / "p.csv", rows), **run_kwargs(sandbox, settings, tmp_path)
    )
    assert {r.outcome for r in first.report.rows} == {"pending"}

    async def advance(seconds: float) -> None:
        await sandbox.advance(max(seconds, 1.0))

    rep, paths = await runs.track_async(
        first.run_id, settings=settings, sleep=advance, **_kw(sandbox, tmp_path)
    )
    assert sorted(r.outcome for r in rep.rows) == ["completed", "failed", "returned"]
    assert paths.xlsx.exists()
    assert rep.check_totals() == []


async def test_cancel_cancels_what_it_can_and_reports_the_rest(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """Payouts still before the rail are cancelled; completed ones are reported as not."""
    rows = [payee(0), payee(1, amount="310.98")]  # .98: held in manual_review
    first = await pipeline.run_async(
        write_csv(tmp_path / "p.csv", rows), **run_kwargs(sandbox, settings, tmp_path)
    )
    await sandbox.advance(60)  # the first completes; the second waits for review
    result = await runs.cancel_async(
        first.run_id, settings=settings, transport=sandbox.transport(), clock=sandbox.clock.now
    )
    held = next(r.payout_id for r in first.report.rows if r.reference == rows[1]["reference"])
    done = next(r.payout_id for r in first.report.rows if r.reference == rows[0]["reference"])
    assert result.cancelled == [held]
    assert result.not_cancellable == {done: "completed"}
    summary = runs.show(first.run_id, settings=settings)
    outcomes = {r.payout_id: r.outcome for r in summary.report.rows}
    assert outcomes == {held: "cancelled", done: "completed"}


async def test_retry_failed_pays_only_failed_and_returned_rows_as_linked_run(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """Only failed/returned rows are paid again, with a new key, in a run linked to the old."""
    rows = [payee(0), payee(1, amount="150.91"), payee(2, amount="99.92")]
    first = await pipeline.run_async(
        write_csv(tmp_path / "p.csv", rows), **run_kwargs(sandbox, settings, tmp_path, wait=True)
    )
    with pytest.raises(BatchpayError, match="explicit confirmation"):
        await runs.retry_failed_async(first.run_id, confirm=False, settings=settings)
    plan = runs.retry_plan(first.run_id, settings=settings)
    assert sorted(r["reference"] for r in plan.rows) == sorted(
        [rows[1]["reference"], rows[2]["reference"]]
    )
    new_run, rep, _ = await runs.retry_failed_async(
        first.run_id, confirm=True, settings=settings, **_kw(sandbox, tmp_path)
    )
    assert len(sandbox.ledger()) == 5
    assert {r.reference for r in rep.rows} == {rows[1]["reference"], rows[2]["reference"]}
    assert all(r.idempotency_key.endswith("-2") and r.attempt == 2 for r in rep.rows)
    summary = runs.show(new_run, settings=settings)
    assert summary.parent_run_id == first.run_id
    assert runs.show(first.run_id, settings=settings).children == [new_run]
    completed_ref = rows[0]["reference"]
    assert sum(1 for p in sandbox.ledger() if p["reference"] == completed_ref) == 1


async def test_retry_failed_refuses_when_nothing_failed(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A run whose rows all completed has nothing to retry."""
    first = await pipeline.run_async(
        write_csv(tmp_path / "p.csv", [payee(0)]),
        **run_kwargs(sandbox, settings, tmp_path, wait=True),
    )
    with pytest.raises(BatchpayError, match="no failed or returned rows"):
        await runs.retry_failed_async(first.run_id, confirm=True, settings=settings)
    assert len(sandbox.ledger()) == 1


async def test_retry_failed_with_a_live_key_needs_confirm_live(tmp_path: Path) -> None:
    """Paying again with a live key is refused without --confirm-live, before any request."""
    from batchpay.config import resolve_settings
    from batchpay.errors import ConfigError

    live = resolve_settings(
        env={"BATCHPAY_API_KEY": fake_live_key(), "BATCHPAY_HOME": str(tmp_path)}
    )
    with pytest.raises(ConfigError, match="--confirm-live"):
        await runs.retry_failed_async("run_x", confirm=True, settings=live)


async def test_track_settles_a_retry_whose_answer_was_lost(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A retry-failed run has no file to run again: `track` settles its unknown rows."""
    rows = [payee(1, amount="150.91")]
    first = await pipeline.run_async(
        write_csv(tmp_path / "p.csv", rows), **run_kwargs(sandbox, settings, tmp_path, wait=True)
    )
    sandbox.faults.plan("POST /v1/payouts", ["lost_response"] * 5)
    new_run, rep, _ = await runs.retry_failed_async(
        first.run_id, confirm=True, settings=settings, **_kw(sandbox, tmp_path)
    )
    assert [r.outcome for r in rep.rows] == ["unknown"]
    assert runs.show(new_run, settings=settings).status == "open"

    async def advance(seconds: float) -> None:
        await sandbox.advance(max(seconds, 1.0))

    rep, _ = await runs.track_async(
        new_run, settings=settings, sleep=advance, **_kw(sandbox, tmp_path)
    )
    assert [r.outcome for r in rep.rows] == ["failed"]  # .91 fails again, but it is settled
    assert len(sandbox.ledger()) == 2
    assert runs.show(new_run, settings=settings).status == "finished"
