"""Money: decimal strings in, Decimal inside, decimal strings out. Never floats."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation

# ISO 4217 minor units for the currencies batchpay knows. Unknown codes are refused
# by validation, so every amount is held at its currency's real scale.
CURRENCY_SCALE: dict[str, int] = {
    "AED": 2, "AUD": 2, "BGN": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0,
    "CNY": 2, "COP": 2, "CZK": 2, "DKK": 2, "EGP": 2, "EUR": 2, "GBP": 2, "GHS": 2,
    "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "ISK": 0, "JOD": 3, "JPY": 0,
    "KES": 2, "KRW": 0, "KWD": 3, "MAD": 2, "MXN": 2, "MYR": 2, "NGN": 2, "NOK": 2,
    "NZD": 2, "OMR": 3, "PEN": 2, "PHP": 2, "PKR": 2, "PLN": 2, "QAR": 2, "RON": 2,
    "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TND": 3, "TRY": 2, "TWD": 2, "UAH": 2,
    "UGX": 0, "USD": 2, "VND": 0, "XAF": 0, "XOF": 0, "ZAR": 2,
}  # fmt: skip

# Up to 12 whole digits, as the API's Money pattern allows.
MAX_WHOLE_DIGITS = 12
_AMOUNT_RE = re.compile(r"^\d{1,12}(\.\d+)?$")


def currency_scale(currency: str) -> int:
    """Number of minor-unit digits of ``currency`` (2 when unknown)."""
    return CURRENCY_SCALE.get(currency.upper(), 2)


def is_known_currency(currency: str) -> bool:
    """Whether ``currency`` is an ISO 4217 code batchpay can pay in."""
    return currency in CURRENCY_SCALE


def parse_amount(text: str) -> Decimal:
    """Parse a plain decimal string (``1234.50``) exactly; raise ValueError otherwise.

    No thousands separators, no exponent, no sign: those are refused upstream with
    a message; this function is the strict last step.
    """
    if not _AMOUNT_RE.match(text):
        raise ValueError(f"not a plain decimal amount: {text!r}")
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - regex already guards
        raise ValueError(f"not a decimal amount: {text!r}") from exc


def quantize(amount: Decimal, currency: str, *, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Round ``amount`` to the currency's scale."""
    return amount.quantize(Decimal(1).scaleb(-currency_scale(currency)), rounding=rounding)


def quantize_up(amount: Decimal, currency: str) -> Decimal:
    """Round half-up to the currency's scale (fees, debits)."""
    return quantize(amount, currency, rounding=ROUND_HALF_UP)


def format_amount(amount: Decimal, currency: str) -> str:
    """Render ``amount`` as the API's decimal string at the currency's scale."""
    return f"{quantize(amount, currency):f}"


def fits_scale(amount: Decimal, currency: str) -> bool:
    """Whether ``amount`` has no more decimals than ``currency`` allows."""
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    return -exponent <= currency_scale(currency) or amount == quantize(amount, currency)


def mask_account(value: str | None) -> str:
    """Mask an account number or IBAN, keeping only the last 4 characters."""
    if not value:
        return ""
    compact = re.sub(r"\s+", "", value)
    if len(compact) <= 4:
        return "*" * len(compact)
    return "****" + compact[-4:]


# What people type for "a space between thousands": Excel in French and other locales writes
# a no-break or narrow no-break space.
_SPACES = (" ", "\u00a0", "\u202f")


@dataclass(frozen=True, slots=True)
class NumberFormat:
    """How a file writes amounts: its decimal separator and the thousands separators it uses.

    The default is batchpay's own form, ``1234.50``: a dot for decimals, no thousands
    separators. A declared format (``1.234,50``, ``1 234,50``) is read exactly, as text.
    """

    decimal: str = "."
    thousands: tuple[str, ...] = ()

    @property
    def declared(self) -> bool:
        """Whether amounts are written other than as plain ``1234.50``."""
        return self != NumberFormat()

    @property
    def example(self) -> str:
        """1234.50 as this format writes it."""
        group = self.thousands[0] if self.thousands else ""
        return f"1{group}234{self.decimal}50"

    def pattern(self) -> str:
        """A regular expression (Python and polars alike) for an amount written this way: group
        1 the whole part, group 2 the decimals."""
        seps = [c for t in self.thousands for c in (_SPACES if t == " " else (t,))]
        whole = r"[0-9]+"
        if seps:
            cls = "[" + "".join(re.escape(c) for c in seps) + "]"
            whole = rf"[0-9]{{1,3}}(?:{cls}[0-9]{{3}})+|[0-9]+"
        return rf"^({whole})(?:{re.escape(self.decimal)}([0-9]+))?$"

    def plain(self, text: str) -> str | None:
        """``text`` as a plain decimal string (``1.234,50`` gives ``1234.50``), exactly; None
        when it is not written in this format."""
        match = re.match(self.pattern(), text)
        if match is None:
            return None
        whole = "".join(ch for ch in match.group(1) if ch.isdigit())
        return whole + ("." + match.group(2) if match.group(2) is not None else "")


