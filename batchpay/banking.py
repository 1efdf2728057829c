"""Bank-detail checks used by validation.

IBAN (the country's length and BBAN structure from the SWIFT IBAN registry as maintained by
``schwifty``, and ISO 13616 mod-97 check digits), ABA routing numbers (3-7-1 weighted
checksum), UK sort codes and account numbers (their shape only: no maintained Python
implementation of the Vocalink modulus check exists, and a stale weights table would refuse
good accounts), and the ISO 3166-1 alpha-2 country list.
"""

from __future__ import annotations

import re

from schwifty import exceptions as schwifty_errors
from schwifty.domain import IBANSpec
from schwifty.registry import get_iban_spec

# ISO 3166-1 alpha-2 (officially assigned codes).
COUNTRIES: frozenset[str] = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN
    BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
    DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL
    GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM
    JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME
    MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP
    NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD
    SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
    TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW
    """.split()
)


def _iban_registry() -> tuple[dict[str, IBANSpec], frozenset[str]]:
    """The SWIFT registry's IBAN countries, and those schwifty lists as only proposed."""
    official: dict[str, IBANSpec] = {}
    proposed: set[str] = set()
    for country in sorted(COUNTRIES):
        try:
            spec = get_iban_spec(country)
        except schwifty_errors.InvalidCountryCode:
            continue
        if spec.aspirational:
            proposed.add(country)
        else:
            official[country] = spec
    return official, frozenset(proposed)


# Countries with an IBAN in the SWIFT IBAN registry; "aspirational" formats (published by some
# banks, not in the registry) are refused: no payment network is bound to accept them.
IBAN_SPECS, PROPOSED_IBAN_COUNTRIES = _iban_registry()
# IBAN length per country, and the BBAN (the part after the check digits) as a regex.
IBAN_LENGTHS: dict[str, int] = {c: s.iban_length for c, s in IBAN_SPECS.items()}
BBAN_PATTERNS: dict[str, str] = {c: s.regex.pattern for c, s in IBAN_SPECS.items()}

_IBAN_SHAPE = re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9]{10,30}$")
_ABA_SHAPE = re.compile(r"^\d{9}$")
_SORT_CODE = re.compile(r"^\d{6}$")
_UK_ACCOUNT = re.compile(r"^\d{8}$")
_US_ACCOUNT = re.compile(r"^\d{4,17}$")
_BIC = re.compile(r"^[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$")


def normalize_iban(value: str) -> str:
    """Upper-case and drop spaces: the electronic form of an IBAN."""
    return re.sub(r"\s+", "", value).upper()


def normalize_sort_code(value: str) -> str:
    """Drop the dashes and spaces people write in sort codes (12-34-56)."""
    return re.sub(r"[\s-]", "", value)


def iban_problem(value: str) -> str | None:
    """Why ``value`` is not a valid IBAN, or None when it is."""
    iban = normalize_iban(value)
    if not _IBAN_SHAPE.match(iban):
        return "is not shaped like an IBAN (2 letters, 2 check digits, up to 30 letters/digits)"
    country = iban[:2]
    if country in PROPOSED_IBAN_COUNTRIES:
        return (
            f"country {country} has no IBAN in the SWIFT IBAN registry (its format is only "
            "proposed); ask the payee for bank details the payment can use"
        )
    spec = IBAN_SPECS.get(country)
    if spec is None:
        return f"country {country} does not use IBANs"
    if len(iban) != spec.iban_length:
        return f"a {country} IBAN has {spec.iban_length} characters, this one has {len(iban)}"
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    if int(digits) % 97 != 1:
        return "fails the IBAN check digits (mod-97); a character is wrong or missing"
    if not re.fullmatch(spec.regex, iban[4:]):
        return (
            f"is not laid out as a {country} IBAN ({spec.iban_spec} in the IBAN registry: "
            "n digits, a capital letters, c letters or digits); a character is misplaced"
        )
    return None


def aba_problem(value: str) -> str | None:
    """Why ``value`` is not a valid ABA routing number, or None when it is."""
    if not _ABA_SHAPE.match(value):
        return "must be exactly 9 digits"
    d = [int(c) for c in value]
    total = 3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5] + d[8])
    if total % 10 != 0:
        return "fails the ABA routing checksum; a digit is wrong or a leading zero was lost"
    return None


def sort_code_problem(value: str) -> str | None:
    """Why ``value`` is not a UK sort code, or None when it is."""
    if not _SORT_CODE.match(normalize_sort_code(value)):
        return "must be 6 digits (for example 12-34-56)"
    return None


def uk_account_problem(value: str) -> str | None:
    """Why ``value`` is not a UK account number, or None when it is."""
    if not _UK_ACCOUNT.match(value):
        return "must be exactly 8 digits; a leading zero may have been lost"
    return None


def us_account_problem(value: str) -> str | None:
    """Why ``value`` is not a US account number, or None when it is."""
    if not _US_ACCOUNT.match(value):
        return "must be 4 to 17 digits"
    return None


def bic_problem(value: str) -> str | None:
    """Why ``value`` is not a BIC/SWIFT code, or None when it is."""
    if not _BIC.match(value.upper()):
        return "is not a BIC (8 or 11 letters/digits, e.g. DEUTDEFF)"
    return None
