"""The layout's rules run over the whole frame, their failures mapped to issues.

Every rule is a check of one column, keyed ``column:code``. :func:`run_rules` evaluates them
all in one parallel polars pass and lists every failing cell of every row as failure cases
(column, check, row position); :func:`run_pandera` runs the very same rules as a pandera
``DataFrameSchema`` (one ``pa.Check`` per rule, ``lazy=True``) and gives the same cases —
the reference :func:`run_rules` is held to (``tests/validate/test_rules_oracle.py``), and what
answers when the frame is not the all-string, null-free frame ingest makes (a bug, which
pandera names). :func:`issues_from_failures` turns the cases back into
:class:`~batchpay.errors.RowIssue` — pandera's own text never reaches the user.

Why not pandera for every file: it evaluates each check as a query of its own (some 60 scans
of a million-row frame, each materialised), while one select lets polars share the work
across columns and cores; with no failure nothing but a boolean per rule and row is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import TYPE_CHECKING

import polars as pl

from batchpay.errors import RowIssue
from batchpay.layout import Layout
from batchpay.validate import column_rules, columns, cross_field
from batchpay.validate.rule import Rule

if TYPE_CHECKING:
    import pandera.polars as pa

__all__ = ["all_rules", "issues_from_failures", "run_pandera", "run_rules"]

_FAILURES = {"column": pl.String, "check": pl.String, "index": pl.Int32}


def all_rules(layout: Layout, today: date, longest: Mapping[str, int]) -> list[Rule]:
    """Every rule, in the order they run: each column's, the value formats, the cross-field."""
    rules: list[Rule] = []
    for spec in layout.columns:
        rules.extend(column_rules.layout_rules(spec, longest))
    rules.extend(column_rules.value_rules(today))
    rules.extend(cross_field.cross_field_rules())
    return rules


def _check(rule: Rule) -> pa.Check:
    import pandera.polars as pa
    from pandera.api.polars.types import PolarsData

    def run(data: PolarsData) -> pl.LazyFrame:
        return rule.passes(data.lazyframe)

    return pa.Check(run, name=rule.key, error=rule.key, ignore_na=False)


def _schema(rules: list[Rule]) -> pa.DataFrameSchema:
    import pandera.polars as pa

    checks: dict[str, list[pa.Check]] = {}
    for rule in rules:
        checks.setdefault(rule.column, []).append(_check(rule))
    return pa.DataFrameSchema(
        {c: pa.Column(pl.String, checks=cs, nullable=False) for c, cs in checks.items()},
        name="payout rows",
    )


def run_rules(prepared: pl.DataFrame, rules: list[Rule]) -> pl.DataFrame:
    """Failure cases as (column, check, index) — :func:`run_pandera`'s, from one pass."""
    used = sorted({r.column for r in rules})
    if any(prepared.schema.get(c) != pl.String or prepared[c].null_count() for c in used):
        return run_pandera(prepared, rules)  # not ingest's frame: pandera says what is wrong
    lazy = prepared.lazy()
    row_wise = [(rule, rule.ok) for rule in rules if rule.ok is not None]
    per_value = [rule for rule in rules if rule.value_ok is not None]
    with ThreadPoolExecutor(max_workers=1) as pool:
        # across rows: each computes its row-wise expression from the whole frame, in polars
        # (no GIL held) beside the queries below
        across = [(r, pool.submit(r.frame_ok, lazy)) for r in rules if r.frame_ok is not None]
        # the row-wise checks and the per-value ones' distinct values, side by side
        ok, *distinct = pl.collect_all(
            [
                lazy.select([e.fill_null(False).alias(r.key) for r, e in row_wise]),
                *(lazy.select(pl.col(r.column).unique()) for r in per_value),
            ]
        )
        later = [(rule, done.result()) for rule, done in across]
    for rule, values in zip(per_value, distinct, strict=True):
        assert rule.value_ok is not None
        # the costly checks: once per distinct value; nothing to look up when all pass
        column = values.to_series()
        failing = column.filter(~rule.value_ok(column).fill_null(False))
        if not failing.is_empty():
            later.append((rule, ~pl.col(rule.column).is_in(failing.implode())))
    if later:
        ok = ok.hstack(lazy.select([e.fill_null(False).alias(r.key) for r, e in later]).collect())
    checks = [*row_wise, *later]
    if not checks:
        return pl.DataFrame(schema=_FAILURES)
    failed = ok.select(pl.all().not_().any()).row(0)
    cases = [
        ok.select(pl.arg_where(~pl.col(rule.key)).cast(pl.Int32).alias("index")).select(
            pl.lit(rule.column).alias("column"), pl.lit(rule.key).alias("check"), "index"
        )
        for (rule, _), bad in zip(checks, failed, strict=True)
        if bad
    ]
    return pl.concat(cases) if cases else pl.DataFrame(schema=_FAILURES)


def run_pandera(prepared: pl.DataFrame, rules: list[Rule]) -> pl.DataFrame:
    """Failure cases as (column, check, index) from the pandera schema of ``rules``; empty
    when every row passed."""
    from pandera.config import ValidationDepth, config_context
    from pandera.errors import SchemaErrors

    schema = _schema(rules)
    # The environment may switch pandera off or to schema-only; these checks must always run.
    with config_context(validation_enabled=True, validation_depth=ValidationDepth.SCHEMA_AND_DATA):
        try:
            schema.validate(prepared, lazy=True)
        except SchemaErrors as exc:
            cases: pl.DataFrame = exc.failure_cases
            return cases.select("column", "check", "index")
    return pl.DataFrame(schema=_FAILURES)


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
