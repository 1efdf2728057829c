"""`run --wait` that times out says exit 10 "run the same command again", but the run is
already marked finished, so the same command is refused as already run (exit 5, "nothing
was sent") and never follows the held payout again."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchpay import pipeline
from batchpay.errors import DuplicateFileError, ExitCode
from batchpay.sandbox import Sandbox
from batchpay.testing import sandbox_settings

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio


async def test_an_incomplete_wait_can_be_finished_by_the_same_command(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    f = write_csv(tmp_path / "p.csv", [payee(1, amount="250.98"), payee(2)])  # .98: held
    home = sandbox_settings(tmp_path / "a")
    first = await pipeline.run_async(
        f, **run_kwargs(sandbox, home, tmp_path, wait=True, wait_timeout=30)
    )
    assert first.exit_code == ExitCode.INCOMPLETE  # "run the same command again"
    try:
        again = await pipeline.run_async(
            f, **run_kwargs(sandbox, home, tmp_path, wait=True, wait_timeout=30)
        )
    except DuplicateFileError as exc:
        pytest.fail(f"the same command is refused: {exc} (exit {exc.exit_code})")
    assert again.exit_code in (ExitCode.INCOMPLETE, ExitCode.ROWS_FAILED)
