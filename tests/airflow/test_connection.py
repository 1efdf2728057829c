"""The Airflow connection supplies batchpay's settings: read by real Airflow, never echoed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from batchpay.airflow.hooks import BatchpayHook
from batchpay.config import ConfigError, Secret, read_api_key
from batchpay.environments import Mode
from batchpay.journal.target import PostgresURL
from batchpay.testing import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_DPOP_KEY_FILE

KEY = "ak_test_fromairflow12345678"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [k for k in os.environ if k.startswith("BATCHPAY_")]:
        if name != "BATCHPAY_REQUIRE_AIRFLOW":
            monkeypatch.delenv(name)
    monkeypatch.setenv("BATCHPAY_HOME", str(tmp_path / "home"))


def _conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "batchpay",
                                                                      **fields}))  # fmt: skip


def test_key_url_and_journal_from_the_connection(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """host is the API URL, password the key, extra journal the journal; nothing else needed."""
    journal = tmp_path / "shared" / "journal.db"
    _conn(monkeypatch, "batchpay_default", host="http://127.0.0.1:8765", password=KEY,
          extra={"journal": str(journal), "mode": "sandbox"})  # fmt: skip
    settings = BatchpayHook().get_settings()
    assert settings.api_key == Secret(KEY)
    assert settings.api_url == "http://127.0.0.1:8765" and settings.mode is Mode.SANDBOX
    assert settings.journal_path == journal
    assert KEY not in repr(settings)


def test_a_postgresql_journal_from_the_connection_keeps_its_password_out_of_sight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """extra journal ``postgresql://…`` is a PostgreSQL journal (not a path), its password in
    the URL or in extra ``journal_password``; neither shows in the settings' repr or str."""
    url = "postgresql://batchpay:url-secret-41@db.internal:5433/batchpay"
    _conn(monkeypatch, "batchpay_default", host="http://127.0.0.1:8765", password=KEY,
          extra={"journal": url, "mode": "sandbox"})  # fmt: skip
    journal = BatchpayHook().get_settings().journal_path
    assert isinstance(journal, PostgresURL) and journal.reveal() == url
    assert "url-secret-41" not in repr(journal) + str(journal)

    _conn(monkeypatch, "batchpay_default", host="http://127.0.0.1:8765", password=KEY,
          extra={"journal": "postgresql://batchpay@db.internal/batchpay",
                 "journal_password": "extra-secret-42"})  # fmt: skip
    settings = BatchpayHook().get_settings()
    assert isinstance(settings.journal_path, PostgresURL)
    assert settings.journal_path.password == "extra-secret-42"
    assert "extra-secret-42" not in repr(settings) + str(settings.journal_path)


def test_oauth_client_from_the_connection_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    """An OAuth client with its DPoP key file comes from the extras (no password)."""
    _conn(monkeypatch, "anton", host="127.0.0.1", port=8080,
          extra={"client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET,
                 "dpop_key_file": str(SANDBOX_DPOP_KEY_FILE)})  # fmt: skip
    settings = BatchpayHook("anton").get_settings()
    assert settings.oauth is not None and settings.oauth.client_id == SANDBOX_CLIENT_ID
    assert settings.api_url == "http://127.0.0.1:8080" and settings.api_key is None


def test_a_connection_that_says_live_must_point_at_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """mode=live on a sandbox URL is refused before anything is sent."""
    _conn(monkeypatch, "batchpay_default", host="http://127.0.0.1:8765", password=KEY,
          extra={"mode": "live"})  # fmt: skip
    with pytest.raises(ConfigError, match="says live"):
        BatchpayHook().get_settings()


def test_missing_connection_is_a_clear_error() -> None:
    """No such connection: a ConfigError naming it (exit 6), not Airflow's traceback."""
    with pytest.raises(ConfigError, match="no usable connection 'nope'"):
        BatchpayHook("nope").get_settings()


def test_key_from_the_connection_named_by_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """BATCHPAY_AIRFLOW_CONN_ID (the CLI inside Airflow) reads the password through Airflow."""
    _conn(monkeypatch, "anton_default", password=KEY)
    _conn(monkeypatch, "empty", host="x")
    assert read_api_key({"BATCHPAY_AIRFLOW_CONN_ID": "anton_default"}) == Secret(KEY)
    with pytest.raises(ConfigError, match="has no password"):
        read_api_key({"BATCHPAY_AIRFLOW_CONN_ID": "empty"})
    with pytest.raises(ConfigError, match="both") as info:
        read_api_key({"BATCHPAY_AIRFLOW_CONN_ID": "anton_default", "BATCHPAY_API_KEY": KEY})
    assert KEY not in str(info.value) + info.value.hint


def test_airflow_lists_batchpay_as_a_provider() -> None:
    """The entry point makes Airflow's provider manager list batchpay and its hook."""
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    assert "batchpay" in ProvidersManager().providers
    hook = ProvidersManagerTaskRuntime().hooks["batchpay"]
    assert hook is not None and hook.hook_class_name == "batchpay.airflow.hooks.BatchpayHook"
