"""Request-body validation for the creating endpoints, shaped by the OpenAPI schemas.

Unknown fields are refused whole (400 ``invalid_request_body``, as the API's strict
decoder does); every other field problem is collected, so one 422
``validation_error`` lists them all with dotted field paths.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from batchpay.banking import (
    COUNTRIES,
    IBAN_LENGTHS,
    aba_problem,
    bic_problem,
    iban_problem,
    normalize_iban,
    normalize_sort_code,
    sort_code_problem,
    uk_account_problem,
    us_account_problem,
)
from batchpay.money import MAX_WHOLE_DIGITS, fits_scale, is_known_currency, mask_account

from ..problems import ApiProblem, FieldError, invalid_body, validation_failed

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+[1-9]\d{6,14}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MONEY = re.compile(r"^-?\d{1,12}(\.\d+)?$")
_BEN_ID = re.compile(r"^ben_[a-zA-Z0-9]+$")
_INS_ID = re.compile(r"^ins_[a-zA-Z0-9]+$")
_QUOTE_ID = re.compile(r"^pq_[a-zA-Z0-9]+$")

_BENEFICIARY_FIELDS = frozenset(
    {"type", "country", "external_ref", "metadata", "individual", "business", "end_user_ip"}
)
_INDIVIDUAL_FIELDS = frozenset(
    {
        "first_name",
        "middle_name",
        "last_name",
        "email",
        "phone",
        "date_of_birth",
        "nationality",
        "tax_id",
        "address",
    }
)
_BUSINESS_FIELDS = frozenset(
    {
        "legal_name",
        "trading_name",
        "registration_number",
        "tax_id",
        "entity_type",
        "incorporation_country",
        "incorporation_date",
        "email",
        "phone",
        "website",
        "address",
    }
)
_ADDRESS_FIELDS = frozenset(
    {"street_line_1", "street_line_2", "city", "state", "postal_code", "country"}
)
_STATE_REQUIRED = frozenset({"US", "CA", "AU"})
_ENTITY_TYPES = ("llc", "corporation", "partnership", "sole_proprietorship", "trust", "other")

_INSTRUMENT_FIELDS = frozenset(
    {"method", "currency", "country", "label", "credentials", "is_default", "end_user_ip"}
)
# PaymentMethodCode from the spec; the sandbox can hold the first three.
PAYMENT_METHOD_CODES = (
    "iban",
    "uk_bank",
    "us_bank",
    "ca_bank",
    "au_bank",
    "nz_bank",
    "jp_bank",
    "in_bank",
    "za_bank",
    "ng_bank",
    "ph_bank",
    "cl_bank",
    "co_bank",
    "swift",
    "clabe",
    "cbu",
    "cci",
    "pix",
    "upi",
    "interac",
    "paynow",
    "fps_hk",
    "promptpay",
    "card",
    "crypto",
    "mobile_money",
)
SUPPORTED_INSTRUMENT_METHODS = ("iban", "us_bank", "uk_bank")
_CREDENTIAL_FIELDS: dict[str, frozenset[str]] = {
    "iban": frozenset({"iban", "bic"}),
    "us_bank": frozenset({"routing_number", "account_number", "account_type"}),
    "uk_bank": frozenset({"sort_code", "account_number"}),
}
_METHOD_COUNTRIES: dict[str, frozenset[str]] = {
    "iban": frozenset(IBAN_LENGTHS),
    "us_bank": frozenset({"US"}),
    "uk_bank": frozenset({"GB", "GG", "JE", "IM"}),
}
_EURO_IBAN_COUNTRIES = frozenset(
    {"AD", "AT", "BE", "CY", "DE", "EE", "ES", "FI", "FR", "GR", "HR", "IE", "IT"}
    | {"LT", "LU", "LV", "MC", "ME", "MT", "NL", "PT", "SI", "SK", "SM", "VA", "XK"}
)
_IBAN_HOME_CURRENCY = {
    "GB": "GBP",
    "CH": "CHF",
    "LI": "CHF",
    "SE": "SEK",
    "NO": "NOK",
    "DK": "DKK",
    "PL": "PLN",
    "CZ": "CZK",
    "HU": "HUF",
    "RO": "RON",
    "BG": "BGN",
    "IS": "ISK",
    "TR": "TRY",
    "AE": "AED",
    "IL": "ILS",
    "KW": "KWD",
    "BH": "BHD",
}

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

WEBHOOK_EVENT_TYPES = (
    "payout.created",
    "payout.approved",
    "payout.processing",
    "payout.sent",
    "payout.completed",
    "payout.failed",
    "payout.cancelled",
    "payout.returned",
    "payout.screening_failed",
    "payout.velocity_blocked",
    "beneficiary.created",
    "beneficiary.updated",
    "beneficiary.deleted",
    "beneficiary.blocked",
    "instrument.created",
    "instrument.updated",
    "instrument.deleted",
    "batch.uploaded",
    "batch.completed",
    "batch.failed",
    "fx.quote.created",
    "fx.exchange.created",
    "fx.exchange.completed",
    "fx.exchange.failed",
    "funding.credit",
    "screening.hit",
    "balance.low",
    "test",
)
_WEBHOOK_FIELDS = frozenset({"url", "events", "metadata"})
_CANCEL_FIELDS = frozenset({"reason", "end_user_ip"})


class _Collector:
    """Collects field errors so every problem is reported in one answer."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, field: str, message: str) -> None:
        self.errors.append(FieldError(field, message))

    def raise_if_any(self) -> None:
        if self.errors:
            raise validation_failed(self.errors)

    def string(
        self,
        obj: dict[str, Any],
        key: str,
        path: str,
        *,
        required: bool,
        max_len: int | None = None,
    ) -> str | None:
        """A string field: present when required, a non-blank string, at most max_len long."""
        field = f"{path}{key}"
        if key not in obj or obj[key] is None:
            if required:
                self.add(field, "is required")
            return None
        value = obj[key]
        if not isinstance(value, str):
            self.add(field, "must be a string")
            return None
        if required and not value.strip():
            self.add(field, "must not be empty")
            return None
        if max_len is not None and len(value) > max_len:
            self.add(field, f"must be at most {max_len} characters")
            return None
        return value

    def pattern(
        self,
        obj: dict[str, Any],
        key: str,
        path: str,
        regex: re.Pattern[str],
        message: str,
        *,
        required: bool,
    ) -> str | None:
        value = self.string(obj, key, path, required=required)
        if value is not None and not regex.match(value):
            self.add(f"{path}{key}", message)
            return None
        return value

    def country(self, obj: dict[str, Any], key: str, path: str, *, required: bool) -> str | None:
        value = self.string(obj, key, path, required=required)
        if value is not None and (not _COUNTRY.match(value) or value not in COUNTRIES):
            self.add(f"{path}{key}", "must be a valid ISO-3166 alpha-2 country code")
            return None
        return value

    def currency(self, obj: dict[str, Any], key: str, path: str, *, required: bool) -> str | None:
        value = self.string(obj, key, path, required=required)
        if value is not None and (not _CURRENCY.match(value) or not is_known_currency(value)):
            self.add(f"{path}{key}", "must be a valid ISO-4217 currency code")
            return None
        return value

    def date(self, obj: dict[str, Any], key: str, path: str, *, required: bool) -> str | None:
        value = self.string(obj, key, path, required=required)
        if value is None:
            return None
        if not _DATE.match(value):
            self.add(f"{path}{key}", "must be in YYYY-MM-DD format")
            return None
        try:
            date.fromisoformat(value)
        except ValueError:
            self.add(f"{path}{key}", "is not a real calendar date")
            return None
        return value

    def enum(
        self, obj: dict[str, Any], key: str, path: str, allowed: tuple[str, ...], *, required: bool
    ) -> str | None:
        value = self.string(obj, key, path, required=required)
        if value is not None and value not in allowed:
            self.add(f"{path}{key}", f"must be one of {', '.join(allowed)}")
            return None
        return value

    def string_map(self, obj: dict[str, Any], key: str, path: str) -> dict[str, str] | None:
        if key not in obj or obj[key] is None:
            return None
        value = obj[key]
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            self.add(f"{path}{key}", "must be an object of string values")
            return None
        return dict(value)

    def boolean(self, obj: dict[str, Any], key: str, path: str) -> bool | None:
        if key not in obj or obj[key] is None:
            return None
        if not isinstance(obj[key], bool):
            self.add(f"{path}{key}", "must be true or false")
            return None
        return bool(obj[key])


