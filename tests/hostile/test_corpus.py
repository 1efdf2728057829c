"""Every file of the hostile corpus is refused: clear message, row and column, exit code, no call.

The corpus itself, one row per bad file with what it must produce, is the table in
``corpus.py``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from batchpay import pipeline
from batchpay.config import Mode, Secret, Settings
from batchpay.errors import BatchpayError, ExitCode, InputError, ValidationFailed
from batchpay.sandbox import DEFAULT_API_KEY, Sandbox, SandboxConfig

from .conftest import layout_with_limits
from .corpus import CASES, Case
from .spy import invoke, journal_runs, no_traceback, spy_on_requests

DOCUMENTED_REFUSALS = {ExitCode.INPUT_UNREADABLE, ExitCode.VALIDATION_FAILED}


def test_the_corpus_covers_csv_and_xlsx_with_forty_files_or_more() -> None:
    """At least 40 distinct bad files, both formats, each expecting a documented refusal."""
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) >= 40
    formats = Counter(c.format for c in CASES)
    assert formats["csv"] >= 30 and formats["xlsx"] >= 15
    assert {c.exit_code for c in CASES} == DOCUMENTED_REFUSALS
    # a refused row always says where it is
    assert all(c.row is not None for c in CASES if c.exit_code == ExitCode.VALIDATION_FAILED)


def _build(case: Case, folder: Path) -> tuple[Path, list[str]]:
    """Write the case's file into ``folder``; the extra ``--layout`` arguments it needs."""
    path = folder / case.name
    case.build(path)
    if not case.limits:
        return path, []
    return path, ["--layout", str(layout_with_limits(folder, case.limits))]


@pytest.mark.anyio
@pytest.mark.parametrize("case", CASES, ids=str)
async def test_the_library_refuses_before_any_request(case: Case, tmp_path: Path) -> None:
    """pipeline.run_async raises the case's error (code, row, column); no request, no run."""
    path, layout_args = _build(case, tmp_path)
    sandbox = Sandbox(SandboxConfig(manual_clock=True, rate_limit_per_minute=None))
    settings = Settings(
        mode=Mode.SANDBOX,
        api_url="http://sandbox.test",
        api_key=Secret(DEFAULT_API_KEY),
        home=tmp_path / ".batchpay",
        journal_path=tmp_path / ".batchpay" / "journal.db",
    )
    options = pipeline.RunOptions(
        out_dir=tmp_path / "reports", layout_path=Path(layout_args[1]) if layout_args else None
    )
    try:
        with spy_on_requests() as spy, pytest.raises(BatchpayError) as caught:
            await pipeline.run_async(
                path, settings=settings, options=options, transport=sandbox.transport()
            )
        assert sandbox.ledger() == []
    finally:
        await sandbox.aclose()
    error = caught.value
    assert error.exit_code == case.exit_code, error.message
    if case.exit_code == ExitCode.INPUT_UNREADABLE:
        assert isinstance(error, InputError)
        assert (error.code, error.row, error.column) == (case.code, case.row, case.column)
        assert case.message in error.message
        assert error.hint, "every refusal says what to do"
    else:
        assert isinstance(error, ValidationFailed)
        found = [
            i for i in error.issues
            if (i.code, i.row, i.column) == (case.code, case.row, case.column)
        ]  # fmt: skip
        assert found, [str(i) for i in error.issues]
        assert case.message in found[0].message
    assert spy.requests == []
    assert journal_runs(tmp_path) == 0
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_command_refuses_clearly_and_sends_nothing(case: Case, tmp_path: Path) -> None:
    """`batchpay run` and `batchpay validate`: exit code, message, row and column, no call."""
    path, layout_args = _build(case, tmp_path)
    for command in ("run", "validate"):
        done = invoke(tmp_path, [command, str(path), *layout_args])
        assert done.exit_code == case.exit_code, done.output
        assert case.message in done.stderr
        assert "error: " in done.stderr and "hint: " in done.stderr
        if case.exit_code == ExitCode.VALIDATION_FAILED:
            where = f"row {case.row}" + (f", column {case.column}" if case.column else "")
            assert where in done.stderr
            assert "nothing was sent" in done.stderr
        assert no_traceback(done.output)
        assert len(done.output) < 20_000, "a huge cell is never echoed back"
        assert done.requests.requests == []
    assert journal_runs(tmp_path) == 0
