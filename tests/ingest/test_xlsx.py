"""Reading XLSX payout files from the sheet XML: raw stored text, Excel damage reported."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace
from datetime import date
from pathlib import Path

import openpyxl
import pytest

from batchpay.errors import InputError, RowIssue
from batchpay.ingest import read_bytes, read_file
from batchpay.layout import Layout, load_layout

from .helpers import HEADER, VALID, Cell, Sheet, num, payout_sheet, xlsx_bytes

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture(scope="module")
def layout() -> Layout:
    return load_layout()


def read(data: bytes, layout: Layout) -> tuple[dict[str, str], list[RowIssue]]:
    ingested = read_bytes(data, "payouts.xlsx", layout)
    return ingested.frame.row(0, named=True), ingested.issues


def codes(issues: list[RowIssue]) -> list[tuple[int, str | None, str]]:
    return [(i.row, i.column, i.code) for i in issues]


def refused(data: bytes, layout: Layout) -> InputError:
    with pytest.raises(InputError) as caught:
        read_bytes(data, "payouts.xlsx", layout)
    return caught.value


# --- a good workbook ---------------------------------------------------------------------------


def test_sample_xlsx_reads_the_same_rows_as_the_sample_csv(layout: Layout) -> None:
    """The workbook and CSV samples hold the same 34 rows, cell for cell."""
    from_xlsx = read_file(SAMPLES / "payouts.xlsx", layout)
    from_csv = read_file(SAMPLES / "payouts.csv", layout)
    assert from_xlsx.format == "xlsx" and from_xlsx.sheet == "Payouts"
    assert from_xlsx.rows == 34
    assert from_xlsx.issues == []
    # amounts are number cells in the workbook (1875.5); everything else is identical text
    xlsx = from_xlsx.frame.drop("amount")
    assert xlsx.equals(from_csv.frame.drop("amount"))
    assert from_xlsx.frame["amount"][1] == "1875.5"


def test_text_cells_keep_leading_zeros(layout: Layout) -> None:
    """Account numbers and sort codes stored as text keep every digit."""
    row = {
        **VALID,
        "Payment Method": "uk_bank",
        "Account Number": "03185427",
        "Sort Code": "000102",
    }
    values, issues = read(xlsx_bytes([payout_sheet([row])]), layout)
    assert values["account_number"] == "03185427"
    assert values["sort_code"] == "000102"
    assert issues == []


def test_cell_types_are_read_as_stored_text(layout: Layout) -> None:
    """Shared strings, inline strings, formula strings, booleans and numbers give their text."""
    row: dict[str, str | Cell] = {
        **VALID,
        "City": Cell(t="s", v="0"),
        "First Name": Cell(t="inlineStr", inline="Zoë"),
        "Description": Cell(t="b", v="1"),
        "Amount": num("1234.5"),
    }
    values, issues = read(xlsx_bytes([payout_sheet([row])], shared_strings=["Köln"]), layout)
    assert values["city"] == "Köln"
    assert values["first_name"] == "Zoë"
    assert values["description"] == "TRUE"
    assert values["amount"] == "1234.5"
    assert issues == []


def test_escaped_characters_in_strings_are_decoded(layout: Layout) -> None:
    """OOXML's _xHHHH_ escapes (e.g. a carriage return) are turned back into characters."""
    row = {**VALID, "Description": Cell(t="inlineStr", inline="line_x000D_two")}
    values, _ = read(xlsx_bytes([payout_sheet([row])]), layout)
    assert values["description"] == "line\rtwo"


def test_cells_without_references_are_placed_in_order(layout: Layout) -> None:
    """Writers may omit r="A1"; cells then follow one another."""
    header = "".join(f'<c t="inlineStr"><is><t>{h}</t></is></c>' for h in HEADER)
    data = "".join(f'<c t="inlineStr"><is><t>{VALID[h]}</t></is></c>' for h in HEADER)
    sheet = (
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"<sheetData><row>{header}</row><row>{data}</row></sheetData></worksheet>"
    )
    package = xlsx_bytes([Sheet()], extra={"xl/worksheets/sheet1.xml": sheet.encode()})
    values, _ = read(package, layout)
    assert values["iban"] == VALID["IBAN"]
    assert values["_row"] == 2


