"""``prepare`` leaves a column as it is only where its normalisation would change no cell."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from batchpay.validate import columns

_CELL = st.text(
    st.sampled_from([*list("aZz09 -().\t"), "ß", "İ", "ﬁ", "é", "\xa0", "\u2003", "ǅ", "Ⓐ"]),
    max_size=6,
)
_NAMES = [*columns.LOWER, *columns.UPPER, "iban", "bic", "sort_code", "phone"]


def _every_normalisation(frame: pl.DataFrame) -> pl.DataFrame:
    """Each normalisation applied to its whole column, whether it changes anything or not."""
    return frame.with_columns([expr for expr, _ in columns._NORMAL.values()])


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
