"""Valid rows for each payment method, and a one-call read + validate for tests."""

from __future__ import annotations

import csv
import io
from datetime import date

from batchpay.ingest import read_bytes
from batchpay.layout import Layout, load_layout
from batchpay.validate import ValidationResult, validate_frame

TODAY = date(2026, 4, 15)
LAYOUT: Layout = load_layout()

HEADER = [
    "Reference", "Payee ID", "Type", "First Name", "Last Name", "Company Name",
    "Registration Number", "Email", "Phone", "Date of Birth", "Nationality", "Address",
    "Address 2", "City", "State", "Postal Code", "Country", "Amount", "Currency",
    "Source Currency", "Payment Method", "IBAN", "BIC", "Account Number", "Routing Number",
    "Account Type", "Sort Code", "Purpose", "Description",
]  # fmt: skip

IBAN_ROW = {
    "Reference": "INV-2026-1001",
    "Payee ID": "CTR-1",
    "Type": "individual",
    "First Name": "Anna",
    "Last Name": "Müller",
    "Email": "anna@example.de",
    "Phone": "+4915112345678",
    "Date of Birth": "1988-05-12",
    "Nationality": "DE",
    "Address": "Kastanienallee 12",
    "City": "Berlin",
    "Postal Code": "10435",
    "Country": "DE",
    "Amount": "1234.50",
    "Currency": "EUR",
    "Payment Method": "iban",
    "IBAN": "DE89370400440532013000",
    "BIC": "COBADEFFXXX",
}
US_ROW = {
    "Reference": "INV-2026-1002",
    "Payee ID": "SUP-1",
    "Type": "business",
    "Company Name": "Hudson Works LLC",
    "Registration Number": "5123456",
    "Email": "ap@hudson.example.com",
    "Phone": "+12125550178",
    "Address": "350 Fifth Avenue",
    "City": "New York",
    "State": "NY",
    "Postal Code": "10118",
    "Country": "US",
    "Amount": "8765.43",
    "Currency": "USD",
    "Payment Method": "us_bank",
    "Routing Number": "021000021",
    "Account Number": "000123456789",
    "Account Type": "checking",
}
UK_ROW = {
    "Reference": "INV-2026-1003",
    "Payee ID": "CTR-2",
    "Type": "individual",
    "First Name": "Oliver",
    "Last Name": "Smith",
    "Email": "oliver@example.co.uk",
    "Phone": "+447700900123",
    "Date of Birth": "1979-08-19",
    "Nationality": "GB",
    "Address": "221 Baker Street",
    "City": "London",
    "Postal Code": "NW1 6XE",
    "Country": "GB",
    "Amount": "1500.00",
    "Currency": "GBP",
    "Payment Method": "uk_bank",
    "Sort Code": "20-00-00",
    "Account Number": "03185427",
}


def csv_of(rows: list[dict[str, str]], header: list[str] | None = None) -> bytes:
    header = header or HEADER
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(h, "") for h in header])
    return buffer.getvalue().encode()


def check(rows: list[dict[str, str]], header: list[str] | None = None) -> ValidationResult:
    """Read ``rows`` as a CSV file and validate them as of TODAY."""
    ingested = read_bytes(csv_of(rows, header), "payouts.csv", LAYOUT)
    return validate_frame(ingested, LAYOUT, today=TODAY)


def found(result: ValidationResult) -> list[tuple[int, str | None, str]]:
    """(row, column, code) of every issue."""
    return [(i.row, i.column, i.code) for i in result.issues]


def check_frame(rows: list[dict[str, str]]) -> ValidationResult:
    """Validate canonical rows directly (no CSV in between): every canonical column as given."""
    import polars as pl

    from batchpay.ingest import IngestedFile

    columns = {name: [r.get(name, "") for r in rows] for name in LAYOUT.names}
    frame = pl.DataFrame(columns, schema=dict.fromkeys(LAYOUT.names, pl.String)).with_columns(
        pl.int_range(2, len(rows) + 2, dtype=pl.Int64).alias("_row")
    )
    ingested = IngestedFile(
        frame=frame,
        issues=[],
        sha256="0" * 64,
        format="csv",
        filename="rows.csv",
        size_bytes=0,
        header_map={},
        unknown_columns=[],
        blank_rows=0,
    )
    return validate_frame(ingested, LAYOUT, today=TODAY)


def canonical(row: dict[str, str]) -> dict[str, str]:
    """A helpers row (user headers) keyed by canonical column names."""
    return {LAYOUT.match_header(h) or h: v for h, v in row.items()}