def test_openpyxl_workbook_with_text_formats_reads_clean(layout: Layout) -> None:
    """A workbook written by openpyxl (shared strings, styles) is read without issues."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(HEADER)
    sheet.append([VALID[h] for h in HEADER])
    buffer = io.BytesIO()
    workbook.save(buffer)
    values, issues = read(buffer.getvalue(), layout)
    assert values["reference"] == "INV-2026-0001"
    assert issues == []


# --- Excel damage, reported never repaired ------------------------------------------------------


def test_formula_cell_is_reported_with_its_formula(layout: Layout) -> None:
    """A formula is not a typed value: report it, keep the cached result as the value."""
    row = {**VALID, "Amount": Cell(f="1000+234.5", v="1234.5")}
    values, issues = read(xlsx_bytes([payout_sheet([row])]), layout)
    assert codes(issues) == [(2, "Amount", "formula")]
    assert "=1000+234.5" in issues[0].message
    assert values["amount"] == "1234.5"


def test_string_formula_result_is_reported(layout: Layout) -> None:
    """t="str" formula results are read as their text and still reported as formulas."""
    row = {**VALID, "Reference": Cell(t="str", f='"INV-"&A1', v="INV-7")}
    values, issues = read(xlsx_bytes([payout_sheet([row])]), layout)
    assert values["reference"] == "INV-7"
    assert codes(issues) == [(2, "Reference", "formula")]


def test_excel_error_cell_is_reported(layout: Layout) -> None:
    """#N/A and friends are reported as Excel errors."""
    row = {**VALID, "IBAN": Cell(t="e", v="#N/A")}
    values, issues = read(xlsx_bytes([payout_sheet([row])]), layout)
    assert values["iban"] == "#N/A"
    assert codes(issues) == [(2, "IBAN", "excel_error")]
    assert "#N/A" in issues[0].message


@pytest.mark.parametrize("stored", ["3185427", "26073150"])
def test_number_in_bank_detail_column_is_reported(layout: Layout, stored: str) -> None:
    """A number cell in a text column may have lost its leading zeros: report, keep the text."""
    row = {**VALID, "Account Number": num(stored)}
    values, issues = read(xlsx_bytes([payout_sheet([row])]), layout)
    assert codes(issues) == [(2, "Account Number", "stored_as_number")]
    assert "leading zeros" in issues[0].message
    assert values["account_number"] == stored


def test_number_in_scientific_notation_is_reported(layout: Layout) -> None:
    """A huge number stored as 1.2345678901234567E+19 has lost digits: say so."""
    row = {**VALID, "IBAN": num("1.2345678901234567E+19")}
    _, issues = read(xlsx_bytes([payout_sheet([row])]), layout)
    assert codes(issues) == [(2, "IBAN", "stored_as_number")]
    assert "scientific notation" in issues[0].message


def test_number_in_reference_column_is_reported(layout: Layout) -> None:
    """References are text too: a numeric reference cell is reported."""
    row = {**VALID, "Reference": num("1001")}
    _, issues = read(xlsx_bytes([payout_sheet([row])]), layout)
    assert codes(issues) == [(2, "Reference", "stored_as_number")]


