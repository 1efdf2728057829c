"""Configuration: the only place batchpay reads the environment.

Two generations of credentials (never on the command line), one of them at a time:

* an **API key** (``ak_test_…`` / ``ak_live_…``), from ``BATCHPAY_API_KEY``,
  ``BATCHPAY_API_KEY_FILE`` (Docker/Kubernetes secrets) or an Airflow connection;
* an **OAuth client with a DPoP key** (the newest API): ``BATCHPAY_CLIENT_ID``
  (``ant_oc_test_…`` / ``ant_oc_live_…``), ``BATCHPAY_CLIENT_SECRET`` or
  ``BATCHPAY_CLIENT_SECRET_FILE`` (``ant_ocs_…``), and ``BATCHPAY_DPOP_KEY_FILE`` (the
  private key, PEM or JWK; ES256 or Ed25519). See :func:`read_oauth_client`.

Either way test credentials work only against sandbox URLs and live ones only against
production (:func:`resolve_settings`, again in :func:`credentials_for`).

The webhook receiver's signing secrets come from ``BATCHPAY_WEBHOOK_SECRET`` (one
``whsec_…``, or several comma-separated during a rotation) or
``BATCHPAY_WEBHOOK_SECRET_FILE``; see :func:`read_webhook_secrets`.

Where batchpay keeps its state (the journal, the embedded sandbox's state): ``BATCHPAY_HOME``,
else the user's data folder (``platformdirs.user_data_dir("batchpay")``, e.g.
``~/.local/share/batchpay`` on Linux) — never the current folder, so a run started from
another folder still sees the same journal. ``BATCHPAY_JOURNAL`` (or ``--journal``) names the
journal itself: a SQLite file, or a PostgreSQL server as ``postgresql://user@host/db`` (also
read from ``BATCHPAY_JOURNAL_FILE``; its password from the URL, ``BATCHPAY_JOURNAL_PASSWORD``
or ``BATCHPAY_JOURNAL_PASSWORD_FILE``, and never printed); see :func:`resolve_journal`.

With no key and no URL configured, batchpay runs against the embedded sandbox,
in-process, and says so loudly.

The input layout file (merged over the built-in layout): ``--layout FILE``, else
``BATCHPAY_LAYOUT``, else ``batchpay.toml`` or ``schemas/layout.toml`` in the working folder;
see :func:`find_layout`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from batchpay.environments import PRODUCTION_URL as PRODUCTION_URL
from batchpay.environments import SANDBOX_URL as SANDBOX_URL
from batchpay.environments import Mode as Mode
from batchpay.environments import _is_production, canonical_api_url, classify_url
from batchpay.errors import ConfigError
from batchpay.journal.target import JournalTarget, PostgresURL, is_postgres

if TYPE_CHECKING:
    from batchpay.client import Credentials

EMBEDDED_SANDBOX_KEY = "ak_test_batchpay_sandbox"

_KEY_RE = re.compile(r"^ak_(test|live)_[A-Za-z0-9_]{8,}$")
_CLIENT_ID_RE = re.compile(r"^ant_oc_(test|live)_[A-Za-z0-9_]{8,}$")
_CLIENT_SECRET_RE = re.compile(r"^ant_ocs_(test|live)_[A-Za-z0-9_]{8,}$")
_SECRET_PREFIXES = ("ak_", "ant_ocs_", "ant_oc_")
_WEBHOOK_SECRET_RE = re.compile(r"whsec_[0-9a-fA-F]{64}")


class Secret:
    """A credential whose repr never shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself; call only where it is sent (the Authorization header)."""
        return self._value

    @property
    def kind(self) -> str:
        """``test`` or ``live`` from the prefix of an API key or OAuth client secret, else
        ``unknown``."""
        for shape in (_KEY_RE, _CLIENT_SECRET_RE):
            m = shape.match(self._value)
            if m:
                return m.group(1)
        return "unknown"

    def masked(self) -> str:
        """Prefix (``ak_test_``, ``ant_ocs_live_``, …) and last four characters only."""
        v = self._value
        prefix = ""
        for start in _SECRET_PREFIXES:
            if v.startswith(start) and v.count("_") > start.count("_"):
                prefix = v[: v.index("_", len(start)) + 1]
                break
        return f"{prefix}…{v[-4:]}" if len(v) - len(prefix) >= 12 else f"{prefix}…"

    def __repr__(self) -> str:
        return f"Secret({self.masked()!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class OAuthSettings:
    """An OAuth client (id and secret) and its private DPoP key, as configured."""

    client_id: str
    client_secret: Secret
    dpop_key: Secret
    """The key file's text (PEM or JWK); parsed by :func:`credentials_for`."""
    dpop_key_path: Path

    @property
    def kind(self) -> str:
        """``test`` or ``live`` from the client id's prefix, else ``unknown``."""
        m = _CLIENT_ID_RE.match(self.client_id)
        return m.group(1) if m else "unknown"

    def __repr__(self) -> str:
        return (f"OAuthSettings({self.client_id!r}, {self.client_secret!r}, "
                f"dpop_key_path={str(self.dpop_key_path)!r})")  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know about where it talks and where it writes.

    Exactly one credential: ``api_key``, or ``oauth`` (then ``api_key`` is None).
    """

    mode: Mode
    api_url: str
    api_key: Secret | None
    home: Path
    journal_path: JournalTarget  # a SQLite file, or a PostgresURL
    sandbox_state_path: Path | None = None
    confirm_live: bool = False
    http_timeout: float = 30.0
    extra: Mapping[str, str] = field(default_factory=dict)
    # Workers sharing a run on a PostgreSQL journal: how long a row's claim lasts unrenewed.
    worker_lease_seconds: float = 60.0
    oauth: OAuthSettings | None = None

    @property
    def environment(self) -> str:
        """Identity of the provider world, used to scope caches and idempotency keys.

        Made of the mode and the canonical API URL, never of how the URL was typed:
        ``http://LOCALHOST:8080/`` and ``http://127.0.0.1:8080`` are one world, and so are
        ``https://API.antonpayments.com`` and ``https://api.antonpayments.com:443``.
        """
        if self.mode is Mode.EMBEDDED:
            return f"embedded:{self.sandbox_state_path}"
        return f"{self.mode.value}:{canonical_api_url(self.api_url)}"

    def banner(self) -> str:
        """One line saying loudly which world this run talks to."""
        if self.mode is Mode.EMBEDDED:
            return (
                "SANDBOX (embedded, in-process): no money moves. Set BATCHPAY_API_KEY to go live."
            )
        if self.mode is Mode.SANDBOX:
            return f"SANDBOX at {self.api_url}: no money moves."
        return f"LIVE at {self.api_url}: REAL MONEY WILL MOVE."


def credentials_for(settings: Settings) -> Credentials:
    """The client credentials for ``settings`` (an :class:`~batchpay.client.Credentials`).

    The one place where a configured secret becomes what the client sends: an
    :class:`~batchpay.client.ApiKey`, or an :class:`~batchpay.auth.OAuthClient` with its
    DPoP key. Settings made by hand are checked here as :func:`resolve_settings` checks
    them: a test credential for the production API (or a live one for a sandbox) is refused
    before any request.
    """
    from batchpay.client import ApiKey

    if settings.oauth is not None:
        from batchpay.auth import OAuthClient

        oauth = settings.oauth
        _check_pairing(settings.mode, settings.api_url, oauth.kind, "OAuth client", "ant_oc")
        return OAuthClient(oauth.client_id, oauth.client_secret.reveal(),
                           load_dpop_key(oauth.dpop_key, oauth.dpop_key_path))  # fmt: skip
    if settings.api_key is None:
        raise ConfigError("no credential is configured",
                          hint="set BATCHPAY_API_KEY, or BATCHPAY_CLIENT_ID with its secret "
                          "and BATCHPAY_DPOP_KEY_FILE")  # fmt: skip
    if settings.mode is not Mode.EMBEDDED:
        _check_pairing(settings.mode, settings.api_url, settings.api_key.kind, "key", "ak")
    return ApiKey(settings.api_key.reveal())


def load_dpop_key(text: Secret, path: Path) -> Any:
    """The DPoP private key (a :class:`batchpay.auth.DPoPKey`) from a key file's text."""
    from batchpay.auth import DPoPKey

    try:
        return DPoPKey.load(text.reveal())
    except ValueError as exc:
        raise ConfigError(
            f"{exc} ({path}, named by BATCHPAY_DPOP_KEY_FILE)",
            hint="point BATCHPAY_DPOP_KEY_FILE at the private key registered for the client "
            "(`batchpay auth keygen KEYFILE` makes a new one)",
        ) from None


