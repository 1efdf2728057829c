"""The XLSX report, opened with openpyxl and read cell by cell (and its XML where it matters)."""

from __future__ import annotations

import re
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from batchpay.report import write_report

from .conftest import MakeReport
from .samples import RAW_ACCOUNT

HEADERS = [
    "Row",
    "Reference",
    "Outcome",
    "Needs attention",
    "Beneficiary ref",
    "Beneficiary name",
    "Amount",
    "Currency",
    "Payout status",
    "Error code",
    "Error message",
    "Note",
    "Related run",
    "Source amount",
    "Source currency",
    "Exchange rate",
    "Fee",
    "Fee currency",
    "Total debited",
    "Debited currency",
    "Account (masked)",
    "Payout ID",
    "Beneficiary ID",
    "Instrument ID",
    "Request ID",
    "Idempotency key",
    "Attempt",
]
RED, GREEN, YELLOW = "FFFFC7CE", "FFC6EFCE", "FFFFEB9C"


def _write(make_report: MakeReport, tmp_path: Path, **kwargs: Any) -> Path:
    return write_report(make_report(**kwargs), tmp_path, "r").xlsx


@pytest.fixture
def xlsx(make_report: MakeReport, tmp_path: Path) -> Path:
    """The sample report's workbook."""
    return _write(make_report, tmp_path)


@pytest.fixture
def rows_sheet(xlsx: Path) -> Any:
    """The "Rows" sheet of the sample workbook."""
    return load_workbook(xlsx)["Rows"]


def _by_header(ws: Any) -> dict[int, dict[str, Any]]:
    """Rows sheet cells keyed by file row number, then by header."""
    header = [c.value for c in ws[1]]
    return {line[0].value: dict(zip(header, line, strict=True)) for line in ws.iter_rows(min_row=2)}


def _exact(cell: Any) -> Decimal:
    """The cell's number as a Decimal, through its shortest repr (exact for these values)."""
    assert cell.data_type == "n" and isinstance(cell.value, int | float), cell.coordinate
    return Decimal(repr(cell.value))


def test_sheets_and_header(rows_sheet: Any, xlsx: Path) -> None:
    """Summary comes first, then Rows with a header of friendly names."""
    assert load_workbook(xlsx).sheetnames == ["Summary", "Rows"]
    assert [c.value for c in rows_sheet[1]] == HEADERS
    assert all(c.font.b for c in rows_sheet[1])


def test_frozen_header_and_auto_filter(rows_sheet: Any) -> None:
    """The header row (and Row, Reference) stay in view; the filter spans the whole table."""
    assert rows_sheet.freeze_panes == "C2"
    assert rows_sheet.auto_filter.ref == "A1:AA10"
    assert rows_sheet.max_row == 10 and rows_sheet.max_column == len(HEADERS)


def test_column_widths_are_set(rows_sheet: Any) -> None:
    """Every column has a width that fits its header word and is not absurdly wide."""
    widths = {c: rows_sheet.column_dimensions[c].width for c in ("A", "B", "H", "K", "V")}
    assert all(8 <= w <= 62 for w in widths.values()), widths
    assert widths["V"] > len("pay_01HX8Z9K0M2N3P4Q5R6S7T8UAB")  # payout ids fit
    assert widths["H"] > len("Currency")


def test_attention_rows_first_and_highlighted(rows_sheet: Any) -> None:
    """Rows needing a person come first with a red outcome; completed green, pending yellow."""
    assert [c.value for c in rows_sheet["A"][1:]] == [3, 5, 6, 8, 9, 10, 2, 4, 7]
    cells = _by_header(rows_sheet)
    for number in (3, 5, 6, 8, 9, 10):
        assert cells[number]["Outcome"].fill.fgColor.rgb == RED
        assert cells[number]["Needs attention"].value == "yes"
    assert cells[2]["Outcome"].fill.fgColor.rgb == GREEN
    assert cells[4]["Outcome"].fill.fgColor.rgb == YELLOW
    assert cells[7]["Outcome"].fill.fill_type is None  # already paid: nothing to do
    assert cells[7]["Needs attention"].value is None


