"""The ``batchpay`` command: parses, calls the library, turns errors into exit codes.

Nothing here decides anything about payments; every verb is a library function.
Errors become one line, a hint and a documented exit code (``--debug`` shows the
traceback). SIGTERM (a service manager, a container stop, ``kill``) is handled like Ctrl-C:
the command unwinds — every ``finally`` runs, the run lock is released — and exits 143.
Only the CLI installs that handler; the library never touches signals.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import click

from batchpay.errors import BatchpayError, ExitCode, ValidationFailed

F = TypeVar("F", bound=Callable[..., Any])

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM

MAX_ISSUES_SHOWN = 50


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


def _print_issues(exc: ValidationFailed) -> None:
    for issue in exc.issues[:MAX_ISSUES_SHOWN]:
        _err(f"  {issue}")
    if len(exc.issues) > MAX_ISSUES_SHOWN:
        _err(f"  … and {len(exc.issues) - MAX_ISSUES_SHOWN} more (see `batchpay validate`)")


def _parse_totals(values: tuple[str, ...]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for v in values:
        cur, _, amount = v.partition("=")
        try:
            totals[cur.strip().upper()] = Decimal(amount.strip())
        except InvalidOperation:
            raise click.BadParameter(f"{v!r} is not CURRENCY=AMOUNT (e.g. EUR=12500.00)") from None
    return totals


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="warning", show_default=True, envvar="BATCHPAY_LOG_LEVEL",
              help="Log events at this level and above to standard error.")  # fmt: skip
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, envvar="BATCHPAY_LOG_FORMAT",
              help="Log lines as text, or one JSON object per line.")  # fmt: skip
@click.version_option(package_name="batchpay")
def main(debug: bool, log_level: str, log_format: str) -> None:
    """Pay many people from a spreadsheet, exactly once, through the Anton Payments API.

    With no BATCHPAY_API_KEY set, batchpay uses its embedded sandbox: no money moves.
    """
    from batchpay import logs

    logs.configure(level=log_level, fmt=log_format)


_common_run_options = [
    click.option("--layout", "layout_path", type=click.Path(path_type=Path, dir_okay=False),
                 callback=lambda _ctx, _param, value: _find_layout(value),
                 help="Layout file merged over the built-in layout (default: $BATCHPAY_LAYOUT, "
                 "else batchpay.toml or schemas/layout.toml in the working folder)."),
    click.option("--journal", "journal_path", type=click.Path(path_type=Path, dir_okay=False),
                 help="Journal database (default: $BATCHPAY_JOURNAL, else journal.db in "
                 "$BATCHPAY_HOME or the user's data folder)."),
    click.option("--api-url", help="API base URL (default: $BATCHPAY_API_URL, else the "
                 "embedded sandbox when no key is set)."),
]  # fmt: skip


def _find_layout(value: Path | None) -> Path | None:
    from batchpay.config import find_layout

    return find_layout(value)


def common_options(fn: F) -> F:
    """Options shared by the commands that read a file or the journal."""
    for opt in reversed(_common_run_options):
        fn = opt(fn)
    return fn


_duplicate_options = [
    click.option("--allow-repeats/--refuse-repeats", default=None,
                 help="Pay a row repeated exactly in the file once (the copies are reported "
                 "duplicate_in_file) instead of refusing the file. Default: the layout's "
                 "[duplicates] allow_repeats, else refuse."),
    click.option("--reference-per-payee/--reference-per-file", default=None,
                 help="References are unique per payee only (supplier invoice numbers): pay one "
                 "reference to several payees instead of refusing the file. Default: the "
                 "layout's [duplicates] reference_per_payee, else refuse."),
]  # fmt: skip


def duplicate_options(fn: F) -> F:
    """Which duplicates inside the file are accepted, shared by `run` and `validate`."""
    for opt in reversed(_duplicate_options):
        fn = opt(fn)
    return fn


def number_options(fn: F) -> F:
    """How the file writes amounts, shared by `run` and `validate`."""
    return click.option(
        "--decimal-comma",
        is_flag=True,
        help="Amounts are written 1.234,50 or 1 234,50 (a decimal comma, dots or spaces "
        'between thousands), as decimal_separator = "," under [file] in the layout.',
    )(fn)


def _settings(api_url: str | None, journal_path: Path | None, confirm_live: bool = False) -> Any:
    from batchpay.config import resolve_settings

    return resolve_settings(api_url=api_url, journal_path=journal_path, confirm_live=confirm_live)


@main.command()
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@common_options
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Pay the valid rows even if some are invalid (rows refused as duplicates are not paid).",
)
@duplicate_options
@click.option(
    "--allow-new-bank-details",
    is_flag=True,
    help="Pay known beneficiaries whose bank details changed (held by default).",
)
@click.option("--wait", is_flag=True, help="Follow the payouts to a final status before exiting.")
@click.option(
    "--wait-timeout",
    type=float,
    default=600.0,
    show_default=True,
    help="Seconds to follow payouts with --wait.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("reports"),
    show_default=True,
    help="Where reports are written.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Payouts in flight at once (always under the rate limit).",
)
@click.option("--expect-rows", type=int, help="Declared row count; a mismatch refuses the file.")
@click.option(
    "--expect-total",
    multiple=True,
    metavar="CUR=AMOUNT",
    help="Declared total per currency, e.g. EUR=12500.00 (repeatable).",
)
@click.option(
    "--skip-balance-check", is_flag=True, help="Submit even if the balance looks too low."
)
@click.option("--confirm-live", is_flag=True, help="Required to move real money with a live key.")
@number_options
@handle_errors
def run(
    file: Path,
    layout_path: Path | None,
    journal_path: Path | None,
    api_url: str | None,
    skip_invalid: bool,
    allow_repeats: bool | None,
    reference_per_payee: bool | None,
    allow_new_bank_details: bool,
    wait: bool,
    wait_timeout: float,
    out_dir: Path,
    concurrency: int,
    expect_rows: int | None,
    expect_total: tuple[str, ...],
    skip_balance_check: bool,
    confirm_live: bool,
    decimal_comma: bool,
) -> None:
    """Validate FILE, pay every row exactly once, and write the reconciliation report."""
    from batchpay import pipeline
    from batchpay.config import Mode
    from batchpay.errors import ConfigError

    settings = _settings(api_url, journal_path, confirm_live)
    banner = settings.banner()
    _err(("=" * len(banner)) + "\n" + banner + "\n" + ("=" * len(banner)))
    if settings.mode is Mode.LIVE and not settings.confirm_live:
        raise ConfigError(
            "a live run moves real money and needs an explicit confirmation",
            hint="pass --confirm-live (or set BATCHPAY_CONFIRM_LIVE=1) after checking the file",
        )
    options = pipeline.RunOptions(
        skip_invalid=skip_invalid,
        allow_repeats=allow_repeats,
        reference_per_payee=reference_per_payee,
        allow_new_bank_details=allow_new_bank_details,
        wait=wait,
        wait_timeout=wait_timeout,
        concurrency=concurrency,
        out_dir=out_dir,
        layout_path=layout_path,
        decimal_comma=decimal_comma,
        expected_rows=expect_rows,
        expected_totals=_parse_totals(expect_total),
        skip_balance_check=skip_balance_check,
    )
    bar: Any = None

    def progress(stage: str, done: int, total: int) -> None:
        nonlocal bar
        if stage == "ledger":
            # The provider's payout list, read before anything is sent (long only the
            # first time a journal meets a provider with history).
            finished = total > 0
            if done >= 1000 and (finished or done % 1000 == 0):
                what = "checked" if finished else "checked so far"
                _err(f"reading the provider's ledger: {done} payouts {what}")
            return
        if bar is None and total > 0:
            bar = click.progressbar(length=total, label="paying", file=sys.stderr)
            bar.__enter__()
        if bar is not None:
            bar.update(done - bar.pos)

    try:
        result = pipeline.run(file, settings=settings, options=options, on_progress=progress)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    from batchpay import report as report_mod

    if result.resumed:
        _err(f"resumed unfinished run {result.run_id}")
    for line in report_mod.summary_lines(result.report, result.paths):
        click.echo(line)
    sys.exit(int(result.exit_code))


@main.command()
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@common_options
@duplicate_options
@number_options
@handle_errors
def validate(file: Path, layout_path: Path | None, journal_path: Path | None,
             api_url: str | None, allow_repeats: bool | None,
             reference_per_payee: bool | None, decimal_comma: bool) -> None:  # fmt: skip
    """Run every check on FILE and print the plan; nothing is sent."""
    from batchpay import pipeline

    settings = _settings(api_url, journal_path)
    options = pipeline.RunOptions(
        layout_path=layout_path,
        decimal_comma=decimal_comma,
        allow_repeats=allow_repeats,
        reference_per_payee=reference_per_payee,
    )
    p = pipeline.plan(file, settings=settings, options=options)
    click.echo(f"{p.file_name}: {p.rows} rows, {p.valid_rows} valid, {p.rows_to_pay} to pay")
    click.echo(f"sha256 {p.sha256}")
    if p.rows_to_pay < p.rows:
        click.echo(f"  totals and counts below are of the {p.rows_to_pay} row(s) to pay")
    for cur, total in sorted(p.totals.items()):
        click.echo(f"  total {cur} {total}")
    click.echo(f"  beneficiaries: {p.new_beneficiaries} new, {p.known_beneficiaries} known")
    for method, n in sorted(p.by_method.items()):
        click.echo(f"  {method}: {n} rows")
    for d in p.duplicates_in_file:
        click.echo(f"  row {d.row}: {d.message}; paid once (duplicate_in_file)")
    if p.already_paid:
        click.echo(f"  {p.already_paid} row(s) already paid by earlier runs (will be skipped)")
    if p.earlier_run:
        click.echo(f"  this file (or a copy) was already run as {p.earlier_run}")
    if p.issues:
        raise ValidationFailed(p.issues, rows_checked=p.rows)
    click.echo("ok: the file is valid; nothing was sent")


@main.command()
@click.argument("run_id", required=False)
@click.option("--journal", "journal_path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("reports"), show_default=True)  # fmt: skip
@handle_errors
def report(run_id: str | None, journal_path: Path | None, out_dir: Path) -> None:
    """Regenerate the report of RUN_ID (default: the latest run) from the journal."""
    from batchpay import pipeline
    from batchpay import report as report_mod

    settings = _settings(None, journal_path)
    rep, paths = pipeline.report_for(run_id, settings=settings, out_dir=out_dir)
    for line in report_mod.summary_lines(rep, paths):
        click.echo(line)


@main.command()
@click.option("--journal", "journal_path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--limit", type=int, default=20, show_default=True)
@handle_errors
def runs(journal_path: Path | None, limit: int) -> None:
    """List recent runs and their state."""
    from batchpay import pipeline

    items = pipeline.runs(settings=_settings(None, journal_path), limit=limit)
    if not items:
        click.echo("no runs yet")
    for r in items:
        click.echo(
            f"{r['run_id']}  {r['status']:<9} {r['mode']:<17} {r['rows']:>6} rows  {r['file']}"
        )


@main.command()
@click.argument("run_id", required=False)
@click.option("--journal", "journal_path", type=click.Path(path_type=Path, dir_okay=False))
@handle_errors
def show(run_id: str | None, journal_path: Path | None) -> None:
    """Show one run (default: the latest): its file, state, outcomes and totals."""
    from batchpay import manage as runs_mod
    from batchpay import report as report_mod

    s = runs_mod.show(run_id, settings=_settings(None, journal_path))
    click.echo(f"run {s.run_id}  ({s.status}, {s.mode} at {s.api_url})")
    click.echo(f"file {s.file_name}, created {s.created_at[:19].replace('T', ' ')} UTC")
    if s.parent_run_id:
        click.echo(f"retry of {s.parent_run_id}")
    for child in s.children:
        click.echo(f"retried as {child}")
    for line in report_mod.summary_lines(s.report):
        click.echo(line)
    attention = [r for r in s.report.rows if r.needs_attention]
    for r in attention[:MAX_ISSUES_SHOWN]:
        why = r.error_message or r.note
        click.echo(f"  row {r.row} {r.reference}: {r.outcome}" + (f" ({why})" if why else ""))


@main.command()
@click.argument("run_id", required=False)
@click.option("--journal", "journal_path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--api-url", help="API base URL, as for `run`.")
@click.option(
    "--timeout", type=float, default=600.0, show_default=True, help="Seconds to keep following."
)
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("reports"), show_default=True)  # fmt: skip
@handle_errors
def track(run_id: str | None, journal_path: Path | None, api_url: str | None, timeout: float,
          out_dir: Path) -> None:  # fmt: skip
    """Follow RUN_ID's payouts (default: the latest run) to a final status; rewrite its report."""
    from batchpay import manage as runs_mod
    from batchpay import report as report_mod

    settings = _settings(api_url, journal_path)
    _err(settings.banner())
    rep, paths = runs_mod.run_sync(
        runs_mod.track_async(run_id, settings=settings, timeout=timeout, out_dir=out_dir)
    )
    for line in report_mod.summary_lines(rep, paths):
        click.echo(line)
    pending = sum(1 for r in rep.rows if r.outcome in ("pending", "unknown"))
    if pending:
        _err(f"{pending} payout(s) still not final; run `batchpay track` again later")
        sys.exit(int(ExitCode.INCOMPLETE))


