"""``batchpay sandbox serve``: parse options, build a Sandbox, serve it. Nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .config import (
    AUTH_MODES,
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    RATE_LIMIT_TIERS,
    FaultSettings,
    SandboxConfig,
)
from .oauth import dpop_key_path


@click.group("sandbox")
def sandbox_group() -> None:
    """Run the local simulator of the Anton Payments API."""


@sandbox_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="SQLite file that keeps state across restarts (default: memory only).",
)
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    help=f"Accepted ak_test_ key; repeatable (default: {DEFAULT_API_KEY}).",
)
@click.option(
    "--auth",
    type=click.Choice(AUTH_MODES),
    default="both",
    show_default=True,
    help="Credentials accepted on /v1: ak_test_ API keys, OAuth client credentials with "
    "DPoP (static keys refused, as the newest API does), or both.",
)
@click.option(
    "--oauth-client",
    "oauth_clients",
    multiple=True,
    metavar="CLIENT_ID:CLIENT_SECRET",
    help=f"OAuth client that may mint tokens; repeatable (default: the test client "
    f"{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}).",
)
@click.option(
    "--dpop-jwk",
    "dpop_jwk_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="File with the public JWK registered for those clients (default: the public half "
    "of the test key shipped with batchpay, printed at start).",
)
@click.option(
    "--rate-limit",
    default="1000",
    show_default=True,
    help="Requests per minute per merchant, or 'off'.",
)
@click.option(
    "--rate-tier",
    type=click.Choice([str(t) for t in RATE_LIMIT_TIERS]),
    default="1",
    show_default=True,
    help="Tier multiplier applied to --rate-limit.",
)
@click.option(
    "--step-seconds",
    type=float,
    default=1.0,
    show_default=True,
    help="Sandbox seconds between automatic payout transitions.",
)
@click.option(
    "--batch-rows-per-step",
    type=click.IntRange(1),
    default=500,
    show_default=True,
    help="Rows a confirmed batch turns into payouts per step.",
)
@click.option(
    "--batch-confirm-seconds",
    type=float,
    default=3600.0,
    show_default=True,
    help="How long a validated batch may be confirmed (sandbox seconds).",
)
@click.option(
    "--manual-clock", is_flag=True, help="Clock moves only via POST /_sandbox/clock/advance."
)
@click.option("--fault-5xx", type=float, default=0.0, help="Share of requests answered 5xx.")
@click.option("--fault-429", type=float, default=0.0, help="Share of requests answered 429.")
@click.option(
    "--fault-lost", type=float, default=0.0, help="Share of responses dropped after commit."
)
@click.option(
    "--fault-timeout", type=float, default=0.0, help="Share of responses withheld after commit."
)
@click.option(
    "--timeout-seconds",
    type=float,
    default=30.0,
    show_default=True,
    help="How long a timeout fault withholds the answer.",
)
@click.option("--latency-ms", type=int, default=0, help="Added latency on every request.")
@click.option("--seed", type=int, default=None, help="Seed for the fault dice.")
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
    help="uvicorn log level.",
)
def serve_command(
    host: str,
    port: int,
    state_path: str | None,
    api_keys: tuple[str, ...],
    auth: str,
    oauth_clients: tuple[str, ...],
    dpop_jwk_path: Path | None,
    rate_limit: str,
    rate_tier: str,
    step_seconds: float,
    batch_rows_per_step: int,
    batch_confirm_seconds: float,
    manual_clock: bool,
    fault_5xx: float,
    fault_429: float,
    fault_lost: float,
    fault_timeout: float,
    timeout_seconds: float,
    latency_ms: int,
    seed: int | None,
    log_level: str,
) -> None:
    """Serve the sandbox API on HOST:PORT until interrupted."""
    from .sandbox import Sandbox
    from .server import serve

    if rate_limit.lower() in ("off", "none", "0"):
        per_minute: int | None = None
    else:
        try:
            per_minute = int(rate_limit)
        except ValueError:
            raise click.BadParameter("a whole number or 'off'", param_hint="--rate-limit") from None
    clients = tuple(_client(value) for value in oauth_clients) or (
        (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    )
    config = SandboxConfig(
        state_path=state_path,
        api_keys=api_keys or (DEFAULT_API_KEY,),
        auth=auth,
        oauth_clients=clients,
        dpop_jwk=_jwk(dpop_jwk_path) if dpop_jwk_path else None,
        rate_limit_per_minute=per_minute,
        rate_limit_multiplier=int(rate_tier),
        step_seconds=step_seconds,
        batch_rows_per_step=batch_rows_per_step,
        batch_confirm_ttl_seconds=batch_confirm_seconds,
        manual_clock=manual_clock,
        faults=FaultSettings(
            rate_5xx=fault_5xx,
            rate_429=fault_429,
            rate_lost=fault_lost,
            rate_timeout=fault_timeout,
            latency_ms=latency_ms,
            timeout_seconds=timeout_seconds,
            seed=seed,
        ),
    )
    try:
        sandbox = Sandbox(config)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    keys = f"key: {config.api_keys[0]}  " if auth != "oauth" else "API keys refused  "
    click.echo(
        f"batchpay sandbox: http://{host}:{port}/v1  {keys}"
        f"state: {state_path or 'memory'}  (this is a simulator; no money moves)",
        err=True,
    )
    if auth != "keys":
        key = str(dpop_jwk_path) if dpop_jwk_path else f"{dpop_key_path()} (the test key)"
        click.echo(
            f"  OAuth: token URL http://{host}:{port}/oauth/token  client: {clients[0][0]}  "
            f"secret: {clients[0][1]}  DPoP key: {key}",
            err=True,
        )
    serve(sandbox, host=host, port=port, log_level=log_level)


def _client(value: str) -> tuple[str, str]:
    client_id, sep, secret = value.partition(":")
    if (
        not sep
        or not client_id.startswith("ant_oc_test_")
        or not secret.startswith("ant_ocs_test_")
    ):
        raise click.BadParameter(
            "expected ant_oc_test_…:ant_ocs_test_… (the sandbox accepts test clients only)",
            param_hint="--oauth-client",
        )
    return client_id, secret


def _jwk(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        raise click.BadParameter("not a readable JSON file", param_hint="--dpop-jwk") from None
    if isinstance(data, dict) and isinstance(data.get("keys"), list) and data["keys"]:
        data = data["keys"][0]  # a JWK Set: its first key
    if not isinstance(data, dict) or "kty" not in data:
        raise click.BadParameter("not a JWK", param_hint="--dpop-jwk")
    return {k: data[k] for k in ("kty", "crv", "x", "y") if k in data}  # the public half
