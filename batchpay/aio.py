"""Running the library's coroutines from synchronous code, on the fastest event loop here.

batchpay's commands spend most of their CPU in the event loop's machinery (tasks, handles,
transports) beside the HTTP client's and the journal's own work. uvloop (libuv, in C) does
that machinery for about a tenth of the run's CPU less than asyncio's pure-Python loop
(``scripts/bench_run.py``), so it is used where it is installed (a dependency on Linux and
macOS). ``BATCHPAY_EVENT_LOOP=asyncio`` chooses asyncio's own loop instead (to rule the loop
out when chasing a problem); ``uvloop`` requires it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from batchpay.errors import ConfigError

T = TypeVar("T")

EVENT_LOOP_ENV = "BATCHPAY_EVENT_LOOP"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop batchpay runs on: uvloop's when installed (None: asyncio's default).

    Raises ConfigError for an unknown ``BATCHPAY_EVENT_LOOP`` or ``uvloop`` asked for but
    not installed.
    """
    choice = os.environ.get(EVENT_LOOP_ENV, "").strip().lower() or "auto"
    if choice not in ("auto", "uvloop", "asyncio"):
        raise ConfigError(
            f"{EVENT_LOOP_ENV}={os.environ[EVENT_LOOP_ENV]!r} is not an event loop batchpay knows",
            hint=f"set {EVENT_LOOP_ENV} to uvloop or asyncio, or leave it unset",
        )
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError(
                f"{EVENT_LOOP_ENV}=uvloop, but uvloop is not installed",
                hint="pip install uvloop (Linux and macOS), or leave the variable unset",
            ) from None
        return None
    return uvloop.new_event_loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` on :func:`loop_factory`'s loop, its result kept off the main
    task.

    When the runner ends it puts back the SIGINT handler, and :mod:`signal` formats the
    one it replaces — a ``functools.partial`` holding the finished main task, whose ``repr``
    holds the task's result. A run's result holds its report: 5,000 rows took about 20 ms of
    CPU to format, for nothing. The main task here returns None.
    """
    box: list[T] = []

    async def main() -> None:
        box.append(await coro)

    try:
        factory = loop_factory()
    except BaseException:
        coro.close()  # never awaited: no "coroutine was never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
    return box[0]
