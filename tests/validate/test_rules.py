"""Each validation rule: which row, which column (the user's header), what message."""

from __future__ import annotations

import pytest

from batchpay.validate import ValidationResult

from .helpers import IBAN_ROW, LAYOUT, UK_ROW, US_ROW, check, found

Change = dict[str, str]


def test_valid_rows_of_every_method_pass() -> None:
    """An IBAN individual, a US business and a UK individual are all valid."""
    result = check([IBAN_ROW, US_ROW, UK_ROW])
    assert result.issues == []
    assert result.valid.height == 3
    assert result.invalid_rows == set()


# (valid row, cells changed, column reported, issue code, words in the message)
RULE_CASES: list[tuple[Change, Change, str, str, str]] = [
    # always required
    (IBAN_ROW, {"Reference": ""}, "Reference", "required", "is blank; it is required"),
    (IBAN_ROW, {"Email": ""}, "Email", "required", "required"),
    (IBAN_ROW, {"Amount": ""}, "Amount", "required", "required"),
    # required per beneficiary type
    (IBAN_ROW, {"First Name": ""}, "First Name", "required_when_beneficiary_type",
     "required when beneficiary_type is individual"),
    (IBAN_ROW, {"Date of Birth": ""}, "Date of Birth", "required_when_beneficiary_type",
     "individual"),
    (US_ROW, {"Company Name": ""}, "Company Name", "required_when_beneficiary_type",
     "required when beneficiary_type is business"),
    (US_ROW, {"Registration Number": ""}, "Registration Number",
     "required_when_beneficiary_type", "business"),
    # required per payment method, and per country
    (IBAN_ROW, {"IBAN": ""}, "IBAN", "required_when_payment_method",
     "required when payment_method is iban"),
    (US_ROW, {"Routing Number": ""}, "Routing Number", "required_when_payment_method",
     "us_bank"),
    (UK_ROW, {"Sort Code": ""}, "Sort Code", "required_when_payment_method", "uk_bank"),
    (UK_ROW, {"Account Number": ""}, "Account Number", "required_when_payment_method",
     "uk_bank"),
    (US_ROW, {"State": ""}, "State", "required_when_country", "required when country is US"),
    # lengths and allowed values
    (IBAN_ROW, {"Reference": "R" * 101}, "Reference", "too_long",
     "is 101 characters long; at most 100"),
    (IBAN_ROW, {"Last Name": "é" * 101}, "Last Name", "too_long", "101 characters"),
    (IBAN_ROW, {"Type": "person"}, "Type", "not_allowed", "'person' is not one of"),
    (IBAN_ROW, {"Payment Method": "sepa"}, "Payment Method", "not_allowed",
     "iban, uk_bank, us_bank"),
    (US_ROW, {"Account Type": "current"}, "Account Type", "not_allowed", "checking"),
    # codes
    (IBAN_ROW, {"Currency": "EURO"}, "Currency", "unknown_currency", "'EURO' is not"),
    (IBAN_ROW, {"Source Currency": "XYZ"}, "Source Currency", "unknown_currency", "ISO 4217"),
    (IBAN_ROW, {"Country": "Germany"}, "Country", "unknown_country", "ISO 3166"),
    (IBAN_ROW, {"Nationality": "XX"}, "Nationality", "unknown_country", "'XX'"),
    # amounts
    (IBAN_ROW, {"Amount": "1234,50"}, "Amount", "amount",
     "uses a comma as decimal separator; write 1234.50"),
    (IBAN_ROW, {"Amount": "1,234.50"}, "Amount", "amount", "thousands separators"),
    (IBAN_ROW, {"Amount": "1.234,50"}, "Amount", "amount", "dots as thousands separators"),
    (IBAN_ROW, {"Amount": "-5.00"}, "Amount", "amount", "must not have a sign"),
    (IBAN_ROW, {"Amount": "+5.00"}, "Amount", "amount", "must not have a sign"),
    (IBAN_ROW, {"Amount": "0.00"}, "Amount", "amount", "greater than zero"),
    (IBAN_ROW, {"Amount": "12.345"}, "Amount", "amount", "3 decimal places but EUR allows 2"),
    (IBAN_ROW, {"Amount": "1234567890123"}, "Amount", "amount", "at most 12 digits"),
    (IBAN_ROW, {"Amount": "1.5E+3"}, "Amount", "amount", "scientific notation"),
    (IBAN_ROW, {"Amount": "€100"}, "Amount", "amount", "currency symbol"),
    (IBAN_ROW, {"Amount": "100.", "Currency": "EUR"}, "Amount", "amount", "not a number"),
    # bank details
    (IBAN_ROW, {"IBAN": "DE89370400440532013001"}, "IBAN", "iban", "check digits (mod-97)"),
    (IBAN_ROW, {"IBAN": "DE8937040044053201300"}, "IBAN", "iban", "has 22 characters"),
    (IBAN_ROW, {"IBAN": "US12345678901234567890"}, "IBAN", "iban", "does not use IBANs"),
    (IBAN_ROW, {"IBAN": "not an iban"}, "IBAN", "iban", "not shaped like an IBAN"),
    (IBAN_ROW, {"IBAN": "DE89\u00a03704\u00a00044\u00a00532\u00a01300\u00a000"}, "IBAN",
     "iban", "non-breaking spaces"),
    (IBAN_ROW, {"BIC": "COBADE"}, "BIC", "bic", "8 or 11"),
    (IBAN_ROW, {"BIC": "BNPAFRPP"}, "BIC", "bic_country",
     "BIC from country FR but the IBAN is from DE"),
    (US_ROW, {"Routing Number": "021000012"}, "Routing Number", "aba", "ABA routing checksum"),
    (US_ROW, {"Routing Number": "21000021"}, "Routing Number", "aba", "exactly 9 digits"),
    (US_ROW, {"Account Number": "12a45"}, "Account Number", "account_number", "4 to 17 digits"),
    (UK_ROW, {"Account Number": "3185427"}, "Account Number", "account_number",
     "exactly 8 digits; a leading zero may have been lost"),
    (UK_ROW, {"Sort Code": "20-00"}, "Sort Code", "sort_code", "6 digits"),
    # method against currency and country
    (US_ROW, {"Currency": "EUR"}, "Currency", "us_bank_currency",
     "must be USD for payment_method us_bank (found 'EUR')"),
    (UK_ROW, {"Currency": "EUR"}, "Currency", "uk_bank_currency", "must be GBP"),
    (US_ROW, {"Country": "CA", "State": "ON"}, "Country", "us_bank_country", "must be US"),
    (UK_ROW, {"Country": "IE"}, "Country", "uk_bank_country", "must be GB"),
    # contact details and dates
    (IBAN_ROW, {"Email": "anna@example"}, "Email", "email", "not an email address"),
    (IBAN_ROW, {"Email": "anna example.de"}, "Email", "email", "email"),
    (IBAN_ROW, {"Phone": "015112345678"}, "Phone", "phone", "international format"),
    (IBAN_ROW, {"Phone": "+0151"}, "Phone", "phone", "7 to 15 digits"),
    (IBAN_ROW, {"Date of Birth": "12/05/1988"}, "Date of Birth", "date", "YYYY-MM-DD"),
    (IBAN_ROW, {"Date of Birth": "1988-02-30"}, "Date of Birth", "date", "not a real date"),
    (IBAN_ROW, {"Date of Birth": "2030-01-01"}, "Date of Birth", "date", "not in the past"),
    (IBAN_ROW, {"Date of Birth": "1899-12-31"}, "Date of Birth", "date", "before 1900"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def rule_results() -> ValidationResult:
    """Every rule case as one row of one file: one validation run for all of them."""
    rows = [
        {**base, "Payee ID": f"CASE-{n}", **change}
        for n, (base, change, *_) in enumerate(RULE_CASES)
    ]
    return check(rows)


@pytest.mark.parametrize("case", range(len(RULE_CASES)))
def test_rule(rule_results: ValidationResult, case: int) -> None:
    """One broken cell gives exactly one issue, on its row, under the user's header."""
    _, change, column, code, fragment = RULE_CASES[case]
    row = case + 2
    issues = [i for i in rule_results.issues if i.row == row]
    assert [(i.column, i.code) for i in issues] == [(column, code)], change
    assert fragment in issues[0].message
    assert row in rule_results.invalid_rows
    assert row not in rule_results.valid["_row"].to_list()


ACCEPTABLE: list[tuple[Change, Change]] = [
    (IBAN_ROW, {"IBAN": "de89 3704 0044 0532 0130 00"}),  # printed form, lower case
    (IBAN_ROW, {"Currency": "eur", "Country": "de", "Nationality": "de"}),
    (IBAN_ROW, {"Type": "Individual", "Payment Method": "IBAN"}),
    (IBAN_ROW, {"Amount": "0001234.5"}),
    (IBAN_ROW, {"Amount": "1234.500"}),  # extra zero decimals change nothing
    (IBAN_ROW, {"Phone": "+49 (151) 123-456.78"}),
    (IBAN_ROW, {"BIC": ""}),
    (IBAN_ROW, {"Amount": "100", "Currency": "JPY"}),
    (IBAN_ROW, {"Amount": "100.125", "Currency": "KWD"}),
    (IBAN_ROW, {"Source Currency": "USD"}),
    (IBAN_ROW, {"Company Name": "", "Registration Number": ""}),  # not needed for individuals
    (US_ROW, {"First Name": "", "Date of Birth": ""}),  # not needed for businesses
    (UK_ROW, {"Sort Code": "200000"}),
    (US_ROW, {"Account Number": "1234", "Account Type": ""}),
    (IBAN_ROW, {"Reference": "R" * 100}),
    (IBAN_ROW, {"Last Name": "é" * 100}),
]


def test_acceptable_variations_pass() -> None:
    """Case, spacing and formatting people use every day are accepted."""
    result = check(
        [{**base, "Payee ID": f"OK-{n}", **change} for n, (base, change) in enumerate(ACCEPTABLE)]
    )
    assert result.issues == []
    assert result.valid.height == len(ACCEPTABLE)


def test_one_reference_must_mean_one_beneficiary() -> None:
    """Rows sharing a Payee ID but naming different people are all flagged."""
    rows = [IBAN_ROW, {**IBAN_ROW, "Last Name": "Meyer"}, IBAN_ROW, US_ROW]
    result = check(rows)
    assert found(result) == [
        (2, "Payee ID", "beneficiary_conflict"),
        (3, "Payee ID", "beneficiary_conflict"),
        (4, "Payee ID", "beneficiary_conflict"),
    ]
    assert "'CTR-1' is used on other rows" in result.issues[0].message


def test_same_beneficiary_may_use_several_accounts() -> None:
    """Bank details, address and amounts may differ between a beneficiary's rows."""
    other_account = {**IBAN_ROW, "IBAN": "GB29NWBK60161331926819", "BIC": "", "City": "Bonn"}
    assert check([IBAN_ROW, other_account]).issues == []


def test_every_error_of_every_row_is_collected() -> None:
    """Problems in several cells of several rows are all reported, in row then column order."""
    rows = [
        IBAN_ROW,
        {**IBAN_ROW, "Amount": "12,50", "IBAN": "DE00370400440532013000", "Email": "x"},
        US_ROW,
        {**UK_ROW, "Sort Code": "1", "Currency": "EUR"},
    ]
    result = check(rows)
    assert found(result) == [
        (3, "Email", "email"),
        (3, "Amount", "amount"),
        (3, "IBAN", "iban"),
        (5, "Currency", "uk_bank_currency"),
        (5, "Sort Code", "sort_code"),
    ]
    assert result.invalid_rows == {3, 5}
    assert result.rows_checked == 4
    assert result.valid["_row"].to_list() == [2, 4]


def test_a_shifted_column_fails_every_row() -> None:
    """Values one column to the left are caught on each row, not just the first."""
    shifted = {**IBAN_ROW, "Currency": "iban", "Payment Method": "DE89370400440532013000"}
    result = check([shifted] * 3)
    assert result.invalid_rows == {2, 3, 4}
    assert {code for _, _, code in found(result)} >= {"unknown_currency", "not_allowed"}


def test_header_text_is_the_users_own() -> None:
    """Issues name the column as the file's header spells it."""
    header = ["Beneficiary IBAN" if h == "IBAN" else h for h in check.__globals__["HEADER"]]
    row = {**IBAN_ROW, "Beneficiary IBAN": "DE00370400440532013000"}
    result = check([row], header)
    assert found(result) == [(2, "Beneficiary IBAN", "iban")]


def test_ingest_issues_are_included_and_not_repeated() -> None:
    """An Excel-damaged cell is reported once, by ingest, not again as a validation symptom."""
    result = check([{**US_ROW, "Account Number": "1.23457E+11"}])
    assert found(result) == [(2, "Account Number", "scientific_notation")]


def test_formula_like_cell_makes_the_row_invalid() -> None:
    """A cell starting like a formula keeps its row out of the valid rows."""
    result = check([{**IBAN_ROW, "Description": "=1+1"}, IBAN_ROW])
    assert found(result) == [(2, "Description", "formula_like")]
    assert result.valid["_row"].to_list() == [3]


def test_pandera_switched_off_does_not_skip_validation() -> None:
    """PANDERA_VALIDATION_ENABLED=False (or depth SCHEMA_ONLY) must not let rows through."""
    from pandera.config import ValidationDepth, config_context

    with config_context(validation_enabled=False, validation_depth=ValidationDepth.SCHEMA_ONLY):
        result = check([{**IBAN_ROW, "IBAN": "DE00370400440532013000"}])
    assert found(result) == [(2, "IBAN", "iban")]


def test_messages_do_not_leak_pandera_text() -> None:
    """Messages are plain sentences, not pandera's check names or failure-case dumps."""
    result = check([{**IBAN_ROW, "Amount": "x", "Email": "", "Currency": "?"}])
    for issue in result.issues:
        assert "Check" not in issue.message and "failure" not in issue.message
        assert ":" not in issue.code


def test_length_limits_count_characters_and_a_column_that_fits_has_no_length_rule() -> None:
    """100 two-byte letters fit a 100-character limit (200 bytes); 101 do not. A column whose
    longest value fits in bytes cannot hold one too long: it is given no rule to run."""
    from datetime import date

    from batchpay.validate import schema

    fits = check([{**IBAN_ROW, "Last Name": "é" * 100}])
    assert not [i for i in fits.issues if i.code == "too_long"]
    over = check([{**IBAN_ROW, "Last Name": "é" * 101}])
    assert [(i.row, i.code) for i in over.issues] == [(2, "too_long")]
    rules = schema.all_rules(LAYOUT, date(2026, 1, 1), {"last_name": 40})
    assert "last_name:too_long" not in {r.key for r in rules}
    assert "reference:too_long" in {r.key for r in rules}  # its longest is not known
    unknown = schema.all_rules(LAYOUT, date(2026, 1, 1), {})
    assert {"last_name:too_long", "reference:too_long"} <= {r.key for r in unknown}
