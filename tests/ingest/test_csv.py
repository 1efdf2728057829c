"""Reading CSV payout files: exact strings, row numbers, and one clear InputError per problem."""

from __future__ import annotations

import codecs
import hashlib
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from batchpay.errors import InputError
from batchpay.ingest import read_bytes, read_file
from batchpay.layout import CANONICAL_COLUMNS, Layout, load_layout

from .helpers import HEADER, VALID, csv_bytes

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture(scope="module")
def layout() -> Layout:
    return load_layout()


def with_file(layout: Layout, **options: object) -> Layout:
    return replace(layout, file=replace(layout.file, **options))


def with_limits(layout: Layout, **limits: int) -> Layout:
    return replace(layout, limits=replace(layout.limits, **limits))


def refused(data: bytes, layout: Layout, name: str = "payouts.csv") -> InputError:
    with pytest.raises(InputError) as caught:
        read_bytes(data, name, layout)
    return caught.value


# --- a good file -------------------------------------------------------------------------------


def test_sample_csv_reads_every_row_with_canonical_string_columns(layout: Layout) -> None:
    """The sample file gives 34 rows, every canonical column as String, plus Int64 _row."""
    ingested = read_file(SAMPLES / "payouts.csv", layout)
    assert ingested.rows == 34
    assert ingested.format == "csv"
    assert ingested.frame.columns == [*CANONICAL_COLUMNS, "_row"]
    assert all(ingested.frame.schema[c] == pl.String for c in CANONICAL_COLUMNS)
    assert ingested.frame.schema["_row"] == pl.Int64
    assert ingested.frame["_row"].to_list() == list(range(2, 36))
    assert ingested.issues == []


def test_sha256_is_over_the_exact_bytes(layout: Layout) -> None:
    """The file hash is the SHA-256 of the bytes as given, BOM and all."""
    data = codecs.BOM_UTF8 + csv_bytes()
    assert read_bytes(data, "p.csv", layout).sha256 == hashlib.sha256(data).hexdigest()


def test_header_map_keeps_the_users_header_text(layout: Layout) -> None:
    """Aliases map to canonical names; the user's own header is kept for messages."""
    ingested = read_bytes(csv_bytes(), "p.csv", layout)
    assert ingested.header_map["iban"] == "IBAN"
    assert ingested.header_map["beneficiary_ref"] == "Payee ID"
    assert ingested.header_map["address_line1"] == "Address"
    assert ingested.label("bic") == "bic"  # not in the file: the canonical name


def test_values_are_kept_as_exact_text(layout: Layout) -> None:
    """Leading zeros, trailing zeros and long digit strings survive untouched."""
    row = {**VALID, "Account Number": "000123456789", "Amount": "1234.50", "Postcode": "01067"}
    frame = read_bytes(csv_bytes([row]), "p.csv", layout).frame
    assert frame["account_number"][0] == "000123456789"
    assert frame["amount"][0] == "1234.50"
    assert frame["postal_code"][0] == "01067"


def test_columns_missing_from_the_file_are_blank(layout: Layout) -> None:
    """Optional canonical columns absent from the file exist and hold empty strings."""
    frame = read_bytes(csv_bytes(), "p.csv", layout).frame
    assert frame["routing_number"].to_list() == ["", ""]
    assert frame["purpose"].to_list() == ["", ""]


def test_whitespace_around_values_is_trimmed(layout: Layout) -> None:
    """Spaces, tabs and non-breaking spaces around a value are removed; inner ones stay."""
    row = {**VALID, "City": "  Berlin Mitte\t", "Currency": "\u00a0EUR ", "First Name": "Anna"}
    frame = read_bytes(csv_bytes([row]), "p.csv", layout).frame
    assert frame["city"][0] == "Berlin Mitte"
    assert frame["currency"][0] == "EUR"


def test_blank_rows_are_skipped_but_row_numbers_stay_true(layout: Layout) -> None:
    """Empty lines and rows of empty cells are dropped; later rows keep their file row number."""
    text = csv_bytes().decode()
    lines = text.split("\r\n")
    data = "\r\n".join([lines[0], lines[1], "", ",,,  ,", lines[2], ""]).encode()
    ingested = read_bytes(data, "p.csv", layout)
    assert ingested.frame["_row"].to_list() == [2, 5]
    assert ingested.blank_rows == 2


