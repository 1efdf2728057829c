"""Check a payout file: ingest, validate, duplicates inside it — everything before the journal.

``check_file`` takes a :class:`~batchpay.source.PayoutFile` (a name and its bytes, wherever
they came from) and returns a :class:`CheckedFile`: the rows, the valid ones, every issue,
the content fingerprint and the duplicate rules in force.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

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
    run are made from."""

    ingested: ingest.IngestedFile
    result: validate_mod.ValidationResult
    all_rows: list[dict[str, Any]]
    # Rows that passed validation, normalised; duplicates among them are in ``duplicates``.
    valid_rows: dict[int, dict[str, Any]]
    source: PayoutFile
    fingerprint: str
    default_purpose: str
    duplicates: dedupe.InFileCheck
    rules: layout_mod.DuplicateRules

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


def duplicate_rules(lay: layout_mod.Layout, options: RunOptions) -> layout_mod.DuplicateRules:
    """The layout's [duplicates] settings, overridden by the run's options where given."""
    rules = lay.duplicates
    if options.allow_repeats is not None:
        rules = dataclasses.replace(rules, allow_repeats=options.allow_repeats)
    if options.reference_per_payee is not None:
        rules = dataclasses.replace(rules, reference_per_payee=options.reference_per_payee)
    return rules


def load_layout(options: RunOptions) -> layout_mod.Layout:
    """The layout a run reads its file with, the options' ``[file]`` settings over it
    (``decimal_comma``, ``delimiter``, ``encoding``, ``check_total_row``)."""
    lay = layout_mod.load_layout(options.layout_path)
    file = lay.file
    if options.decimal_comma:
        file = dataclasses.replace(file, decimal_separator=",", thousands_separators=(".", " "))
    if options.delimiter is not None:
        file = dataclasses.replace(file, delimiter=options.delimiter)
    if options.encoding is not None:
        file = dataclasses.replace(file, encoding=options.encoding)
    if options.check_total_row is not None:
        file = dataclasses.replace(file, check_total_row=options.check_total_row)
    return lay if file is lay.file else dataclasses.replace(lay, file=file)


def read_source(path: Path | str, options: RunOptions) -> PayoutFile:
    """A local payout file as a source, refused unread when over the layout's size limit."""
    return from_path(path, load_layout(options))


def check_file(source: PayoutFile, options: RunOptions) -> CheckedFile:
    """Read, validate and look for duplicates inside ``source``; nothing is sent."""
    lay = load_layout(options)
    ingested = ingest.read_bytes(source.data, source.name, lay)
    result = validate_mod.validate_frame(ingested, lay)
    all_rows = ingested.frame.to_dicts()
    valid_rows = {int(r["_row"]): r for r in result.valid.to_dicts()}
    rules = duplicate_rules(lay, options)
    log.info(
        "file read: %s (%s, %d bytes, %d rows, sha256 %s)",
        source.name, ingested.format, source.size, len(all_rows), ingested.sha256[:12],
        extra={"file": source.name, "sha256": ingested.sha256, "rows": len(all_rows)},
    )  # fmt: skip
    checked = CheckedFile(
        ingested=ingested,
        result=result,
        all_rows=all_rows,
        valid_rows=valid_rows,
        source=source,
        fingerprint=dedupe.content_fingerprint(all_rows),
        default_purpose=getattr(lay, "default_purpose", ""),
        duplicates=dedupe.check_in_file(list(valid_rows.values()), rules, labels=result.header_map),
        rules=rules,
    )
    log.info(
        "file validated: %s: %d valid, %d issue(s), %d to pay",
        source.name, len(checked.accepted_rows), len(checked.issues), len(checked.payable_rows),
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
