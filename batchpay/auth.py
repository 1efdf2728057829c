"""OAuth client credentials bound to a DPoP key: the newest Anton API's way to say who we are.

The flow (RFC 6749 §4.4 with RFC 9449), as the merchant spec describes it:

1. ``POST /oauth/token`` with ``Authorization: Basic <client_id:client_secret>``, the form
   body ``grant_type=client_credentials`` and a ``DPoP`` proof for that URL (no ``ath``);
   the answer is an access token bound to the key (``token_type: DPoP``, ``expires_in``).
2. Every API request carries ``Authorization: DPoP <token>`` and a fresh proof: ``htm``,
   ``htu`` (no query or fragment), ``iat``, a unique ``jti`` and ``ath`` (the token's hash).

:class:`OAuthClient` is a :class:`~batchpay.client.Credentials` (an :class:`httpx.Auth`)
doing all of it inside httpx's async auth flow, so :class:`~batchpay.client.AntonClient`
needs no change. The token is cached, shared by every concurrent request and renewed
before it expires (by the provider's clock, learned from its ``Date`` answers) and after a
401 ``invalid_token``. A ``use_dpop_nonce`` challenge (RFC 9449 §8, §9) is answered once
with the server's ``DPoP-Nonce``. A request is repeated inside the flow only with new
``Authorization`` and ``DPoP`` headers: its body and ``Idempotency-Key`` never change.

Signatures are made by joserfc (see docs/ARCHITECTURE.md for why that library); nothing
here signs or verifies by hand. The CLI verbs of ``batchpay auth`` are :func:`keygen` and
:func:`check`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import re
import secrets
import time
import warnings
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import quote

import httpx
from joserfc import jwk, jws
from joserfc.errors import JoseError

from batchpay.client import Credentials
from batchpay.errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    RateLimitedError,
    ServerError,
    TransportError,
    api_error_from_response,
    server_text,
)

if TYPE_CHECKING:
    from batchpay.config import Settings

__all__ = ["ALGORITHMS", "AuthCheck", "DPoPKey", "OAuthClient", "check", "keygen", "proof"]

log = logging.getLogger(__name__)

Algorithm = Literal["ES256", "Ed25519"]
ALGORITHMS: Final[tuple[Algorithm, ...]] = ("ES256", "Ed25519")
"""The DPoP signing algorithms the portal issues keys for. Ed25519 is the fully specified
name of RFC 9864 (the older ``EdDSA`` is deprecated there)."""

TOKEN_PATH: Final = "/oauth/token"
# Renew this long before the token's end (a tenth of its life for short-lived tokens).
RENEW_MARGIN_SECONDS: Final = 300.0
# The provider's clock is believed once our own disagrees with it by more than this.
_CLOCK_SLACK_SECONDS: Final = 5.0
_MAX_TOKENS_REMEMBERED: Final = 8


# -- the key -----------------------------------------------------------------


class DPoPKey:
    """A private DPoP signing key (ES256 on P-256, or Ed25519) whose repr shows no secret."""

    __slots__ = ("_key", "alg", "public_jwk", "thumbprint")

    def __init__(self, key: jwk.ECKey | jwk.OKPKey, alg: Algorithm) -> None:
        self._key = key
        self.alg: Algorithm = alg
        public = key.as_dict(private=False)
        self.public_jwk: dict[str, Any] = {k: public[k] for k in ("kty", "crv", "x", "y")
                                           if k in public}  # fmt: skip
        self.thumbprint: str = key.thumbprint()
        """RFC 7638 thumbprint of the public key (the ``jkt`` a token is bound to)."""

    @classmethod
    def generate(cls, alg: Algorithm = "ES256") -> DPoPKey:
        """A new random key for ``alg``."""
        if alg == "ES256":
            return cls(jwk.ECKey.generate_key("P-256"), "ES256")
        if alg == "Ed25519":
            return cls(jwk.OKPKey.generate_key("Ed25519"), "Ed25519")
        raise ValueError(f"unsupported DPoP algorithm {alg!r}; use ES256 or Ed25519")

    @classmethod
    def load(cls, text: str) -> DPoPKey:
        """The key in ``text``: a PEM private key or a private JWK (JSON). ValueError if not."""
        text = text.strip()
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except ValueError:
                raise ValueError("the DPoP key file is not valid JSON (expected a JWK)") from None
            if not isinstance(data, dict):
                raise ValueError("the DPoP key file holds JSON but not a JWK object")
            if "d" not in data:
                raise ValueError("the DPoP key file holds a public key; batchpay signs with the "
                                 "private half")  # fmt: skip
            return cls._from(lambda kty: jwk.import_key(data, kty), str(data.get("kty", "")))
        if "-----BEGIN" not in text:
            raise ValueError("the DPoP key file is neither a PEM private key nor a JWK")
        if "PUBLIC KEY" in text.split("\n", 1)[0]:
            raise ValueError(
                "the DPoP key file holds a public key; batchpay signs with the private half"
            )
        pem = text.encode("ascii", "replace")
        for kty in ("EC", "OKP"):
            try:
                return cls._from(lambda kty: jwk.import_key(pem, kty), kty)
            except ValueError:
                continue
        raise ValueError("the DPoP key file holds no ES256 (P-256) or Ed25519 private key")

    @classmethod
    def _from(cls, importer: Callable[[Any], Any], kty: str) -> DPoPKey:
        if kty not in ("EC", "OKP"):
            raise ValueError("the DPoP key is neither an EC (P-256) nor an OKP (Ed25519) key")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # joserfc warns about key shapes we refuse anyway
                key = importer(kty)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"the DPoP key cannot be read ({type(exc).__name__})") from None
        if not key.is_private:
            raise ValueError("the DPoP key is a public key; batchpay signs with the private half")
        if isinstance(key, jwk.ECKey) and key.curve_name == "P-256":
            return cls(key, "ES256")
        if isinstance(key, jwk.OKPKey) and key.curve_name == "Ed25519":
            return cls(key, "Ed25519")
        raise ValueError("the DPoP key is neither ES256 (P-256) nor Ed25519")

    def pem(self) -> bytes:
        """The private key as PKCS#8 PEM (what :func:`keygen` writes)."""
        return self._key.as_pem(private=True)

    def sign(self, header: dict[str, Any], claims: dict[str, Any]) -> str:
        """A compact JWS of ``claims`` under ``header`` (``alg`` is added)."""
        payload = json.dumps(claims, separators=(",", ":"), sort_keys=True)
        return jws.serialize_compact({**header, "alg": self.alg}, payload, self._key,
                                     algorithms=[self.alg])  # fmt: skip

    def __repr__(self) -> str:
        return f"DPoPKey({self.alg}, jkt={self.thumbprint[:8]}…)"

    __str__ = __repr__


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def access_token_hash(token: str) -> str:
    """The ``ath`` claim: base64url SHA-256 of the access token (RFC 9449 §4.2)."""
    return _b64url(hashlib.sha256(token.encode("ascii")).digest())