def require_object(body: Any) -> dict[str, Any]:
    """The request body must be a JSON object."""
    if not isinstance(body, dict):
        raise invalid_body("request body must be a JSON object")
    return body


def _reject_unknown(obj: Any, allowed: frozenset[str], path: str) -> None:
    if not isinstance(obj, dict):
        return
    unknown = sorted(set(obj) - allowed)
    if unknown:
        names = ", ".join(f"{path}{name}" for name in unknown)
        raise invalid_body(f"unknown field(s): {names}")


def _norm(text: str | None) -> str:
    """Case-, accent-width- and whitespace-insensitive form used in fingerprints."""
    if not text:
        return ""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


# --------------------------------------------------------------------------- beneficiaries


@dataclass(frozen=True, slots=True)
class BeneficiaryInput:
    """A validated beneficiary create request."""

    type: str
    country: str
    display_name: str
    external_ref: str | None
    metadata: dict[str, str] | None
    details: dict[str, Any]
    fingerprint: str


def _address(c: _Collector, value: Any, path: str) -> None:
    if value is None:
        c.add(path.rstrip("."), "is required")
        return
    if not isinstance(value, dict):
        c.add(path.rstrip("."), "must be an object")
        return
    for key in ("street_line_1", "city", "postal_code"):
        c.string(value, key, path, required=True, max_len=255)
    c.string(value, "street_line_2", path, required=False, max_len=255)
    country = c.country(value, "country", path, required=True)
    state = c.string(value, "state", path, required=False, max_len=255)
    if country in _STATE_REQUIRED and not state:
        c.add(f"{path}state", f"is required for an address in {country}")


