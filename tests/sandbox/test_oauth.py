"""The sandbox's OAuth client credentials with DPoP: the token endpoint and every proof check."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwk, jws

from batchpay.auth import DPoPKey, proof
from batchpay.sandbox import (
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    Sandbox,
    SandboxConfig,
    dpop_key_path,
)
from batchpay.sandbox.oauth import normalise_uri

pytestmark = pytest.mark.anyio

BASE = "http://sandbox.local"
TOKEN_URL = f"{BASE}/oauth/token"
KEY = DPoPKey.load(Path(dpop_key_path()).read_text())
KEY_HEADER = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}


def basic(client_id: str = DEFAULT_CLIENT_ID, secret: str = DEFAULT_CLIENT_SECRET) -> str:
    """An HTTP Basic header value."""
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    """A manual-clock sandbox that accepts OAuth only."""
    sandbox = Sandbox(SandboxConfig(manual_clock=True, auth="oauth"))
    yield sandbox
    await sandbox.aclose()


@pytest.fixture
async def http(sb: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """A bare httpx client to the sandbox (no credentials of its own)."""
    async with httpx.AsyncClient(transport=sb.transport(), base_url=BASE) as client:
        yield client


async def mint(
    http: httpx.AsyncClient,
    sb: Sandbox,
    *,
    key: DPoPKey = KEY,
    dpop: str | None = "make",
    authorization: str | None = None,
    body: str = "grant_type=client_credentials",
) -> httpx.Response:
    """POST /oauth/token as a client would (each part replaceable)."""
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "Authorization": authorization or basic()}  # fmt: skip
    if dpop == "make":
        dpop = proof(key, "POST", TOKEN_URL, now=sb.clock.time())
    if dpop is not None:
        headers["DPoP"] = dpop
    return await http.post("/oauth/token", content=body, headers=headers)


async def token(http: httpx.AsyncClient, sb: Sandbox) -> str:
    """A freshly minted access token for the default client."""
    response = await mint(http, sb)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def call(
    http: httpx.AsyncClient,
    sb: Sandbox,
    access_token: str,
    *,
    method: str = "GET",
    path: str = "/v1/balances",
    proof_for: tuple[str, str] | None = None,
    iat_offset: float = 0,
    dpop: str | None = "make",
) -> httpx.Response:
    """One /v1 request with the token and a proof (for another method/URL if asked)."""
    htm, htu = proof_for or (method, BASE + path)
    headers = {"Authorization": f"DPoP {access_token}"}
    if dpop == "make":
        dpop = proof(KEY, htm, htu, now=sb.clock.time() + iat_offset, access_token=access_token)
    if dpop is not None:
        headers["DPoP"] = dpop
    return await http.request(method, path, headers=headers)


def challenge(response: httpx.Response) -> str:
    """The error of the answer's WWW-Authenticate: DPoP challenge."""
    value = response.headers["www-authenticate"]
    assert value.startswith("DPoP ")
    return value.split('error="', 1)[1].split('"', 1)[0]


async def test_a_token_is_minted_as_the_spec_says(http: httpx.AsyncClient, sb: Sandbox) -> None:
    """200 with a DPoP token valid 8 hours, not cached; it opens /v1 with a proof."""
    response = await mint(http, sb)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "DPoP" and body["expires_in"] == 8 * 3600
    assert response.headers["cache-control"] == "no-store"
    answer = await call(http, sb, body["access_token"])
    assert answer.status_code == 200 and answer.json()["data"]


async def test_the_token_is_signed_by_the_published_key(
    http: httpx.AsyncClient, sb: Sandbox
) -> None:
    """The JWKS key verifies the token; the token is bound to the proof's key (cnf.jkt)."""
    access_token = await token(http, sb)
    keys = (await http.get("/.well-known/jwks.json")).json()["keys"]
    assert [k["alg"] for k in keys] == ["ES256"] and "d" not in keys[0]
    verified = jws.deserialize_compact(access_token, jwk.import_key(keys[0]), algorithms=["ES256"])
    claims = json.loads(verified.payload)
    assert claims["cnf"]["jkt"] == KEY.thumbprint and claims["sub"] == DEFAULT_CLIENT_ID
    assert claims["exp"] - claims["iat"] == 8 * 3600


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"authorization": basic(secret="ant_ocs_test_wrongwrongwrong")}, 401, "invalid_client"),
        ({"authorization": basic(client_id="ant_oc_test_someoneelse")}, 401, "invalid_client"),
        ({"authorization": basic(client_id="ant_oc_live_someoneelse")}, 403,
         "unauthorized_client"),
        ({"body": "grant_type=password"}, 400, "unsupported_grant_type"),
        ({"body": "scope=x"}, 400, "invalid_request"),
        ({"dpop": None}, 400, "invalid_dpop_proof"),
        ({"key": DPoPKey.generate()}, 400, "invalid_dpop_proof"),  # not the registered key
    ],
    ids=["wrong-secret", "unknown-client", "live-client", "grant", "no-grant", "no-proof",
         "unregistered-key"],
)  # fmt: skip
async def test_the_token_endpoint_refuses_with_an_oauth_error(
    http: httpx.AsyncClient, sb: Sandbox, change: dict[str, Any], status: int, error: str
) -> None:
    """Each refusal is the flat OAuthError body with the right status."""
    response = await mint(http, sb, **change)
    assert response.status_code == status
    assert response.json()["error"] == error and response.json()["error_description"]


