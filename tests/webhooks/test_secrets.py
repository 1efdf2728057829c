"""read_webhook_secrets: where the receiver's signing secrets come from."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchpay.config import Secret, read_webhook_secrets
from batchpay.errors import ConfigError, ExitCode

from .helpers import NEW_SECRET, SECRET


def test_one_secret_from_the_environment() -> None:
    """BATCHPAY_WEBHOOK_SECRET holding one whsec_ secret gives that secret, masked in repr."""
    secrets = read_webhook_secrets({"BATCHPAY_WEBHOOK_SECRET": f" {SECRET}\n"})
    assert secrets == [Secret(SECRET)]
    assert SECRET not in repr(secrets)


def test_two_secrets_during_a_rotation() -> None:
    """Comma-separated secrets are all kept, in order, without repeats."""
    value = f"{NEW_SECRET}, {SECRET},{NEW_SECRET}"
    assert read_webhook_secrets({"BATCHPAY_WEBHOOK_SECRET": value}) == [
        Secret(NEW_SECRET),
        Secret(SECRET),
    ]


def test_secrets_from_a_file(tmp_path: Path) -> None:
    """BATCHPAY_WEBHOOK_SECRET_FILE may hold one secret per line (a secret mount)."""
    f = tmp_path / "whsec"
    f.write_text(f"{SECRET}\n{NEW_SECRET}\n", encoding="utf-8")
    secrets = read_webhook_secrets({"BATCHPAY_WEBHOOK_SECRET_FILE": str(f)})
    assert secrets == [Secret(SECRET), Secret(NEW_SECRET)]


def test_missing_secret_is_a_config_error_with_a_hint() -> None:
    """With nothing configured the receiver refuses to start, saying what to set."""
    with pytest.raises(ConfigError) as info:
        read_webhook_secrets({})
    assert info.value.exit_code == ExitCode.CONFIG
    assert "BATCHPAY_WEBHOOK_SECRET" in info.value.hint


def test_both_sources_set_is_refused(tmp_path: Path) -> None:
    """Setting the secret and a secret file at once is ambiguous and refused."""
    env = {"BATCHPAY_WEBHOOK_SECRET": SECRET, "BATCHPAY_WEBHOOK_SECRET_FILE": str(tmp_path)}
    with pytest.raises(ConfigError, match="both"):
        read_webhook_secrets(env)


def test_unreadable_or_empty_file_is_refused(tmp_path: Path) -> None:
    """A missing file and an empty file are both configuration errors."""
    with pytest.raises(ConfigError, match="cannot read"):
        read_webhook_secrets({"BATCHPAY_WEBHOOK_SECRET_FILE": str(tmp_path / "nope")})
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="webhook secret file is empty"):
        read_webhook_secrets({"BATCHPAY_WEBHOOK_SECRET_FILE": str(empty)})


@pytest.mark.parametrize(
    "value", ["ak_test_batchpay_sandbox", "whsec_123", "whsec_" + "z" * 64, SECRET + "0"]
)
def test_malformed_secret_is_refused_without_echoing_it(value: str) -> None:
    """Something that is not whsec_ + 64 hex (an API key pasted by mistake) is refused."""
    with pytest.raises(ConfigError) as info:
        read_webhook_secrets({"BATCHPAY_WEBHOOK_SECRET": f"{SECRET},{value}"})
    assert "#2" in info.value.message
    assert value not in f"{info.value.message} {info.value.hint}"
