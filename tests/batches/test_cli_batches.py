"""`batchpay run --via batches` through the CLI, on the embedded sandbox."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchpay.cli import main
from batchpay.testing import payout_row, write_csv

pytestmark = pytest.mark.slow


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An isolated working directory with no batchpay configuration in the environment."""
    for key in list(os.environ):
        if key.startswith("BATCHPAY_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("BATCHPAY_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def test_a_batch_run_shows_the_plan_pays_and_then_refuses_the_same_file(home: Path) -> None:
    """The provider's plan on stderr, the usual summary and report, then exit 5 on a rerun."""
    f = write_csv(home / "pay.csv", [payout_row(i) for i in range(4)])
    runner = CliRunner()
    first = runner.invoke(main, ["run", str(f), "--via", "batches", "--confirm"])
    assert first.exit_code == 0, first.output
    assert "provider batch bat_" in first.stderr and "4 valid" in first.stderr
    assert "Outcomes: pending 4" in first.stdout
    assert list(home.glob("reports/*/*.xlsx"))
    again = runner.invoke(main, ["run", str(f), "--via", "batches", "--confirm"])
    assert again.exit_code == 5, again.output
