"""The rules that look at more than one column, or at other rows: a row's fields must agree.

A beneficiary reference means one beneficiary across the file; a UK or US account number has
its country's shape; a BIC and an IBAN name the same country; a UK or US bank payout is in that
country's currency and country.
"""

from __future__ import annotations

from functools import partial

import polars as pl

from batchpay import banking
from batchpay.validate import messages
from batchpay.validate.rule import Rule, blank

__all__ = ["cross_field_rules"]

# What makes a beneficiary who they are: rows sharing a beneficiary_ref must agree on these.
_IDENTITY = (
    "beneficiary_type",
    "first_name",
    "last_name",
    "business_name",
    "date_of_birth",
    "registration_number",
)


def _same_identity(frame: pl.LazyFrame) -> pl.Expr:
    """Rows whose beneficiary_ref is used with only one identity in the whole file."""
    ref = pl.col("beneficiary_ref")
    pairs = frame.select(ref, *_IDENTITY).unique().collect()
    conflicting = pairs.filter(ref.is_duplicated() & (ref != ""))["beneficiary_ref"].unique()
    return ~ref.is_in(conflicting.implode())


def cross_field_rules() -> list[Rule]:
    """The cross-field rules, in the order pandera runs them."""
    method = pl.col("payment_method")
    account = pl.col("account_number")
    digits = account.str.contains(r"^[0-9]+$")
    size = account.str.len_bytes()
    iban_country = pl.col("iban").str.slice(0, 2)
    rules = [
        Rule(
            "beneficiary_ref",
            "beneficiary_conflict",
            messages.identity_message,
            frame_ok=_same_identity,
        ),
        Rule(
            "account_number",
            "account_number",
            messages.account_message,
            ok=blank("account_number")
            | ~method.is_in(["uk_bank", "us_bank"])
            | ((method == "uk_bank") & digits & (size == 8))
            | ((method == "us_bank") & digits & (size >= 4) & (size <= 17)),
            passes_if_blank=("account_number", "payment_method"),
        ),
        Rule(
            "bic",
            "bic_country",
            messages.bic_country_message,
            # only when both look right: otherwise their own rules explain what is wrong
            ok=~pl.col("bic").str.contains(r"^[A-Z]{6}")
            | ~iban_country.is_in(sorted(banking.IBAN_LENGTHS))
            | ~pl.col("iban").str.contains(r"^[A-Z]{2}[0-9]{2}")
            | (pl.col("bic").str.slice(4, 2) == iban_country),
            passes_if_blank=("bic", "iban"),
        ),
    ]
    for pay_method, currency, country in (("us_bank", "USD", "US"), ("uk_bank", "GBP", "GB")):
        rules.append(
            Rule(
                "currency",
                f"{pay_method}_currency",
                partial(messages.method_message, "currency", pay_method, currency),
                ok=(method != pay_method) | blank("currency") | (pl.col("currency") == currency),
                passes_if_blank=("currency", "payment_method"),
            )
        )
        rules.append(
            Rule(
                "country",
                f"{pay_method}_country",
                partial(messages.method_message, "country", pay_method, country),
                ok=(method != pay_method) | blank("country") | (pl.col("country") == country),
                passes_if_blank=("country", "payment_method"),
            )
        )
    return rules
