"""``batchpay run`` ends its process with ``os._exit`` once done (branch runfast3).

Nothing it owes may be lost that way: the summary on a stdout redirected to a file (block
buffered, not a terminal), the report's files whole, the journal closed with nothing left
in its write-ahead log, and the exit code the run chose (0, or 10 for ``--wait`` that ran
out of time). The sandbox's ledger agrees with the report.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from batchpay.sandbox import DEFAULT_API_KEY
from batchpay.testing import payout_row, write_csv
from tests.e2e.server import sandbox_server

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("extra", "code"), [((), 0), (("--wait", "--wait-timeout", "1"), 10)])
def test_the_early_exit_leaves_everything_written(
    tmp_path: Path, extra: tuple[str, ...], code: int
) -> None:
    rows = [payout_row(i) for i in range(25)]
    f = write_csv(tmp_path / "p.csv", rows)
    with sandbox_server(tmp_path, "--rate-limit", "off") as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHPAY_")}
        env.update(BATCHPAY_API_KEY=DEFAULT_API_KEY, BATCHPAY_API_URL=server.url,
                   BATCHPAY_HOME=str(tmp_path / "home"))  # fmt: skip
        out, err = tmp_path / "out.txt", tmp_path / "err.txt"
        with out.open("wb") as o, err.open("wb") as e:
            rc = subprocess.run(
                [sys.executable, "-m", "batchpay.cli", "run", str(f), "--out",
                 str(tmp_path / "reports"), *extra],
                env=env, cwd=tmp_path, stdout=o, stderr=e, timeout=120,
            ).returncode  # fmt: skip
        assert rc == code, err.read_text()
        ledger = server.ledger()
    text = out.read_text()
    assert "Report:" in text and text.endswith("\n")
    (report,) = (tmp_path / "reports").glob("*/*.json")
    doc = json.loads(report.read_text())
    assert len(json.dumps(doc)) > 100
    (csv,) = (tmp_path / "reports").glob("*/run_*[0-9a-f].csv")
    assert len(csv.read_text().splitlines()) == len(rows) + 1
    journal = tmp_path / "home" / "journal.db"
    wal = journal.with_name(journal.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    db = sqlite3.connect(journal)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    (created,) = db.execute("SELECT COUNT(*) FROM payouts WHERE state='created'").fetchone()
    db.close()
    assert created == len(rows) == len(ledger)
    assert sorted(p["reference"] for p in ledger) == sorted(r["reference"] for r in rows)
