"""What each rule says about a failing row, in plain English, from the row's own values.

A message function takes the failing row (canonical column -> prepared value), after any fixed
arguments a rule binds with :func:`functools.partial`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from batchpay import banking, money
from batchpay.validate import formats

__all__ = [
    "COUNTRY_HINT",
    "CURRENCY_HINT",
    "aba_message",
    "account_message",
    "amount_message",
    "bic_country_message",
    "bic_message",
    "date_message",
    "iban_message",
    "identity_message",
    "method_message",
    "not_allowed_message",
    "phone_message",
    "required_when_message",
    "sort_code_message",
    "too_long_message",
    "unknown_code_message",
]

CURRENCY_HINT = (
    "is not a currency batchpay can pay in; use a three-letter ISO 4217 code such as EUR, "
    "USD or GBP"
)
COUNTRY_HINT = "is not a country code; use the two-letter ISO 3166 code such as DE, FR, GB or US"


def _quote(value: Any) -> str:
    text = str(value)
    return f"'{text[:40]}…'" if len(text) > 40 else f"'{text}'"


def required_when_message(other: str, row: Mapping[str, Any]) -> str:
    return f"is blank; it is required when {other} is {row[other]}"


def too_long_message(name: str, limit: int, row: Mapping[str, Any]) -> str:
    return f"is {len(str(row[name]))} characters long; at most {limit} are allowed"


def not_allowed_message(name: str, allowed: list[str], row: Mapping[str, Any]) -> str:
    return f"{_quote(row[name])} is not one of: {', '.join(allowed)}"


def unknown_code_message(name: str, hint: str, row: Mapping[str, Any]) -> str:
    return f"{_quote(row[name])} {hint}"


def method_message(name: str, method: str, expected: str, row: Mapping[str, Any]) -> str:
    return f"must be {expected} for payment_method {method} (found {_quote(row[name])})"


def amount_message(row: Mapping[str, Any]) -> str:
    return money.amount_problem(str(row["amount"]), str(row["currency"])) or "is not an amount"


def iban_message(row: Mapping[str, Any]) -> str:
    iban = str(row["iban"])
    if re.search(r"\s", iban):
        return "contains tabs or non-breaking spaces; type the IBAN with plain spaces or none"
    return banking.iban_problem(iban) or "is not a valid IBAN"


def bic_message(row: Mapping[str, Any]) -> str:
    return banking.bic_problem(str(row["bic"])) or "is not a valid BIC"


def aba_message(row: Mapping[str, Any]) -> str:
    return banking.aba_problem(str(row["routing_number"])) or "is not a valid routing number"


def sort_code_message(row: Mapping[str, Any]) -> str:
    return banking.sort_code_problem(str(row["sort_code"])) or "is not a valid sort code"


def bic_country_message(row: Mapping[str, Any]) -> str:
    bic, iban = str(row["bic"]), str(row["iban"])
    return f"is a BIC from country {bic[4:6]} but the IBAN is from {iban[:2]}; check both"


def identity_message(row: Mapping[str, Any]) -> str:
    return (
        f"{_quote(row['beneficiary_ref'])} is used on other rows with a different type, name, "
        "date of birth or registration number; one beneficiary reference must always mean the "
        "same beneficiary"
    )


def phone_message(row: Mapping[str, Any]) -> str:
    if not str(row["phone"]).startswith("+"):
        return (
            "must be in international format: + then the country code and number "
            "(E.164), e.g. +442079460000"
        )
    return "is not a valid international phone number (+ then 7 to 15 digits, E.164)"


def date_message(today: date, row: Mapping[str, Any]) -> str:
    value = str(row["date_of_birth"])
    try:
        parsed = date.fromisoformat(value) if re.fullmatch(formats.DATE_RE, value) else None
    except ValueError:
        parsed = None
    if parsed is None:
        return f"{_quote(value)} is not a real date written YYYY-MM-DD"
    if parsed >= today:
        return f"{value} is not in the past"
    return f"{value} is before 1900"


def account_message(row: Mapping[str, Any]) -> str:
    value = str(row["account_number"])
    if row["payment_method"] == "uk_bank":
        return banking.uk_account_problem(value) or "is not a UK account number"
    return banking.us_account_problem(value) or "is not a US account number"
