"""Whether one value is well formed: the patterns, and the check digits and dates per value.

The per-value tests (:func:`iban_ok`, :func:`aba_ok`, :func:`dob_test`) map a column's distinct
values to True where the value passes, blank included; they are the costly checks, run once per
distinct value rather than once per row.
"""

from __future__ import annotations

import string
from datetime import date

import polars as pl

from batchpay import banking
from batchpay.validate.rule import ValueTest, value_expr

__all__ = ["BIC_RE", "DATE_RE", "E164_RE", "EMAIL_RE", "aba_ok", "dob_test", "iban_ok"]

EMAIL_RE = r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$"
E164_RE = r"^\+[1-9][0-9]{6,14}$"
DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_IBAN_RE = r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$"
BIC_RE = r"^[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$"
_OLDEST_BIRTH = date(1900, 1, 1)
# Letters as IBAN digits: A=10 ... Z=35.
_IBAN_LETTERS = {ch: str(i) for i, ch in enumerate(string.ascii_uppercase, start=10)}
_IBAN_DIGITS = 72  # an IBAN has at most 34 characters; a letter becomes two digits
# Each registry country's IBAN layout: the country, two check digits, its BBAN. A value is
# matched against its own country's pattern only (one alternation of every country's costs
# the regex engine some 15 times more).
_IBAN_LAYOUTS = {
    country: f"^{country}[0-9]{{2}}(?:{pattern.removeprefix('^').removesuffix('$')})$"
    for country, pattern in sorted(banking.BBAN_PATTERNS.items())
}


def iban_ok(values: pl.Series) -> pl.Series:
    """Blank, or an IBAN of the registry's length and layout whose ISO 7064 mod-97 check
    digits are right."""
    iban = pl.col("iban")
    shaped = iban.str.contains(_IBAN_RE)
    expected = iban.str.slice(0, 2).replace_strict(
        banking.IBAN_LENGTHS, default=0, return_dtype=pl.Int64
    )
    # Letters become two digits (A=10 ... Z=35); left-padding with zeros keeps the number and
    # gives every IBAN the same 72 ASCII digits, so the bytes form a fixed-size array.
    digits = (
        pl.when(shaped)
        .then(iban.str.slice(4) + iban.str.slice(0, 4))
        .otherwise(pl.lit("0"))
        .str.replace_many(_IBAN_LETTERS)
        .str.zfill(_IBAN_DIGITS)
        .cast(pl.Binary)
        .bin.reinterpret(dtype=pl.Array(pl.UInt8, _IBAN_DIGITS))
    )
    country = iban.str.slice(0, 2)
    laid_out = country.is_in(sorted(_IBAN_LAYOUTS)) & iban.str.contains(
        country.replace_strict(_IBAN_LAYOUTS, default="^$", return_dtype=pl.String)
    )
    frame = values.to_frame("iban").with_columns(
        digits.alias("digits"),
        (shaped & (iban.str.len_bytes() == expected) & laid_out).alias("shaped"),
    )
    # a decimal number mod 97 is the sum of each digit times (10^position mod 97), mod 97
    remainder = (
        pl.sum_horizontal(
            (pl.col("digits").arr.get(i).cast(pl.Int64) - 48) * pow(10, _IBAN_DIGITS - 1 - i, 97)
            for i in range(_IBAN_DIGITS)
        )
        % 97
    )
    return frame.select((iban == "") | (pl.col("shaped") & (remainder == 1))).to_series()


def aba_ok(values: pl.Series) -> pl.Series:
    """Blank, or 9 digits whose 3-7-1 weighted sum is a multiple of 10."""
    routing = pl.col("routing_number")
    number = pl.when(routing.str.contains(r"^[0-9]{9}$")).then(
        routing.str.to_integer(base=10, strict=False)
    )
    frame = values.to_frame("routing_number").with_columns(number.alias("number"))
    digits = [(pl.col("number") // 10 ** (8 - i)) % 10 for i in range(9)]
    weights = (3, 7, 1) * 3
    total = pl.sum_horizontal([d * w for d, w in zip(digits, weights, strict=True)])
    ok = (routing == "") | (pl.col("number").is_not_null() & (total % 10 == 0))
    return frame.select(ok.fill_null(False)).to_series()


def dob_test(today: date) -> ValueTest:
    """Blank, or a real date written YYYY-MM-DD, before ``today`` and not before 1900."""
    text = pl.col("date_of_birth")
    parsed = pl.when(text.str.contains(DATE_RE)).then(text.str.to_date("%Y-%m-%d", strict=False))
    in_range = (parsed < pl.lit(today)) & (parsed >= pl.lit(_OLDEST_BIRTH))
    return value_expr("date_of_birth", (text == "") | in_range)
