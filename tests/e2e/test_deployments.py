"""Exactly once as users deploy it: overlapping processes, other homes, URL spellings.

Each test runs the real ``batchpay`` command against a sandbox server in its own process;
the server's ledger is the judge.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from batchpay.testing import payout_row, write_csv

from .server import Server, cli_env, sandbox_server

pytestmark = [pytest.mark.socket, pytest.mark.slow]


def _cmd(f: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "batchpay.cli", "run", str(f), "--out", str(out), *extra]


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=180)


def _once(server: Server, rows: list[dict[str, str]]) -> None:
    per_ref = Counter(p["reference"] for p in server.ledger())
    assert per_ref == Counter(r["reference"] for r in rows), per_ref


def test_a_second_run_started_during_a_long_run_never_works_it_too(tmp_path: Path) -> None:
    """Second processes started at several moments of a run, the last one past the minute a
    lease used to last (same home), refuse with exit 8; the run itself pays each row once."""
    rows = [payout_row(i) for i in range(8)]
    f = write_csv(tmp_path / "pay.csv", rows)
    # 8 rows x 3 requests x 3 s at one request in flight: a run of about 75 seconds.
    with sandbox_server(tmp_path, "--latency-ms", "3000") as server:
        env = cli_env(tmp_path / "home", server.url)
        first = subprocess.Popen(_cmd(f, tmp_path / "r", "--concurrency", "1"), env=env,
                                 cwd=tmp_path, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)  # fmt: skip
        started = time.monotonic()
        try:
            for moment in (3.0, 30.0, 66.0):
                time.sleep(max(0.0, started + moment - time.monotonic()))
                second = _run(_cmd(f, tmp_path / "r2"), env, tmp_path)
                assert first.poll() is None, "the first run ended before the test could overlap it"
                assert second.returncode == 8, second.stderr
                assert "another batchpay process" in second.stderr
                assert "Traceback" not in second.stderr
            assert first.wait(timeout=180) == 0
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
            assert first.stderr is not None
            first.stderr.close()
        after = _run(_cmd(f, tmp_path / "r3"), env, tmp_path)
        assert after.returncode == 5, after.stderr
        _once(server, rows)


def test_a_second_home_during_a_run_pays_nothing_twice(tmp_path: Path) -> None:
    """Another folder's batchpay on the same file while the first still runs: one payout each."""
    rows = [payout_row(i) for i in range(16)]
    f = write_csv(tmp_path / "pay.csv", rows)
    with sandbox_server(tmp_path, "--latency-ms", "150") as server:
        first = subprocess.Popen(_cmd(f, tmp_path / "r"), env=cli_env(tmp_path / "a", server.url),
                                 cwd=tmp_path, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(2.0)
        other = _run(_cmd(f, tmp_path / "r2"), cli_env(tmp_path / "b", server.url), tmp_path)
        assert first.wait(timeout=180) in (0, 5)
        assert other.returncode in (0, 5), other.stderr
        _once(server, rows)
        # Each home, run again, has nothing left to pay.
        for home in ("a", "b"):
            again = _run(_cmd(f, tmp_path / "r3"), cli_env(tmp_path / home, server.url), tmp_path)
            assert again.returncode == 5, again.stderr
        _once(server, rows)


def test_three_spellings_of_one_url_are_one_world(tmp_path: Path) -> None:
    """127.0.0.1, localhost and LOCALHOST/ on one journal pay each row once."""
    rows = [payout_row(i) for i in range(20)]
    f = write_csv(tmp_path / "pay.csv", rows)
    with sandbox_server(tmp_path) as server:
        env = cli_env(tmp_path / "home", server.url)
        codes = []
        for url in (server.url, f"http://localhost:{server.port}",
                    f"http://LOCALHOST:{server.port}/"):  # fmt: skip
            done = _run(_cmd(f, tmp_path / "r", "--api-url", url), env, tmp_path)
            codes.append(done.returncode)
            assert "Traceback" not in done.stderr
        assert codes == [0, 5, 5]
        _once(server, rows)