def target_uri(url: httpx.URL | str) -> str:
    """The ``htu`` of a request: its URL without query and fragment."""
    return str(httpx.URL(str(url)).copy_with(query=None, fragment=None))


def proof(
    key: DPoPKey,
    method: str,
    url: httpx.URL | str,
    *,
    now: float,
    access_token: str | None = None,
    nonce: str | None = None,
) -> str:
    """A DPoP proof JWT for one request (RFC 9449 §4.2), signed by ``key``."""
    claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(18),
        "htm": method.upper(),
        "htu": target_uri(url),
        "iat": int(now),
    }
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    return key.sign({"typ": "dpop+jwt", "jwk": key.public_jwk}, claims)


# -- the credential ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires_at: float
    """Provider time (Unix seconds) the token ends at."""
    lifetime: float


_CHALLENGE = re.compile(r'(\w+)\s*=\s*"([^"]*)"')


def _dpop_challenge(response: httpx.Response) -> str | None:
    """The ``error`` of a ``WWW-Authenticate: DPoP ...`` challenge, if the answer has one."""
    for value in response.headers.get_list("www-authenticate"):
        scheme, _, params = value.strip().partition(" ")
        if scheme.lower() == "dpop":
            params_found: dict[str, str] = dict(_CHALLENGE.findall(params))
            return params_found.get("error", "")
    return None


