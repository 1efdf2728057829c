"""Running the library's coroutines from synchronous code."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``, its result kept off the main task.

    When ``asyncio.run`` ends it puts back the SIGINT handler, and :mod:`signal` formats the
    one it replaces — a ``functools.partial`` holding the finished main task, whose ``repr``
    holds the task's result. A run's result holds its report: 5,000 rows took about 20 ms of
    CPU to format, for nothing. The main task here returns None.
    """
    box: list[T] = []

    async def main() -> None:
        box.append(await coro)

    asyncio.run(main())
    return box[0]
