"""The validation result: samples, normalised valid rows, exact totals, counts, refusal."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from batchpay.errors import ValidationFailed
from batchpay.ingest import read_file
from batchpay.validate import validate_frame

from .helpers import IBAN_ROW, LAYOUT, TODAY, UK_ROW, US_ROW, check

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.mark.parametrize("name", ["payouts.csv", "payouts.xlsx"])
def test_samples_validate_clean(name: str) -> None:
    """Both sample files validate with no issue and the same plan figures."""
    result = validate_frame(read_file(SAMPLES / name, LAYOUT), LAYOUT, today=TODAY)
    assert result.issues == []
    assert result.rows_checked == result.valid.height == 34
    assert result.totals_by_currency() == {
        "EUR": Decimal("44388.50"),
        "GBP": Decimal("11631.95"),
        "USD": Decimal("34080.73"),
    }
    assert result.counts_by_beneficiary_type() == {"business": 10, "individual": 24}
    assert result.counts_by_payment_method() == {"iban": 21, "uk_bank": 5, "us_bank": 8}


def test_sample_amounts_avoid_sandbox_trigger_cents() -> None:
    """No sample amount ends in .91-.97, the cents the sandbox uses as outcome triggers."""
    frame = read_file(SAMPLES / "payouts.csv", LAYOUT).frame
    cents = {int(a.split(".")[1]) for a in frame["amount"]}
    assert not cents & set(range(91, 98))


def test_sample_has_cross_currency_and_repeat_beneficiaries() -> None:
    """The sample exercises source_currency and beneficiaries paid on several rows."""
    frame = read_file(SAMPLES / "payouts.csv", LAYOUT).frame
    assert frame.filter(frame["source_currency"] != "")["currency"].to_list() == ["EUR"]
    assert frame["beneficiary_ref"].n_unique() < frame.height


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "invalid.csv",
            {(2, "IBAN", "iban"), (3, "Amount", "amount"), (10, "Routing Number", "aba")},
        ),
        (
            "excel-damaged.xlsx",
            {
                (2, "Amount", "formula"),
                (3, "Amount", "float_artefact"),
                (4, "Date of Birth", "date_serial"),
                (7, "Account Number", "stored_as_number"),
                (9, None, "hidden_row"),
            },
        ),
        (
            "excel-resaved.csv",
            {(2, "Account Number", "account_number"), (5, "Account Number", "scientific_notation")},
        ),
    ],
)
def test_bad_samples_report_their_problems(
    name: str, expected: set[tuple[int, str | None, str]]
) -> None:
    """The bad examples in samples/bad show the problems the README describes."""
    result = validate_frame(read_file(SAMPLES / "bad" / name, LAYOUT), LAYOUT, today=TODAY)
    assert expected <= {(i.row, i.column, i.code) for i in result.issues}


def test_valid_rows_are_normalised() -> None:
    """Codes in normal case, IBAN electronic, sort code and phone digits, amount canonical."""
    rows = [
        {
            **IBAN_ROW,
            "Type": "Individual",
            "Payment Method": "IBAN",
            "Currency": "eur",
            "Country": "de",
            "IBAN": "de89 3704 0044 0532 0130 00",
            "BIC": "cobadeffxxx",
            "Phone": "+49 (151) 1234-5678",
            "Amount": "0001234.5",
        },
        {**UK_ROW, "Sort Code": "20 00 00", "Amount": "1500"},
        {**US_ROW, "Amount": "8765.430"},
        {**IBAN_ROW, "Amount": "5000", "Currency": "JPY", "Reference": "INV-JPY"},
    ]
    valid = check(rows).valid.rows(named=True)
    first = valid[0]
    assert (first["beneficiary_type"], first["payment_method"]) == ("individual", "iban")
    assert (first["currency"], first["country"]) == ("EUR", "DE")
    assert first["iban"] == "DE89370400440532013000"
    assert first["bic"] == "COBADEFFXXX"
    assert first["phone"] == "+4915112345678"
    assert [r["amount"] for r in valid] == ["1234.50", "1500.00", "8765.43", "5000"]
    assert valid[1]["sort_code"] == "200000"
    assert valid[1]["account_number"] == "03185427"


def test_blank_purpose_takes_the_layout_default() -> None:
    """Rows without a purpose get the layout's default; given purposes are kept."""
    valid = check([IBAN_ROW, {**IBAN_ROW, "Purpose": "salary"}]).valid
    assert valid["purpose"].to_list() == ["contractor_payment", "salary"]


def test_valid_frame_has_canonical_columns_and_row_numbers() -> None:
    """The valid frame keeps the data contract: canonical columns then _row."""
    valid = check([IBAN_ROW, {**IBAN_ROW, "Email": "x"}, US_ROW]).valid
    assert valid.columns == [*LAYOUT.names, "_row"]
    assert valid["_row"].to_list() == [2, 4]


def test_totals_are_summed_exactly_in_minor_units() -> None:
    """A thousand payouts of 0.10 total exactly 100.00; each currency keeps its scale."""
    rows = [{**IBAN_ROW, "Amount": "0.10"}] * 1000
    rows += [{**IBAN_ROW, "Amount": "1.005", "Currency": "KWD"}] * 3
    rows += [{**IBAN_ROW, "Amount": "7", "Currency": "JPY"}] * 2
    totals = check(rows).totals_by_currency()
    assert totals == {"EUR": Decimal("100.00"), "JPY": Decimal("14"), "KWD": Decimal("3.015")}
    assert str(totals["EUR"]) == "100.00"


def test_totals_and_counts_cover_valid_rows_only() -> None:
    """Plan figures describe what would be paid: invalid rows are left out."""
    result = check([IBAN_ROW, US_ROW, {**UK_ROW, "Sort Code": "1"}])
    assert result.totals_by_currency() == {"EUR": Decimal("1234.50"), "USD": Decimal("8765.43")}
    assert result.counts_by_payment_method() == {"iban": 1, "us_bank": 1}
    assert result.counts_by_beneficiary_type() == {"business": 1, "individual": 1}


def test_raise_for_issues_carries_every_issue() -> None:
    """ValidationFailed holds all issues and the number of rows checked."""
    result = check([IBAN_ROW, {**IBAN_ROW, "Email": "x", "Amount": "1,5"}])
    with pytest.raises(ValidationFailed) as caught:
        result.raise_for_issues()
    assert caught.value.issues == result.issues
    assert caught.value.rows_checked == 2
    assert len(caught.value.issues) == 2
    check([IBAN_ROW]).raise_for_issues()  # a clean file does not raise
