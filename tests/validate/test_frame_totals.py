"""Totals on whole columns are exactly the per-row Decimal sums, whatever the cells hold."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from batchpay.checks import frame_totals_by_currency, totals_by_currency

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
