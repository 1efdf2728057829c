"""The API key from an Airflow connection: read through Airflow's own hook, never echoed."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchpay.config import Secret, read_api_key
from batchpay.errors import ConfigError

KEY = "ak_test_fromairflow12345678"

# A stand-in for the Airflow package: the same import path and BaseHook.get_connection
# contract (a Connection whose .password holds the secret). Airflow itself is not installed
# in this environment; the integration test against real Airflow belongs to the Airflow task.
FAKE_AIRFLOW = """
class _Conn:
    def __init__(self, password):
        self.password = password

class BaseHook:
    connections = {"anton_default": _Conn("KEY"), "empty": _Conn("")}

    @classmethod
    def get_connection(cls, conn_id):
        if conn_id not in cls.connections:
            raise LookupError(f"The conn_id `{conn_id}` isn't defined")
        return cls.connections[conn_id]
""".replace("KEY", KEY)


@pytest.fixture
def airflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Put a minimal `airflow.hooks.base` on the import path (and forget it afterwards)."""
    pkg = tmp_path / "airflow" / "hooks"
    pkg.mkdir(parents=True)
    (tmp_path / "airflow" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text(FAKE_AIRFLOW)
    monkeypatch.syspath_prepend(str(tmp_path))
    _forget_airflow()
    yield
    _forget_airflow()


def _forget_airflow() -> None:
    for name in [m for m in sys.modules if m == "airflow" or m.startswith("airflow.")]:
        del sys.modules[name]


def test_key_read_from_the_named_connection(airflow: None) -> None:
    """BATCHPAY_AIRFLOW_CONN_ID names the connection whose password is the key."""
    assert read_api_key({"BATCHPAY_AIRFLOW_CONN_ID": "anton_default"}) == Secret(KEY)


def test_unknown_or_empty_connection_is_a_clear_error(airflow: None) -> None:
    """A missing connection or an empty password is a ConfigError naming the connection."""
    with pytest.raises(ConfigError, match="no usable connection 'nope'"):
        read_api_key({"BATCHPAY_AIRFLOW_CONN_ID": "nope"})
    with pytest.raises(ConfigError, match="has no password"):
        read_api_key({"BATCHPAY_AIRFLOW_CONN_ID": "empty"})


def test_key_in_two_places_is_refused(airflow: None) -> None:
    """An environment key and an Airflow connection together are ambiguous."""
    with pytest.raises(ConfigError, match="both") as info:
        read_api_key({"BATCHPAY_AIRFLOW_CONN_ID": "anton_default", "BATCHPAY_API_KEY": KEY})
    assert KEY not in str(info.value) + info.value.hint


def test_without_airflow_installed_the_error_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside Airflow, naming a connection is refused with a hint, not an ImportError."""
    _forget_airflow()
    monkeypatch.setitem(sys.modules, "airflow", None)
    with pytest.raises(ConfigError, match="Airflow is not installed"):
        read_api_key({"BATCHPAY_AIRFLOW_CONN_ID": "anton_default"})
