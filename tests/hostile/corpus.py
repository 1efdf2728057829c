# ruff: noqa: E501
# (the corpus is a table, one bad file per line: its lines are as wide as it needs)
"""The hostile-file corpus: one entry per bad payout file, with the refusal it must produce.

Every file is built at test time (big ones in a temporary directory, never committed) from a
small, valid three-row payout file (:func:`batchpay.testing.payout_row`: row 2 is an individual
paid by IBAN in EUR, row 3 a business paid by US bank account in USD, row 4 an individual paid by
UK bank account in GBP) with one thing broken. :data:`CASES` is the table: the file, the exit code
``batchpay run`` must end with, the error code (``InputError.code`` for an unreadable file, the
``RowIssue.code`` for a refused row), a substring of the message the user sees, and the row and
column the message points at when one applies.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl

from batchpay.testing import HEADERS, payout_row
from tests.ingest.helpers import Cell, Sheet, num, xlsx_bytes

MIB = 1024 * 1024

Build = Callable[[Path], None]


def base_rows(**changes: Mapping[str, str]) -> list[dict[str, str]]:
    """The three valid rows; ``changes`` maps ``"row3"`` (the file's row number) to cells."""
    rows = [payout_row(i) for i in range(3)]
    for key, cells in changes.items():
        rows[int(key.removeprefix("row")) - 2].update(cells)
    return rows


def csv_text(
    rows: list[dict[str, str]] | None = None,
    *,
    header: list[str] | None = None,
    sep: str = ",",
) -> str:
    """The rows as CSV text (CR LF line ends, minimal quoting)."""
    header = header or HEADERS
    rows = base_rows() if rows is None else rows
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([[row.get(h, "") for h in header] for row in rows])
    return out.getvalue()


def write(data: bytes | str) -> Build:
    """A builder writing ``data`` (text as UTF-8) as the file."""
    raw = data.encode("utf-8") if isinstance(data, str) else data

    def build(path: Path) -> None:
        path.write_bytes(raw)

    return build


def csv_with(**changes: Mapping[str, str]) -> Build:
    """A UTF-8 CSV of the valid rows with some cells changed (``row3={"amount": "-5"}``)."""
    return write(csv_text(base_rows(**changes)))


def lines_replaced(old: str, new: str, *, count: int = 1) -> Build:
    """The valid CSV with a piece of text replaced (for damage a CSV writer would not make)."""
    text = csv_text()
    assert old in text, old
    return write(text.replace(old, new, count))


def sparse(size: int) -> Build:
    """A file of ``size`` bytes that takes no time to write (its size is checked first)."""

    def build(path: Path) -> None:
        with path.open("wb") as fh:
            fh.write(csv_text().encode())
            fh.truncate(size)

    return build


# --- XLSX --------------------------------------------------------------------------------------


def payout_rows_as_cells(
    rows: list[dict[str, str]] | None = None,
    cells: Mapping[tuple[int, str], Cell] | None = None,
) -> list[list[str | Cell | None]]:
    """Header + rows as inline-string cells; ``cells`` puts raw cells at (row, header)."""
    rows = base_rows() if rows is None else rows
    cells = cells or {}
    out: list[list[str | Cell | None]] = [list(HEADERS)]
    for number, row in enumerate(rows, start=2):
        out.append([cells.get((number, h), row.get(h, "")) for h in HEADERS])
    return out


def xlsx(*sheets: Sheet, **kwargs: object) -> Build:
    """A hand-built workbook (exact cell types, damage Excel itself writes)."""
    return write(xlsx_bytes(list(sheets), **kwargs))  # type: ignore[arg-type]


def payout_sheet(
    rows: list[dict[str, str]] | None = None,
    cells: Mapping[tuple[int, str], Cell] | None = None,
    **kwargs: object,
) -> Sheet:
    """The valid rows as a worksheet, with raw cells where given."""
    return Sheet(rows=payout_rows_as_cells(rows, cells), **kwargs)  # type: ignore[arg-type]


def openpyxl_book(edit: Callable[[openpyxl.Workbook], None]) -> Build:
    """A workbook written by openpyxl (a real spreadsheet writer): valid rows, then ``edit``."""

    def build(path: Path) -> None:
        book = openpyxl.Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.title = "Payouts"
        sheet.append(HEADERS)
        for row in base_rows():
            sheet.append([row[h] for h in HEADERS])
        edit(book)
        book.save(path)

    return build


def _merge_amounts(book: openpyxl.Workbook) -> None:
    sheet = book["Payouts"]
    col = openpyxl.utils.get_column_letter(HEADERS.index("amount") + 1)
    sheet.merge_cells(f"{col}3:{col}4")


def _hide_payouts_behind_summary(book: openpyxl.Workbook) -> None:
    book["Payouts"].sheet_state = "hidden"
    summary = book.create_sheet("Summary", 0)
    summary.append(["Total", "12345.67"])
    book.active = 0


def _second_payout_sheet(book: openpyxl.Workbook) -> None:
    march = book.create_sheet("March")
    march.append(HEADERS)
    for i in range(3, 5):
        row = payout_row(i)
        march.append([row[h] for h in HEADERS])


def encrypted_workbook(path: Path) -> None:
    """What Excel writes for a password-protected workbook: an OLE2 file with EncryptionInfo."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    streams = (
        "EncryptionInfo".encode("utf-16-le") + b"\x00" * 50 + "EncryptedPackage".encode("utf-16-le")
    )
    path.write_bytes(header + streams + bytes(range(256)) * 8)


def legacy_xls(path: Path) -> None:
    """A BIFF8 .xls workbook: an OLE2 compound file with a Workbook stream."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    path.write_bytes(header + "Workbook".encode("utf-16-le") + b"\x00" * 1000)


def zip_bomb(path: Path) -> None:
    """A workbook whose sheet inflates from a few KiB to 40 MiB of blanks."""
    inner = io.BytesIO()
    sheet = payout_sheet()
    body = sheet.xml().replace("<sheetData>", "<sheetData>" + " " * (40 * MIB), 1)
    package = xlsx_bytes([sheet])
    source = zipfile.ZipFile(io.BytesIO(package))
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for info in source.infolist():
            payload = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                payload = body.encode()
            target.writestr(info.filename, payload)
    path.write_bytes(inner.getvalue())


def padded_workbook(path: Path) -> None:
    """An honest workbook that expands to 3 MiB (over a 2 MiB layout limit)."""
    package = xlsx_bytes([payout_sheet()], extra={"xl/media/image1.bin": _noise(3 * MIB)})
    path.write_bytes(package)


def _noise(size: int) -> bytes:
    # incompressible, so only the uncompressed-size limit (not the ratio) refuses it
    out = bytearray()
    state = 0x2545F491
    while len(out) < size:
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        out += state.to_bytes(8, "little")
    return bytes(out[:size])


def billion_laughs(path: Path) -> None:
    """A sheet declaring nested XML entities (the billion laughs attack)."""
    evil = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&lol3;</t></is></c></row>'
        "</sheetData></worksheet>"
    )
    package = xlsx_bytes([payout_sheet()], extra={"xl/worksheets/sheet1.xml": evil.encode()})
    path.write_bytes(package)


