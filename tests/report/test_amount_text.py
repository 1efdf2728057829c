"""The report's amount text: the fast path for amounts at their currency's scale gives the
very text of the general one (quantize to the scale, or every digit when there are more)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from hypothesis import given
from hypothesis import strategies as st

from batchpay.money import fits_scale, format_amount
from batchpay.report.model import _amount_scale, _amount_text

CURRENCIES = ("EUR", "JPY", "KWD", "XXX")


def _general_text(amount: Decimal, currency: str) -> str:
    if fits_scale(amount, currency):
        return format_amount(amount, currency)
    return f"{amount.normalize():f}"


def _outcome(write: Callable[[Decimal, str], str], amount: Decimal, currency: str) -> str:
    """The text, or the error's type (beyond the context's precision both refuse alike)."""
    try:
        return write(amount, currency)
    except InvalidOperation as exc:
        return type(exc).__name__


def _same(amount: Decimal, currency: str) -> bool:
    return _outcome(_amount_text, amount, currency) == _outcome(_general_text, amount, currency)


AMOUNTS = st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**30), max_value=10**30)


@given(AMOUNTS, st.sampled_from(CURRENCIES))
def test_amount_text_is_the_general_text(amount: Decimal, currency: str) -> None:
    assert _same(amount, currency)


def test_amounts_at_scale_and_edges() -> None:
    for text in ("0.00", "-0.00", "1.50", "100.00", "7.000", "0", "5E+2", "12.345",
                 "1234567890123456789012345.67", "123456789012345678901234567.89"):  # fmt: skip
        for currency in CURRENCIES:
            amount = Decimal(text)
            assert _same(amount, currency)
    assert _amount_scale(Decimal("1.50"), "EUR") == 2
    assert _amount_scale(Decimal("1.505"), "EUR") == 3


def _decimals(text: str) -> int:
    point = text.find(".")
    return 0 if point < 0 else len(text) - point - 1


@given(AMOUNTS, st.sampled_from(CURRENCIES))
def test_the_texts_decimals_are_the_cells_scale(amount: Decimal, currency: str) -> None:
    """The Rows sheet takes a money cell's number format from the decimals of its text."""
    try:
        text = _amount_text(amount, currency)
    except InvalidOperation:
        return
    assert _decimals(text) == _amount_scale(amount, currency)


def test_the_texts_decimals_at_the_edges() -> None:
    for text in ("0.00", "-0.00", "1.50", "100.00", "7.000", "0", "5E+2", "12.345", "-3E-7"):
        for currency in CURRENCIES:
            amount = Decimal(text)
            assert _decimals(_amount_text(amount, currency)) == _amount_scale(amount, currency)
