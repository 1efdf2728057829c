"""``batchpay sandbox serve``: parse options, build a Sandbox, serve it. Nothing else."""

from __future__ import annotations

import click

from .config import DEFAULT_API_KEY, RATE_LIMIT_TIERS, FaultSettings, SandboxConfig


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
    rate_limit: str,
    rate_tier: str,
    step_seconds: float,
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
    config = SandboxConfig(
        state_path=state_path,
        api_keys=api_keys or (DEFAULT_API_KEY,),
        rate_limit_per_minute=per_minute,
        rate_limit_multiplier=int(rate_tier),
        step_seconds=step_seconds,
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
    click.echo(
        f"batchpay sandbox: http://{host}:{port}/v1  key: {config.api_keys[0]}  "
        f"state: {state_path or 'memory'}  (this is a simulator; no money moves)",
        err=True,
    )
    serve(sandbox, host=host, port=port, log_level=log_level)
