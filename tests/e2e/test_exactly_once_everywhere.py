"""Exactly once however batchpay is deployed: two homes, two clocks, one row key per payout.

The sandbox's ledger is the judge in every test: one payout per reference, never two.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from batchpay import pipeline
from batchpay.config import Settings
from batchpay.errors import ConfigError, ExitCode
from batchpay.journal import Journal
from batchpay.sandbox import Sandbox

from .conftest import SettingsIn, payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio

ATTEMPTS = 5  # the client's default retry budget per request
DAY = 24 * 3600.0


def _per_reference(sb: Sandbox) -> Counter[str]:
    return Counter(p["reference"] for p in sb.ledger())


def _once(sb: Sandbox, rows: list[dict[str, str]]) -> None:
    assert _per_reference(sb) == Counter(r["reference"] for r in rows)


async def test_a_second_home_a_day_later_pays_nothing_again(
    sandbox: Sandbox, tmp_path: Path, settings_in: SettingsIn
) -> None:
    """Another folder's journal, after the provider forgot the keys: every row already_paid."""
    rows = [payee(i) for i in range(8)]
    f = write_csv(tmp_path / "p.csv", rows)
    home_a = settings_in(tmp_path / "a")
    first = await pipeline.run_async(f, **run_kwargs(sandbox, home_a, tmp_path / "a"))
    assert first.exit_code == ExitCode.OK
    await sandbox.advance(DAY + 3600)  # the provider's 24-hour key memory is gone

    home_b = settings_in(tmp_path / "b")
    again = await pipeline.run_async(f, **run_kwargs(sandbox, home_b, tmp_path / "b"))
    _once(sandbox, rows)
    assert {r.outcome for r in again.report.rows} == {"already_paid"}
    assert again.exit_code == ExitCode.DUPLICATE_FILE
    paid = {p["reference"]: p["id"] for p in sandbox.ledger()}
    assert {r.reference: r.payout_id for r in again.report.rows} == paid
    assert all("made outside this journal" in r.note or r.note for r in again.report.rows)


async def test_a_corrected_file_in_a_fresh_home_pays_only_its_new_rows(
    sandbox: Sandbox, tmp_path: Path, settings_in: SettingsIn
) -> None:
    """A fresh journal reading a provider with history pays the new rows, not the old."""
    old = [payee(i) for i in range(4)]
    first = await pipeline.run_async(
        write_csv(tmp_path / "a.csv", old),
        **run_kwargs(sandbox, settings_in(tmp_path / "a"), tmp_path),
    )
    assert first.exit_code == ExitCode.OK
    await sandbox.advance(DAY + 60)
    new = [*old, payee(4), payee(5)]
    home_b = settings_in(tmp_path / "b")
    again = await pipeline.run_async(
        write_csv(tmp_path / "b.csv", new), **run_kwargs(sandbox, home_b, tmp_path)
    )
    _once(sandbox, new)
    outcomes = Counter(r.outcome for r in again.report.rows)
    assert outcomes == {"already_paid": 4, "pending": 2}


async def test_a_row_failed_elsewhere_is_held_not_paid_again(
    sandbox: Sandbox, tmp_path: Path, settings_in: SettingsIn
) -> None:
    """A payout another journal made that failed is held for a person, not silently re-sent."""
    rows = [payee(0, amount="100.91")]  # .91: the sandbox fails the payout
    f = write_csv(tmp_path / "p.csv", rows)
    first = await pipeline.run_async(
        f, **run_kwargs(sandbox, settings_in(tmp_path / "a"), tmp_path, wait=True)
    )
    assert [r.outcome for r in first.report.rows] == ["failed"]
    await sandbox.advance(DAY + 60)
    again = await pipeline.run_async(
        f, **run_kwargs(sandbox, settings_in(tmp_path / "b"), tmp_path)
    )
    (row,) = again.report.rows
    assert row.outcome == "skipped" and row.error_code == "failed_elsewhere"
    assert again.exit_code == ExitCode.ROWS_FAILED
    assert len(sandbox.ledger()) == 1


async def test_an_up_to_date_journal_sweeps_the_ledger_for_about_nothing(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A second run of new rows to known payees costs at most 1.05 requests per payout."""
    n = 100
    first = [payee(i) for i in range(n)]
    await pipeline.run_async(
        write_csv(tmp_path / "a.csv", first), **run_kwargs(sandbox, settings, tmp_path)
    )
    second = [payee(i, reference=f"INV-NEXT-{i}") for i in range(n)]
    result = await pipeline.run_async(
        write_csv(tmp_path / "b.csv", second), **run_kwargs(sandbox, settings, tmp_path)
    )
    assert result.exit_code == ExitCode.OK
    with Journal(settings.journal_path) as j:
        calls = j.calls(result.run_id)
    assert len(calls) <= 1.05 * n, Counter((c["method"], c["path"]) for c in calls)
    sweeps = [c for c in calls if c["method"] == "GET" and c["path"] == "/v1/payouts"]
    assert 1 <= len(sweeps) <= 2


@pytest.mark.parametrize("skew_hours", [-2.0, 2.0])
async def test_the_providers_clock_decides_the_key_window(
    sandbox: Sandbox, settings: Settings, tmp_path: Path, skew_hours: float
) -> None:
    """Rows in flight, local clock 2 h behind or ahead of the provider's: no second payout."""
    rows = [payee(i) for i in range(3)]
    f = write_csv(tmp_path / "p.csv", rows)
    sandbox.faults.plan("POST /v1/payouts", ["lost_response"] * ATTEMPTS * len(rows))
    first = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path, concurrency=1))
    assert {r.outcome for r in first.report.rows} == {"unknown"}
    assert len(sandbox.ledger()) == 3
    # The provider is 24.5 h on (its key memory gone) while the local clock says 22.5 h,
    # or 22.5 h on while the local clock says 24.5 h.
    await sandbox.advance((24.5 if skew_hours < 0 else 22.5) * 3600)

    def local() -> datetime:
        return sandbox.clock.now() + timedelta(hours=skew_hours)

    kwargs = run_kwargs(sandbox, settings, tmp_path)
    kwargs["clock"] = local
    again = await pipeline.run_async(f, **kwargs)
    _once(sandbox, rows)
    assert again.run_id == first.run_id and again.exit_code == ExitCode.OK
    assert {r.payout_id for r in again.report.rows} == {p["id"] for p in sandbox.ledger()}


