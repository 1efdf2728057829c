"""Identities: file hash, content fingerprint, row keys and idempotency keys."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from batchpay import dedupe

ROW = {
    "_row": "2",
    "reference": "INV-1",
    "beneficiary_ref": "V-1",
    "amount": "10.00",
    "currency": "EUR",
    "iban": "DE89370400440532013000",
}


def test_fingerprint_ignores_row_order_and_row_numbers() -> None:
    """A re-saved copy with rows moved or renumbered has the same fingerprint."""
    a = dict(ROW)
    b = dict(ROW, reference="INV-2", _row="3")
    moved = [dict(b, _row="2"), dict(a, _row="3")]
    assert dedupe.content_fingerprint([a, b]) == dedupe.content_fingerprint(moved)


def test_fingerprint_changes_with_any_amount() -> None:
    """Changing one amount changes the fingerprint."""
    assert dedupe.content_fingerprint([ROW]) != dedupe.content_fingerprint(
        [dict(ROW, amount="10.01")]
    )


def test_fingerprint_ignores_surrounding_whitespace() -> None:
    """Excel re-saves that add stray spaces do not hide a duplicate file."""
    assert dedupe.content_fingerprint([ROW]) == dedupe.content_fingerprint(
        [dict(ROW, reference=" INV-1 ")]
    )


@given(
    env=st.text(min_size=1, max_size=20),
    ref=st.text(max_size=30),
    ben=st.text(max_size=30),
)
def test_row_key_is_deterministic_and_case_insensitive(env: str, ref: str, ben: str) -> None:
    """The same business identity always yields the same key, whatever the case or spacing."""
    k1 = dedupe.row_key(env, ref, ben)
    assert k1 == dedupe.row_key(env, f"  {ref.upper()} ", ben.lower())
    assert len(k1) == 40


@given(ref=st.text(min_size=1, max_size=30), ben=st.text(min_size=1, max_size=30))
def test_row_key_depends_on_environment(ref: str, ben: str) -> None:
    """The same row in the sandbox and live gets different keys."""
    assert dedupe.row_key("sandbox:x", ref, ben) != dedupe.row_key("live:x", ref, ben)


@given(attempt=st.integers(min_value=1, max_value=10_000))
def test_idempotency_key_fits_the_api_limit(attempt: int) -> None:
    """Keys stay under the API's 255-character limit and carry the attempt."""
    key = dedupe.idempotency_key("a" * 40, attempt)
    assert len(key) <= 255 and key.endswith(f"-{attempt}")


def test_in_file_duplicates_name_the_first_row() -> None:
    """A repeated reference+beneficiary is reported as the same as the earlier row."""
    rows = [dict(ROW, _row="2"), dict(ROW, _row="5"), dict(ROW, _row="6", amount="99.00")]
    dups = dedupe.in_file_duplicates(rows)
    assert [(d.row, d.first_row) for d in dups] == [(5, 2), (6, 2)]
    assert dups[0].message == "same as row 2"
    assert "different details" in dups[1].message


def test_fingerprint_sees_through_excel_number_formatting() -> None:
    """An XLSX copy storing 1250 where the CSV had 1250.00 is the same content."""
    assert dedupe.content_fingerprint([ROW]) == dedupe.content_fingerprint(
        [dict(ROW, amount="10", iban="de89 3704 0044 0532 0130 00")]
    )


def test_fingerprint_never_rounds_an_amount() -> None:
    """12.345 and 12.34 are different contents, even though one is invalid for EUR."""
    assert dedupe.content_fingerprint([dict(ROW, amount="12.345")]) != dedupe.content_fingerprint(
        [dict(ROW, amount="12.34")]
    )
