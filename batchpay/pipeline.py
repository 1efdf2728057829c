"""The pipeline: ingest → validate → dedupe → resolve → submit → (track) → report.

``run`` finishes unfinished work first: a file whose earlier run is still open is
resumed (intents in flight settled with their own keys), never started afresh.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, InvalidStateError
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from batchpay import (
    aio,
    checks,
    controls,
    holds,
    ledger,
    planning,
    preflight,
    track,
)
from batchpay import report as report_mod
from batchpay.checks import CheckedFile
from batchpay.config import Mode, Settings, resolve_settings
from batchpay.connection import Connection, connect
from batchpay.errors import (
    ConfigError,
    DuplicateFileError,
    ExitCode,
    RunNotFound,
    ValidationFailed,
)
from batchpay.journal import (
    Journal,
    LockOwner,
    RunExists,
    utcnow,
)
from batchpay.options import RunOptions
from batchpay.planning import Plan, plan
from batchpay.report import from_journal
from batchpay.source import PayoutFile
from batchpay.states import HELD, PLANNED
from batchpay.strategies import PerRow, Submission, close_run_if_done
from batchpay.workers import Shared

__all__ = [
    "Plan",
    "RunOptions",
    "RunResult",
    "build_report",
    "close_run_if_done",
    "connect",
    "plan",
    "report_for",
    "run",
    "run_async",
    "runs",
]

# The journal-to-report mapping lives in batchpay.report.from_journal; its names stay
# importable from here, where manage and the tests have always found them.
_outcome = from_journal._outcome
_s = from_journal._s
_dec = from_journal._dec
build_report = from_journal.build_report
_outcome_counts = from_journal._outcome_counts
_FAILED = from_journal._FAILED
_exit_code = from_journal._exit_code

ProgressFn = Callable[[str, int, int], None]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """What a run did: its id, its report, and the exit code the CLI should use."""

    run_id: str
    resumed: bool
    report: report_mod.Report
    paths: report_mod.ReportPaths | None
    exit_code: ExitCode
    counts: dict[str, int]
    banner: str


# -- the verbs ------------------------------------------------------------------------------

FileArg = PayoutFile | Path | str


def _source(file: FileArg, options: RunOptions) -> PayoutFile:
    return file if isinstance(file, PayoutFile) else checks.read_source(file, options)


async def run_async(
    file: FileArg,
    *,
    settings: Settings | None = None,
    options: RunOptions | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = utcnow,
    on_progress: ProgressFn | None = None,
    track_sleep: Callable[[float], Any] | None = None,
    submission: Submission | None = None,
) -> RunResult:
    """Pay a file: the library verb behind ``batchpay run``.

    ``file`` is a path, or a :class:`~batchpay.source.PayoutFile` (a name and its bytes);
    ``submission`` is how rows reach the provider (one request per row by default).
    """
    settings = settings or resolve_settings()
    if settings.mode is Mode.LIVE and not settings.confirm_live:
        raise ConfigError(
            "a live run moves real money and needs an explicit confirmation",
            hint="pass --confirm-live (or set BATCHPAY_CONFIRM_LIVE=1) after checking the file",
        )
    options = options or RunOptions()
    out_dir = options.out_dir or Path("reports")
    report_mod.check_out_dir(out_dir)
    source = _source(file, options)
    owner = LockOwner.current()
    # The file is checked in a thread: the journal opens meanwhile, and the plan's file-only
    # part is made there while the earlier runs of the file are looked up (_create_run).
    checking = _FileCheck(source, options, settings.environment)
    with checking, Journal(settings.journal_path, clock=clock) as journal:
        # On a PostgreSQL journal several processes share a run (batchpay.workers): none
        # holds it alone. On SQLite one process holds it; a second exits 8.
        shared = journal.dialect == "postgresql" and submission is None
        if shared:
            submission = Shared(lease=settings.worker_lease_seconds)
        lock_owner = None if shared else owner
        checked = await checking.result()
        resumable = _earlier_run(journal, settings.environment, checked, options)
        if resumable is None:
            _refuse_unpayable(checked, options)
        async with connect(
            settings, journal, transport=transport, clock=clock, concurrency=options.concurrency
        ) as conn:
            try:
                if resumable is not None:
                    run_id = _resume(journal, resumable, checked, lock_owner)
                else:
                    run_id = await _create_run(
                        conn, checked, options, lock_owner,
                        look_early=submission is None, draft=checking.draft(),
                        on_progress=on_progress,
                    )  # fmt: skip
            except BaseException:
                if conn.ledger_look is not None:
                    await conn.ledger_look.close()
                raise
            conn.run_id = run_id
            conn.adopt_calls()
            if conn.ledger_look is not None:  # the run is recorded: let the look move on
                await conn.ledger_look.step()
            log.info(
                "run %s %s for %s", run_id, "resumed" if resumable else "created",
                checked.source.name, extra={"run_id": run_id, "file": checked.source.name},
            )  # fmt: skip
            early: report_mod.Report | None = None
            try:
                strategy = submission or PerRow()
                _refuse_other_way(journal, run_id, strategy)
                # imported while the strategy waits on the provider, not after its last payout
                report_mod.files.preload_writer()
                await strategy.submit_run(conn, run_id, checked, options, on_progress)
                if conn.final_check is not None:
                    # The check after sending is out: the report is built meanwhile, and
                    # again if the check cancelled a second payout.
                    early = build_report(journal, run_id, settings)
                    check, conn.final_check = conn.final_check, None
                    if await check:
                        early = None
                if options.wait:
                    kwargs: dict[str, Any] = {"timeout": options.wait_timeout}
                    if track_sleep is not None:
                        kwargs["sleep"] = track_sleep
                    if on_progress is not None:
                        kwargs["on_poll"] = _wait_progress(journal, run_id, on_progress)
                    await track.follow(conn.client, journal, run_id, **kwargs)
            finally:
                if conn.final_check is not None:  # the run stopped before it was awaited:
                    pending, conn.final_check = conn.final_check, None
                    with suppress(Exception):  # it still ends (the first error is raised)
                        await pending
                if conn.ledger_look is not None:  # ended (or no longer wanted)
                    await conn.ledger_look.close()
                close_run_if_done(journal, run_id, final_only=options.wait)
                if lock_owner is not None:
                    journal.release_run_lock(run_id, lock_owner)
        rep = early if early is not None else build_report(journal, run_id, settings)
        # Workers sharing a finished run: exactly one writes its report.
        write = not shared or _writes_shared_report(journal, run_id, submission)
    counts = _outcome_counts(rep)
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    paths = report_mod.write_report(rep, out_dir / run_id, run_id) if write else None
    if paths is not None:
        log.info(
            "report written: %s (%s)", paths.xlsx.parent, outcomes,
            extra={"run_id": run_id, "report": str(paths.xlsx.parent), "outcomes": counts},
        )  # fmt: skip
    return RunResult(
        run_id=run_id,
        resumed=resumable is not None,
        report=rep,
        paths=paths,
        exit_code=_exit_code(rep, waited=options.wait),
        counts=counts,
        banner=settings.banner(),
    )


def _wait_progress(journal: Journal, run_id: str, on_progress: ProgressFn) -> Callable[[int], None]:
    """``on_poll`` for ``track.follow``: the "wait" phase's payouts final of those followed."""
    waiting = len(track.pending_payouts(journal, run_id))
    on_progress("wait", 0, waiting)
    return lambda still: on_progress("wait", waiting - still, waiting)


