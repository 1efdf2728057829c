"""OAuth clients obey the same environment rules as API keys, and their files are checked.

A test client (``ant_oc_test_``) only against sandboxes, a live one only against production,
a live run confirmed; a missing, unreadable or unusable secret or key file is a clear refusal
(exit 6) before any request. Nothing here reaches the network (see ``offline``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from batchpay.auth import DPoPKey
from batchpay.config import PRODUCTION_URL, SANDBOX_URL, Mode, credentials_for
from batchpay.errors import ConfigError, ExitCode
from batchpay.testing import (
    SANDBOX_DPOP_KEY_FILE,
    fake_live_client,
    payout_row,
    sandbox_oauth_settings,
    write_csv,
)
from tests.hostile.spy import CliRun, clean_env, invoke, no_traceback

from .test_environments import LIVE_KEY, _nothing_sent, offline

TEST_ID, TEST_SECRET = "ant_oc_test_ENVCHECK0123456789", "ant_ocs_test_ENVCHECK0123456789"
LIVE_ID, LIVE_SECRET = fake_live_client("ENVCHECK")


def _client_env(home: Path, client_id: str, secret: str, **extra: str) -> dict[str, str | None]:
    key = home / "dpop.pem"
    if not key.exists():
        key.write_bytes(DPoPKey.generate().pem())
    return clean_env(home, BATCHPAY_CLIENT_ID=client_id, BATCHPAY_CLIENT_SECRET=secret,
                     BATCHPAY_DPOP_KEY_FILE=str(key), **extra)  # fmt: skip


def _run(home: Path, env: dict[str, str | None], *args: str) -> CliRun:
    f = write_csv(home / "pay.csv", [payout_row(0)])
    with offline() as tried:
        done = invoke(home, ["run", str(f), *args], env)
    assert tried == [] or done.exit_code != ExitCode.CONFIG
    return done


@pytest.mark.parametrize(
    ("client", "url", "message"),
    [
        ((TEST_ID, TEST_SECRET), PRODUCTION_URL,
         "a test OAuth client (ant_oc_test_…) cannot be used against the production API"),
        ((LIVE_ID, LIVE_SECRET), SANDBOX_URL,
         "a live OAuth client (ant_oc_live_…) cannot be used against a sandbox URL"),
        ((LIVE_ID, LIVE_SECRET), "http://127.0.0.1:8080", "a live OAuth client"),
        ((TEST_ID, TEST_SECRET), "https://payments.example.com", "neither the Anton sandbox"),
        ((TEST_ID, LIVE_SECRET), SANDBOX_URL, "the secret is a live one"),
    ],
    ids=["test-client-production", "live-client-sandbox", "live-client-loopback",
         "unknown-host", "mixed-id-and-secret"],
)  # fmt: skip
def test_a_client_and_url_that_do_not_belong_together_are_refused(
    tmp_path: Path, client: tuple[str, str], url: str, message: str
) -> None:
    """Exit 6 with the reason, before any request; neither secret nor key is shown."""
    with offline() as tried:
        done = _run(tmp_path, _client_env(tmp_path, *client, BATCHPAY_API_URL=url))
    assert done.exit_code == ExitCode.CONFIG, done.output
    assert message in done.stderr and "hint: " in done.stderr and no_traceback(done.output)
    assert client[1] not in done.output
    _nothing_sent(done, tried)


@pytest.mark.parametrize(
    "command",
    [["validate", "pay.csv"], ["track"], ["cancel", "run_x"], ["retry-failed", "run_x", "--yes"],
     ["webhooks", "subscribe", "https://hooks.example.com/anton"], ["report"], ["runs"],
     ["auth", "check"]],
    ids=lambda c: "-".join(c[:2]) if c[0] in ("webhooks", "auth") else c[0],
)  # fmt: skip
def test_every_command_refuses_a_test_client_for_production(
    tmp_path: Path, command: list[str]
) -> None:
    """Not only `run`: each command checks the client and the URL first (exit 6)."""
    write_csv(tmp_path / "pay.csv", [payout_row(0)])
    env = _client_env(tmp_path, TEST_ID, TEST_SECRET, BATCHPAY_API_URL=PRODUCTION_URL)
    with offline() as tried:
        done = invoke(tmp_path, command, env)
    assert done.exit_code == ExitCode.CONFIG, done.output
    assert "cannot be used against the production API" in done.stderr
    _nothing_sent(done, tried)


def test_a_live_client_run_needs_confirmation(tmp_path: Path) -> None:
    """A live client alone: the LIVE banner, then exit 6 asking for --confirm-live."""
    done = _run(tmp_path, _client_env(tmp_path, LIVE_ID, LIVE_SECRET))
    assert done.exit_code == ExitCode.CONFIG, done.output
    assert f"LIVE at {PRODUCTION_URL}" in done.stderr and "--confirm-live" in done.stderr
    assert done.requests.requests == []


def test_a_confirmed_live_client_run_goes_to_production_for_its_token(tmp_path: Path) -> None:
    """Confirmed, it tries the production token endpoint first (here: unreachable, exit 11)."""
    f = write_csv(tmp_path / "pay.csv", [payout_row(0)])
    env = _client_env(tmp_path, LIVE_ID, LIVE_SECRET)
    with offline() as tried:
        done = invoke(tmp_path, ["run", str(f), "--confirm-live"], env)
    assert done.exit_code == ExitCode.API_ERROR, done.output
    assert tried and tried[0].url == f"{PRODUCTION_URL}/oauth/token"
    assert LIVE_SECRET not in done.output and no_traceback(done.output)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"BATCHPAY_DPOP_KEY_FILE": "missing.pem"}, "cannot read the DPoP key file"),
        ({"BATCHPAY_DPOP_KEY_FILE": "."}, "cannot read the DPoP key file"),
        ({"BATCHPAY_DPOP_KEY_FILE": "empty.pem"}, "the DPoP key file is empty"),
        ({"BATCHPAY_DPOP_KEY_FILE": "public.jwk"}, "holds a public key"),
        ({"BATCHPAY_DPOP_KEY_FILE": "junk.pem"}, "neither a PEM private key nor a JWK"),
        ({"BATCHPAY_CLIENT_SECRET": None, "BATCHPAY_CLIENT_SECRET_FILE": "missing-secret"},
         "cannot read the OAuth client secret file"),
        ({"BATCHPAY_CLIENT_SECRET": None, "BATCHPAY_CLIENT_SECRET_FILE": "empty.pem"},
         "the OAuth client secret file is empty"),
        ({"BATCHPAY_CLIENT_SECRET": None}, "partly configured: BATCHPAY_CLIENT_SECRET"),
        ({"BATCHPAY_DPOP_KEY_FILE": None}, "partly configured: BATCHPAY_DPOP_KEY_FILE"),
        ({"BATCHPAY_API_KEY": "ak_test_ENVCHECK0123456789"}, "both an API key and an OAuth"),
        ({"BATCHPAY_CLIENT_ID": "client-1234567890"}, "not an Anton OAuth client id"),
        ({"BATCHPAY_CLIENT_SECRET": "hunter2hunter2"}, "not an Anton client secret"),
    ],
    ids=["key-missing", "key-is-a-folder", "key-empty", "key-public", "key-junk",
         "secret-file-missing", "secret-file-empty", "no-secret", "no-key", "and-an-api-key",
         "bad-id", "bad-secret"],
)  # fmt: skip
def test_a_missing_or_unusable_secret_or_key_is_a_clear_refusal(
    tmp_path: Path, change: dict[str, str | None], message: str
) -> None:
    """Exit 6, one line and a hint, nothing sent; the secret and key never shown."""
    (tmp_path / "empty.pem").write_text("")
    (tmp_path / "junk.pem").write_text("hello")
    (tmp_path / "public.jwk").write_text('{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}')
    env = _client_env(tmp_path, TEST_ID, TEST_SECRET, BATCHPAY_API_URL=SANDBOX_URL)
    env.update(change)
    with offline() as tried:
        done = _run(tmp_path, env)
    assert done.exit_code == ExitCode.CONFIG, done.output
    assert message in done.stderr and "hint: " in done.stderr and no_traceback(done.output)
    assert TEST_SECRET not in done.output and "BEGIN" not in done.output
    _nothing_sent(done, tried)


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root reads any file")
def test_an_unreadable_key_file_is_refused(tmp_path: Path) -> None:
    """A key file without read permission: exit 6 naming the variable."""
    env = _client_env(tmp_path, TEST_ID, TEST_SECRET)
    (tmp_path / "dpop.pem").chmod(0)
    done = _run(tmp_path, env)
    assert done.exit_code == ExitCode.CONFIG and "BATCHPAY_DPOP_KEY_FILE" in done.stderr


def test_settings_made_by_hand_are_checked_before_any_request(tmp_path: Path) -> None:
    """The library: a test client in LIVE settings is refused by credentials_for itself."""
    from dataclasses import replace

    settings = sandbox_oauth_settings(tmp_path)
    assert credentials_for(settings)  # the sandbox's test client is fine for a sandbox
    for bad in (replace(settings, mode=Mode.LIVE, api_url=PRODUCTION_URL),
                replace(settings, api_url=PRODUCTION_URL)):  # fmt: skip
        with pytest.raises(ConfigError, match="cannot be used against the production API"):
            credentials_for(bad)
    assert SANDBOX_DPOP_KEY_FILE.exists() and LIVE_KEY.startswith("ak_")