def test_a_row_blank_once_trimmed_is_blank_though_its_column_is_never_empty(
    layout: Layout,
) -> None:
    """A row whose only cell is spaces, in a column every other row fills, is a blank row."""
    text = csv_bytes().decode()
    lines = text.split("\r\n")
    width = lines[0].count(",")
    data = "\r\n".join([lines[0], lines[1], "   " + "," * width, lines[2], ""]).encode()
    ingested = read_bytes(data, "p.csv", layout)
    assert ingested.frame["_row"].to_list() == [2, 4]
    assert ingested.blank_rows == 1


def test_bom_is_stripped_from_the_first_header(layout: Layout) -> None:
    """A UTF-8 BOM (Excel's "CSV UTF-8") does not become part of the first header."""
    ingested = read_bytes(codecs.BOM_UTF8 + csv_bytes(), "p.csv", layout)
    assert ingested.header_map["reference"] == "Reference"
    assert ingested.rows == 2


def test_declared_legacy_encoding_is_decoded(layout: Layout) -> None:
    """With encoding = "cp1252" in the layout, Windows-1252 text reads correctly."""
    data = csv_bytes(encoding="cp1252")
    ingested = read_bytes(data, "p.csv", with_file(layout, encoding="cp1252"))
    assert ingested.frame["last_name"][0] == "Müller"
    assert ingested.encoding == "cp1252"


def test_declared_utf16_is_decoded(layout: Layout) -> None:
    """A UTF-16 export reads when the layout declares it."""
    data = codecs.BOM_UTF16_LE + csv_bytes().decode().encode("utf-16-le")
    ingested = read_bytes(data, "p.csv", with_file(layout, encoding="utf-16"))
    assert ingested.frame["last_name"][0] == "Müller"


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_declared_delimiter_is_used(layout: Layout, sep: str) -> None:
    """Semicolon, tab and pipe separated files read when the layout says so."""
    row = {**VALID, "Description": "Consulting, January"}
    ingested = read_bytes(csv_bytes([row], sep=sep), "p.txt", with_file(layout, delimiter=sep))
    assert ingested.frame["description"][0] == "Consulting, January"
    assert ingested.delimiter == sep


def test_quoted_values_with_separators_quotes_and_newlines(layout: Layout) -> None:
    """Quoted cells keep separators, doubled quotes and line breaks; rows count records."""
    rows = [
        {**VALID, "Description": 'Logo "v2", final'},
        {**VALID, "Reference": "INV-2", "Address": "Flat 2\nHigh Street 1"},
        {**VALID, "Reference": "INV-3"},
    ]
    frame = read_bytes(csv_bytes(rows), "p.csv", layout).frame
    assert frame["description"][0] == 'Logo "v2", final'
    assert frame["address_line1"][1] == "Flat 2\nHigh Street 1"
    assert frame["_row"].to_list() == [2, 3, 4]


def test_unknown_columns_are_listed_and_dropped(layout: Layout) -> None:
    """Headers the layout does not know are reported, not passed on."""
    header = [*HEADER, "Cost Centre"]
    ingested = read_bytes(
        csv_bytes([{**VALID, "Cost Centre": "4421"}], header=header), "p.csv", layout
    )
    assert ingested.unknown_columns == ["Cost Centre"]
    assert "Cost Centre" not in ingested.frame.columns


def test_data_under_an_empty_header_is_reported_as_unknown(layout: Layout) -> None:
    """A column with values but no header is listed so the user can see it."""
    header = [*HEADER, ""]
    ingested = read_bytes(csv_bytes([{**VALID, "": "stray"}], header=header), "p.csv", layout)
    assert ingested.unknown_columns == ["(column U without a header)"]


# --- cell-level issues ---------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@"])
def test_formula_like_text_is_reported(layout: Layout, prefix: str) -> None:
    """A text cell starting like a formula is a RowIssue naming the row and user's header."""
    row = {**VALID, "Description": f"{prefix}HYPERLINK(1)"}
    issues = read_bytes(csv_bytes([row]), "p.csv", layout).issues
    assert [(i.row, i.column, i.code) for i in issues] == [(2, "Description", "formula_like")]


def test_phone_plus_and_amount_sign_are_not_formulas(layout: Layout) -> None:
    """ "+" starts every E.164 phone number; amounts are checked by validation instead."""
    row = {**VALID, "Phone": "+4915112345678", "Amount": "-5"}
    assert read_bytes(csv_bytes([row]), "p.csv", layout).issues == []


def test_scientific_notation_in_account_column_is_reported(layout: Layout) -> None:
    """1.23457E+11 in a bank-detail column means Excel destroyed the digits."""
    row = {**VALID, "Account Number": "1.23457E+11"}
    issues = read_bytes(csv_bytes([row]), "p.csv", layout).issues
    assert [(i.row, i.column, i.code) for i in issues] == [
        (2, "Account Number", "scientific_notation")
    ]
    assert "1.23457E+11" in issues[0].message


