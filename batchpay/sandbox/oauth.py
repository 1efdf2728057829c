"""OAuth client credentials with DPoP, as the merchant spec describes them: the token
endpoint, the JWKS, and the check of every ``Authorization: DPoP`` request.

* ``POST /oauth/token`` — client authentication by HTTP Basic (or the form body's
  ``client_id``/``client_secret``), form body ``grant_type=client_credentials``, a DPoP
  proof for the token URL without ``ath``; answers ``{access_token, token_type: "DPoP",
  expires_in}`` with ``Cache-Control: no-store``, or an ``OAuthError`` (400, 401, 403).
* ``GET /.well-known/jwks.json`` — the public half of the sandbox's ES256 signing key.
* Every ``/v1`` request with ``Authorization: DPoP <token>`` (the gateway hands it here):
  the token's signature and expiry (8 hours, sandbox clock), and the proof — signature by
  the key the token is bound to (``cnf.jkt``), ``htm`` and ``htu`` against the request as the
  server was reached (normalised), ``iat`` within ±60 s of the sandbox clock, ``jti`` not
  seen in the last 5 minutes, ``ath`` the token's hash, and with ``dpop_nonce`` on, the
  server's nonce. A refusal is 401 with ``WWW-Authenticate: DPoP error="…"``.

Who may mint: the configured ``oauth_clients``, each with the public key ``dpop_jwk``
(default: the public half of the test keypair shipped as ``batchpay/data/
sandbox-dpop-test-key.jwk``, whose private half batchpay's tests and users of the sandbox
point ``BATCHPAY_DPOP_KEY_FILE`` at). Tokens, seen ``jti``s and the signing key live in
memory: a restarted sandbox has forgotten its tokens, and clients mint new ones.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import warnings
from collections.abc import Mapping
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from joserfc import jwk, jws
from joserfc.errors import JoseError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._util import dumps
from .clock import SandboxClock
from .config import SandboxConfig
from .problems import ApiProblem

ALGORITHMS = ("ES256", "Ed25519")
TEST_KEY_RESOURCE = "sandbox-dpop-test-key.jwk"
ISSUER = "https://api.antonpayments.dev"
_MAX_PROOF = 8192


def dpop_key_path() -> str:
    """Where the shipped test DPoP private key (a JWK) lives."""
    return str(resources.files("batchpay") / "data" / TEST_KEY_RESOURCE)


def dpop_public_jwk() -> dict[str, Any]:
    """The public half of the shipped test DPoP key."""
    data = json.loads((resources.files("batchpay") / "data" / TEST_KEY_RESOURCE).read_text())
    return {k: data[k] for k in ("kty", "crv", "x", "y") if k in data}


class ProofError(ValueError):
    """A DPoP proof (or token) failed a check; ``error`` is the OAuth error code."""

    def __init__(self, description: str, error: str = "invalid_dpop_proof") -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def normalise_uri(uri: str) -> str:
    """An http(s) URI without query and fragment, scheme and host lower-cased, default port
    dropped, an empty path as ``/`` (RFC 9449 §4.3, RFC 3986 §6.2.2-6.2.3)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port in (None, default) else f"{host}:{port}"
    return f"{scheme}://{netloc}{unquote(parts.path) or '/'}"


def reached_uri(scope: Mapping[str, Any]) -> str:
    """The URL the server was reached at, as the client named it (the Host header)."""
    host = ""
    for name, value in scope.get("headers", []):
        if name == b"host":
            host = value.decode("latin-1")
            break
    if not host:
        server = scope.get("server") or ("localhost", None)
        host = f"{server[0]}:{server[1]}" if server[1] else str(server[0])
    path = scope.get("root_path", "") + scope.get("path", "")
    return normalise_uri(f"{scope.get('scheme', 'http')}://{host}{path}")


def _header(scope: Mapping[str, Any], name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope.get("headers", []) if k == name]


