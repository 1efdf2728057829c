"""The progress line: rows done of total, rate and time left, per phase; --wait has its own."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from batchpay import pipeline
from batchpay.cli.progress import ProgressLine, progress_text
from batchpay.config import Settings
from batchpay.sandbox import Sandbox
from batchpay.testing import payout_row, run_kwargs, write_csv


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_text_counts_rate_and_time_left() -> None:
    """Rows done of total, the share, the rate and what is left; the duration at the end."""
    assert progress_text("submitting", 0, 2000, 0.0) == "submitting: 0/2,000 rows (0 %)"
    assert progress_text("submitting", 500, 2000, 50.0) == (
        "submitting: 500/2,000 rows (25 %), 10.0 rows/s, 2:30 left"
    )
    assert progress_text("waiting for final status", 2000, 2000, 3725.0) == (
        "waiting for final status: 2,000/2,000 rows (100 %), done in 1:02:05"
    )


def test_each_phase_has_its_own_line_and_clock() -> None:
    """The wait phase starts from 0 with its own clock: never a bar frozen at 100 %."""
    clock, out = _Clock(), _Terminal()
    line = ProgressLine(out, clock=clock)
    line("submit", 0, 4)
    clock.now += 2
    line("submit", 4, 4)
    clock.now += 10
    line("wait", 0, 4)
    clock.now += 5
    line("wait", 1, 4)
    line.finish()
    text = out.getvalue()
    assert "submitting: 4/4 rows (100 %), done in 0:02" in text
    assert "\rwaiting for final status: 1/4 rows (25 %), 0.2 rows/s, 0:15 left" in text
    assert text.endswith("\n")


def test_not_a_terminal_writes_one_line_per_phase() -> None:
    """In a log (not a terminal) each phase writes its last state once."""
    clock, out = _Clock(), io.StringIO()
    line = ProgressLine(out, clock=clock)
    for done in range(5):
        line("submit", done, 4)
    line("wait", 4, 4)
    line.finish()
    assert out.getvalue().splitlines() == [
        "submitting: 4/4 rows (100 %), done in 0:00",
        "waiting for final status: 4/4 rows (100 %), done in 0:00",
    ]


@pytest.mark.anyio
async def test_a_run_with_wait_reports_both_phases(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """run --wait reports the submit phase to its total, then the wait phase to its total."""
    seen: list[tuple[str, int, int]] = []
    f = write_csv(tmp_path / "p.csv", [payout_row(i) for i in range(5)])
    await pipeline.run_async(
        f,
        on_progress=lambda stage, done, total: seen.append((stage, done, total)),
        **run_kwargs(sandbox, settings, tmp_path, wait=True),
    )
    submit = [s for s in seen if s[0] == "submit"]
    wait = [s for s in seen if s[0] == "wait"]
    assert submit[-1] == ("submit", 5, 5)
    assert wait[0] == ("wait", 0, 5) and wait[-1] == ("wait", 5, 5)
    assert seen.index(wait[0]) > seen.index(submit[-1])


def test_a_terminal_is_redrawn_at_most_every_tenth_of_a_second_and_ends_on_the_last_state() -> None:
    """Thousands of rows a second: the line is drawn when the phase begins, then at most
    every 0.1 s; the phase's end (or finish) still shows its last state."""
    clock, out = _Clock(), _Terminal()
    line = ProgressLine(out, clock=clock)
    for done in range(1000):
        line("submit", done, 2000)
        clock.now += 0.0005  # 2,000 rows a second
    line.finish()
    text = out.getvalue()
    assert 4 <= text.count("\r") <= 8  # the first draw, about five redraws, the finish
    assert text.endswith("submitting: 999/2,000 rows (49 %), 2,000.0 rows/s, 0:01 left\n")
