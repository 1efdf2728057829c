"""OAuthClient: minting, caching and renewing the DPoP token, and each request's proof."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from joserfc import jws

from batchpay.auth import DPoPKey, OAuthClient, keygen
from batchpay.client import AntonClient, RetryPolicy
from batchpay.errors import AuthenticationError, ConfigError, ExitCode
from batchpay.sandbox import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    Sandbox,
    SandboxConfig,
    dpop_key_path,
)

pytestmark = pytest.mark.anyio

BASE = "http://sandbox.test"
KEY = DPoPKey.load(Path(dpop_key_path()).read_text())


class Seen(httpx.AsyncBaseTransport):
    """Passes requests to the sandbox and keeps each one (headers and body) with its status."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[tuple[httpx.Request, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        content = await request.aread()
        response = await self.inner.handle_async_request(request)
        # a snapshot: the auth flow re-sends the same Request object with new headers
        copy = httpx.Request(request.method, request.url, headers=request.headers.copy(),
                             content=content)  # fmt: skip
        self.sent.append((copy, response.status_code))
        return response

    def to(self, path: str) -> list[tuple[httpx.Request, int]]:
        """The exchanges with ``path``."""
        return [(r, s) for r, s in self.sent if r.url.path == path]


def claims(request: httpx.Request) -> dict[str, object]:
    """The claims of the request's DPoP proof."""
    payload = jws.extract_compact(request.headers["dpop"].encode()).payload
    return dict(json.loads(payload))


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    """A manual-clock sandbox that accepts OAuth only, no rate limit."""
    sandbox = Sandbox(SandboxConfig(manual_clock=True, auth="oauth", rate_limit_per_minute=None))
    yield sandbox
    await sandbox.aclose()


def oauth(secret: str = DEFAULT_CLIENT_SECRET) -> OAuthClient:
    """The sandbox's test client with its test key."""
    return OAuthClient(DEFAULT_CLIENT_ID, secret, KEY)


async def test_one_token_serves_many_concurrent_requests(sb: Sandbox) -> None:
    """Twenty requests at once: one token request, then each with its own fresh proof."""
    seen = Seen(sb.transport())
    async with AntonClient(BASE, oauth(), transport=seen) as client:
        await asyncio.gather(*(client.list_balances() for _ in range(20)))
    assert len(seen.to("/oauth/token")) == 1
    calls = seen.to("/v1/balances")
    assert len(calls) == 20 and {s for _, s in calls} == {200}
    jtis = {claims(r)["jti"] for r, _ in calls}
    assert len(jtis) == 20  # a unique jti per request


