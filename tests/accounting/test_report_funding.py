"""The XLSX summary and the JSON carry what each balance gave, as the rows add it up."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from openpyxl import load_workbook

from batchpay.report import Report, ReportRow, write_report
from batchpay.report.model import _exact_sum

GENERATED_AT = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)


def _report() -> Report:
    def row(
        n: int, outcome: str, debit: str, fee: str, cur: str = "EUR", src: str = ""
    ) -> ReportRow:
        return ReportRow(
            row=n, outcome=outcome, amount=Decimal("100.00"), currency=cur,
            source_currency=src or cur, fee=Decimal(fee), total_debited=Decimal(debit),
            total_debited_currency=src or cur,
        )  # fmt: skip

    return Report(
        run_id="run_f",
        file_name="f.csv",
        file_sha256="00" * 32,
        environment="sandbox",
        api_url="http://sandbox.local",
        generated_at=GENERATED_AT,
        rows=[
            row(2, "completed", "100.46", "0.46"),
            row(3, "pending", "100.46", "0.46"),
            row(4, "failed", "100.46", "0.46"),
            row(5, "returned", "109.12", "0.25", "EUR", "USD"),
            row(6, "invalid", "0", "0"),
        ],
    )


def test_the_workbook_shows_each_balance(tmp_path: Path) -> None:
    """ "What each balance gave": debited = completed + in flight, refunded apart, per balance."""
    report = _report()
    paths = write_report(report, tmp_path, "r")
    ws = load_workbook(paths.xlsx)["Summary"]
    rows = [[c.value for c in r] for r in ws.iter_rows()]
    start = next(
        i for i, r in enumerate(rows) if r[0] == "What each balance gave (payouts of this run)"
    )
    header = rows[start + 1]
    lines = {r[0]: dict(zip(header, r, strict=False)) for r in rows[start + 2 : start + 4]}
    eur, usd = lines["EUR"], lines["USD"]
    assert Decimal(str(eur["Debited (completed + in flight)"])) == Decimal("200.92")
    assert (eur["Completed payouts"], eur["In flight payouts"]) == (1, 1)
    assert Decimal(str(eur["Refunded"])) == Decimal("100.46")
    assert Decimal(str(eur["Fees (in debited)"])) == Decimal("0.92")
    assert Decimal(str(usd["Refunded"])) == Decimal("109.12")
    assert usd["Rows in another currency"] == 1

    data = json.loads(paths.json.read_text(encoding="utf-8"))
    funding = data["totals"]["by_funding_currency"]
    assert funding["EUR"]["debited"] == "200.92"
    assert funding["EUR"]["refunded"] == {"count": 1, "amount": "100.46"}
    assert funding["USD"]["cross_currency_rows"] == 1
    debits = [r.total_debited for r in report.rows if r.outcome in ("completed", "pending")]
    assert Decimal(funding["EUR"]["debited"]) == _exact_sum(d for d in debits if d is not None)