def test_scientific_notation_is_found_trimmed_and_letters_e_are_not_it(layout: Layout) -> None:
    """A digits column is looked at closely for scientific notation only when a cell is in it
    (or is once trimmed): the E of an IBAN (DE, ES, BE) is not, and leaves the column as it is."""
    rows = [
        {**VALID, "Account Number": " 1.2E+15 ", "IBAN": "DE89370400440532013000"},
        {**VALID, "IBAN": "ES9121000418450200051332"},
    ]
    ingested = read_bytes(csv_bytes(rows), "p.csv", layout)
    assert [(i.row, i.column, i.code) for i in ingested.issues] == [
        (2, "Account Number", "scientific_notation")
    ]
    assert "iban" in ingested.already_normal
    assert ingested.frame["account_number"][0] == "1.2E+15"


def test_over_long_cell_is_reported(layout: Layout) -> None:
    """A cell longer than limits.max_cell_chars is an issue for its row."""
    row = {**VALID, "Description": "x" * 50}
    issues = read_bytes(csv_bytes([row]), "p.csv", with_limits(layout, max_cell_chars=40)).issues
    assert [(i.row, i.column, i.code) for i in issues] == [(2, "Description", "too_long")]


# --- files that cannot be read -----------------------------------------------------------------


def test_undeclared_latin1_is_refused_with_offset_and_hint(layout: Layout) -> None:
    """Windows-1252 bytes in a UTF-8 file name the byte, its line and the layout setting."""
    data = csv_bytes(encoding="cp1252")
    error = refused(data, layout)
    assert error.code == "encoding"
    assert error.row == 2
    assert "0xFC" in error.message and "line 2" in error.message
    assert "encoding" in error.hint


def test_utf16_bom_without_declaration_is_refused(layout: Layout) -> None:
    """A UTF-16 file is recognised by its byte order mark and refused with a hint."""
    data = codecs.BOM_UTF16_LE + csv_bytes().decode().encode("utf-16-le")
    error = refused(data, layout)
    assert error.code == "encoding"
    assert "UTF-16" in error.message
    assert 'encoding = "utf-16"' in error.hint


def test_wrong_declared_encoding_is_refused(layout: Layout) -> None:
    """Bytes that are not valid in the declared encoding are refused with their line."""
    data = "Reference,Amount\n\u20ac1,2\n".encode("cp1252") + b"\x81\n"
    error = refused(data, with_file(layout, encoding="cp1252"))
    assert error.code == "encoding" and error.row == 3


def test_unbalanced_quote_names_the_row_where_it_opens(layout: Layout) -> None:
    """A quote that never closes swallows the rest of the file: refuse and name its row."""
    lines = csv_bytes([VALID, VALID, VALID]).decode().split("\r\n")
    lines[2] = lines[2].replace("Berlin", '"Berlin')
    error = refused("\r\n".join(lines).encode(), layout)
    assert error.code == "unbalanced_quote"
    assert error.row == 3


def test_short_row_is_refused_with_its_row_and_field_counts(layout: Layout) -> None:
    """A row with fewer fields than the header would shift columns: refuse it."""
    lines = csv_bytes([VALID, VALID, VALID]).decode().split("\r\n")
    lines[3] = lines[3].rsplit(",", 2)[0]  # drop the last two fields
    error = refused("\r\n".join(lines).encode(), layout)
    assert error.code == "ragged_row"
    assert error.row == 4
    assert f"has {len(HEADER) - 2} fields but the header has {len(HEADER)}" in error.message


def test_long_row_is_refused_with_its_row(layout: Layout) -> None:
    """A row with more fields than the header is refused with its row number."""
    lines = csv_bytes([VALID, VALID]).decode().split("\r\n")
    lines[2] += ",extra"
    error = refused("\r\n".join(lines).encode(), layout)
    assert error.code == "ragged_row"
    assert error.row == 3


def test_short_row_after_a_multiline_cell_has_its_record_number(layout: Layout) -> None:
    """Row numbers count records, not lines, when a quoted cell spans lines."""
    rows = [{**VALID, "Address": "Flat 2\nHigh Street 1"}, VALID, VALID]
    lines = csv_bytes(rows).decode().split("\r\n")
    lines[-2] = lines[-2].rsplit(",", 1)[0]  # the third data row loses a field
    error = refused("\r\n".join(lines).encode(), layout)
    assert error.code == "ragged_row"
    assert error.row == 4


