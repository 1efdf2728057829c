"""Configuration: where credentials come from and which combinations are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchpay.config import (
    PRODUCTION_URL,
    SANDBOX_URL,
    Mode,
    Secret,
    read_api_key,
    resolve_settings,
)
from batchpay.errors import ConfigError, ExitCode
from batchpay.testing import fake_live_key

TEST_KEY = "ak_test_abcdef1234567890"
LIVE_KEY = fake_live_key("abcdef")


def test_no_key_no_url_means_embedded_sandbox(tmp_path: Path) -> None:
    """With nothing configured, batchpay talks to its embedded sandbox and says so."""
    s = resolve_settings(env={"BATCHPAY_HOME": str(tmp_path)})
    assert s.mode is Mode.EMBEDDED
    assert "no money moves" in s.banner()
    assert s.journal_path == tmp_path / "journal.db"


def test_test_key_defaults_to_sandbox_url() -> None:
    """A test key with no URL goes to the public sandbox."""
    s = resolve_settings(env={"BATCHPAY_API_KEY": TEST_KEY})
    assert s.mode is Mode.SANDBOX and s.api_url == SANDBOX_URL


def test_live_key_needs_production_url_and_says_real_money() -> None:
    """A live key defaults to production and the banner says real money moves."""
    s = resolve_settings(env={"BATCHPAY_API_KEY": LIVE_KEY})
    assert s.mode is Mode.LIVE and s.api_url == PRODUCTION_URL
    assert "REAL MONEY" in s.banner()


@pytest.mark.parametrize(
    ("key", "url"),
    [
        (TEST_KEY, PRODUCTION_URL),
        (LIVE_KEY, SANDBOX_URL),
        (LIVE_KEY, "http://127.0.0.1:8080"),
        (TEST_KEY, "https://evil.example.com"),
        (TEST_KEY, "ftp://127.0.0.1"),
    ],
)
def test_mismatched_key_and_url_refused(key: str, url: str) -> None:
    """Test keys only against sandboxes, live keys only against production."""
    with pytest.raises(ConfigError) as info:
        resolve_settings(env={"BATCHPAY_API_KEY": key, "BATCHPAY_API_URL": url})
    assert info.value.exit_code == ExitCode.CONFIG
    assert key not in str(info.value) and key not in info.value.hint


def test_url_without_key_refused() -> None:
    """Pointing at a server without a key is a configuration error, not a silent sandbox."""
    with pytest.raises(ConfigError, match="no API key"):
        resolve_settings(env={"BATCHPAY_API_URL": "http://127.0.0.1:9"})


def test_key_from_file(tmp_path: Path) -> None:
    """BATCHPAY_API_KEY_FILE reads the key from a file (trailing newline ignored)."""
    f = tmp_path / "key"
    f.write_text(TEST_KEY + "\n")
    assert read_api_key({"BATCHPAY_API_KEY_FILE": str(f)}) == Secret(TEST_KEY)


def test_both_key_sources_refused(tmp_path: Path) -> None:
    """Setting the key twice is ambiguous and refused."""
    with pytest.raises(ConfigError):
        read_api_key({"BATCHPAY_API_KEY": TEST_KEY, "BATCHPAY_API_KEY_FILE": "x"})


def test_missing_key_file_is_clear(tmp_path: Path) -> None:
    """An unreadable key file gives a one-line error, not a traceback."""
    with pytest.raises(ConfigError, match="cannot read"):
        read_api_key({"BATCHPAY_API_KEY_FILE": str(tmp_path / "nope")})


def test_secret_repr_is_masked() -> None:
    """The key never appears in repr or str."""
    s = Secret(TEST_KEY)
    assert TEST_KEY not in repr(s) and TEST_KEY not in str(s) and TEST_KEY not in f"{s}"
    assert repr(s).endswith("7890')")


def test_garbage_key_refused() -> None:
    """A value that is not an Anton key is refused before any request."""
    with pytest.raises(ConfigError, match="not an Anton key"):
        resolve_settings(env={"BATCHPAY_API_KEY": "hunter2", "BATCHPAY_API_URL": SANDBOX_URL})
