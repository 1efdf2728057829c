"""The sandbox's own IBAN check, through ``schwifty``'s validation.

The client checks IBANs in :mod:`batchpay.banking`; the simulator must not share that code, or a
bug there could never show end to end. Both read the SWIFT IBAN registry as schwifty maintains
it, as the real API reads the registry.
"""

from __future__ import annotations

from functools import cache
from itertools import product
from string import ascii_uppercase

from schwifty import IBAN
from schwifty import exceptions as errors
from schwifty.registry import get_iban_spec

__all__ = ["iban_countries", "iban_problem"]


@cache
def iban_countries() -> frozenset[str]:
    """The countries whose IBANs the sandbox accepts: those in the SWIFT registry."""
    out = set()
    for country in ("".join(pair) for pair in product(ascii_uppercase, repeat=2)):
        try:
            if not get_iban_spec(country).aspirational:
                out.add(country)
        except errors.InvalidCountryCode:
            continue
    return frozenset(out)


def iban_problem(value: str) -> str | None:
    """Why the API would refuse ``value`` as an IBAN, or None."""
    country = value[:2].upper()
    try:
        IBAN(value, validate_bban=False)
    except errors.InvalidCountryCode:
        return f"country {country} does not use IBANs"
    except errors.InvalidLength:
        return f"is not the length of a {country} IBAN"
    except errors.InvalidChecksumDigits:
        return "fails the IBAN check digits (mod-97)"
    except errors.SchwiftyException:
        return "is not a valid IBAN"
    if country not in iban_countries():
        return f"country {country} has no IBAN in the SWIFT IBAN registry"
    return None
