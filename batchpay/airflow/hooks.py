"""The Airflow connection behind batchpay: :class:`BatchpayHook` (conn type ``batchpay``).

The connection (default id ``batchpay_default``) holds what the environment would otherwise:

============  ===================================================================
host          the API base URL (``https://api.antonpayments.dev``, ``http://127.0.0.1:8080``);
              a bare host name gets ``https://`` (``http://`` for a loopback host) and the port
password      the API key (``ak_test_…`` / ``ak_live_…``), if the API key is the credential
extra         ``client_id``, ``client_secret``, ``dpop_key_file`` (an OAuth client with DPoP,
              instead of the key); ``journal`` (the journal: a SQLite path or
              ``postgresql://…``, exactly as ``BATCHPAY_JOURNAL``, its password in the URL or
              in ``journal_password`` (``BATCHPAY_JOURNAL_PASSWORD``), never logged); ``home``
              (``BATCHPAY_HOME``); ``mode`` (``sandbox`` or ``live``: ``live`` is the
              confirmation a live run needs, and either must agree with the URL)
============  ===================================================================
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from batchpay.config import Settings, settings_over_environment
from batchpay.environments import Mode
from batchpay.errors import ConfigError

__all__ = ["BatchpayHook", "connection_overrides", "settings_for"]

_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def connection_overrides(
    host: str | None, port: int | None, password: str | None, extra: dict[str, Any]
) -> dict[str, str]:
    """The ``BATCHPAY_*`` settings an Airflow connection's fields stand for."""
    url = (host or "").strip()
    if url and "://" not in url:
        scheme = str(extra.get("scheme") or ("http" if url in _LOOPBACK else "https"))
        url = f"{scheme}://{url}"
    if url and port:
        url = f"{url.rstrip('/')}:{port}"
    mode = str(extra.get("mode") or "").strip().lower()
    if mode not in ("", "sandbox", "live"):
        raise ConfigError(
            f"the connection's extra mode is {mode!r}",
            hint='set "mode" to "sandbox" or "live" (or leave it out)',
        )
    return {
        "BATCHPAY_API_URL": url,
        "BATCHPAY_API_KEY": (password or "").strip(),
        "BATCHPAY_CLIENT_ID": str(extra.get("client_id") or ""),
        "BATCHPAY_CLIENT_SECRET": str(extra.get("client_secret") or ""),
        "BATCHPAY_DPOP_KEY_FILE": str(extra.get("dpop_key_file") or ""),
        "BATCHPAY_JOURNAL": str(extra.get("journal") or ""),
        "BATCHPAY_JOURNAL_PASSWORD": str(extra.get("journal_password") or ""),
        "BATCHPAY_HOME": str(extra.get("home") or ""),
        "BATCHPAY_CONFIRM_LIVE": "1" if mode == "live" else "",
        "_mode": mode,
    }


class BatchpayHook(BaseHook):
    """batchpay's settings from an Airflow connection (conn type ``batchpay``)."""

    conn_name_attr = "batchpay_conn_id"
    default_conn_name = "batchpay_default"
    conn_type = "batchpay"
    hook_name = "batchpay (Anton Payments)"

    def __init__(self, batchpay_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.batchpay_conn_id = batchpay_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """How Airflow's connection form shows the fields (labels and placeholders)."""
        return {
            "hidden_fields": ["schema", "login"],
            "relabeling": {"host": "API base URL", "password": "API key"},
            "placeholders": {
                "host": "https://api.antonpayments.dev",
                "password": "ak_test_… (leave empty with an OAuth client)",
                "extra": '{"client_id": "ant_oc_test_…", "client_secret": "ant_ocs_test_…", '
                '"dpop_key_file": "/etc/batchpay/dpop.pem", '
                '"journal": "postgresql://batchpay@db/batchpay", "mode": "sandbox"}',
            },
        }

    def get_settings(self) -> Settings:
        """The settings the connection describes (credentials checked as for the CLI)."""
        try:
            conn = self.get_connection(self.batchpay_conn_id)
        except Exception as exc:  # Airflow's AirflowNotFoundException
            raise _no_connection(self.batchpay_conn_id, exc) from None
        return settings_for(self.batchpay_conn_id, conn)

    async def aget_settings(self) -> Settings:
        """:meth:`get_settings` for a trigger (Airflow's async connection look-up)."""
        try:
            conn = await self.aget_connection(self.batchpay_conn_id)
        except Exception as exc:
            raise _no_connection(self.batchpay_conn_id, exc) from None
        return settings_for(self.batchpay_conn_id, conn)


def _no_connection(conn_id: str, exc: Exception) -> ConfigError:
    return ConfigError(
        f"Airflow has no usable connection {conn_id!r} ({type(exc).__name__})",
        hint="create it (Admin → Connections, type batchpay) with the API URL as host "
        "and the API key as password",
    )


def settings_for(conn_id: str, conn: Any) -> Settings:
    """The settings an Airflow ``Connection`` describes (see the module's docstring)."""
    overrides = connection_overrides(conn.host, conn.port, conn.password, conn.extra_dejson)
    mode = overrides.pop("_mode")
    settings = settings_over_environment(overrides)
    if mode == "live" and settings.mode is not Mode.LIVE:
        raise ConfigError(
            f"the connection {conn_id!r} says live but its URL {settings.api_url} is not "
            "the production API",
            hint="fix the host, or set mode to sandbox",
        )
    if mode == "sandbox" and settings.mode is Mode.LIVE:
        raise ConfigError(
            f"the connection {conn_id!r} says sandbox but points at the production API",
            hint='set mode to "live" to confirm live runs',
        )
    return settings