@pytest.mark.parametrize(
    ("stored", "currency", "intended"),
    [
        ("1234.5600000000001", "EUR", "1234.56"),
        ("12499.999999999998", "EUR", "12500.00"),
        ("0.30000000000000004", "USD", "0.30"),
        ("99.99000000000001", "KWD", "99.990"),
    ],
)
def test_float_artefact_amount_is_reported(
    layout: Layout, stored: str, currency: str, intended: str
) -> None:
    """Binary float noise in an amount is reported with the amount it was meant to be."""
    row = {**VALID, "Amount": num(stored), "Currency": currency}
    values, issues = read(xlsx_bytes([payout_sheet([row])]), layout)
    assert codes(issues) == [(2, "Amount", "float_artefact")]
    assert f"artefact of {intended}" in issues[0].message
    assert values["amount"] == stored  # never silently rounded


@pytest.mark.parametrize("stored", ["1234.567", "1234.56", "1500", "0.1"])
def test_real_amounts_are_not_float_artefacts(layout: Layout, stored: str) -> None:
    """Exact amounts (and real extra decimals, left to validation) are not artefacts."""
    row = {**VALID, "Amount": num(stored)}
    _, issues = read(xlsx_bytes([payout_sheet([row])]), layout)
    assert issues == []


@pytest.mark.parametrize("style", [1, 2])
def test_date_formatted_number_is_reported_as_date_serial(layout: Layout, style: int) -> None:
    """A number with a date format (built-in or custom) is an Excel date serial."""
    row = {**VALID, "Description": num("45292", s=style)}
    _, issues = read(xlsx_bytes([payout_sheet([row])]), layout)
    assert codes(issues) == [(2, "Description", "date_serial")]
    assert "2024-01-01" in issues[0].message


def test_number_in_date_of_birth_is_a_date_serial(layout: Layout) -> None:
    """Even without a date format, a number in the date column is a serial."""
    row = {**VALID, "Date of Birth": num("32275")}
    _, issues = read(xlsx_bytes([payout_sheet([row])]), layout)
    assert codes(issues) == [(2, "Date of Birth", "date_serial")]
    assert "1988-05-12" in issues[0].message


def test_date_serial_message_follows_the_1904_date_system(layout: Layout) -> None:
    """Workbooks from old Mac Excel count days from 1904; the hint shows the right date."""
    row = {**VALID, "Date of Birth": num("30813")}
    _, issues = read(xlsx_bytes([payout_sheet([row])], date1904=True), layout)
    assert "1988-05-12" in issues[0].message


def test_openpyxl_date_cell_is_reported(layout: Layout) -> None:
    """A real Excel date typed into the birth date column is reported, not converted."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(HEADER)
    sheet.append([date(1988, 5, 12) if h == "Date of Birth" else VALID[h] for h in HEADER])
    buffer = io.BytesIO()
    workbook.save(buffer)
    values, issues = read(buffer.getvalue(), layout)
    assert codes(issues) == [(2, "Date of Birth", "date_serial")]
    assert values["date_of_birth"] == "32275"


def test_merged_cells_are_reported_for_each_row(layout: Layout) -> None:
    """Merged cells hide values from every row but the first: report every row they span."""
    sheet = payout_sheet([VALID, VALID, VALID], merges=["T2:T3"])
    issues = read_bytes(xlsx_bytes([sheet]), "p.xlsx", layout).issues
    assert codes(issues) == [(2, "Description", "merged_cells"), (3, "Description", "merged_cells")]


def test_hidden_row_with_data_is_reported(layout: Layout) -> None:
    """A hidden row would be paid without anyone seeing it: report it."""
    sheet = payout_sheet([VALID, VALID], hidden_rows={3})
    issues = read_bytes(xlsx_bytes([sheet]), "p.xlsx", layout).issues
    assert codes(issues) == [(3, None, "hidden_row")]


def test_value_in_a_hidden_column_is_reported(layout: Layout) -> None:
    """A hidden column's values are paid unseen: report each row that has one."""
    sheet = payout_sheet([VALID, {**VALID, "Description": ""}], hidden_columns=["T:T"])
    issues = read_bytes(xlsx_bytes([sheet]), "p.xlsx", layout).issues
    assert codes(issues) == [(2, "Description", "hidden_column")]


