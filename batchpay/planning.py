"""Planning a run's rows: what each row of a checked file becomes in the journal.

A row is ``planned`` (to be paid) unless it is invalid, a later copy of an accepted repeat,
or already paid (or in flight) in another run of this journal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batchpay import dedupe
from batchpay.checks import CheckedFile
from batchpay.errors import RowIssue
from batchpay.journal import Journal
from batchpay.ledger import paid_elsewhere
from batchpay.resolve import display_name, masked_account
from batchpay.states import DUPLICATE, INVALID, PLANNED


def row_records(checked: CheckedFile, journal: Journal, environment: str) -> list[dict[str, Any]]:
    """One journal record per row of the file: ``planned``, or why it will not be paid."""
    dups = {d.row: d for d in checked.duplicates.repeats}
    accepted = checked.accepted_rows
    issues_by_row: dict[int, list[RowIssue]] = {}
    for issue in checked.issues:
        issues_by_row.setdefault(issue.row, []).append(issue)
    records = []
    for raw in checked.all_rows:
        number = int(raw["_row"])
        row = checked.valid_rows.get(number, raw)
        reference = str(row.get("reference") or "")
        ben_ref = str(row.get("beneficiary_ref") or "")
        key = dedupe.row_key(environment, reference, ben_ref)
        rec: dict[str, Any] = {
            "row_number": number,
            "reference": reference,
            "beneficiary_ref": ben_ref,
            "beneficiary_name": display_name(row),
            "row_key": key,
            "content_hash": dedupe.row_content_hash(row),
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
        elif (elsewhere := paid_elsewhere(journal, environment, key)) is not None:
            rec.update(elsewhere)
        records.append(rec)
    return records


def safe_mask(row: Mapping[str, Any]) -> str:
    """The row's masked account, or blank for a row too broken to have one."""
    try:
        return masked_account({k: str(v or "") for k, v in row.items()})
    except Exception:  # an invalid row may lack the fields; never leak, never crash
        return ""
