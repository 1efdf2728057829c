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

from airflow.sdk import BaseSensorOperator, PokeReturnValue, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from batchpay.airflow import steps
from batchpay.airflow.hooks import BatchpayHook
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


class BatchpayFileSensor(BaseSensorOperator):
    """Wait for a complete file in the drop folder (its ``.ok`` marker beside it), or an
    unfinished claim of this worker; pushes the names found. Reschedules between pokes, so
    no worker slot is held while waiting; a timeout skips the run (nothing to do)."""

    template_fields: Sequence[str] = ("source", "worker")

    def __init__(
        self,
        *,
        source: str,
        worker: str = "airflow",
        batchpay_conn_id: str = BatchpayHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("soft_fail", True)
        super().__init__(**kwargs)
        self.source = source
        self.worker = worker
        self.batchpay_conn_id = batchpay_conn_id

    def poke(self, context: Any) -> PokeReturnValue:
        """One look at the folder."""
        settings = _settings(self.batchpay_conn_id)
        with outcomes():
            names = steps.pending_files(_drop(self.source, self.worker), settings)
        return PokeReturnValue(is_done=bool(names), xcom_value=names)


class BatchpayRunSensor(BaseSensorOperator):
    """Follow a run's payouts to their final statuses: one tracking round per poke (which
    also rewrites the report), rescheduled in between — hours of settling hold no slot."""

    template_fields: Sequence[str] = ("run_id",)

    def __init__(
        self,
        *,
        run_id: Any,
        batchpay_conn_id: str = BatchpayHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)
        self.run_id = run_id
        self.batchpay_conn_id = batchpay_conn_id

    def poke(self, context: Any) -> bool:
        """One tracking round; done when no payout of the run is pending."""
        settings = _settings(self.batchpay_conn_id)
        with outcomes():
            pending = steps.follow_round(settings, str(self.run_id))
        log.info("run %s: %d payout(s) not final yet", self.run_id, pending)
        return pending == 0


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
    run_id: str,
    source: str,
    worker: str = "airflow",
    conn_id: str = "batchpay_default",
) -> dict[str, Any]:
    """Answer the file beside it with its final report; the summary goes to XCom."""
    settings = _settings(conn_id)
    with outcomes():
        return steps.answer_file(_drop(source, worker), settings, name, run_id).as_dict()


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
