"""How validation normalises a column before its rules run, and which cells it would change.

Shared by ingest, whose one scan of each column also looks for a cell a normalisation would
change (:data:`CHANGES`), and :func:`batchpay.validate.columns.prepare`, which applies the
normalisations (:data:`NORMAL`) to the columns that have such a cell. Kept apart from both so
neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from batchpay.layout import Layout

__all__ = [
    "CHANGES",
    "CLEAN",
    "CLEAN_CODES",
    "LOWER",
    "NORMAL",
    "UPPER",
    "Clean",
    "clean_cells",
    "clean_codes",
]

LOWER = ("beneficiary_type", "payment_method", "account_type")
UPPER = ("currency", "source_currency", "country", "nationality")


_NON_ASCII = r"[^\x00-\x7F]"  # case mappings beyond ASCII are polars' own: always applied
# Each normalisation, and what a cell holds when it would change the cell: columns without
# such a cell (most files' codes are written as expected) are left as they are, neither
# rewritten nor copied.
NORMAL: dict[str, tuple[pl.Expr, str]] = {
    **{c: (pl.col(c).str.to_lowercase(), "[A-Z]|" + _NON_ASCII) for c in LOWER},
    **{c: (pl.col(c).str.to_uppercase(), "[a-z]|" + _NON_ASCII) for c in UPPER},
    # plain spaces only: other whitespace inside an IBAN is reported, not silently dropped
    "iban": (
        pl.col("iban").str.replace_all(" ", "", literal=True).str.to_uppercase(),
        "[ a-z]|" + _NON_ASCII,
    ),
    "bic": (pl.col("bic").str.replace_all(r"\s", "").str.to_uppercase(), r"[\sa-z]|" + _NON_ASCII),
    "sort_code": (pl.col("sort_code").str.replace_all(r"[\s-]", ""), r"[\s-]"),
    "phone": (pl.col("phone").str.replace_all(r"[\s().\-]", ""), r"[\s().\-]"),
}
# what a cell holds when its column's normalisation would change it
CHANGES: dict[str, str] = {name: changes for name, (_, changes) in NORMAL.items()}


@dataclass(frozen=True)
class Clean:
    """What a cell of a column holds when ingest's scan need not look at it closely and the
    column's format rule passes it: a full-match pattern (blank included), and whether such a
    cell is also one normalisation leaves as it is; if not, ``removes`` is all normalising
    does to it (that literal text taken out)."""

    pattern: str
    normal: bool = True
    removes: str | None = None


# Columns whose cells are usually all so: one scan of the column then answers both what
# ingest looks for (edge whitespace, a formula start, non-ASCII, scientific notation) and the
# column's format rule (batchpay.validate.column_rules), which validation then need not run.
# Each pattern's cells match none of what the scan looks for and pass the format rule once
# normalised (tests/validate/test_clean_columns.py).
CLEAN: dict[str, Clean] = {
    # formats.EMAIL_RE, starting with none of = + - @
    "email": Clean(r"^(?:[^@\s=+\-][^@\s]*@[^@\s.]+(?:\.[^@\s.]+)+)?$"),
    "phone": Clean(r"^(?:\+[1-9][0-9]{6,14})?$"),  # formats.E164_RE
    "bic": Clean(r"^(?:[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?)?$"),  # formats.BIC_RE
    # 12-34-56 (normalised to 123456) or 123456
    "sort_code": Clean(r"^(?:[0-9]{2}-?[0-9]{2}-?[0-9]{2})?$", normal=False, removes="-"),
}

# Code columns whose cells are usually all one of the values their rules allow, written in
# the case normalising gives: then, too, the scan has nothing to look at closely, the column
# is left as it is, and its value rules (the layout's values; known currencies, countries)
# pass every row.
CLEAN_CODES: frozenset[str] = frozenset(LOWER + UPPER)


def clean_codes(name: str, layout: Layout) -> frozenset[str] | None:
    """The values (blank included) a cell of code column ``name`` is clean as: allowed by
    every value rule of the column, ASCII, without edge whitespace, in the normal case."""
    from batchpay import banking, money  # the tables the rules check against

    if name not in CLEAN_CODES:
        return None
    allowed: list[frozenset[str]] = []
    values = layout.column(name).values
    if values is not None:
        allowed.append(frozenset(v.upper() if name in UPPER else v for v in values))
    if name in ("currency", "source_currency"):
        allowed.append(frozenset(money.CURRENCY_SCALE))
    if name in ("country", "nationality"):
        allowed.append(frozenset(banking.COUNTRIES))
    if not allowed:
        return None
    normal = str.upper if name in UPPER else str.lower
    return frozenset(
        v
        for v in frozenset.intersection(*allowed)
        if v.isascii() and v == v.strip() and v == normal(v)
    ) | {""}


def clean_cells(name: str, layout: Layout, cell: pl.Expr) -> tuple[pl.Expr, bool] | None:
    """True where ``cell`` (of canonical column ``name``) is clean (:data:`CLEAN`,
    :func:`clean_codes`), and whether a clean cell is one normalising leaves as it is; None
    for a column without such cells."""
    if name in CLEAN:
        return cell.str.contains(CLEAN[name].pattern), CLEAN[name].normal
    codes = clean_codes(name, layout)
    if codes is None:
        return None
    return cell.is_in(sorted(codes)), True
