"""What a run would decide, foreseen from the journal alone: the plan ``validate`` shows.

``batchpay validate`` and ``batchpay run`` plan a file with the same code
(:func:`batchpay.planning.row_records`: invalid, duplicates, paid or held by other runs of
this journal). A run then decides, before it sends a row, from what the journal knows:
the provider's ledger as last swept (a payout for the row there: ``already_paid``; one that
failed: held ``failed_elsewhere``) and a known payee's bank details
(:func:`batchpay.holds.changed_bank_details`). :func:`foresee` applies those same
decisions without a request; a sweep during the run can still find payouts made since.

:func:`estimate_debits` is what each balance would give: the amounts of the rows paid
from their own currency plus the fees the provider charged before for the same rail and
currency (:func:`batchpay.preflight.preflight` refuses a run on the same figures);
cross-currency rows are counted apart, their rate being the provider's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import polars as pl

from batchpay.checks import CheckedFile, frame_totals_by_currency
from batchpay.holds import HeldRow, changed_bank_details, release_command
from batchpay.journal import CREATED, SETTLED_FAILURES, Journal
from batchpay.money import parse_amount
from batchpay.options import RunOptions
from batchpay.planning import row_records
from batchpay.report.summary import human_amount
from batchpay.resolve import credential_fingerprint
from batchpay.states import ALREADY_PAID, HELD, PLANNED
from batchpay.submit import payout_method

__all__ = [
    "DebitEstimate",
    "Foreseen",
    "estimate_debits",
    "estimate_debits_frame",
    "foresee",
    "foresee_file",
]


@dataclass(frozen=True)
class Foreseen:
    """What a run of a checked file would do with its rows, as ``validate`` shows it."""

    to_pay: list[Mapping[str, Any]]
    held: list[HeldRow]
    already_paid: int


def foresee_file(
    checked: CheckedFile, journal: Journal, environment: str, options: RunOptions
) -> Foreseen:
    """The rows a run would pay, hold (each with what releases it) or skip as paid.

    :func:`batchpay.planning.row_records` (what ``run`` records), then :func:`foresee`. A
    journal that holds no run yet knows no payee, payout or provider ledger: every payable
    row would be paid, and the per-row planning is skipped (validate of a large first file
    stays as fast as reading it).
    """
    if journal.latest_run_id() is None:
        return Foreseen(list(checked.payable_rows.values()), [], 0)
    records = foresee(
        row_records(checked, journal, environment),
        checked.valid_rows,
        journal,
        environment,
        allow_new_bank_details=options.allow_new_bank_details,
    )
    held = [
        HeldRow(
            row=int(r["row_number"]),
            reference=str(r["reference"]),
            code=str(r.get("error_code") or ""),
            message=str(r.get("error_message") or ""),
            release=release_command(
                str(r.get("error_code") or ""),
                run_id="RUN",
                file_name=checked.source.name,
                related_run=r.get("related_run"),
            ),
        )
        for r in records
        if r["state"] == HELD
    ]
    return Foreseen(
        to_pay=[checked.valid_rows[int(r["row_number"])] for r in records if r["state"] == PLANNED],
        held=held,
        already_paid=sum(1 for r in records if r["state"] == ALREADY_PAID),
    )


def foresee(
    records: list[dict[str, Any]],
    valid_rows: Mapping[int, Mapping[str, Any]],
    journal: Journal,
    environment: str,
    *,
    allow_new_bank_details: bool = False,
) -> list[dict[str, Any]]:
    """``records`` (from ``row_records``) with each planned row's foreseeable verdict."""
    out = []
    for rec in records:
        if rec["state"] == PLANNED:
            row = valid_rows[int(rec["row_number"])]
            verdict = _provider_verdict(journal, environment, str(rec["row_key"]))
            if verdict is None and not allow_new_bank_details:
                verdict = _bank_verdict(journal, environment, row)
            if verdict is not None:
                rec = rec | verdict
        out.append(rec)
    return out


def _provider_verdict(journal: Journal, environment: str, key: str) -> dict[str, Any] | None:
    # The rule of ledger.paid_at_provider: a live payout is adopted, failed ones hold the row.
    found = journal.provider_payouts_for(environment, key)
    if not found:
        return None
    live = [p for p in found if p["status"] not in SETTLED_FAILURES]
    if live:
        return {
            "state": ALREADY_PAID,
            "error_message": f"the provider holds payout {live[0]['payout_id']} for this row",
        }
    return {
        "state": HELD,
        "error_code": "failed_elsewhere",
        "error_message": f"the provider holds payout {found[-1]['payout_id']} for this row, "
        f"made outside this journal, which ended {found[-1]['status']}",
    }


