"""Validate ingested payout rows: every error of every row, as row number + column + message.

Every row is validated against a pandera schema (:func:`~batchpay.validate.schema.run_rules`:
a ``DataFrameSchema``, polars backend, ``lazy=True``, checking the columns and carrying the
rules of :func:`~batchpay.validate.schema.all_rules`, documented in ``schemas/layout.toml``, as
one DataFrame-level check evaluated in one polars pass), so every failing cell of every row is
collected; the same rules as a pandera schema of one check per rule are the reference it is
tested against, case for case. Each
failure case (column, check, row position) is mapped back to a
:class:`~batchpay.errors.RowIssue` carrying the file's row number, the user's own header text
and a plain-English message; pandera's own exception text never reaches the user.

Every check is a vectorised polars computation. The costly ones that look at one cell only (IBAN
mod-97 check digits, the ABA checksum, real dates) are evaluated once per *distinct* value of
their column and the failing values are then matched against the rows: payout files repeat a
beneficiary's details on each of their rows. The others, cross-field rules included, are
evaluated row by row.

One module per part: :mod:`~batchpay.validate.columns` prepares the frame pandera checks and
builds the valid rows' output columns; :mod:`~batchpay.validate.rule` is the rule type;
:mod:`~batchpay.validate.column_rules` (the layout's and the value formats') and
:mod:`~batchpay.validate.cross_field` make the rules, :mod:`~batchpay.validate.formats` holds
the patterns and per-value check digits and :mod:`~batchpay.validate.messages` their wording;
:mod:`~batchpay.validate.schema` runs them as a pandera schema and maps its failures to issues.
This module assembles the :class:`ValidationResult`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

import polars as pl

from batchpay import money
from batchpay.errors import RowIssue, ValidationFailed
from batchpay.ingest import IngestedFile
from batchpay.layout import Layout
from batchpay.validate import columns, schema

__all__ = ["ValidationResult", "lower_bound", "validate_frame"]


@dataclass(frozen=True)
class ValidationResult:
    """All problems of all rows, and the normalised rows that passed.

    ``valid`` has the canonical columns and ``_row``: values trimmed, codes in their normal
    case (currency and country upper, type and method lower), IBAN in electronic form, sort code
    and phone digits only, amount as the canonical decimal at the currency's scale, defaults
    from the layout filled in.
    """

    issues: list[RowIssue]
    valid: pl.DataFrame
    invalid_rows: set[int]
    rows_checked: int
    header_map: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every row passed."""
        return not self.issues

    def raise_for_issues(self) -> None:
        """Raise :class:`ValidationFailed` with every issue when any row failed."""
        if self.issues:
            raise ValidationFailed(self.issues, rows_checked=self.rows_checked)

    def totals_by_currency(self) -> dict[str, Decimal]:
        """Sum of the valid rows' amounts per currency, exact (summed in minor units)."""
        if self.valid.is_empty():
            return {}
        scale = pl.col("currency").replace_strict(
            money.CURRENCY_SCALE, default=2, return_dtype=pl.Int64
        )
        # canonical amounts carry exactly `scale` decimals: without the dot they are minor units
        minor = pl.col("amount").str.replace(".", "", literal=True).cast(pl.Int128)
        sums = (
            self.valid.group_by("currency")
            .agg(minor.sum().alias("minor"), scale.first().alias("scale"))
            .sort("currency")
        )
        return {
            str(cur): Decimal(int(m)).scaleb(-int(s))
            for cur, m, s in sums.select("currency", "minor", "scale").iter_rows()
        }

    def counts_by_beneficiary_type(self) -> dict[str, int]:
        """Number of valid rows per beneficiary type."""
        return self._counts("beneficiary_type")

    def counts_by_payment_method(self) -> dict[str, int]:
        """Number of valid rows per payment method."""
        return self._counts("payment_method")

    def _counts(self, column: str) -> dict[str, int]:
        if self.valid.is_empty():
            return {}
        counts = self.valid.group_by(column).len().sort(column)
        return {str(k): int(n) for k, n in counts.iter_rows()}


def validate_frame(
    ingested: IngestedFile, layout: Layout, *, today: date | None = None
) -> ValidationResult:
    """Check every row of ``ingested`` against ``layout`` and the payout rules.

    Returns every issue (ingest's Excel-damage issues included) and the normalised valid rows;
    never raises for bad data. ``today`` fixes "in the past" for dates of birth (tests).
    """
    today = today or date.today()
    frame = ingested.frame
    header_map = dict(ingested.header_map)
    prepared = columns.prepare(frame, already_normal=ingested.already_normal, clean=ingested.clean)
    # what the reader's scan measured of the columns it left as read, the rest measured now
    lengths = columns.lengths(prepared, layout.names, ingested.lengths)
    longest = {c: n for c, (_, n) in lengths.items()}
    rules = schema.all_rules(layout, today, longest)
    failures = schema.run_rules(prepared, rules, lengths, ingested.clean)
    issues = list(ingested.issues)
    # a cell ingest already reported (Excel damage) is not reported again as a symptom
    reported = {(i.row, i.column) for i in issues}
    issues.extend(
        i
        for i in schema.issues_from_failures(prepared, rules, failures, header_map)
        if (i.row, i.column) not in reported
    )
    if ingested.unknown_columns:
        issues = _name_absent_columns(issues, header_map, ingested.unknown_columns)
    position = {header_map.get(n, n): i for i, n in enumerate(layout.names)}
    issues.sort(key=lambda i: (i.row, position.get(i.column or "", -1), i.code))
    invalid_rows = {i.row for i in issues}
    valid = prepared
    if invalid_rows:
        bad = pl.Series(sorted(invalid_rows), dtype=pl.Int64)
        valid = valid.filter(~pl.col(columns.ROW).is_in(bad.implode()))
    valid = valid.select([*columns.final_exprs(valid, layout), pl.col(columns.ROW)])
    return ValidationResult(
        issues=issues,
        valid=valid,
        invalid_rows=invalid_rows,
        rows_checked=frame.height,
        header_map=header_map,
    )


def _name_absent_columns(
    issues: list[RowIssue], header_map: Mapping[str, str], unknown: list[str]
) -> list[RowIssue]:
    """Say so when a required cell is blank because its column is absent from the file.

    The header the user meant is often there under a name batchpay does not know (a typo):
    the columns it did not recognise are named.
    """
    shown = ", ".join(repr(u) for u in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
    present = set(header_map.values())
    out = []
    for issue in issues:
        column = issue.column or ""
        if issue.code.startswith("required_when") and column not in present:
            message = issue.message.replace(
                "is blank",
                f"is blank: the file has no {column} column (columns not recognised: {shown})",
                1,
            )
            issue = replace(issue, message=message)
        out.append(issue)
    return out


def lower_bound(frame: pl.DataFrame, layout: Layout, *, today: date | None = None) -> pl.DataFrame:
    """The same checks in bare polars, one boolean column per rule (for the benchmark).

    ``frame`` holds trimmed canonical string columns. No pandera and no issue mapping: the
    floor :func:`validate_frame` is measured against.
    """
    today = today or date.today()
    prepared = columns.prepare(frame)
    rules = schema.all_rules(layout, today, columns.longest(prepared, layout))
    lazy = prepared.lazy()
    row_wise = [r.ok.fill_null(False).alias(r.key) for r in rules if r.ok is not None]
    row_wise += [r.frame_ok(lazy).alias(r.key) for r in rules if r.frame_ok is not None]
    per_value = [r.passes(lazy) for r in rules if r.value_ok is not None]
    return pl.concat([lazy.select(row_wise), *per_value], how="horizontal").collect()
