"""Documented, expected refusals answer exit 70 ("internal error: a bug, report it").

`BatchpayError`'s default exit code is INTERNAL (errors.py), and manage.py / pipeline.py
raise it bare for ordinary situations: no such run, an empty journal, nothing to retry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"BATCHPAY_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "batchpay.cli", *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("args", [("show", "run_nope"), ("report",), ("track", "run_nope")])
def test_an_unknown_run_is_not_an_internal_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = _cli(tmp_path, *args)
    assert "error:" in done.stderr + done.stdout
    assert done.returncode != 70, done.stderr