def _check_pairing(mode: Mode, api_url: str, kind: str, what: str, prefix: str) -> None:
    """Refuse a test credential for production and a live one for a sandbox."""
    if kind == "unknown":
        raise ConfigError(
            f"the {what} is not an Anton {what} (expected {prefix}_test_… or {prefix}_live_…)",
            hint="copy it again from the Anton dashboard",
        )
    production = mode is Mode.LIVE or _is_production(api_url)
    if production and kind == "test":
        raise ConfigError(
            f"a test {what} ({prefix}_test_…) cannot be used against the production API",
            hint=f"use a live {what} for {PRODUCTION_URL}, or point BATCHPAY_API_URL at the "
            "sandbox",
        )
    if not production and kind == "live":
        raise ConfigError(
            f"a live {what} ({prefix}_live_…) cannot be used against a sandbox URL",
            hint=f"use a {prefix}_test_ {what} for the sandbox; keep live credentials for "
            "production",
        )


def _env_or_file(env: Mapping[str, str], name: str, what: str) -> str:
    """The value of ``name``, or the contents of the file named by ``name_FILE`` (one of them)."""
    direct = env.get(name, "").strip()
    path = env.get(f"{name}_FILE", "").strip()
    if direct and path:
        raise ConfigError(f"both {name} and {name}_FILE are set", hint="set only one of them")
    if path:
        try:
            direct = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the {what} file named by {name}_FILE ({exc.strerror})",
                hint="check the path and its permissions",
            ) from None
        if not direct:
            raise ConfigError(f"the {what} file is empty", hint=f"put the {what} in the file")
    return direct


