"""A run's reconciliation report from its journal rows, and the exit code it earns.

The journal's row and payout states become report outcomes here (:func:`_outcome`), so
the report can be written again, from the journal alone, long after the run.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from batchpay.config import Mode, Settings
from batchpay.errors import ExitCode, RunNotFound
from batchpay.holds import duplicate_payout_note, release_command
from batchpay.journal import CREATED, REJECTED, TERMINAL_STATUSES, Journal, utcnow
from batchpay.journal.records import Row
from batchpay.report.model import Report, ReportRow
from batchpay.states import ALREADY_PAID, DUPLICATE, HELD, INVALID, PLANNED, ROW_REJECTED

__all__ = ["build_report"]


def _outcome(r: Row) -> tuple[str, str | None, str | None, str]:
    """(outcome, error_code, error_message, note) for one journal row."""
    state = r.state
    if state == INVALID:
        return "invalid", r.error_code, r.error_message, "not sent: fix the row"
    if state == DUPLICATE:
        return "duplicate_in_file", None, None, str(r.error_message or "")
    if state == ALREADY_PAID:
        status = r.payout_status
        if status in TERMINAL_STATUSES and status != "completed":
            # A payout adopted from another journal that then failed: not paid after all.
            return status, None, r.failure_reason, str(r.error_message or "")
        return "already_paid", None, None, str(r.error_message or "")
    if state == HELD and r.error_code == "in_flight_elsewhere":
        return (
            "unknown",
            r.error_code,
            r.error_message,
            "run again once the other run is done",
        )
    if state == HELD:
        return "skipped", r.error_code, r.error_message, "held: needs a person before paying"
    if state == ROW_REJECTED:
        return "rejected", r.error_code, r.error_message, ""
    if state == PLANNED:
        return (
            "unknown",
            r.error_code,
            r.error_message,
            "not sent yet: run the same command again to finish",
        )
    pstate = r.payout_state
    if pstate == REJECTED:
        return "rejected", r.p_error_code, r.p_error_message, ""
    if pstate != CREATED:
        return (
            "unknown",
            r.p_error_code,
            r.p_error_message,
            "outcome not yet known: run the same command again to settle it with the same key",
        )
    status = r.payout_status or "created"
    if r.p_error_code == "duplicate_payout":
        return "duplicate_payout", r.p_error_code, r.p_error_message, "needs a person"
    if status in TERMINAL_STATUSES:
        return status, None, r.failure_reason, ""
    return "pending", None, None, f"provider status: {status}"


def release_for(r: Any, run: Any) -> str:
    """The command that lets the held journal row ``r`` of ``run`` go."""
    return release_command(
        str(r["error_code"] or ""),
        run_id=str(run["id"]),
        file_name=str(run["file_name"]),
        related_run=r["related_run"],
    )


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _dec(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def build_report(journal: Journal, run_id: str, settings: Settings) -> Report:
    """Rebuild the reconciliation report of ``run_id`` from the journal alone."""
    run = journal.get_run(run_id)
    if run is None:
        raise RunNotFound(f"no run {run_id} in the journal", hint="see `batchpay runs`")
    rows = []
    warnings = journal.batch_warnings(run_id)  # the provider's, in batch mode
    for r in journal.rows(run_id):
        outcome, code, message, note = _outcome(r)
        if r.state == HELD and r.error_code != "in_flight_elsewhere":
            note = "held; to pay it: " + release_for(r, run)
        elif outcome == "duplicate_payout":
            note = duplicate_payout_note(str(run["id"]))
        funding = _s(r.total_debited_currency or r.p_source_currency or r.source_currency)
        paid_in = _s(r.dest_currency or r.currency)
        if funding and paid_in and funding != paid_in:
            # the row's amount and its debit are in two currencies: say which balance pays
            note = "; ".join(n for n in (note, f"funded from the {funding} balance") if n)
        if int(r.row_number) in warnings:
            note = "; ".join(n for n in (note, warnings[int(r.row_number)]) if n)
        rows.append(
            ReportRow(
                row=int(r.row_number),
                reference=str(r.reference),
                beneficiary_ref=str(r.beneficiary_ref),
                beneficiary_name=_s(r.beneficiary_name),
                outcome=outcome,
                payout_id=_s(r.payout_id),
                beneficiary_id=_s(r.beneficiary_id),
                instrument_id=_s(r.instrument_id),
                payout_status=_s(r.payout_status),
                error_code=_s(code),
                error_message=_s(message),
                request_id=_s(r.p_request_id or r.request_id),
                idempotency_key=_s(r.idempotency_key),
                amount=_dec(r.dest_amount) or _dec(r.amount),
                currency=_s(r.dest_currency or r.currency),
                source_amount=_dec(r.source_amount),
                source_currency=_s(r.p_source_currency or r.source_currency),
                fee=_dec(r.fee),
                fee_currency=_s(r.fee_currency),
                exchange_rate=_dec(r.exchange_rate),
                total_debited=_dec(r.total_debited),
                total_debited_currency=_s(r.total_debited_currency),
                masked_account=_s(r.masked_account),
                attempt=int(r.attempt or 0),
                related_run=r.related_run,
                note=note,
            )
        )
    return Report(
        run_id=run_id,
        file_name=str(run["file_name"]),
        file_sha256=str(run["sha256"]),
        environment="live" if run["mode"] == Mode.LIVE.value else "sandbox",
        api_url=str(run["api_url"]),
        generated_at=utcnow(),
        rows=rows,
    )


def _outcome_counts(rep: Report) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rep.rows:
        counts[row.outcome] = counts.get(row.outcome, 0) + 1
    return counts


_FAILED = {
    "duplicate_payout",
    "invalid",
    "failed",
    "returned",
    "screening_failed",
    "velocity_blocked",
    "cancelled",
    "rejected",
    "skipped",
}


def _exit_code(rep: Report, *, waited: bool) -> ExitCode:
    outcomes = {r.outcome for r in rep.rows}
    if outcomes == {"already_paid"}:
        return ExitCode.DUPLICATE_FILE  # every row was paid before: nothing was sent
    if "unknown" in outcomes or (waited and "pending" in outcomes):
        return ExitCode.INCOMPLETE
    if outcomes & _FAILED:
        return ExitCode.ROWS_FAILED
    return ExitCode.OK
