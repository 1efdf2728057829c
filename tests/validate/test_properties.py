"""Properties: validation never crashes, and its vectorised checks agree with the reference code."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchpay import banking, money
from batchpay.layout import CANONICAL_COLUMNS

from .helpers import IBAN_ROW, US_ROW, canonical, check_frame

# each example validates a whole batch of rows: few examples, many rows
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@SETTINGS
@given(
    st.lists(
        st.fixed_dictionaries(dict.fromkeys(CANONICAL_COLUMNS, any_text)), min_size=1, max_size=40
    )
)
def test_arbitrary_cell_values_never_crash_validation(rows: list[dict[str, str]]) -> None:
    """Whatever the cells hold, validation returns issues; every row is valid or has an issue."""
    result = check_frame(rows)
    assert result.rows_checked == len(rows)
    assert result.valid.height + len(result.invalid_rows) == len(rows)


def _iban(country: str, bban: str) -> str:
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


@st.composite
def iban_candidates(draw: st.DrawFn) -> str:
    """Real IBANs, IBANs with one character changed, and IBAN-like junk."""
    country = draw(st.sampled_from(sorted(banking.IBAN_LENGTHS)))
    length = banking.IBAN_LENGTHS[country] - 4
    bban = draw(st.text(string.ascii_uppercase + string.digits, min_size=length, max_size=length))
    iban = _iban(country, bban)
    kind = draw(st.sampled_from(["valid", "typo", "short", "junk", "printed"]))
    if kind == "typo":
        at = draw(st.integers(0, len(iban) - 1))
        iban = iban[:at] + draw(st.sampled_from(string.digits + "AZ")) + iban[at + 1 :]
    elif kind == "short":
        iban = iban[:-1]
    elif kind == "junk":
        iban = draw(st.text(string.ascii_letters + string.digits + " ", min_size=1, max_size=36))
    elif kind == "printed":
        iban = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)).lower()
    return iban


@SETTINGS
@given(st.lists(iban_candidates(), min_size=1, max_size=80))
def test_iban_check_agrees_with_banking(ibans: list[str]) -> None:
    """The vectorised IBAN rule flags exactly the IBANs banking.iban_problem refuses."""
    base = canonical({**IBAN_ROW, "BIC": ""})
    result = check_frame([{**base, "iban": value} for value in ibans])
    flagged = {i.row for i in result.issues if i.code == "iban"}
    expected = {
        n for n, value in enumerate(ibans, start=2)
        if value.strip() and banking.iban_problem(value.strip()) is not None
    }  # fmt: skip
    assert flagged == expected


@SETTINGS
@given(
    st.lists(
        st.text(string.digits, min_size=9, max_size=9) | st.text(string.digits + "-", max_size=10),
        min_size=1,
        max_size=80,
    )
)
def test_aba_check_agrees_with_banking(numbers: list[str]) -> None:
    """The vectorised ABA rule flags exactly the routing numbers banking.aba_problem refuses."""
    base = canonical(US_ROW)
    result = check_frame([{**base, "routing_number": value} for value in numbers])
    flagged = {i.row for i in result.issues if i.column == "routing_number" and i.code == "aba"}
    expected = {
        n for n, value in enumerate(numbers, start=2)
        if value and banking.aba_problem(value) is not None
    }  # fmt: skip
    assert flagged == expected


amounts = st.text("0123456789.,-+ eE€", max_size=16) | st.decimals(
    min_value=0, max_value=10**13, places=4, allow_nan=False
).map(str)


@SETTINGS
@given(
    st.lists(
        st.tuples(amounts, st.sampled_from(["EUR", "JPY", "KWD", "usd"])), min_size=1, max_size=80
    )
)
def test_amount_check_agrees_with_money(cases: list[tuple[str, str]]) -> None:
    """The vectorised amount rule flags exactly the amounts money.amount_problem refuses."""
    base = canonical(IBAN_ROW)
    rows = [{**base, "amount": amount, "currency": currency} for amount, currency in cases]
    result = check_frame(rows)
    flagged = {i.row for i in result.issues if i.code == "amount"}
    expected = {
        n for n, (amount, currency) in enumerate(cases, start=2)
        if amount and money.amount_problem(amount, currency.upper()) is not None
    }  # fmt: skip
    assert flagged == expected


@SETTINGS
@given(
    st.lists(
        st.decimals(min_value="0.01", max_value="9999999.99", places=2), min_size=1, max_size=40
    )
)
def test_totals_are_exact_sums(values: list[object]) -> None:
    """Totals per currency equal the exact Decimal sum of the amounts."""
    from decimal import Decimal

    base = canonical(IBAN_ROW)
    result = check_frame([{**base, "amount": str(v)} for v in values])
    assert result.ok
    assert result.totals_by_currency() == {
        "EUR": sum((Decimal(str(v)) for v in values), Decimal(0))
    }
