"""A column ingest's scan finds clean throughout is read and validated as if it were not.

For the columns of :data:`batchpay.normalise.CLEAN` (a full-match pattern) and the code
columns of :data:`~batchpay.normalise.CLEAN_CODES` (the values their rules allow, in normal
case) the scan asks whether every cell is clean instead of looking for what would need a
closer look; a clean column is then left as read and its format or value rules are not run.
Pinned here against the same file read and validated with no column treated so: the same
issues, the same valid rows.
"""

from __future__ import annotations

from unittest.mock import patch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchpay import normalise
from batchpay.normalise import CLEAN
from batchpay.validate import ValidationResult
from tests.validate.helpers import IBAN_ROW, UK_ROW, check

_HEADERS = {"email": "Email", "phone": "Phone", "bic": "BIC", "sort_code": "Sort Code"}
_CODES = {
    "beneficiary_type": "Type",
    "payment_method": "Payment Method",
    "account_type": "Account Type",
    "currency": "Currency",
    "source_currency": "Source Currency",
    "country": "Country",
    "nationality": "Nationality",
}
_CELLS = st.sampled_from(
    [
        "", " ", "EUR", "eur", " EUR", "EUR ", "Eur", "XXX", "ＥＵＲ", "GBP", "USD", "DE", "de",
        "GB", "US", "ZZ", "iban", "IBAN", "uk_bank", "us_bank", "Uk_bank", "individual",
        "business", "Individual", "checking", "savings", "SAVINGS", "İ", "ß",
    ]
)  # fmt: skip
# Near misses: what each pattern just refuses (edge and inner whitespace, formula starts,
# non-ASCII, scientific notation, lower case, a digit short or over).
_NEAR = st.sampled_from(
    [
        "", " ", "a@b.co ", " a@b.co", "=a@b.co", "-a@b.co", "a@b", "ä@b.co", "a @b.co",
        "+4915112345678", "+49151123456789012", "4915112345678", "+49 151", "+1.2E+15",
        "COBADEFFXXX", "cobadeffxxx", "COBADEFF", "COBA DE FF", "COBADEFFXX",
        "20-00-00", "200000", "20 00 00", "20-0000", "2000-00", "20-00-0", "2e5", "２00000",
    ]
)  # fmt: skip


def _cells(column: str) -> st.SearchStrategy[str]:
    clean = st.from_regex(CLEAN[column].pattern, fullmatch=True)
    text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
    # a NUL byte makes the file unreadable: not what this is about
    return (clean | _NEAR | text).filter(lambda cell: "\x00" not in cell)


def _summary(result: ValidationResult) -> tuple[object, ...]:
    issues = [(i.row, i.column, i.code, i.message) for i in result.issues]
    return issues, result.valid.sort("_row").rows(), result.invalid_rows


# None keeps the row's own (valid) cell: most rows stay valid, so normalised values show
_KEEP = st.none()
_ROW_CELLS = {
    **{h: _KEEP | _cells(n) for n, h in _HEADERS.items()},
    **dict.fromkeys(_CODES.values(), _KEEP | _CELLS),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from([IBAN_ROW, UK_ROW]), st.fixed_dictionaries(_ROW_CELLS)),
        min_size=1,
        max_size=5,
    )
)  # fmt: skip
def test_clean_columns_give_what_a_close_look_and_the_rules_give(
    rows: list[tuple[dict[str, str], dict[str, str | None]]],
) -> None:
    """Whatever the cells, the issues and valid rows are those found with no column clean."""
    file = [{**base, **{h: v for h, v in cells.items() if v is not None}} for base, cells in rows]
    fast = check(file)
    with patch.dict(CLEAN, clear=True), patch.object(normalise, "CLEAN_CODES", frozenset()):
        slow = check(file)
    assert _summary(fast) == _summary(slow)


def test_a_usual_file_is_clean_in_those_columns() -> None:
    """Emails, E.164 phones, BICs and dashed sort codes as exported: clean, nothing to say."""
    from batchpay import ingest
    from tests.validate.helpers import LAYOUT, csv_of

    ingested = ingest.read_bytes(csv_of([IBAN_ROW, UK_ROW]), "p.csv", LAYOUT)
    assert ingested.clean == {"email", "phone", "bic", "sort_code", *_CODES}
    assert "sort_code" not in ingested.already_normal  # 20-00-00 is still normalised
    assert check([IBAN_ROW, UK_ROW]).valid["sort_code"].to_list() == ["", "200000"]
