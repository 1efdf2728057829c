"""The drop-folder protocol over SFTP, against a real SFTP server on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchpay.config import Settings, SftpAuth, read_sftp_auth
from batchpay.errors import ConfigError, ExitCode
from batchpay.sandbox import Sandbox
from batchpay.watch import Outcome, open_folder

from .conftest import DAY, drop, make_watcher, rows, sha256_of
from .sftp_server import SftpServer, sftp_server, write_known_hosts

pytestmark = [pytest.mark.anyio, pytest.mark.socket]

PROCESSED = f"processed/{DAY.isoformat()}"
FAILED = f"failed/{DAY.isoformat()}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SftpServer]:
    """A running SFTP server whose chroot is the drop folder."""
    with sftp_server(tmp_path) as srv:
        yield srv


def _auth(server: SftpServer, known_hosts: Path | None = None) -> SftpAuth:
    return read_sftp_auth(
        key_file=server.key_file, known_hosts=known_hosts or server.known_hosts, env={}
    )


async def test_file_dropped_over_sftp_is_paid_once_and_answered_on_the_server(
    sandbox: Sandbox, settings: Settings, server: SftpServer
) -> None:
    """Over SFTP: marker seen, file claimed, paid once, answer and reports in processed/DATE."""
    batch = rows(0, 4)
    path = drop(server.root, "pay.csv", batch)
    digest = sha256_of(path)
    drop(server.root, "later.csv", rows(10, 2), marker=None)  # no marker: left alone
    folder = open_folder(server.url, sftp_auth=_auth(server))
    try:
        result = await make_watcher(folder, sandbox, settings).run_pass()
    finally:
        await folder.aclose()
    assert [(a.name, a.outcome, a.exit_code) for a in result.answers] == [
        ("pay.csv", Outcome.PROCESSED, 0)
    ]
    assert Counter(p["reference"] for p in sandbox.ledger()) == Counter(
        r["reference"] for r in batch
    )
    done = server.root / PROCESSED
    assert sorted(p.name for p in done.iterdir()) == [
        "pay.csv", "pay.csv.ok", "pay.csv.report.csv", "pay.csv.report.xlsx",
        "pay.csv.result.json",
    ]  # fmt: skip
    answer = json.loads((done / "pay.csv.result.json").read_text())
    assert answer["sha256"] == digest and answer["run_id"] == result.answers[0].run_id
    assert (done / "pay.csv.report.xlsx").read_bytes()[:2] == b"PK"
    assert (server.root / "later.csv").exists()
    assert not [p for p in (server.root / "processing").rglob("*") if p.is_file()]


async def test_redrop_over_sftp_is_a_duplicate_and_a_dropped_link_is_reopened(
    sandbox: Sandbox, settings: Settings, server: SftpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The server drops the connection between passes: the watcher reconnects; the re-dropped
    file lands in failed/ naming the earlier run."""
    batch = rows(0, 3)
    folder = open_folder(server.url, sftp_auth=_auth(server))
    watcher = make_watcher(folder, sandbox, settings)
    try:
        drop(server.root, "pay.csv", batch)
        first = (await watcher.run_pass()).answers[0]
        server.drop_connections()
        await asyncio.sleep(0.2)
        drop(server.root, "pay.csv", batch)
        with caplog.at_level(logging.INFO, logger="batchpay.watch"):
            again = await watcher.run_pass()
    finally:
        await folder.aclose()
    assert [(a.outcome, a.exit_code) for a in again.answers] == [(Outcome.FAILED, 5)]
    answer = json.loads((server.root / FAILED / "pay.csv.result.json").read_text())
    assert answer["earlier_run"] == first.run_id
    assert len(sandbox.ledger()) == 3
    assert any("reconnecting" in r.getMessage() for r in caplog.records)


