"""Bank-detail checks shared by validation and the sandbox.

IBAN (ISO 13616 mod-97 with the registry's per-country length), ABA routing
numbers (3-7-1 weighted checksum), UK sort codes and account numbers, and the
ISO 3166-1 alpha-2 country list.
"""

from __future__ import annotations

import re

# IBAN length per country (SWIFT IBAN registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip

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
    expected = IBAN_LENGTHS.get(iban[:2])
    if expected is None:
        return f"country {iban[:2]} does not use IBANs"
    if len(iban) != expected:
        return f"a {iban[:2]} IBAN has {expected} characters, this one has {len(iban)}"
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    if int(digits) % 97 != 1:
        return "fails the IBAN check digits (mod-97); a character is wrong or missing"
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
