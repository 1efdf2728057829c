"""``batchpay.aio.run``: asyncio.run with the coroutine's result kept off the main task."""

from __future__ import annotations

import asyncio
import signal

import pytest

from batchpay import aio


class _Costly:
    """A result whose repr must never be made (it stands for a run's whole report)."""

    made = 0

    def __repr__(self) -> str:
        _Costly.made += 1  # asyncio formats it with reprlib, which swallows any error
        return "<costly>"


def test_the_result_is_returned_and_never_formatted() -> None:
    async def work() -> _Costly:
        await asyncio.sleep(0)
        return _Costly()

    _Costly.made = 0
    assert isinstance(asyncio.run(work()), _Costly)
    assert _Costly.made >= 1  # what this guards against: asyncio.run formats the result
    _Costly.made = 0
    assert isinstance(aio.run(work()), _Costly)
    assert _Costly.made == 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_exception_propagates() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        aio.run(fails())