@pytest.mark.parametrize(
    ("row", "column", "expected", "number_format"),
    [
        (2, "Amount", "1234.50", "#,##0.00"),
        (2, "Source amount", "1350.12", "#,##0.00"),
        (2, "Fee", "2.50", "#,##0.00"),
        (2, "Total debited", "1352.62", "#,##0.00"),
        (3, "Amount", "9.95", "#,##0.00"),
        (4, "Amount", "150000", "#,##0"),
        (5, "Amount", "12.345", "#,##0.000"),
        (7, "Amount", "99999999.99", "#,##0.00"),
        (8, "Amount", "0.07", "#,##0.00"),
        (10, "Amount", "5.125", "#,##0.000"),  # unknown currency: digits kept, not rounded
        (2, "Exchange rate", "0.914367", "General"),
    ],
)
def test_amounts_are_numbers_at_the_currency_scale(
    rows_sheet: Any, row: int, column: str, expected: str, number_format: str
) -> None:
    """Amount cells are numbers with the currency's decimals, equal to the exact amount."""
    cell = _by_header(rows_sheet)[row][column]
    assert _exact(cell) == Decimal(expected)
    assert cell.number_format == number_format


def test_xml_holds_the_exact_digits(xlsx: Path) -> None:
    """The saved XML has the amounts' own digits, not a float's (9.95, not 9.9499999…)."""
    with zipfile.ZipFile(xlsx) as z:
        xml = "".join(z.read(n).decode() for n in z.namelist() if n.startswith("xl/worksheets/"))
    values = set(re.findall(r"<v>([^<]*)</v>", xml))
    assert {"9.95", "0.07", "99999999.99", "1234.50", "12.345", "150000", "5.125"} <= values
    assert {"1244.45", "2478.95", "100000000.06"} <= values  # summary totals too
    assert not any(re.search(r"\d{12,}", v) for v in values if "." in v)


def test_missing_amounts_are_empty_cells(rows_sheet: Any) -> None:
    """A row without an amount has an empty Amount cell, not zero."""
    assert _by_header(rows_sheet)[9]["Amount"].value is None


def test_ids_and_references_are_text(rows_sheet: Any) -> None:
    """Ids, keys, references and account masks are text cells with the Text format."""
    cells = _by_header(rows_sheet)[2]
    for column in (
        "Reference",
        "Beneficiary ref",
        "Payout ID",
        "Beneficiary ID",
        "Instrument ID",
        "Request ID",
        "Idempotency key",
        "Account (masked)",
        "Currency",
    ):
        assert cells[column].data_type == "s", column
        assert cells[column].number_format == "@", column
    assert cells["Payout ID"].value == "pay_01HX8Z9K0M2N3P4Q5R6S7T8UAB"
    assert cells["Row"].value == 2 and cells["Attempt"].value == 1


def test_text_that_looks_like_a_formula_is_neutralised(xlsx: Path) -> None:
    """No cell is a formula, and every text cell starting with = + - @ tab or CR is quoted."""
    wb = load_workbook(xlsx)
    cells = _by_header(wb["Rows"])[3]
    assert cells["Reference"].value == "'=cmd|' /C calc'!A0"
    assert cells["Beneficiary ref"].value == "'+EMP-002"
    assert cells["Beneficiary name"].value == "'@Evil Corp"
    assert cells["Error message"].value == "'-The beneficiary's account is closed"
    assert _by_header(wb["Rows"])[8]["Beneficiary name"].value == "'\tTab Name"
    for ws in wb:
        for line in ws.iter_rows():
            for cell in line:
                assert cell.data_type != "f", cell.coordinate
                if isinstance(cell.value, str):
                    assert not cell.value.startswith(("=", "+", "-", "@", "\t", "\r"))
    with zipfile.ZipFile(xlsx) as z:
        assert not any(b"<f>" in z.read(n) for n in z.namelist())