async def test_a_resend_past_the_providers_window_looks_first_even_if_the_local_clock_disagrees(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """With the sweep blind to it, a slow local clock still does not resend a forgotten key."""
    rows = [payee(0)]
    f = write_csv(tmp_path / "p.csv", rows)
    sandbox.faults.plan("POST /v1/payouts", ["lost_response"] * ATTEMPTS)
    await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    with Journal(settings.journal_path) as j, j.transaction() as db:
        db.execute("UPDATE ledger_sweeps SET high_water = '2999-01-01T00:00:00.000000Z'")
        db.execute("DELETE FROM provider_payouts")
    await sandbox.advance(24.5 * 3600)
    kwargs = run_kwargs(sandbox, settings, tmp_path)
    kwargs["clock"] = lambda: sandbox.clock.now() - timedelta(hours=2)
    again = await pipeline.run_async(f, **kwargs)
    _once(sandbox, rows)
    with Journal(settings.journal_path) as j:
        (intent,) = j.db.execute("SELECT settled_by FROM payouts").fetchall()
    assert intent["settled_by"] == "lookup"
    assert again.exit_code == ExitCode.OK


async def _lost_then_forgotten_but_believed_fresh(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> Path:
    """One row whose responses were lost, a provider that forgot its key a day later, and a
    journal made to believe the key is fresh and the sweep saw nothing: a resend would
    create a second payout."""
    f = write_csv(tmp_path / "p.csv", [payee(0)])
    sandbox.faults.plan("POST /v1/payouts", ["lost_response"] * ATTEMPTS)
    await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    with Journal(settings.journal_path) as j, j.transaction() as db:
        db.execute("UPDATE ledger_sweeps SET high_water = '2999-01-01T00:00:00.000000Z'")
        db.execute("DELETE FROM provider_payouts")
    await sandbox.advance(DAY + 60)
    with Journal(settings.journal_path) as j, j.transaction() as db:
        db.execute(
            "UPDATE payouts SET first_sent_provider_at = ?",
            (sandbox.clock.now().isoformat().replace("+00:00", "Z"),),
        )
    return f


async def test_a_resend_answered_as_new_is_checked_and_a_duplicate_cancelled(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A resend created afresh (key forgotten) is looked up; the extra payout is cancelled."""
    f = await _lost_then_forgotten_but_believed_fresh(sandbox, settings, tmp_path)
    again = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    ledger = sandbox.ledger()
    assert len(ledger) == 2
    statuses = sorted(p["status"] for p in ledger)
    assert statuses.count("cancelled") == 1
    (row,) = again.report.rows
    kept = next(p for p in ledger if p["status"] != "cancelled")
    assert row.payout_id == kept["id"]


def test_environment_identity_ignores_how_the_url_is_typed(tmp_path: Path) -> None:
    """Case, default ports, trailing slashes and loopback names do not make a new world."""
    from batchpay.config import resolve_settings
    from batchpay.testing import fake_live_key

    def env_of(url: str, key: str = "ak_test_batchpay_sandbox") -> str:
        return resolve_settings(
            env={"BATCHPAY_API_KEY": key, "BATCHPAY_API_URL": url, "BATCHPAY_HOME": str(tmp_path)}
        ).environment

    local = {env_of(u) for u in ("http://127.0.0.1:8080", "http://localhost:8080",
                                 "http://LOCALHOST:8080/", "http://[::1]:8080")}  # fmt: skip
    assert local == {"sandbox:http://127.0.0.1:8080"}
    assert env_of("http://127.0.0.1:8081") != env_of("http://127.0.0.1:8080")
    live = fake_live_key()
    prod = {env_of(u, live) for u in ("https://api.antonpayments.com",
                                      "https://API.antonpayments.com",
                                      "https://api.antonpayments.com:443/")}  # fmt: skip
    assert prod == {"live:https://api.antonpayments.com"}
    for other_spelling in ("http://127.0.0.1:8080/.", "http://127.0.0.1:8080/v1",
                           "http://127.0.0.1:8080/v1/..", "http://127.0.0.1:8080?x=1",
                           "http://u@127.0.0.1:8080"):  # fmt: skip
        with pytest.raises(ConfigError, match="has a path, query or user part"):
            env_of(other_spelling)
    dev = {
        env_of(u) for u in ("https://api.antonpayments.dev", "https://Api.AntonPayments.dev:443")
    }
    assert dev == {"sandbox:https://api.antonpayments.dev"}


async def test_a_duplicate_that_cannot_be_cancelled_is_a_row_for_a_person(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """If the extra payout a forgotten key made cannot be cancelled, the row says so (exit 1)."""
    f = await _lost_then_forgotten_but_believed_fresh(sandbox, settings, tmp_path)
    sandbox.faults.plan("POST /v1/payouts/{id}/cancel", ["500"] * ATTEMPTS)
    again = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    (row,) = again.report.rows
    assert row.outcome == "duplicate_payout" and "recall" in row.error_message
    assert again.exit_code == ExitCode.ROWS_FAILED
    assert len(sandbox.ledger()) == 2
