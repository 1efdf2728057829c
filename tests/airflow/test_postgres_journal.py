"""The connection's ``journal`` extra naming a PostgreSQL server, with real Airflow 3: the
shipped DAG pays through it, and two ``run_file`` executions in separate processes on one
PostgreSQL journal share the run. The sandbox server's ledger is the judge.

The throw-away cluster (``postgres_server`` in tests/conftest.py) trusts loopback, so the
password in these URLs is not checked by the server: it is there to show it never reaches a log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from batchpay.journal.target import PostgresURL
from batchpay.testing import payout_row, write_csv
from tests.airflow.test_nightly import _by_reference, _nightly, _post, _states, _ti
from tests.e2e.server import Server

if TYPE_CHECKING:  # the fixture's type; conftest itself is pytest's to import
    from tests.airflow.conftest import TaskLog

pytestmark = [
    pytest.mark.slow,
    pytest.mark.socket,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"),
]

KEY = "ak_test_batchpay_sandbox"
PASSWORD = "pw-journal-Zq7x93"


def _with_password(url: PostgresURL) -> str:
    parts = urlsplit(url.reveal())
    netloc = f"{parts.username}:{PASSWORD}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _connect(monkeypatch: pytest.MonkeyPatch, server: Server, home: Path, **extra: str) -> None:
    """``batchpay_default``: the sandbox, its key, and ``extra`` (the journal)."""
    for name in [k for k in os.environ if k.startswith("BATCHPAY_")]:
        if name != "BATCHPAY_REQUIRE_AIRFLOW":
            monkeypatch.delenv(name)
    monkeypatch.setenv(
        "AIRFLOW_CONN_BATCHPAY_DEFAULT",
        json.dumps({
            "conn_type": "batchpay", "host": server.url, "password": KEY,
            "extra": {"home": str(home), "mode": "sandbox", **extra},
        }),
    )  # fmt: skip


def _drop(inbox: Path, name: str, n: int) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    write_csv(inbox / name, [payout_row(i) for i in range(1, n + 1)])
    (inbox / (name + ".ok")).write_text("")


def _journal_runs(url: PostgresURL) -> list[Any]:
    import psycopg

    with psycopg.connect(url.reveal()) as db:
        return db.execute("SELECT id FROM runs").fetchall()


@pytest.mark.parametrize("where", ["in the URL", "in journal_password"])
def test_nightly_on_a_postgresql_journal_pays_once_and_logs_no_password(
    where: str,
    server: Server,
    postgres_url: PostgresURL,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    task_log: TaskLog,
) -> None:
    """dag.test() of the shipped DAG with the connection's journal on PostgreSQL: the dropped
    file is paid once and answered, the run is in PostgreSQL (no SQLite journal appears), and
    neither the journal's password nor the API key is in the task log."""
    if where == "in the URL":
        _connect(monkeypatch, server, tmp_path / "home", journal=_with_password(postgres_url))
    else:
        _connect(monkeypatch, server, tmp_path / "home",
                 journal=postgres_url.reveal(), journal_password=PASSWORD)  # fmt: skip
    inbox = tmp_path / "drop"
    _drop(inbox, "payouts.csv", 3)
    dr = _nightly().test(run_conf={"source": str(inbox), "worker": "af1"})
    states = _states(dr)
    assert str(dr.state) == "success", states
    summary = _ti(dr, "answer_file").xcom_pull(task_ids="answer_file")
    assert summary["exit_code"] == 0 and summary["counts"] == {"completed": 3}
    assert (inbox / (summary["answer"] + ".result.json")).exists()
    assert sorted(_by_reference(server).values()) == [1, 1, 1]
    assert [r[0] for r in _journal_runs(postgres_url)] == [summary["run_id"]]
    assert not list((tmp_path / "home").rglob("journal.db"))
    log = task_log.text
    assert "report written" in log and "batchpay.pipeline" in log
    assert PASSWORD not in log and KEY not in log
    assert PASSWORD not in json.dumps(summary)


_WORKER = """
import logging, sys
from batchpay.airflow.tasks import run_file
logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")  # the worker's log
# The callable Airflow runs for the run_file task, with the real connection look-up.
print("RUN", run_file.function(sys.argv[1], sys.argv[2], "af1", "batchpay_default"), flush=True)
"""


def test_two_run_file_processes_on_one_postgresql_journal_share_the_run(
    server: Server, postgres_url: PostgresURL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same claimed file, run_file started in two processes at once (two Airflow workers
    executing the task, e.g. a retry on another worker while the first still runs): both end
    with the same run id, the journal holds one run, and each row is paid exactly once by the
    ledger. Which process sends which rows is timing (row claims under leases) and is not
    asserted: the journal's claims, not Airflow, share the rows out."""
    from batchpay.airflow import steps
    from batchpay.airflow.hooks import BatchpayHook

    _connect(monkeypatch, server, tmp_path / "home", journal=_with_password(postgres_url))
    inbox = tmp_path / "drop"
    _drop(inbox, "night.csv", 40)
    settings = BatchpayHook().get_settings()
    drop = steps.Drop(source=str(inbox), worker="af1")
    assert steps.claim_next(drop, settings) == "night.csv"
    steps.validate_file(drop, settings, "night.csv")
    # Slow answers, so that both processes are sending at the same time.
    _post(server, "/_sandbox/faults", {"plan": {"POST /v1/payouts": ["latency=300"] * 40}})
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), "night.csv", str(inbox)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-3000:]
    run_ids = {
        line.split()[1] for out in outs for line in out.splitlines() if line.startswith("RUN ")
    }
    assert len(run_ids) == 1, outs
    assert [r[0] for r in _journal_runs(postgres_url)] == list(run_ids)
    ledger: Counter[str] = _by_reference(server)
    assert len(ledger) == 40 and set(ledger.values()) == {1}
    assert all(PASSWORD not in out for out in outs)
