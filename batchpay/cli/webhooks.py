"""`webhooks serve` and `webhooks subscribe`: receive Anton's payout webhooks."""

from __future__ import annotations

from pathlib import Path

import click

from batchpay.cli.group import JOURNAL, _settings, main
from batchpay.cli.handling import _err, handle_errors


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
    type=JOURNAL,
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
    type=JOURNAL,
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