def resolve_journal(
    explicit: Path | str | PostgresURL | None, env: Mapping[str, str], home: Path
) -> JournalTarget:
    """The journal: ``--journal``, else ``BATCHPAY_JOURNAL`` (or ``_FILE``), else the home's.

    A ``postgresql://`` URL is a PostgreSQL journal; its password may instead come from
    ``BATCHPAY_JOURNAL_PASSWORD`` (or ``_FILE``), so it need not sit in the URL.
    """
    if explicit is None:
        text = _env_or_file(env, "BATCHPAY_JOURNAL", "journal URL")
        explicit = text or home / "journal.db"
    if isinstance(explicit, str) and is_postgres(explicit):
        explicit = PostgresURL(explicit)
    if not isinstance(explicit, PostgresURL):
        return Path(explicit)
    password = _env_or_file(env, "BATCHPAY_JOURNAL_PASSWORD", "journal password") or None
    if password is not None:
        return PostgresURL(explicit.reveal(), password=password)
    return explicit


def read_api_key(env: Mapping[str, str]) -> Secret | None:
    """The API key, if configured: ``BATCHPAY_API_KEY``, ``BATCHPAY_API_KEY_FILE``, or the
    password of the Airflow connection named by ``BATCHPAY_AIRFLOW_CONN_ID`` (one of them)."""
    direct = _env_or_file(env, "BATCHPAY_API_KEY", "API key")
    conn_id = env.get("BATCHPAY_AIRFLOW_CONN_ID", "").strip()
    if conn_id:
        if direct:
            raise ConfigError(
                "both an API key and BATCHPAY_AIRFLOW_CONN_ID are set",
                hint="keep the key in one place: the Airflow connection or the environment",
            )
        direct = api_key_from_airflow(conn_id)
    return Secret(direct) if direct else None