async def test_a_token_requests_proof_must_not_carry_ath(
    http: httpx.AsyncClient, sb: Sandbox
) -> None:
    """The token does not exist yet: a proof with ath is refused."""
    bad = proof(KEY, "POST", TOKEN_URL, now=sb.clock.time(), access_token="x" * 20)
    response = await mint(http, sb, dpop=bad)
    assert response.status_code == 400 and "ath" in response.json()["error_description"]


async def test_a_replayed_proof_is_refused(http: httpx.AsyncClient, sb: Sandbox) -> None:
    """The same proof (same jti) a second time within 5 minutes: 401 invalid_dpop_proof."""
    access_token = await token(http, sb)
    once = proof(KEY, "GET", BASE + "/v1/balances", now=sb.clock.time(), access_token=access_token)
    assert (await call(http, sb, access_token, dpop=once)).status_code == 200
    again = await call(http, sb, access_token, dpop=once)
    assert again.status_code == 401 and challenge(again) == "invalid_dpop_proof"
    assert "replayed" in again.json()["error"]["message"]


@pytest.mark.parametrize(
    "proof_for",
    [("POST", BASE + "/v1/balances"), ("GET", BASE + "/v1/payouts"),
     ("GET", "http://elsewhere.example/v1/balances"), ("GET", "https://sandbox.local/v1/balances")],
    ids=["other-method", "other-path", "other-host", "other-scheme"],
)  # fmt: skip
async def test_a_proof_for_another_method_or_url_is_refused(
    http: httpx.AsyncClient, sb: Sandbox, proof_for: tuple[str, str]
) -> None:
    """htm and htu must name this request as the server was reached."""
    response = await call(http, sb, await token(http, sb), proof_for=proof_for)
    assert response.status_code == 401 and challenge(response) == "invalid_dpop_proof"


async def test_the_htu_is_compared_normalised(http: httpx.AsyncClient, sb: Sandbox) -> None:
    """Case of scheme and host, the default port and the query do not matter."""
    access_token = await token(http, sb)
    for htu in ("HTTP://SANDBOX.LOCAL:80/v1/balances", BASE + "/v1/balances?x=1"):
        response = await call(http, sb, access_token, proof_for=("GET", htu))
        assert response.status_code == 200, htu
    assert normalise_uri("https://A.example:443") == "https://a.example/"


@pytest.mark.parametrize("offset", [-61.0, 61.0, -3600.0], ids=["stale", "future", "hour-old"])
async def test_a_stale_or_future_iat_is_refused(
    http: httpx.AsyncClient, sb: Sandbox, offset: float
) -> None:
    """iat must be within ±60 s of the sandbox clock (not the wall clock)."""
    access_token = await token(http, sb)
    response = await call(http, sb, access_token, iat_offset=offset)
    assert response.status_code == 401 and "iat" in response.json()["error"]["message"]
    assert (await call(http, sb, access_token, iat_offset=59)).status_code == 200


async def test_a_token_without_a_proof_is_refused(http: httpx.AsyncClient, sb: Sandbox) -> None:
    """Authorization: DPoP alone is not enough; neither is the token as a bearer."""
    access_token = await token(http, sb)
    response = await call(http, sb, access_token, dpop=None)
    assert response.status_code == 401 and challenge(response) == "invalid_dpop_proof"
    bearer = await http.get("/v1/balances", headers={"Authorization": f"Bearer {access_token}"})
    assert bearer.status_code == 401