def _writes_shared_report(journal: Journal, run_id: str, submission: Any) -> bool:
    """A shared run's report: by every pass while unfinished, once when finished."""
    run = journal.get_run(run_id)
    if run is None or run["status"] != "finished":
        return True
    return journal.claim_report(run_id, getattr(submission, "worker", "?"))


def _earlier_run(
    journal: Journal, env: str, checked: CheckedFile, options: RunOptions
) -> str | None:
    """The unfinished earlier run of this file to resume (or the finished one whose held
    rows ``options`` release); refuse a file already paid."""
    earlier = journal.find_runs_for_file(
        env, sha256=checked.ingested.sha256, fingerprint=checked.fingerprint
    )
    resumable = [r for r in earlier if r["status"] != "finished"]
    if resumable:
        return str(resumable[0]["id"])
    reopened = holds.reopen_for_release(journal, [str(r["id"]) for r in earlier], options)
    if reopened is not None:
        return reopened
    if earlier:
        first = earlier[0]
        how = (
            "the same file"
            if first["sha256"] == checked.ingested.sha256
            else "a copy with the same rows (re-saved or re-exported)"
        )
        raise DuplicateFileError(
            f"{checked.source.name} was already run: {how} was paid as {first['id']} "
            f"({first['file_name']}, {first['created_at'][:19].replace('T', ' ')} UTC)",
            run_id=str(first["id"]),
        )
    return None


