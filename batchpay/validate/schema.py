"""The pandera schema built from the layout's rules, run lazily, its failures mapped to issues.

Every rule becomes one ``pa.Check`` on its column, keyed ``column:code``; :func:`run_pandera`
runs them all with ``lazy=True`` so every failing cell of every row is collected, and
:func:`issues_from_failures` turns pandera's failure cases back into
:class:`~batchpay.errors.RowIssue` — pandera's own text never reaches the user.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData
from pandera.config import ValidationDepth, config_context
from pandera.errors import SchemaErrors

from batchpay.errors import RowIssue
from batchpay.layout import Layout
from batchpay.validate import column_rules, columns, cross_field
from batchpay.validate.rule import Rule

__all__ = ["all_rules", "issues_from_failures", "run_pandera"]


def all_rules(layout: Layout, today: date, longest: Mapping[str, int]) -> list[Rule]:
    """Every rule, in the order they run: each column's, the value formats, the cross-field."""
    rules: list[Rule] = []
    for spec in layout.columns:
        rules.extend(column_rules.layout_rules(spec, longest))
    rules.extend(column_rules.value_rules(today))
    rules.extend(cross_field.cross_field_rules())
    return rules


def _check(rule: Rule) -> pa.Check:
    def run(data: PolarsData) -> pl.LazyFrame:
        return rule.passes(data.lazyframe)

    return pa.Check(run, name=rule.key, error=rule.key, ignore_na=False)


def _schema(rules: list[Rule]) -> pa.DataFrameSchema:
    checks: dict[str, list[pa.Check]] = {}
    for rule in rules:
        checks.setdefault(rule.column, []).append(_check(rule))
    return pa.DataFrameSchema(
        {c: pa.Column(pl.String, checks=cs, nullable=False) for c, cs in checks.items()},
        name="payout rows",
    )


def run_pandera(prepared: pl.DataFrame, rules: list[Rule]) -> pl.DataFrame:
    """Failure cases as (column, check, index); empty when every row passed."""
    schema = _schema(rules)
    # The environment may switch pandera off or to schema-only; these checks must always run.
    with config_context(validation_enabled=True, validation_depth=ValidationDepth.SCHEMA_AND_DATA):
        try:
            schema.validate(prepared, lazy=True)
        except SchemaErrors as exc:
            cases: pl.DataFrame = exc.failure_cases
            return cases.select("column", "check", "index")
    return pl.DataFrame(schema={"column": pl.String, "check": pl.String, "index": pl.Int32})


def issues_from_failures(
    prepared: pl.DataFrame,
    rules: list[Rule],
    failures: pl.DataFrame,
    header_map: Mapping[str, str],
) -> list[RowIssue]:
    """One issue per failing row of each failed check, with the user's header as its column."""
    if failures.is_empty():
        return []
    by_key = {r.key: r for r in rules}
    issues: list[RowIssue] = []
    for (key,), group in failures.group_by("check", maintain_order=True):
        rule = by_key.get(str(key))
        if rule is None or group["index"].null_count():
            # a dtype/nullability failure or a check that crashed: a bug, not a data problem
            raise RuntimeError(f"validation could not run check {key}")
        rows = prepared[group["index"].cast(pl.Int64)]
        label = header_map.get(rule.column, rule.column)
        for row in rows.iter_rows(named=True):
            issues.append(RowIssue(int(row[columns.ROW]), label, rule.code, rule.explain(row)))
    return issues
