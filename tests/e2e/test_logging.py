"""Logging for operators: stage events through standard logging, configured by the CLI only."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchpay import pipeline
from batchpay.config import Settings
from batchpay.logs import JsonFormatter
from batchpay.sandbox import Sandbox
from batchpay.testing import payout_row, write_csv

from .conftest import run_kwargs


def _cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHPAY_")}
    env["BATCHPAY_HOME"] = str(tmp / "home")
    return subprocess.run([sys.executable, "-m", "batchpay.cli", *args], env=env, cwd=tmp,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_the_cli_logs_each_stage_as_json_lines(tmp_path: Path) -> None:
    """--log-format json --log-level info: file, run, every API call, rows, report; no key."""
    f = write_csv(tmp_path / "p.csv", [payout_row(i) for i in range(3)])
    done = _cli(tmp_path, "--log-format", "json", "--log-level", "info", "run", str(f))
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    messages = [e["message"] for e in events]
    assert any(m.startswith("file read: p.csv") for m in messages)
    assert any(m.startswith("file validated: p.csv") for m in messages)
    assert any(m.startswith("run run_") and "created" in m for m in messages)
    calls = [e for e in events if e["logger"] == "batchpay.client"]
    assert {(c["method"], c["path"]) for c in calls} >= {
        ("POST", "/v1/payouts"),
        ("GET", "/v1/payouts"),
    }
    assert all(c["request_id"] and c["status"] and c["duration_ms"] >= 0 for c in calls)
    assert [e["row"] for e in events if e["logger"] == "batchpay.strategies"] == [2, 3, 4]
    assert any(m.startswith("report written:") for m in messages)
    assert "ak_test_" not in done.stderr and "Authorization" not in done.stderr


def test_the_default_level_keeps_a_clean_run_quiet(tmp_path: Path) -> None:
    """Without --log-level, a run that pays every row logs nothing (warnings and up only)."""
    f = write_csv(tmp_path / "p.csv", [payout_row(0)])
    done = _cli(tmp_path, "run", str(f))
    assert done.returncode == 0, done.stderr
    assert " INFO " not in done.stderr and "batchpay.client" not in done.stderr


@pytest.mark.anyio
async def test_the_library_logs_but_never_configures_logging(
    sandbox: Sandbox, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Events reach the application's handlers; batchpay adds none that print."""
    caplog.set_level(logging.INFO, logger="batchpay")
    before = list(logging.getLogger("batchpay").handlers), list(logging.getLogger().handlers)
    f = write_csv(tmp_path / "p.csv", [payout_row(0)])
    await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert any(r.name == "batchpay.pipeline" for r in caplog.records)
    after = list(logging.getLogger("batchpay").handlers), list(logging.getLogger().handlers)
    assert after == before
    line = JsonFormatter().format(caplog.records[0])
    assert json.loads(line)["logger"].startswith("batchpay")
