"""How the client proves who it is: :class:`Credentials` and the API key, :class:`ApiKey`."""

from __future__ import annotations

from collections.abc import Generator

import httpx

from batchpay.errors import ConfigError

__all__ = ["ApiKey", "Credentials"]


class Credentials(httpx.Auth):
    """How the client proves who it is: an :class:`httpx.Auth` that also masks its secrets.

    Subclasses put their secret only into request headers and return a masked
    form from ``__repr__``/``__str__``; :meth:`redact` scrubs the secret from any
    text that reaches an error message.
    """

    def redact(self, text: str) -> str:
        """Return ``text`` with every secret of this credential masked."""
        return text

    def static_headers(self) -> dict[str, str] | None:
        """The headers that prove who we are on every request alike, or None when each
        request needs its own (a DPoP proof, a token that expires)."""
        return None


class ApiKey(Credentials):
    """An Anton API key (``ak_live_…`` / ``ak_test_…``), sent as ``Authorization: Bearer``.

    Its repr shows only the key's prefix and last four characters.
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: str) -> None:
        secret = secret.strip()
        if not secret:
            raise ConfigError("the API key is empty", hint="set BATCHPAY_API_KEY")
        if any(ch.isspace() or not ch.isprintable() for ch in secret) or not secret.isascii():
            raise ConfigError(
                "the API key contains spaces or control characters",
                hint="copy the key again from the dashboard",
            )
        self._secret = secret

    @property
    def masked(self) -> str:
        """The key with everything but its prefix and last four characters hidden."""
        secret = self._secret
        prefix = ""
        for candidate in ("ak_live_", "ak_test_", "ak_"):
            if secret.startswith(candidate):
                prefix = candidate
                break
        if len(secret) - len(prefix) < 12:
            return f"{prefix}…"
        return f"{prefix}…{secret[-4:]}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the bearer header (called by httpx for every request)."""
        request.headers["Authorization"] = f"Bearer {self._secret}"
        yield request

    def static_headers(self) -> dict[str, str]:
        """The bearer header, the same on every request."""
        return {"Authorization": f"Bearer {self._secret}"}

    def redact(self, text: str) -> str:
        """Return ``text`` with the key replaced by its masked form."""
        return text.replace(self._secret, self.masked)

    def __repr__(self) -> str:
        return f"ApiKey({self.masked!r})"

    __str__ = __repr__