def test_only_masked_accounts(xlsx: Path, rows_sheet: Any) -> None:
    """The raw account number appears nowhere in the workbook; its mask does."""
    with zipfile.ZipFile(xlsx) as z:
        blob = b"".join(z.read(n) for n in z.namelist())
    assert RAW_ACCOUNT.encode() not in blob and b"0532013000" not in blob
    assert _by_header(rows_sheet)[3]["Account (masked)"].value == "****3000"


def _summary(xlsx: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[str]]:
    """(facts by label, totals table by currency then header, all text in column A)."""
    ws = load_workbook(xlsx)["Summary"]
    lines = list(ws.iter_rows())
    column_a = [line[0].value for line in lines if line and line[0].value is not None]
    facts = {line[0].value: line[1] for line in lines if len(line) > 1 and line[0].font.b}
    start = next(i for i, line in enumerate(lines) if line[0].value == "Currency")
    header = [c.value for c in lines[start]]
    table = {}
    for line in lines[start + 1 :]:
        if line[0].value is None:
            break
        table[line[0].value] = dict(zip(header, line, strict=False))
    return facts, table, column_a


def test_summary_names_the_run_and_says_sandbox(xlsx: Path) -> None:
    """The summary has the run id, file, sha256, time and a loud SANDBOX line."""
    facts, _, column_a = _summary(xlsx)
    assert "SANDBOX — no money moved" in column_a[:2]
    assert facts["Run ID"].value == "run_20250314_0926"
    assert facts["File"].value == "payouts-march.csv"
    assert facts["File SHA-256"].value == "9f" * 32
    assert facts["Environment"].value == "sandbox — no money moved"
    assert facts["Generated at (UTC)"].value == datetime(2025, 3, 14, 9, 26, 53)
    assert facts["Generated at (UTC)"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert facts["Rows in file"].value == 9
    assert facts["Rows needing attention"].value == 6
    assert facts["Rows without a readable amount"].value == 1
    assert facts["Control totals check"].value == "passed"


def test_summary_of_a_live_run_has_no_sandbox_banner(
    make_report: MakeReport, tmp_path: Path
) -> None:
    """A live report says live and never claims that no money moved."""
    facts, _, column_a = _summary(_write(make_report, tmp_path, environment="live"))
    assert facts["Environment"].value == "live"
    assert not any("SANDBOX" in str(v) for v in column_a)


def test_summary_totals_table(xlsx: Path) -> None:
    """The control totals table has counts and exact amounts per currency and the checks."""
    _, table, _ = _summary(xlsx)
    assert list(table) == ["EUR", "JPY", "KWD", "USD", "XYZ"]
    eur = table["EUR"]
    assert eur["Requested rows"].value == 3
    assert _exact(eur["Requested amount"]) == Decimal("2478.95")
    assert eur["Requested amount"].number_format == "#,##0.00"
    assert eur["Not submitted rows"].value == 1
    assert _exact(eur["Submitted amount"]) == Decimal("1244.45")
    assert _exact(eur["Completed amount"]) == Decimal("1234.50")
    assert _exact(eur["Failed or returned amount"]) == Decimal("9.95")
    assert eur["Pending rows"].value == 0
    assert _exact(eur["Fees"]) == Decimal(0)
    assert _exact(eur["Total debited"]) == Decimal(0)
    assert _exact(eur["Refunded"]) == Decimal("10.30")
    assert eur["Declared rows"].value == 3
    assert eur["Adds up"].value == "yes" and eur["Matches declared"].value == "yes"
    assert table["JPY"]["Pending amount"].number_format == "#,##0"
    assert table["KWD"]["Requested amount"].number_format == "#,##0.000"
    assert _exact(table["USD"]["Requested amount"]) == Decimal("100000000.06")
    assert table["XYZ"]["Matches declared"].value is None


def test_summary_flags_totals_that_disagree(make_report: MakeReport, tmp_path: Path) -> None:
    """A declared total the file does not hold shows as FAILED, with the reason spelled out."""
    from batchpay.report import Tally

    xlsx = _write(make_report, tmp_path, declared={"EUR": Tally(4, Decimal("1.00"))})
    facts, table, _ = _summary(xlsx)
    assert facts["Control totals check"].value == "FAILED"
    assert facts["Control totals check"].fill.fgColor.rgb == RED
    assert table["EUR"]["Matches declared"].value == "no"
    ws = load_workbook(xlsx)["Summary"]
    texts = [c.value for line in ws.iter_rows() for c in line if isinstance(c.value, str)]
    assert any(t.startswith("EUR: the file declares 4 rows / 1.00") for t in texts)


def test_summary_counts_rows_by_outcome(xlsx: Path) -> None:
    """The outcome table lists every outcome with its count and meaning."""
    ws = load_workbook(xlsx)["Summary"]
    lines = [[c.value for c in line] for line in ws.iter_rows()]
    start = lines.index(["Outcome", "Rows", "Meaning", *[None] * (len(lines[0]) - 3)])
    counts = {line[0]: line[1] for line in lines[start + 1 :]}
    assert counts["invalid"] == 2 and counts["returned"] == 0
    assert len(counts) == 14


def test_empty_report_workbook(make_report: MakeReport, tmp_path: Path) -> None:
    """A report without rows has a header-only Rows sheet and says it has no amounts."""
    wb = load_workbook(_write(make_report, tmp_path, rows=[]))
    ws = wb["Rows"]
    assert [c.value for c in ws[1]] == HEADERS
    assert ws.max_row == 1 and ws.auto_filter.ref == "A1:AA1"
    column_a = [line[0].value for line in wb["Summary"].iter_rows() if line]
    assert "(no amounts)" in column_a


def test_generated_at_is_a_datetime_cell_to_the_second(
    make_report: MakeReport, tmp_path: Path
) -> None:
    """A time with microseconds, in any zone, is written as a UTC date-time without them."""
    report = make_report()
    report.generated_at = datetime(2025, 3, 14, 9, 26, 53, 123456, tzinfo=UTC)
    facts, _, _ = _summary(write_report(report, tmp_path, "r").xlsx)
    assert facts["Generated at (UTC)"].value == datetime(2025, 3, 14, 9, 26, 53)
    assert facts["Generated at (UTC)"].is_date


def test_control_totals_check_says_none_declared(make_report: MakeReport, tmp_path: Path) -> None:
    """With no declared totals the check is "none declared", not a green "passed"."""
    from batchpay.report import ReportRow

    rows = [ReportRow(row=2, outcome="invalid")]
    facts, _, _ = _summary(_write(make_report, tmp_path, rows=rows))
    assert facts["Control totals check"].value == "none declared"
    assert facts["Control totals check"].fill.fgColor.rgb != GREEN


def test_long_messages_wrap_and_the_rows_sheet_prints_one_page_wide(
    make_report: MakeReport, tmp_path: Path
) -> None:
    """A message longer than its column wraps; the sheet prints landscape, fit to width."""
    from batchpay.report import ReportRow

    long = "the IBAN " + "is really quite wrong " * 10
    rows = [ReportRow(row=2, outcome="invalid", error_message=long)]
    ws = load_workbook(_write(make_report, tmp_path, rows=rows))["Rows"]
    header = [c.value for c in ws[1]]
    cell = ws.cell(row=2, column=header.index("Error message") + 1)
    assert cell.value == long.strip() or cell.value == long
    assert cell.alignment.wrap_text
    assert ws.page_setup.orientation == "landscape"
    assert ws.sheet_properties.pageSetUpPr.fitToPage
    assert (ws.page_setup.fitToWidth, ws.page_setup.fitToHeight) == (1, 0)
