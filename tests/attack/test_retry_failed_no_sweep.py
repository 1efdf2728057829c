# ruff: noqa: SIM105
"""retry-failed sends without sweeping the provider's ledger.

A journal that does not know about an earlier retry (a restored backup of the home, a
second machine that shared the first attempt) mints the same attempt number again; once
the provider has forgotten that key (24 h), the retry is created a second time.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from batchpay import manage as runs
from batchpay import pipeline
from batchpay.sandbox import Sandbox
from batchpay.sandbox import bank as sb_bank
from batchpay.testing import sandbox_settings

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio
DAY = 24 * 3600.0


@pytest.fixture
def fail_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first payout of an amount ending .91 fails (a transient rail failure); the next
    ones complete, as a real payout retried after the bank fixed the account would."""
    original = sb_bank.outcome_for
    seen: set[str] = set()

    def outcome(amount, currency):  # type: ignore[no-untyped-def]
        out = original(amount, currency)
        if out == "failed":
            key = f"{amount}{currency}"
            if key in seen:
                return "completed"
            seen.add(key)
        return out

    monkeypatch.setattr(sb_bank, "outcome_for", outcome)


def _live(sb: Sandbox, reference: str) -> list[dict]:
    bad = {"failed", "returned", "cancelled", "screening_failed", "velocity_blocked"}
    return [p for p in sb.ledger() if p["reference"] == reference and p["status"] not in bad]


def _kw(sb: Sandbox, tmp_path: Path) -> dict[str, object]:
    return {"transport": sb.transport(), "clock": sb.clock.now, "out_dir": tmp_path / "r"}


async def test_retry_failed_from_a_restored_backup_pays_twice(
    sandbox: Sandbox, tmp_path: Path, fail_once: None
) -> None:
    rows = [payee(1, amount="150.91")]
    f = write_csv(tmp_path / "p.csv", rows)
    home = sandbox_settings(tmp_path / "a")
    first = await pipeline.run_async(f, **run_kwargs(sandbox, home, tmp_path / "a", wait=True))
    assert [r.outcome for r in first.report.rows] == ["failed"]
    # The nightly backup of the home folder.
    backup = tmp_path / "backup"
    shutil.copytree(home.home, backup)

    await runs.retry_failed_async(
        first.run_id, confirm=True, settings=home, **_kw(sandbox, tmp_path)
    )
    await sandbox.advance(60)
    assert len(_live(sandbox, rows[0]["reference"])) == 1  # the retry completed

    # The disk is lost; the home is restored from the backup two days later.
    await sandbox.advance(2 * DAY)
    shutil.rmtree(home.home)
    shutil.copytree(backup, home.home)
    # The operator sees the row failed in the restored journal and retries it.
    try:
        await runs.retry_failed_async(
            first.run_id, confirm=True, settings=home, **_kw(sandbox, tmp_path)
        )
    except Exception:
        pass
    await sandbox.advance(60)
    per_key = Counter(p["idempotency_key"] for p in sandbox.ledger())
    assert len(_live(sandbox, rows[0]["reference"])) == 1, per_key


async def test_two_homes_retry_the_same_failed_row_a_day_apart(
    sandbox: Sandbox, tmp_path: Path, fail_once: None
) -> None:
    import asyncio

    rows = [payee(1, amount="150.91")]
    f = write_csv(tmp_path / "p.csv", rows)
    a = sandbox_settings(tmp_path / "a")
    b = sandbox_settings(tmp_path / "b")
    # Two machines' cron jobs start the same file at the same instant.
    ra, rb = await asyncio.gather(
        pipeline.run_async(f, **run_kwargs(sandbox, a, tmp_path / "a", wait=True)),
        pipeline.run_async(f, **run_kwargs(sandbox, b, tmp_path / "b", wait=True)),
    )
    assert len(sandbox.ledger()) == 1
    assert [r.outcome for r in ra.report.rows] == ["failed"]
    assert [r.outcome for r in rb.report.rows] == ["failed"]
    await runs.retry_failed_async(ra.run_id, confirm=True, settings=a, **_kw(sandbox, tmp_path))
    await sandbox.advance(DAY + 3600)
    try:
        await runs.retry_failed_async(rb.run_id, confirm=True, settings=b, **_kw(sandbox, tmp_path))
    except Exception:
        pass
    await sandbox.advance(60)
    assert len(_live(sandbox, rows[0]["reference"])) == 1, sandbox.ledger()