class OAuthClient(Credentials):
    """OAuth client credentials with a DPoP key; mints, caches and renews the access token.

    Works with an ``httpx.AsyncClient`` only (the token request is sent inside the async
    auth flow). Its repr shows the client id's prefix, never the secret or the token.
    """

    requires_response_body = True

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        key: DPoPKey,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not client_id or not client_secret:
            raise ConfigError("the OAuth client id or secret is empty",
                              hint="set BATCHPAY_CLIENT_ID and BATCHPAY_CLIENT_SECRET")  # fmt: skip
        self.client_id = client_id
        self._secret = client_secret
        self._key = key
        self._wall = wall_clock
        self._offset = 0.0  # provider clock minus ours, from its Date answers
        self._token: _Token | None = None
        self._issued: list[str] = []  # every token we held, for redact()
        self._nonce: str | None = None
        self._lock: asyncio.Lock | None = None

    # -- what others may know ---------------------------------------------

    @property
    def kind(self) -> str:
        """``test`` or ``live`` from the client id's prefix, else ``unknown``."""
        for kind in ("test", "live"):
            if self.client_id.startswith(f"ant_oc_{kind}_"):
                return kind
        return "unknown"

    @property
    def masked_id(self) -> str:
        """The client id's prefix and last four characters."""
        prefix = f"ant_oc_{self.kind}_" if self.kind != "unknown" else ""
        return f"{prefix}…{self.client_id[-4:]}"

    @property
    def token_expires_at(self) -> datetime | None:
        """When the current token ends, on the provider's clock (None before the first)."""
        if self._token is None:
            return None
        return datetime.fromtimestamp(self._token.expires_at, UTC)

    def provider_now(self) -> float:
        """Our best estimate of the provider's clock (Unix seconds)."""
        return self._wall() + self._offset

    def redact(self, text: str) -> str:
        """``text`` with the client secret and every token this client held masked."""
        for secret in (self._secret, *self._issued):
            if secret:
                text = text.replace(secret, "[redacted]")
        return text

    def __repr__(self) -> str:
        return f"OAuthClient({self.masked_id!r}, {self._key!r})"

    __str__ = __repr__

    # -- the flow ------------------------------------------------------------

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Refused: the token is minted inside the async flow (use ``httpx.AsyncClient``)."""
        raise RuntimeError("OAuthClient works with httpx.AsyncClient only")
        yield request  # pragma: no cover - makes this a generator

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Add ``Authorization: DPoP`` and a fresh proof; mint or renew the token as needed."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        answered: set[str] = set()  # each challenge is answered once per request
        while True:
            token: _Token | None = None
            async with self._lock:
                token = self._usable()
                attempts = 0
                while token is None:
                    attempts += 1
                    token_request = self._token_request(request)
                    response = yield token_request
                    await response.aread()
                    token = self._accept_token(response, retry=attempts == 1)
            request.headers["Authorization"] = f"DPoP {token.value}"
            request.headers["DPoP"] = proof(
                self._key, request.method, request.url, now=self.provider_now(),
                access_token=token.value, nonce=self._nonce,
            )  # fmt: skip
            response = yield request
            self._observe(response)
            if response.status_code != 401:
                return
            error = _dpop_challenge(response)
            if error == "use_dpop_nonce" and self._nonce and "nonce" not in answered:
                answered.add("nonce")
            elif error == "invalid_token" and "token" not in answered:
                answered.add("token")  # expired or revoked: mint anew (once, for everyone)
                if self._token is token:
                    self._token = None
            elif error == "invalid_dpop_proof" and "proof" not in answered:
                answered.add("proof")  # e.g. iat outside the window: _observe set the clock
            else:
                return
            await response.aread()
            log.info("the API answered 401 %s; sending the request again with a new proof",
                     error, extra={"dpop_error": error})  # fmt: skip

    def _usable(self) -> _Token | None:
        token = self._token
        if token is None:
            return None
        margin = min(RENEW_MARGIN_SECONDS, token.lifetime / 10)
        if self.provider_now() >= token.expires_at - margin:
            return None  # renew before it runs out
        return token

    def _token_request(self, request: httpx.Request) -> httpx.Request:
        path = request.url.path
        at = path.find("/v1/")
        url = request.url.copy_with(path=(path[:at] if at > 0 else "") + TOKEN_PATH,
                                    query=None, fragment=None)  # fmt: skip
        basic = base64.b64encode(
            f"{quote(self.client_id, safe='')}:{quote(self._secret, safe='')}".encode()
        ).decode("ascii")
        headers = {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "DPoP": proof(self._key, "POST", url, now=self.provider_now(), nonce=self._nonce),
            "X-Request-ID": f"req_{secrets.token_hex(16)}",
        }
        if "user-agent" in request.headers:
            headers["User-Agent"] = request.headers["user-agent"]
        return httpx.Request("POST", url, headers=headers,
                             content=b"grant_type=client_credentials")  # fmt: skip

    def _accept_token(self, response: httpx.Response, *, retry: bool) -> _Token | None:
        """The token from a token answer; None to ask again once (a nonce challenge, or a
        proof refused while our clock was off the provider's); else raise."""
        learned = self._observe(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 200 and isinstance(body, dict):
            value = body.get("access_token")
            kind = str(body.get("token_type", ""))
            expires_in = body.get("expires_in")
            if (isinstance(value, str) and value and kind.lower() == "dpop"
                    and isinstance(expires_in, int) and expires_in > 0):  # fmt: skip
                token = _Token(value, self.provider_now() + expires_in, float(expires_in))
                self._token = token
                self._issued = [*self._issued[-(_MAX_TOKENS_REMEMBERED - 1) :], value]
                log.info("minted an OAuth access token for %s (expires in %d s)",
                         self.masked_id, expires_in, extra={"expires_in": expires_in})  # fmt: skip
                return token
            raise TransportError(
                "POST /oauth/token answered 200 without a usable DPoP access token",
                request_id=response.headers.get("x-request-id"),
                hint="check that the API URL points at the Anton API",
            )
        error = body.get("error") if isinstance(body, dict) else None
        if (
            retry
            and learned
            and response.status_code == 400
            and error in ("use_dpop_nonce", "invalid_dpop_proof")
        ):
            return None  # ask again with the nonce or the clock _observe just learned
        raise self._token_error(response, body)

    def _token_error(self, response: httpx.Response, body: Any) -> Exception:
        error: ApiError = api_error_from_response(response.status_code, body, response.headers)
        error.message = self.redact(error.message)
        if isinstance(error, RateLimitedError | ServerError):
            error.message = f"POST /oauth/token: {error.message}"
            error.args = (error.message,)
            return error  # retried as any other 429 / 5xx
        what = {
            "invalid_client": "the client id or secret was refused",
            "invalid_dpop_proof": "the DPoP proof was refused (is this the key registered for "
            "the client?)",
            "unauthorized_client": "this client may not mint tokens here",
        }.get(error.code, "the token request was refused")
        return AuthenticationError(
            f"POST /oauth/token: {what} ({error.code}: {error.message})",
            status=error.status,
            code=error.code,
            request_id=error.request_id,
            body=None,
            hint="check BATCHPAY_CLIENT_ID, BATCHPAY_CLIENT_SECRET (or _FILE), "
            "BATCHPAY_DPOP_KEY_FILE and the API URL",
        )

    def _observe(self, response: httpx.Response) -> bool:
        """Learn the provider's clock and its latest DPoP nonce from an answer; True when
        either changed."""
        learned = False
        nonce = response.headers.get("dpop-nonce")
        if nonce and len(nonce) <= 512 and nonce.isprintable() and nonce != self._nonce:
            self._nonce = nonce
            learned = True
        date = response.headers.get("date")
        if not date:
            return learned
        try:
            provider = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError):
            return learned
        if abs(provider - self.provider_now()) > _CLOCK_SLACK_SECONDS:
            self._offset = provider - self._wall()
            learned = True
        return learned


# -- the verbs of `batchpay auth` ------------------------------------------------


def keygen(path: Path, alg: Algorithm = "ES256") -> dict[str, Any]:
    """Write a new DPoP keypair: the private key to ``path`` (PEM, 0600), the public JWK to
    ``path.pub.jwk``; return the public JWK (what to register in the merchant portal).

    Refuses to overwrite either file (ConfigError).
    """
    key = DPoPKey.generate(alg)
    public = {**key.public_jwk, "alg": alg, "use": "sig", "kid": key.thumbprint}
    public_path = path.with_name(path.name + ".pub.jwk")
    for target in (path, public_path):
        if target.exists():
            raise ConfigError(f"{target} already exists", hint="choose a new file name, or "
                              "remove the old key once nothing uses it")  # fmt: skip
    _write_new(path, key.pem(), 0o600)
    _write_new(public_path, (json.dumps(public, indent=2) + "\n").encode(), 0o644)
    return public


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        raise ConfigError(f"cannot create {path} ({exc.strerror})",
                          hint="check the folder exists and is writable") from None  # fmt: skip
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)  # whatever the umask