_SCIENTIFIC_RE = re.compile(r"^[+-]?[0-9]+(\.[0-9]*)?[eE][+-]?[0-9]+$")
_DECIMAL_COMMA_RE = re.compile(r"^[0-9]+,[0-9]{1,2}$")
_COMMA_THOUSANDS_RE = re.compile(r"^[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?$")
_DOT_THOUSANDS_RE = re.compile(r"^[0-9]{1,3}(\.[0-9]{3})+(,[0-9]+)?$")
_SPACE_THOUSANDS_RE = re.compile(r"^[0-9]{1,3}([ '\u00a0\u202f][0-9]{3})+([.,][0-9]+)?$")
_PLAIN_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_DECLARE = "under [file] in the layout"


def _symbol_or_letters(text: str) -> str | None:
    symbols = [ch for ch in text if unicodedata.category(ch) == "Sc"]
    if symbols:
        return (
            f"contains a currency symbol {symbols[0]}; put only the number here "
            "and the currency in the currency column"
        )
    letters = "".join(ch for ch in text if ch.isalpha())
    if letters:
        return (
            f"contains letters ({letters[:10]}), like a currency symbol or code; put only the "
            "number here and the currency in the currency column"
        )
    return None


def amount_problem(text: str, currency: str, number: NumberFormat | None = None) -> str | None:
    """Why ``text`` is not a payable amount in ``currency``, or None when it is.

    A payable amount is a plain decimal with a dot (or written in the declared ``number``
    format): digits, optionally a decimal separator and digits; greater than zero; at most 12
    whole digits (leading zeros aside); no more significant decimals than the currency has.
    The message is written for the person who typed the cell, naming what it saw.
    """
    if text == "":
        return "is blank"
    if _SCIENTIFIC_RE.match(text):
        return (
            f"is in scientific notation ({text}); the real digits may be lost — "
            "type the amount as a plain number like 1234.56"
        )
    if text[0] in "+-−":
        return "must not have a sign; write the amount as a positive number like 1234.56"
    symbol = _symbol_or_letters(text)
    if symbol is not None:
        return symbol
    if number is not None and number.declared:
        plain = number.plain(text)
        if plain is None:
            return _not_as_declared(text, number)
        text = plain
    if _DECIMAL_COMMA_RE.match(text):
        return (
            f"uses a comma as decimal separator; write {text.replace(',', '.')}, or declare "
            f'decimal_separator = "," {_DECLARE} (or pass --decimal-comma)'
        )
    if _COMMA_THOUSANDS_RE.match(text):
        return (
            f'uses commas as thousands separators ("," between groups of three digits); write '
            f'{text.replace(",", "")}, or declare thousands_separator = "," {_DECLARE}'
        )
    if _DOT_THOUSANDS_RE.match(text) and ("," in text or text.count(".") > 1):
        fixed = text.replace(".", "").replace(",", ".")
        return (
            "uses dots as thousands separators and a comma for decimals; write "
            f'{fixed}, or declare decimal_separator = "," and thousands_separator = "." '
            f"{_DECLARE} (or pass --decimal-comma)"
        )
    if _SPACE_THOUSANDS_RE.match(text):
        comma = ' and decimal_separator = ","' if "," in text else ""
        return (
            "uses spaces or apostrophes as thousands separators; write the digits together, "
            f'or declare thousands_separator = " " (or "\'"){comma} {_DECLARE}'
        )
    if "," in text:
        return "contains a comma; write the amount with a dot for decimals, like 1234.56"
    if not _PLAIN_RE.match(text):
        return "is not a number; write the amount as a plain number like 1234.56"
    whole, _, fraction = text.partition(".")
    if len(whole.lstrip("0")) > MAX_WHOLE_DIGITS:
        return f"is too large: at most {MAX_WHOLE_DIGITS} digits before the decimal point"
    if set(whole + fraction) <= {"0"}:
        return "must be greater than zero"
    decimals = len(fraction.rstrip("0"))
    scale = currency_scale(currency)
    if decimals > scale:
        places = "decimal place" if decimals == 1 else "decimal places"
        allowed = "none" if scale == 0 else str(scale)
        return f"has {decimals} {places} but {currency.upper() or 'the currency'} allows {allowed}"
    return None


def _not_as_declared(text: str, number: NumberFormat) -> str:
    seen = sorted({ch for ch in text if not ch.isdigit()})
    names = {".": "a dot", ",": "a comma", " ": "a space", "'": "an apostrophe"}
    found = ", ".join(names.get(ch, f"U+{ord(ch):04X} {unicodedata.name(ch, '?')}") for ch in seen)
    thousands = " or ".join(repr(t) for t in number.thousands) or "none"
    where = f" ({found})" if found else ""
    return (
        f"is not written as the layout declares amounts (decimal separator "
        f"{number.decimal!r}, thousands separator {thousands}, e.g. {number.example}): "
        f"its separators{where} are not where they would be"
    )


def canonical_amount(text: str, currency: str) -> str:
    """The API's decimal string for a payable amount: ``0100.5`` in EUR gives ``100.50``."""
    return format_amount(Decimal(text), currency)
