"""The progress line `run` shows on standard error: each phase's rows done of its total,
the rate and the time left.

Phases, in order: ``submit`` (rows resolved and sent) and, with ``--wait``, ``wait``
("waiting for final status": payouts that reached one). Each phase starts its own count
and clock, so the bar never sits at 100 % while payouts are still being followed. On a
terminal the line is redrawn in place; otherwise one line is written when a phase ends
(logs stay readable).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

LABELS = {"submit": "submitting", "wait": "waiting for final status"}


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_text(label: str, done: int, total: int, elapsed: float) -> str:
    """``submitting: 120/2,000 rows (6 %), 14.2 rows/s, 2:12 left`` — rate and time left
    once anything is done, the elapsed time when the phase is complete."""
    share = f" ({100 * done // total} %)" if total else ""
    text = f"{label}: {done:,}/{total:,} rows{share}"
    if done >= total and total:
        return text + f", done in {_duration(elapsed)}"
    if done and elapsed > 0:
        rate = done / elapsed
        text += f", {rate:,.1f} rows/s, {_duration((total - done) / rate)} left"
    return text


REDRAW_SECONDS = 0.1
"""A terminal's line is redrawn at most this often (and when a phase begins or completes)."""


class ProgressLine:
    """``on_progress(stage, done, total)`` for the pipeline, drawn on ``out``.

    A run reports every row; the line's text is made only when it is drawn (on a terminal,
    at most every :data:`REDRAW_SECONDS`) or written (when its phase ends)."""

    def __init__(self, out: TextIO, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.clock = clock
        self.live = out.isatty()
        self.stage = ""
        self.started = 0.0
        self.width = 0
        self._state: tuple[str, int, int, float] | None = None
        self._drawn: float | None = None

    @property
    def last(self) -> str:
        """The current phase's line as it stands ('' before any)."""
        return progress_text(*self._state) if self._state is not None else ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        label = LABELS.get(stage)
        if label is None or total <= 0:
            return
        now = self.clock()
        if stage != self.stage:
            self.finish()
            self.stage, self.started = stage, now
        done = min(done, total)
        self._state = (label, done, total, now - self.started)
        if self.live and (self._drawn is None or done >= total
                          or now - self._drawn >= REDRAW_SECONDS):  # fmt: skip
            text = self.last
            self.out.write("\r" + text.ljust(self.width))
            self.width = len(text)
            self.out.flush()
            self._drawn = now

    def finish(self) -> None:
        """End the current phase's line (a newline on a terminal; the last state elsewhere)."""
        if self._state is None:
            return
        if self.live:
            if self._drawn is not None:  # the last state, if a redraw was skipped
                text = self.last
                self.out.write("\r" + text.ljust(self.width))
            self.out.write("\n")
        else:
            self.out.write(self.last + "\n")
        self.out.flush()
        self._state, self._drawn, self.width = None, None, 0
