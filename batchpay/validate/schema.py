"""The layout's rules run over the whole frame as a pandera schema, their failures mapped to
issues.

Every rule is a check of one column, keyed ``column:code``. What ``validate`` runs for every
file is :func:`run_rules`: one pandera ``DataFrameSchema`` (:func:`payout_schema`, polars
backend) that checks the frame's columns (present, ``String``, not null) and carries the data
rules as ONE DataFrame-level ``pa.Check``, :class:`AllRulesPass`. That check's function is the
one-pass engine (:func:`one_pass`: every rule evaluated in one parallel polars query) and
returns one boolean per row — every rule passes — so pandera decides pass or fail; the failure
cases (column, check, row position) are then the engine's, kept by the check. With no failure
pandera adds a few milliseconds (its null counts and one boolean column) to the engine's pass;
its import (~0.2 s CPU) overlaps the parse when :func:`preload_pandera` started it.

:func:`run_pandera` runs the very same rules the old way, one ``pa.Check`` per rule
(``lazy=True``): the reference the engine is held to, case for case
(``tests/validate/test_rules_oracle.py``), and what answers when pandera finds the frame is
not the all-string, null-free frame ingest makes (a bug, which pandera then names per check).
:func:`issues_from_failures` turns the cases back into :class:`~batchpay.errors.RowIssue` —
pandera's own text never reaches the user.

Why not one ``pa.Check`` per rule in production: pandera evaluates each check as a query of its
own (some 60 scans of a million-row frame, each materialised), while one select lets polars
share the work across columns and cores; with no failure nothing but a boolean per rule and row
is built.
"""

from __future__ import annotations

import contextlib
import sys
import threading
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
    from pandera.api.polars.types import PolarsData

__all__ = [
    "AllRulesPass",
    "all_rules",
    "issues_from_failures",
    "one_pass",
    "payout_schema",
    "preload_pandera",
    "run_pandera",
    "run_rules",
]

_FAILURES = {"column": pl.String, "check": pl.String, "index": pl.Int32}
# columns' (shortest, longest) value in bytes
Lengths = Mapping[str, tuple[int, int]]


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


_ALL_RULES = "all rules pass"


def preload_pandera() -> threading.Thread | None:
    """Import pandera's polars API in a thread, so its import overlaps the file's parse (which
    runs in polars without the GIL); :func:`run_rules` imports it again, waiting if need be.

    Not a daemon: a command that fails early waits for the import to end before exiting
    rather than finalising the interpreter under an import in progress."""
    if "pandera.polars" in sys.modules:
        return None

    def load() -> None:
        # a missing pandera is said by run_rules' own import, not by this thread
        with contextlib.suppress(ImportError):
            # pandera's polars API, and the backends its first validate registers
            import pandera.backends.polars.builtin_checks
            import pandera.backends.polars.checks
            import pandera.backends.polars.components
            import pandera.backends.polars.container
            import pandera.polars  # noqa: F401

    thread = threading.Thread(target=load, name="preload-pandera")
    thread.start()
    return thread


class AllRulesPass:
    """The data rules as one pandera check function: one boolean per row, True where every rule
    passes (the one-pass engine); the engine's failure cases are kept in :attr:`cases`.
    ``lengths`` are columns' known (shortest, longest) values, as :func:`one_pass` takes."""

    def __init__(
        self,
        rules: list[Rule],
        lengths: Lengths | None = None,
        clean: frozenset[str] = frozenset(),
    ) -> None:
        self.rules = rules
        self.lengths = lengths
        self.clean = clean
        self.cases: pl.DataFrame | None = None

    def __call__(self, data: PolarsData) -> pl.LazyFrame:
        frame = data.lazyframe.collect()  # the frame being validated (no copy: a scan of it)
        cases = one_pass(frame, self.rules, self.lengths, self.clean)
        self.cases = cases
        row_ok = pl.repeat(True, frame.height, dtype=pl.Boolean, eager=True)
        if not cases.is_empty():
            row_ok = row_ok.scatter(cases["index"].unique(), False)
        return pl.LazyFrame({_ALL_RULES: row_ok})