class OAuthServer:
    """Token minting and DPoP checks for one sandbox (its clock, its clients, its keys)."""

    def __init__(self, config: SandboxConfig, clock: SandboxClock) -> None:
        self.config = config
        self.clock = clock
        self.accepts_keys = config.auth in ("keys", "both")
        self.accepts_oauth = config.auth in ("oauth", "both")
        self.clients: dict[str, str] = dict(config.oauth_clients)
        public = dict(config.dpop_jwk) if config.dpop_jwk is not None else dpop_public_jwk()
        self.client_key = _public_key(public)
        self.client_jkt = self.client_key.thumbprint()
        self._signing = jwk.ECKey.generate_key("P-256", auto_kid=True)
        self._seen: dict[tuple[str, str], float] = {}  # (jkt, jti) -> when it expires
        self._nonce_secret = secrets.token_bytes(16)

    # ------------------------------------------------------------ routes

    def routes(self) -> list[Route]:
        """The Starlette routes: the token endpoint and the JWKS."""
        return [
            Route("/oauth/token", self.token_endpoint, methods=["POST"]),
            Route("/.well-known/jwks.json", self.jwks_endpoint, methods=["GET"]),
        ]

    async def jwks_endpoint(self, request: Request) -> Response:
        """``GET /.well-known/jwks.json``: the public signing key, cached 5 minutes."""
        public = self._signing.as_dict(private=False)
        key = {"kty": "EC", "crv": "P-256", "x": public["x"], "y": public["y"],
               "alg": "ES256", "use": "sig", "kid": self._signing.kid}  # fmt: skip
        return Response(dumps({"keys": [key]}), media_type="application/json",
                        headers={"Cache-Control": "public, max-age=300"})  # fmt: skip

    async def token_endpoint(self, request: Request) -> Response:
        """``POST /oauth/token``: mint a DPoP-bound access token, or answer an OAuthError."""
        try:
            return self._mint(request, await request.body())
        except ProofError as exc:
            status = {"invalid_client": 401, "unauthorized_client": 403}.get(exc.error, 400)
            headers = {"Cache-Control": "no-store"}
            if exc.error == "invalid_client":
                headers["WWW-Authenticate"] = 'Basic realm="anton"'
            body = {"error": exc.error, "error_description": exc.description}
            return Response(dumps(body), status_code=status, media_type="application/json",
                            headers=headers)  # fmt: skip

    def _mint(self, request: Request, raw: bytes) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise ProofError("content type must be application/x-www-form-urlencoded",
                             "invalid_request")  # fmt: skip
        try:
            form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8"), strict_parsing=False).items()}
        except (UnicodeDecodeError, ValueError):
            raise ProofError("the form body cannot be read", "invalid_request") from None
        grant = form.get("grant_type")
        if not grant:
            raise ProofError("grant_type is required", "invalid_request")
        if grant != "client_credentials":
            raise ProofError("only grant_type=client_credentials is supported",
                             "unsupported_grant_type")  # fmt: skip
        client_id, secret = self._client_credentials(request, form)
        if client_id.startswith("ant_oc_live_"):
            raise ProofError("live clients are not accepted by the sandbox; use an "
                             "ant_oc_test_ client", "unauthorized_client")  # fmt: skip
        if not self.accepts_oauth:
            raise ProofError("OAuth is not enabled on this sandbox (--auth keys)",
                             "unauthorized_client")  # fmt: skip
        expected = self.clients.get(client_id)
        if expected is None or not hmac.compare_digest(expected.encode(), secret.encode()):
            raise ProofError("unknown client or wrong secret", "invalid_client")
        proofs = [h for k, h in request.headers.items() if k == "dpop"]
        if len(proofs) != 1:
            raise ProofError("exactly one DPoP header is required")
        jkt = self.verify_proof(proofs[0], "POST", reached_uri(request.scope), access_token=None)
        if jkt != self.client_jkt:
            raise ProofError("the proof is not signed by the key registered for this client")
        now = int(self.clock.time())
        ttl = int(self.config.token_ttl_seconds)
        claims = {"iss": ISSUER, "sub": client_id, "merchant_id": self.config.merchant_id,
                  "iat": now, "exp": now + ttl, "jti": secrets.token_hex(12),
                  "cnf": {"jkt": jkt}}  # fmt: skip
        token = jws.serialize_compact(
            {"typ": "at+jwt", "alg": "ES256", "kid": self._signing.kid},
            json.dumps(claims, separators=(",", ":")), self._signing, algorithms=["ES256"],
        )  # fmt: skip
        body = {"access_token": token, "token_type": "DPoP", "expires_in": ttl}
        return Response(dumps(body), media_type="application/json",
                        headers={"Cache-Control": "no-store", "Pragma": "no-cache"})  # fmt: skip

    def _client_credentials(self, request: Request, form: dict[str, str]) -> tuple[str, str]:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise ProofError("malformed Basic credentials", "invalid_client") from None
            client_id, sep, secret = decoded.partition(":")
            if not sep:
                raise ProofError("malformed Basic credentials", "invalid_client")
            return unquote(client_id), unquote(secret)
        if header:
            raise ProofError("client authentication must be HTTP Basic", "invalid_client")
        if form.get("client_id") and form.get("client_secret"):
            return form["client_id"], form["client_secret"]
        raise ProofError("client authentication is required", "invalid_client")

    # ------------------------------------------------------------ /v1

    def authenticate(self, token: str, scope: Mapping[str, Any]) -> ApiProblem | None:
        """Check ``Authorization: DPoP <token>`` and the ``DPoP`` proof of a /v1 request."""
        if not self.accepts_oauth:
            return ApiProblem(401, "unauthorized",
                              "OAuth is not enabled on this sandbox (--auth keys); use an "
                              "ak_test_ API key")  # fmt: skip
        try:
            claims = self._verify_token(token)
            proofs = _header(scope, b"dpop")
            if not proofs:
                raise ProofError("a DPoP proof is required with a DPoP access token")
            if len(proofs) > 1:
                raise ProofError("exactly one DPoP header is allowed")
            jkt = self.verify_proof(proofs[0], str(scope.get("method", "")),
                                    reached_uri(scope), access_token=token)  # fmt: skip
            if jkt != claims.get("cnf", {}).get("jkt"):
                raise ProofError("the proof is not signed by the key the token is bound to")
            if self.clock.time() >= float(claims["exp"]):
                raise ProofError("the access token has expired", "invalid_token")
        except ProofError as exc:
            challenge = f'DPoP algs="{" ".join(ALGORITHMS)}", error="{exc.error}", ' \
                        f'error_description="{exc.description}"'  # fmt: skip
            headers = {"WWW-Authenticate": challenge}
            if exc.error == "use_dpop_nonce":
                headers["DPoP-Nonce"] = self.current_nonce()
            return ApiProblem(401, exc.error, exc.description, headers=headers)
        return None

    def keys_refused(self) -> ApiProblem:
        """The answer to a static API key when only OAuth is accepted."""
        return ApiProblem(401, "unauthorized",
                          "static API keys are not accepted on v1; use OAuth client "
                          "credentials with a DPoP proof",
                          headers={"WWW-Authenticate": f'DPoP algs="{" ".join(ALGORITHMS)}"'},
                          )  # fmt: skip

    def _verify_token(self, token: str) -> dict[str, Any]:
        try:
            obj = jws.deserialize_compact(token, self._signing, algorithms=["ES256"])
            claims = json.loads(obj.payload)
        except (JoseError, ValueError, TypeError):
            raise ProofError("the access token is not valid", "invalid_token") from None
        if not isinstance(claims, dict) or claims.get("sub") not in self.clients:
            raise ProofError("the access token is not valid", "invalid_token")
        return claims

    # ------------------------------------------------------------ proofs

    def verify_proof(self, value: str, method: str, url: str, *, access_token: str | None) -> str:
        """Check one DPoP proof for ``method url``; return its key's thumbprint (``jkt``)."""
        if len(value) > _MAX_PROOF:
            raise ProofError("the DPoP proof is too long")
        try:
            obj = jws.extract_compact(value.strip().encode("ascii"))
            header = obj.headers()
        except (JoseError, ValueError, UnicodeEncodeError):
            raise ProofError("the DPoP proof is not a JWT") from None
        if header.get("typ") != "dpop+jwt":
            raise ProofError('the DPoP proof must have typ "dpop+jwt"')
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise ProofError(f"the DPoP proof's alg must be one of {', '.join(ALGORITHMS)}")
        public = header.get("jwk")
        if not isinstance(public, dict) or "d" in public:
            raise ProofError("the DPoP proof must carry its public key (jwk) and no private one")
        key = _public_key(public)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                valid = jws.validate_compact(obj, key, algorithms=[alg])
        except (JoseError, ValueError, TypeError):
            valid = False
        if not valid:
            raise ProofError("the DPoP proof's signature does not verify")
        try:
            claims = json.loads(obj.payload)
        except ValueError:
            raise ProofError("the DPoP proof's claims are not JSON") from None
        if not isinstance(claims, dict):
            raise ProofError("the DPoP proof's claims are not an object")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise ProofError("the DPoP proof needs a jti")
        if claims.get("htm") != method:
            raise ProofError(f"the DPoP proof is for another method (htm must be {method})")
        htu = claims.get("htu")
        if not isinstance(htu, str) or normalise_uri(htu) != url:
            raise ProofError(f"the DPoP proof is for another URL (htu must be {url})")
        iat = claims.get("iat")
        now = self.clock.time()
        leeway = self.config.dpop_iat_leeway_seconds
        if not isinstance(iat, int | float) or isinstance(iat, bool) or abs(now - iat) > leeway:
            raise ProofError(f"the DPoP proof's iat is not within {leeway:g} s of the server "
                             "clock")  # fmt: skip
        if access_token is None:
            if "ath" in claims:
                raise ProofError("the token request's proof must not carry ath")
        else:
            ath = _b64url(hashlib.sha256(access_token.encode("ascii")).digest())
            if claims.get("ath") != ath:
                raise ProofError("the DPoP proof's ath does not match the access token")
            if self.config.dpop_nonce and claims.get("nonce") not in self._nonces():
                raise ProofError("the server requires a DPoP nonce", "use_dpop_nonce")
        jkt = key.thumbprint()
        self._remember(jkt, jti, now)
        return jkt

    def _remember(self, jkt: str, jti: str, now: float) -> None:
        window = self.config.dpop_jti_window_seconds
        for seen, until in list(self._seen.items()):
            if until <= now:
                del self._seen[seen]
        if (jkt, jti) in self._seen:
            raise ProofError("the DPoP proof was already used (jti replayed)")
        self._seen[(jkt, jti)] = now + window

    # ------------------------------------------------------------ nonces

    def _nonce_at(self, epoch: int) -> str:
        mac = hmac.new(self._nonce_secret, str(epoch).encode(), hashlib.sha256).digest()
        return _b64url(mac[:18])

    def current_nonce(self) -> str:
        """The server's DPoP nonce now (a new one every 5 minutes of sandbox time)."""
        return self._nonce_at(int(self.clock.time() // 300))

    def _nonces(self) -> set[str]:
        epoch = int(self.clock.time() // 300)
        return {self._nonce_at(epoch), self._nonce_at(epoch - 1)}


def _public_key(data: Mapping[str, Any]) -> jwk.ECKey | jwk.OKPKey:
    """A public ES256 (P-256) or Ed25519 key from a JWK; ValueError otherwise."""
    public = {k: data[k] for k in ("kty", "crv", "x", "y") if k in data}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            key = jwk.import_key(public)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError):
        raise ProofError("the DPoP key is not a valid JWK") from None
    if isinstance(key, jwk.ECKey) and key.curve_name == "P-256":
        return key
    if isinstance(key, jwk.OKPKey) and key.curve_name == "Ed25519":
        return key
    raise ProofError("the DPoP key must be P-256 (ES256) or Ed25519")
