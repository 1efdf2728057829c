"""The columns pandera checks, and the columns a valid row leaves with.

:func:`prepare` normalises the codes' case and the bank details' spacing and adds the amount's
parts as ``__*`` helper columns; :func:`final_exprs` rebuilds the canonical amount and fills
the layout's defaults in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import polars as pl

from batchpay import money
from batchpay.layout import Layout
from batchpay.normalise import CHANGES, CLEAN, LOWER, NORMAL, UPPER

__all__ = ["LOWER", "ROW", "UPPER", "final_exprs", "lengths", "longest", "prepare"]

ROW = "_row"


def prepare(
    frame: pl.DataFrame,
    *,
    already_normal: frozenset[str] = frozenset(),
    clean: frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """Normalised values plus the amount's parts (``__*`` helper columns).

    A column is normalised only when some cell would change: ``already_normal`` names the
    columns a reader's scan found none in (:attr:`batchpay.ingest.IngestedFile.already_normal`);
    the others are probed here first. A ``clean`` column (:attr:`~batchpay.ingest.IngestedFile.
    clean`) whose clean cells normalising only takes a literal out of is probed for, and rid
    of, that literal (``12-34-56``: its dashes) rather than by pattern."""
    unknown = [c for c in NORMAL if c not in already_normal]
    literal = {c: CLEAN[c].removes for c in unknown if c in clean and c in CLEAN}
    probes = [
        (
            pl.col(c).str.contains(text, literal=True)
            if (text := literal.get(c))
            else pl.col(c).str.contains(CHANGES[c])
        )
        .any()
        .alias(c)
        for c in unknown
    ]
    needed = (
        frame.lazy().select(probes).collect().row(0, named=True) if frame.height and probes else {}
    )
    normal = [
        pl.col(c).str.replace_all(text, "", literal=True)
        if (text := literal.get(c))
        else NORMAL[c][0]
        for c in unknown
        if needed.get(c)
    ]
    amount = pl.col("amount").str.extract_groups(r"^([0-9]+)(?:\.([0-9]+))?$")
    helpers = [
        amount.struct.field("1").alias("__whole"),
        amount.struct.field("2").alias("__fraction"),
    ]
    return frame.with_columns(normal + helpers).with_columns(
        # of the currency upper-cased above
        pl.col("currency")
        .replace_strict(money.CURRENCY_SCALE, default=2, return_dtype=pl.Int32)
        .alias("__scale"),
        pl.col("__whole").str.strip_chars_start("0").str.len_bytes().alias("__whole_digits"),
        pl.col("__fraction")
        .str.strip_chars_end("0")
        .str.len_bytes()
        .fill_null(0)
        .alias("__decimals"),
    )


def lengths(
    frame: pl.DataFrame,
    names: Iterable[str],
    known: Mapping[str, tuple[int, int]] | None = None,
) -> dict[str, tuple[int, int]]:
    """Shortest and longest value in bytes of each of ``names`` in ``frame``: ``known`` ones
    as given (a reader's scan measured them), the others measured here in one query. A frame
    without rows has none."""
    out = {c: known[c] for c in names if known and c in known}
    missing = [c for c in dict.fromkeys(names) if c not in out and c in frame.columns]
    if missing and frame.height:
        size = [pl.col(c).str.len_bytes() for c in missing]
        shortest = [s.min().alias(f"shortest {c}") for s, c in zip(size, missing, strict=True)]
        longest = [s.max().alias(f"longest {c}") for s, c in zip(size, missing, strict=True)]
        row = frame.lazy().select([*shortest, *longest]).collect().row(0, named=True)
        out.update({c: (int(row[f"shortest {c}"]), int(row[f"longest {c}"])) for c in missing})
    return out


def longest(prepared: pl.DataFrame, layout: Layout) -> dict[str, int]:
    """Longest value of each length-limited column, in bytes."""
    limited = [c.name for c in layout.columns if c.max_length is not None]
    lengths = [pl.col(c).str.len_bytes().max().alias(c) for c in limited]
    row = prepared.lazy().select(lengths).collect().row(0)
    return {c: int(n or 0) for c, n in zip(limited, row, strict=True)}


def final_exprs(valid: pl.DataFrame, layout: Layout) -> list[pl.Expr]:
    """The output columns: canonical amount at the currency's scale, defaults filled in."""
    scale = pl.col("__scale")
    whole = pl.col("__whole").str.strip_chars_start("0")
    whole = pl.when(whole == "").then(pl.lit("0")).otherwise(whole)
    fraction = pl.col("__fraction").fill_null("") + "000"
    canonical = (
        pl.when(scale == 0).then(whole).otherwise(whole + "." + fraction.str.slice(0, scale))
    )
    # most files already write amounts canonically (1234.50): then nothing needs rebuilding
    already = (
        (pl.col("__fraction").str.len_bytes().fill_null(0) == scale)
        & ~pl.col("__whole").str.starts_with("0")
    ) | (pl.col("amount") == "0")
    rebuild = not valid.is_empty() and not bool(valid.select(already.all()).item())
    out = []
    for spec in layout.columns:
        col = pl.col(spec.name)
        if spec.name == "amount" and rebuild:
            col = canonical
        elif spec.default is not None:
            col = pl.when(col == "").then(pl.lit(spec.default)).otherwise(col)
        out.append(col.alias(spec.name))
    return out
