"""pandera validates every file: the payout schema's one DataFrame-level check decides.

:func:`batchpay.validate.schema.run_rules` runs :func:`~batchpay.validate.schema.payout_schema`
(the columns present, text, not null, and every data rule as one ``pa.Check`` whose function
is the one-pass engine). pandera's verdict per row must be the engine's: a row fails the
check exactly when the engine lists a case for it, and the cases returned are the engine's.
"""

from __future__ import annotations

import polars as pl
import pytest
from pandera.config import config_context
from pandera.errors import SchemaErrors

from batchpay import ingest
from batchpay.layout import load_layout
from batchpay.validate import columns, schema
from batchpay.validate.rule import Rule
from tests.validate.helpers import IBAN_ROW, TODAY, UK_ROW, US_ROW, csv_of


def _prepared(rows: list[dict[str, str]]) -> tuple[pl.DataFrame, list[Rule]]:
    layout = load_layout()
    frame = ingest.read_bytes(csv_of(rows), "rows.csv", layout).frame
    prepared = columns.prepare(frame)
    return prepared, schema.all_rules(layout, TODAY, columns.longest(prepared, layout))


def test_a_valid_frame_passes_the_pandera_schema() -> None:
    """Valid rows: pandera passes the frame, and the engine found nothing."""
    prepared, rules = _prepared([IBAN_ROW, US_ROW, UK_ROW])
    payout_schema, engine = schema.payout_schema(rules)
    payout_schema.validate(prepared, lazy=True)
    assert engine.cases is not None and engine.cases.is_empty()
    assert schema.run_rules(prepared, rules).is_empty()


def test_pandera_fails_exactly_the_rows_the_engine_lists() -> None:
    """Broken rows beside valid ones: pandera's failing rows are the engine's, and the cases
    run_rules returns are the engine's (column, check, row)."""
    broken = [
        {**IBAN_ROW, "IBAN": "DE89370400440532013001"},
        {**US_ROW, "Routing Number": "21000021"},
        {**UK_ROW, "Amount": "1,5"},
    ]
    prepared, rules = _prepared([IBAN_ROW, broken[0], US_ROW, broken[1], UK_ROW, broken[2]])
    payout_schema, engine = schema.payout_schema(rules)
    with pytest.raises(SchemaErrors) as raised:
        payout_schema.validate(prepared, lazy=True)
    (error,) = raised.value.schema_errors  # one check failed: the rules', nothing else
    assert error.check is not None and error.check.name == "all rules pass"
    assert error.check_output is not None
    failing = error.check_output.with_row_index("i").filter(~pl.all().exclude("i"))["i"]
    assert engine.cases is not None
    assert sorted(failing.to_list()) == sorted(set(engine.cases["index"].to_list())) == [1, 3, 5]
    found = schema.run_rules(prepared, rules)
    assert found.sort(pl.all()).equals(schema.one_pass(prepared, rules).sort(pl.all()))


def test_the_rules_run_even_when_the_environment_switches_pandera_off() -> None:
    """PANDERA_VALIDATION_ENABLED=False or a schema-only depth does not skip the rules."""
    prepared, rules = _prepared([IBAN_ROW, {**IBAN_ROW, "IBAN": "DE89370400440532013001"}])
    with config_context(validation_enabled=False):
        found = schema.run_rules(prepared, rules)
    assert set(found["index"].to_list()) == {1}


def test_a_frame_without_a_rules_column_is_named_by_pandera_per_check() -> None:
    """A prepared frame missing a column (a bug upstream) is not judged by the one check:
    the per-rule pandera schema answers, and the issue mapping calls it a bug."""
    prepared, rules = _prepared([IBAN_ROW])
    broken = prepared.drop("currency")
    failures = schema.run_rules(broken, rules)
    assert "all rules pass" not in failures["check"].to_list()
    with pytest.raises(RuntimeError, match="could not run check"):
        schema.issues_from_failures(broken, rules, failures, {})
