"""The rules that look at one column: the layout's for each column, then the value formats.

The layout gives each column's requirement (always, or when another column has a value), its
longest value and its allowed values; the format rules check amounts, currency and country
codes, the email, phone, BIC and sort code patterns, and, once per distinct value, IBAN and ABA
check digits and dates of birth.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import partial

import polars as pl

from batchpay import banking, money
from batchpay.layout import ColumnSpec
from batchpay.normalise import CLEAN, CLEAN_CODES
from batchpay.validate import columns, formats, messages
from batchpay.validate.rule import Rule, blank, const

__all__ = ["layout_rules", "value_rules"]


def _in_normal_case(column: str, values: frozenset[str]) -> list[str]:
    """Layout values (case-folded) in the case the column holds after normalisation."""
    if column in columns.UPPER:
        return sorted(v.upper() for v in values)
    return sorted(values)


def layout_rules(spec: ColumnSpec, longest: Mapping[str, int]) -> list[Rule]:
    """The rules the layout gives one column; ``longest`` is each limited column's longest value."""
    name = spec.name
    col = pl.col(name)
    rules: list[Rule] = []
    if spec.required:
        rules.append(
            Rule(
                name,
                "required",
                const("is blank; it is required"),
                ok=~blank(name),
                passes_if_filled=name,
            )
        )
    for other, values in spec.required_when.items():
        other_col = pl.col(other)
        if other not in columns.LOWER and other not in columns.UPPER:
            other_col = other_col.str.to_lowercase()
        condition = other_col.is_in(_in_normal_case(other, values))
        rules.append(
            Rule(
                name,
                f"required_when_{other}",
                partial(messages.required_when_message, other),
                ok=~(condition & blank(name)),
                passes_if_filled=name,
            )
        )
    if spec.max_length is not None and longest.get(name, spec.max_length + 1) > spec.max_length:
        # Only a column some value of which has more bytes than the limit (or whose longest
        # value is not known) can have one over it: characters never outnumber bytes, so a
        # column whose longest value fits in bytes has no row this rule could refuse.
        limit = spec.max_length
        rules.append(
            Rule(
                name,
                "too_long",
                partial(messages.too_long_message, name, limit),
                ok=col.str.len_chars() <= limit,
                passes_if_blank=(name,),
            )
        )
    if spec.values is not None:
        allowed = _in_normal_case(name, spec.values)
        values_col = (
            col if name in columns.LOWER or name in columns.UPPER else col.str.to_lowercase()
        )
        rules.append(
            Rule(
                name,
                "not_allowed",
                partial(messages.not_allowed_message, name, sorted(spec.values)),
                ok=blank(name) | values_col.is_in(allowed),
                passes_if_blank=(name,),
                passes_if_clean=name if name in CLEAN_CODES else None,
            )
        )
    return rules


def value_rules(today: date) -> list[Rule]:
    """The format rules, fixed for every layout; ``today`` bounds dates of birth."""
    rules = [
        Rule(
            "amount",
            "amount",
            messages.amount_message,
            ok=blank("amount")
            | (
                pl.col("__whole").is_not_null()
                & (pl.col("__whole_digits") <= money.MAX_WHOLE_DIGITS)
                & ((pl.col("__whole_digits") > 0) | (pl.col("__decimals") > 0))
                & (pl.col("__decimals") <= pl.col("__scale"))
            ),
            passes_if_blank=("amount",),
        ),
    ]
    for column in ("currency", "source_currency"):
        rules.append(
            Rule(
                column,
                "unknown_currency",
                partial(messages.unknown_code_message, column, messages.CURRENCY_HINT),
                ok=blank(column) | pl.col(column).is_in(sorted(money.CURRENCY_SCALE)),
                passes_if_blank=(column,),
                passes_if_clean=column,
            )
        )
    for column in ("country", "nationality"):
        rules.append(
            Rule(
                column,
                "unknown_country",
                partial(messages.unknown_code_message, column, messages.COUNTRY_HINT),
                ok=blank(column) | pl.col(column).is_in(sorted(banking.COUNTRIES)),
                passes_if_blank=(column,),
                passes_if_clean=column,
            )
        )
    patterns = [
        ("email", "email", const("is not an email address (name@example.com)"), formats.EMAIL_RE),
        ("phone", "phone", messages.phone_message, formats.E164_RE),
        ("bic", "bic", messages.bic_message, formats.BIC_RE),
        ("sort_code", "sort_code", messages.sort_code_message, r"^[0-9]{6}$"),
    ]
    for column, code, explain, pattern in patterns:
        ok = blank(column) | pl.col(column).str.contains(pattern)
        rules.append(
            Rule(
                column,
                code,
                explain,
                ok=ok,
                passes_if_blank=(column,),
                passes_if_clean=column if column in CLEAN else None,
            )
        )
    # the costly checks run once per distinct value
    rules += [
        Rule(
            "iban",
            "iban",
            messages.iban_message,
            value_ok=formats.iban_ok,
            passes_if_blank=("iban",),
        ),
        Rule(
            "routing_number",
            "aba",
            messages.aba_message,
            value_ok=formats.aba_ok,
            passes_if_blank=("routing_number",),
        ),
        Rule(
            "date_of_birth",
            "date",
            partial(messages.date_message, today),
            value_ok=formats.dob_test(today),
            passes_if_blank=("date_of_birth",),
        ),
    ]
    return rules
