"""``InstrumentCreateRequest``: iban, us_bank and uk_bank credentials, checked and masked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from batchpay.banking import (
    aba_problem,
    bic_problem,
    normalize_iban,
    normalize_sort_code,
    sort_code_problem,
    uk_account_problem,
    us_account_problem,
)
from batchpay.money import mask_account

from ..problems import ApiProblem, FieldError
from .common import Collector, reject_unknown, require_object
from .iban import iban_countries, iban_problem

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
    "iban": iban_countries(),
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
    reject_unknown(body, _INSTRUMENT_FIELDS, "")
    c = Collector()
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
