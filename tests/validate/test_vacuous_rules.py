"""A rule the engine skips by its columns' lengths is one every row would pass.

:func:`batchpay.validate.schema.one_pass` does not run a rule whose ``passes_if_blank`` column
is blank in every row, or whose ``passes_if_filled`` column has no blank cell; ``validate``
gives it the lengths ingest's scan measured. Pinned here: each such rule passes every row of
any frame so shaped, and the scan's lengths hold for the frame validation checks.
"""

from __future__ import annotations

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchpay import ingest
from batchpay.layout import CANONICAL_COLUMNS, load_layout
from batchpay.validate import columns, schema
from tests.validate.helpers import HEADER, IBAN_ROW, TODAY, UK_ROW, US_ROW, csv_of

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_CODES = st.sampled_from(
    ["", " ", "iban", "uk_bank", "us_bank", "EUR", "GBP", "USD", "US", "GB", "DE", "individual"]
)
_ROWS = st.lists(
    st.fixed_dictionaries({name: (_CODES | _TEXT) for name in CANONICAL_COLUMNS}),
    min_size=1,
    max_size=8,
)


def _frame(rows: list[dict[str, str]]) -> pl.DataFrame:
    names = load_layout().names
    return pl.DataFrame(
        {name: [r.get(name, "") for r in rows] for name in names},
        schema=dict.fromkeys(names, pl.String),
    ).with_columns(pl.int_range(2, len(rows) + 2, dtype=pl.Int64).alias("_row"))


def _rules(prepared: pl.DataFrame) -> list[schema.Rule]:
    layout = load_layout()
    return schema.all_rules(layout, TODAY, columns.longest(prepared, layout))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ROWS)
def test_a_rule_passes_every_row_where_its_column_is_blank_throughout(
    rows: list[dict[str, str]],
) -> None:
    """Blank one of a rule's ``passes_if_blank`` columns in every row: every row passes it."""
    frame = _frame(rows)
    for rule in _rules(columns.prepare(frame)):
        for column in rule.passes_if_blank:
            prepared = columns.prepare(frame.with_columns(pl.lit("").alias(column)))
            assert prepared[column].str.len_bytes().max() == 0
            assert rule.passes(prepared.lazy()).collect().to_series().all(), rule.key


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ROWS, st.text(st.characters(blacklist_categories=("Cs", "Z")), min_size=1, max_size=6))
def test_a_rule_passes_every_row_where_its_column_has_no_blank_cell(
    rows: list[dict[str, str]], filler: str
) -> None:
    """Fill the blank cells of a rule's ``passes_if_filled`` column: every row passes it."""
    frame = _frame(rows)
    for rule in _rules(columns.prepare(frame)):
        column = rule.passes_if_filled
        if column is None:
            continue
        cell = pl.col(column)
        filled = frame.with_columns(pl.when(cell == "").then(pl.lit(filler)).otherwise(cell))
        prepared = columns.prepare(filled)
        if prepared[column].str.len_bytes().min() == 0:
            continue  # the filler normalised away (a lone "-" in a sort code): not filled
        assert rule.passes(prepared.lazy()).collect().to_series().all(), rule.key


def test_the_annotated_rules_are_the_ones_meant() -> None:
    """Required cells are skipped when filled; format and cross-field rules when blank."""
    rules = {r.key: r for r in _rules(columns.prepare(_frame([{}])))}
    assert rules["reference:required"].passes_if_filled == "reference"
    assert rules["bic:bic_country"].passes_if_blank == ("bic", "iban")
    assert rules["iban:iban"].passes_if_blank == ("iban",)
    assert rules["beneficiary_ref:beneficiary_conflict"].passes_if_blank == ()
    assert rules["beneficiary_ref:beneficiary_conflict"].passes_if_filled is None


def test_the_scan_measures_what_validation_sees() -> None:
    """The reader's lengths of the columns it left as read are those of the checked frame;
    a trimmed column, or one normalising rewrites, is left to validation to measure."""
    layout = load_layout()
    iban_row = {k: v for k, v in IBAN_ROW.items() if k != "BIC"}
    rows = [{**iban_row, "Description": " padded "}, {**UK_ROW, "Sort Code": "20-00-00"}, US_ROW]
    header = [h for h in HEADER if h != "BIC"]
    ingested = ingest.read_bytes(csv_of(rows, header), "p.csv", layout)
    prepared = columns.prepare(ingested.frame, already_normal=ingested.already_normal)
    measured = columns.lengths(prepared, layout.names)
    assert ingested.lengths
    for name, known in ingested.lengths.items():
        assert known == measured[name], name
    assert "description" not in ingested.lengths
    assert "sort_code" not in ingested.lengths
    assert ingested.lengths["bic"] == (0, 0)  # absent from the file: blank throughout