def _refuse_other_way(journal: Journal, run_id: str, strategy: Submission) -> None:
    """A run resumed the way it started: a batch run is never finished row by row."""
    from batchpay.batches import Batches

    batch = journal.batch_for_run(run_id)
    if batch is not None and not isinstance(strategy, Batches):
        raise ConfigError(
            f"run {run_id} goes through the provider's batch upload "
            f"({batch['batch_id'] or 'upload in progress'}); it cannot be finished row by row",
            hint="run the same command with --via batches to finish it",
        )


def _refuse_unpayable(checked: CheckedFile, options: RunOptions) -> None:
    """A new run needs a valid file (or --skip-invalid and some valid rows) and its totals."""
    if checked.issues and not options.skip_invalid:
        raise ValidationFailed(checked.issues, rows_checked=checked.row_count)
    controls.check_control_totals(checked, options)
    if not checked.accepted_count:
        raise ValidationFailed(checked.issues, rows_checked=checked.row_count)


class _FileCheck:
    """:func:`checks.check_file` in a thread of its own, started at once.

    Leaving the ``with`` block waits for the thread. A block that failed (the journal,
    the connection, a refusal) while the check failed too raises the check's error: the
    file's problems are said first, as when the file was checked before anything else."""

    def __init__(self, source: PayoutFile, options: RunOptions, environment: str) -> None:
        self._done: Future[CheckedFile] = Future()
        self._draft: Future[planning.DraftRecords] = Future()
        self._thread = threading.Thread(
            target=self._check, args=(source, options, environment), name="batchpay-check-file"
        )
        self._thread.start()

    def _check(self, source: PayoutFile, options: RunOptions, environment: str) -> None:
        try:
            checked = checks.check_file(source, options)
            checked.fingerprint  # noqa: B018 (made here: the journal is asked for it next)
        except BaseException as exc:  # handed to the caller, raised there
            _settle(self._done, error=exc)
            _settle(self._draft, error=exc)
            return
        _settle(self._done, checked)
        try:  # then what the file alone says of its rows, for the plan
            _settle(self._draft, planning.draft_records(checked, environment))
        except BaseException as exc:
            _settle(self._draft, error=exc)

    async def result(self) -> CheckedFile:
        """The checked file (raises what the check raised)."""
        return await asyncio.wrap_future(self._done)

    def draft(self) -> asyncio.Future[planning.DraftRecords]:
        """:func:`planning.draft_records` of the checked file, when made."""
        return asyncio.wrap_future(self._draft)

    def __enter__(self) -> _FileCheck:
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        self._thread.join()
        failed = None if self._done.cancelled() else self._done.exception()
        if isinstance(exc, Exception) and failed is not None and failed is not exc:
            raise failed from None


def _settle(done: Future[Any], value: Any = None, *, error: BaseException | None = None) -> None:
    """Give ``done`` its result (or ``error``) unless its waiter was cancelled meanwhile (a
    cancelled run's ``await`` cancels the future it waited on)."""
    with suppress(InvalidStateError):
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(value)


def _resume(journal: Journal, run_id: str, checked: CheckedFile, owner: LockOwner | None) -> str:
    """Take the run's lock (``owner``), or join it without one (workers sharing it)."""
    if owner is not None:
        journal.acquire_run_lock(run_id, owner)
    _refuse_if_finished_meanwhile(journal, run_id, checked.source.name, owner)
    return run_id