async def test_two_watchers_over_sftp_race_on_ten_files_and_pay_each_once(
    sandbox: Sandbox, settings: Settings, server: SftpServer, tmp_path: Path
) -> None:
    """Two watchers, two SFTP connections, two journals: every file paid and answered once."""
    from batchpay.testing import sandbox_settings

    expected: Counter[str] = Counter()
    for i in range(10):
        batch = rows(i * 3, 3)
        expected.update(r["reference"] for r in batch)
        drop(server.root, f"f{i}.csv", batch)
    fa = open_folder(server.url, sftp_auth=_auth(server))
    fb = open_folder(server.url, sftp_auth=_auth(server))
    a = make_watcher(fa, sandbox, settings, worker="a")
    b = make_watcher(fb, sandbox, sandbox_settings(tmp_path / "b"), worker="b")
    try:
        ra, rb = await asyncio.gather(a.run_pass(), b.run_pass())
    finally:
        await fa.aclose()
        await fb.aclose()
    assert ra.answers and rb.answers, "one watcher took every file: no race happened"
    assert sorted(x.name for x in ra.answers + rb.answers) == sorted(f"f{i}.csv" for i in range(10))
    assert Counter(p["reference"] for p in sandbox.ledger()) == expected
    assert len(list((server.root / PROCESSED).glob("*.result.json"))) == 10


async def test_changed_host_key_is_refused_with_its_fingerprint(
    server: SftpServer, tmp_path: Path
) -> None:
    """known_hosts holds another key for the host: refused, exit 6, the shown key's fingerprint."""
    import asyncssh

    other = asyncssh.generate_private_key("ssh-ed25519")
    known = write_known_hosts(tmp_path / "other_known_hosts", server.port, other)
    folder = open_folder(server.url, sftp_auth=_auth(server, known))
    with pytest.raises(ConfigError) as caught:
        await folder.files("")
    await folder.aclose()
    assert caught.value.exit_code == ExitCode.CONFIG
    assert "CHANGED" in caught.value.message
    assert server.host_key.get_fingerprint("sha256") in caught.value.message


async def test_unknown_host_key_is_refused(server: SftpServer, tmp_path: Path) -> None:
    """An empty known_hosts: the server cannot be verified, so nothing is read (exit 6)."""
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    folder = open_folder(server.url, sftp_auth=_auth(server, empty))
    with pytest.raises(ConfigError) as caught:
        await folder.files("")
    await folder.aclose()
    assert "is not in" in caught.value.message
    assert server.host_key.get_fingerprint("sha256") in caught.value.message


def test_missing_extra_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without asyncssh installed, an sftp:// folder is refused with exit 6 and the pip line."""
    monkeypatch.setitem(sys.modules, "asyncssh", None)
    known = tmp_path / "known_hosts"
    known.write_text("")
    auth = SftpAuth(key_file=None, known_hosts=known)
    with pytest.raises(ConfigError) as caught:
        open_folder("sftp://payer@127.0.0.1:2222/drop", sftp_auth=auth)
    assert caught.value.exit_code == ExitCode.CONFIG
    assert "batchpay[sftp]" in caught.value.hint


def test_sftp_credentials_come_from_the_environment_or_a_file(tmp_path: Path) -> None:
    """The password is read from BATCHPAY_SFTP_PASSWORD_FILE; a URL with a password is refused."""
    known = tmp_path / "known_hosts"
    known.write_text("")
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    env = {"BATCHPAY_SFTP_PASSWORD_FILE": str(secret), "BATCHPAY_SFTP_KNOWN_HOSTS": str(known)}
    auth = read_sftp_auth(env=env)
    assert auth.password is not None and auth.password.reveal() == "s3cret"
    assert "s3cret" not in repr(auth)
    with pytest.raises(ConfigError):
        read_sftp_auth(env={"BATCHPAY_SFTP_KNOWN_HOSTS": str(known)})  # no credentials
    with pytest.raises(ConfigError, match="password"):
        open_folder("sftp://payer:pw@127.0.0.1/drop", sftp_auth=auth)
