"""The whole pipeline on each journal database: paid once, resumed, refused, settled."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchpay import pipeline
from batchpay.client import set_testing
from batchpay.config import Settings
from batchpay.errors import DuplicateFileError, ExitCode
from batchpay.journal.target import PostgresURL
from batchpay.sandbox import Sandbox
from batchpay.testing import payout_row, run_kwargs, sandbox_settings, write_csv

pytestmark = pytest.mark.anyio

ATTEMPTS = 5  # the client's default retry budget per request


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retries and the rate limiter do not sleep in tests."""
    set_testing(True)
    yield
    set_testing(False)


@pytest.fixture
def settings(tmp_path: Path, journal_target: Path | PostgresURL) -> Settings:
    """Sandbox settings whose journal is ``journal_target`` (SQLite or PostgreSQL)."""
    return dataclasses.replace(sandbox_settings(tmp_path), journal_path=journal_target)


def _per_reference(sb: Sandbox) -> Counter[str]:
    return Counter(p["reference"] for p in sb.ledger())


async def test_lost_responses_never_pay_twice(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """Responses lost after the server committed are replayed with the same key: one payout."""
    rows = [payout_row(i) for i in range(6)]
    sandbox.faults.plan("POST /v1/payouts", ["lost_response", "timeout", None] * len(rows))
    f = write_csv(tmp_path / "p.csv", rows)
    result = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path, concurrency=1))
    assert result.exit_code == ExitCode.OK
    assert _per_reference(sandbox) == Counter(r["reference"] for r in rows)
    assert len(result.report.rows) == 6


async def test_an_unknown_row_is_settled_by_the_rerun_and_the_file_then_refused(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """Every retry lost: unknown; the rerun resumes with the same key; then the file is refused."""
    f = write_csv(tmp_path / "p.csv", [payout_row(0), payout_row(1)])
    sandbox.faults.plan("POST /v1/payouts", ["lost_response"] * ATTEMPTS)
    first = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path, concurrency=1))
    assert first.exit_code == ExitCode.INCOMPLETE
    keys = {r.reference: r.idempotency_key for r in first.report.rows}
    again = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path, wait=True))
    assert again.resumed and again.run_id == first.run_id
    assert {r.reference: r.idempotency_key for r in again.report.rows} == keys
    assert {r.outcome for r in again.report.rows} == {"completed"}
    assert sorted(_per_reference(sandbox).values()) == [1, 1]
    with pytest.raises(DuplicateFileError):
        await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert len(sandbox.ledger()) == 2


async def test_a_second_journal_adopts_what_the_first_paid(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """The same file through a fresh SQLite journal is adopted from the provider's ledger."""
    f = write_csv(tmp_path / "p.csv", [payout_row(i) for i in range(3)])
    await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    other = sandbox_settings(tmp_path / "elsewhere")
    again = await pipeline.run_async(f, **run_kwargs(sandbox, other, tmp_path / "elsewhere"))
    assert {r.outcome for r in again.report.rows} == {"already_paid"}
    assert len(sandbox.ledger()) == 3


async def test_the_sweeps_hint_counts_this_journals_own_sends_per_second(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """``sent_per_second`` counts the payouts a recent run sent, per second of its clock;
    nothing for a time after them (runs not touched since are not read)."""
    from batchpay.journal import Journal, parse_ts

    before = sandbox.clock.now()
    f = write_csv(tmp_path / "p.csv", [payout_row(i) for i in range(7)])
    result = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert result.exit_code == ExitCode.OK
    with Journal(settings.journal_path) as journal:
        since = before.isoformat()
        seen = journal.sent_per_second(settings.environment, since)
        assert sum(seen.values()) == 7
        assert all(abs(parse_ts(s + "Z") - before).total_seconds() < 120 for s in seen)
        later = sandbox.clock.now().replace(year=before.year + 1).isoformat()
        assert journal.sent_per_second(settings.environment, later) == {}
