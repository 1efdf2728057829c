"""Without Airflow installed: batchpay stays light and says what is missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from batchpay.config import ConfigError, read_api_key


def test_without_airflow_installed_the_error_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside Airflow, naming a connection is refused with a hint, not an ImportError."""
    for name in [m for m in sys.modules if m == "airflow" or m.startswith("airflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "airflow", None)
    with pytest.raises(ConfigError, match="Airflow is not installed"):
        read_api_key({"BATCHPAY_AIRFLOW_CONN_ID": "anton_default"})


def test_importing_batchpay_and_its_provider_info_imports_no_airflow() -> None:
    """``import batchpay`` and Airflow's provider entry point load no Airflow module."""
    code = (
        "import sys, batchpay, batchpay.airflow\n"
        "info = batchpay.airflow.get_provider_info()\n"
        "assert info['package-name'] == 'batchpay', info\n"
        "loaded = [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
