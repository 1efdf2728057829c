"""The nightly DAG's steps as plain functions: find, claim, validate, run, follow, answer.

Each takes named values and returns named values; none imports Airflow, so each is
testable alone. They reuse :class:`batchpay.watch.Watcher`'s rules — a file is complete when
its ``.ok`` marker is there; the claim is a rename into ``processing/WORKER/``; the answer
lands in ``processed/`` or ``failed/`` beside the input — and raise batchpay's own errors;
:func:`batchpay.airflow.tasks.airflow_error` turns those into what Airflow understands.

Exactly once across Airflow retries: a retried ``run`` finds the file still claimed in
``processing/WORKER/`` and runs it again; the journal (by the file's SHA-256) resumes the
same run, settling every unknown outcome with its own idempotency key, so nothing is paid
twice. A retry after the run had finished is recognised as that claim's own run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from batchpay.config import Settings, read_sftp_auth
from batchpay.errors import (
    BatchpayError,
    DuplicateFileError,
    ExitCode,
    NothingToDo,
    ValidationFailed,
)
from batchpay.options import RunOptions
from batchpay.watch import Watcher, WatchOptions, open_folder
from batchpay.watch.manifest import Manifest
from batchpay.watch.watcher import REFUSED as _REFUSED

__all__ = [
    "Drop",
    "Summary",
    "answer_file",
    "claim_next",
    "follow_round",
    "pending_files",
    "run_file",
    "validate_file",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Drop:
    """The drop folder a DAG watches: ``source`` (a local path or ``sftp://user@host/path``)
    and the ``worker`` name its claims go under (``processing/WORKER/``)."""

    source: str
    worker: str = "airflow"
    run: RunOptions = field(default_factory=RunOptions)

    def watcher(self, settings: Settings) -> Watcher:
        """A watcher on the folder (SFTP credentials from ``BATCHPAY_SFTP_*``)."""
        auth = read_sftp_auth() if self.source.startswith("sftp://") else None
        folder = open_folder(self.source, sftp_auth=auth)
        return Watcher(folder, settings, WatchOptions(run=self.run, worker=self.worker))


@dataclass(frozen=True)
class Summary:
    """What became of one file: published to XCom by the DAG (``as_dict``)."""

    file: str
    run_id: str
    exit_code: int
    answer: str | None
    report: str | None
    counts: dict[str, int]
    totals: dict[str, Any]
    attention: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (amounts stay decimal strings)."""
        return {
            "file": self.file,
            "run_id": self.run_id,
            "exit_code": self.exit_code,
            "answer": self.answer,
            "report": self.report,
            "counts": self.counts,
            "totals": self.totals,
            "attention": self.attention,
        }


def pending_files(drop: Drop, settings: Settings) -> list[str]:
    """This worker's unfinished claims, then the complete files waiting in the inbox."""

    async def look(watcher: Watcher) -> list[str]:
        await watcher.folder.makedirs(f"processing/{watcher.worker}")
        mine = await watcher.own_claims()
        complete, _waiting = await watcher.complete_files()
        return mine + [n for n in complete if n not in mine]

    return _with_watcher(drop, settings, look)


def claim_next(drop: Drop, settings: Settings) -> str:
    """Claim one file: an unfinished claim of this worker first, else the first complete
    file in the inbox. :class:`NothingToDo` when there is none (or another watcher was
    faster)."""

    async def take(watcher: Watcher) -> str:
        await watcher.folder.makedirs(f"processing/{watcher.worker}")
        mine = await watcher.own_claims()
        if mine:
            log.info("resuming the unfinished claim %s", mine[0], extra={"file": mine[0]})
            return mine[0]
        complete, _waiting = await watcher.complete_files()
        for name in complete:
            if await watcher.claim(name):
                return name
        raise NothingToDo(f"no complete file in {watcher.folder.display}")

    return _with_watcher(drop, settings, take)


def _with_watcher(drop: Drop, settings: Settings, step: Callable[[Watcher], Awaitable[T]]) -> T:
    """Run one step on a watcher of the drop folder, closing its connection afterwards."""

    async def run() -> T:
        watcher = drop.watcher(settings)
        try:
            return await step(watcher)
        finally:
            await watcher.folder.aclose()

    return asyncio.run(run())


async def _refuse(watcher: Watcher, name: str, exc: BatchpayError, sha256: str | None) -> None:
    """Answer a refused file in failed/ (the error is then raised on)."""
    await watcher.answer_refused(name, exc, sha256)


def validate_file(drop: Drop, settings: Settings, name: str) -> dict[str, Any]:
    """Every check on the claimed file (``batchpay validate``); a refused file is answered in
    ``failed/`` and its error raised. Returns the plan's figures."""
    from batchpay import pipeline

    async def check(watcher: Watcher) -> dict[str, Any]:
        sha256: str | None = None
        try:
            source, sha256, manifest = await watcher.read_source(name)
            plan = pipeline.plan(
                source, settings=settings, options=watcher.options_for(name, manifest)
            )
            if plan.issues and not drop.run.skip_invalid:
                raise ValidationFailed(plan.issues, rows_checked=plan.rows)
        except BatchpayError as exc:
            if ExitCode(exc.exit_code) in _REFUSED:
                await _refuse(watcher, name, exc, sha256)
            raise
        return {
            "file": name,
            "sha256": plan.sha256,
            "rows": plan.rows,
            "rows_to_pay": plan.rows_to_pay,
            "already_paid": plan.already_paid,
            "totals": {cur: str(amount) for cur, amount in sorted(plan.totals.items())},
        }

    return _with_watcher(drop, settings, check)


def run_file(drop: Drop, settings: Settings, name: str) -> str:
    """Pay the claimed file (``batchpay run``, without waiting) and return its run id.

    A refusal (duplicate, invalid, totals, preflight) answers the file in ``failed/`` and is
    raised; a transient failure (API unreachable, exit 10) leaves it claimed and is raised,
    so that the retry resumes the same run.
    """
    from batchpay import pipeline

    async def pay(watcher: Watcher) -> str:
        claim = await watcher.read_claim(name)
        sha256: str | None = None
        try:
            source, sha256, manifest = await watcher.read_source(name)
            result = await pipeline.run_async(
                source, settings=settings, options=watcher.options_for(name, manifest)
            )
        except DuplicateFileError as exc:
            if watcher.is_own_run(exc.run_id, claim):
                # A retry after the run had finished: this claim's own run.
                log.info("%s was already run by this claim (%s)", name, exc.run_id)
                await watcher.write_claim(name, {**claim, "run_id": exc.run_id, "sha256": sha256})
                return exc.run_id
            await _refuse(watcher, name, exc, sha256)
            raise
        except BatchpayError as exc:
            if ExitCode(exc.exit_code) in _REFUSED:
                await _refuse(watcher, name, exc, sha256)
            raise
        await watcher.write_claim(name, {**claim, "run_id": result.run_id, "sha256": sha256})
        if result.exit_code == ExitCode.INCOMPLETE:
            raise Incomplete(
                f"run {result.run_id} is not finished: some rows' outcome is not yet known"
            )
        return result.run_id

    return _with_watcher(drop, settings, pay)


class Incomplete(BatchpayError):
    """Some rows' outcome is not yet known (exit 10): retry, and the run resumes."""

    exit_code = ExitCode.INCOMPLETE
    retryable = True
    default_hint = "the retry resumes the same run; nothing is paid twice"


def follow_round(settings: Settings, run_id: str, out_dir: Path | None = None) -> int:
    """One tracking round (``batchpay track`` without waiting): settle unknown outcomes,
    read the payouts' statuses, rewrite the report. Returns how many are still pending."""
    from batchpay import manage, track
    from batchpay.journal import Journal

    asyncio.run(
        manage.track_async(
            run_id, settings=settings, timeout=0.0, out_dir=out_dir or settings.home / "reports"
        )
    )
    with Journal(settings.journal_path) as journal:
        return len(track.pending_payouts(journal, run_id))


def answer_file(drop: Drop, settings: Settings, name: str, run_id: str) -> Summary:
    """Answer the claimed file beside it (``processed/`` or ``failed/``) with its run's report
    as the journal has it now, and say what became of it."""

    async def answer(watcher: Watcher) -> Summary:
        claim = await watcher.read_claim(name)
        sha256 = claim.get("sha256")
        ans = await watcher.answer_paid(name, run_id, sha256 if isinstance(sha256, str) else None)
        return _summary(settings, name, run_id, ans.exit_code, ans.answer, watcher)

    return _with_watcher(drop, settings, answer)


def _summary(
    settings: Settings, name: str, run_id: str, code: int, answer: str | None, watcher: Watcher
) -> Summary:
    from batchpay import manage

    rep = manage.show(run_id, settings=settings).report
    attention = [
        {
            "row": r.row,
            "reference": r.reference,
            "outcome": str(r.outcome),
            "status": r.payout_status,
            "error_code": r.error_code,
            "error_message": r.error_message,
        }
        for r in rep.rows
        if r.needs_attention
    ]
    report_dir = watcher.options_for(name, Manifest()).out_dir
    return Summary(
        file=name,
        run_id=run_id,
        exit_code=code,
        answer=answer,
        report=str(Path(report_dir or "reports") / run_id),
        counts={k: v for k, v in rep.outcome_counts.items() if v},
        totals={cur: t.to_dict() for cur, t in sorted(rep.totals.items())},
        attention=attention,
    )
