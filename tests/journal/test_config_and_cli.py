"""Naming a PostgreSQL journal: BATCHPAY_JOURNAL, its _FILE, a separate password, --journal."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchpay.cli import main
from batchpay.config import resolve_settings
from batchpay.errors import ConfigError
from batchpay.journal.target import PostgresURL
from batchpay.testing import payout_row, write_csv


def test_a_postgresql_url_in_the_environment_is_a_postgresql_journal(tmp_path: Path) -> None:
    """BATCHPAY_JOURNAL=postgresql://… is kept whole, not read as a path."""
    url = "postgresql://bp@db.internal:5432/pay"
    s = resolve_settings(env={"BATCHPAY_HOME": str(tmp_path), "BATCHPAY_JOURNAL": url})
    assert isinstance(s.journal_path, PostgresURL)
    assert s.journal_path.reveal() == "postgresql://bp@db.internal:5432/pay"


def test_the_url_and_its_password_may_come_from_files(tmp_path: Path) -> None:
    """BATCHPAY_JOURNAL_FILE and BATCHPAY_JOURNAL_PASSWORD_FILE, as Kubernetes mounts them."""
    (tmp_path / "url").write_text("postgresql://bp@db/pay\n")
    (tmp_path / "pw").write_text("hunter2-very-secret\n")
    s = resolve_settings(env={"BATCHPAY_HOME": str(tmp_path),
                              "BATCHPAY_JOURNAL_FILE": str(tmp_path / "url"),
                              "BATCHPAY_JOURNAL_PASSWORD_FILE": str(tmp_path / "pw")})  # fmt: skip
    assert isinstance(s.journal_path, PostgresURL)
    assert s.journal_path.password == "hunter2-very-secret"
    assert "hunter2" not in f"{s} {s.journal_path} {s.journal_path!r}"


def test_both_the_journal_and_its_file_is_refused(tmp_path: Path) -> None:
    """Two sources for one setting is a configuration error, as for every secret."""
    with pytest.raises(ConfigError, match="BATCHPAY_JOURNAL_FILE"):
        resolve_settings(env={"BATCHPAY_JOURNAL": "x.db", "BATCHPAY_JOURNAL_FILE": "y"})


def test_a_plain_path_stays_a_sqlite_journal(tmp_path: Path) -> None:
    """Anything that is not a postgresql:// URL is a SQLite file, as before."""
    s = resolve_settings(env={"BATCHPAY_JOURNAL": str(tmp_path / "j.db")})
    assert s.journal_path == tmp_path / "j.db"


def test_the_cli_runs_a_file_on_a_postgresql_journal_and_never_shows_its_password(
    tmp_path: Path, postgres_url: PostgresURL, caplog: pytest.LogCaptureFixture
) -> None:
    """`batchpay run --journal postgresql://…` pays, `runs` lists it; a bad password is exit 6."""
    caplog.set_level(logging.DEBUG)
    f = write_csv(tmp_path / "pay.csv", [payout_row(i) for i in range(3)])
    url = postgres_url.reveal()
    paid = CliRunner().invoke(main, ["run", str(f), "--journal", url, "--out", str(tmp_path)])
    assert paid.exit_code == 0, paid.output
    listed = CliRunner().invoke(main, ["runs", "--journal", url])
    assert listed.exit_code == 0 and "pay.csv" in listed.stdout
    again = CliRunner().invoke(main, ["run", str(f), "--journal", url])
    assert again.exit_code == 5, again.output  # the same file, refused
    wrong = url.replace("postgres@", "nobody:s3cret-pw@")
    refused = CliRunner().invoke(main, ["runs", "--journal", wrong])
    assert refused.exit_code == 6 and "Traceback" not in refused.output
    assert "nobody:***@" in refused.stderr
    assert "s3cret-pw" not in refused.output + caplog.text
