"""batchpay's steps as Airflow 3 tasks (TaskFlow, ``airflow.sdk``) and sensors.

What Airflow sees of each outcome (:func:`airflow_error`):

* nothing to do → ``AirflowSkipException`` (the task and what follows it are skipped);
* a refused file (unreadable, invalid, control totals, duplicate, preflight) →
  ``AirflowFailException`` with the one-line reason and hint: failed, not retried (the file
  is answered in ``failed/``);
* a setup that cannot work (configuration, credentials) → ``AirflowFailException``;
* a transient failure (API unreachable, exit 10 incomplete, run locked by another process) →
  the batchpay error itself, an ordinary exception: Airflow retries the task, and the retry
  resumes the same run (the journal and the file's hash make it so).

Rows that need a person do not fail the run: the ``triage`` branch sends the DAG to
``rows_need_a_person``, which lists them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from airflow.sdk import BaseOperator, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from batchpay.airflow import steps
from batchpay.airflow.hooks import BatchpayHook
from batchpay.airflow.triggers import BatchpayPollTrigger
from batchpay.errors import BatchpayError, ExitCode, NothingToDo
from batchpay.watch.watcher import REFUSED

__all__ = [
    "BatchpayFileSensor",
    "BatchpayRunSensor",
    "airflow_error",
    "answer_file",
    "claim_file",
    "outcomes",
    "rows_need_a_person",
    "run_file",
    "triage",
    "validate_file",
]

log = logging.getLogger(__name__)

# Retrying cannot help: the file is wrong, or the setup is.
_FINAL = REFUSED | {
    ExitCode.CONFIG,
    ExitCode.AUTHENTICATION,
    ExitCode.USAGE,
    ExitCode.INTERNAL,
}


def airflow_error(exc: BatchpayError) -> BaseException:
    """The exception that tells Airflow what ``exc`` means (see the module's docstring)."""
    line = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
    if isinstance(exc, NothingToDo):
        skip: BaseException = AirflowSkipException(line)
        return skip
    if ExitCode(exc.exit_code) in _FINAL:
        fail: BaseException = AirflowFailException(f"exit {int(exc.exit_code)}: {line}")
        return fail
    return exc


@contextlib.contextmanager
def outcomes() -> Iterator[None]:
    """Turn batchpay errors raised inside into Airflow's outcomes, logging the one line."""
    try:
        yield
    except BatchpayError as exc:
        error = airflow_error(exc)
        log.warning("exit %d: %s", int(exc.exit_code), exc.message)
        if error is exc:
            raise
        raise error from None


def _drop(source: str, worker: str) -> steps.Drop:
    return steps.Drop(source=source, worker=worker)


def _settings(conn_id: str) -> Any:
    with outcomes():
        return BatchpayHook(conn_id).get_settings()


def _event_error(event: dict[str, Any]) -> BaseException:
    """The exception for a trigger's error event (see :func:`airflow_error`)."""
    exc = BatchpayError(str(event.get("message", "")), hint=str(event.get("hint", "")))
    exc.exit_code = ExitCode(int(event.get("exit_code", ExitCode.INTERNAL)))
    return airflow_error(exc)


class BatchpayFileSensor(BaseOperator):
    """Wait for a complete file in the drop folder (its ``.ok`` marker beside it), or an
    unfinished claim of this worker; returns the names found (to XCom).

    One look at once; then the wait is deferred to Airflow's triggerer
    (:class:`~batchpay.airflow.triggers.BatchpayPollTrigger`), so no worker slot is held.
    Nothing by ``timeout`` seconds: the task is skipped (nothing to do), and so is the rest.
    """

    template_fields: Sequence[str] = ("source", "worker")

    def __init__(
        self,
        *,
        source: str,
        worker: str = "airflow",
        batchpay_conn_id: str = BatchpayHook.default_conn_name,
        poke_interval: float = 300.0,
        timeout: float = 6 * 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.worker = worker
        self.batchpay_conn_id = batchpay_conn_id
        self.poke_interval = poke_interval
        self.wait_timeout = timeout

    def execute(self, context: Any) -> list[str]:
        """Look once; defer when there is nothing yet."""
        settings = _settings(self.batchpay_conn_id)
        with outcomes():
            names = steps.pending_files(_drop(self.source, self.worker), settings)
        if names:
            return names
        self.defer(
            trigger=BatchpayPollTrigger(
                kind="file", conn_id=self.batchpay_conn_id, interval=self.poke_interval,
                timeout=self.wait_timeout, source=self.source, worker=self.worker,
            ),
            method_name="execute_complete",
        )  # fmt: skip
        return []  # pragma: no cover - defer() raises

    def execute_complete(self, context: Any, event: dict[str, Any]) -> list[str]:
        """Back from the triggerer: the files found, a skip, or the error."""
        if event.get("status") == "done":
            return list(event["value"])
        if event.get("status") == "timeout":
            raise AirflowSkipException(
                f"no complete file in {self.source} after {self.wait_timeout:g} s"
            )
        raise _event_error(event)


class BatchpayRunSensor(BaseOperator):
    """Follow a run's payouts to their final statuses: one tracking round at once, then one
    every ``poke_interval`` seconds in Airflow's triggerer (each rewrites the report) — hours
    of settling hold no worker slot. Returns the run id."""

    template_fields: Sequence[str] = ("run_id",)

    def __init__(
        self,
        *,
        run_id: Any,
        batchpay_conn_id: str = BatchpayHook.default_conn_name,
        poke_interval: float = 300.0,
        timeout: float = 3 * 24 * 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.batchpay_conn_id = batchpay_conn_id
        self.poke_interval = poke_interval
        self.follow_timeout = timeout

    def execute(self, context: Any) -> str:
        """One tracking round; defer while payouts are pending."""
        settings = _settings(self.batchpay_conn_id)
        with outcomes():
            pending = steps.follow_round(settings, str(self.run_id))
        log.info("run %s: %d payout(s) not final yet", self.run_id, pending)
        if pending == 0:
            return str(self.run_id)
        self.defer(
            trigger=BatchpayPollTrigger(
                kind="run", conn_id=self.batchpay_conn_id, interval=self.poke_interval,
                timeout=self.follow_timeout, run_id=str(self.run_id),
            ),
            method_name="execute_complete",
        )  # fmt: skip
        return ""  # pragma: no cover - defer() raises

    def execute_complete(self, context: Any, event: dict[str, Any]) -> str:
        """Back from the triggerer: final, or still pending at the timeout (retried)."""
        if event.get("status") == "done":
            return str(event["value"])
        if event.get("status") == "timeout":
            raise RuntimeError(
                f"run {self.run_id}: payouts still pending after {self.follow_timeout:g} s "
                "(a retry follows them further)"
            )
        raise _event_error(event)


@task
def claim_file(source: str, worker: str = "airflow", conn_id: str = "batchpay_default") -> str:
    """Claim one complete file into ``processing/WORKER/`` (an unfinished claim first)."""
    settings = _settings(conn_id)
    with outcomes():
        return steps.claim_next(_drop(source, worker), settings)


@task
def validate_file(
    name: str, source: str, worker: str = "airflow", conn_id: str = "batchpay_default"
) -> str:
    """Every check on the claimed file; a refused one is answered in ``failed/``."""
    settings = _settings(conn_id)
    with outcomes():
        plan = steps.validate_file(_drop(source, worker), settings, name)
    log.info("%s: %d row(s), %d to pay", name, plan["rows"], plan["rows_to_pay"])
    return name


@task(retries=3)
def run_file(
    name: str, source: str, worker: str = "airflow", conn_id: str = "batchpay_default"
) -> str:
    """Pay the claimed file; returns the run id (a retry resumes the same run)."""
    settings = _settings(conn_id)
    with outcomes():
        return steps.run_file(_drop(source, worker), settings, name)


@task
def answer_file(
    name: str,
    batchpay_run: str,
    source: str,
    worker: str = "airflow",
    conn_id: str = "batchpay_default",
) -> dict[str, Any]:
    """Answer the file beside it with its final report; the summary goes to XCom."""
    settings = _settings(conn_id)
    with outcomes():
        return steps.answer_file(_drop(source, worker), settings, name, batchpay_run).as_dict()


@task.branch
def triage(summary: dict[str, Any]) -> str:
    """``rows_need_a_person`` when any row needs a person, else ``all_rows_final``."""
    return "rows_need_a_person" if summary.get("attention") else "all_rows_final"


@task
def rows_need_a_person(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Mark the rows that need a person: each is logged, and the list goes to XCom."""
    rows = list(summary.get("attention") or [])
    for r in rows:
        log.warning(
            "run %s row %s (%s) needs a person: %s %s", summary.get("run_id"), r.get("row"),
            r.get("reference"), r.get("outcome"), r.get("error_message") or "",
        )  # fmt: skip
    return rows
