"""Several workers on one run with a PostgreSQL journal: rows shared, each paid once."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchpay import pipeline
from batchpay.client import set_testing
from batchpay.config import Settings
from batchpay.errors import ExitCode, RunLockedError
from batchpay.journal import Journal, LockOwner
from batchpay.journal.target import PostgresURL
from batchpay.sandbox import Sandbox
from batchpay.testing import payout_row, run_kwargs, sandbox_settings, write_csv

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retries and the rate limiter do not sleep in tests."""
    set_testing(True)
    yield
    set_testing(False)


def _settings(tmp_path: Path, journal: Path | PostgresURL, lease: float = 60.0) -> Settings:
    base = sandbox_settings(tmp_path)
    return dataclasses.replace(base, journal_path=journal, worker_lease_seconds=lease)


async def test_three_workers_share_a_run_and_write_its_report_once(
    sandbox: Sandbox, tmp_path: Path, postgres_url: PostgresURL
) -> None:
    """Three `run`s of one file at once on PostgreSQL: all exit 0, rows paid once, one report."""
    rows = [payout_row(i) for i in range(24)]
    f = write_csv(tmp_path / "p.csv", rows)
    settings = _settings(tmp_path, postgres_url)
    results = await asyncio.gather(*(
        pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path / f"w{i}", concurrency=2))
        for i in range(3)
    ))  # fmt: skip
    assert [r.exit_code for r in results] == [ExitCode.OK] * 3
    assert len({r.run_id for r in results}) == 1
    assert sum(r.paths is not None for r in results) == 1  # the report is written once
    assert Counter(p["reference"] for p in sandbox.ledger()) == Counter(
        r["reference"] for r in rows
    )
    with Journal(postgres_url) as j:
        callers = Counter(c["run_id"] for c in j.calls(results[0].run_id))
    assert callers  # the calls are recorded under the one run


async def test_an_intent_left_sending_by_a_killed_worker_is_not_sent_with_a_new_key(
    sandbox: Sandbox, tmp_path: Path, postgres_url: PostgresURL
) -> None:
    """The row a dead worker held (intent committed) is settled by another after the lease."""
    rows = [payout_row(i) for i in range(3)]
    f = write_csv(tmp_path / "p.csv", rows)
    settings = _settings(tmp_path, postgres_url, lease=1.0)
    sandbox.faults.plan("POST /v1/payouts", ["lost_response"] * 5)  # row 2: sent, answer lost
    first = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path, concurrency=1))
    assert first.exit_code == ExitCode.INCOMPLETE
    key = next(r.idempotency_key for r in first.report.rows if r.outcome == "unknown")
    with Journal(postgres_url) as j:  # a worker claims that row and dies holding it
        j.unpark_rows(first.run_id)  # (the first pass parked it, unsettled)
        claimed = j.claim_rows(first.run_id, "dead|1|x", limit=1, lease=1.0)
        assert claimed == [2]
    again = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path / "b"))
    assert again.exit_code == ExitCode.OK and again.run_id == first.run_id
    assert [r.idempotency_key for r in again.report.rows if r.row == 2] == [key]
    assert sorted(Counter(p["reference"] for p in sandbox.ledger()).values()) == [1, 1, 1]


def test_with_sqlite_a_second_process_on_the_run_is_refused(tmp_path: Path) -> None:
    """SQLite keeps one process per run: the second is told who holds it (exit 8)."""
    with Journal(tmp_path / "j.db") as j:
        run_id = j.create_run(
            environment="e", api_url="http://x", mode="sandbox",
            file={"sha256": "s", "fingerprint": "f", "name": "f.csv", "size": 1,
                  "format": "csv", "row_count": 0},
            rows=[], options={}, owner=LockOwner.current(),
        )  # fmt: skip
        with Journal(tmp_path / "j.db") as other, pytest.raises(RunLockedError) as caught:
            other.acquire_run_lock(run_id, LockOwner.current())
        assert caught.value.exit_code == ExitCode.LOCKED


def test_the_rate_limit_is_one_bucket_for_every_worker(postgres_url: PostgresURL) -> None:
    """Two workers' connections draw from one bucket: together they get the burst, no more."""
    with Journal(postgres_url) as a, Journal(postgres_url) as b:
        waits = [j.take_rate_token("world", 0.001, 4.0) for j in (a, b, a, b, a, b)]
    assert waits[:4] == [0.0] * 4  # the shared burst of 4
    assert all(w > 0 for w in waits[4:])  # then both wait, whichever asks


def test_a_claim_takes_at_most_its_limit_and_leaves_the_rest_to_others(
    postgres_url: PostgresURL,
) -> None:
    """40 rows, claims of 32: the first worker gets 32, the second the other 8, none twice.

    (Written as ``row_number IN (SELECT … LIMIT 32 FOR UPDATE SKIP LOCKED)`` PostgreSQL
    re-ran the subquery and the first claim took all 40.)
    """
    with Journal(postgres_url) as j:
        run_id = j.create_run(
            environment="e", api_url="http://x", mode="sandbox",
            file={"sha256": "s", "fingerprint": "f", "name": "f.csv", "size": 1,
                  "format": "csv", "row_count": 40},
            rows=[
                {"row_number": n + 2, "reference": f"R{n}", "beneficiary_ref": "B",
                 "row_key": f"k{n}", "content_hash": "h", "amount": "1.00", "currency": "EUR",
                 "source_currency": "EUR", "payment_method": "iban",
                 "masked_account": "****1234", "state": "planned"}
                for n in range(40)
            ],
            options={},
        )  # fmt: skip
        first = j.claim_rows(run_id, "a|1|x", limit=32, lease=60.0)
    with Journal(postgres_url) as other:
        second = other.claim_rows(run_id, "b|2|y", limit=32, lease=60.0)
        third = other.claim_rows(run_id, "c|3|z", limit=32, lease=60.0)
    assert len(first) == 32
    assert sorted(first + second) == list(range(2, 42))
    assert third == []
