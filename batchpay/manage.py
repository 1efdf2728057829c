"""Verbs on a run after it was submitted: show, track, cancel, retry-failed.

Each works from the journal and the API alone — the input file is not needed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from batchpay import aio, dedupe, holds, ledger
from batchpay import report as report_mod
from batchpay import track as tracking
from batchpay.config import Settings, resolve_settings
from batchpay.connection import connect
from batchpay.errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    ConfirmationRequired,
    NothingToDo,
    RunNotFound,
    TransportError,
)
from batchpay.journal import (
    CREATED,
    SETTLED_FAILURES,
    TERMINAL_STATUSES,
    Journal,
    LivePayoutExists,
    LockOwner,
    utcnow,
)
from batchpay.ledger import METADATA_KEY
from batchpay.pipeline import build_report
from batchpay.report.from_journal import release_for
from batchpay.states import ALREADY_PAID, HELD
from batchpay.strategies import close_run_if_done
from batchpay.submit import Submitter

CANCELLABLE = frozenset(
    {"created", "pending_screening", "pending_approval", "pending_engine_review", "manual_review"}
)
RETRYABLE_OUTCOMES = frozenset({"failed", "returned"})
_ROW_COLUMNS = (
    "row_number", "reference", "beneficiary_ref", "beneficiary_name", "row_key",
    "content_hash", "amount", "currency", "source_currency", "payment_method", "masked_account",
)  # fmt: skip


def _run_or_latest(journal: Journal, run_id: str | None) -> str:
    run_id = run_id or journal.latest_run_id()
    if run_id is None or journal.get_run(run_id) is None:
        raise RunNotFound(
            f"no run {run_id} in the journal" if run_id else "the journal holds no runs yet",
            hint="`batchpay runs` lists the runs this journal knows",
        )
    return run_id


def _same_world(journal: Journal, run_id: str, settings: Settings) -> None:
    run = journal.get_run(run_id)
    assert run is not None
    if run["environment"] != settings.environment:
        raise ConfigError(
            f"run {run_id} was made against {run['api_url']} ({run['mode']}), but the "
            f"current configuration points at {settings.api_url} ({settings.mode.value})",
            hint="set BATCHPAY_API_URL / BATCHPAY_API_KEY as they were for that run",
        )


@dataclass(frozen=True)
class RunSummary:
    """One run as `batchpay show` prints it."""

    run_id: str
    file_name: str
    status: str
    mode: str
    api_url: str
    created_at: str
    parent_run_id: str | None
    children: list[str]
    report: report_mod.Report
    held: list[holds.HeldRow] = field(default_factory=list)


def show(run_id: str | None = None, *, settings: Settings | None = None) -> RunSummary:
    """Everything the journal knows about one run (the latest when ``run_id`` is None)."""
    settings = settings or resolve_settings()
    with Journal(settings.journal_path) as journal:
        run_id = _run_or_latest(journal, run_id)
        run = journal.get_run(run_id)
        assert run is not None
        children = journal.child_run_ids(run_id)
        rep = build_report(journal, run_id, settings)
        held = [
            holds.HeldRow(
                row=int(r["row_number"]),
                reference=str(r["reference"]),
                code=str(r["error_code"] or ""),
                message=str(r["error_message"] or ""),
                release=release_for(r, run),
            )
            for r in journal.rows(run_id)
            if r["state"] == HELD
        ]
    return RunSummary(
        run_id=run_id,
        file_name=str(run["file_name"]),
        status=str(run["status"]),
        mode=str(run["mode"]),
        api_url=str(run["api_url"]),
        created_at=str(run["created_at"]),
        parent_run_id=run["parent_run_id"],
        children=children,
        report=rep,
        held=held,
    )


async def track_async(
    run_id: str | None = None,
    *,
    settings: Settings | None = None,
    timeout: float = 600.0,
    out_dir: Path | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], Any] | None = None,
) -> tuple[report_mod.Report, report_mod.ReportPaths]:
    """Follow a run's payouts to a terminal status, then rewrite its report."""
    settings = settings or resolve_settings()
    with Journal(settings.journal_path, clock=clock) as journal:
        run_id = _run_or_latest(journal, run_id)
        _same_world(journal, run_id, settings)
        async with connect(settings, journal, transport=transport, clock=clock) as conn:
            conn.run_id = run_id
            # Intents whose outcome is unknown are settled first, with their own keys (the
            # only way to finish a retry-failed run, which has no file to run again).
            submitter = Submitter(
                conn.client,
                journal,
                settings.environment,
                clock=clock,
                provider_clock=conn.provider_clock,
            )
            unsettled = [i for i in journal.open_payouts(run_id) if i["state"] != CREATED]
            found: list[dict[str, Any]] = []
            if unsettled:
                # As a run resuming them would: another home's open batches first (their
                # payouts carry no key that could refuse a resend), then the provider's
                # ledger (a payout of the row, under any attempt's key, settles it).
                since = conn.provider_clock.now() - timedelta(days=7)
                found = await ledger.foreign_batches(conn.client, journal, since=since,
                                                     open_only=True,
                                                     now=conn.provider_clock.now())  # fmt: skip
                await ledger.sweep(conn.client, journal, settings.environment,
                                   provider_clock=conn.provider_clock)  # fmt: skip
            for intent in unsettled:
                key = str(intent["idempotency_key"])
                if not ledger.withhold_beside_batches(journal, key, found):
                    await submitter.settle(intent)
            kwargs: dict[str, Any] = {"timeout": timeout}
            if sleep is not None:
                kwargs["sleep"] = sleep
            await tracking.follow(conn.client, journal, run_id, **kwargs)
        close_run_if_done(journal, run_id)
        rep = build_report(journal, run_id, settings)
    paths = report_mod.write_report(rep, (out_dir or Path("reports")) / run_id, run_id)
    return rep, paths


