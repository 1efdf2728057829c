"""The rule type: one check of one column, and the small builders the rule modules share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

__all__ = ["Explain", "Rule", "ValueTest", "blank", "const", "value_expr"]

Explain = Callable[[Mapping[str, Any]], str]
ValueTest = Callable[[pl.Series], pl.Series]


@dataclass(frozen=True, slots=True)
class Rule:
    """One check of one column, either row by row or per distinct value of the column.

    ``ok`` is a boolean expression over the prepared frame, True where the row passes;
    ``value_ok`` maps the column's distinct values to True where the value passes (blank
    included, when blank is acceptable). ``explain`` words the problem for a failing row.
    """

    column: str
    code: str
    explain: Explain
    ok: pl.Expr | None = None
    value_ok: ValueTest | None = None
    # across rows: computes, from the whole frame, the row-wise expression to check
    frame_ok: Callable[[pl.LazyFrame], pl.Expr] | None = None
    # every row passes when one of these columns is blank in every row ...
    passes_if_blank: tuple[str, ...] = ()
    # ... or when this column has no blank cell (the engine then need not run the rule)
    passes_if_filled: str | None = None
    # ... or when every cell of this column is clean (batchpay.normalise.CLEAN)
    passes_if_clean: str | None = None

    @property
    def key(self) -> str:
        return f"{self.column}:{self.code}"

    def passes(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """One boolean column, True for the rows of ``frame`` that pass."""
        if self.ok is not None:
            return frame.select(self.ok.fill_null(False).alias(self.key))
        if self.frame_ok is not None:
            return frame.select(self.frame_ok(frame).fill_null(False).alias(self.key))
        assert self.value_ok is not None
        values = frame.select(pl.col(self.column).unique()).collect().to_series()
        failing = values.filter(~self.value_ok(values).fill_null(False))
        return frame.select((~pl.col(self.column).is_in(failing.implode())).alias(self.key))


def blank(column: str) -> pl.Expr:
    """True where ``column`` is blank."""
    return pl.col(column) == ""


def const(message: str) -> Explain:
    """An explanation that is always ``message``, whatever the row."""

    def explain(_row: Mapping[str, Any]) -> str:
        return message

    return explain


def value_expr(column: str, ok: pl.Expr) -> ValueTest:
    """A per-value test from an expression over ``pl.col(column)``."""

    def test(values: pl.Series) -> pl.Series:
        return values.to_frame(column).select(ok.fill_null(False)).to_series()

    return test
