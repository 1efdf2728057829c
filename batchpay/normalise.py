"""How validation normalises a column before its rules run, and which cells it would change.

Shared by ingest, whose one scan of each column also looks for a cell a normalisation would
change (:data:`CHANGES`), and :func:`batchpay.validate.columns.prepare`, which applies the
normalisations (:data:`NORMAL`) to the columns that have such a cell. Kept apart from both so
neither imports the other.
"""

from __future__ import annotations

import polars as pl

__all__ = ["CHANGES", "LOWER", "NORMAL", "UPPER"]

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
