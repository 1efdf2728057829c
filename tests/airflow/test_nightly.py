"""The shipped ``batchpay_nightly`` DAG run by real Airflow 3 (``dag.test()``) against the
sandbox server: the server's ledger is the judge of exactly once.

``dag.test()`` runs every task in this process (Airflow 3's ``run_task_in_process``), so the
sandbox runs in its own process (``batchpay sandbox serve``) and the tasks reach it over a
real socket — at the URL the Airflow connection names, as in production.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from batchpay.testing import payout_row, write_csv
from tests.e2e.server import Server

if TYPE_CHECKING:  # the fixture's type; conftest itself is pytest's to import
    from tests.airflow.conftest import TaskLog

# Airflow's own dependencies warn about each other (starlette about httpx): not ours to fix.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.socket,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"),
]

KEY = "ak_test_batchpay_sandbox"


def _nightly() -> Any:
    """The shipped DAG, built by the same factory with second-long intervals."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag("batchpay_nightly_fast")


def test_the_shipped_dag_is_found_in_its_folder() -> None:
    """Pointing dags_folder at batchpay's example_dags finds batchpay_nightly, whole."""
    from airflow.dag_processing.dagbag import DagBag

    from batchpay.airflow import example_dags

    bag = DagBag(str(Path(example_dags.__file__).parent))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("batchpay_nightly")
    assert dag is not None and "source" in dag.params
    assert set(dag.task_dict) >= {
        "wait_for_file",
        "claim_file",
        "validate_file",
        "run_file",
        "follow_payouts",
        "answer_file",
        "rows_need_a_person",
    }


def _drop(inbox: Path, name: str, n: int, start: int = 1) -> Path:
    inbox.mkdir(parents=True, exist_ok=True)
    path = write_csv(inbox / name, [payout_row(i) for i in range(start, start + n)])
    (inbox / (name + ".ok")).write_text("")
    return path