def payout_schema(
    rules: list[Rule], lengths: Lengths | None = None, clean: frozenset[str] = frozenset()
) -> tuple[pa.DataFrameSchema, AllRulesPass]:
    """The pandera schema ``validate`` runs: the rules' columns (present, ``String``, not null)
    and the rules as one DataFrame-level check; the check function is returned beside it."""
    import pandera.polars as pa

    engine = AllRulesPass(rules, lengths, clean)
    # pandera's own failure cases are whole rows: one example is enough, the engine's cases
    # (column, check, row) are what issues are made from
    check = pa.Check(engine, name=_ALL_RULES, error=_ALL_RULES, ignore_na=False, n_failure_cases=1)
    used = sorted({r.column for r in rules})
    return (
        pa.DataFrameSchema(
            {c: pa.Column(pl.String, nullable=False) for c in used},
            checks=[check] if rules else [],
            name="payout rows",
        ),
        engine,
    )


def run_rules(
    prepared: pl.DataFrame,
    rules: list[Rule],
    lengths: Lengths | None = None,
    clean: frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """Failure cases as (column, check, index), pandera deciding: :func:`payout_schema` run
    over ``prepared``, the cases :func:`one_pass`'s (the same as :func:`run_pandera`'s)."""
    from pandera.config import ValidationDepth, config_context
    from pandera.errors import SchemaErrors

    schema, engine = payout_schema(rules, lengths, clean)
    # The environment may switch pandera off or to schema-only; these checks must always run.
    with config_context(validation_enabled=True, validation_depth=ValidationDepth.SCHEMA_AND_DATA):
        try:
            schema.validate(prepared, lazy=True)
        except SchemaErrors as exc:
            checks = set(exc.failure_cases["check"].unique().to_list())
            if checks != {_ALL_RULES} or engine.cases is None:
                # not ingest's frame (a column missing, not text, a null): pandera, per check,
                # names what is wrong
                return run_pandera(prepared, rules)
            return engine.cases
    return pl.DataFrame(schema=_FAILURES)


def one_pass(
    prepared: pl.DataFrame,
    rules: list[Rule],
    lengths: Lengths | None = None,
    clean: frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """Every rule over ``prepared`` (all-string, null-free) in one polars pass: failure cases
    as (column, check, index), the same as :func:`run_pandera`'s.

    A rule every row passes by the lengths of its columns alone (:attr:`Rule.passes_if_blank`:
    a column blank throughout; :attr:`Rule.passes_if_filled`: a column without a blank cell)
    is not run: ``lengths`` gives columns' (shortest, longest) value in bytes where already
    known (the reader's scan), the rest are measured here in one query. Nor is a rule whose
    :attr:`Rule.passes_if_clean` column is in ``clean``: the reader's scan found every cell of
    it clean (:data:`batchpay.normalise.CLEAN`)."""
    rules = _not_vacuous(prepared, [r for r in rules if r.passes_if_clean not in clean], lengths)
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
                *(lazy.select(_distinct(r)) for r in per_value),
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


def _distinct(rule: Rule) -> pl.Expr:
    """The distinct values a per-value rule is asked about: blank left out where the rule
    passes it (every row would pass a column blank throughout), as most columns are sparse."""
    cell = pl.col(rule.column)
    return (cell.filter(cell != "") if rule.column in rule.passes_if_blank else cell).unique()


def _not_vacuous(prepared: pl.DataFrame, rules: list[Rule], known: Lengths | None) -> list[Rule]:
    """``rules`` less those every row of ``prepared`` passes by its columns' lengths alone."""
    named = [c for r in rules for c in (*r.passes_if_blank, r.passes_if_filled) if c]
    if not named:
        return rules
    lengths = columns.lengths(prepared, named, known)
    blank = {c for c, (_, longest) in lengths.items() if longest == 0}
    filled = {c for c, (shortest, _) in lengths.items() if shortest > 0}
    return [
        r
        for r in rules
        if not blank.intersection(r.passes_if_blank) and r.passes_if_filled not in filled
    ]


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