def read_oauth_client(env: Mapping[str, str]) -> OAuthSettings | None:
    """The OAuth client, if configured: ``BATCHPAY_CLIENT_ID``, ``BATCHPAY_CLIENT_SECRET`` (or
    ``BATCHPAY_CLIENT_SECRET_FILE``) and ``BATCHPAY_DPOP_KEY_FILE``, all three or none.

    A missing, unreadable or empty file, or a client id and secret of different kinds, is
    refused (ConfigError); neither the secret nor the key is ever echoed.
    """
    client_id = env.get("BATCHPAY_CLIENT_ID", "").strip()
    secret = _env_or_file(env, "BATCHPAY_CLIENT_SECRET", "OAuth client secret")
    key_file = env.get("BATCHPAY_DPOP_KEY_FILE", "").strip()
    given = {"BATCHPAY_CLIENT_ID": client_id,
             "BATCHPAY_CLIENT_SECRET (or BATCHPAY_CLIENT_SECRET_FILE)": secret,
             "BATCHPAY_DPOP_KEY_FILE": key_file}  # fmt: skip
    if not any(given.values()):
        return None
    missing = [name for name, value in given.items() if not value]
    if missing:
        raise ConfigError(
            f"an OAuth client is partly configured: {', '.join(missing)} not set",
            hint="set BATCHPAY_CLIENT_ID, BATCHPAY_CLIENT_SECRET (or _FILE) and "
            "BATCHPAY_DPOP_KEY_FILE together",
        )
    if not _CLIENT_ID_RE.match(client_id):
        raise ConfigError(
            "BATCHPAY_CLIENT_ID is not an Anton OAuth client id (expected ant_oc_test_… or "
            "ant_oc_live_…)",
            hint="copy the client id again from the merchant portal",
        )
    client_secret = Secret(secret)
    if not _CLIENT_SECRET_RE.match(secret):
        raise ConfigError(
            "the OAuth client secret is not an Anton client secret (expected ant_ocs_test_… "
            "or ant_ocs_live_…)",
            hint="copy the secret again; the portal shows it once, when the client is made",
        )
    m = _CLIENT_ID_RE.match(client_id)
    assert m is not None
    if client_secret.kind != m.group(1):
        raise ConfigError(
            f"the OAuth client id is a {m.group(1)} client but the secret is a "
            f"{client_secret.kind} one",
            hint="use the id and the secret of one client",
        )
    path = Path(key_file)
    try:
        key_text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not a text file"
        raise ConfigError(
            f"cannot read the DPoP key file named by BATCHPAY_DPOP_KEY_FILE ({reason})",
            hint="check the path and its permissions (`batchpay auth keygen KEYFILE` makes a "
            "new key)",
        ) from None
    if not key_text:
        raise ConfigError("the DPoP key file is empty",
                          hint="put the private DPoP key (PEM or JWK) in the file")  # fmt: skip
    return OAuthSettings(client_id, client_secret, Secret(key_text), path)


def api_key_from_airflow(conn_id: str) -> str:
    """The password field of Airflow connection ``conn_id`` (where Airflow keeps secrets)."""
    try:
        from airflow.sdk import BaseHook  # Airflow 3's task SDK
    except ImportError:
        raise ConfigError(
            f"BATCHPAY_AIRFLOW_CONN_ID is {conn_id!r} but Airflow is not installed here",
            hint="run inside Airflow, or set BATCHPAY_API_KEY / BATCHPAY_API_KEY_FILE instead",
        ) from None
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # Airflow raises its own AirflowNotFoundException
        raise ConfigError(
            f"Airflow has no usable connection {conn_id!r} ({type(exc).__name__})",
            hint="create it (Admin → Connections) with the API key as its password",
        ) from None
    password = str(getattr(conn, "password", "") or "").strip()
    if not password:
        raise ConfigError(
            f"the Airflow connection {conn_id!r} has no password",
            hint="put the Anton API key in the connection's password field",
        )
    return password


# What an Airflow connection (batchpay.airflow.BatchpayHook) says instead of the environment.
CONNECTION_VARIABLES = (
    "BATCHPAY_API_URL", "BATCHPAY_API_KEY", "BATCHPAY_API_KEY_FILE", "BATCHPAY_AIRFLOW_CONN_ID",
    "BATCHPAY_CLIENT_ID", "BATCHPAY_CLIENT_SECRET", "BATCHPAY_CLIENT_SECRET_FILE",
    "BATCHPAY_DPOP_KEY_FILE", "BATCHPAY_CONFIRM_LIVE",
)  # fmt: skip


def settings_over_environment(overrides: Mapping[str, str]) -> Settings:
    """:func:`resolve_settings` with the credentials, URL and live confirmation taken only from
    ``overrides`` (an Airflow connection's), the rest (home, journal, timeout) as configured.

    A journal named in ``overrides`` (``BATCHPAY_JOURNAL``) wins over the environment's.
    """
    env = {k: v for k, v in os.environ.items() if k not in CONNECTION_VARIABLES}
    env.update({k: v for k, v in overrides.items() if v})
    return resolve_settings(env=env)


def default_home() -> Path:
    """The per-user folder batchpay keeps its state in when ``BATCHPAY_HOME`` is not set."""
    return Path(platformdirs.user_data_dir("batchpay", appauthor=False))


