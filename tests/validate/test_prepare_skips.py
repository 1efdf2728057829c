"""``prepare`` leaves a column as it is only where its normalisation would change no cell."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from batchpay.normalise import NORMAL
from batchpay.validate import columns

_CELL = st.text(
    st.sampled_from([*list("aZz09 -().\t"), "ß", "İ", "ﬁ", "é", "\xa0", "\u2003", "ǅ", "Ⓐ"]),
    max_size=6,
)
_NAMES = [*columns.LOWER, *columns.UPPER, "iban", "bic", "sort_code", "phone"]


def _every_normalisation(frame: pl.DataFrame) -> pl.DataFrame:
    """Each normalisation applied to its whole column, whether it changes anything or not."""
    return frame.with_columns([expr for expr, _ in NORMAL.values()])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(*[_CELL] * len(_NAMES)), min_size=1, max_size=8),
    st.sets(st.sampled_from(_NAMES)),
)
def test_prepare_normalises_as_if_every_column_were_rewritten(
    cells: list[tuple[str, ...]], plain: set[str]
) -> None:
    """Whatever the cells (ASCII or not, already normal or not), the prepared values are the
    normalisations' own; ``plain`` columns hold only what a normalisation leaves unchanged."""
    frame = pl.DataFrame([dict(zip(_NAMES, row, strict=True)) for row in cells])
    frame = frame.with_columns(amount=pl.lit("1.50"))
    frame = frame.with_columns(_every_normalisation(frame).select(sorted(plain)))
    prepared = columns.prepare(frame)
    expected = _every_normalisation(frame)
    assert prepared.select(_NAMES).equals(expected.select(_NAMES))


_CODE = st.text(st.sampled_from([*list("aEuRb -.()\t"), "ß", "é", "\xa0"]), max_size=4)


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.sampled_from(_NAMES), _CODE, max_size=5))
def test_what_ingest_found_normal_is_left_as_normalising_would_leave_it(
    cells: dict[str, str],
) -> None:
    """The columns the reader's scan calls already normal are exactly what normalising every
    column would give, whatever the file holds in them."""
    from batchpay import ingest
    from tests.validate.helpers import HEADER, IBAN_ROW, LAYOUT, csv_of

    label = {LAYOUT.match_header(h): h for h in HEADER}
    label = {name: label.get(name) or LAYOUT.column(name).aliases[0] for name in _NAMES}
    row = {**IBAN_ROW, **{label[name]: value for name, value in cells.items()}}
    header = [*HEADER, *(label[n] for n in cells if label[n] not in HEADER)]
    ingested = ingest.read_bytes(csv_of([row, IBAN_ROW], header), "p.csv", LAYOUT)
    prepared = columns.prepare(ingested.frame, already_normal=ingested.already_normal)
    expected = _every_normalisation(ingested.frame)
    assert prepared.select(_NAMES).equals(expected.select(_NAMES))


def test_a_plain_file_has_its_codes_called_normal_and_a_lower_case_currency_not() -> None:
    from batchpay import ingest
    from tests.validate.helpers import IBAN_ROW, LAYOUT, csv_of

    plain = ingest.read_bytes(csv_of([IBAN_ROW]), "p.csv", LAYOUT)
    assert {"currency", "country", "payment_method"} <= plain.already_normal
    lower = ingest.read_bytes(csv_of([{**IBAN_ROW, "Currency": "eur"}]), "p.csv", LAYOUT)
    assert "currency" not in lower.already_normal
    assert columns.prepare(lower.frame, already_normal=lower.already_normal)["currency"][0] == "EUR"
