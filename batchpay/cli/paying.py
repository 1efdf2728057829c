"""`run` and `validate`: pay a file, or check it and print the plan."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from batchpay.cli.group import (
    _parse_totals,
    _settings,
    common_options,
    duplicate_options,
    main,
    number_options,
)
from batchpay.cli.handling import MAX_ISSUES_SHOWN, _err, exits_at_once, handle_errors
from batchpay.cli.progress import ProgressLine
from batchpay.errors import ValidationFailed


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
    help="Pay known beneficiaries whose bank details changed (held by default); on a file "
    "already run, pays the rows that run held for it.",
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
    type=click.IntRange(1, 256),
    default=None,
    help="Payouts in flight at once (always under the rate limit; default: sized from the "
    "announced limit and the latency, up to 256).",
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
@click.option(
    "--via",
    type=click.Choice(["rows", "batches"]),
    default="rows",
    show_default=True,
    help="rows: one POST /v1/payouts per row; batches: the provider's batch upload "
    "(one file, validated by the provider, confirmed once).",
)
@click.option(
    "--confirm",
    "confirm_batch",
    is_flag=True,
    help="With --via batches: confirm the provider's validated batch without asking.",
)
@click.option(
    "--new-batch",
    is_flag=True,
    help="With --via batches: upload the rows of an expired batch again, as a new batch.",
)
@number_options
@exits_at_once
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
    concurrency: int | None,
    expect_rows: int | None,
    expect_total: tuple[str, ...],
    skip_balance_check: bool,
    confirm_live: bool,
    via: str,
    confirm_batch: bool,
    new_batch: bool,
    decimal_comma: bool,
    delimiter: str | None,
    encoding: str | None,
    check_total_row: bool | None,
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
        delimiter=delimiter,
        encoding=encoding,
        check_total_row=check_total_row,
        expected_rows=expect_rows,
        expected_totals=_parse_totals(expect_total),
        skip_balance_check=skip_balance_check,
    )
    bar = ProgressLine(sys.stderr)

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "ledger":
            # The provider's payout list, read before anything is sent (long only the
            # first time a journal meets a provider with history).
            finished = total > 0
            if done >= 1000 and (finished or done % 1000 == 0):
                what = "checked" if finished else "checked so far"
                _err(f"reading the provider's ledger: {done} payouts {what}")
            return
        bar(stage, done, total)

    submission: Any = None
    if via == "batches":
        from batchpay.batches import Batches, BatchPlan, describe

        def ask(plan: BatchPlan) -> bool:
            for line in describe(plan):
                _err(line)
            if confirm_batch:
                return True
            if not sys.stdin.isatty():
                return False
            return click.confirm("confirm this batch (irrevocable)?", err=True, default=False)

        submission = Batches(confirm=ask, new_batch=new_batch)
    try:
        result = pipeline.run(
            file, settings=settings, options=options, on_progress=progress, submission=submission
        )
    finally:
        bar.finish()
    from batchpay import report as report_mod

    if result.resumed:
        _err(f"resumed unfinished run {result.run_id}")
    for line in report_mod.summary_lines(result.report, result.paths):
        click.echo(line)
    # The journal is closed and the report written and synced: as its own process, the
    # command may end here (exits_at_once), without freeing every object of the run.
    raise click.exceptions.Exit(int(result.exit_code))


@main.command()
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@common_options
@duplicate_options
@click.option(
    "--allow-new-bank-details",
    is_flag=True,
    help="Plan as `run --allow-new-bank-details` would: changed bank details are not held.",
)
@number_options
@exits_at_once
@handle_errors
def validate(file: Path, layout_path: Path | None, journal_path: Path | None,
             api_url: str | None, allow_repeats: bool | None,
             reference_per_payee: bool | None, allow_new_bank_details: bool,
             decimal_comma: bool, delimiter: str | None, encoding: str | None,
             check_total_row: bool | None) -> None:  # fmt: skip
    """Run every check on FILE and print the plan a run would follow; nothing is sent."""
    from batchpay.layout import for_options
    from batchpay.options import RunOptions
    from batchpay.source import read_ahead

    options = RunOptions(
        layout_path=layout_path,
        decimal_comma=decimal_comma,
        delimiter=delimiter,
        encoding=encoding,
        check_total_row=check_total_row,
        allow_repeats=allow_repeats,
        reference_per_payee=reference_per_payee,
        allow_new_bank_details=allow_new_bank_details,
    )
    # the file is read and hashed while what checks it is imported
    pending = read_ahead(file, for_options(options))
    from batchpay import planning
    from batchpay.report.summary import human_amount

    settings = _settings(api_url, journal_path)
    p = planning.plan(pending.result(), settings=settings, options=options)
    click.echo(f"{p.file_name}: {p.rows} rows, {p.valid_rows} valid, {p.rows_to_pay} to pay")
    click.echo(f"sha256 {p.sha256}")
    for note in p.notes:
        click.echo(f"  {note}")
    if p.rows_to_pay < p.rows:
        click.echo(f"  totals and counts below are of the {p.rows_to_pay} row(s) to pay")
    for cur, total in sorted(p.totals.items()):
        click.echo(f"  total {cur} {human_amount(total, cur)}")
    for estimate in p.debits.values():
        click.echo("  " + estimate.describe())
    click.echo(f"  beneficiaries: {p.new_beneficiaries} new, {p.known_beneficiaries} known")
    for method, n in sorted(p.by_method.items()):
        click.echo(f"  {method}: {n} rows")
    for d in p.duplicates_in_file:
        click.echo(f"  row {d.row}: {d.message}; paid once (duplicate_in_file)")
    if p.already_paid:
        click.echo(f"  {p.already_paid} row(s) already paid by earlier runs (will be skipped)")
    if p.held:
        one = len(p.held) == 1
        click.echo(f"  {len(p.held)} {'row' if one else 'rows'} would be held for a person:")
    for h in p.held[:MAX_ISSUES_SHOWN]:
        click.echo(f"    row {h.row} {h.reference}: {h.code} ({h.message})")
        click.echo(f"      to pay it: {h.release}")
    if p.earlier_run:
        click.echo(f"  this file (or a copy) was already run as {p.earlier_run}")
    if p.issues:
        raise ValidationFailed(p.issues, rows_checked=p.rows)
    click.echo("ok: the file is valid; nothing was sent")