def _bank_verdict(
    journal: Journal, environment: str, row: Mapping[str, Any]
) -> dict[str, Any] | None:
    ben = journal.get_beneficiary(environment, str(row["beneficiary_ref"]))
    if ben is None or ben["state"] != CREATED or not ben["beneficiary_id"]:
        return None
    text = {k: str(v or "") for k, v in row.items()}
    ins = journal.get_instrument(
        environment, str(ben["beneficiary_id"]), credential_fingerprint(text)
    )
    if ins is not None:
        return None
    changed = changed_bank_details(journal, environment, str(ben["beneficiary_id"]), text)
    if not changed:
        return None
    return {"state": HELD, "error_code": "bank_details_changed", "error_message": changed}


@dataclass(frozen=True, slots=True)
class DebitEstimate:
    """What one balance would give: its own-currency rows' amounts and their known fees."""

    currency: str
    rows: int
    amount: Decimal
    fees: Decimal
    fees_unknown: int
    cross_currency: int

    @property
    def debited(self) -> Decimal:
        """Amounts plus the known fees (cross-currency rows not included)."""
        return self.amount + self.fees

    def describe(self) -> str:
        """One line for people, numbers as the report writes them."""
        cur = self.currency
        line = f"{cur} balance: would debit about {human_amount(self.debited, cur)}"
        if self.rows:
            line += f" ({self.rows} payout(s) {human_amount(self.amount, cur)}"
            line += f" + fees {human_amount(self.fees, cur)} seen before)" if self.fees else ")"
        if self.fees_unknown:
            line += f"; the fee of {self.fees_unknown} payout(s) is not known yet"
        if self.cross_currency:
            line += (
                f"; plus {self.cross_currency} payout(s) in another currency at the provider's rate"
            )
        return line


def estimate_debits_frame(
    frame: pl.DataFrame, totals: Mapping[str, Decimal] | None = None
) -> dict[str, DebitEstimate]:
    """:func:`estimate_debits` of a frame's rows with no fee known yet (a journal with no
    run), on whole columns: however long the file, no row becomes a dict. ``totals`` is
    :func:`~batchpay.checks.frame_totals_by_currency` of ``frame`` when the caller has it."""
    if frame.is_empty():
        return {}
    source = (
        pl.when(pl.col("source_currency").fill_null("") != "")
        .then(pl.col("source_currency"))
        .otherwise(pl.col("currency"))
        if "source_currency" in frame.columns
        else pl.col("currency")
    ).cast(pl.String)
    tagged = frame.with_columns(source.alias("_funding"))
    own = tagged.filter(pl.col("_funding") == pl.col("currency"))
    counts = dict(own.group_by("_funding").len().iter_rows())
    cross = dict(
        tagged.filter(pl.col("_funding") != pl.col("currency"))
        .group_by("_funding")
        .len()
        .iter_rows()
    )
    # every row paid from its own currency: the own rows' totals are the frame's
    amounts = totals if totals is not None and not cross else frame_totals_by_currency(own)
    out: dict[str, DebitEstimate] = {}
    for cur in sorted({*counts, *cross}):
        n = int(counts.get(cur, 0))
        out[str(cur)] = DebitEstimate(
            str(cur), n, amounts.get(str(cur), Decimal(0)), Decimal(0), n, int(cross.get(cur, 0))
        )
    return out


def estimate_debits(
    rows: Iterable[Mapping[str, Any]], fees: Mapping[tuple[str, str], Decimal]
) -> dict[str, DebitEstimate]:
    """Per funding currency: the rows paid from it in its own currency, their amounts and
    known fees (``fees`` by payout rail and currency, from the journal); rows in another
    currency counted apart."""
    acc: dict[str, dict[str, Any]] = {}
    for r in rows:
        cur = str(r["currency"])
        source = str(r.get("source_currency") or cur)
        slot = acc.setdefault(
            source, {"rows": 0, "amount": Decimal(0), "fees": Decimal(0), "unknown": 0, "x": 0}
        )
        if source != cur:
            slot["x"] += 1
            continue
        slot["rows"] += 1
        slot["amount"] += parse_amount(str(r["amount"]))
        fee = fees.get((payout_method(str(r["payment_method"]), cur), cur))
        if fee is None:
            slot["unknown"] += 1
        else:
            slot["fees"] += fee
    return {
        cur: DebitEstimate(cur, a["rows"], a["amount"], a["fees"], a["unknown"], a["x"])
        for cur, a in sorted(acc.items())
    }