def validate_beneficiary(raw: Any) -> BeneficiaryInput:
    """Validate a ``BeneficiaryCreateRequest``; raise ApiProblem on any problem."""
    body = require_object(raw)
    _reject_unknown(body, _BENEFICIARY_FIELDS, "")
    _reject_unknown(body.get("individual"), _INDIVIDUAL_FIELDS, "individual.")
    _reject_unknown(body.get("business"), _BUSINESS_FIELDS, "business.")
    for block in ("individual", "business"):
        inner = body.get(block)
        if isinstance(inner, dict):
            _reject_unknown(inner.get("address"), _ADDRESS_FIELDS, f"{block}.address.")

    c = _Collector()
    btype = c.enum(body, "type", "", ("individual", "business"), required=True)
    country = c.country(body, "country", "", required=True)
    external_ref = c.string(body, "external_ref", "", required=False, max_len=255)
    metadata = c.string_map(body, "metadata", "")
    c.string(body, "end_user_ip", "", required=False)

    present = {b for b in ("individual", "business") if body.get(b) is not None}
    for block in sorted(present):
        if not isinstance(body[block], dict):
            c.add(block, "must be an object")
    if btype is not None and len(present) == 2:
        other = "business" if btype == "individual" else "individual"
        c.add(other, f"must not be set when type is {btype}")

    details: dict[str, Any] = {}
    display_name = ""
    fingerprint_parts: list[str] = []
    block_value = body.get(btype) if btype else None
    if btype == "individual" and isinstance(block_value, dict):
        ind = block_value
        first = c.string(ind, "first_name", "individual.", required=True, max_len=100)
        middle = c.string(ind, "middle_name", "individual.", required=False, max_len=100)
        last = c.string(ind, "last_name", "individual.", required=True, max_len=100)
        email = c.pattern(
            ind, "email", "individual.", _EMAIL, "must be a valid email address", required=True
        )
        c.pattern(
            ind,
            "phone",
            "individual.",
            _PHONE,
            "must be an E.164 phone number (+ and 7 to 15 digits)",
            required=True,
        )
        dob = c.date(ind, "date_of_birth", "individual.", required=True)
        c.country(ind, "nationality", "individual.", required=True)
        c.string(ind, "tax_id", "individual.", required=False, max_len=64)
        _address(c, ind.get("address"), "individual.address.")
        display_name = " ".join(p.strip() for p in (first, middle, last) if p)
        fingerprint_parts = [_norm(first), _norm(middle), _norm(last), _norm(email), dob or ""]
        details = dict(ind)
    elif btype == "business" and isinstance(block_value, dict):
        bus = block_value
        legal = c.string(bus, "legal_name", "business.", required=True, max_len=255)
        c.string(bus, "trading_name", "business.", required=False, max_len=255)
        reg = c.string(bus, "registration_number", "business.", required=True, max_len=64)
        c.string(bus, "tax_id", "business.", required=False, max_len=64)
        c.enum(bus, "entity_type", "business.", _ENTITY_TYPES, required=False)
        c.country(bus, "incorporation_country", "business.", required=False)
        c.date(bus, "incorporation_date", "business.", required=False)
        email = c.pattern(
            bus, "email", "business.", _EMAIL, "must be a valid email address", required=True
        )
        c.pattern(
            bus,
            "phone",
            "business.",
            _PHONE,
            "must be an E.164 phone number (+ and 7 to 15 digits)",
            required=True,
        )
        website = c.string(bus, "website", "business.", required=False, max_len=2048)
        if website is not None and urlsplit(website).scheme not in ("http", "https"):
            c.add("business.website", "must be an http(s) URL")
        _address(c, bus.get("address"), "business.address.")
        display_name = (legal or "").strip()
        fingerprint_parts = [_norm(legal), _norm(reg), _norm(email)]
        details = dict(bus)
    c.raise_if_any()
    assert btype is not None and country is not None
    if not isinstance(block_value, dict):
        raise ApiProblem(
            422,
            "missing_beneficiary_details",
            f"type is {btype} but the {btype} details block is missing",
        )
    fingerprint = "|".join([btype, country, *fingerprint_parts])
    return BeneficiaryInput(
        type=btype,
        country=country,
        display_name=display_name,
        external_ref=external_ref,
        metadata=metadata,
        details=details,
        fingerprint=fingerprint,
    )


