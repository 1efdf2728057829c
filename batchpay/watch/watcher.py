"""The drop-folder protocol: see a file, know it is complete, claim it, run it, answer it.

::

    SOURCE/                      the inbox: accounting drops NAME and NAME.ok (and NAME.ctl)
    SOURCE/processing/WORKER/    claimed by the watcher named WORKER, not yet answered
    SOURCE/processed/YYYY-MM-DD/ paid (some rows may need a person): NAME, NAME.ok,
                                 NAME.result.json, NAME.report.csv, NAME.report.xlsx
    SOURCE/failed/YYYY-MM-DD/    refused (unreadable, invalid, duplicate, totals …): NAME,
                                 NAME.ok, NAME.result.json

The claim is one rename of NAME from the inbox into the watcher's own processing folder:
of two watchers renaming one file, exactly one succeeds. The watcher's name in the path
says whose claim it is, so a restarted watcher finishes its own claims (resuming the run:
the journal pays nothing twice) and never another watcher's. Beside each claim lies
``NAME.claim.json`` — when it was claimed, the run once known, and, once the answer's name
is chosen, where the answer goes — so a watcher killed at any point finishes the file, and
an answer is committed by renaming NAME into ``processed/`` or ``failed/``, never over an
earlier answer (``NAME``, ``NAME-2``, … the same name dropped twice in a day).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx

from batchpay.config import Settings
from batchpay.errors import (
    BatchpayError,
    ConfigError,
    DuplicateFileError,
    ExitCode,
    InputError,
    RunLockedError,
    ValidationFailed,
)
from batchpay.options import RunOptions
from batchpay.source import CONTROL_SUFFIX, PayoutFile
from batchpay.watch.folders import Folder, join
from batchpay.watch.manifest import MARKER_SUFFIX, Manifest, check_sha256, read_manifest

log = logging.getLogger(__name__)

PROCESSING = "processing"
# Another watcher's claim unanswered this long (and not certainly abandoned) is said.
ORPHAN_NOTICE_SECONDS = 3600.0
PROCESSED = "processed"
FAILED = "failed"
CLAIM_SUFFIX = ".claim.json"
RESULT_SUFFIX = ".result.json"
REPORT_SUFFIXES = (".report.csv", ".report.xlsx")
# What travels with a payout file, in the order it is moved (the result last: its
# presence in processed/ or failed/ says the answer is whole).
_SIDECARS = (MARKER_SUFFIX, CONTROL_SUFFIX, *REPORT_SUFFIXES, RESULT_SUFFIX)
MAX_ISSUES_IN_RESULT = 1000


def is_temporary(name: str) -> bool:
    """Names a watcher never takes: dot-files, Office lock files, partial uploads."""
    lower = name.lower()
    return name.startswith((".", "~$")) or lower.endswith(
        (".part", ".tmp", ".partial", ".filepart")
    )


def is_payout_candidate(name: str) -> bool:
    """A name in the inbox that may be a payout file (not temporary, not a sidecar)."""
    return not is_temporary(name) and not name.endswith((MARKER_SUFFIX, CONTROL_SUFFIX))


class Outcome(StrEnum):
    """What became of one file in one pass."""

    PROCESSED = "processed"  # paid (rows may need a person); answered in processed/
    FAILED = "failed"  # refused; answered in failed/
    RETRY = "retry"  # a transient failure: left in processing/ for the next pass
    STOPPED = "stopped"  # the watcher cannot work (configuration, credentials): left as is


# Refusals the file itself earned: answered in failed/.
REFUSED = _REFUSED = {
    ExitCode.INPUT_UNREADABLE,
    ExitCode.VALIDATION_FAILED,
    ExitCode.DUPLICATE_FILE,
    ExitCode.PREFLIGHT,
}
# Nothing will work until a person fixes the setup: the pass stops.
_SYSTEMIC = {ExitCode.CONFIG, ExitCode.AUTHENTICATION, ExitCode.INTERNAL}

# Which outcome's exit code a pass reports, most urgent first: the setup is broken; work is
# unfinished (it is retried); a file was refused (answered in failed/); rows need a person.
EXIT_PRECEDENCE: tuple[int, ...] = (
    ExitCode.INTERNAL,
    ExitCode.CONFIG,
    ExitCode.AUTHENTICATION,
    ExitCode.API_ERROR,
    ExitCode.INCOMPLETE,
    ExitCode.LOCKED,
    ExitCode.PREFLIGHT,
    ExitCode.DUPLICATE_FILE,
    ExitCode.VALIDATION_FAILED,
    ExitCode.INPUT_UNREADABLE,
    ExitCode.ROWS_FAILED,
    ExitCode.OK,
)


def combine_exit_codes(codes: Iterable[int]) -> int:
    """One exit code for several files: the most urgent by :data:`EXIT_PRECEDENCE`; 0 if none."""
    rank = {int(c): i for i, c in enumerate(EXIT_PRECEDENCE)}
    chosen = int(ExitCode.OK)
    for code in codes:
        if rank.get(code, 0) < rank.get(chosen, len(rank)):
            chosen = code
    return chosen


@dataclass(frozen=True)
class FileAnswer:
    """What one pass did with one file."""

    name: str
    outcome: Outcome
    exit_code: int
    message: str
    hint: str = ""
    run_id: str | None = None
    answer: str | None = None  # where the answered file now is, relative to SOURCE


@dataclass(frozen=True)
class PassResult:
    """Everything one pass did; ``waiting`` are files seen but not yet complete."""

    answers: list[FileAnswer]
    waiting: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The pass's exit code (see :func:`combine_exit_codes`); 0 when there was nothing."""
        return combine_exit_codes(a.exit_code for a in self.answers)