@dataclass(frozen=True, slots=True)
class AuthCheck:
    """What `batchpay auth check` found out."""

    environment: str
    """The mode and canonical API URL (as :attr:`Settings.environment`)."""
    credential: str
    """``OAuth client ant_oc_test_…abcd`` or ``API key ak_test_…abcd``."""
    merchant_id: str | None
    """The merchant the API says the credential belongs to, when it tells."""
    token_expires_at: datetime | None
    """The access token's end on the provider's clock (None for an API key)."""


async def check(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> AuthCheck:
    """Mint a token (for an OAuth client) and make one harmless call, ``GET /v1/balances``."""
    from batchpay.client import AntonClient, ApiKey
    from batchpay.config import Mode, credentials_for

    credentials = credentials_for(settings)
    sandbox = None
    if transport is None and settings.mode is Mode.EMBEDDED:
        from batchpay.sandbox import Sandbox, SandboxConfig

        sandbox = Sandbox(SandboxConfig())
        transport = sandbox.transport()
    try:
        async with AntonClient(settings.api_url, credentials, transport=transport,
                               timeout=settings.http_timeout) as client:  # fmt: skip
            balances = await client.list_balances()
    finally:
        if sandbox is not None:
            await sandbox.aclose()
    merchants = {str(b["merchant_id"]) for b in balances if b.get("merchant_id")}
    merchant = server_text(merchants.pop(), 64) if len(merchants) == 1 else None
    if isinstance(credentials, OAuthClient):
        what = f"OAuth client {credentials.masked_id}"
        expires = credentials.token_expires_at
    else:
        what = f"API key {credentials.masked}" if isinstance(credentials, ApiKey) else "unknown"
        expires = None
    return AuthCheck(settings.environment, what, merchant, expires)