def truncated_workbook(path: Path) -> None:
    """A workbook cut off halfway (an interrupted download or copy)."""
    package = xlsx_bytes([payout_sheet()])
    path.write_bytes(package[: len(package) // 2])


def xlsx_renamed_csv(path: Path) -> None:
    """A real workbook saved under a .csv name."""
    path.write_bytes(xlsx_bytes([payout_sheet()]))


# --- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad file and the refusal it must produce."""

    name: str  # the file name, its extension decides CSV or XLSX
    build: Build
    exit_code: int  # 3 (the file cannot be read) or 4 (rows are invalid)
    code: str  # InputError.code (exit 3) or the RowIssue.code of the refused cell (exit 4)
    message: str  # a substring of what the user is told
    row: int | None = None  # the row the message points at
    column: str | None = None  # the user's own header text
    limits: Mapping[str, int] = field(default_factory=dict)  # layout limits for this case

    @property
    def format(self) -> str:
        """``csv`` or ``xlsx``, as the user would call the file."""
        return "xlsx" if self.name.endswith((".xlsx", ".xls")) else "csv"

    def __str__(self) -> str:
        return self.name


A = "amount"
_IBAN_BAD = "DE89370400440532013001"  # one digit changed: fails mod-97
_ROUTING_SHORT = "21000021"  # 021000021 with its leading zero stripped
_ROUTING_PADDED = "210000210"  # ... and "fixed" by padding on the wrong side
_FORMULA_CELL = Cell(f="SUM(R2:R2)*1.1", v="112.2")
_FORMULA_TEXT = Cell(t="inlineStr", inline="=cmd|' /C calc'!A0")


def _with_header(header: list[str]) -> Build:
    return write(csv_text(header=header))


def _xlsx_with(**cells: Cell) -> Build:
    """A workbook with raw cells at ``row3_amount``-style places."""
    placed = {}
    for key, cell in cells.items():
        row, column = key.split("_", 1)
        placed[(int(row.removeprefix("row")), column)] = cell
    return xlsx(payout_sheet(cells=placed))


def _xlsx_rows(**changes: Mapping[str, str]) -> Build:
    return xlsx(payout_sheet(base_rows(**changes)))


# One builder per bad file, named as the table below names it.
bad_utf8 = write(csv_text().encode().replace(b"1 Example Street", b"1 Example Stra\xdfe", 1))
utf16_le_bom = write(codecs.BOM_UTF16_LE + csv_text().encode("utf-16-le"))
utf16_be_bom = write(codecs.BOM_UTF16_BE + csv_text().encode("utf-16-be"))
utf16_no_bom = write(csv_text().encode("utf-16-le"))
utf32_bom = write(codecs.BOM_UTF32_LE + csv_text().encode("utf-32-le"))
latin1 = write(csv_text(base_rows(row2={"last_name": "Müller"})).encode("latin-1"))
bom_midfile = write(csv_text() + "\ufeff" + csv_text())  # two exports concatenated
zero_width_ref = write(csv_text([*base_rows(), payout_row(0, reference="INV-2026-1000\u200b")]))
semicolons = write(csv_text(base_rows(row2={A: "1250,00"}), sep=";"))
tabs = write(csv_text(sep="\t"))
open_quote = lines_replaced("Springfield", '"Springfield')
long_row = write(csv_text().replace("Springfield", "Spring,field", 2))
short_row = lines_replaced(",contractor_payment,NY\r\n", ",contractor_payment\r\n")
dup_alias = _with_header([*HEADERS, "payout amount"])
dup_same = _with_header([*HEADERS, "reference"])
no_amount = _with_header([h for h in HEADERS if h != A])
typo_header = _with_header([("beneficary iban" if h == "iban" else h) for h in HEADERS])
empty = write(b"")
whitespace = write(b"\xef\xbb\xbf \r\n\r\n  \r\n")
header_only = write(csv_text(rows=[]))
blank_rows = write(csv_text(rows=[]) + ",,,,\r\n\r\n" + "," * 26 + "\r\n")
nul_byte = write(csv_text().replace("Example Street", "Example\x00Street", 1))
cr_only = write(csv_text().replace("\r\n", "\r"))
huge_cell = csv_with(row3={"address_line1": "x" * MIB})
formula_eq = csv_with(row2={"first_name": '=HYPERLINK("http://x")'})
formula_plus = csv_with(row3={"business_name": "+cmd|'/c calc'!A0"})
formula_minus = csv_with(row4={"address_line1": "-2+3+cmd|' /C calc'!A0"})
formula_at = csv_with(row2={"reference": "@SUM(1+1)*cmd|' /C calc'!A0"})
e_account = csv_with(row3={"account_number": "1.23457E+11"})
routing_short = csv_with(row3={"routing_number": _ROUTING_SHORT})
routing_padded = csv_with(row3={"routing_number": _ROUTING_PADDED})
uk_short = csv_with(row4={"account_number": "1926821"})
float_noise = csv_with(row2={A: "102.00000000000001"})
comma_dec = csv_with(row2={A: "1234,50"})
thousands = csv_with(row3={A: "1,234.50"})
negative = csv_with(row2={A: "-5.00"})
zero = csv_with(row3={A: "0.00"})
digits_13 = csv_with(row4={A: "1234567890123.00"})
symbol = csv_with(row2={A: "€102.00"})
currency = csv_with(row2={"currency": "EURO"})
country = csv_with(row2={"country": "Germany"})
iban_bad = csv_with(row2={"iban": _IBAN_BAD})
aba_bad = csv_with(row3={"routing_number": "021000022"})
png = write(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
pdf = write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(200))
over_512 = sparse(513 * MIB)
over_1 = sparse(2 * MIB)
six_rows = write(csv_text([payout_row(i) for i in range(6)]))
csv_text_file = write(csv_text())
x_empty = xlsx(Sheet(rows=[]))
x_header_only = xlsx(Sheet(rows=[list(HEADERS)]))
x_header_row3 = xlsx(Sheet(rows=payout_rows_as_cells(), first_row=3))
x_all_hidden = xlsx(payout_sheet(state="hidden"))
x_hidden_payouts = openpyxl_book(_hide_payouts_behind_summary)
x_two_payout_sheets = openpyxl_book(_second_payout_sheet)
x_merged = openpyxl_book(_merge_amounts)
x_formula = _xlsx_with(row3_amount=_FORMULA_CELL)
x_formula_text = _xlsx_with(row2_city=_FORMULA_TEXT)
x_e_account = _xlsx_with(row3_account_number=num("1.23457E+11"))
x_routing_number = _xlsx_with(row3_routing_number=num(_ROUTING_SHORT))
x_float_noise = _xlsx_with(row2_amount=num("102.00000000000001"))
x_dob_serial = _xlsx_with(row2_date_of_birth=num("31149"))
x_ref_error = _xlsx_with(row4_sort_code=Cell(t="e", v="#REF!"))
x_hidden_row = xlsx(payout_sheet(hidden_rows={3}))
x_comma_dec = _xlsx_rows(row4={A: "1234,50"})
x_country = _xlsx_rows(row3={"country": "USA"})
x_iban_bad = _xlsx_rows(row2={"iban": _IBAN_BAD})
x_six_rows = xlsx(payout_sheet([payout_row(i) for i in range(6)]))
ROWS_5 = {"max_rows": 5}
FILE_1MIB = {"max_file_bytes": MIB}
XLSX_2MIB = {"max_xlsx_uncompressed_bytes": 2 * MIB}

# The corpus: the file, how it is built, the exit code of `batchpay run`, the error code,
# a substring of the message, the row and the column (the user's header text) it points at,
# and the layout limits the case runs with (exit 3: the file is unreadable; 4: rows are invalid).
CASES: list[Case] = [
    #    file                            build                exit  code                            message                                      row   column           limits
    Case("invalid-utf8.csv",             bad_utf8,            3,    "encoding",                     "is not UTF-8 text",                         3,    None),
    Case("utf16-le-bom.csv",             utf16_le_bom,        3,    "encoding",                     "is UTF-16 text",                            1,    None),
    Case("utf16-be-bom.csv",             utf16_be_bom,        3,    "encoding",                     "is UTF-16 text",                            1,    None),
    Case("utf16-no-bom.csv",             utf16_no_bom,        3,    "encoding",                     "like UTF-16LE text",                        1,    None),
    Case("utf32-bom.csv",                utf32_bom,           3,    "encoding",                     "is UTF-32 text",                            1,    None),
    Case("latin1-undeclared.csv",        latin1,              3,    "encoding",                     "Windows-1252 / Latin-1",                    2,    None),
    Case("utf8-bom-midfile.csv",         bom_midfile,         4,    "invisible_character",          "U+FEFF BYTE ORDER MARK",                    5,    "reference"),
    Case("zero-width-reference.csv",     zero_width_ref,      4,    "invisible_character",          "U+200B",                                    5,    "reference"),
    Case("semicolon.csv",                semicolons,          3,    "delimiter",                    "separated by semicolons",                   1,    None),
    Case("tab-separated.csv",            tabs,                3,    "delimiter",                    "separated by tabs",                         1,    None),
    Case("unbalanced-quote.csv",         open_quote,          3,    "unbalanced_quote",             "never closed",                              2,    None),
    Case("ragged-long-row.csv",          long_row,            3,    "ragged_row",                   "row 2 has 28 fields but the header has 27", 2,    None),
    Case("ragged-short-row.csv",         short_row,           3,    "ragged_row",                   "row 3 has 26 fields",                       3,    None),
    Case("duplicate-header-alias.csv",   dup_alias,           3,    "duplicate_header",             "'amount' and 'payout amount' both mean",    1,    "payout amount"),
    Case("duplicate-header-same.csv",    dup_same,            3,    "duplicate_header",             "'reference' and 'reference' both mean",     1,    "reference"),
    Case("missing-header.csv",           no_amount,           3,    "missing_columns",              "missing required column(s): amount",        1,    "amount"),
    Case("unknown-header.csv",           typo_header,         4,    "required_when_payment_method", "not recognised: 'beneficary iban'",         2,    "iban"),
    Case("empty.csv",                    empty,               3,    "empty",                        "empty.csv is empty",                        None, None),
    Case("only-whitespace.csv",          whitespace,          3,    "empty",                        "the file is empty",                         None, None),
    Case("header-only.csv",              header_only,         3,    "no_rows",                      "a header row but no payout rows",           2,    None),
    Case("blank-rows-only.csv",          blank_rows,          3,    "no_rows",                      "a header row but no payout rows",           2,    None),
    Case("nul-byte.csv",                 nul_byte,            3,    "binary",                       "NUL byte",                                  2,    None),
    Case("cr-line-endings.csv",          cr_only,             3,    "line_endings",                 "end with CR only",                          1,    None),
    Case("one-megabyte-cell.csv",        huge_cell,           4,    "too_long",                     "is 1048576 characters long",                3,    "address_line1"),
    Case("formula-equals.csv",           formula_eq,          4,    "formula_like",                 "starts with '='",                           2,    "first_name"),
    Case("formula-plus.csv",             formula_plus,        4,    "formula_like",                 "starts with '+'",                           3,    "business_name"),
    Case("formula-minus.csv",            formula_minus,       4,    "formula_like",                 "starts with '-'",                           4,    "address_line1"),
    Case("formula-at.csv",               formula_at,          4,    "formula_like",                 "starts with '@'",                           2,    "reference"),
    Case("e-notation-account.csv",       e_account,           4,    "scientific_notation",          "in scientific notation",                    3,    "account_number"),
    Case("stripped-zero-routing.csv",    routing_short,       4,    "aba",                          "must be exactly 9 digits",                  3,    "routing_number"),
    Case("stripped-zero-padded.csv",     routing_padded,      4,    "aba",                          "fails the ABA routing checksum",            3,    "routing_number"),
    Case("stripped-zero-uk-account.csv", uk_short,            4,    "account_number",               "leading zero may have been lost",           4,    "account_number"),
    Case("float-noise-amount.csv",       float_noise,         4,    "amount",                       "14 decimal places",                         2,    A),
    Case("comma-decimal-amount.csv",     comma_dec,           4,    "amount",                       "comma as decimal separator",                2,    A),
    Case("thousands-amount.csv",         thousands,           4,    "amount",                       "thousands separators",                      3,    A),
    Case("negative-amount.csv",          negative,            4,    "amount",                       "must not have a sign",                      2,    A),
    Case("zero-amount.csv",              zero,                4,    "amount",                       "must be greater than zero",                 3,    A),
    Case("thirteen-digit-amount.csv",    digits_13,           4,    "amount",                       "at most 12 digits",                         4,    A),
    Case("currency-symbol-amount.csv",   symbol,              4,    "amount",                       "currency symbol",                           2,    A),
    Case("bad-currency.csv",             currency,            4,    "unknown_currency",             "'EURO' is not a currency",                  2,    "currency"),
    Case("bad-country.csv",              country,             4,    "unknown_country",              "'GERMANY' is not a country",                2,    "country"),
    Case("iban-check-digits.csv",        iban_bad,            4,    "iban",                         "IBAN check digits (mod-97)",                2,    "iban"),
    Case("aba-check-digits.csv",         aba_bad,             4,    "aba",                          "ABA routing checksum",                      3,    "routing_number"),
    Case("png-named.csv",                png,                 3,    "binary",                       "is a PNG image, not a CSV",                 None, None),
    Case("pdf-named.csv",                pdf,                 3,    "binary",                       "is a PDF document",                         None, None),
    Case("workbook-named.csv",           xlsx_renamed_csv,    3,    "binary",                       "Excel workbook (.xlsx)",                    None, None),
    Case("over-size-limit.csv",          over_512,            3,    "too_large",                    "the limit is 512 MiB",                      None, None),
    Case("over-custom-size-limit.csv",   over_1,              3,    "too_large",                    "the limit is 1 MiB",                        None, None,            FILE_1MIB),
    Case("too-many-rows.csv",            six_rows,            3,    "too_many_rows",                "more than 5 data rows",                     None, None,            ROWS_5),
    Case("legacy.xls",                   legacy_xls,          3,    "legacy_xls",                   "legacy Excel .xls workbook",                None, None),
    Case("legacy-renamed.xlsx",          legacy_xls,          3,    "legacy_xls",                   "legacy Excel .xls workbook",                None, None),
    Case("password.xlsx",                encrypted_workbook,  3,    "encrypted",                    "password-protected",                        None, None),
    Case("csv-named.xlsx",               csv_text_file,       3,    "not_xlsx",                     "is not an Excel workbook",                  None, None),
    Case("truncated.xlsx",               truncated_workbook,  3,    "corrupt_xlsx",                 "damaged",                                   None, None),
    Case("zip-bomb.xlsx",                zip_bomb,            3,    "zip_bomb",                     "compressed",                                None, None),
    Case("over-uncompressed-limit.xlsx", padded_workbook,     3,    "zip_bomb",                     "the limit is 2 MiB",                        None, None,            XLSX_2MIB),
    Case("billion-laughs.xlsx",          billion_laughs,      3,    "corrupt_xlsx",                 "declares entities",                         None, None),
    Case("empty-sheet.xlsx",             x_empty,             3,    "empty",                        "the sheet is empty",                        None, None),
    Case("header-only.xlsx",             x_header_only,       3,    "no_rows",                      "no payout rows",                            2,    None),
    Case("header-not-first-row.xlsx",    x_header_row3,       3,    "no_header",                    "rows 1 to 2 are blank",                     1,    None),
    Case("only-hidden-sheets.xlsx",      x_all_hidden,        3,    "no_visible_sheet",             "no visible worksheet",                      None, None),
    Case("hidden-payout-sheet.xlsx",     x_hidden_payouts,    3,    "missing_columns",              "in sheet 'Summary'",                        1,    "reference"),
    Case("several-sheets.xlsx",          x_two_payout_sheets, 3,    "several_sheets",               "'Payouts' and 'March'",                     None, None),
    Case("merged-cells.xlsx",            x_merged,            4,    "merged_cells",                 "merged cells P3:P4",                        3,    A),
    Case("formula-cell.xlsx",            x_formula,           4,    "formula",                      "a formula (=SUM(R2:R2)*1.1",                3,    A),
    Case("formula-text.xlsx",            x_formula_text,      4,    "formula_like",                 "starts with '='",                           2,    "city"),
    Case("e-notation-account.xlsx",      x_e_account,         4,    "stored_as_number",             "scientific notation",                       3,    "account_number"),
    Case("number-routing.xlsx",          x_routing_number,    4,    "stored_as_number",             "dropped leading zeros",                     3,    "routing_number"),
    Case("float-noise-amount.xlsx",      x_float_noise,       4,    "float_artefact",               "artefact of 102.00",                        2,    A),
    Case("date-serial-dob.xlsx",         x_dob_serial,        4,    "date_serial",                  "Excel date serial",                         2,    "date_of_birth"),
    Case("error-cell.xlsx",              x_ref_error,         4,    "excel_error",                  "the Excel error #REF!",                     4,    "sort_code"),
    Case("hidden-row.xlsx",              x_hidden_row,        4,    "hidden_row",                   "hidden in Excel",                           3,    None),
    Case("comma-decimal-amount.xlsx",    x_comma_dec,         4,    "amount",                       "comma as decimal separator",                4,    A),
    Case("bad-country.xlsx",             x_country,           4,    "unknown_country",              "'USA' is not a country",                    3,    "country"),
    Case("iban-check-digits.xlsx",       x_iban_bad,          4,    "iban",                         "IBAN check digits (mod-97)",                2,    "iban"),
    Case("too-many-rows.xlsx",           x_six_rows,          3,    "too_many_rows",                "more than 5 data rows",                     None, None,            ROWS_5),
]  # fmt: skip
