"""Configuration: the only place batchpay reads the environment.

Where the API key comes from (never the command line):

1. ``BATCHPAY_API_KEY`` — the key itself;
2. ``BATCHPAY_API_KEY_FILE`` — a file holding the key (Docker/Kubernetes secrets);
3. an Airflow connection, passed in by the Airflow integration as a value.

The webhook receiver's signing secrets come from ``BATCHPAY_WEBHOOK_SECRET`` (one
``whsec_…``, or several comma-separated during a rotation) or
``BATCHPAY_WEBHOOK_SECRET_FILE``; see :func:`read_webhook_secrets`.

Where batchpay keeps its state (the journal, the embedded sandbox's state): ``BATCHPAY_HOME``,
else the user's data folder (``platformdirs.user_data_dir("batchpay")``, e.g.
``~/.local/share/batchpay`` on Linux) — never the current folder, so a run started from
another folder still sees the same journal. ``BATCHPAY_JOURNAL`` names the journal itself.

With no key and no URL configured, batchpay runs against the embedded sandbox,
in-process, and says so loudly.

The input layout file (merged over the built-in layout): ``--layout FILE``, else
``BATCHPAY_LAYOUT``, else ``batchpay.toml`` or ``schemas/layout.toml`` in the working folder;
see :func:`find_layout`.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import platformdirs

from batchpay.errors import ConfigError

if TYPE_CHECKING:
    from batchpay.client import Credentials

PRODUCTION_URL = "https://api.antonpayments.com"
SANDBOX_URL = "https://api.antonpayments.dev"
EMBEDDED_SANDBOX_KEY = "ak_test_batchpay_sandbox"

_KEY_RE = re.compile(r"^ak_(test|live)_[A-Za-z0-9_]{8,}$")
_WEBHOOK_SECRET_RE = re.compile(r"whsec_[0-9a-fA-F]{64}")


class Mode(StrEnum):
    """Which world a run talks to."""

    EMBEDDED = "embedded-sandbox"
    SANDBOX = "sandbox"
    LIVE = "live"

    @property
    def moves_money(self) -> bool:
        """Only live runs move real money."""
        return self is Mode.LIVE


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
        """``test`` or ``live`` from the key's prefix, else ``unknown``."""
        m = _KEY_RE.match(self._value)
        return m.group(1) if m else "unknown"

    def masked(self) -> str:
        """Prefix and last four characters only."""
        v = self._value
        prefix = v[: v.index("_", 3) + 1] if v.startswith("ak_") and v.count("_") >= 2 else ""
        return f"{prefix}…{v[-4:]}" if len(v) > 8 else "…"

    def __repr__(self) -> str:
        return f"Secret({self.masked()!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know about where it talks and where it writes."""

    mode: Mode
    api_url: str
    api_key: Secret
    home: Path
    journal_path: Path
    sandbox_state_path: Path | None = None
    confirm_live: bool = False
    http_timeout: float = 30.0
    extra: Mapping[str, str] = field(default_factory=dict)

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


_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})


def canonical_api_url(url: str) -> str:
    """The one spelling of an API base URL: what identifies the provider world.

    Scheme and host lower-cased, the default port, userinfo, query, fragment and trailing
    slashes dropped; ``localhost``, ``::1`` and ``127.0.0.1`` are the same loopback host.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if host in _LOOPBACK_NAMES or _is_loopback_address(host):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    else:
        host = host.rstrip(".")
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    path = posixpath.normpath(parts.path) if parts.path.strip("/") else ""
    path = "" if path in (".", "/") else path.rstrip("/")
    return f"{scheme}://{netloc}{path}"


def _is_loopback_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def credentials_for(settings: Settings) -> Credentials:
    """The client credentials for ``settings`` (an :class:`~batchpay.client.Credentials`).

    The one place where a configured secret becomes what the client sends: an API key
    today; the OAuth client with its DPoP key plugs in here.
    """
    from batchpay.client import ApiKey

    return ApiKey(settings.api_key.reveal())


def _is_local(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:  # an address, not a name: "127.0.0.1.attacker.example" is not local
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def classify_url(url: str) -> Mode:
    """Whether ``url`` is a sandbox or the production API; refuse anything else."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(
            f"API URL {url!r} is not an http(s) URL",
            hint=f"use {SANDBOX_URL}, {PRODUCTION_URL} or a local sandbox such as "
            "http://127.0.0.1:8080",
        )
    try:
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        raise ConfigError(
            f"API URL {url!r} has a port that is not a number",
            hint="e.g. http://127.0.0.1:8080",
        ) from None
    base = f"{parts.scheme}://{parts.hostname}"
    if base == PRODUCTION_URL:
        mode = Mode.LIVE
    elif base == SANDBOX_URL or _is_local(url):
        mode = Mode.SANDBOX
    else:
        raise ConfigError(
            f"API URL {url!r} is neither the Anton sandbox nor production",
            hint=f"use {SANDBOX_URL} (sandbox), {PRODUCTION_URL} (live) or a local sandbox",
        )
    if parts.path.strip("/") or parts.query or parts.fragment or parts.username or parts.password:
        # Anton's API lives at the host's root: a path (even "/." or "/v1/..") would be a
        # second spelling of the same world, or a request to the wrong place.
        raise ConfigError(
            f"API URL {url!r} has a path, query or user part",
            hint="give the base URL only, such as http://127.0.0.1:8080 or "
            f"{SANDBOX_URL}; batchpay adds /v1/… itself",
        )
    return mode


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


def api_key_from_airflow(conn_id: str) -> str:
    """The password field of Airflow connection ``conn_id`` (where Airflow keeps secrets)."""
    try:
        from airflow.hooks.base import BaseHook  # type: ignore[import-not-found]
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


def default_home() -> Path:
    """The per-user folder batchpay keeps its state in when ``BATCHPAY_HOME`` is not set."""
    return Path(platformdirs.user_data_dir("batchpay", appauthor=False))


def resolve_settings(
    *,
    api_url: str | None = None,
    api_key: Secret | None = None,
    home: Path | None = None,
    journal_path: Path | None = None,
    confirm_live: bool = False,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Combine explicit options with the environment and check they make sense together.

    Test keys only against sandbox URLs, live keys only against production: anything
    else is refused here, before any request is sent.
    """
    env = os.environ if env is None else env
    home = home or Path(env.get("BATCHPAY_HOME") or default_home())
    journal_path = journal_path or Path(env.get("BATCHPAY_JOURNAL") or home / "journal.db")
    api_url = api_url or env.get("BATCHPAY_API_URL") or None
    if api_key is None:
        api_key = read_api_key(env)
    confirm_live = confirm_live or env.get("BATCHPAY_CONFIRM_LIVE", "").lower() in {
        "1",
        "true",
        "yes",
    }

    http_timeout = _positive_float(env, "BATCHPAY_HTTP_TIMEOUT", 30.0)

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
            hint="set BATCHPAY_API_KEY or BATCHPAY_API_KEY_FILE",
        )
    kind = api_key.kind
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
