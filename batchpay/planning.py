"""Planning a run's rows: what each row of a checked file becomes in the journal.

A row is ``planned`` (to be paid) unless it is invalid, a later copy of an accepted repeat,
or already paid (or in flight) in another run of this journal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batchpay import dedupe, ledger
from batchpay.checks import CheckedFile
from batchpay.errors import RowIssue
from batchpay.journal import Journal
from batchpay.resolve import display_name, masked_account
from batchpay.states import DUPLICATE, INVALID, PLANNED


def row_records(checked: CheckedFile, journal: Journal, environment: str) -> list[dict[str, Any]]:
    """One journal record per row of the file: ``planned``, or why it will not be paid."""
    dups = {d.row: d for d in checked.duplicates.repeats}
    accepted = checked.accepted_rows
    issues_by_row: dict[int, list[RowIssue]] = {}
    for issue in checked.issues:
        issues_by_row.setdefault(issue.row, []).append(issue)
    # Identities on whole columns: a valid row is known by its normalised values, an
    # invalid one by what the file holds; the journal is asked about every key at once.
    raw_hashes = dedupe.content_hashes(checked.ingested.frame).to_list()
    raw_keys = dedupe.row_keys(checked.ingested.frame, environment).to_list()
    valid_numbers = checked.result.valid["_row"].to_list()
    valid_hash = dict(zip(valid_numbers, checked.valid_hashes.to_list(), strict=True))
    valid_key = dict(
        zip(valid_numbers, dedupe.row_keys(checked.result.valid, environment), strict=True)
    )
    dup_refused = checked.duplicates.refused_rows
    pay_keys = [k for n, k in valid_key.items() if n not in dup_refused and n not in dups]
    elsewhere = ledger.paid_elsewhere_many(journal, environment, pay_keys)
    records = []
    for index, raw in enumerate(checked.all_rows):
        number = int(raw["_row"])
        row = checked.valid_rows.get(number, raw)
        reference = str(row.get("reference") or "")
        ben_ref = str(row.get("beneficiary_ref") or "")
        key = valid_key.get(number, raw_keys[index])
        rec: dict[str, Any] = {
            "row_number": number,
            "reference": reference,
            "beneficiary_ref": ben_ref,
            "beneficiary_name": display_name(row),
            "row_key": key,
            "content_hash": valid_hash.get(number, raw_hashes[index]),
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
        elif key in elsewhere:
            rec.update(elsewhere[key])
        records.append(rec)
    return records


def safe_mask(row: Mapping[str, Any]) -> str:
    """The row's masked account, or blank for a row too broken to have one."""
    try:
        return masked_account({k: str(v or "") for k, v in row.items()})
    except Exception:  # an invalid row may lack the fields; never leak, never crash
        return ""