# --------------------------------------------------------------------------- instruments


@dataclass(frozen=True, slots=True)
class InstrumentInput:
    """A validated instrument create request; raw credentials never leave this object."""

    method: str
    country: str
    currency: str
    label: str | None
    is_default: bool
    fingerprint: str
    display_last4: str
    masked_account: str


def _credential_problems(method: str, creds: dict[str, str]) -> list[FieldError]:
    problems: list[tuple[str, str | None]] = []
    if method == "iban":
        problems.append(("iban", iban_problem(creds["iban"])))
        if creds.get("bic"):
            problems.append(("bic", bic_problem(creds["bic"])))
    elif method == "us_bank":
        problems.append(("routing_number", aba_problem(creds["routing_number"])))
        problems.append(("account_number", us_account_problem(creds["account_number"])))
    else:
        problems.append(("sort_code", sort_code_problem(creds["sort_code"])))
        problems.append(("account_number", uk_account_problem(creds["account_number"])))
    return [FieldError(f"credentials.{f}", msg) for f, msg in problems if msg]


def validate_instrument(raw: Any) -> InstrumentInput:
    """Validate an ``InstrumentCreateRequest`` (iban, us_bank, uk_bank); raise ApiProblem."""
    body = require_object(raw)
    _reject_unknown(body, _INSTRUMENT_FIELDS, "")
    c = _Collector()
    method = c.enum(body, "method", "", PAYMENT_METHOD_CODES, required=True)
    country = c.country(body, "country", "", required=False)
    currency = c.currency(body, "currency", "", required=False)
    label = c.string(body, "label", "", required=False, max_len=255)
    is_default = c.boolean(body, "is_default", "")
    c.string(body, "end_user_ip", "", required=False)
    raw_creds = body.get("credentials")
    if raw_creds is None:
        c.add("credentials", "is required")
    elif not isinstance(raw_creds, dict):
        c.add("credentials", "must be an object")
    c.raise_if_any()
    assert method is not None
    if method not in SUPPORTED_INSTRUMENT_METHODS:
        raise ApiProblem(
            422,
            "method_not_supported",
            f"method {method} is not supported by the sandbox (iban, us_bank, uk_bank are)",
        )
    assert isinstance(raw_creds, dict)
    allowed = _CREDENTIAL_FIELDS[method]
    creds: dict[str, str] = {}
    for key in sorted(set(raw_creds) - allowed):
        c.add(f"credentials.{key}", f"is not a credential of a {method} instrument")
    required = allowed - {"bic"}
    for key in sorted(allowed):
        value = c.string(raw_creds, key, "credentials.", required=key in required)
        if value is not None:
            creds[key] = value.strip()
    if method == "us_bank" and creds.get("account_type", "checking") not in ("checking", "savings"):
        c.add("credentials.account_type", "must be one of checking, savings")
    c.raise_if_any()

    if method == "iban":
        creds["iban"] = normalize_iban(creds["iban"])
        if creds.get("bic"):
            creds["bic"] = creds["bic"].upper()
    if method == "uk_bank":
        creds["sort_code"] = normalize_sort_code(creds["sort_code"])
    problems = _credential_problems(method, creds)
    if problems:
        raise ApiProblem(
            422,
            "invalid_credentials",
            "; ".join(f"{p.field} {p.message}" for p in problems),
            [{"field": p.field, "message": p.message} for p in problems],
        )

    if method == "iban":
        account_country = creds["iban"][:2]
    elif method == "us_bank":
        account_country = "US"
    else:
        account_country = "GB"
    stated = country or account_country
    if stated not in _METHOD_COUNTRIES[method]:
        raise ApiProblem(
            422, "method_not_supported", f"method {method} is not supported for country {stated}"
        )
    if method == "iban":
        default_currency = (
            "EUR"
            if account_country in _EURO_IBAN_COUNTRIES
            else _IBAN_HOME_CURRENCY.get(account_country, "EUR")
        )
        account = creds["iban"]
        fingerprint = f"iban|{account}"
    elif method == "us_bank":
        default_currency = "USD"
        account = creds["account_number"]
        fingerprint = f"us_bank|{creds['routing_number']}|{account}"
    else:
        default_currency = "GBP"
        account = creds["account_number"]
        fingerprint = f"uk_bank|{creds['sort_code']}|{account}"
    return InstrumentInput(
        method=method,
        country=account_country if method == "iban" else stated,
        currency=currency or default_currency,
        label=label,
        is_default=bool(is_default),
        fingerprint=fingerprint,
        display_last4=account[-4:],
        masked_account=mask_account(account),
    )