def default_worker() -> str:
    """This watcher's default name: the host name, made safe as a folder name."""
    return _safe_worker(socket.gethostname() or "watcher")


def _safe_worker(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")
    return safe or "watcher"


@dataclass(frozen=True)
class WatchOptions:
    """How a watcher treats its folder, on top of the run options for each file.

    ``settle``: also take a file without a marker once its size and modification time have
    not changed for this many seconds (None: a marker is required). ``worker``: the name of
    this watcher's claims in ``processing/`` (one per watcher; a restart must reuse it).
    """

    run: RunOptions = field(default_factory=RunOptions)
    settle: float | None = None
    worker: str = field(default_factory=default_worker)
    interval: float = 30.0


def _utc_now() -> datetime:
    from batchpay.journal import utcnow

    return utcnow()


def _today() -> date:
    return datetime.now().astimezone().date()


@dataclass
class _Seen:
    size: int
    mtime: float
    since: float  # time.monotonic() when this size and mtime were first seen


class Watcher:
    """Watches one drop folder; one :meth:`run_pass` takes what is complete and answers it."""

    def __init__(
        self,
        folder: Folder,
        settings: Settings,
        options: WatchOptions | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = _utc_now,
        today: Callable[[], date] = _today,
        run_kwargs: dict[str, Any] | None = None,
        on_answer: Callable[[FileAnswer], None] | None = None,
    ) -> None:
        self.folder = folder
        self.settings = settings
        self.options = options or WatchOptions()
        self.worker = _safe_worker(self.options.worker)
        self.transport = transport
        self.clock = clock
        self.today = today
        self.run_kwargs = run_kwargs or {}
        self.on_answer = on_answer
        self._seen: dict[str, _Seen] = {}
        self._mine = join(PROCESSING, self.worker)
        self._out_dir = self.options.run.out_dir or settings.home / "reports"

    # -- one pass ---------------------------------------------------------------------------

    async def run_pass(self, *, settle_wait: bool = False) -> PassResult:
        """Finish this watcher's own claims, then claim and answer every complete new file.

        With ``settle_wait`` (``--once``) a file that may settle is watched for the settling
        period before the pass gives up on it, so a single pass can take it.
        """
        await self.folder.makedirs(self._mine)
        answers: list[FileAnswer] = []
        _, notices = await self.others_claims()  # the adopted are this watcher's claims now
        for notice in notices:
            self._record(answers, notice)
        for name in await self.own_claims():
            answer = await self._process(name, recovered=True)
            if answer is not None:
                self._record(answers, answer)
                if answer.outcome is Outcome.STOPPED:
                    return PassResult(answers)
        complete, waiting = await self.complete_files()
        if settle_wait and self.options.settle is not None and waiting:
            # One look cannot tell a settled file from a growing one: keep looking for the
            # settling period (plus a little), taking each file as it settles.
            deadline = time.monotonic() + self.options.settle + 0.5
            while waiting and time.monotonic() < deadline:
                await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                more, waiting = await self.complete_files()
                complete += [n for n in more if n not in complete]
        for name in complete:
            if not await self.claim(name):
                continue
            answer = await self._process(name, recovered=False)
            if answer is not None:
                self._record(answers, answer)
                if answer.outcome is Outcome.STOPPED:
                    break
        return PassResult(answers, waiting)

    def _record(self, answers: list[FileAnswer], answer: FileAnswer) -> None:
        answers.append(answer)
        if self.on_answer is not None:
            self.on_answer(answer)

    async def watch(self, *, stop: asyncio.Event | None = None) -> None:
        """Run passes every ``interval`` seconds until ``stop`` is set (or cancelled).

        A transient failure of the folder itself (a dropped SFTP connection) is logged and
        the next pass tries again; a systemic one (configuration) ends the loop.
        """
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                result = await self.run_pass()
            except BatchpayError as exc:
                if exc.exit_code in _SYSTEMIC:
                    raise
                log.warning("pass failed: %s", exc.message, extra={"folder": self.folder.display})
            else:
                stopped = [a for a in result.answers if a.outcome is Outcome.STOPPED]
                if stopped:
                    raise _StoppedError(stopped[0])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.options.interval)

    # -- seeing and claiming ----------------------------------------------------------------

    async def complete_files(self) -> tuple[list[str], list[str]]:
        """(complete, waiting): payout files in the inbox, complete by marker or by settling."""
        entries = await self.folder.files("")
        names = {e.name for e in entries}
        complete: list[str] = []
        waiting: list[str] = []
        now = time.monotonic()
        for e in entries:
            if not is_payout_candidate(e.name):
                continue
            if e.name not in self._seen:
                log.info("seen %s (%d bytes)", e.name, e.size, extra=self._extra(e.name))
            seen = self._seen.get(e.name)
            if seen is None or (seen.size, seen.mtime) != (e.size, e.mtime):
                seen = self._seen[e.name] = _Seen(e.size, e.mtime, now)
            if e.name + MARKER_SUFFIX in names:
                how = "its marker is there"
            elif self.options.settle is not None and now - seen.since >= self.options.settle:
                how = f"unchanged for {self.options.settle:g} s"
            else:
                waiting.append(e.name)
                continue
            log.info("complete %s: %s", e.name, how, extra=self._extra(e.name))
            complete.append(e.name)
        for gone in set(self._seen) - names:
            del self._seen[gone]
        return complete, waiting

    async def claim(self, name: str) -> bool:
        """Rename ``name`` into this watcher's processing folder; False if another took it."""
        target = join(self._mine, name)
        if await self.folder.exists(target):
            log.info(
                "%s waits: a file of that name is still being processed", name,
                extra=self._extra(name),
            )  # fmt: skip
            return False
        # The claim record goes first: a watcher killed just after the rename still knows
        # when its claim began (a run created after it is this claim's own run).
        await self.write_claim(name, {"claimed_at": self.clock().isoformat()})
        if not await self.folder.claim(name, target):
            await self.folder.remove(join(self._mine, name + CLAIM_SUFFIX))
            log.info("%s was claimed by another watcher", name, extra=self._extra(name))
            self._seen.pop(name, None)
            return False
        self._seen.pop(name, None)
        for suffix in (MARKER_SUFFIX, CONTROL_SUFFIX):
            await self._take_sidecar(name, suffix)
        log.info("claimed %s into %s", name, self._mine, extra=self._extra(name))
        return True

    async def _take_sidecar(self, name: str, suffix: str, *, source: str = "") -> None:
        """Move ``name``'s sidecar from ``source`` (the inbox) beside this watcher's claim."""
        there, mine = join(source, name + suffix), join(self._mine, name + suffix)
        if await self.folder.exists(there) and not await self.folder.exists(mine):
            await self.folder.claim(there, mine)

    async def own_claims(self) -> list[str]:
        """This watcher's unanswered claims, after finishing any answer cut off midway."""
        names = []
        files = {e.name for e in await self.folder.files(self._mine)}
        for claim_file in sorted(f for f in files if f.endswith(CLAIM_SUFFIX)):
            name = claim_file[: -len(CLAIM_SUFFIX)]
            claim = await self.read_claim(name)
            if name in files:
                self._check_not_shared(name, claim)
                # The record names this process now: another watcher must not take the
                # claim for abandoned by the pid of the pass that left it.
                await self.write_claim(name, claim)
                log.info("resuming claim %s", name, extra=self._extra(name))
                # A watcher killed between the claim and moving the marker left it behind.
                for suffix in (MARKER_SUFFIX, CONTROL_SUFFIX):
                    await self._take_sidecar(name, suffix)
                names.append(name)
            elif claim.get("answer_to"):
                await self._finish_answer(name, str(claim["answer_to"]))
            else:  # the claim's rename never happened
                await self.folder.remove(join(self._mine, claim_file))
        return names

    async def others_claims(self) -> tuple[list[str], list[FileAnswer]]:
        """Other watchers' unanswered claims: (adopted, notices).

        A claim is adopted — moved into this watcher's processing folder, to be finished
        like its own — only when its watcher has certainly stopped working on it: that
        watcher's process, on this host, has ended; or this journal holds an unfinished
        run of the file that no process holds (the run's lock is an OS lock, gone with its
        holder). Resuming the run pays nothing twice. Any other claim unanswered for
        :data:`ORPHAN_NOTICE_SECONDS` is said, never left silently (its watcher may be gone
        under a name no longer used, a container's host name say)."""
        adopted: list[str] = []
        notices: list[FileAnswer] = []
        for worker in await self.folder.folders(PROCESSING):
            if worker == self.worker:
                continue
            theirs = join(PROCESSING, worker)
            files = {e.name for e in await self.folder.files(theirs)}
            for claim_file in sorted(f for f in files if f.endswith(CLAIM_SUFFIX)):
                name = claim_file[: -len(CLAIM_SUFFIX)]
                if name not in files:
                    continue  # answered, or its rename never happened: its watcher tidies it
                claim = await self._read_record(join(theirs, claim_file))
                why = await self._abandoned(theirs, name, claim)
                if why and await self._adopt(theirs, name, claim):
                    log.warning(
                        "adopted %s from watcher %s (%s)", name, worker, why,
                        extra=self._extra(name, from_worker=worker),
                    )  # fmt: skip
                    adopted.append(name)
                    continue
                age = _age_seconds(claim.get("claimed_at"), self.clock())
                if age is None or age >= ORPHAN_NOTICE_SECONDS:
                    since = str(claim.get("claimed_at") or "an unknown time")[:19]
                    who = f"{claim.get('host', '?')}, pid {claim.get('pid', '?')}"
                    message = (
                        f"{name} was claimed by watcher {worker} ({who}) at {since} and is "
                        "not answered"
                    )
                    log.warning(message, extra=self._extra(name, from_worker=worker))
                    notices.append(FileAnswer(
                        name, Outcome.RETRY, int(ExitCode.INCOMPLETE), message,
                        f"if that watcher is gone for good, start one with --worker {worker} "
                        f"(or move {join(theirs, name)} back into the folder): nothing is "
                        "paid twice",
                        answer=join(theirs, name),
                    ))  # fmt: skip
        return adopted, notices

    async def _abandoned(self, theirs: str, name: str, claim: dict[str, Any]) -> str:
        """Why another watcher's claim is certainly abandoned ("" when it may not be)."""
        pid = claim.get("pid")
        if claim.get("host") == socket.gethostname() and isinstance(pid, int):
            if pid == os.getpid():
                return ""  # a watcher of this very process
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return f"its process {pid} on this host has ended"
            except PermissionError:
                pass
            return ""
        from batchpay.journal import Journal, LockOwner

        sha256 = (await self.folder.read(join(theirs, name))).sha256
        with Journal(self.settings.journal_path, clock=self.clock) as journal:
            runs = journal.find_runs_for_file(
                self.settings.environment, sha256=sha256, fingerprint=""
            )
            for run in runs:
                if run["status"] == "finished":
                    continue
                probe = LockOwner.current()
                try:
                    journal.acquire_run_lock(str(run["id"]), probe)
                except RunLockedError:
                    return ""
                journal.release_run_lock(str(run["id"]), probe)
                return f"its run {run['id']} is unfinished and no process holds it"
        return ""

    async def _adopt(self, theirs: str, name: str, claim: dict[str, Any]) -> bool:
        """Move another watcher's claim into this one's processing folder (False if gone)."""
        if await self.folder.exists(join(self._mine, name)):
            return False  # a file of that name is this watcher's own claim: later
        await self.write_claim(name, {k: v for k, v in claim.items() if k != "answer_to"})
        if not await self.folder.claim(join(theirs, name), join(self._mine, name)):
            await self.folder.remove(join(self._mine, name + CLAIM_SUFFIX))
            return False
        for suffix in (MARKER_SUFFIX, CONTROL_SUFFIX):
            await self._take_sidecar(name, suffix, source=theirs)
        await self.folder.remove(join(theirs, name + CLAIM_SUFFIX))
        return True

    async def _read_record(self, path: str) -> dict[str, Any]:
        """A claim record at ``path`` ({} when it cannot be read as one)."""
        try:
            data = json.loads((await self.folder.read(path)).data)
        except (ValueError, InputError):
            return {}
        return data if isinstance(data, dict) else {}

    # -- running ----------------------------------------------------------------------------

    async def _process(self, name: str, *, recovered: bool) -> FileAnswer | None:
        """Run one claimed file and answer it (or leave it for the next pass)."""
        from batchpay import pipeline

        path = join(self._mine, name)
        claim = await self.read_claim(name)
        sha256: str | None = None
        try:
            source, sha256, manifest = await self.read_source(name)
            options = self.options_for(name, manifest)
            log.info("run %s", name, extra=self._extra(name))
            result = await pipeline.run_async(
                source,
                settings=self.settings,
                options=options,
                transport=self.transport,
                clock=self.clock,
                **self.run_kwargs,
            )
        except DuplicateFileError as exc:
            if recovered and self.is_own_run(exc.run_id, claim):
                # Killed after paying, before answering: this claim's own run, finished.
                return await self.answer_paid(name, exc.run_id, sha256)
            return await self.answer_refused(name, exc, sha256)
        except BatchpayError as exc:
            code = ExitCode(exc.exit_code)
            if code in _REFUSED:
                return await self.answer_refused(name, exc, sha256)
            outcome = Outcome.STOPPED if code in _SYSTEMIC else Outcome.RETRY
            log.warning(
                "%s left in %s (%s): %s", name, self._mine, outcome.value, exc.message,
                extra=self._extra(name, exit_code=int(code)),
            )  # fmt: skip
            return FileAnswer(name, outcome, int(code), exc.message, exc.hint, answer=path)
        await self.write_claim(name, {**claim, "run_id": result.run_id})
        if result.exit_code == ExitCode.INCOMPLETE:
            message = f"run {result.run_id} is not finished: some rows' outcome is not yet known"
            log.warning("%s left in %s: %s", name, self._mine, message, extra=self._extra(name))
            return FileAnswer(
                name, Outcome.RETRY, int(result.exit_code), message,
                "the next pass resumes it; nothing is paid twice", result.run_id, path,
            )  # fmt: skip
        return await self._answer_run(name, result.run_id, result.report, result.paths, sha256,
                                      int(result.exit_code))  # fmt: skip

    async def read_source(self, name: str) -> tuple[PayoutFile, str, Manifest]:
        """The claimed file's bytes (read once), its .ctl, checked against its manifest."""
        from batchpay import checks
        from batchpay.ingest import sniff

        entries = {e.name: e for e in await self.folder.files(self._mine)}
        entry = entries.get(name)
        if entry is None:  # adopted by another watcher meanwhile: it finishes the file
            raise RunLockedError(
                f"{name} was taken from {self._mine} by another watcher",
                hint="the other watcher answers it; nothing is paid twice",
            )
        sniff.check_size(entry.size, name, checks.load_layout(self.options.run))
        download = await self.folder.read(join(self._mine, name))
        marker = name + MARKER_SUFFIX
        manifest = Manifest()
        if marker in entries:
            marker_bytes = (await self.folder.read(join(self._mine, marker))).data
            manifest = read_manifest(marker_bytes, marker)
            check_sha256(manifest, download.sha256, name, marker)
        sidecars = {}
        if name + CONTROL_SUFFIX in entries:
            ctl = await self.folder.read(join(self._mine, name + CONTROL_SUFFIX))
            sidecars[CONTROL_SUFFIX] = ctl.data
        return PayoutFile(name, download.data, sidecars), download.sha256, manifest

    def options_for(self, name: str, manifest: Manifest) -> RunOptions:
        """The run options, with the manifest's rows and totals as declared controls."""
        options = replace(self.options.run, out_dir=self._out_dir)
        if manifest.rows is None and not manifest.totals:
            return options
        return replace(
            options,
            expected_rows=manifest.rows,
            expected_totals=manifest.totals,
            expected_source=f"the marker {name}{MARKER_SUFFIX}",
        )

    def is_own_run(self, run_id: str, claim: dict[str, Any]) -> bool:
        """Whether ``run_id`` was made by this very claim (then its answer is "paid")."""
        if claim.get("run_id"):
            return bool(claim["run_id"] == run_id)
        claimed_at = claim.get("claimed_at")
        if not claimed_at:
            return False
        from batchpay import manage

        created = manage.show(run_id, settings=self.settings).created_at
        return datetime.fromisoformat(created) >= datetime.fromisoformat(str(claimed_at))

    # -- answering --------------------------------------------------------------------------

    async def answer_paid(self, name: str, run_id: str, sha256: str | None) -> FileAnswer:
        """Answer a claimed file with its run ``run_id`` as the journal has it now."""
        from batchpay import pipeline

        rep, paths = pipeline.report_for(run_id, settings=self.settings, out_dir=self._out_dir)
        code = int(pipeline._exit_code(rep, waited=self.options.run.wait))
        return await self._answer_run(name, run_id, rep, paths, sha256, code)

    async def _answer_run(
        self, name: str, run_id: str, rep: Any, paths: Any, sha256: str | None, code: int
    ) -> FileAnswer:
        """A file that was run: processed/ (or failed/ when every row had been paid before)."""
        counts = {k: v for k, v in rep.outcome_counts.items() if v}
        outcomes = ", ".join(f"{k} {v}" for k, v in counts.items())
        if code == ExitCode.DUPLICATE_FILE:
            where = FAILED
            message = f"every row of {name} was already paid by earlier runs; nothing was sent"
            hint = "see the report: each row names the provider's payout"
        elif code == ExitCode.ROWS_FAILED:
            where = PROCESSED
            message = (f"run {run_id}: {rep.attention_count} of {len(rep.rows)} row(s) need a "
                       f"person ({outcomes})")  # fmt: skip
            hint = "see the rows marked for attention in the report"
        else:
            where = PROCESSED
            message = f"run {run_id}: {len(rep.rows)} row(s) ({outcomes})"
            hint = ""
        doc = {
            "run_id": run_id,
            "exit_code": code,
            "reason": message,
            "hint": hint,
            "counts": counts,
            "totals": {cur: t.to_dict() for cur, t in sorted(rep.totals.items())},
            "environment": rep.environment,
        }
        staged: dict[str, Path] = {}
        if paths is not None:
            staged = {".report.csv": paths.csv, ".report.xlsx": paths.xlsx}
        return await self._answer(name, where, code, message, hint, run_id, doc, staged, sha256)

    async def answer_refused(self, name: str, exc: BatchpayError, sha256: str | None) -> FileAnswer:
        doc: dict[str, Any] = {
            "run_id": getattr(exc, "run_id", None),
            "exit_code": int(exc.exit_code),
            "reason": exc.message,
            "hint": exc.hint,
            "counts": {},
            "totals": {},
        }
        if isinstance(exc, DuplicateFileError):
            doc["earlier_run"] = exc.run_id
            doc["run_id"] = None
        if isinstance(exc, ValidationFailed):
            doc["issues"] = [
                {"row": i.row, "column": i.column, "code": i.code, "message": i.message}
                for i in exc.issues[:MAX_ISSUES_IN_RESULT]
            ]
            doc["issues_total"] = len(exc.issues)
        return await self._answer(
            name, FAILED, int(exc.exit_code), exc.message, exc.hint, None, doc, {}, sha256
        )

    async def _answer(
        self,
        name: str,
        where: str,
        code: int,
        message: str,
        hint: str,
        run_id: str | None,
        doc: dict[str, Any],
        reports: dict[str, Path],
        sha256: str | None,
    ) -> FileAnswer:
        """Stage the answer beside the claim, then commit it by moving the file: never over
        an earlier answer of the same name."""
        folder = join(where, self.today().isoformat())
        await self.folder.makedirs(folder)
        for suffix, local in reports.items():
            await self.folder.upload(local, join(self._mine, name + suffix))
        claim = await self.read_claim(name)
        stem, ext = _split_ext(name)
        for n in range(1, 10_000):
            answered_as = name if n == 1 else f"{stem}-{n}{ext}"
            target = join(folder, answered_as)
            if await self.folder.exists(target) or await self.folder.exists(target + RESULT_SUFFIX):
                continue
            result = {
                "file": name,
                "answered_as": answered_as,
                "outcome": PROCESSED if where == PROCESSED else FAILED,
                "sha256": sha256,
                **doc,
                "answered_at": self.clock().isoformat(),
                "worker": self.worker,
            }
            body = json.dumps(result, indent=2, ensure_ascii=False).encode() + b"\n"
            await self.folder.write(join(self._mine, name + RESULT_SUFFIX), body)
            await self.write_claim(name, {**claim, "answer_to": target})
            try:
                moved = await self.folder.move_new(join(self._mine, name), target)
            except FileNotFoundError:
                raise self._taken_away(name) from None
            if moved:
                break
        else:  # pragma: no cover - ten thousand answers of one name in one day
            raise InputError(f"too many answers named {name} in {folder}")
        await self._finish_answer(name, target)
        outcome = Outcome.PROCESSED if where == PROCESSED else Outcome.FAILED
        log.info(
            "answered %s: %s in %s (exit %d): %s", name, outcome.value, target, code, message,
            extra=self._extra(name, run_id=run_id, exit_code=code, answer=target),
        )  # fmt: skip
        return FileAnswer(name, outcome, code, message, hint, run_id, target)

    def _taken_away(self, name: str) -> ConfigError:
        """The claimed file left this watcher's processing folder while it worked on it."""
        return ConfigError(
            f"{name} was moved out of {self._mine} while this watcher answered it: another "
            f"watcher works under the same name ({self.worker})",
            hint="give each watcher its own --worker name; what was paid is in the journal, "
            "nothing is paid twice",
        )

    def _check_not_shared(self, name: str, claim: dict[str, Any]) -> None:
        """Refuse to resume a claim of this watcher's name that a live watcher on this host
        holds (two watchers started with one name: each would answer the other's file)."""
        pid = claim.get("pid")
        if claim.get("host") != socket.gethostname() or not isinstance(pid, int):
            return
        if pid == os.getpid() or not _is_watcher_process(pid):
            return
        raise ConfigError(
            f"another watcher named {self.worker} is running on this host (pid {pid}) and "
            f"holds {join(self._mine, name)}",
            hint="give each watcher its own --worker name (or stop the other one)",
        )

    async def _finish_answer(self, name: str, target: str) -> None:
        """Move the claim's sidecars after its committed answer; drop the claim record."""
        for suffix in _SIDECARS:
            src = join(self._mine, name + suffix)
            if await self.folder.exists(src) and not await self.folder.move_new(
                src, target + suffix
            ):
                await self.folder.remove(src)  # already there from an interrupted finish
        await self.folder.remove(join(self._mine, name + CLAIM_SUFFIX))

    # -- claim records ----------------------------------------------------------------------

    async def read_claim(self, name: str) -> dict[str, Any]:
        """The claim record beside ``name`` in this watcher's processing folder ({} if none)."""
        path = join(self._mine, name + CLAIM_SUFFIX)
        if not await self.folder.exists(path):
            return {}
        return await self._read_record(path)

    async def write_claim(self, name: str, claim: dict[str, Any]) -> None:
        """Replace the claim record of ``name`` (who holds it is added)."""
        doc = {**claim, "worker": self.worker, "host": socket.gethostname(), "pid": os.getpid()}
        await self.folder.write(
            join(self._mine, name + CLAIM_SUFFIX), json.dumps(doc, indent=2).encode()
        )

    def _extra(self, name: str, **more: Any) -> dict[str, Any]:
        return {"file": name, "folder": self.folder.display, "worker": self.worker, **more}


class _StoppedError(BatchpayError):
    """A file could not be run because of the setup; the watcher stops."""

    def __init__(self, answer: FileAnswer) -> None:
        super().__init__(answer.message, hint=answer.hint)
        self.exit_code = ExitCode(answer.exit_code)


def _is_watcher_process(pid: int) -> bool:
    """Whether process ``pid`` is alive and (where /proc says) a batchpay process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc to ask: alive is all that is known
    return b"batchpay" in cmdline


def _age_seconds(claimed_at: object, now: datetime) -> float | None:
    """Seconds since ``claimed_at`` (an ISO time; None when it cannot be read)."""
    try:
        at = datetime.fromisoformat(str(claimed_at))
        return (now - at).total_seconds()
    except (TypeError, ValueError):
        return None


def _split_ext(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    return (stem, dot + ext) if stem else (name, "")
