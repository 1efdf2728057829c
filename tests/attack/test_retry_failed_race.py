"""Two `retry-failed RUN --yes` at once: the loser exits 6 ("journal unusable") and leaves
an open run whose rows can never be settled (`track` answers 10 forever).

The race is reproduced deterministically: the second process computed its plan before
the first one committed its intents (manage.retry_plan runs outside any lock)."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchpay import manage as runs
from batchpay import pipeline
from batchpay.errors import BatchpayError, ExitCode
from batchpay.sandbox import Sandbox
from batchpay.testing import sandbox_settings

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio


async def test_concurrent_retry_failed_loser_exits_cleanly(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = sandbox_settings(tmp_path / "a")
    rows = [payee(i, amount=f"{100 + i}.91") for i in range(3)]
    first = await pipeline.run_async(
        write_csv(tmp_path / "p.csv", rows), **run_kwargs(sandbox, home, tmp_path, wait=True)
    )
    kw = {
        "confirm": True,
        "settings": home,
        "transport": sandbox.transport(),
        "clock": sandbox.clock.now,
        "out_dir": tmp_path / "r",
    }
    stale = runs.retry_plan(first.run_id, settings=home)  # process 2 plans...
    await runs.retry_failed_async(first.run_id, **kw)  # ...process 1 sends...
    monkeypatch.setattr(runs, "retry_plan", lambda *a, **k: stale)
    code = None
    try:
        await runs.retry_failed_async(first.run_id, **kw)  # ...process 2 sends
    except BatchpayError as exc:
        code = exc.exit_code
    assert len(sandbox.ledger()) == 6  # no double payment: the guard held
    assert code in (None, ExitCode.LOCKED, ExitCode.ROWS_FAILED), code
    assert all(r["status"] != "open" for r in pipeline.runs(settings=home)), pipeline.runs(
        settings=home
    )