async def test_a_proof_for_another_token_is_refused(http: httpx.AsyncClient, sb: Sandbox) -> None:
    """ath binds the proof to this token."""
    first, second = await token(http, sb), await token(http, sb)
    wrong = proof(KEY, "GET", BASE + "/v1/balances", now=sb.clock.time(), access_token=second)
    response = await call(http, sb, first, dpop=wrong)
    assert response.status_code == 401 and "ath" in response.json()["error"]["message"]


async def test_a_token_ends_after_8_sandbox_hours(http: httpx.AsyncClient, sb: Sandbox) -> None:
    """On the sandbox clock: valid just before, invalid_token after."""
    access_token = await token(http, sb)
    await sb.advance(8 * 3600 - 2)
    assert (await call(http, sb, access_token)).status_code == 200
    await sb.advance(3)
    response = await call(http, sb, access_token)
    assert response.status_code == 401 and challenge(response) == "invalid_token"


async def test_oauth_only_refuses_static_keys_and_keys_only_refuses_oauth(sb: Sandbox) -> None:
    """--auth oauth answers an API key 401; --auth keys answers a DPoP token 401."""
    async with httpx.AsyncClient(transport=sb.transport(), base_url=BASE) as http:
        refused = await http.get("/v1/balances",
                                 headers=KEY_HEADER)  # fmt: skip
        assert refused.status_code == 401 and "static API keys" in refused.text
        assert refused.headers["www-authenticate"].startswith("DPoP")
    keys_only = Sandbox(SandboxConfig(manual_clock=True, auth="keys"))
    try:
        async with httpx.AsyncClient(transport=keys_only.transport(), base_url=BASE) as http:
            assert (await mint(http, keys_only)).status_code == 403
            ok = await http.get("/v1/balances",
                                headers=KEY_HEADER)  # fmt: skip
            assert ok.status_code == 200
    finally:
        await keys_only.aclose()


async def test_both_is_the_default(http: httpx.AsyncClient) -> None:
    """The default sandbox takes an API key and an OAuth token alike."""
    sb = Sandbox(SandboxConfig(manual_clock=True))
    try:
        async with httpx.AsyncClient(transport=sb.transport(), base_url=BASE) as both:
            access_token = await token(both, sb)
            assert (await call(both, sb, access_token)).status_code == 200
            key = await both.get("/v1/balances",
                                 headers=KEY_HEADER)  # fmt: skip
            assert key.status_code == 200
    finally:
        await sb.aclose()


async def test_a_registered_ed25519_key_and_client_can_be_configured(tmp_path: Path) -> None:
    """oauth_clients and dpop_jwk choose who may mint; an Ed25519 key works end to end."""
    key = DPoPKey.generate("Ed25519")
    client = ("ant_oc_test_mine0123456789", "ant_ocs_test_mine0123456789")
    sb = Sandbox(SandboxConfig(manual_clock=True, auth="oauth", oauth_clients=(client,),
                               dpop_jwk=key.public_jwk))  # fmt: skip
    try:
        async with httpx.AsyncClient(transport=sb.transport(), base_url=BASE) as http:
            assert (await mint(http, sb)).status_code == 401  # the default client is gone
            response = await mint(http, sb, key=key, authorization=basic(*client))
            assert response.status_code == 200
            access_token = response.json()["access_token"]
            dpop = proof(key, "GET", BASE + "/v1/balances", now=sb.clock.time(),
                         access_token=access_token)  # fmt: skip
            assert (await call(http, sb, access_token, dpop=dpop)).status_code == 200
    finally:
        await sb.aclose()


async def test_a_nonce_challenge_is_issued_when_asked(sb: Sandbox) -> None:
    """dpop_nonce=True: a proof without the nonce gets use_dpop_nonce and a DPoP-Nonce."""
    nonced = Sandbox(SandboxConfig(manual_clock=True, auth="oauth", dpop_nonce=True))
    try:
        async with httpx.AsyncClient(transport=nonced.transport(), base_url=BASE) as http:
            access_token = await token(http, nonced)
            response = await call(http, nonced, access_token)
            assert response.status_code == 401 and challenge(response) == "use_dpop_nonce"
            nonce = response.headers["dpop-nonce"]
            dpop = proof(KEY, "GET", BASE + "/v1/balances", now=nonced.clock.time(),
                         access_token=access_token, nonce=nonce)  # fmt: skip
            assert (await call(http, nonced, access_token, dpop=dpop)).status_code == 200
    finally:
        await nonced.aclose()
