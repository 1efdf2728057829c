"""The one-pass rule engine finds exactly what the pandera schema of the same rules finds.

:func:`batchpay.validate.schema.run_rules` (what ``validate`` runs) is held to
:func:`~batchpay.validate.schema.run_pandera` (the rules as a pandera ``DataFrameSchema``, what
``validate`` ran before): the same failure cases, so the same issues, over every sample file,
every readable file of the hostile corpus, many broken rows at once and arbitrary cell text.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchpay import ingest
from batchpay.layout import CANONICAL_COLUMNS, Layout, load_layout
from batchpay.validate import columns, schema
from tests.hostile.conftest import layout_with_limits
from tests.hostile.corpus import CASES, Case
from tests.validate.helpers import IBAN_ROW, TODAY, UK_ROW, US_ROW, csv_of

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted(p for p in (ROOT / "samples").rglob("*") if p.suffix in (".csv", ".xlsx"))


def _cases(failures: pl.DataFrame) -> list[tuple[str, str, int]]:
    return sorted((str(c), str(k), int(i)) for c, k, i in failures.iter_rows())


def _assert_same(
    frame: pl.DataFrame, layout: Layout, ingested: ingest.IngestedFile | None = None
) -> list[tuple[str, str, int]]:
    """Both engines over ``frame`` (ingest's canonical columns); returns the cases found.

    With ``ingested`` (the reader's result), the engine also runs as ``validate`` runs it:
    with the lengths the reader's scan measured, where it skips the rules they make vacuous."""
    prepared = columns.prepare(frame)
    rules = schema.all_rules(layout, TODAY, columns.longest(prepared, layout))
    fast = _cases(schema.run_rules(prepared, rules))
    assert fast == _cases(schema.run_pandera(prepared, rules))
    if ingested is not None:
        assert _cases(schema.run_rules(prepared, rules, ingested.lengths)) == fast
    return fast


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_files_fail_the_same_checks(path: Path) -> None:
    """Every sample file: the same failing (column, check, row) as pandera."""
    layout = load_layout()
    ingested = ingest.read_file(path, layout)
    found = _assert_same(ingested.frame, layout, ingested)
    if path.parent.name != "bad":
        assert found == []


_READABLE = [c for c in CASES if c.exit_code == 4]


@pytest.mark.parametrize("case", _READABLE, ids=lambda c: c.name)
def test_hostile_files_fail_the_same_checks(case: Case, tmp_path: Path) -> None:
    """Every readable hostile file: the same failing checks as pandera."""
    path = tmp_path / case.name
    case.build(path)
    layout = load_layout(layout_with_limits(tmp_path, case.limits) if case.limits else None)
    ingested = ingest.read_file(path, layout)
    _assert_same(ingested.frame, layout, ingested)


def test_many_broken_rows_fail_the_same_checks() -> None:
    """Rows broken in every column at once, beside valid ones: the same cases, none missed."""
    broken = [
        {**IBAN_ROW, "IBAN": "DE89370400440532013001", "BIC": "COBAFRFFXXX", "Amount": "1,5"},
        {**US_ROW, "Routing Number": "21000021", "Currency": "EUR", "Account Number": "12"},
        {**UK_ROW, "Sort Code": "20-00", "Country": "US", "Date of Birth": "2999-01-01"},
        {**IBAN_ROW, "Reference": "", "Currency": "XXX", "Type": "robot", "Email": "a@b"},
        {**IBAN_ROW, "Payee ID": "CTR-2"},  # same payee id as the UK row, another person
        {**US_ROW, "Phone": "555", "Nationality": "ZZ", "Amount": "12.345"},
    ]
    rows = [IBAN_ROW, US_ROW, UK_ROW, *broken] * 3
    layout = load_layout()
    ingested = ingest.read_bytes(csv_of(rows), "rows.csv", layout)
    found = _assert_same(ingested.frame, layout, ingested)
    assert {index for _, _, index in found} >= {3, 4, 5, 6, 7, 8}


def test_a_frame_not_made_by_ingest_is_named_by_pandera() -> None:
    """A null cell (a bug upstream, never a data problem) still reaches pandera, which names it."""
    layout = load_layout()
    frame = pl.DataFrame(
        {name: [None] for name in layout.names}, schema=dict.fromkeys(layout.names, pl.String)
    ).with_columns(pl.lit(2, dtype=pl.Int64).alias("_row"))
    prepared = columns.prepare(frame)
    rules = schema.all_rules(layout, TODAY, columns.longest(prepared, layout))
    failures = schema.run_rules(prepared, rules)
    assert _cases(failures) == _cases(schema.run_pandera(prepared, rules))
    with pytest.raises(RuntimeError, match="could not run check"):
        schema.issues_from_failures(prepared, rules, failures, {})


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=24)
_CODES = st.sampled_from(["", "iban", "uk_bank", "us_bank", "EUR", "gbp", "US", "GB", "de"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.fixed_dictionaries(
            {name: (_CODES | _TEXT) for name in CANONICAL_COLUMNS},
        ),
        min_size=1,
        max_size=12,
    )
)
def test_arbitrary_cells_fail_the_same_checks(rows: list[dict[str, str]]) -> None:
    """Whatever the cells hold, the one-pass engine and pandera agree case for case."""
    layout = load_layout()
    frame = pl.DataFrame(
        {name: [r.get(name, "") for r in rows] for name in layout.names},
        schema=dict.fromkeys(layout.names, pl.String),
    ).with_columns(pl.int_range(2, len(rows) + 2, dtype=pl.Int64).alias("_row"))
    _assert_same(frame, layout)