def test_value_beyond_the_header_is_reported(layout: Layout) -> None:
    """A cell to the right of the last header suggests a shifted row."""
    sheet = payout_sheet()
    sheet.rows[1] = [*sheet.rows[1], None, "stray"]
    issues = read_bytes(xlsx_bytes([sheet]), "p.xlsx", layout).issues
    assert codes(issues) == [(2, "column V", "no_header")]


def test_blank_rows_are_skipped_with_true_row_numbers(layout: Layout) -> None:
    """Rows of empty cells are skipped; the next row keeps its Excel row number."""
    sheet = payout_sheet([VALID])
    sheet.rows.append(["", " "])
    sheet.rows.append([VALID[h] for h in HEADER])
    ingested = read_bytes(xlsx_bytes([sheet]), "p.xlsx", layout)
    assert ingested.frame["_row"].to_list() == [2, 4]
    assert ingested.blank_rows == 1


# --- sheets --------------------------------------------------------------------------------------


def test_first_visible_sheet_is_read_and_others_listed(layout: Layout) -> None:
    """A hidden first sheet is skipped; the sheets not read are named in the result."""
    hidden = Sheet(name="Old", rows=[["nothing"]], state="hidden")
    extra = Sheet(name="Notes", rows=[["see email"]])
    ingested = read_bytes(xlsx_bytes([hidden, payout_sheet(), extra]), "p.xlsx", layout)
    assert ingested.sheet == "Payouts"
    assert ingested.other_sheets == ["Old", "Notes"]
    assert ingested.rows == 1


def test_sheet_named_in_the_layout_is_read(layout: Layout) -> None:
    """file.sheet picks the sheet by name (case-insensitively)."""
    named = replace(layout, file=replace(layout.file, sheet="march"))
    package = xlsx_bytes([Sheet(name="Summary", rows=[["x"]]), payout_sheet(name="March")])
    assert read_bytes(package, "p.xlsx", named).sheet == "March"


def test_named_hidden_sheet_is_refused(layout: Layout) -> None:
    """Paying from a sheet nobody can see is refused."""
    named = replace(layout, file=replace(layout.file, sheet="Payouts"))
    error = refused(xlsx_bytes([Sheet(name="Front"), payout_sheet(state="veryHidden")]), named)
    assert error.code == "sheet_hidden"


def test_missing_named_sheet_is_refused_listing_sheets(layout: Layout) -> None:
    """A sheet name the workbook lacks is refused, listing the sheets it has."""
    named = replace(layout, file=replace(layout.file, sheet="April"))
    error = refused(xlsx_bytes([payout_sheet(name="March")]), named)
    assert error.code == "sheet_not_found"
    assert "March" in error.message


def test_workbook_with_only_hidden_sheets_is_refused(layout: Layout) -> None:
    """No visible worksheet: nothing to read."""
    error = refused(xlsx_bytes([payout_sheet(state="hidden")]), layout)
    assert error.code == "no_visible_sheet"


def test_header_must_be_on_row_one(layout: Layout) -> None:
    """Blank rows above the headers are refused: row numbers would be ambiguous."""
    sheet = payout_sheet(first_row=3)
    assert refused(xlsx_bytes([sheet]), layout).code == "no_header"


def test_empty_sheet_is_refused(layout: Layout) -> None:
    """A sheet with no cells is empty."""
    assert refused(xlsx_bytes([Sheet()]), layout).code == "empty"


def test_header_only_sheet_is_refused(layout: Layout) -> None:
    """A header row and no payout rows is refused."""
    assert refused(xlsx_bytes([payout_sheet([])]), layout).code == "no_rows"


def test_too_many_rows_stops_reading(layout: Layout) -> None:
    """limits.max_rows is enforced while streaming the sheet."""
    small = replace(layout, limits=replace(layout.limits, max_rows=2))
    assert refused(xlsx_bytes([payout_sheet([VALID] * 3)]), small).code == "too_many_rows"


