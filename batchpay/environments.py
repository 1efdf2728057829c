"""Environments: which provider world a URL names, and its one canonical spelling.

The sandbox (``https://api.antonpayments.dev`` or a local sandbox on a loopback address) and
production (``https://api.antonpayments.com``) are the only worlds; anything else is refused
before a request is sent. The environment identity that scopes row keys, idempotency keys
and the journal is the mode and the canonical URL, never the URL as typed.
"""

from __future__ import annotations

import ipaddress
import posixpath
from enum import StrEnum
from urllib.parse import urlsplit

from batchpay.errors import ConfigError

PRODUCTION_URL = "https://api.antonpayments.com"
SANDBOX_URL = "https://api.antonpayments.dev"


class Mode(StrEnum):
    """Which world a run talks to."""

    EMBEDDED = "embedded-sandbox"
    SANDBOX = "sandbox"
    LIVE = "live"

    @property
    def moves_money(self) -> bool:
        """Only live runs move real money."""
        return self is Mode.LIVE


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


def _is_production(url: str) -> bool:
    parts = urlsplit(url)
    return (parts.hostname or "").lower().rstrip(".") == urlsplit(PRODUCTION_URL).hostname


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
