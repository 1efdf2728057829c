"""Deterministic fees and exchange rates (documented in docs/sandbox.md)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from batchpay.money import quantize, quantize_up

# Units of each currency per 1 USD. Fixed: the same request always prices the same.
RATES_PER_USD: dict[str, Decimal] = {
    code: Decimal(rate)
    for code, rate in {
        "USD": "1",
        "EUR": "0.92",
        "GBP": "0.79",
        "CAD": "1.36",
        "AUD": "1.52",
        "NZD": "1.64",
        "CHF": "0.88",
        "SEK": "10.50",
        "NOK": "10.60",
        "DKK": "6.86",
        "PLN": "4.00",
        "CZK": "23.00",
        "HUF": "360",
        "RON": "4.58",
        "BGN": "1.80",
        "ISK": "138",
        "JPY": "150",
        "CNY": "7.20",
        "HKD": "7.80",
        "SGD": "1.34",
        "INR": "83.00",
        "MXN": "17.00",
        "BRL": "5.00",
        "ZAR": "18.50",
        "TRY": "32.00",
        "AED": "3.6725",
        "ILS": "3.70",
        "KWD": "0.307",
        "BHD": "0.376",
    }.items()
}

# Flat fee per payout method, in USD; charged in the source currency at the table rate.
FEES_USD: dict[str, Decimal] = {
    "ach": Decimal("0.25"),
    "sepa": Decimal("0.50"),
    "faster_payment": Decimal("0.50"),
    "bank_transfer": Decimal("1.00"),
    "wire": Decimal("15.00"),
    "swift": Decimal("25.00"),
}
DEFAULT_FEE_USD = Decimal("1.00")

_RATE_PLACES = Decimal("0.000001")


class PricingError(ValueError):
    """The payout cannot be priced (no rate for a currency, or the fee eats the amount)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Quote:
    """The priced payout: both amounts, the rate, the fee and what leaves the balance."""

    source_amount: Decimal
    source_currency: str
    dest_amount: Decimal
    dest_currency: str
    exchange_rate: Decimal | None
    fee: Decimal
    total_debited: Decimal


def exchange_rate(source_currency: str, dest_currency: str) -> Decimal:
    """Source-to-dest rate from the fixed table, to 6 decimal places."""
    for field, code in (("source_currency", source_currency), ("dest_currency", dest_currency)):
        if code not in RATES_PER_USD:
            raise PricingError(field, f"the sandbox has no exchange rate for {code}")
    if source_currency == dest_currency:
        return Decimal(1)
    rate = RATES_PER_USD[dest_currency] / RATES_PER_USD[source_currency]
    return rate.quantize(_RATE_PLACES, rounding=ROUND_HALF_EVEN)


def fee_for(method: str, source_currency: str) -> Decimal:
    """The flat fee for ``method``, in ``source_currency``, rounded half-up to its scale."""
    usd = FEES_USD.get(method, DEFAULT_FEE_USD)
    per_usd = RATES_PER_USD.get(source_currency)
    if per_usd is None:
        raise PricingError("source_currency", f"the sandbox has no fee table for {source_currency}")
    return quantize_up(usd * per_usd, source_currency)


def price(
    *,
    source_amount: Decimal,
    source_currency: str,
    dest_amount: Decimal,
    dest_currency: str,
    method: str,
    fixed_side: str,
    fee_bearer: str,
) -> Quote:
    """Price a payout: recompute the non-fixed amount, then apply the fee for its bearer."""
    rate = exchange_rate(source_currency, dest_currency)
    fee = fee_for(method, source_currency)
    if fixed_side == "fixed_source":
        source = quantize(source_amount, source_currency)
        dest = quantize_up(source * rate, dest_currency)
    else:
        dest = quantize(dest_amount, dest_currency)
        source = quantize_up(dest / rate, source_currency)
    if fee_bearer == "beneficiary":
        dest = dest - quantize_up(fee * rate, dest_currency)
        total = source
        if dest <= 0:
            raise PricingError("dest_amount", "the amount does not cover the fee")
    else:
        total = source + fee
    return Quote(
        source_amount=source,
        source_currency=source_currency,
        dest_amount=dest,
        dest_currency=dest_currency,
        exchange_rate=None if source_currency == dest_currency else rate,
        fee=fee,
        total_debited=total,
    )