@main.command()
@click.argument("run_id")
@click.option("--journal", "journal_path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--api-url", help="API base URL, as for `run`.")
@click.option("--reason", default="cancelled with batchpay cancel", show_default=True)
@handle_errors
def cancel(run_id: str, journal_path: Path | None, api_url: str | None, reason: str) -> None:
    """Cancel RUN_ID's payouts that can still be cancelled, and report the rest."""
    from batchpay import manage as runs_mod

    settings = _settings(api_url, journal_path)
    _err(settings.banner())
    result = runs_mod.run_sync(runs_mod.cancel_async(run_id, settings=settings, reason=reason))
    click.echo(f"cancelled {len(result.cancelled)} payout(s)")
    for pid, why in sorted(result.not_cancellable.items()):
        click.echo(f"  {pid}: not cancelled ({why})")
    for pid, why in sorted(result.failed.items()):
        click.echo(f"  {pid}: cancel failed ({why})")
    if result.failed:
        sys.exit(int(ExitCode.ROWS_FAILED))


@main.command("retry-failed")
@click.argument("run_id")
@click.option("--journal", "journal_path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--api-url", help="API base URL, as for `run`.")
@click.option("--yes", is_flag=True, help="Confirm without the interactive question.")
@click.option("--confirm-live", is_flag=True, help="Required to move real money with a live key.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("reports"), show_default=True)  # fmt: skip
@handle_errors
def retry_failed(run_id: str, journal_path: Path | None, api_url: str | None, yes: bool,
                 confirm_live: bool, out_dir: Path) -> None:  # fmt: skip
    """Pay RUN_ID's failed or returned rows again, as a new run linked to it."""
    from batchpay import manage as runs_mod
    from batchpay import report as report_mod

    settings = _settings(api_url, journal_path, confirm_live)
    _err(settings.banner())
    plan = runs_mod.retry_plan(run_id, settings=settings)
    totals = ", ".join(f"{c} {a}" for c, a in sorted(plan.totals.items())) or "nothing"
    click.echo(f"{len(plan.rows)} failed or returned row(s) of {plan.run_id}: {totals}")
    for r in plan.rows:
        click.echo(f"  row {r['row_number']} {r['reference']}: {r['payout_status']}")
    if plan.rows and not yes:
        yes = click.confirm("Pay these rows again?", default=False)
    new_run, rep, paths = runs_mod.run_sync(
        runs_mod.retry_failed_async(run_id, confirm=yes, settings=settings, out_dir=out_dir)
    )
    click.echo(f"retried as {new_run}")
    for line in report_mod.summary_lines(rep, paths):
        click.echo(line)


@main.command()
@click.argument("source")
@common_options
@click.option(
    "--once",
    is_flag=True,
    help="Take what is complete now, answer it, and exit (for cron and Airflow).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds between passes without --once.",
)
@click.option(
    "--settle",
    type=click.FloatRange(min=0.0),
    default=None,
    metavar="SECONDS",
    help="Also take a file without a NAME.ok marker once its size and modification "
    "time have not changed for SECONDS. Default: a marker is required.",
)
@click.option(
    "--worker",
    default=None,
    help="This watcher's name for its claims in processing/ (default: the host "
    "name). A restarted watcher finishes the claims of its name.",
)
@click.option(
    "--key-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="SFTP private key (default: $BATCHPAY_SFTP_KEY_FILE).",
)
@click.option(
    "--known-hosts",
    type=click.Path(path_type=Path, dir_okay=False),
    help="known_hosts file the SFTP server's key is checked against (default: "
    "$BATCHPAY_SFTP_KNOWN_HOSTS, else ~/.ssh/known_hosts).",
)
@click.option(
    "--skip-invalid", is_flag=True, help="Pay the valid rows of a file with invalid ones."
)
@duplicate_options
@click.option(
    "--allow-new-bank-details",
    is_flag=True,
    help="Pay known beneficiaries whose bank details changed (held by default).",
)
@click.option("--wait", is_flag=True, help="Follow each file's payouts to a final status.")
@click.option("--wait-timeout", type=float, default=600.0, show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Local copy of each run's report (default: reports/ in $BATCHPAY_HOME).",
)
@click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option(
    "--skip-balance-check", is_flag=True, help="Submit even if the balance looks too low."
)
@click.option("--confirm-live", is_flag=True, help="Required to move real money with a live key.")
@handle_errors
def watch(source: str, layout_path: Path | None, journal_path: Path | None, api_url: str | None,
          once: bool, interval: float, settle: float | None, worker: str | None,
          key_file: Path | None, known_hosts: Path | None, skip_invalid: bool,
          allow_repeats: bool | None, reference_per_payee: bool | None,
          allow_new_bank_details: bool, wait: bool, wait_timeout: float, out_dir: Path | None,
          concurrency: int, skip_balance_check: bool, confirm_live: bool) -> None:  # fmt: skip
    """Pay the files dropped into SOURCE (a folder or sftp://user@host[:port]/path).

    A file is taken when NAME.ok sits beside it (or, with --settle, once it stops
    changing); it is claimed into SOURCE/processing/, paid exactly once, and answered in
    SOURCE/processed/DATE/ or SOURCE/failed/DATE/ with NAME.result.json and its report.
    With --once the exit code is the most urgent of the files' (0: nothing to do).
    """
    import asyncio

    from batchpay import pipeline
    from batchpay import watch as watch_mod
    from batchpay.config import read_sftp_auth

    settings = _settings(api_url, journal_path, confirm_live)
    _err(settings.banner())
    auth = None
    if source.startswith("sftp://"):
        auth = read_sftp_auth(key_file=key_file, known_hosts=known_hosts)
    options = watch_mod.WatchOptions(
        run=pipeline.RunOptions(
            skip_invalid=skip_invalid, allow_repeats=allow_repeats,
            reference_per_payee=reference_per_payee,
            allow_new_bank_details=allow_new_bank_details, wait=wait,
            wait_timeout=wait_timeout, concurrency=concurrency, out_dir=out_dir,
            layout_path=layout_path, skip_balance_check=skip_balance_check,
        ),
        settle=settle, interval=interval,
        **({"worker": worker} if worker else {}),
    )  # fmt: skip

    def show(answer: watch_mod.FileAnswer) -> None:
        where = f" -> {answer.answer}" if answer.answer else ""
        click.echo(f"{answer.outcome.value} {answer.name}{where} (exit {answer.exit_code}): "
                   f"{answer.message}")  # fmt: skip
        if answer.hint and answer.exit_code:
            click.echo(f"  hint: {answer.hint}")

    async def main_loop() -> int:
        folder = watch_mod.open_folder(source, sftp_auth=auth)
        try:
            watcher = watch_mod.Watcher(folder, settings, options, on_answer=show)
            _err(f"watching {folder.display} as worker {watcher.worker}")
            if once:
                return (await watcher.run_pass(settle_wait=True)).exit_code
            await watcher.watch()
            return 0
        finally:
            await folder.aclose()

    sys.exit(asyncio.run(main_loop()))


@main.group("layout")
def layout_group() -> None:
    """The input layout: the built-in one with the user's layout file merged over it."""


@layout_group.command("show")
@click.option("--layout", "layout_path", type=click.Path(path_type=Path, dir_okay=False),
              callback=lambda _ctx, _param, value: _find_layout(value),
              help="Layout file merged over the built-in layout (default: $BATCHPAY_LAYOUT, "
              "else batchpay.toml or schemas/layout.toml in the working folder).")  # fmt: skip
@handle_errors
def layout_show(layout_path: Path | None) -> None:
    """Print the effective layout as TOML, each setting with where it came from."""
    from batchpay.layout import layout_toml, load_layout

    click.echo(layout_toml(load_layout(layout_path)), nl=False)


@main.group("webhooks")
def webhooks_group() -> None:
    """Receive Anton's payout webhooks: subscribe a URL, run the receiver.

    The receiver records each verified payout status in the journal, so runs learn
    their payouts' final statuses without polling.
    """


@webhooks_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8081,
    show_default=True,
    help="Port to listen on.",
)
@click.option(
    "--path",
    "url_path",
    default="/webhooks/anton",
    show_default=True,
    help="URL path the provider posts deliveries to.",
)
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Journal database (default: $BATCHPAY_JOURNAL, else journal.db in $BATCHPAY_HOME "
    "or the user's data folder).",
)
@handle_errors
def webhooks_serve(host: str, port: int, url_path: str, journal_path: Path | None) -> None:
    """Run the webhook receiver until interrupted.

    Each delivery's signature is checked against BATCHPAY_WEBHOOK_SECRET (comma-separate
    two secrets during a rotation) and recorded in the journal before it is acknowledged.
    """
    import uvicorn

    from batchpay import webhooks
    from batchpay.config import read_webhook_secrets
    from batchpay.journal import Journal

    secrets = read_webhook_secrets()
    settings = _settings(None, journal_path)
    Journal(settings.journal_path).close()  # an unusable journal fails now, not per delivery
    app = webhooks.create_receiver(settings.journal_path, secrets, path=url_path)
    _err(
        f"batchpay webhooks: listening on http://{host}:{port}{url_path} "
        f"(journal {settings.journal_path}, {len(secrets)} signing secret(s))"
    )
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)


