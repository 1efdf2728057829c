"""The commands on runs already made: report, runs, show, track, cancel, retry-failed."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from batchpay.cli.group import JOURNAL, _settings, main
from batchpay.cli.handling import MAX_ISSUES_SHOWN, _err, handle_errors
from batchpay.errors import ExitCode


@main.command()
@click.argument("run_id", required=False)
@click.option("--journal", "journal_path", type=JOURNAL)
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
@click.option("--journal", "journal_path", type=JOURNAL)
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
@click.option("--journal", "journal_path", type=JOURNAL)
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
    held = {h.row for h in s.held}
    attention = [r for r in s.report.rows if r.needs_attention and r.row not in held]
    for r in attention[:MAX_ISSUES_SHOWN]:
        why = r.error_message or r.note
        click.echo(f"  row {r.row} {r.reference}: {r.outcome}" + (f" ({why})" if why else ""))
    if s.held:
        one = len(s.held) == 1
        click.echo(f"{len(s.held)} held {'row' if one else 'rows'}, each with what releases it:")
    for h in s.held[:MAX_ISSUES_SHOWN]:
        click.echo(f"  row {h.row} {h.reference}: held, {h.code} ({h.message})")
        click.echo(f"    to pay it: {h.release}")
    if len(s.held) > MAX_ISSUES_SHOWN:
        click.echo(f"  … and {len(s.held) - MAX_ISSUES_SHOWN} more (all in the report)")


@main.command()
@click.argument("run_id", required=False)
@click.option("--journal", "journal_path", type=JOURNAL)
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
@click.option("--journal", "journal_path", type=JOURNAL)
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
@click.option("--journal", "journal_path", type=JOURNAL)
@click.option("--api-url", help="API base URL, as for `run`.")
@click.option("--yes", is_flag=True, help="Confirm without the interactive question.")
@click.option("--confirm-live", is_flag=True, help="Required to move real money with a live key.")
@click.option("--wait", is_flag=True, help="Follow the new payouts to a final status.")
@click.option(
    "--wait-timeout",
    type=float,
    default=600.0,
    show_default=True,
    help="Seconds to follow payouts with --wait.",
)
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("reports"), show_default=True)  # fmt: skip
@handle_errors
def retry_failed(run_id: str, journal_path: Path | None, api_url: str | None, yes: bool,
                 confirm_live: bool, wait: bool, wait_timeout: float,
                 out_dir: Path) -> None:  # fmt: skip
    """Pay RUN_ID's failed or returned rows again, as a new run linked to it."""
    from batchpay import manage as runs_mod
    from batchpay import report as report_mod
    from batchpay.errors import ConfirmationRequired, NothingToDo
    from batchpay.report.from_journal import _exit_code

    settings = _settings(api_url, journal_path, confirm_live)
    _err(settings.banner())
    plan = runs_mod.retry_plan(run_id, settings=settings)
    if not plan.rows:
        raise NothingToDo(f"run {plan.run_id} has no failed or returned rows to pay again")
    totals = ", ".join(f"{c} {a}" for c, a in sorted(plan.totals.items()))
    click.echo(f"{len(plan.rows)} failed or returned row(s) of {plan.run_id}: {totals}")
    for r in plan.rows:
        status = r["payout_status"] or r["error_code"]
        click.echo(f"  row {r['row_number']} {r['reference']}: {status}")
    if not yes:
        if not sys.stdin.isatty():
            raise ConfirmationRequired(
                "retry-failed pays rows again and needs a confirmation; there is no terminal "
                "to ask (standard input is not one); nothing was sent",
                hint=f"check `batchpay show {plan.run_id}`, then pass --yes",
            )
        yes = click.confirm("Pay these rows again?", default=False)
    new_run, rep, paths = runs_mod.run_sync(
        runs_mod.retry_failed_async(
            run_id, confirm=yes, settings=settings, out_dir=out_dir, wait=wait,
            wait_timeout=wait_timeout,
        )
    )  # fmt: skip
    click.echo(f"retried as {new_run}")
    for line in report_mod.summary_lines(rep, paths):
        click.echo(line)
    sys.exit(int(_exit_code(rep, waited=wait)))
