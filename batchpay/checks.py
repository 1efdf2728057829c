"""Check a payout file: ingest, validate, duplicates inside it — everything before the journal.

``check_file`` takes a :class:`~batchpay.source.PayoutFile` (a name and its bytes, wherever
they came from) and returns a :class:`CheckedFile`: the rows, the valid ones, every issue,
the content fingerprint and the duplicate rules in force.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

import polars as pl

from batchpay import dedupe, ingest
from batchpay import layout as layout_mod
from batchpay import validate as validate_mod
from batchpay.errors import RowIssue
from batchpay.money import parse_amount
from batchpay.options import RunOptions
from batchpay.source import PayoutFile, from_path

log = logging.getLogger(__name__)


@dataclass
class CheckedFile:
    """A payout file read, validated and checked for duplicates inside it: what a plan and a
    run are made from.

    The rows live in polars frames (``ingested.frame``, ``result.valid``); the dict views
    (:attr:`all_rows`, :attr:`valid_rows` and the sets built on them) are made on first use
    only, so ``validate`` of a large file never builds a Python object per row.
    """

    ingested: ingest.IngestedFile
    result: validate_mod.ValidationResult
    source: PayoutFile
    default_purpose: str
    duplicates: dedupe.InFileCheck
    rules: layout_mod.DuplicateRules
    _valid_keys: dict[str, list[str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @cached_property
    def valid_hashes(self) -> pl.Series:
        """:func:`~batchpay.dedupe.content_hashes` of ``result.valid``, row for row."""
        return dedupe.content_hashes(self.result.valid)

    def valid_keys(self, environment: str) -> list[str]:
        """:func:`~batchpay.dedupe.row_keys` of ``result.valid`` in ``environment``, row for
        row (made once per environment: the plan and the run both ask)."""
        keys = self._valid_keys.get(environment)
        if keys is None:
            keys = self._valid_keys[environment] = dedupe.row_keys(
                self.result.valid, environment
            ).to_list()
        return keys

    @cached_property
    def raw_hashes(self) -> pl.Series:
        """:func:`~batchpay.dedupe.content_hashes` of every row as read (``ingested.frame``)."""
        return dedupe.content_hashes(self.ingested.frame)

    @cached_property
    def fingerprint(self) -> str:
        """The content fingerprint of every row as read (made on first use: a plan against a
        journal without runs never needs it)."""
        return dedupe.hashes_fingerprint(self.raw_hashes)

    @property
    def row_count(self) -> int:
        """Data rows read from the file (blank rows not counted)."""
        return self.ingested.frame.height

    @cached_property
    def all_rows(self) -> list[dict[str, Any]]:
        """Every row as read (canonical columns and ``_row``)."""
        return self.ingested.frame.to_dicts()

    @cached_property
    def valid_rows(self) -> dict[int, dict[str, Any]]:
        """Rows that passed validation, normalised; duplicates among them are in
        ``duplicates``."""
        return {int(r["_row"]): r for r in self.result.valid.to_dicts()}

    @property
    def issues(self) -> list[RowIssue]:
        """Every refusal: invalid rows, then duplicates, in row order."""
        return sorted([*self.result.issues, *self.duplicates.issues], key=lambda i: i.row)

    @property
    def accepted_rows(self) -> dict[int, dict[str, Any]]:
        """Valid rows not refused as duplicates (later copies of a repeat included)."""
        refused = self.duplicates.refused_rows
        return {n: r for n, r in self.valid_rows.items() if n not in refused}

    @property
    def payable_rows(self) -> dict[int, dict[str, Any]]:
        """Accepted rows less the later copies of a repeat: one per payout to make."""
        repeats = self.duplicates.repeat_rows
        return {n: r for n, r in self.accepted_rows.items() if n not in repeats}

    @property
    def accepted_count(self) -> int:
        """How many rows :attr:`accepted_rows` holds, without building it."""
        return self.result.valid.height - len(self.duplicates.refused_rows)

    def payable_frame(self) -> pl.DataFrame:
        """:attr:`payable_rows` as a frame (the valid frame's columns and ``_row``)."""
        skip = self.duplicates.refused_rows | self.duplicates.repeat_rows
        if not skip:
            return self.result.valid
        bad = pl.Series(sorted(skip), dtype=pl.Int64).implode()
        return self.result.valid.filter(~pl.col("_row").is_in(bad))


def duplicate_rules(lay: layout_mod.Layout, options: RunOptions) -> layout_mod.DuplicateRules:
    """The layout's [duplicates] settings, overridden by the run's options where given."""
    rules = lay.duplicates
    if options.allow_repeats is not None:
        rules = dataclasses.replace(rules, allow_repeats=options.allow_repeats)
    if options.reference_per_payee is not None:
        rules = dataclasses.replace(rules, reference_per_payee=options.reference_per_payee)
    return rules


def load_layout(options: RunOptions) -> layout_mod.Layout:
    """The layout a run reads its file with: :func:`batchpay.layout.for_options`."""
    return layout_mod.for_options(options)


def read_source(path: Path | str, options: RunOptions) -> PayoutFile:
    """A local payout file as a source, refused unread when over the layout's size limit."""
    return from_path(path, load_layout(options))


def check_file(
    source: PayoutFile, options: RunOptions, layout: layout_mod.Layout | None = None
) -> CheckedFile:
    """Read, validate and look for duplicates inside ``source``; nothing is sent.

    ``layout`` is :func:`load_layout` of ``options`` when the caller has it already."""
    lay = layout or load_layout(options)
    validate_mod.schema.preload_pandera()  # pandera validates: its import overlaps the parse
    ingested = ingest.read_source(source, lay)
    result = validate_mod.validate_frame(ingested, lay)
    rules = duplicate_rules(lay, options)
    rows = ingested.frame.height
    log.info(
        "file read: %s (%s, %d bytes, %d rows, sha256 %s)",
        source.name, ingested.format, source.size, rows, ingested.sha256[:12],
        extra={"file": source.name, "sha256": ingested.sha256, "rows": rows},
    )  # fmt: skip
    checked = CheckedFile(
        ingested=ingested,
        result=result,
        source=source,
        default_purpose=getattr(lay, "default_purpose", ""),
        duplicates=dedupe.check_in_file_frame(result.valid, rules, labels=result.header_map),
        rules=rules,
    )
    log.info(
        "file validated: %s: %d valid, %d issue(s), %d to pay",
        source.name, checked.accepted_count, len(checked.issues), checked.payable_frame().height,
        extra={"file": source.name, "issues": len(checked.issues)},
    )  # fmt: skip
    return checked


def totals_by_currency(rows: Iterable[Mapping[str, Any]]) -> dict[str, Decimal]:
    """Amounts per currency of ``rows`` (unreadable amounts left out)."""
    totals: dict[str, Decimal] = {}
    for r in rows:
        try:
            amount = parse_amount(str(r.get("amount", "")))
        except ValueError:
            continue
        cur = str(r.get("currency", "")).upper()
        totals[cur] = totals.get(cur, Decimal(0)) + amount
    return totals


_PLAIN_AMOUNT = r"^[0-9]{1,12}(?:\.[0-9]+)?$"
_NON_ASCII = r"[^\x00-\x7F]"


def valid_totals_by_currency(frame: pl.DataFrame) -> dict[str, Decimal]:
    """:func:`frame_totals_by_currency` of validated rows (``result.valid`` or a part of it),
    whose amounts validation left canonical: ASCII digits with at most one dot, the currency
    upper case. One grouped sum, without the checks an unvalidated cell needs; a frame whose
    amounts are not all digits after the dot is removed is summed by the general path."""
    if frame.is_empty():
        return {}
    amount = pl.col("amount")
    dot = amount.str.find(".", literal=True)
    sums = (
        frame.lazy()
        .group_by(
            pl.col("currency").alias("cur"),
            (amount.str.len_bytes() - dot - 1).fill_null(0).alias("scale"),
        )
        .agg(amount.str.replace(".", "", literal=True).cast(pl.Int128, strict=True).sum())
    )
    try:
        rows = sums.collect().iter_rows()
    except pl.exceptions.InvalidOperationError:  # not validated rows after all
        return frame_totals_by_currency(frame)
    totals: dict[str, Decimal] = {}
    for cur, scale, units in sorted(rows, key=lambda r: (str(r[0]), int(r[1]))):
        totals[str(cur)] = totals.get(str(cur), Decimal(0)) + Decimal(int(units)).scaleb(
            -int(scale)
        )
    return totals


def frame_totals_by_currency(frame: pl.DataFrame) -> dict[str, Decimal]:
    """:func:`totals_by_currency` of a frame's rows, on whole columns (exact, no floats)."""
    if frame.is_empty():
        return {}
    amount, currency = pl.col("a"), pl.col("c")
    cells = frame.lazy().select(
        pl.col("amount").fill_null("").alias("a"), pl.col("currency").fill_null("").alias("c")
    )
    # Unicode digits and case mappings are Python's, and so is ``$`` before a final newline:
    # those few rows take the per-row path. So do amounts beyond what Int128 sums of a
    # billion rows hold.
    odd = (
        amount.str.contains(_NON_ASCII)
        | currency.str.contains(_NON_ASCII)
        | amount.str.ends_with("\n")
        | (amount.str.len_bytes() > 24)
    )
    dot = amount.str.find(".", literal=True)
    # Summed exactly in units of each fraction length's last digit (Int128: 38 digits).
    sums = (
        cells.filter(~odd & amount.str.contains(_PLAIN_AMOUNT))
        .select(
            currency.str.to_uppercase().alias("cur"),
            (amount.str.len_bytes() - dot - 1).fill_null(0).alias("scale"),
            amount.str.replace(".", "", literal=True).cast(pl.Int128).alias("units"),
        )
        .group_by("cur", "scale")
        .agg(pl.col("units").sum())
        .sort("cur", "scale")
    )
    sums_frame, odd_rows = pl.collect_all([sums, cells.filter(odd)])
    totals = totals_by_currency({"amount": a, "currency": c} for a, c in odd_rows.iter_rows())
    for cur, scale, units in sums_frame.iter_rows():
        value = Decimal(int(units)).scaleb(-int(scale))
        totals[str(cur)] = totals.get(str(cur), Decimal(0)) + value
    return totals