# --------------------------------------------------------------------------- payouts


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


def _amount(c: _Collector, body: dict[str, Any], key: str, currency: str | None) -> Decimal | None:
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
    _reject_unknown(body, _PAYOUT_FIELDS, "")
    c = _Collector()
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
    _reject_unknown(body, _CANCEL_FIELDS, "")
    c = _Collector()
    reason = c.string(body, "reason", "", required=False, max_len=255)
    c.string(body, "end_user_ip", "", required=False)
    c.raise_if_any()
    return reason


# --------------------------------------------------------------------------- webhooks


@dataclass(frozen=True, slots=True)
class WebhookInput:
    """A validated webhook subscription request."""

    url: str
    events: list[str]
    metadata: dict[str, str] | None


def _private_host(host: str) -> bool:
    lowered = host.lower().rstrip(".")
    if lowered == "localhost" or lowered.endswith((".local", ".internal", ".localhost")):
        return True
    try:
        address = ipaddress.ip_address(lowered.strip("[]"))
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local or address.is_reserved


def validate_webhook(raw: Any, *, allow_insecure: bool) -> WebhookInput:
    """Validate a ``WebhookSubscriptionCreateRequest``; raise ApiProblem with the url codes."""
    body = require_object(raw)
    _reject_unknown(body, _WEBHOOK_FIELDS, "")
    url = body.get("url")
    if url is None or (isinstance(url, str) and not url.strip()):
        raise ApiProblem(400, "webhook_url_required", "url is required")
    if not isinstance(url, str):
        raise ApiProblem(400, "webhook_url_invalid", "url must be a string")
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.hostname:
        raise ApiProblem(400, "webhook_url_invalid", "url is malformed or has no host")
    if parts.scheme not in ("http", "https"):
        raise ApiProblem(400, "webhook_url_not_https", "url must use https://")
    if not allow_insecure:
        if parts.scheme != "https":
            raise ApiProblem(400, "webhook_url_not_https", "url must use https://")
        if _private_host(parts.hostname):
            raise ApiProblem(
                400, "webhook_url_private_address", "url must be a publicly reachable address"
            )
    c = _Collector()
    events = body.get("events")
    if events is None:
        c.add("events", "is required")
    elif not isinstance(events, list) or not events:
        c.add("events", "must be a non-empty array of event types")
    else:
        for i, event in enumerate(events):
            if event != "*" and event not in WEBHOOK_EVENT_TYPES:
                c.add(f"events.{i}", "is not a webhook event type")
    metadata = c.string_map(body, "metadata", "")
    c.raise_if_any()
    assert isinstance(events, list)
    return WebhookInput(url=url.strip(), events=[str(e) for e in events], metadata=metadata)