def _states(dr: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def _ti(dr: Any, task_id: str) -> Any:
    return next(ti for ti in dr.get_task_instances() if ti.task_id == task_id)


def _post(server: Server, path: str, body: dict[str, Any]) -> None:
    req = urllib.request.Request(
        server.url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10):
        pass


def _by_reference(server: Server) -> Counter[str]:
    return Counter(str(p["reference"]) for p in server.ledger())


def test_dropped_file_paid_once_answered_and_a_second_drop_refused(
    server: Server, connection: Path, tmp_path: Path, task_log: TaskLog
) -> None:
    """A dropped file is paid once and answered in processed/ with its report and summary in
    XCom; the same file dropped again fails run_file as a duplicate, nothing more is paid."""
    inbox = tmp_path / "drop"
    _drop(inbox, "payouts.csv", 3)
    dr = _nightly().test(run_conf={"source": str(inbox), "worker": "af1"})
    states = _states(dr)
    assert str(dr.state) == "success", states
    assert states["answer_file"] == "success"
    assert states["rows_need_a_person"] == "skipped" and states["all_rows_final"] == "success"
    summary = _ti(dr, "answer_file").xcom_pull(task_ids="answer_file")
    assert summary["exit_code"] == 0 and summary["counts"] == {"completed": 3}
    assert summary["answer"].startswith("processed/")
    assert (inbox / summary["answer"]).exists()
    assert (inbox / (summary["answer"] + ".result.json")).exists()
    assert Path(summary["report"]).is_dir()
    assert sorted(_by_reference(server).values()) == [1, 1, 1]
    # batchpay's own log events went to the logging handlers Airflow's task runner set up
    # (batchpay configured none), and no secret did.
    log = task_log.text
    assert "report written" in log and "batchpay.pipeline" in log
    assert KEY not in log

    _drop(inbox, "payouts.csv", 3)
    dr2 = _nightly().test(run_conf={"source": str(inbox), "worker": "af1"})
    states2 = _states(dr2)
    assert str(dr2.state) == "failed"
    assert states2["run_file"] == "failed", states2
    assert _ti(dr2, "run_file").try_number == 1  # failed, not retried
    log = task_log.text
    assert "exit 5:" in log and "already" in log
    assert KEY not in log
    assert list((inbox / "failed").glob("*/payouts.csv.result.json"))
    assert sorted(_by_reference(server).values()) == [1, 1, 1]


def test_nothing_dropped_skips(server: Server, connection: Path, tmp_path: Path) -> None:
    """An empty drop folder: the sensor times out softly and everything is skipped."""
    inbox = tmp_path / "empty"
    inbox.mkdir()
    dr = _nightly().test(run_conf={"source": str(inbox), "worker": "af1"})
    states = _states(dr)
    assert states["wait_for_file"] == "skipped"
    assert states["run_file"] == "skipped"
    assert not server.ledger()


def test_invalid_file_fails_without_retry(server: Server, connection: Path, tmp_path: Path) -> None:
    """An invalid file fails validate_file at once (not retried), answered in failed/."""
    inbox = tmp_path / "drop"
    inbox.mkdir()
    write_csv(inbox / "bad.csv", [payout_row(1, iban="DE00370400440532013000")])
    (inbox / "bad.csv.ok").write_text("")
    dr = _nightly().test(run_conf={"source": str(inbox), "worker": "af1"})
    assert _states(dr)["validate_file"] == "failed"
    assert _ti(dr, "validate_file").try_number == 1
    assert list((inbox / "failed").glob("*/bad.csv.result.json"))
    assert not server.ledger()


def test_lost_responses_retried_by_airflow_pay_nothing_twice(
    server: Server, connection: Path, tmp_path: Path
) -> None:
    """Every payout the first try sends commits at the provider but its answer is lost (the
    worst moment); the client gives up, Airflow retries run_file, and the retry resumes the
    same run: each row is paid exactly once by the ledger."""
    inbox = tmp_path / "drop"
    _drop(inbox, "night.csv", 4)
    _post(server, "/_sandbox/faults", {"plan": {"POST /v1/payouts": ["lost_response"] * 40}})
    dr = _nightly().test(run_conf={"source": str(inbox), "worker": "af1"})
    states = _states(dr)
    assert str(dr.state) == "success", states
    assert _ti(dr, "run_file").try_number > 1  # Airflow retried it
    ledger = _by_reference(server)
    assert len(ledger) == 4 and set(ledger.values()) == {1}
    summary = _ti(dr, "answer_file").xcom_pull(task_ids="answer_file")
    assert summary["counts"] == {"completed": 4}


def test_rows_needing_a_person_take_the_branch(
    server: Server, connection: Path, tmp_path: Path
) -> None:
    """A payout that fails at the provider: the run succeeds, and triage sends the DAG to
    rows_need_a_person, which lists the row (in XCom)."""
    inbox = tmp_path / "drop"
    inbox.mkdir()
    write_csv(inbox / "mixed.csv", [payout_row(1), payout_row(2, amount="120.91")])
    (inbox / "mixed.csv.ok").write_text("")
    dr = _nightly().test(run_conf={"source": str(inbox), "worker": "af1"})
    states = _states(dr)
    assert states["run_file"] == "success" and states["answer_file"] == "success", states
    assert states["rows_need_a_person"] == "success" and states["all_rows_final"] == "skipped"
    marked = _ti(dr, "rows_need_a_person").xcom_pull(task_ids="rows_need_a_person")
    assert [r["row"] for r in marked] == [3] and marked[0]["outcome"] == "failed"


_CHILD = """
import os, sys
from datetime import datetime
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag("batchpay_nightly_fast")
dr = dag.test(logical_date=datetime.fromisoformat(sys.argv[1]),
              run_conf={"source": sys.argv[2], "worker": "af1"})
print("DAGRUN", dr.state, flush=True)
"""


def test_run_task_killed_and_run_again_pays_nothing_twice(
    server: Server, connection: Path, tmp_path: Path
) -> None:
    """The process running run_file is SIGKILLed mid-submission; Airflow runs the same DAG run
    again (dag.test() on the same logical date clears and re-runs its tasks): the claim left in
    processing/ is resumed, the journal finishes the same run, the ledger has each row once."""
    import signal
    import subprocess
    import sys
    import time

    inbox = tmp_path / "drop"
    _drop(inbox, "night.csv", 6)
    _post(server, "/_sandbox/faults", {"plan": {"POST /v1/payouts": ["latency=1500"] * 6}})
    logical = "2026-03-14T02:00:00+00:00"
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    out = (tmp_path / "child1.log").open("wb")
    child = subprocess.Popen([sys.executable, str(script), logical, str(inbox)],
                             stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not server.ledger():
            assert child.poll() is None, (tmp_path / "child1.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no payout reached the sandbox"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
        out.close()
    first = len(server.ledger())
    assert 1 <= first < 6  # killed midway
    assert list((inbox / "processing" / "af1").glob("night.csv"))  # still claimed

    again = subprocess.run([sys.executable, str(script), logical, str(inbox)],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert "DAGRUN success" in again.stdout, again.stdout[-3000:] + again.stderr[-3000:]
    ledger = _by_reference(server)
    assert len(ledger) == 6 and set(ledger.values()) == {1}
    assert list((inbox / "processed").glob("*/night.csv.result.json"))


def test_sftp_drop_folder_paid_once_and_answered(
    server: Server, connection: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """source=sftp://…: the same DAG against a real SFTP server on loopback (asyncssh)."""
    from tests.watch.sftp_server import sftp_server

    with sftp_server(tmp_path) as sftp:
        monkeypatch.setenv("BATCHPAY_SFTP_KEY_FILE", str(sftp.key_file))
        monkeypatch.setenv("BATCHPAY_SFTP_KNOWN_HOSTS", str(sftp.known_hosts))
        _drop(sftp.root, "remote.csv", 2)
        dr = _nightly().test(run_conf={"source": sftp.url, "worker": "af1"})
        assert str(dr.state) == "success", _states(dr)
        summary = _ti(dr, "answer_file").xcom_pull(task_ids="answer_file")
        assert (sftp.root / (summary["answer"] + ".result.json")).exists()
        assert (sftp.root / (summary["answer"] + ".report.xlsx")).exists()
    assert sorted(_by_reference(server).values()) == [1, 1]