async def _create_run(
    conn: Connection,
    checked: CheckedFile,
    options: RunOptions,
    owner: LockOwner | None,
    *,
    look_early: bool = False,
    draft: Awaitable[planning.DraftRecords] | None = None,
    on_progress: ProgressFn | None = None,
) -> str:
    """Plan the rows, check the balance and record the new run (with its lock).

    ``draft`` is what the file alone says of its rows (made in the check's thread). With
    ``look_early`` (rows sent one by one), a plan with rows to send starts the look at the
    provider's ledger here, read while the balance is checked and the run recorded; the
    strategy awaits it before its first payout. The balance check asks first: with one
    request in flight, the run is recorded (and its lock taken) before the look's lists.
    """
    journal, settings = conn.journal, conn.settings
    drafted = await draft if draft is not None else None
    records = planning.row_records(checked, journal, settings.environment, draft=drafted)
    if look_early and any(r["state"] in (PLANNED, HELD) for r in records):
        conn.ledger_look = ledger.LedgerLook(
            conn.client, journal, settings.environment,
            provider_clock=conn.provider_clock, on_progress=on_progress,
        )  # fmt: skip
    if not options.skip_balance_check:
        payable = [checked.valid_rows[r["row_number"]] for r in records if r["state"] == PLANNED]
        await preflight.preflight(conn, payable)
    if conn.ledger_look is not None:
        await conn.ledger_look.step()
    try:
        return journal.create_run(
            environment=settings.environment,
            api_url=settings.api_url,
            mode=settings.mode.value,
            file={
                "sha256": checked.ingested.sha256,
                "fingerprint": checked.fingerprint,
                "name": checked.source.name,
                "size": checked.source.size,
                "format": checked.ingested.format,
                "row_count": checked.row_count,
            },
            rows=records,
            options={
                "skip_invalid": options.skip_invalid,
                "allow_new_bank_details": options.allow_new_bank_details,
                "allow_repeats": checked.rules.allow_repeats,
                "reference_per_payee": checked.rules.reference_per_payee,
            },
            owner=owner,
        )
    except RunExists as exc:
        # Another process created the run between our check and now: it is working on
        # it, so take its lock or say who holds it.
        return _resume(journal, exc.run_id, checked, owner)


def _refuse_if_finished_meanwhile(
    journal: Journal, run_id: str, name: str, owner: LockOwner | None
) -> None:
    """Another process may have finished the run between our look and our lock."""
    run = journal.get_run(run_id)
    if run is not None and run["status"] == "finished":
        if owner is not None:
            journal.release_run_lock(run_id, owner)
        raise DuplicateFileError(
            f"{name} was just paid by another batchpay process as {run_id}", run_id=run_id
        )


def run(file: FileArg, **kwargs: Any) -> RunResult:
    """Synchronous :func:`run_async`."""
    return aio.run(run_async(file, **kwargs))


def report_for(
    run_id: str | None = None,
    *,
    settings: Settings | None = None,
    out_dir: Path | None = None,
) -> tuple[report_mod.Report, report_mod.ReportPaths]:
    """Regenerate a run's report from the journal (the latest run when ``run_id`` is None)."""
    settings = settings or resolve_settings()
    with Journal(settings.journal_path) as journal:
        run_id = run_id or journal.latest_run_id()
        if run_id is None:
            raise RunNotFound("the journal holds no runs yet", hint="run a file first")
        rep = build_report(journal, run_id, settings)
    paths = report_mod.write_report(rep, (out_dir or Path("reports")) / run_id, run_id)
    return rep, paths


def runs(*, settings: Settings | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The most recent runs in the journal, newest first."""
    settings = settings or resolve_settings()
    with Journal(settings.journal_path) as journal:
        return [
            {
                "run_id": r["id"],
                "file": r["file_name"],
                "rows": r["row_count"],
                "status": r["status"],
                "mode": r["mode"],
                "created_at": r["created_at"],
                "parent_run_id": r["parent_run_id"],
                "options": json.loads(r["options"]),
            }
            for r in journal.list_runs(limit)
        ]
