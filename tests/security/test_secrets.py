"""The API key: from the environment or a file, never the command line; masked; header only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from batchpay import pipeline
from batchpay.cli import main
from batchpay.client import AntonClient, ApiKey
from batchpay.config import Secret, resolve_settings
from batchpay.sandbox import Sandbox, SandboxConfig
from batchpay.testing import payout_row, write_csv
from tests.hostile.spy import clean_env, invoke, no_traceback, spy_on_requests

from .canary import CANARY_IBAN, CANARY_KEY
from .conftest import sandbox_settings

SECRET_WORDS = re.compile(r"key|secret|token|password|credential", re.IGNORECASE)
# An option naming a file that holds a secret passes a path, never the secret itself
# (`watch --key-file`, like ssh -i).
SECRET_FILE = re.compile(r"[-_]file$", re.IGNORECASE)


def _commands(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # the lazily loaded commands (sandbox) included
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        yield prefix + name, cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, prefix + name + " ")


def test_no_command_takes_a_secret_on_the_command_line() -> None:
    """No option of any batchpay command (the sandbox server's own keys aside) holds a secret."""
    offending = [
        f"{name} {opt}"
        for name, cmd in _commands(main)
        if not name.startswith("sandbox")  # the simulator is told which test keys to accept
        for param in cmd.params
        for opt in (*param.opts, param.name or "")
        if SECRET_WORDS.search(opt) and not SECRET_FILE.search(opt)
    ]
    assert offending == []


def test_a_key_given_as_an_option_is_refused_and_not_echoed(tmp_path: Path) -> None:
    """`--api-key …` is a usage error (exit 2) whose message does not repeat the key."""
    f = write_csv(tmp_path / "pay.csv", [payout_row(0)])
    done = invoke(tmp_path, ["run", str(f), "--api-key", CANARY_KEY])
    assert done.exit_code == 2
    assert "--api-key" in done.stderr and CANARY_KEY not in done.output
    assert done.requests.requests == []


def test_every_representation_of_the_key_is_masked(tmp_path: Path) -> None:
    """repr, str and f-strings of Secret, ApiKey, Settings and the client show only the tail."""
    settings = resolve_settings(env={"BATCHPAY_API_KEY": CANARY_KEY, "BATCHPAY_HOME": "h"})
    client = AntonClient(settings.api_url, ApiKey(settings.api_key.reveal()))
    shown = [
        repr(settings.api_key), str(settings.api_key), f"{settings.api_key}",
        repr(settings), str(settings), repr(ApiKey(CANARY_KEY)), str(ApiKey(CANARY_KEY)),
        repr(client), settings.banner(),
    ]  # fmt: skip
    for text in shown:
        assert CANARY_KEY not in text and "CANARYKEY" not in text, text
    assert "6789" in repr(settings.api_key)  # enough to tell two keys apart
    assert settings.api_key.reveal() == CANARY_KEY


def test_the_key_file_is_read_and_trimmed(tmp_path: Path) -> None:
    """BATCHPAY_API_KEY_FILE: the file's key (its newline dropped) is the key used."""
    secret = tmp_path / "key"
    secret.write_text(f"{CANARY_KEY}\n")
    settings = resolve_settings(env={"BATCHPAY_API_KEY_FILE": str(secret)})
    assert settings.api_key == Secret(CANARY_KEY)


@pytest.mark.anyio
async def test_the_key_travels_only_in_the_authorization_header(tmp_path: Path) -> None:
    """A whole run: each request carries the key as its bearer token and nowhere else."""
    sandbox = Sandbox(
        SandboxConfig(api_keys=(CANARY_KEY,), manual_clock=True, rate_limit_per_minute=None)
    )
    f = write_csv(tmp_path / "pay.csv", [payout_row(0, iban=CANARY_IBAN), payout_row(1)])
    try:
        with spy_on_requests() as spy:
            result = await pipeline.run_async(
                f,
                settings=sandbox_settings(tmp_path, CANARY_KEY),
                options=pipeline.RunOptions(out_dir=tmp_path / "reports"),
                transport=sandbox.transport(),
            )
    finally:
        await sandbox.aclose()
    assert result.exit_code == 0
    assert {"POST /v1/beneficiaries", "POST /v1/payouts"} <= set(spy.writes)
    for request in spy.requests:
        assert request.headers["authorization"] == f"Bearer {CANARY_KEY}"
        elsewhere = [v for k, v in request.headers.items() if k.lower() != "authorization"]
        assert not any(CANARY_KEY in v for v in elsewhere)
        assert CANARY_KEY not in str(request.url)
        assert CANARY_KEY.encode() not in request.content


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BATCHPAY_API_KEY": CANARY_KEY, "BATCHPAY_API_KEY_FILE": "k"}, "both BATCHPAY_API_KEY"),
        ({"BATCHPAY_API_KEY_FILE": "/nonexistent/key"}, "cannot read the API key file"),
        ({"BATCHPAY_API_KEY_FILE": "{empty}"}, "the API key file is empty"),
        ({"BATCHPAY_API_KEY": "CANARYKEY0123456789"}, "is not an Anton key"),
        ({"BATCHPAY_API_KEY": "sk_live_CANARYKEY0123456789"}, "is not an Anton key"),
        ({"BATCHPAY_API_URL": "https://api.antonpayments.dev"}, "no API key"),
    ],
    ids=["both", "missing-file", "empty-file", "no-prefix", "other-vendor", "url-without-key"],
)
def test_bad_credentials_exit_6_before_any_request(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    """Credential mistakes are configuration errors: exit 6, nothing sent, the key never shown."""
    empty = tmp_path / "empty-key"
    empty.write_text("\n")
    env = {k: v.replace("{empty}", str(empty)) for k, v in env.items()}
    f = write_csv(tmp_path / "pay.csv", [payout_row(0)])
    done = invoke(tmp_path, ["run", str(f)], clean_env(tmp_path, **env))
    assert done.exit_code == 6, done.output
    assert message in done.stderr and "hint: " in done.stderr
    assert "CANARYKEY" not in done.output and no_traceback(done.output)
    assert done.requests.requests == []
