"""Test keys only against sandboxes, live keys only against production, live runs confirmed.

Every refusal is a configuration error (exit 6) decided before any request; the banner says
which world a run talks to. No test here reaches the network: requests that get past the
checks are stopped by a fake that answers as an unreachable host would.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from batchpay import pipeline
from batchpay.client.transport import AiohttpTransport, Sent
from batchpay.config import PRODUCTION_URL, SANDBOX_URL, Mode, Secret, Settings
from batchpay.errors import ConfigError, ExitCode
from batchpay.sandbox import Sandbox
from batchpay.testing import fake_live_key, payout_row, write_csv
from tests.hostile.spy import CliRun, RequestSpy, clean_env, invoke, no_traceback

TEST_KEY = "ak_test_ENVCHECK0123456789"
LIVE_KEY = fake_live_key("ENVCHECK")


@contextmanager
def offline() -> Iterator[list[httpx.Request]]:
    """Every request that would leave the machine fails to connect instead (recorded)."""
    tried: list[httpx.Request] = []
    # The client's network transport (aiohttp under httpx) and httpx's own, both.
    transports: list[Any] = [AiohttpTransport, httpx.AsyncHTTPTransport]
    sends = [t.handle_async_request for t in transports]

    async def unreachable(self: Any, request: httpx.Request) -> httpx.Response:
        tried.append(request)
        raise httpx.ConnectError("offline in tests", request=request)

    # And the client's own hand-off of an API-key request to aiohttp, past httpx's models.
    raw_send = AiohttpTransport.send

    async def unreachable_raw(self: Any, sent: Sent) -> Any:
        tried.append(httpx.Request(sent.method, sent.url, headers=sent.headers))
        raise httpx.ConnectError("offline in tests")

    for t in transports:
        t.handle_async_request = unreachable
    AiohttpTransport.send = unreachable_raw  # type: ignore[method-assign]
    try:
        yield tried
    finally:
        for t, send in zip(transports, sends, strict=True):
            t.handle_async_request = send
        AiohttpTransport.send = raw_send  # type: ignore[method-assign]


def _run(home: Path, args: list[str], **env: str) -> tuple[CliRun, list[httpx.Request]]:
    f = write_csv(home / "pay.csv", [payout_row(0), payout_row(1)])
    with offline() as tried:
        done = invoke(home, ["run", str(f), *args], clean_env(home, **env))
    return done, tried


def _nothing_sent(done: CliRun, tried: list[httpx.Request]) -> None:
    assert done.requests == RequestSpy() and tried == []


@pytest.mark.parametrize(
    ("key", "url", "message"),
    [
        (TEST_KEY, PRODUCTION_URL, "a test key (ak_test_…) cannot be used against the production"),
        (LIVE_KEY, SANDBOX_URL, "a live key (ak_live_…) cannot be used against a sandbox URL"),
        (LIVE_KEY, "http://127.0.0.1:8080", "a live key (ak_live_…) cannot be used"),
        (LIVE_KEY, "http://localhost:8080", "a live key (ak_live_…) cannot be used"),
        (TEST_KEY, "https://payments.example.com", "neither the Anton sandbox nor production"),
        (TEST_KEY, "http://api.antonpayments.com", "neither the Anton sandbox nor production"),
        (LIVE_KEY, "https://api.antonpayments.com.example.net", "neither the Anton sandbox"),
        (LIVE_KEY, "https://api.antonpayments.com@example.net", "neither the Anton sandbox"),
        (TEST_KEY, "http://127.0.0.1.example.net:8080", "neither the Anton sandbox"),
        (TEST_KEY, "http://localhost.example.net", "neither the Anton sandbox"),
        (TEST_KEY, "ftp://127.0.0.1/", "is not an http(s) URL"),
        (TEST_KEY, "api.antonpayments.dev", "is not an http(s) URL"),
    ],
    ids=[
        "test-key-production", "live-key-sandbox", "live-key-loopback", "live-key-localhost",
        "unknown-host", "production-over-http", "lookalike-suffix", "lookalike-userinfo",
        "loopback-lookalike", "localhost-lookalike", "ftp", "no-scheme",
    ],
)  # fmt: skip
@pytest.mark.parametrize("where", ["option", "environment"])
def test_key_and_url_that_do_not_belong_together_are_refused(
    tmp_path: Path, key: str, url: str, message: str, where: str
) -> None:
    """Exit 6 with the reason, before any request; the key is never shown."""
    if where == "option":
        done, tried = _run(tmp_path, ["--api-url", url], BATCHPAY_API_KEY=key)
    else:
        done, tried = _run(tmp_path, [], BATCHPAY_API_KEY=key, BATCHPAY_API_URL=url)
    assert done.exit_code == ExitCode.CONFIG, done.output
    assert message in done.stderr and "hint: " in done.stderr
    assert key not in done.output and no_traceback(done.output)
    _nothing_sent(done, tried)


@pytest.mark.parametrize(
    "command",
    [["validate", "pay.csv"], ["track"], ["cancel", "run_x"], ["retry-failed", "run_x", "--yes"],
     ["webhooks", "subscribe", "https://hooks.example.com/anton"], ["report"], ["runs"]],
    ids=lambda c: c[0] if c[0] != "webhooks" else "webhooks-subscribe",
)  # fmt: skip
def test_every_command_refuses_a_mismatched_environment(tmp_path: Path, command: list[str]) -> None:
    """Not only `run`: each command checks key and URL together first (exit 6, nothing sent)."""
    write_csv(tmp_path / "pay.csv", [payout_row(0)])
    env = clean_env(tmp_path, BATCHPAY_API_KEY=TEST_KEY, BATCHPAY_API_URL=PRODUCTION_URL)
    with offline() as tried:
        done = invoke(tmp_path, command, env)
    assert done.exit_code == ExitCode.CONFIG, done.output
    assert "cannot be used against the production API" in done.stderr
    _nothing_sent(done, tried)


def test_a_live_run_is_refused_until_confirmed_and_says_live(tmp_path: Path) -> None:
    """A live key alone: the LIVE banner, then exit 6 asking for --confirm-live; nothing sent."""
    done, tried = _run(tmp_path, [], BATCHPAY_API_KEY=LIVE_KEY)
    assert done.exit_code == ExitCode.CONFIG
    assert f"LIVE at {PRODUCTION_URL}: REAL MONEY WILL MOVE." in done.stderr
    assert "needs an explicit confirmation" in done.stderr and "--confirm-live" in done.stderr
    _nothing_sent(done, tried)


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--confirm-live"], {}), ([], {"BATCHPAY_CONFIRM_LIVE": "1"})],
    ids=["flag", "environment"],
)
def test_a_confirmed_live_run_goes_ahead(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    """Confirmed by flag or setting, the run proceeds to production (here: unreachable, exit 11)."""
    done, tried = _run(tmp_path, args, BATCHPAY_API_KEY=LIVE_KEY, **env)
    assert done.exit_code == ExitCode.API_ERROR, done.output
    assert f"LIVE at {PRODUCTION_URL}" in done.stderr and no_traceback(done.output)
    assert tried, "it tried to reach the API"
    assert {str(r.url.copy_with(path="/", query=None)) for r in tried} == {PRODUCTION_URL + "/"}
    assert {r.method for r in tried} == {"GET"}  # the balance check comes before any payout


@pytest.mark.parametrize(
    ("env", "banner"),
    [
        ({}, "SANDBOX (embedded, in-process): no money moves."),
        ({"BATCHPAY_API_KEY": TEST_KEY}, f"SANDBOX at {SANDBOX_URL}: no money moves."),
        (
            {"BATCHPAY_API_KEY": TEST_KEY, "BATCHPAY_API_URL": "http://127.0.0.1:9"},
            "SANDBOX at http://127.0.0.1:9: no money moves.",
        ),
    ],
    ids=["embedded", "sandbox", "local-sandbox"],
)
def test_the_banner_shows_the_mode(tmp_path: Path, env: dict[str, str], banner: str) -> None:
    """Before anything else, stderr says which world the run talks to."""
    with offline():
        done, _ = _run(tmp_path, [], **env)
    assert done.stderr.splitlines()[1].startswith(banner)
    assert "REAL MONEY" not in done.output


def _live_settings(home: Path, *, confirmed: bool) -> Settings:
    return Settings(
        mode=Mode.LIVE,
        api_url=PRODUCTION_URL,
        api_key=Secret(LIVE_KEY),
        home=home / ".batchpay",
        journal_path=home / ".batchpay" / "journal.db",
        confirm_live=confirmed,
    )


@pytest.mark.anyio
async def test_the_library_also_refuses_an_unconfirmed_live_run(tmp_path: Path) -> None:
    """batchpay.run with live settings and no confirmation: ConfigError, no request, no journal."""
    sandbox = Sandbox()
    f = write_csv(tmp_path / "pay.csv", [payout_row(0)])
    try:
        with pytest.raises(ConfigError, match="explicit confirmation") as caught:
            await pipeline.run_async(
                f, settings=_live_settings(tmp_path, confirmed=False), transport=sandbox.transport()
            )
        assert caught.value.exit_code == ExitCode.CONFIG
        assert sandbox.ledger() == []
    finally:
        await sandbox.aclose()
    assert not (tmp_path / ".batchpay").exists()
