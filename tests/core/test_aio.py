"""``batchpay.aio.run``: asyncio.run on uvloop where installed, the result kept off its task."""

from __future__ import annotations

import asyncio
import signal

import pytest

from batchpay import aio
from batchpay.errors import ConfigError, ExitCode


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


def _loop_type() -> str:
    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    return aio.run(which())


def test_commands_run_on_uvloop_where_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    monkeypatch.delenv(aio.EVENT_LOOP_ENV, raising=False)
    assert _loop_type() == "uvloop"
    monkeypatch.setenv(aio.EVENT_LOOP_ENV, "asyncio")
    assert _loop_type() == "asyncio"
    monkeypatch.setenv(aio.EVENT_LOOP_ENV, " UVLOOP ")
    assert _loop_type() == "uvloop"


def test_an_unknown_event_loop_is_a_config_error_and_nothing_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran = []

    async def work() -> None:
        ran.append(1)

    monkeypatch.setenv(aio.EVENT_LOOP_ENV, "trio")
    with pytest.raises(ConfigError, match="BATCHPAY_EVENT_LOOP='trio'") as caught:
        aio.run(work())
    assert caught.value.exit_code == ExitCode.CONFIG
    assert "uvloop or asyncio" in (caught.value.hint or "")
    assert ran == []


def test_uvloop_asked_for_but_missing_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    monkeypatch.setenv(aio.EVENT_LOOP_ENV, "uvloop")
    with pytest.raises(ConfigError, match="not installed"):
        aio.loop_factory()
    monkeypatch.delenv(aio.EVENT_LOOP_ENV)
    assert aio.loop_factory() is None  # auto: asyncio's own loop
