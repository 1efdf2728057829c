"""Pricing and triggers as properties: exact decimals, the right scale, the documented sums."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from batchpay.money import currency_scale
from batchpay.sandbox.lifecycle import TRIGGERS, outcome_for, trigger_digits
from batchpay.sandbox.pricing import FEES_USD, RATES_PER_USD, exchange_rate, fee_for, price

currencies = st.sampled_from(sorted(RATES_PER_USD))
methods = st.sampled_from([*sorted(FEES_USD), "mobile_money"])


@st.composite
def amounts(draw: st.DrawFn, currency: str) -> Decimal:
    """A positive amount at ``currency``'s scale."""
    scale = currency_scale(currency)
    minor = draw(st.integers(min_value=100, max_value=10**11))
    return Decimal(minor).scaleb(-scale)


@given(data=st.data(), source=currencies, dest=currencies, method=methods)
def test_fixed_dest_keeps_dest_and_adds_fee(
    data: st.DataObject, source: str, dest: str, method: str
) -> None:
    """fixed_dest keeps the dest amount; total is source + fee; all at the currency scale."""
    dest_amount = data.draw(amounts(dest))
    quote = price(
        source_amount=Decimal(1),
        source_currency=source,
        dest_amount=dest_amount,
        dest_currency=dest,
        method=method,
        fixed_side="fixed_dest",
        fee_bearer="merchant",
    )
    assert quote.dest_amount == dest_amount
    assert quote.total_debited == quote.source_amount + quote.fee
    assert quote.fee == fee_for(method, source) > 0
    for value, currency in ((quote.source_amount, source), (quote.fee, source)):
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int) and -exponent == currency_scale(currency)
    half_unit = Decimal(1).scaleb(-currency_scale(source)) / 2
    rate = exchange_rate(source, dest)
    assert abs(quote.source_amount - dest_amount / rate) <= half_unit


@given(data=st.data(), source=currencies, dest=currencies)
def test_fixed_source_keeps_source(data: st.DataObject, source: str, dest: str) -> None:
    """fixed_source keeps the source amount and prices dest at the table rate."""
    source_amount = data.draw(amounts(source))
    quote = price(
        source_amount=source_amount,
        source_currency=source,
        dest_amount=Decimal(1),
        dest_currency=dest,
        method="swift",
        fixed_side="fixed_source",
        fee_bearer="merchant",
    )
    assert quote.source_amount == source_amount
    half_unit = Decimal(1).scaleb(-currency_scale(dest)) / 2
    assert abs(quote.dest_amount - source_amount * exchange_rate(source, dest)) <= half_unit
    assert (quote.exchange_rate is None) == (source == dest)


@given(data=st.data(), currency=currencies, digits=st.sampled_from(sorted(TRIGGERS)))
def test_trigger_reads_last_two_minor_digits(
    data: st.DataObject, currency: str, digits: int
) -> None:
    """Any amount whose minor units end in a trigger's digits selects that trigger."""
    whole = data.draw(st.integers(min_value=1, max_value=10**9))
    minor = whole * 100 + digits
    amount = Decimal(minor).scaleb(-currency_scale(currency))
    assert trigger_digits(amount, currency) == digits
    assert outcome_for(amount, currency) == TRIGGERS[digits]