def test_duplicate_header_is_refused(layout: Layout) -> None:
    """Two headers meaning the same column (IBAN and Beneficiary IBAN) cannot both be used."""
    header = [*HEADER, "Beneficiary IBAN"]
    error = refused(csv_bytes(header=header), layout)
    assert error.code == "duplicate_header"
    assert error.row == 1 and error.column == "Beneficiary IBAN"
    assert "'IBAN'" in error.message


def test_missing_required_headers_are_all_named(layout: Layout) -> None:
    """Every always-required column missing from the header is listed at once."""
    header = [h for h in HEADER if h not in ("Amount", "Currency")]
    error = refused(csv_bytes(header=header), layout)
    assert error.code == "missing_columns"
    assert "amount, currency" in error.message


@pytest.mark.parametrize("data", [b"", b"   \r\n\r\n", codecs.BOM_UTF8])
def test_empty_file_is_refused(layout: Layout, data: bytes) -> None:
    """A file with no content at all is refused as empty."""
    assert refused(data, layout).code == "empty"


def test_header_only_is_refused(layout: Layout) -> None:
    """Headers but no payout rows (or only blank rows) is not a payout file."""
    assert refused(csv_bytes([]), layout).code == "no_rows"
    assert refused(csv_bytes([]) + b",,,\r\n\r\n", layout).code == "no_rows"


def test_cr_only_line_endings_are_refused(layout: Layout) -> None:
    """Classic Mac OS line endings (CR alone) would read as one line: refuse with a hint."""
    error = refused(csv_bytes(newline="\r"), layout)
    assert error.code == "line_endings"


def test_nul_bytes_are_refused_as_binary(layout: Layout) -> None:
    """A NUL byte means this is not text; the error names the line."""
    data = csv_bytes().replace(b"Berlin", b"Ber\x00lin", 1)
    error = refused(data, layout)
    assert error.code == "binary"
    assert error.row == 2


@pytest.mark.parametrize(
    ("magic", "what"),
    [(b"\x89PNG\r\n\x1a\n", "PNG"), (b"%PDF-1.7", "PDF"), (b"PK\x03\x04", "xlsx")],
)
def test_binary_file_named_csv_is_refused(layout: Layout, magic: bytes, what: str) -> None:
    """Images, PDFs and workbooks named .csv are recognised and refused."""
    error = refused(magic + b"\x00" * 64, layout)
    assert error.code == "binary"
    assert what in error.message


def test_legacy_xls_is_refused_with_resave_hint(layout: Layout) -> None:
    """An OLE2 (.xls) workbook is refused and the user told to save it as .xlsx."""
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512
    for name in ("payouts.xls", "payouts.xlsx", "payouts.csv"):
        error = refused(data, layout, name)
        assert error.code == "legacy_xls"
        assert ".xlsx" in error.hint


def test_password_protected_workbook_is_refused_as_encrypted(layout: Layout) -> None:
    """An encrypted OOXML file is an OLE2 container holding an EncryptionInfo stream."""
    data = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + b"\x00" * 100
        + "EncryptionInfo".encode("utf-16-le")
        + b"\x00" * 100
    )
    error = refused(data, layout, "payouts.xlsx")
    assert error.code == "encrypted"
    assert "password" in error.message


def test_file_over_the_size_limit_is_refused_before_reading(layout: Layout, tmp_path: Path) -> None:
    """Both read_bytes and read_file refuse files above limits.max_file_bytes."""
    small = with_limits(layout, max_file_bytes=100)
    assert refused(csv_bytes(), small).code == "too_large"
    path = tmp_path / "big.csv"
    path.write_bytes(csv_bytes())
    with pytest.raises(InputError) as caught:
        read_file(path, small)
    assert caught.value.code == "too_large"


def test_too_many_rows_is_refused(layout: Layout) -> None:
    """More data rows than limits.max_rows is refused (blank rows not counted)."""
    data = csv_bytes([VALID] * 3)
    assert refused(data, with_limits(layout, max_rows=2)).code == "too_many_rows"
    assert read_bytes(data + b",,\r\n", "p.csv", with_limits(layout, max_rows=3)).rows == 3


def test_missing_file_is_an_input_error(layout: Layout, tmp_path: Path) -> None:
    """A path that does not exist is reported as not found, not as a traceback."""
    with pytest.raises(InputError) as caught:
        read_file(tmp_path / "nope.csv", layout)
    assert caught.value.code == "not_found"
