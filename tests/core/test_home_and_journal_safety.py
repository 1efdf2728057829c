"""Where the journal lives, which journals are refused, and how journal failures are reported."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchpay import journal as journal_mod
from batchpay.cli import main
from batchpay.config import default_home, resolve_settings
from batchpay.errors import ExitCode, JournalError
from batchpay.journal import MIGRATIONS, Journal
from batchpay.testing import disk_full_after, payout_row, write_csv


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[sqlite3.Connection], None]], None]:
    """Install a journal connection hook for this test only."""

    def install(fn: Callable[[sqlite3.Connection], None]) -> None:
        monkeypatch.setattr(journal_mod, "connection_hook", fn)

    return install


@pytest.fixture
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working folder and an isolated home for CLI runs against the embedded sandbox."""
    for key in list(os.environ):
        if key.startswith("BATCHPAY_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("BATCHPAY_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    yield tmp_path


# -- where the journal lives --------------------------------------------------------------


def test_default_home_is_the_user_data_folder_not_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no BATCHPAY_HOME the journal is in the user's data folder, whatever the cwd."""
    monkeypatch.chdir(tmp_path)
    s = resolve_settings(env={})
    assert s.home == default_home()
    assert s.journal_path == default_home() / "journal.db"
    assert not s.home.is_relative_to(tmp_path)
    # The suite's autouse fixture points the data folder at a temporary one.
    assert Path(os.environ["XDG_DATA_HOME"]) in default_home().parents


def test_batchpay_home_and_journal_still_override(tmp_path: Path) -> None:
    """BATCHPAY_HOME moves the home; BATCHPAY_JOURNAL moves only the journal."""
    s = resolve_settings(env={"BATCHPAY_HOME": str(tmp_path / "h")})
    assert s.journal_path == tmp_path / "h" / "journal.db"
    s = resolve_settings(env={"BATCHPAY_JOURNAL": str(tmp_path / "j.db")})
    assert s.journal_path == tmp_path / "j.db" and s.home == default_home()


def test_home_is_0700_and_journal_files_0600(tmp_path: Path) -> None:
    """A new home folder is owner-only, and so are the journal and its -wal/-shm files."""
    home = tmp_path / "a" / "home"
    with Journal(home / "journal.db") as j:
        j.record_call(None, {"started_at": "t", "method": "GET", "path": "/v1/x"})
        assert _mode(home) == 0o700 and _mode(home.parent) == 0o700
        for name in ("journal.db", "journal.db-wal", "journal.db-shm"):
            assert _mode(home / name) == 0o600, name
    assert sorted(p.name for p in home.iterdir() if p.name.endswith(".new")) == []


# -- journals that are refused ------------------------------------------------------------


def test_an_empty_journal_file_is_refused_not_reinitialised(tmp_path: Path) -> None:
    """A zero-length journal is refused with a clear error and left untouched."""
    path = tmp_path / "journal.db"
    path.write_bytes(b"")
    with pytest.raises(JournalError, match="is empty") as caught:
        Journal(path)
    assert caught.value.exit_code == ExitCode.CONFIG and caught.value.hint
    assert path.read_bytes() == b""


def test_a_foreign_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """A file that is not a SQLite database is refused; its bytes are not changed."""
    path = tmp_path / "journal.db"
    path.write_bytes(b"payroll notes\n" * 300)
    with pytest.raises(JournalError, match="not a batchpay journal"):
        Journal(path)
    assert path.read_bytes() == b"payroll notes\n" * 300


def test_cli_refuses_an_empty_journal_with_exit_6(cli_home: Path) -> None:
    """`batchpay run` with an empty journal: exit 6, one error line and a hint, no traceback."""
    journal = cli_home / "home" / "journal.db"
    journal.parent.mkdir()
    journal.write_bytes(b"")
    f = write_csv(cli_home / "pay.csv", [payout_row(0)])
    result = CliRunner().invoke(main, ["run", str(f)])
    assert result.exit_code == 6, result.output
    assert f"error: the journal at {journal} is empty" in result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.output


def test_a_crash_while_creating_leaves_no_journal_at_the_path(
    tmp_path: Path, hook: Callable[[Callable[[sqlite3.Connection], None]], None]
) -> None:
    """A new journal appears at its path only once migrated: a failed creation leaves none."""

    def crash(db: sqlite3.Connection) -> None:
        raise KeyboardInterrupt  # the process dies while the new journal is being made

    hook(crash)
    path = tmp_path / "journal.db"
    with pytest.raises(KeyboardInterrupt):
        Journal(path)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []
    hook(lambda db: None)
    with Journal(path) as j:
        assert j.applied_migrations() == [m.name for m in MIGRATIONS]


def test_a_journal_created_meanwhile_by_another_process_is_used(tmp_path: Path) -> None:
    """If the journal appears while ours is being made, theirs wins and ours is dropped."""
    path = tmp_path / "journal.db"
    with Journal(path) as first:
        first.record_call(None, {"started_at": "t", "method": "GET", "path": "/theirs"})
    journal = Journal.__new__(Journal)
    journal.clock = journal_mod.utcnow
    journal._create(path)  # as if we had looked before they linked theirs
    with Journal(path) as j:
        assert [c["path"] for c in j.db.execute("SELECT path FROM api_calls")] == ["/theirs"]
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("journal.db")] == []


