"""A worker stopped (SIGSTOP) inside a journal write on a shared PostgreSQL journal.

The write holds the journal's write lock (a transaction advisory lock) until it commits;
stopped there, it held it for ever: every other worker on the journal hung in
``pg_advisory_xact_lock`` (seen with two ``batchpay run`` workers, lease 1 s, the first
stopped 2.5 s in), so its lease ending handed its rows to no one. The server now ends a
session idle inside a transaction (``idle_in_transaction_session_timeout``), which drops
its locks; the stopped worker, when continued, finds its connection gone and stops.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from batchpay.journal import Journal

pytestmark = pytest.mark.slow

_STOPPED_IN_A_WRITE = """
import os, signal, sys
from batchpay.journal import Journal
j = Journal(sys.argv[1])
with j.transaction() as db:
    db.execute("SELECT 1")
    print("in", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)
"""


def test_a_worker_stopped_inside_a_write_does_not_hang_the_others(postgres_url: str) -> None:
    with Journal(postgres_url):
        pass  # the schema, before the stopped worker takes the lock
    stopped = subprocess.Popen(
        [sys.executable, "-c", _STOPPED_IN_A_WRITE, str(postgres_url)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert stopped.stdout is not None and stopped.stdout.readline() == "in\n"
        done = threading.Event()

        def write() -> None:
            with Journal(postgres_url) as other, other.transaction() as db:
                db.execute("SELECT 1")
            done.set()

        threading.Thread(target=write, daemon=True).start()
        assert done.wait(timeout=60), "the other worker is still waiting for the write lock"
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
        stopped.kill()
        stopped.wait()
        if stopped.stdout is not None:
            stopped.stdout.close()
