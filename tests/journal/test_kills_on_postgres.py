"""Three batchpay processes on one PostgreSQL journal, SIGKILLed at random: paid once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from batchpay.journal.target import PostgresURL

pytestmark = [pytest.mark.slow, pytest.mark.socket]


def test_three_processes_on_one_postgresql_journal_killed_at_random_pay_each_row_once(
    tmp_path: Path, postgres_url: PostgresURL
) -> None:
    """scripts/chaos.py with --journal: the sandbox server's ledger holds each row once."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "chaos.py"
    result = subprocess.run(
        [sys.executable, str(script), "--rows", "40", "--kills", "8", "--processes", "3",
         "--homes", "different", "--journal", postgres_url.reveal(),
         "--workdir", str(tmp_path / "chaos")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    summary = json.loads(result.stdout)
    assert summary["kills"] >= 8
    assert summary["duplicates"] == [] and summary["missing"] == [] and summary["strays"] == []
    assert summary["ledger_payouts"] == 40
    assert summary["internal_errors"] == 0
    for home in summary["per_home"]:
        assert home["final_exit"] in (0, 1, 5), home
        assert home["report_disagreements"] == [], home
        assert home["report_rows"] == 40, home
    assert summary["ok"], summary