# -- failures during a run: exit 6, not 70 --------------------------------------------------


def test_a_full_disk_mid_transaction_is_a_journal_error_and_rolls_back(
    tmp_path: Path, hook: Callable[[Callable[[sqlite3.Connection], None]], None]
) -> None:
    """SQLITE_FULL becomes 'the disk is full'; the journal stays usable and consistent."""
    path = tmp_path / "journal.db"
    Journal(path).close()
    hook(disk_full_after(2))
    with Journal(path) as j:
        with pytest.raises(JournalError, match="the disk is full") as caught:
            for i in range(2000):
                j.record_call(None, {"started_at": "t" * 500, "method": "GET", "path": f"/{i}"})
        assert "free some disk space" in caught.value.hint
        assert not j.db.in_transaction
        kept = j.db.execute("SELECT count(*) FROM api_calls").fetchone()[0]
    hook(lambda db: None)
    with Journal(path) as j:
        assert j.db.execute("SELECT count(*) FROM api_calls").fetchone()[0] == kept


def test_a_read_only_journal_is_a_journal_error_even_for_root(
    tmp_path: Path, hook: Callable[[Callable[[sqlite3.Connection], None]], None]
) -> None:
    """A journal that cannot be written (query_only: root-proof) fails with 'read-only'."""
    path = tmp_path / "journal.db"
    Journal(path).close()
    hook(lambda db: db.execute("PRAGMA query_only=ON"))
    with Journal(path) as j:
        assert j.list_runs() == []  # reading works
        with pytest.raises(JournalError, match="is read-only"):
            j.record_call(None, {"started_at": "t", "method": "GET", "path": "/"})


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions (see the query_only test)")
def test_a_chmod_read_only_journal_is_a_journal_error(tmp_path: Path) -> None:
    """A journal file the user may not write: JournalError, not an internal error."""
    path = tmp_path / "journal.db"
    Journal(path).close()
    path.chmod(0o400)
    try:
        with pytest.raises(JournalError), Journal(path) as j:
            j.record_call(None, {"started_at": "t", "method": "GET", "path": "/"})
    finally:
        path.chmod(0o600)


def test_a_journal_locked_past_the_busy_timeout_is_a_journal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holding the write lock too long: 'stayed locked', exit 6."""
    monkeypatch.setattr(journal_mod, "BUSY_TIMEOUT_SECONDS", 0.05)
    path = tmp_path / "journal.db"
    with Journal(path) as j:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(JournalError, match="stayed locked") as caught:
                j.record_call(None, {"started_at": "t", "method": "GET", "path": "/"})
            assert caught.value.exit_code == ExitCode.CONFIG
        finally:
            other.execute("ROLLBACK")
            other.close()
        j.record_call(None, {"started_at": "t", "method": "GET", "path": "/"})  # usable again


def test_cli_run_on_a_full_disk_exits_6_without_a_traceback(
    cli_home: Path, hook: Callable[[Callable[[sqlite3.Connection], None]], None]
) -> None:
    """The disk filling up during `batchpay run`: exit 6 and a clear line, not exit 70."""
    f = write_csv(cli_home / "pay.csv", [payout_row(i) for i in range(40)])
    runner = CliRunner()
    assert runner.invoke(main, ["validate", str(f)]).exit_code == 0  # creates the journal
    hook(disk_full_after(1))
    result = runner.invoke(main, ["run", str(f)])
    assert result.exit_code == 6, result.output
    assert "the disk is full" in result.stderr and "hint: free some disk space" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.output


def test_cli_run_on_a_read_only_journal_exits_6(
    cli_home: Path, hook: Callable[[Callable[[sqlite3.Connection], None]], None]
) -> None:
    """A read-only journal during `batchpay run`: exit 6, 'read-only', nothing sent."""
    f = write_csv(cli_home / "pay.csv", [payout_row(0)])
    runner = CliRunner()
    assert runner.invoke(main, ["validate", str(f)]).exit_code == 0
    hook(lambda db: db.execute("PRAGMA query_only=ON"))
    result = runner.invoke(main, ["run", str(f)])
    assert result.exit_code == 6, result.output
    assert "is read-only" in result.stderr and "Traceback" not in result.output


def test_cli_report_folder_that_is_a_file_exits_6_before_sending(cli_home: Path) -> None:
    """--out naming a regular file (root-proof): exit 6 and nothing is paid."""
    f = write_csv(cli_home / "pay.csv", [payout_row(0)])
    blocker = cli_home / "reports-file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(main, ["run", str(f), "--out", str(blocker / "sub")])
    assert result.exit_code == 6, result.output
    assert "cannot write reports in" in result.stderr and "nothing was sent" in result.stderr
    assert "Traceback" not in result.output
    with Journal(cli_home / "home" / "journal.db") as j:
        assert j.list_runs() == []