async def test_the_token_request_and_each_proof_are_as_the_spec_says(sb: Sandbox) -> None:
    """Basic credentials, the form body, no ath at /oauth/token; htm, htu, iat, ath on /v1."""
    seen = Seen(sb.transport())
    async with AntonClient(BASE, oauth(), transport=seen) as client:
        await client.get_balance("USD")
        [p async for p in client.iter_payouts(reference="INV-1")]
    (token_request, status), = seen.to("/oauth/token")  # fmt: skip
    assert status == 200
    expected = base64.b64encode(f"{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}".encode()).decode()
    assert token_request.headers["authorization"] == f"Basic {expected}"
    assert token_request.content == b"grant_type=client_credentials"
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "ath" not in claims(token_request) and claims(token_request)["htm"] == "POST"
    (listing, _), = seen.to("/v1/payouts")  # fmt: skip
    assert listing.url.query  # the request had a query string ...
    assert claims(listing)["htu"] == f"{BASE}/v1/payouts"  # ... the proof's htu does not
    access_token = listing.headers["authorization"].removeprefix("DPoP ")
    digest = hashlib.sha256(access_token.encode()).digest()
    assert claims(listing)["ath"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert abs(float(str(claims(listing)["iat"])) - sb.clock.time()) <= 2
    jwk_header = jws.extract_compact(listing.headers["dpop"].encode()).headers()["jwk"]
    assert "d" not in jwk_header  # the proof carries the public key only


async def test_an_expired_token_is_renewed_and_the_same_request_sent_again(sb: Sandbox) -> None:
    """Past 8 h: the same POST (same body and Idempotency-Key) goes again; one payout."""
    seen = Seen(sb.transport())
    async with AntonClient(BASE, oauth(), transport=seen) as client:
        await client.list_balances()
        await sb.advance(8 * 3600 + 30)
        with pytest.raises(Exception) as caught:  # a made-up payout: 4xx, but authenticated
            await client.create_payout({"x": "1"}, idempotency_key="key-1")
        assert getattr(caught.value, "status", None) not in (401, None)
    posts = seen.to("/v1/payouts")
    assert posts[0][1] == 401 and posts[-1][1] != 401
    assert {r.content for r, _ in posts} == {b'{"x":"1"}'}
    assert {r.headers["idempotency-key"] for r, _ in posts} == {"key-1"}
    assert len({r.headers["dpop"] for r, _ in posts}) == len(posts)  # a new proof each time
    assert len(seen.to("/oauth/token")) == 2


async def test_a_token_is_renewed_before_it_ends(sb: Sandbox) -> None:
    """Inside the last five minutes of its life the token is replaced without a 401."""
    seen = Seen(sb.transport())
    creds = OAuthClient(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, KEY, wall_clock=sb.clock.time)
    async with AntonClient(BASE, creds, transport=seen) as client:
        await client.list_balances()
        await sb.advance(8 * 3600 - 400)
        await client.list_balances()  # still the first token
        assert len(seen.to("/oauth/token")) == 1
        await sb.advance(200)  # 200 s left: renewed before use
        await client.list_balances()
    assert len(seen.to("/oauth/token")) == 2
    assert [s for _, s in seen.to("/v1/balances")] == [200, 200, 200]


async def test_a_nonce_challenge_is_answered_once(sb: Sandbox) -> None:
    """use_dpop_nonce: the request goes again with the server's nonce, transparently."""
    nonced = Sandbox(SandboxConfig(manual_clock=True, auth="oauth", dpop_nonce=True))
    try:
        seen = Seen(nonced.transport())
        async with AntonClient(BASE, oauth(), transport=seen) as client:
            await client.list_balances()
            await client.list_balances()
        statuses = [s for _, s in seen.to("/v1/balances")]
        assert statuses == [401, 200, 200]  # the nonce is kept for the next request
        assert "nonce" in claims(seen.to("/v1/balances")[-1][0])
    finally:
        await nonced.aclose()


async def test_a_client_clock_hours_off_still_gets_in(sb: Sandbox) -> None:
    """The proof's iat follows the provider's clock once an answer's Date tells it."""
    skewed = OAuthClient(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, KEY,
                         wall_clock=lambda: sb.clock.time() - 3 * 3600)  # fmt: skip
    async with AntonClient(BASE, skewed, transport=sb.transport()) as client:
        assert await client.list_balances()


async def test_refused_client_credentials_stop_with_exit_7_and_no_secret(sb: Sandbox) -> None:
    """A wrong secret: AuthenticationError (exit 7), not retried, the secret nowhere."""
    wrong = "ant_ocs_test_WRONGSECRET0123456789"
    seen = Seen(sb.transport())
    async with AntonClient(BASE, oauth(wrong), transport=seen,
                           retry=RetryPolicy(max_attempts=3)) as client:  # fmt: skip
        with pytest.raises(AuthenticationError) as caught:
            await client.list_balances()
    assert caught.value.exit_code == ExitCode.AUTHENTICATION
    assert caught.value.code == "invalid_client" and "BATCHPAY_CLIENT_ID" in caught.value.hint
    assert wrong not in str(caught.value) and wrong not in caught.value.message
    assert len(seen.to("/oauth/token")) == 1 and seen.to("/v1/balances") == []


async def test_redact_and_repr_hide_the_secret_and_the_token(sb: Sandbox) -> None:
    """The secret and every token held are masked; the repr shows the id's prefix only."""
    creds = oauth()
    seen = Seen(sb.transport())
    async with AntonClient(BASE, creds, transport=seen) as client:
        await client.list_balances()
    access_token = seen.to("/v1/balances")[0][0].headers["authorization"].split(" ", 1)[1]
    text = creds.redact(f"secret {DEFAULT_CLIENT_SECRET} token {access_token}")
    assert DEFAULT_CLIENT_SECRET not in text and access_token not in text
    assert DEFAULT_CLIENT_SECRET not in repr(creds) and repr(creds).startswith("OAuthClient(")
    assert creds.token_expires_at is not None


def test_a_sync_client_is_refused() -> None:
    """The token is minted in the async flow; a sync httpx client fails loudly, not silently."""
    with (
        httpx.Client(
            auth=oauth(), transport=httpx.MockTransport(lambda r: httpx.Response(200))
        ) as client,
        pytest.raises(RuntimeError, match="AsyncClient"),
    ):
        client.get("http://x.test/v1/balances")


@pytest.mark.parametrize("alg", ["ES256", "Ed25519"])
def test_keys_load_from_pem_and_jwk(alg: str, tmp_path: Path) -> None:
    """Both algorithms, both formats, to the same key; a public key or junk is refused."""
    key = DPoPKey.generate(alg)  # type: ignore[arg-type]
    from_pem = DPoPKey.load(key.pem().decode())
    assert from_pem.thumbprint == key.thumbprint and from_pem.alg == alg
    private_jwk = json.loads(Path(dpop_key_path()).read_text())
    assert DPoPKey.load(json.dumps(private_jwk)).thumbprint == KEY.thumbprint
    for bad in (json.dumps(key.public_jwk), "-----BEGIN PUBLIC KEY-----\nAAAA\n", "hello",
                "{not json", '{"kty": "RSA", "d": "x"}'):  # fmt: skip
        with pytest.raises(ValueError):
            DPoPKey.load(bad)


def test_keygen_writes_a_private_key_0600_and_the_public_jwk(tmp_path: Path) -> None:
    """The private PEM is readable by its owner only; the .pub.jwk has no private part."""
    path = tmp_path / "dpop.pem"
    public = keygen(path, "Ed25519")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert DPoPKey.load(path.read_text()).thumbprint == public["kid"]
    on_disk = json.loads((tmp_path / "dpop.pem.pub.jwk").read_text())
    assert on_disk == public and "d" not in on_disk and on_disk["alg"] == "Ed25519"
    with pytest.raises(ConfigError, match="already exists"):
        keygen(path)
