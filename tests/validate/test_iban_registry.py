"""IBANs are checked against the SWIFT IBAN registry as schwifty maintains it, in every country."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from schwifty import IBAN

from batchpay import banking
from batchpay.cli import main
from batchpay.sandbox.validation import iban as sandbox_iban
from batchpay.testing import payout_row, write_csv
from batchpay.validate import formats

# Missing from the hand-written table the registry replaced.
NEWLY_COVERED = ("OM", "LY", "SO", "YE", "RU", "NI", "FK", "SD", "MN", "BI", "DJ", "HN")
RNG = random.Random(20261201)


def valid_iban(country: str) -> str:
    """A random IBAN of ``country`` built by the registry's own generator."""
    return str(IBAN.random(country_code=country, random=RNG, use_registry=False))


def with_check_digits(iban: str) -> str:
    """``iban`` with its check digits recomputed (ISO 7064 mod-97), independently of schwifty."""
    digits = "".join(str(int(ch, 36)) for ch in iban[4:] + iban[:2] + "00")
    return f"{iban[:2]}{98 - int(digits) % 97:02d}{iban[4:]}"


def per_value(values: list[str]) -> list[bool]:
    """The vectorised per-distinct-value check validation runs."""
    return formats.iban_ok(pl.Series("iban", values)).to_list()


def test_every_registry_country_is_validated() -> None:
    """The 105 SWIFT registry countries, the twelve the old table lacked among them."""
    assert len(banking.IBAN_LENGTHS) >= 105
    assert set(NEWLY_COVERED) <= set(banking.IBAN_LENGTHS)


@pytest.mark.parametrize("country", sorted(banking.IBAN_SPECS))
def test_a_valid_iban_of_each_country_passes_everywhere(country: str) -> None:
    """Client message check, vectorised check and the sandbox's own check all accept it."""
    iban = valid_iban(country)
    assert with_check_digits(iban) == iban
    assert banking.iban_problem(iban) is None
    assert per_value([iban]) == [True]
    assert sandbox_iban.iban_problem(iban) is None


@pytest.mark.parametrize("country", NEWLY_COVERED)
def test_newly_covered_countries_keep_batchpays_messages(country: str) -> None:
    """Wrong length and wrong check digits are refused with the usual wording."""
    iban = valid_iban(country)
    short = with_check_digits(iban[:-1])
    expected = banking.IBAN_LENGTHS[country]
    assert banking.iban_problem(short) == (
        f"a {country} IBAN has {expected} characters, this one has {expected - 1}"
    )
    wrong = iban[:2] + f"{(int(iban[2:4]) + 1) % 100:02d}" + iban[4:]
    assert "fails the IBAN check digits (mod-97)" in (banking.iban_problem(wrong) or "")
    assert per_value([short, wrong]) == [False, False]
    assert sandbox_iban.iban_problem(wrong) is not None


def test_a_letter_where_the_registry_says_digits_is_refused() -> None:
    """A DE BBAN is 18 digits: a letter in it fails even with right check digits."""
    iban = with_check_digits("DE00370400440532013A00")
    problem = banking.iban_problem(iban)
    assert problem is not None and "is not laid out as a DE IBAN" in problem
    assert per_value([iban]) == [False]


def test_a_proposed_format_is_refused_by_name() -> None:
    """Schwifty's 'aspirational' formats (e.g. Morocco) are not in the SWIFT registry."""
    iban = str(IBAN.random(country_code="MA", random=RNG, use_registry=False))
    assert "no IBAN in the SWIFT IBAN registry" in (banking.iban_problem(iban) or "")
    assert per_value([iban]) == [False]


def test_a_payout_to_a_newly_covered_country_pays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows with Omani, Russian and Honduran IBANs pay end to end through the sandbox."""
    monkeypatch.chdir(tmp_path)
    rows = [
        payout_row(3 * i, country=c, nationality=c, iban=valid_iban(c))
        for i, c in enumerate(("OM", "RU", "HN"))
    ]
    path = write_csv(tmp_path / "pay.csv", rows)
    done = CliRunner().invoke(main, ["run", str(path)])
    assert done.exit_code == 0, done.output