@dataclass(frozen=True)
class CancelResult:
    """What `batchpay cancel` did to each payout of the run."""

    cancelled: list[str]
    not_cancellable: dict[str, str]
    failed: dict[str, str]


async def cancel_async(
    run_id: str,
    *,
    settings: Settings | None = None,
    reason: str = "cancelled with batchpay cancel",
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> CancelResult:
    """Cancel every payout of ``run_id`` that can still be cancelled; report the rest."""
    settings = settings or resolve_settings()
    cancelled: list[str] = []
    refused: dict[str, str] = {}
    failed: dict[str, str] = {}
    with Journal(settings.journal_path, clock=clock) as journal:
        run_id = _run_or_latest(journal, run_id)
        _same_world(journal, run_id, settings)
        owner = LockOwner.current()
        journal.acquire_run_lock(run_id, owner)
        try:
            async with connect(settings, journal, transport=transport, clock=clock) as conn:
                conn.run_id = run_id
                ids = tracking.pending_payouts(journal, run_id)
                await tracking.refresh(conn.client, journal, ids)
                for row in journal.rows(run_id):
                    pid = row["payout_id"]
                    if not pid or row["payout_state"] != CREATED:
                        continue
                    status = str(row["payout_status"] or "")
                    if status in TERMINAL_STATUSES or status not in CANCELLABLE:
                        refused[str(pid)] = status or "unknown"
                        continue
                    try:
                        result = await conn.client.cancel_payout(
                            str(pid), f"bp1-cancel-{pid}", reason=reason
                        )
                    except AuthenticationError:
                        raise
                    except ApiError as exc:
                        if exc.code == "payout_not_cancellable":
                            refused[str(pid)] = "no longer cancellable"
                        else:
                            failed[str(pid)] = f"{exc.code}: {exc.message}"
                        continue
                    except TransportError as exc:
                        failed[str(pid)] = exc.message
                        continue
                    data = result.data if isinstance(result.data, dict) else {}
                    journal.record_status(
                        str(pid), str(data.get("status") or "cancelled"), source="cancel"
                    )
                    cancelled.append(str(pid))
        finally:
            journal.release_run_lock(run_id, owner)
    return CancelResult(cancelled, refused, failed)


@dataclass(frozen=True)
class RetryPlan:
    """The rows `retry-failed` would pay again."""

    run_id: str
    rows: list[dict[str, Any]]
    totals: dict[str, Decimal]


def retry_plan(run_id: str | None = None, *, settings: Settings | None = None) -> RetryPlan:
    """The failed or returned rows of a run that a retry would pay again (never a completed one)."""
    settings = settings or resolve_settings()
    with Journal(settings.journal_path) as journal:
        run_id = _run_or_latest(journal, run_id)
        _same_world(journal, run_id, settings)
        picked = []
        totals: dict[str, Decimal] = {}
        for r in journal.rows(run_id):
            if r["state"] == HELD and r["error_code"] in holds.RETRIED_BY_RETRY_FAILED:
                again = _failed_elsewhere_retry(journal, settings.environment, r)
                if again is not None:
                    picked.append(again)
                    cur = str(r["currency"])
                    totals[cur] = totals.get(cur, Decimal(0)) + Decimal(str(r["amount"]))
                continue
            if r["state"] == HELD:
                continue  # held for a person (amount_differs: which amount is not ours to say)
            if r["payout_state"] != CREATED or r["payout_status"] not in RETRYABLE_OUTCOMES:
                continue
            history = journal.row_history(settings.environment, str(r["row_key"]))
            if any(
                (h["state"] == CREATED and h["status"] not in RETRYABLE_OUTCOMES)
                or h["state"] not in (CREATED, "rejected")
                for h in history
            ):
                continue  # paid, pending or in flight elsewhere: never pay twice
            picked.append(dict(r))
            cur = str(r["dest_currency"] or r["currency"])
            totals[cur] = totals.get(cur, Decimal(0)) + Decimal(
                str(r["dest_amount"] or r["amount"])
            )
    return RetryPlan(run_id, picked, totals)


def _failed_elsewhere_retry(journal: Journal, env: str, r: Any) -> dict[str, Any] | None:
    """A row held because the provider's payout for it (made from another journal) failed,
    ready to pay again with that payout's destination and body; None if it is paid or
    pending anywhere now (never pay twice)."""
    key = str(r["row_key"])
    found = journal.provider_payouts_for(env, key)
    if not found or any(p["status"] not in SETTLED_FAILURES for p in found):
        return None
    if any(h["state"] not in ("rejected",) for h in journal.row_history(env, key)):
        return None  # this journal holds an intent for it: retry that run instead
    doc = json.loads(str(found[-1]["doc"]))
    paid = (str(doc.get("dest_amount")), str(doc.get("dest_currency")))
    if ledger.amount_differs(r["amount"], r["currency"], paid) is not None:
        return None  # the failed payout was of another amount than this run's row asks
    body = ledger.request_body(doc)
    body.pop("metadata", None)
    return dict(r) | {
        "beneficiary_id": doc.get("beneficiary_id"),
        "instrument_id": doc.get("instrument_id"),
        "payout_body": json.dumps(body),
    }


async def retry_failed_async(
    run_id: str | None = None,
    *,
    confirm: bool,
    settings: Settings | None = None,
    out_dir: Path | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = utcnow,
    wait: bool = False,
    wait_timeout: float = 600.0,
    sleep: Callable[[float], Any] | None = None,
) -> tuple[str, report_mod.Report, report_mod.ReportPaths]:
    """Pay the failed/returned rows of ``run_id`` again as a new run linked to it.

    Each retried row gets the next attempt number and so a new idempotency key; a row
    that completed, or whose payout is still pending, is never included. With ``wait`` the
    new payouts are followed to a final status (as ``run --wait``). Nothing to pay again is
    :class:`~batchpay.errors.NothingToDo` (exit 0), whether confirmed or not.
    """
    settings = settings or resolve_settings()
    if settings.mode.moves_money and not settings.confirm_live:
        raise ConfigError(
            "paying rows again with a live key moves real money and needs --confirm-live",
            hint="pass --confirm-live (or set BATCHPAY_CONFIRM_LIVE=1) as well as --yes",
        )
    plan = retry_plan(run_id, settings=settings)
    if not plan.rows:
        raise NothingToDo(
            f"run {plan.run_id} has no failed or returned rows to pay again",
            hint="`batchpay show` lists the outcome of every row",
        )
    if not confirm:
        raise ConfirmationRequired(
            "retry-failed pays rows again and needs an explicit confirmation",
            hint="check `batchpay show RUN`, then pass --yes",
        )
    with Journal(settings.journal_path, clock=clock) as journal:
        parent = journal.get_run(plan.run_id)
        assert parent is not None
        owner = LockOwner.current()
        new_run = journal.create_run(
            environment=settings.environment,
            api_url=settings.api_url,
            mode=settings.mode.value,
            file={
                "sha256": parent["sha256"],
                "fingerprint": parent["fingerprint"],
                "name": parent["file_name"],
                "size": parent["size"],
                "format": parent["format"],
                "row_count": len(plan.rows),
            },
            rows=[
                {k: r[k] for k in _ROW_COLUMNS} | {"state": "planned", "related_run": plan.run_id}
                for r in plan.rows
            ],
            options={"retry_of": plan.run_id},
            parent_run_id=plan.run_id,
            owner=owner,
        )
        try:
            async with connect(settings, journal, transport=transport, clock=clock) as conn:
                conn.run_id = new_run
                env = settings.environment
                # Another journal may have paid these rows again already: the provider's
                # ledger is the last word here too.
                await ledger.sweep(conn.client, journal, env, provider_clock=conn.provider_clock)
                submitter = Submitter(
                    conn.client, journal, env, clock=clock, provider_clock=conn.provider_clock
                )
                for r in plan.rows:
                    await _retry_row(journal, submitter, env, new_run, r)
                if wait:
                    kwargs: dict[str, Any] = {"timeout": wait_timeout}
                    if sleep is not None:
                        kwargs["sleep"] = sleep
                    await tracking.follow(conn.client, journal, new_run, **kwargs)
        finally:
            journal.release_run_lock(new_run, owner)
            close_run_if_done(journal, new_run, final_only=wait)
        rep = build_report(journal, new_run, settings)
    paths = report_mod.write_report(rep, (out_dir or Path("reports")) / new_run, new_run)
    return new_run, rep, paths


async def _retry_row(
    journal: Journal, submitter: Submitter, env: str, run_id: str, r: Mapping[str, Any]
) -> None:
    """Pay one failed row again with the next attempt's key, unless it was paid meanwhile."""
    number, row_key = int(r["row_number"]), str(r["row_key"])
    journal.update_row(
        run_id, number, beneficiary_id=r["beneficiary_id"], instrument_id=r["instrument_id"]
    )
    if ledger.paid_at_provider(journal, env, run_id, number, row_key, hold_failed=False):
        return  # another journal paid it again: adopted, not sent
    attempt = submitter.next_attempt(row_key)
    key = dedupe.idempotency_key(row_key, attempt)
    body = json.loads(str(r["payout_body"]))
    body["metadata"] = {**body.get("metadata", {}), METADATA_KEY: key}
    try:
        await submitter.send_new(
            run_id=run_id,
            row_number=number,
            row_key=row_key,
            reference=str(r["reference"]),
            attempt=attempt,
            body=body,
            after_failure=True,
        )
    except LivePayoutExists as exc:
        # Another retry (another process) got there first: it is that run's to follow.
        journal.update_row(
            run_id,
            number,
            state=ALREADY_PAID,
            related_run=exc.run_id,
            error_message=f"paid again by run {exc.run_id}",
        )


def run_sync(coro: Any) -> Any:
    """Run one of this module's coroutines to completion."""
    return aio.run(coro)


def track(run_id: str | None = None, **kwargs: Any) -> tuple[report_mod.Report, Any]:
    """Synchronous :func:`track_async`."""
    result: tuple[report_mod.Report, Any] = aio.run(track_async(run_id, **kwargs))
    return result


def cancel(run_id: str, **kwargs: Any) -> CancelResult:
    """Synchronous :func:`cancel_async`."""
    return aio.run(cancel_async(run_id, **kwargs))


def retry_failed(
    run_id: str | None = None, *, confirm: bool, **kwargs: Any
) -> tuple[str, report_mod.Report, Any]:
    """Synchronous :func:`retry_failed_async`."""
    result: tuple[str, report_mod.Report, Any] = aio.run(
        retry_failed_async(run_id, confirm=confirm, **kwargs)
    )
    return result
