"""Preflight: a run the balance cannot cover is refused before anything is created or sent."""

from __future__ import annotations

import json
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest

from batchpay import pipeline
from batchpay.errors import ExitCode, PreflightError
from batchpay.journal import Journal
from batchpay.sandbox import Sandbox
from batchpay.testing import payout_row, write_csv
from tests.e2e.server import sandbox_server
from tests.hostile.spy import clean_env, invoke, journal_runs, no_traceback, spy_on_requests

from .conftest import sandbox_settings

# rows 0 and 3 are paid in EUR (100.00 + 103.21), 1 and 4 in USD, 2 and 5 in GBP
ROWS = [payout_row(i) for i in range(6)]
EUR_TOTAL = Decimal("203.21")


def _options(tmp_path: Path, **kw: object) -> pipeline.RunOptions:
    return pipeline.RunOptions(out_dir=tmp_path / "reports", **kw)  # type: ignore[arg-type]


def _runs(tmp_path: Path) -> int:
    path = tmp_path / ".batchpay" / "journal.db"
    if not path.exists():
        return 0
    with Journal(path) as journal:
        return len(journal.list_runs(100))


@pytest.mark.anyio
async def test_shortfall_refuses_the_run_with_exit_9_and_sends_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """EUR 10.00 cannot cover EUR 203.21: refused, no run created, no payout, only reads:
    the balance, and the ledger look's lists, which leave beside the balance check."""
    sandbox.set_balance("EUR", "10.00")
    f = write_csv(tmp_path / "pay.csv", ROWS)
    with spy_on_requests() as spy, pytest.raises(PreflightError) as caught:
        await pipeline.run_async(
            f,
            settings=sandbox_settings(tmp_path),
            options=_options(tmp_path),
            transport=sandbox.transport(),
        )
    error = caught.value
    assert error.exit_code == ExitCode.PREFLIGHT and int(error.exit_code) == 9
    assert f"EUR needs {EUR_TOTAL} but 10.00 is available" in error.message
    assert "USD" not in error.message and "GBP" not in error.message
    assert "--skip-balance-check" in error.hint
    assert "GET /v1/balances" in spy.lines
    assert set(spy.lines) <= {"GET /v1/balances", "GET /v1/batches", "GET /v1/payouts"}
    assert sandbox.ledger() == []
    assert _runs(tmp_path) == 0
    assert not (tmp_path / "reports").exists()


@pytest.mark.anyio
async def test_a_balance_one_cent_short_is_refused_and_an_exact_one_accepted(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Exact: total minus 0.01 is refused; the total itself passes (fees are not known yet)."""
    f = write_csv(tmp_path / "pay.csv", ROWS)
    sandbox.set_balance("EUR", str(EUR_TOTAL - Decimal("0.01")))
    kwargs = {"settings": sandbox_settings(tmp_path), "transport": sandbox.transport()}
    with pytest.raises(PreflightError):
        await pipeline.run_async(f, options=_options(tmp_path), **kwargs)  # type: ignore[arg-type]
    sandbox.set_balance("EUR", str(EUR_TOTAL))
    result = await pipeline.run_async(f, options=_options(tmp_path), **kwargs)  # type: ignore[arg-type]
    # Preflight counts amounts before fees (batchpay cannot quote fees yet): the provider
    # refuses what its fee leaves uncovered, and the report says so: refused, never lost.
    refused = [r for r in result.report.rows if r.outcome == "rejected"]
    assert all(r.error_code == "insufficient_balance" and r.currency == "EUR" for r in refused)
    assert len(sandbox.ledger()) + len(refused) == len(ROWS)


@pytest.mark.anyio
async def test_skip_balance_check_submits_anyway(sandbox: Sandbox, tmp_path: Path) -> None:
    """--skip-balance-check: no balance is asked for; every row is submitted to the provider."""
    sandbox.set_balance("EUR", "10.00")
    f = write_csv(tmp_path / "pay.csv", ROWS)
    with spy_on_requests() as spy:
        result = await pipeline.run_async(
            f,
            settings=sandbox_settings(tmp_path),
            options=_options(tmp_path, skip_balance_check=True),
            transport=sandbox.transport(),
        )
    assert "GET /v1/balances" not in spy.lines
    assert spy.writes.count("POST /v1/payouts") >= len(ROWS)
    assert _runs(tmp_path) == 1
    # the provider has the last word: what it could not cover is reported, not lost
    outcomes = {r.reference: r.outcome for r in result.report.rows}
    assert set(outcomes) == {r["reference"] for r in ROWS}
    assert result.exit_code in (ExitCode.OK, ExitCode.ROWS_FAILED)


@pytest.mark.anyio
async def test_invalid_rows_skipped_do_not_count_towards_the_total(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """With --skip-invalid, only the rows that will be paid are checked against the balance."""
    rows = [*ROWS, payout_row(6, amount="99999.00", iban="DE00370400440532013000")]
    sandbox.set_balance("EUR", str(EUR_TOTAL + 100))  # covers the fees too
    f = write_csv(tmp_path / "pay.csv", rows)
    result = await pipeline.run_async(
        f,
        settings=sandbox_settings(tmp_path),
        options=_options(tmp_path, skip_invalid=True),
        transport=sandbox.transport(),
    )
    assert result.counts.get("invalid") == 1
    assert len(sandbox.ledger()) == len(ROWS)


@pytest.mark.socket
def test_the_command_says_so_and_exits_9(tmp_path: Path) -> None:
    """`batchpay run` on a sandbox server: exit 9, the shortfall, no run; the flag overrides."""

    f = write_csv(tmp_path / "pay.csv", ROWS)
    with sandbox_server(tmp_path) as server:
        request = urllib.request.Request(
            server.url + "/_sandbox/balances",
            data=json.dumps({"currency": "EUR", "available": "10.00"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).close()
        env = clean_env(
            tmp_path, BATCHPAY_API_KEY="ak_test_batchpay_sandbox", BATCHPAY_API_URL=server.url
        )
        refused = invoke(tmp_path, ["run", str(f)], env)
        assert refused.exit_code == 9, refused.output
        assert "the balance cannot cover this run" in refused.stderr
        assert "EUR needs 203.21 but 10.00 is available" in refused.stderr
        assert "--skip-balance-check" in refused.stderr
        assert refused.requests.writes == [] and no_traceback(refused.output)
        assert journal_runs(tmp_path) == 0 and server.ledger() == []
        forced = invoke(tmp_path, ["run", str(f), "--skip-balance-check"], env)
        assert forced.exit_code in (0, 1), forced.output
        assert "POST /v1/payouts" in forced.requests.writes
        assert journal_runs(tmp_path) == 1