@webhooks_group.command("subscribe")
@click.argument("url")
@click.option(
    "--events",
    multiple=True,
    default=("payout.*",),
    show_default=True,
    help="Event type to receive (repeatable); payout.* means every payout event.",
)
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Journal database, where the API calls are recorded.",
)
@click.option("--api-url", help="API base URL, as for `run`.")
@handle_errors
def webhooks_subscribe(url: str, events: tuple[str, ...], journal_path: Path | None,
                       api_url: str | None) -> None:  # fmt: skip
    """Subscribe URL to Anton's events and print its signing secret, once."""
    from batchpay import webhooks
    from batchpay.manage import run_sync

    settings = _settings(api_url, journal_path)
    _err(settings.banner())
    sub = run_sync(webhooks.subscribe(url, events, settings=settings))
    _err(f"subscribed {sub.url} as {sub.id}: {', '.join(sub.events)}")
    _err(
        "the signing secret below is shown only this once: store it now, and set it as "
        "BATCHPAY_WEBHOOK_SECRET where `batchpay webhooks serve` runs"
    )
    click.echo(f"BATCHPAY_WEBHOOK_SECRET={sub.secret.reveal()}")


def _register_sandbox() -> None:
    try:
        from batchpay.sandbox.cli import sandbox_group
    except ImportError:  # pragma: no cover - the sandbox ships with batchpay
        return
    main.add_command(sandbox_group)


_register_sandbox()


if __name__ == "__main__":  # pragma: no cover
    main()
