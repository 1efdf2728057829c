"""Held rows: why a row waits for a person, and the one command that lets it go.

A row is *held* (``states.HELD``) when paying it needs a decision batchpay must not make
alone. Every hold code has a way out, named in the row's note, in ``batchpay show`` and
in the report, and each is tested end to end (tests/accounting/test_holds.py):

- ``bank_details_changed``: a known payee's bank details differ from the ones paid before.
  ``batchpay run FILE --allow-new-bank-details`` re-opens the run and pays the held rows only.
- ``ambiguous_beneficiary``: the provider holds several active beneficiaries with the row's
  reference. Archive the extra ones at the provider (one stays active), then the same re-run.
- ``failed_elsewhere``: the provider holds a payout for the row, made from another journal,
  that failed. ``batchpay retry-failed RUN --yes`` pays it again with the next attempt's key.
- ``failed_in_other_run``: an earlier run of this journal paid the row and its payout
  failed. ``batchpay retry-failed OTHER --yes``.
- ``in_flight_elsewhere``: another unfinished run is paying the row. Finish it (run its
  file again), then ``batchpay run FILE`` again.
- ``row_changed``: a re-run read the row differently from how the run planned it (the same
  file read with another layout, e.g. another column default). ``batchpay run FILE`` again
  with the layout the run was started with re-opens the run and pays the row as planned.
- ``amount_differs``: an earlier run paid the row (same reference and payee) another amount
  than this file asks (a corrected export). The earlier payout stands and is never reported
  as this amount; a difference to pay is a row with a new reference.

One row state is not a hold but also waits for a person: ``duplicate_payout``, a second
payout the provider made for a row that batchpay could not cancel. Only the provider can
recall it (:func:`duplicate_payout_note` says how); no batchpay command closes the row.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from schwifty import IBAN
from schwifty import exceptions as schwifty_errors

from batchpay.journal import Journal
from batchpay.money import mask_account
from batchpay.options import RunOptions
from batchpay.states import HELD

__all__ = [
    "AMOUNT_DIFFERS",
    "RELEASED_BY_NEW_BANK_DETAILS",
    "RELEASED_BY_RERUN",
    "RETRIED_BY_RETRY_FAILED",
    "HeldRow",
    "bank_label",
    "changed_bank_details",
    "duplicate_payout_note",
    "release_command",
    "reopen_for_release",
]

# Held rows a re-run with --allow-new-bank-details pays (it re-opens a finished run for them).
RELEASED_BY_NEW_BANK_DETAILS = frozenset({"bank_details_changed", "ambiguous_beneficiary"})
# Held rows a plain re-run of the file (read as when the run started) pays.
RELEASED_BY_RERUN = frozenset({"row_changed"})
# A row paid before (same reference and payee) that a later file asks another amount for.
AMOUNT_DIFFERS = "amount_differs"
# Held rows `batchpay retry-failed` of the same run pays again.
RETRIED_BY_RETRY_FAILED = frozenset({"failed_elsewhere"})


@dataclass(frozen=True, slots=True)
class HeldRow:
    """One held row of a run as ``batchpay show`` lists it."""

    row: int
    reference: str
    code: str
    message: str
    release: str


def _quote(name: str) -> str:
    return name if re.fullmatch(r"[\w./@%+=:,-]+", name) else "'" + name.replace("'", "'\\''") + "'"


def _iban_bank(iban: str) -> str:
    """The IBAN's bank by the registry (``Commerzbank COBADEFFXXX``), else a short digest of
    its bank code (``bank #1f3a``: tells two banks apart, shows none of the IBAN)."""
    try:
        parsed = IBAN(iban)
        bic, name = parsed.bic, parsed.bank_short_name or parsed.bank_name
        code = parsed.bank_code
    except (schwifty_errors.SchwiftyException, ValueError):
        return ""
    if bic is not None:
        return f"{name} {bic}" if name else str(bic)
    if not code:
        return ""
    return "bank #" + hashlib.sha256(code.encode("utf-8")).hexdigest()[:4]


def release_command(code: str, *, run_id: str, file_name: str, related_run: str | None) -> str:
    """The command that lets a row held with ``code`` go (see the module's table)."""
    file = _quote(file_name)
    other = related_run or "OTHER-RUN"
    if code in RELEASED_BY_NEW_BANK_DETAILS:
        first = (
            "archive the extra beneficiaries at the provider (keep one active), then "
            if code == "ambiguous_beneficiary"
            else ""
        )
        return f"{first}batchpay run {file} --allow-new-bank-details"
    if code in RETRIED_BY_RETRY_FAILED:
        return f"batchpay retry-failed {run_id} --yes"
    if code == "failed_in_other_run":
        return f"batchpay retry-failed {other} --yes"
    if code == "in_flight_elsewhere":
        return f"finish run {other} (run its file again), then batchpay run {file}"
    if code == "row_changed":
        return f"batchpay run {file} again with the layout the run was started with"
    if code == AMOUNT_DIFFERS:
        return f"nothing here: run {other} paid it; pay any difference under a new reference"
    return f"batchpay show {run_id}"


def duplicate_payout_note(run_id: str) -> str:
    """What a person does about a row the provider paid twice (a second payout with the
    row's key that batchpay could not cancel): the provider-side recall, and that batchpay
    has no command that closes the row."""
    return (
        "needs a person: in the Anton dashboard cancel the extra payout(s) named in the "
        "message (or, once paid out, ask Anton to return them); the row's own payout stands. "
        f"No batchpay command closes this row: `batchpay track {run_id}` follows its payout"
    )


def bank_label(row: Mapping[str, str]) -> str:
    """The row's bank details, masked but telling two apart: the bank (for an IBAN its
    country and the bank's BIC and name from the registry — never a digit of the IBAN
    itself beyond the last 4 — for US and UK accounts the routing number or sort code, which
    name a bank, not an account) and the account's last 4 characters."""
    method = row.get("payment_method", "")
    if method == "iban":
        text = re.sub(r"\s+", "", row.get("iban", "")).upper()
        return " ".join(p for p in ("IBAN", text[:2], _iban_bank(text), mask_account(text)) if p)
    account = mask_account(row.get("account_number", ""))
    if method == "us_bank":
        return f"routing {row.get('routing_number', '')} {account}"
    if method == "uk_bank":
        digits = re.sub(r"\D", "", row.get("sort_code", ""))
        shown = "-".join(digits[i : i + 2] for i in range(0, len(digits), 2))
        return f"sort code {shown} {account}"
    return account


def reopen_for_release(journal: Journal, run_ids: list[str], options: RunOptions) -> str | None:
    """The finished run of this file whose held rows ``options`` release, re-opened so the
    re-run pays them (and nothing else: its other rows are finished); None if there is none.

    ``--allow-new-bank-details`` releases rows held for new bank details or an ambiguous
    beneficiary; a plain re-run releases ``row_changed`` rows (they are read again and paid
    only when they are what the run planned). Otherwise a finished file is refused as
    already paid, as always.
    """
    codes = RELEASED_BY_RERUN | (
        RELEASED_BY_NEW_BANK_DETAILS if options.allow_new_bank_details else frozenset()
    )
    for run_id in run_ids:
        held = [r for r in journal.rows(run_id) if r["state"] == HELD and r["error_code"] in codes]
        if held:
            journal.set_run_status(run_id, "open")
            return run_id
    return None


def changed_bank_details(
    journal: Journal, environment: str, beneficiary_id: str, row: Mapping[str, str]
) -> str:
    """Why a known payee's row must be held because its bank details are new to this
    journal (the details paid before and now, masked: the bank and the last 4 characters,
    and where they differ when those are the same); ``""`` when none were paid before.

    The caller has found no instrument of ``beneficiary_id`` with the row's details.
    """
    previous = journal.instruments_of(environment, beneficiary_id)
    if not previous:
        return ""
    now = bank_label(row)
    labels = sorted({str(p["masked_account"]) for p in previous})
    message = f"bank details differ from the ones paid before: {', '.join(labels)} -> {now}"
    if now in labels:
        message += " (same bank and last 4 characters: the account differs in the middle)"
    elif now.split(" ")[-1] in labels:  # recorded before banks were: only the last 4 to show
        message += " (same last 4 characters: the bank or the middle digits differ)"
    return message + "; confirm them, then re-run the file with --allow-new-bank-details"
