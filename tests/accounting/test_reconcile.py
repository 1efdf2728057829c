"""The report's balance figures equal the sandbox's balance movements, row by row."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from batchpay import pipeline
from batchpay.config import Settings
from batchpay.report import FAILED_OR_RETURNED_OUTCOMES, Report, summary_lines
from batchpay.sandbox import Sandbox
from batchpay.testing import SANDBOX_TEST_KEY, payout_row, run_kwargs, write_csv

pytestmark = pytest.mark.anyio


async def _balances(sb: Sandbox) -> dict[str, tuple[Decimal, Decimal]]:
    """(available, pending) per currency, read through the API's GET /v1/balances."""
    async with httpx.AsyncClient(
        transport=sb.transport(),
        base_url="http://sandbox.test",
        headers={"Authorization": f"Bearer {SANDBOX_TEST_KEY}"},
    ) as client:
        answer = await client.get("/v1/balances")
    answer.raise_for_status()
    return {
        b["currency"]: (Decimal(b["available"]), Decimal(b["pending"]))
        for b in answer.json()["data"]
    }


def _rows() -> list[dict[str, str]]:
    # payout_row(i): i % 3 == 0 EUR IBAN, 1 USD ACH, 2 GBP faster payment. Cents .91 fail,
    # .92 return, .93 fail screening (docs/sandbox.md); the rest complete.
    rows = [payout_row(i) for i in range(9)]
    rows[0]["amount"] = "1250.91"  # EUR failed
    rows[1]["amount"] = "310.92"  # USD returned
    rows[5]["amount"] = "77.93"  # GBP screening_failed
    rows.append(payout_row(9, amount="480.00", source_currency="USD"))  # EUR funded from USD
    rows.append(payout_row(12, amount="99.92", source_currency="USD"))  # EUR from USD, returned
    return rows


def _sum(report: Report, currency: str, outcomes: frozenset[str]) -> Decimal:
    return sum(
        (
            r.total_debited
            for r in report.rows
            if r.total_debited is not None
            and r.debit_currency == currency
            and r.outcome in outcomes
        ),
        Decimal(0),
    )


async def test_report_totals_equal_the_balance_movements(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """After a run with completed, failed, returned and screened-out rows (two of them paid
    in EUR from the USD balance), each balance's available funds fell by exactly the
    report's "debited" and nothing is left pending; the refunded payouts' debits came back."""
    before = await _balances(sandbox)
    f = write_csv(tmp_path / "pay.csv", _rows())
    result = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path, wait=True))
    report = result.report
    outcomes = {r.row: r.outcome for r in report.rows}
    assert outcomes[2] == "failed" and outcomes[3] == "returned"
    assert outcomes[7] == "screening_failed" and outcomes[12] == "returned"
    assert outcomes[11] == "completed"
    after = await _balances(sandbox)

    funding = report.funding
    assert set(funding) == {"EUR", "GBP", "USD"}
    for currency, f_totals in funding.items():
        available_fell = before[currency][0] - after[currency][0]
        assert f_totals.debited == available_fell, currency
        assert after[currency][1] == before[currency][1] == 0  # all final: nothing held
        assert f_totals.in_flight.count == 0
        # each figure is the sum of the rows shown
        assert f_totals.completed.amount == _sum(report, currency, frozenset({"completed"}))
        assert f_totals.refunded.amount == _sum(report, currency, FAILED_OR_RETURNED_OUTCOMES)
        assert f_totals.refunded.amount > 0
        assert report.totals[currency].total_debited == available_fell
    assert funding["USD"].cross_currency == 2  # the two EUR rows paid from USD
    assert funding["USD"].refunded.count == 2  # its own return and the EUR one's

    cross = next(r for r in report.rows if r.row == 11)
    assert cross.currency == "EUR" and cross.debit_currency == "USD"
    assert "funded from the USD balance" in cross.note
    lines = summary_lines(report)
    eur_line = next(line for line in lines if line.startswith("EUR (rows / amount)"))
    assert eur_line.endswith("2 rows funded from the USD balance")
    usd_line = next(line for line in lines if line.startswith("USD balance"))
    assert f"debited {funding['USD'].debited:,f}" in usd_line


async def test_in_flight_debits_are_held_not_refunded(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """Without --wait every payout is in flight: debited equals the balance's pending funds."""
    before = await _balances(sandbox)
    f = write_csv(tmp_path / "pay.csv", _rows())
    result = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    after = await _balances(sandbox)
    for currency, f_totals in result.report.funding.items():
        assert f_totals.in_flight.amount == f_totals.debited == after[currency][1]
        assert before[currency][0] - after[currency][0] == f_totals.debited
        assert f_totals.refunded.count == 0 and f_totals.completed.count == 0