def resolve_settings(
    *,
    api_url: str | None = None,
    api_key: Secret | None = None,
    home: Path | None = None,
    journal_path: Path | str | PostgresURL | None = None,
    confirm_live: bool = False,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Combine explicit options with the environment and check they make sense together.

    Test keys only against sandbox URLs, live keys only against production: anything
    else is refused here, before any request is sent.
    """
    env = os.environ if env is None else env
    settings = _resolve_settings(api_url, api_key, home, journal_path, confirm_live, env)
    lease = _positive_float(env, "BATCHPAY_WORKER_LEASE_SECONDS", 60.0)
    return dataclasses.replace(settings, worker_lease_seconds=lease)


def _resolve_settings(
    api_url: str | None,
    api_key: Secret | None,
    home: Path | None,
    journal_path: Path | str | PostgresURL | None,
    confirm_live: bool,
    env: Mapping[str, str],
) -> Settings:
    home = home or Path(env.get("BATCHPAY_HOME") or default_home())
    journal_path = resolve_journal(journal_path, env, home)
    api_url = api_url or env.get("BATCHPAY_API_URL") or None
    explicit_key = api_key is not None
    if api_key is None:
        api_key = read_api_key(env)
    oauth = None if explicit_key else read_oauth_client(env)
    if oauth is not None and api_key is not None:
        raise ConfigError(
            "both an API key and an OAuth client are configured",
            hint="set one: BATCHPAY_API_KEY (older deployments) or BATCHPAY_CLIENT_ID with its "
            "secret and DPoP key (the newest API)",
        )
    confirm_live = confirm_live or env.get("BATCHPAY_CONFIRM_LIVE", "").lower() in {
        "1",
        "true",
        "yes",
    }

    http_timeout = _positive_float(env, "BATCHPAY_HTTP_TIMEOUT", 30.0)

    if oauth is not None:
        return _oauth_settings(oauth, api_url, home, journal_path, confirm_live, http_timeout)
    if api_key is None and api_url is None:
        state = home / "sandbox-state.db"
        return Settings(
            mode=Mode.EMBEDDED,
            api_url="http://sandbox.embedded",
            api_key=Secret(EMBEDDED_SANDBOX_KEY),
            home=home,
            journal_path=journal_path,
            sandbox_state_path=state.resolve(),
            confirm_live=False,
            http_timeout=http_timeout,
        )
    if api_key is None:
        raise ConfigError(
            f"an API URL is configured ({api_url}) but no API key",
            hint="set BATCHPAY_API_KEY or BATCHPAY_API_KEY_FILE, or an OAuth client "
            "(BATCHPAY_CLIENT_ID, BATCHPAY_CLIENT_SECRET, BATCHPAY_DPOP_KEY_FILE)",
        )
    kind = api_key.kind if api_key.reveal().startswith("ak_") else "unknown"
    if kind == "unknown":
        raise ConfigError(
            "the API key is not an Anton key (expected ak_test_… or ak_live_…)",
            hint="copy the key again from the Anton dashboard",
        )
    if api_url is None:
        api_url = PRODUCTION_URL if kind == "live" else SANDBOX_URL
    mode = classify_url(api_url)
    if mode is Mode.LIVE and kind == "test":
        raise ConfigError(
            "a test key (ak_test_…) cannot be used against the production API",
            hint=f"use a live key for {PRODUCTION_URL}, or point BATCHPAY_API_URL at the sandbox",
        )
    if mode is Mode.SANDBOX and kind == "live":
        raise ConfigError(
            "a live key (ak_live_…) cannot be used against a sandbox URL",
            hint="use an ak_test_ key for the sandbox; keep live keys for production",
        )
    return Settings(
        mode=mode,
        api_url=api_url.rstrip("/"),
        api_key=api_key,
        home=home,
        journal_path=journal_path,
        confirm_live=confirm_live,
        http_timeout=http_timeout,
    )


def _oauth_settings(
    oauth: OAuthSettings,
    api_url: str | None,
    home: Path,
    journal_path: JournalTarget,
    confirm_live: bool,
    http_timeout: float,
) -> Settings:
    """Settings for an OAuth client: the same environment rules as for API keys."""
    load_dpop_key(oauth.dpop_key, oauth.dpop_key_path)  # an unusable key fails now
    if api_url is None:
        api_url = PRODUCTION_URL if oauth.kind == "live" else SANDBOX_URL
    mode = classify_url(api_url)
    _check_pairing(mode, api_url, oauth.kind, "OAuth client", "ant_oc")
    return Settings(
        mode=mode,
        api_url=api_url.rstrip("/"),
        api_key=None,
        home=home,
        journal_path=journal_path,
        confirm_live=confirm_live,
        http_timeout=http_timeout,
        oauth=oauth,
    )


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds, not {raw!r}")
    return value


def read_webhook_secrets(env: Mapping[str, str] | None = None) -> list[Secret]:
    """The webhook signing secrets from ``BATCHPAY_WEBHOOK_SECRET`` or its ``_FILE`` variant.

    Several secrets (comma-, space- or newline-separated) are accepted during a rotation:
    a delivery is genuine when it matches any of them. A missing or malformed secret is
    refused with a ConfigError; the secret itself is never echoed.
    """
    env = os.environ if env is None else env
    direct = _env_or_file(env, "BATCHPAY_WEBHOOK_SECRET", "webhook secret")
    if not direct:
        raise ConfigError(
            "no webhook signing secret is configured",
            hint="set BATCHPAY_WEBHOOK_SECRET to the whsec_… secret printed by "
            "`batchpay webhooks subscribe` (or BATCHPAY_WEBHOOK_SECRET_FILE to a file holding it)",
        )
    secrets: list[Secret] = []
    for n, value in enumerate(re.split(r"[\s,]+", direct), start=1):
        if not value:
            continue
        if not _WEBHOOK_SECRET_RE.fullmatch(value):
            raise ConfigError(
                f"webhook secret #{n} is not an Anton signing secret (whsec_ + 64 hex digits)",
                hint="copy the secret again from `batchpay webhooks subscribe` or the provider; "
                "separate two secrets with a comma during a rotation",
            )
        if Secret(value) not in secrets:
            secrets.append(Secret(value))
    return secrets


@dataclass(frozen=True)
class SftpAuth:
    """How `batchpay watch sftp://…` proves who it is and checks who the server is.

    ``known_hosts`` is always checked: an unknown or changed host key refuses to connect.
    """

    key_file: Path | None
    known_hosts: Path
    password: Secret | None = None


def read_sftp_auth(
    *,
    key_file: Path | None = None,
    known_hosts: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> SftpAuth:
    """SFTP credentials: the key file (``--key-file`` or ``BATCHPAY_SFTP_KEY_FILE``), the
    known_hosts file (``BATCHPAY_SFTP_KNOWN_HOSTS``, default ``~/.ssh/known_hosts``), and a
    password only from ``BATCHPAY_SFTP_PASSWORD`` or ``BATCHPAY_SFTP_PASSWORD_FILE``."""
    env = os.environ if env is None else env
    raw_key = env.get("BATCHPAY_SFTP_KEY_FILE", "").strip()
    key = key_file or (Path(raw_key).expanduser() if raw_key else None)
    raw_hosts = env.get("BATCHPAY_SFTP_KNOWN_HOSTS", "").strip()
    hosts = known_hosts or Path(raw_hosts or "~/.ssh/known_hosts").expanduser()
    password = _env_or_file(env, "BATCHPAY_SFTP_PASSWORD", "SFTP password")
    if key is not None and not key.is_file():
        raise ConfigError(
            f"the SFTP private key file {key} does not exist or is not a file",
            hint="set BATCHPAY_SFTP_KEY_FILE (or --key-file) to the watcher's private key",
        )
    if not hosts.is_file():
        raise ConfigError(
            f"the known_hosts file {hosts} does not exist: the SFTP server cannot be verified",
            hint="add the server's host key to it (ssh-keyscan -H HOST, checked against the "
            "fingerprint the server's owner gives you), or set BATCHPAY_SFTP_KNOWN_HOSTS",
        )
    if key is None and not password:
        raise ConfigError(
            "no SFTP credentials: neither a private key nor a password is configured",
            hint="set BATCHPAY_SFTP_KEY_FILE (or --key-file), or BATCHPAY_SFTP_PASSWORD_FILE",
        )
    return SftpAuth(
        key_file=key, known_hosts=hosts, password=Secret(password) if password else None
    )


# Looked for in the working folder, in this order, when no layout is named.
LAYOUT_FILES = ("batchpay.toml", "schemas/layout.toml")


def find_layout(
    explicit: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path | None:
    """The user's layout file: ``explicit`` (``--layout``), else ``BATCHPAY_LAYOUT``, else
    ``batchpay.toml`` or ``schemas/layout.toml`` in ``cwd``; None when there is none (the
    built-in layout alone)."""
    if explicit is not None:
        return explicit
    env = os.environ if env is None else env
    named = env.get("BATCHPAY_LAYOUT", "").strip()
    if named:
        return Path(named).expanduser()
    folder = Path.cwd() if cwd is None else cwd
    for name in LAYOUT_FILES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None
