"""Where library errors become one line, a hint and a documented exit code.

``--debug`` shows the traceback instead. SIGTERM (a service manager, a container stop,
``kill``) is handled like Ctrl-C: the command unwinds — every ``finally`` runs, the run lock
is released — and exits 143. Only the CLI installs that handler; the library never touches
signals.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click

from batchpay.errors import BatchpayError, ExitCode, ValidationFailed

F = TypeVar("F", bound=Callable[..., Any])

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_OUTPUT_CLOSED = 141  # 128 + SIGPIPE: what a reader that went away (`| head`) leaves

MAX_ISSUES_SHOWN = 50
# Set by batchpay.cli.program: the command line is this process's whole life.
AS_PROGRAM = False


def _err(text: str) -> None:
    click.echo(text, err=True)


@contextmanager
def _sigterm_like_ctrl_c() -> Iterator[list[int]]:
    """While the command runs, SIGTERM does what Ctrl-C does; yields the signals received.

    Inside ``asyncio.run`` Ctrl-C cancels the main task (so its ``finally`` blocks and
    ``async with`` exits run) and then raises KeyboardInterrupt; handing SIGTERM to the
    current SIGINT handler gives a terminated run exactly the same unwinding.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # signal handlers can only be installed from the main thread
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        received.append(signum)
        on_sigint = signal.getsignal(signal.SIGINT)
        if callable(on_sigint):
            on_sigint(signal.SIGINT, frame)
        else:  # SIGINT ignored (nohup, a background job): still unwind
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def handle_errors(fn: F) -> F:
    """Turn library errors into a message, a hint and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = bool(ctx.find_root().params.get("debug"))
        with _sigterm_like_ctrl_c() as signals:
            try:
                return fn(*args, **kwargs)
            except ValidationFailed as exc:
                _print_issues(exc)
                _err(f"error: {exc.message}")
                if exc.hint:
                    _err(f"hint: {exc.hint}")
                ctx.exit(int(exc.exit_code))
            except BatchpayError as exc:
                if debug:
                    raise
                if exc.exit_code == ExitCode.OK:  # nothing to do: said, not an error
                    click.echo(f"nothing to do: {exc.message}")
                    ctx.exit(0)
                _err(f"error: {exc.message}")
                if exc.hint:
                    _err(f"hint: {exc.hint}")
                ctx.exit(int(exc.exit_code))
            except (click.exceptions.Exit, click.ClickException, click.Abort):
                raise
            except BrokenPipeError:
                # the output's reader went away (`batchpay validate f | head`): nothing more
                # can be said there; the rest of the output goes nowhere, quietly
                _quiet_stdout()
                ctx.exit(EXIT_OUTPUT_CLOSED)
            except KeyboardInterrupt:
                if signals:
                    _err(
                        "terminated (SIGTERM): stopped cleanly; run the same command again "
                        "to finish; nothing is sent twice"
                    )
                    ctx.exit(EXIT_TERMINATED)
                _err("interrupted: run the same command again to finish; nothing is sent twice")
                ctx.exit(EXIT_INTERRUPTED)
            except Exception as exc:  # the last line of defence: never a raw traceback
                if debug:
                    raise
                _err(f"internal error: {type(exc).__name__}: {exc}")
                _err("hint: this is a bug in batchpay; run again with --debug and report it")
                ctx.exit(int(ExitCode.INTERNAL))

    return wrapper  # type: ignore[return-value]


def exits_at_once(fn: F) -> F:
    """For a command that keeps nothing open once done (``validate``; ``run``, whose journal
    is closed and report synced before it ends): run as its own process, once
    it has said everything (standard streams and log handlers flushed) the process ends there,
    without tearing the interpreter down — some 80 ms of finalising polars, pandera and the
    rest. Anywhere else (``main`` called by code, as tests and embedders do; threads still at
    work) it returns or raises as usual."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
        except click.exceptions.Exit as exc:
            if not _own_process():
                raise
            _flush_and_exit(exc.exit_code)
        if not _own_process():
            return result
        _flush_and_exit(0)

    return wrapper  # type: ignore[return-value]


def _own_process() -> bool:
    """Whether the command runs as the process itself (the ``batchpay`` program, not code
    calling :func:`batchpay.cli.main`), on its real standard streams, from the main thread,
    with no other thread still running."""
    if not AS_PROGRAM:
        return False
    try:
        os.fstat(sys.stdout.fileno())
        os.fstat(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return False
    return threading.current_thread() is threading.main_thread() and threading.active_count() == 1


def _flush_and_exit(code: int) -> NoReturn:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        code = code or EXIT_OUTPUT_CLOSED
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def _quiet_stdout() -> None:
    """Point standard output at /dev/null, so the interpreter's last flush raises nothing."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _print_issues(exc: ValidationFailed) -> None:
    for issue in exc.issues[:MAX_ISSUES_SHOWN]:
        _err(f"  {issue}")
    if len(exc.issues) > MAX_ISSUES_SHOWN:
        _err(f"  … and {len(exc.issues) - MAX_ISSUES_SHOWN} more (see `batchpay validate`)")
