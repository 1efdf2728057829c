"""The terminal summary the CLI prints."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from batchpay.report import ReportRow, Tally, summary_lines, write_report

from .conftest import MakeReport


def test_sandbox_summary(make_report: MakeReport, tmp_path: Path) -> None:
    """Sandbox first, then the run, outcome counts, totals per currency and the files."""
    report = make_report()
    paths = write_report(report, tmp_path, "r")
    lines = summary_lines(report, paths)
    assert lines[0] == "SANDBOX — no money moved"
    assert lines[1] == "Run run_20250314_0926: payouts-march.csv, 9 rows"
    assert lines[2] == (
        "Outcomes: completed 1, pending 1, failed 1, rejected 1, invalid 2, "
        "duplicate_in_file 1, already_paid 1, unknown 1"
    )
    assert "JPY (rows / amount): requested 1 / 150,000 = pending 1 / 150,000" in lines
    assert (
        "EUR (rows / amount): requested 3 / 2,478.95 = not submitted 1 / 1,234.50"
        " + completed 1 / 1,234.50 + failed or returned 1 / 9.95;"
        " 1 row funded from the USD balance"
    ) in lines
    assert (
        "EUR balance (payouts / amount): debited 0.00;"
        " refunded 1 / 10.30 (failed or returned, fees 0.35 included)"
    ) in lines
    assert (
        "USD balance (payouts / amount): debited 1,352.62 = completed 1 / 1,352.62"
        " (fees 2.50 included); funds 1 row paid in another currency"
    ) in lines
    assert "6 rows need a person: rows 3, 5, 6, 8, 9, 10 (listed first in the report)" in lines
    assert lines[-2] == f"Report: {paths.xlsx}"
    assert str(paths.csv) in lines[-1] and str(paths.json) in lines[-1]


def test_live_summary_never_says_sandbox(make_report: MakeReport) -> None:
    """A live run's summary does not claim that no money moved, and lists no files unasked."""
    lines = summary_lines(make_report(environment="live"))
    assert not any("SANDBOX" in line for line in lines)
    assert not any(line.startswith("Report:") for line in lines)


def test_summary_reports_totals_problems(make_report: MakeReport) -> None:
    """Declared totals the file does not hold are spelled out."""
    lines = summary_lines(make_report(declared={"EUR": Tally(2, Decimal("5.00"))}))
    assert (
        "CONTROL TOTALS PROBLEM: EUR: the file declares 2 rows / 5.00 but has 3 rows / 2478.95"
        in lines
    )


def test_summary_lists_at_most_ten_attention_rows(make_report: MakeReport) -> None:
    """A long list of rows needing a person is cut to ten and a count."""
    rows = [ReportRow(row=n, outcome="invalid") for n in range(2, 30)]
    lines = summary_lines(make_report(rows=rows))
    assert (
        "28 rows need a person: rows 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 and 18 more"
        " (listed first in the report)"
    ) in lines


def test_empty_summary(make_report: MakeReport) -> None:
    """An empty report says so and has no currency lines."""
    lines = summary_lines(make_report(rows=[], environment="live"))
    assert lines == ["Run run_20250314_0926: payouts-march.csv, 0 rows", "Outcomes: no rows"]


def test_one_attention_row_is_singular(make_report: MakeReport) -> None:
    """One row needing a person reads "1 row needs a person: row 4", not "1 rows need"."""
    lines = summary_lines(make_report(rows=[ReportRow(row=4, outcome="invalid")]))
    assert "1 row needs a person: row 4 (listed first in the report)" in lines
