"""`watch`: pay the files dropped into a folder or an SFTP directory."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from batchpay.cli.group import _settings, common_options, duplicate_options, main
from batchpay.cli.handling import _err, handle_errors


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
