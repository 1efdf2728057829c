"""``batchpay_nightly``: pay the file dropped for tonight, exactly once, and answer it.

::

    wait_for_file → claim_file → validate_file → run_file → follow_payouts → answer_file
        → triage ─┬→ rows_need_a_person   (some rows need a person: listed, to XCom)
                  └→ all_rows_final

Params: ``source`` — the drop folder, a local path or ``sftp://user@host[:port]/path``
(SFTP credentials from ``BATCHPAY_SFTP_*`` on the workers); ``worker`` — the name of this
DAG's claims in ``processing/WORKER/`` (keep it stable: an unfinished claim is resumed by the
next run). Credentials, API URL and journal come from the Airflow connection
``batchpay_default`` (see :mod:`batchpay.airflow.hooks`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param, dag

from batchpay.airflow.tasks import (
    BatchpayFileSensor,
    BatchpayRunSensor,
    answer_file,
    claim_file,
    rows_need_a_person,
    run_file,
    triage,
    validate_file,
)

SOURCE = "{{ params.source }}"
WORKER = "{{ params.worker }}"


def make_nightly_dag(
    dag_id: str = "batchpay_nightly",
    *,
    schedule: str | None = "0 2 * * *",
    poke_interval: float = 300.0,
    wait_timeout: float = 6 * 3600.0,
    follow_interval: float = 300.0,
    follow_timeout: float = 3 * 24 * 3600.0,
    retry_delay: timedelta = timedelta(minutes=5),
    conn_id: str = "batchpay_default",
) -> DAG:
    """The nightly DAG (the intervals are arguments so that tests can shorten them)."""

    @dag(
        dag_id=dag_id,
        schedule=schedule,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        params={
            "source": Param(
                "/srv/batchpay/drop",
                type="string",
                description="the drop folder: a local path or sftp://user@host/path",
            ),
            "worker": Param(
                "airflow", type="string", description="the name of this DAG's claims in processing/"
            ),
        },
        default_args={"retries": 3, "retry_delay": retry_delay},
        tags=["batchpay", "payments"],
        doc_md=__doc__,
    )
    def batchpay_nightly() -> None:
        wait = BatchpayFileSensor(
            task_id="wait_for_file", source=SOURCE, worker=WORKER, batchpay_conn_id=conn_id,
            poke_interval=poke_interval, timeout=wait_timeout,
        )  # fmt: skip
        name = claim_file(SOURCE, WORKER, conn_id)
        wait >> name
        checked = validate_file(name, SOURCE, WORKER, conn_id)
        run_id = run_file(checked, SOURCE, WORKER, conn_id)
        follow = BatchpayRunSensor(
            task_id="follow_payouts", run_id=run_id, batchpay_conn_id=conn_id,
            poke_interval=follow_interval, timeout=follow_timeout,
        )  # fmt: skip
        summary = answer_file(checked, follow.output, SOURCE, WORKER, conn_id)
        branch = triage(summary)
        branch >> [rows_need_a_person(summary), EmptyOperator(task_id="all_rows_final")]

    built: Any = batchpay_nightly()
    return built  # type: ignore[no-any-return]


nightly = make_nightly_dag()
