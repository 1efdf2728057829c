"""Identities: file hash, content fingerprint, row keys and idempotency keys."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from batchpay import dedupe
from batchpay.layout import DuplicateRules

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


def test_allowed_repeat_names_the_first_row() -> None:
    """With allow_repeats, an exact repeat is accepted as the same as the earlier row."""
    rows = [dict(ROW, _row="2"), dict(ROW, _row="5")]
    found = dedupe.check_in_file(rows, DuplicateRules(allow_repeats=True))
    assert [(d.row, d.first_row) for d in found.repeats] == [(5, 2)]
    assert found.repeats[0].message == "same as row 2"
    assert found.issues == []


def test_repeat_is_refused_by_default_naming_both_rows() -> None:
    """Without allow_repeats, the later copy is refused, naming the first row and the payout."""
    found = dedupe.check_in_file([dict(ROW, _row="2"), dict(ROW, _row="5")])
    assert found.repeats == []
    (issue,) = found.issues
    assert (issue.row, issue.code) == (5, "repeated_row")
    assert "row 2" in issue.message and "'INV-1'" in issue.message and "'V-1'" in issue.message


def test_identity_ignores_case_and_spaces_but_content_does_not() -> None:
    """' inv-1 ' is the same reference as INV-1 (identity_text), written differently."""
    rows = [dict(ROW, _row="2"), dict(ROW, _row="3", reference=" inv-1 ", beneficiary_ref="v-1")]
    found = dedupe.check_in_file(rows, DuplicateRules(allow_repeats=True))
    assert {i.code for i in found.issues} == {"conflicting_repeat"}
    assert "reference (the same but for case or spaces)" in found.issues[0].message


def test_different_details_refuse_every_row_and_never_show_the_iban() -> None:
    """Same reference and payee, other amount and IBAN: all three rows refused, IBAN not shown."""
    other_iban = "FR1420041010050500013M02606"
    rows = [
        dict(ROW, _row="2"),
        dict(ROW, _row="5"),
        dict(ROW, _row="6", amount="99", iban=other_iban),
    ]
    found = dedupe.check_in_file(rows, DuplicateRules(allow_repeats=True, reference_per_payee=True))
    assert [(i.row, i.code) for i in found.issues] == [
        (2, "conflicting_repeat"),
        (5, "conflicting_repeat"),
        (6, "conflicting_repeat"),
    ]
    last = found.issues[2].message
    assert "rows 2 and 5" in last and "amount (99.00 here, 10.00 on row 2, 10.00 on row 5)" in last
    assert "iban" in last
    for issue in found.issues:
        assert ROW["iban"] not in issue.message and other_iban not in issue.message
        assert "0532013000" not in issue.message


def test_one_reference_for_two_payees_depends_on_reference_per_payee() -> None:
    """One reference for payees V-1 and V-2 is refused on both rows unless per payee."""
    rows = [dict(ROW, _row="2"), dict(ROW, _row="3", beneficiary_ref="V-2")]
    refused = dedupe.check_in_file(rows)
    assert [(i.row, i.code) for i in refused.issues] == [
        (2, "reference_for_other_payee"),
        (3, "reference_for_other_payee"),
    ]
    assert "row 3 for payee 'V-2'" in refused.issues[0].message
    accepted = dedupe.check_in_file(rows, DuplicateRules(reference_per_payee=True))
    assert accepted.issues == [] and accepted.repeats == []


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
