"""Real Airflow 3 for the integration's tests: a fresh metadata database, a dags folder
holding the shipped ``batchpay_nightly`` (with short intervals), and the sandbox server.

Airflow is installed only in its own environment (``.ci/run`` builds ``.venv-airflow``);
in batchpay's main environment these tests skip — unless ``BATCHPAY_REQUIRE_AIRFLOW=1``
(set by ``.ci/run`` in the Airflow environment), where a missing Airflow is an error.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

if importlib.util.find_spec("airflow") is None:
    if os.environ.get("BATCHPAY_REQUIRE_AIRFLOW") == "1":
        raise RuntimeError("BATCHPAY_REQUIRE_AIRFLOW=1 but Airflow is not installed here")
    collect_ignore_glob = ["test_*.py"]
else:
    # Airflow reads its home and settings when first imported: set them before that.
    _HOME = Path(tempfile.mkdtemp(prefix="batchpay-airflow-"))
    _DAGS = _HOME / "dags"
    _DAGS.mkdir()
    (_DAGS / "nightly_for_tests.py").write_text(
        "from datetime import timedelta\n"
        "from batchpay.airflow.example_dags.batchpay_nightly import make_nightly_dag\n"
        "nightly = make_nightly_dag('batchpay_nightly_fast', schedule=None, poke_interval=1,\n"
        "    wait_timeout=5, follow_interval=1, follow_timeout=120,\n"
        "    retry_delay=timedelta(seconds=0))\n"
    )
    os.environ.update(
        {
            "AIRFLOW_HOME": str(_HOME),
            "AIRFLOW__CORE__DAGS_FOLDER": str(_DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
    )
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True, capture_output=True, env=os.environ.copy(),
    )  # fmt: skip

from tests.e2e.server import Server, sandbox_server


class TaskLog:
    """What the tasks logged: the records pytest captured plus the console Airflow's logging
    writes to (Airflow reconfigures logging on its first use in a process, after which the
    records may bypass ``caplog``; in ``dag.test()`` the task log is the console)."""

    def __init__(self, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]):
        self._caplog = caplog
        self._capfd = capfd
        self._console = ""

    @property
    def text(self) -> str:
        out, err = self._capfd.readouterr()
        self._console += out + err
        return self._caplog.text + self._console


@pytest.fixture
def task_log(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> TaskLog:
    """The task log of the ``dag.test()`` runs in this test (see :class:`TaskLog`)."""
    return TaskLog(caplog, capfd)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """``batchpay sandbox serve`` in its own process: payouts settle a sandbox second apart."""
    with sandbox_server(tmp_path) as srv:
        yield srv


@pytest.fixture
def connection(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The ``batchpay_default`` connection, as an Airflow user defines it in the environment:
    the sandbox's URL and test key, and a journal under ``tmp_path``. Returns the home."""
    home = tmp_path / "home"
    for name in [k for k in os.environ if k.startswith("BATCHPAY_")]:
        if name != "BATCHPAY_REQUIRE_AIRFLOW":
            monkeypatch.delenv(name)
    monkeypatch.setenv(
        "AIRFLOW_CONN_BATCHPAY_DEFAULT",
        json.dumps({
            "conn_type": "batchpay",
            "host": server.url,
            "password": "ak_test_batchpay_sandbox",
            "extra": {"journal": str(home / "journal.db"), "home": str(home), "mode": "sandbox"},
        }),
    )  # fmt: skip
    return home
