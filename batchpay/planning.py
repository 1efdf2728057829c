"""Planning: what a run of a file would do (:func:`plan`, ``batchpay validate``), and what
each row of a checked file becomes in the journal (:func:`row_records`).

A row is ``planned`` (to be paid) unless it is invalid, a later copy of an accepted repeat,
or already paid (or in flight) in another run of this journal.

:func:`plan` lives here, not in :mod:`batchpay.pipeline`, so ``batchpay validate`` never
imports what only a run needs (the HTTP client, the report writer): a command that sends
nothing starts as fast as the reading allows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from batchpay import checks, controls, dedupe, holds, ledger
from batchpay.checks import CheckedFile
from batchpay.config import Settings, resolve_settings
from batchpay.errors import RowIssue
from batchpay.journal import Journal
from batchpay.options import RunOptions
from batchpay.resolve import display_name, masked_account
from batchpay.source import PayoutFile, from_path
from batchpay.states import DUPLICATE, INVALID, PLANNED

if TYPE_CHECKING:
    from batchpay.forecast import DebitEstimate

__all__ = ["FileArg", "Plan", "plan", "row_records", "safe_mask"]

FileArg = PayoutFile | Path | str


@dataclass(frozen=True)
class Plan:
    """What a run of the file would do (``batchpay validate``).

    ``totals``, ``by_method`` and the beneficiary counts are of the ``rows_to_pay`` only: not
    of invalid rows, rows refused as duplicates, later copies of a repeated row, rows
    already paid by earlier runs, or rows a run would hold (``held``, each with what
    releases it). ``debits`` estimates what each balance would give (:mod:`.forecast`).
    """

    file_name: str
    sha256: str
    rows: int
    valid_rows: int
    issues: list[RowIssue]
    totals: dict[str, Decimal]
    new_beneficiaries: int
    known_beneficiaries: int
    duplicates_in_file: list[dedupe.InFileDuplicate]
    already_paid: int
    earlier_run: str | None
    by_method: dict[str, int]
    rows_to_pay: int
    held: list[holds.HeldRow] = field(default_factory=list)
    debits: dict[str, DebitEstimate] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # title rows skipped, totals rows


def plan(
    file: FileArg,
    *,
    settings: Settings | None = None,
    options: RunOptions | None = None,
) -> Plan:
    """Run every check on a file and say what a run would do, without sending anything.

    ``file`` is a path, or a :class:`~batchpay.source.PayoutFile` (a name and its bytes).
    """
    from batchpay import forecast  # it plans with row_records: imported once both exist
    from batchpay.report.files import check_out_dir

    settings = settings or resolve_settings()
    options = options or RunOptions()
    check_out_dir(options.out_dir or Path("reports"))
    lay = checks.load_layout(options)  # once: parsing the layout's TOML is not free
    source = file if isinstance(file, PayoutFile) else from_path(file, lay)
    checked = checks.check_file(source, options, lay)
    env = settings.environment
    with Journal(settings.journal_path) as journal:
        earlier = (
            journal.find_runs_for_file(
                env, sha256=checked.ingested.sha256, fingerprint=checked.fingerprint
            )
            if journal.holds_runs(env)
            else []
        )
        if journal.holds_runs(env):
            # What a run would pay, decided by the code a run uses (forecast.foresee_file).
            seen = forecast.foresee_file(checked, journal, env, options)
            refs = {str(r["beneficiary_ref"]) for r in seen.to_pay}
            known = journal.known_beneficiaries(env, refs)
            estimates = forecast.estimate_debits(seen.to_pay, journal.known_fees(env))
            to_pay = checked.payable_frame().filter(
                pl.col("_row").is_in(
                    pl.Series([int(r["_row"]) for r in seen.to_pay], dtype=pl.Int64).implode()
                )
            )
            held, already_paid = seen.held, seen.already_paid
            totals = checks.valid_totals_by_currency(to_pay)
        else:
            # A journal with no run here knows no payee, payout or fee: every payable row
            # would be paid (whole columns, however long the file).
            to_pay = checked.payable_frame()
            refs, known = None, set()  # every payee is new: counted, not listed
            totals = checks.valid_totals_by_currency(to_pay)
            estimates = forecast.estimate_debits_frame(to_pay, totals)
            held, already_paid = [], 0
    issues = checked.issues
    if not issues:
        controls.check_control_totals(checked, options)
    by_method = {str(m): int(n) for m, n in to_pay.group_by("payment_method").len().iter_rows()}
    return Plan(
        file_name=checked.source.name,
        sha256=checked.ingested.sha256,
        rows=checked.row_count,
        valid_rows=checked.accepted_count,
        issues=issues,
        totals=totals,
        new_beneficiaries=to_pay["beneficiary_ref"].n_unique()
        if refs is None
        else len(refs - known),
        known_beneficiaries=len(known),
        duplicates_in_file=list(checked.duplicates.repeats),
        already_paid=already_paid,
        earlier_run=str(earlier[0]["id"]) if earlier else None,
        by_method=by_method,
        rows_to_pay=to_pay.height,
        held=held,
        debits=estimates,
        notes=checked.ingested.structure_notes,
    )


@dataclass(frozen=True)
class DraftRecords:
    """:func:`row_records` before the journal is asked: what the file alone says of each
    row (made in the file check's thread, beside the ledger look)."""

    environment: str
    records: list[dict[str, Any]]
    payable: list[tuple[int, str]]
    """(index in ``records``, row key) of the rows planned unless paid elsewhere."""


def draft_records(checked: CheckedFile, environment: str) -> DraftRecords:
    """What the file alone says of each row: ``planned`` or why it will not be paid."""
    dups = {d.row: d for d in checked.duplicates.repeats}
    accepted = checked.accepted_rows
    issues_by_row: dict[int, list[RowIssue]] = {}
    for issue in checked.issues:
        issues_by_row.setdefault(issue.row, []).append(issue)
    # Identities on whole columns: a valid row is known by its normalised values, an
    # invalid one by what the file holds; the journal is asked about every key at once.
    valid_numbers = checked.result.valid["_row"].to_list()
    valid_hash = dict(zip(valid_numbers, checked.valid_hashes.to_list(), strict=True))
    valid_key = dict(zip(valid_numbers, checked.valid_keys(environment), strict=True))
    frame = checked.ingested.frame
    numbers = [int(n) for n in frame["_row"].to_list()]
    # A row that is not valid is known by what the file holds: as read, for those rows only.
    raw_rows: dict[int, dict[str, Any]] = {}
    raw_key: dict[int, str] = {}
    raw_hash: dict[int, str] = {}
    if len(valid_hash) < len(numbers):
        invalid = frame.filter(
            ~pl.col("_row").is_in(pl.Series(valid_numbers, dtype=frame["_row"].dtype).implode())
        )
        wanted = invalid["_row"].to_list()
        raw_rows = {int(r["_row"]): r for r in invalid.to_dicts()}
        raw_key = dict(zip(wanted, dedupe.row_keys(invalid, environment).to_list(), strict=True))
        raw_hash = dict(zip(wanted, dedupe.content_hashes(invalid).to_list(), strict=True))
    valid_rows = checked.valid_rows
    records = []
    payable = []
    for index, number in enumerate(numbers):
        row = valid_rows.get(number) or raw_rows[number]
        reference = str(row.get("reference") or "")
        ben_ref = str(row.get("beneficiary_ref") or "")
        key = valid_key.get(number) or raw_key[number]
        rec: dict[str, Any] = {
            "row_number": number,
            "reference": reference,
            "beneficiary_ref": ben_ref,
            "beneficiary_name": display_name(row),
            "row_key": key,
            "content_hash": valid_hash.get(number) or raw_hash[number],
            "amount": row.get("amount") or None,
            "currency": row.get("currency") or None,
            "source_currency": row.get("source_currency") or row.get("currency") or None,
            "payment_method": row.get("payment_method") or None,
            "masked_account": safe_mask(row),
            "state": PLANNED,
        }
        if number not in accepted:
            rec["state"] = INVALID
            # A valid row refused as a duplicate carries the duplicate's own code.
            rec["error_code"] = (
                issues_by_row[number][0].code if number in checked.valid_rows else "invalid_row"
            )
            rec["error_message"] = "; ".join(
                str(i.message if i.column is None else f"{i.column}: {i.message}")
                for i in issues_by_row.get(number, [])
            )
        elif number in dups:
            rec["state"] = DUPLICATE
            rec["duplicate_of"] = dups[number].first_row
            rec["error_message"] = dups[number].message
        else:
            payable.append((index, key))
        records.append(rec)
    return DraftRecords(environment, records, payable)


def row_records(
    checked: CheckedFile,
    journal: Journal,
    environment: str,
    *,
    draft: DraftRecords | None = None,
) -> list[dict[str, Any]]:
    """One journal record per row of the file: ``planned``, or why it will not be paid
    (``draft``: :func:`draft_records` of the file, when made already)."""
    if draft is None or draft.environment != environment:
        draft = draft_records(checked, environment)
    records = [dict(r) for r in draft.records]
    elsewhere = ledger.paid_elsewhere_many(journal, environment, [k for _, k in draft.payable])
    for index, key in draft.payable:
        if key in elsewhere:
            record = records[index]
            asked = (record.get("amount"), record.get("currency"))
            record.update(ledger.held_if_amount_differs(dict(elsewhere[key]), asked))
    return records


class _TextView(Mapping[str, str]):
    """A row's cells as text (``str(v or "")``), made only for the cells read."""

    __slots__ = ("_row",)

    def __init__(self, row: Mapping[str, Any]) -> None:
        self._row = row

    def __getitem__(self, key: str) -> str:
        return str(self._row[key] or "")

    def __iter__(self) -> Iterator[str]:
        return iter(self._row)

    def __len__(self) -> int:
        return len(self._row)


def safe_mask(row: Mapping[str, Any]) -> str:
    """The row's masked account, or blank for a row too broken to have one."""
    try:
        return masked_account(_TextView(row))
    except Exception:  # an invalid row may lack the fields; never leak, never crash
        return ""