# --- hostile or broken packages ------------------------------------------------------------


def test_not_a_zip_named_xlsx_is_refused(layout: Layout) -> None:
    """Text saved with an .xlsx name is refused with a hint."""
    assert refused(b"Reference,Amount\n1,2\n", layout).code == "not_xlsx"


def test_truncated_zip_is_refused_as_corrupt(layout: Layout) -> None:
    """A workbook cut short (interrupted upload) is reported as damaged."""
    data = xlsx_bytes([payout_sheet()])
    assert refused(data[: len(data) // 2], layout).code == "corrupt_xlsx"


def test_package_without_workbook_is_refused(layout: Layout) -> None:
    """A zip that is not an Office package is refused as corrupt."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    assert refused(buffer.getvalue(), layout).code == "corrupt_xlsx"


def test_zip_bomb_is_refused_from_declared_sizes(layout: Layout) -> None:
    """A member expanding past max_xlsx_uncompressed_bytes is refused before extraction."""
    bomb = b"0" * (3 * 1024 * 1024)
    package = xlsx_bytes([payout_sheet()], extra={"xl/media/pad.bin": bomb})
    small = replace(
        layout, limits=replace(layout.limits, max_xlsx_uncompressed_bytes=2 * 1024 * 1024)
    )
    assert refused(package, small).code == "zip_bomb"
    error = refused(package, layout)  # within the size limit, but compressed ~1000 times
    assert error.code == "zip_bomb"
    assert "compressed" in error.message


def test_lying_declared_size_is_caught_while_reading(layout: Layout) -> None:
    """A member that inflates past its declared size is refused, never read to the end."""
    data = bytearray(xlsx_bytes([payout_sheet([VALID] * 50)]))
    name = b"xl/worksheets/sheet1.xml"
    # declare 100 bytes uncompressed in both the local header and the central directory
    for signature, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = 0
        while (at := data.find(signature, at)) >= 0:
            if data[at + name_at : at + name_at + len(name)] == name:
                data[at + size_at : at + size_at + 4] = (100).to_bytes(4, "little")
            at += 4
    error = refused(bytes(data), layout)
    assert error.code in {"corrupt_xlsx", "zip_bomb"}


@pytest.mark.parametrize(
    "cell",
    [
        '<c r="A2" t="s"><v>-1</v></c>',  # no such shared string
        '<c r="A2" t="s"><v>7</v></c>',
        '<c r="ZZZZ2"><v>1</v></c>',  # beyond Excel's last column
    ],
)
def test_impossible_cells_are_refused(layout: Layout, cell: str) -> None:
    """References to missing shared strings or columns mean the package is damaged."""
    sheet = payout_sheet()
    body = sheet.xml().replace('<row r="2">', f'<row r="2">{cell}', 1)
    package = xlsx_bytes(
        [sheet], shared_strings=["x"], extra={"xl/worksheets/sheet1.xml": body.encode()}
    )
    assert refused(package, layout).code == "corrupt_xlsx"


def test_rows_out_of_order_are_refused(layout: Layout) -> None:
    """Row numbers must increase, or the row numbers we report would be wrong."""
    sheet = payout_sheet([VALID, VALID])
    body = sheet.xml().replace('<row r="3">', '<row r="2">', 1)
    package = xlsx_bytes([sheet], extra={"xl/worksheets/sheet1.xml": body.encode()})
    assert refused(package, layout).code == "corrupt_xlsx"


def test_xml_entities_are_refused(layout: Layout) -> None:
    """A DTD (billion laughs, external entities) in the sheet XML is refused, not expanded."""
    evil = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&lol;</t></is></c></row>'
        "</sheetData></worksheet>"
    )
    package = xlsx_bytes([Sheet()], extra={"xl/worksheets/sheet1.xml": evil.encode()})
    assert refused(package, layout).code == "corrupt_xlsx"
