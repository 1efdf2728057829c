"""Totals on whole columns are exactly the per-row Decimal sums, whatever the cells hold."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from batchpay.checks import frame_totals_by_currency, totals_by_currency, valid_totals_by_currency
from tests.validate.helpers import IBAN_ROW, check

# ASCII digits and junk, Unicode digits (Python's \d), a final newline (Python's $), long runs
_AMOUNT = st.one_of(
    st.text("0123456789.,-+ eE\n\u0661\u0e51", max_size=14),
    st.from_regex(r"\A0*[0-9]{1,13}(\.[0-9]{0,14})?\n?\Z"),
    st.decimals(min_value="0", max_value="999999999999.999", places=3).map(str),
)
_CURRENCY = st.sampled_from(["EUR", "eur", "JPY", "KWD", "", "ＥＵＲ", "ß", "usd"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_AMOUNT, _CURRENCY), min_size=1, max_size=30))
def test_frame_totals_equal_the_per_row_sums(cells: list[tuple[str, str]]) -> None:
    """Per currency, the column sums equal Decimal sums of the rows parse_amount accepts."""
    rows = [{"amount": a, "currency": c} for a, c in cells]
    frame = pl.DataFrame(rows, schema={"amount": pl.String, "currency": pl.String})
    assert frame_totals_by_currency(frame) == totals_by_currency(rows)


def test_sums_beyond_a_float_stay_exact() -> None:
    """A million-cent total a float would round is summed exactly."""
    rows = [{"amount": "999999999999.99", "currency": "EUR"}] * 1000 + [
        {"amount": "0.01", "currency": "eur"}
    ]
    frame = pl.DataFrame(rows)
    assert frame_totals_by_currency(frame) == {"EUR": Decimal("999999999999990.01")}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(_AMOUNT, st.from_regex(r"\A[0-9]{1,6}(\.[0-9]{1,4})?\Z")),
            st.sampled_from(["EUR", "eur", "JPY", "KWD", "GBP", "Eur", ""]),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_totals_of_validated_rows_are_the_per_row_sums(cells: list[tuple[str, str]]) -> None:
    """The shortcut for validated rows sums what the general path sums, row for row."""
    rows = [{**IBAN_ROW, "Reference": f"R-{i}", "Amount": a, "Currency": c}
            for i, (a, c) in enumerate(cells)]  # fmt: skip
    valid = check(rows).valid
    expected = totals_by_currency(valid.select("amount", "currency").to_dicts())
    assert valid_totals_by_currency(valid) == expected == frame_totals_by_currency(valid)


def test_totals_of_unvalidated_rows_take_the_general_path() -> None:
    """Handed cells validation would refuse, the shortcut still sums exactly what parses."""
    frame = pl.DataFrame({"amount": ["1.50", "1,50", "٣.00", "2.5"], "currency": ["EUR"] * 4})
    assert valid_totals_by_currency(frame) == frame_totals_by_currency(frame)
