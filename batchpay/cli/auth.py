"""`auth keygen` and `auth check`: OAuth client credentials with DPoP."""

from __future__ import annotations

from pathlib import Path

import click

from batchpay.cli.group import _settings, main
from batchpay.cli.handling import _err, handle_errors


@main.group("auth")
def auth_group() -> None:
    """OAuth client credentials with DPoP: make a key, check a credential.

    The credential itself comes from the environment only: BATCHPAY_CLIENT_ID,
    BATCHPAY_CLIENT_SECRET (or BATCHPAY_CLIENT_SECRET_FILE) and BATCHPAY_DPOP_KEY_FILE, or
    an API key (BATCHPAY_API_KEY) where the deployment still accepts one.
    """


@auth_group.command("keygen")
@click.argument("path", metavar="KEYFILE", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--alg", type=click.Choice(["ES256", "Ed25519"]), default="ES256",
              show_default=True, help="Signing algorithm of the new key.")  # fmt: skip
@handle_errors
def auth_keygen(path: Path, alg: str) -> None:
    """Write a new DPoP keypair: the private key to KEYFILE (0600), the public JWK to
    KEYFILE.pub.jwk; print the public JWK to register in the merchant portal."""
    import json

    from batchpay import auth

    public = auth.keygen(path, "Ed25519" if alg == "Ed25519" else "ES256")
    _err(f"private key written to {path} (readable by you only); keep it secret and set "
         f"BATCHPAY_DPOP_KEY_FILE={path}")  # fmt: skip
    _err(f"public key written to {path}.pub.jwk; register this JWK for your OAuth client:")
    click.echo(json.dumps(public, indent=2))


@auth_group.command("check")
@click.option("--api-url", help="API base URL, as for `run`.")
@handle_errors
def auth_check(api_url: str | None) -> None:
    """Mint a token and make one harmless call (GET /v1/balances); say what was found."""
    from batchpay import auth
    from batchpay.manage import run_sync

    settings = _settings(api_url, None)
    _err(settings.banner())
    found = run_sync(auth.check(settings))
    click.echo(f"environment: {found.environment}")
    click.echo(f"credential:  {found.credential}")
    click.echo(f"merchant:    {found.merchant_id or '(the API did not say)'}")
    if found.token_expires_at is not None:
        expires = found.token_expires_at.isoformat(timespec="seconds").replace("+00:00", "Z")
        click.echo(f"token:       valid until {expires} (provider clock)")
    else:
        click.echo("token:       none (API keys do not expire)")
