"""The `batchpay` command: thin layer, clear messages, documented exit codes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from batchpay.cli import main
from batchpay.testing import fake_live_key, payout_row, write_csv

LIVE_KEY = fake_live_key("abcdefgh")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An isolated working directory with no batchpay configuration in the environment."""
    for key in list(os.environ):
        if key.startswith("BATCHPAY_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def _all_commands(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # the lazily loaded commands (sandbox) included
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        yield prefix + name, cmd
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, prefix + name + " ")


def test_every_command_has_help_text() -> None:
    """Each command and subcommand explains itself in --help."""
    runner = CliRunner()
    for name, cmd in _all_commands(main):
        assert cmd.help and cmd.help.strip(), f"{name} has no help"
        result = runner.invoke(main, [*name.split(), "--help"])
        assert result.exit_code == 0, name


def test_embedded_sandbox_run_then_duplicate(home: Path) -> None:
    """With no credentials the run uses the embedded sandbox, says so, and a rerun exits 5."""
    f = write_csv(home / "pay.csv", [payout_row(i) for i in range(5)])
    runner = CliRunner()
    first = runner.invoke(main, ["run", str(f)])
    assert first.exit_code == 0, first.output
    assert "SANDBOX (embedded" in first.stderr and "no money moves" in first.stderr
    assert "SANDBOX — no money moved" in first.stdout
    reports = list((home / "reports").glob("run_*/*.xlsx"))
    assert len(reports) == 1
    again = runner.invoke(main, ["run", str(f)])
    assert again.exit_code == 5
    assert "already run" in again.stderr and "hint:" in again.stderr


def test_validate_prints_plan_and_sends_nothing(home: Path) -> None:
    """`validate` shows rows, totals and new beneficiaries; it creates no run."""
    f = write_csv(home / "pay.csv", [payout_row(i) for i in range(6)])
    result = CliRunner().invoke(main, ["validate", str(f)])
    assert result.exit_code == 0, result.output
    assert "6 rows, 6 valid" in result.stdout
    assert "total EUR" in result.stdout and "6 new" in result.stdout
    runs = CliRunner().invoke(main, ["runs"])
    assert "no runs yet" in runs.stdout


def test_invalid_file_exit_4_lists_each_problem(home: Path) -> None:
    """An invalid file exits 4 and lists every problem with row and column."""
    rows = [payout_row(i) for i in range(3)]
    rows[0]["iban"] = "DE00370400440532013000"
    rows[2]["amount"] = "-5.00"
    f = write_csv(home / "bad.csv", rows)
    result = CliRunner().invoke(main, ["run", str(f)])
    assert result.exit_code == 4
    assert "row 2" in result.stderr and "row 4" in result.stderr
    assert "nothing was sent" in result.stderr
    assert "Traceback" not in result.output


def test_unreadable_file_exit_3(home: Path) -> None:
    """A binary file named .csv is refused with exit 3 and no traceback."""
    f = home / "pay.csv"
    f.write_bytes(b"\x00\x01\x02PK\x03\x04garbage" * 10)
    result = CliRunner().invoke(main, ["run", str(f)])
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("=") or "error:" in result.stderr
    assert "Traceback" not in result.output


def test_live_key_requires_confirmation(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A live run is refused (exit 6) until --confirm-live is given; nothing is sent."""
    monkeypatch.setenv("BATCHPAY_API_KEY", LIVE_KEY)
    f = write_csv(home / "pay.csv", [payout_row(0)])
    result = CliRunner().invoke(main, ["run", str(f)])
    assert result.exit_code == 6
    assert "LIVE" in result.stderr and "--confirm-live" in result.stderr
    assert LIVE_KEY not in result.output


def test_declared_totals_mismatch_refused(home: Path) -> None:
    """A declared row count or total that disagrees with the file refuses it (exit 4)."""
    f = write_csv(home / "pay.csv", [payout_row(i) for i in range(3)])
    result = CliRunner().invoke(main, ["run", str(f), "--expect-rows", "4"])
    assert result.exit_code == 4 and "control totals" in result.stderr


def test_report_regenerates_from_journal(home: Path) -> None:
    """`report` rebuilds the latest run's report from the journal alone."""
    f = write_csv(home / "pay.csv", [payout_row(i) for i in range(2)])
    runner = CliRunner()
    assert runner.invoke(main, ["run", str(f)]).exit_code == 0
    for p in (home / "reports").rglob("*"):
        if p.is_file():
            p.unlink()
    result = runner.invoke(main, ["report"])
    assert result.exit_code == 0, result.output
    assert len(list((home / "reports").rglob("*.xlsx"))) == 1
