"""``PayoutCreateRequest`` and the cancel body; the payout rails and what each can pay."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from batchpay.money import MAX_WHOLE_DIGITS, fits_scale

from .common import Collector, reject_unknown, require_object

_MONEY = re.compile(r"^-?\d{1,12}(\.\d+)?$")
_BEN_ID = re.compile(r"^ben_[a-zA-Z0-9]+$")
_INS_ID = re.compile(r"^ins_[a-zA-Z0-9]+$")
_QUOTE_ID = re.compile(r"^pq_[a-zA-Z0-9]+$")

PAYOUT_METHODS = (
    "bank_transfer",
    "wire",
    "sepa",
    "swift",
    "ach",
    "faster_payment",
    "mobile_money",
    "wallet",
    "crypto",
    "layer2",
    "exchange",
    "stablecoin",
)
# Which payout rails can pay which instrument kind, and the currency a domestic rail needs.
RAILS_FOR_INSTRUMENT: dict[str, tuple[str, ...]] = {
    "iban": ("sepa", "swift", "wire", "bank_transfer"),
    "us_bank": ("ach", "wire", "swift", "bank_transfer"),
    "uk_bank": ("faster_payment", "wire", "swift", "bank_transfer"),
}
RAIL_CURRENCY = {"sepa": "EUR", "ach": "USD", "faster_payment": "GBP"}
RAIL_NETWORK = {
    "sepa": "sepa",
    "ach": "ach",
    "faster_payment": "fps",
    "swift": "swift",
    "wire": "rtgs",
    "bank_transfer": "rtgs",
}
_PAYOUT_FIELDS = frozenset(
    {
        "beneficiary_id",
        "instrument_id",
        "source_amount",
        "source_currency",
        "dest_amount",
        "dest_currency",
        "method",
        "rail_type",
        "fixed_side",
        "fee_bearer",
        "purpose",
        "reference",
        "metadata",
        "end_user_ip",
        "quote_id",
    }
)
_CANCEL_FIELDS = frozenset({"reason", "end_user_ip"})


@dataclass(frozen=True, slots=True)
class PayoutInput:
    """A validated payout create request, amounts as Decimals."""

    beneficiary_id: str
    instrument_id: str
    source_amount: Decimal
    source_currency: str | None
    dest_amount: Decimal
    dest_currency: str
    method: str
    rail_type: str
    fixed_side: str
    fee_bearer: str
    purpose: str
    reference: str
    metadata: dict[str, str] | None


def _amount(c: Collector, body: dict[str, Any], key: str, currency: str | None) -> Decimal | None:
    value = c.string(body, key, "", required=True)
    if value is None:
        return None
    if not _MONEY.match(value):
        c.add(key, "must be a decimal string such as 1234.56, up to 12 whole digits")
        return None
    amount = Decimal(value)
    whole = value.lstrip("-").split(".")[0]
    if amount <= 0:
        c.add(key, "must be greater than zero")
        return None
    if len(whole.lstrip("0") or "0") > MAX_WHOLE_DIGITS:
        c.add(key, f"must have at most {MAX_WHOLE_DIGITS} whole digits")
        return None
    if currency is not None and not fits_scale(amount, currency):
        c.add(key, f"has more decimal places than {currency} allows")
        return None
    return amount


def validate_payout(raw: Any) -> PayoutInput:
    """Validate a ``PayoutCreateRequest``'s shape; raise ApiProblem on any problem."""
    body = require_object(raw)
    reject_unknown(body, _PAYOUT_FIELDS, "")
    c = Collector()
    ben = c.pattern(
        body, "beneficiary_id", "", _BEN_ID, "must be a beneficiary id (ben_...)", required=True
    )
    ins = c.pattern(
        body, "instrument_id", "", _INS_ID, "must be an instrument id (ins_...)", required=True
    )
    dest_currency = c.currency(body, "dest_currency", "", required=True)
    source_currency = c.currency(body, "source_currency", "", required=False)
    dest_amount = _amount(c, body, "dest_amount", dest_currency)
    # The source currency may be defaulted later; check its scale then.
    source_amount = _amount(c, body, "source_amount", source_currency)
    method = c.enum(body, "method", "", PAYOUT_METHODS, required=True)
    rail_type = c.enum(body, "rail_type", "", ("fiat", "crypto", "stablecoin"), required=False)
    fixed_side = c.enum(body, "fixed_side", "", ("fixed_source", "fixed_dest"), required=False)
    fee_bearer = c.enum(body, "fee_bearer", "", ("merchant", "beneficiary"), required=False)
    purpose = c.string(body, "purpose", "", required=True, max_len=255)
    reference = c.string(body, "reference", "", required=True, max_len=100)
    metadata = c.string_map(body, "metadata", "")
    c.string(body, "end_user_ip", "", required=False)
    if c.pattern(body, "quote_id", "", _QUOTE_ID, "must be a quote id (pq_...)", required=False):
        c.add("quote_id", "quote not found (the sandbox issues no pricing quotes)")
    c.raise_if_any()
    assert ben and ins and dest_currency and dest_amount and source_amount and method
    assert purpose is not None and reference is not None
    return PayoutInput(
        beneficiary_id=ben,
        instrument_id=ins,
        source_amount=source_amount,
        source_currency=source_currency,
        dest_amount=dest_amount,
        dest_currency=dest_currency,
        method=method,
        rail_type=rail_type or "fiat",
        fixed_side=fixed_side or "fixed_dest",
        fee_bearer=fee_bearer or "merchant",
        purpose=purpose,
        reference=reference,
        metadata=metadata,
    )


def validate_cancel(raw: Any) -> str | None:
    """Validate the optional cancel body; return the reason."""
    if raw is None:
        return None
    body = require_object(raw)
    reject_unknown(body, _CANCEL_FIELDS, "")
    c = Collector()
    reason = c.string(body, "reason", "", required=False, max_len=255)
    c.string(body, "end_user_ip", "", required=False)
    c.raise_if_any()
    return reason
