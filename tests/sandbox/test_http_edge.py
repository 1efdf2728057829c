"""The HTTP edge: wrong methods, routes not implemented, bodies that break parsing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml

from batchpay.sandbox import Sandbox
from batchpay.sandbox.gateway import MB, V1_ROUTES, body_limit, route_of
from batchpay.sandbox.routes import UNIMPLEMENTED

from .helpers import error_code, individual, post

pytestmark = pytest.mark.anyio

SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "anton-openapi-merchant.yaml"


def _is_envelope(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"]
    assert set(response.json()) == {"error"}
    assert error_code(response) == code
    assert response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/v1/payouts", "GET, HEAD, POST"),
        ("PUT", "/v1/payouts/pay_x", "GET, HEAD"),
        ("GET", "/v1/payouts/pay_x/cancel", "POST"),
        ("PATCH", "/v1/webhooks/wbh_x/secret/rotate", "POST"),
        ("PUT", "/_sandbox/faults", "DELETE, GET, HEAD, POST"),
        ("GET", "/_sandbox/reset", "POST"),
    ],
)
async def test_wrong_method_is_405_naming_the_allowed_ones(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    """A path served with another method answers 405 method_not_allowed with its Allow list."""
    response = await client.request(method, path)
    _is_envelope(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allow


async def test_every_method_in_allow_is_served(client: httpx.AsyncClient) -> None:
    """What Allow lists for a path really is served there (no 405 for any of them)."""
    allow = (await client.delete("/v1/payouts")).headers["allow"].split(", ")
    for method in allow:
        response = await client.request(method, "/v1/payouts", headers={"Idempotency-Key": "a"})
        assert response.status_code != 405, method


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/webhooks/events"),
        ("GET", "/v1/instruments/methods"),
        ("GET", "/v1/instruments/countries"),
        ("POST", "/v1/beneficiaries/import"),
        ("DELETE", "/v1/webhooks/events"),
        ("GET", "/v1/webhooks/events/evt_1"),
    ],
)
async def test_spec_routes_not_implemented_are_not_found(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    """A route of the spec the sandbox lacks is 404 not_found, not a resource's 404."""
    response = await client.request(method, path, headers={"Idempotency-Key": "u"})
    _is_envelope(response, 404, "not_found")
    assert response.json()["error"]["message"] == "no such endpoint"


async def test_malformed_ids_still_answer_the_resource_404(client: httpx.AsyncClient) -> None:
    """Deviation 12 is unchanged: a malformed id under an implemented route is *_not_found."""
    for path, code in [
        ("/v1/payouts/abc", "payout_not_found"),
        ("/v1/webhooks/eventsx", "webhook_subscription_not_found"),
        ("/v1/instruments/method", "instrument_not_found"),
    ]:
        _is_envelope(await client.get(path), 404, code)


def test_every_spec_path_a_parametrised_route_would_swallow_is_listed() -> None:
    """UNIMPLEMENTED is exactly the spec's paths that an implemented {param} route matches."""
    spec_paths = set(yaml.safe_load(SPEC_PATH.read_text())["paths"])
    templates = {template for _, template in V1_ROUTES}
    swallowed = set()
    for path in spec_paths - templates:
        for template in templates:
            if re.fullmatch(re.sub(r"\{[a-z_]+\}", "[^/]+", template), path):
                swallowed.add(path)
    assert swallowed == set(UNIMPLEMENTED)


async def test_fault_plans_for_a_parametrised_route_skip_unimplemented_paths(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    """GET /v1/webhooks/events is its own route: a plan for GET /v1/webhooks/{id} waits."""
    assert route_of("GET", "/v1/webhooks/events") == "GET /v1/webhooks/events"
    sandbox.faults.plan("GET /v1/webhooks/{id}", ["503"])
    assert (await client.get("/v1/webhooks/events")).status_code == 404
    assert (await client.get("/v1/webhooks/wbh_x")).status_code == 503


BROKEN_BODIES = {
    "1000 arrays deep": b"[" * 1000 + b"]" * 1000,
    "1000 objects deep": b'{"a":' * 1000 + b"1" + b"}" * 1000,
    "100k arrays deep": b"[" * 100_000,
    "65 objects deep": b'{"reference":' * 65 + b"1" + b"}" * 65,
    "invalid UTF-8": b'{"reference": "caf\xe9"}',
    "UTF-16": '{"reference": "x"}'.encode("utf-16"),
    "lone surrogate": b'{"reference": "\\ud800"}',
    "NaN": b'{"dest_amount": NaN}',
    "Infinity": b'{"dest_amount": -Infinity}',
    "5000-digit number": b'{"dest_amount": ' + b"9" * 5000 + b"}",
    "truncated": b'{"reference": "x',
    "array": b"[1, 2]",
    "string": b'"payout"',
    "number": b"42",
    "null": b"null",
}
BODY_ROUTES = [
    "/v1/payouts",
    "/v1/beneficiaries",
    "/v1/webhooks",
    "/v1/payouts/pay_missing/cancel",
    "/_sandbox/clock/advance",
    "/_sandbox/faults",
    "/_sandbox/balances",
]


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize("name", list(BROKEN_BODIES))
async def test_a_body_that_breaks_parsing_is_invalid_request_body(
    client: httpx.AsyncClient, path: str, name: str
) -> None:
    """Deep, mis-encoded, non-standard or non-object JSON is 400 invalid_request_body."""
    response = await client.post(
        path,
        content=BROKEN_BODIES[name],
        headers={"Idempotency-Key": f"broken-{name}", "Content-Type": "application/json"},
    )
    _is_envelope(response, 400, "invalid_request_body")


async def test_instrument_creation_refuses_broken_bodies(
    client: httpx.AsyncClient, payee: tuple[str, str]
) -> None:
    """The nested create route parses the same way."""
    path = f"/v1/beneficiaries/{payee[0]}/instruments"
    for name, body in BROKEN_BODIES.items():
        response = await client.post(
            path,
            content=body,
            headers={"Idempotency-Key": f"ins-{name}", "Content-Type": "application/json"},
        )
        _is_envelope(response, 400, "invalid_request_body")


async def test_what_was_wrong_is_in_the_message(client: httpx.AsyncClient) -> None:
    """The message says which rule the body broke."""
    expected = {
        "1000 objects deep": "request body is nested more than 64 levels deep",
        "100k arrays deep": "request body is nested more than 64 levels deep",
        "65 objects deep": "request body is nested more than 64 levels deep",
        "invalid UTF-8": "request body is not valid UTF-8",
        "lone surrogate": "request body has an unpaired \\u surrogate escape",
        "NaN": "request body is not valid JSON",
        "array": "request body must be a JSON object",
    }
    for name, message in expected.items():
        response = await client.post(
            "/v1/payouts",
            content=BROKEN_BODIES[name],
            headers={"Idempotency-Key": f"m-{name}", "Content-Type": "application/json"},
        )
        assert response.json()["error"]["message"] == message, name


async def test_64_levels_is_still_parsed(client: httpx.AsyncClient) -> None:
    """The depth bound is 64: such a body reaches validation (here: an unknown field)."""
    body = b'{"nickname":' * 63 + b"1" + b"}" * 63
    response = await client.post(
        "/v1/beneficiaries",
        content=body,
        headers={"Idempotency-Key": "deep-64", "Content-Type": "application/json"},
    )
    _is_envelope(response, 400, "invalid_request_body")
    assert "nickname" in response.json()["error"]["message"]


async def test_a_broken_body_is_replayed_under_its_key(client: httpx.AsyncClient) -> None:
    """Like any answer below 500, the 400 is kept under its Idempotency-Key and replayed."""
    headers = {"Idempotency-Key": "deep-again", "Content-Type": "application/json"}
    body = BROKEN_BODIES["1000 arrays deep"]
    first = await client.post("/v1/payouts", content=body, headers=headers)
    again = await client.post("/v1/payouts", content=body, headers=headers)
    assert again.status_code == 400 and again.content == first.content
    assert again.headers["x-idempotent-replayed"] == "true"
    other = await client.post("/v1/payouts", content=b"[" * 999, headers=headers)
    assert other.status_code == 409 and error_code(other) == "idempotency_conflict"


async def test_a_crash_in_the_gateway_is_still_an_envelope(
    sandbox: Sandbox, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure in front of the handlers answers 500 internal_error with X-Request-ID."""

    def boom(route: str, header: str | None) -> None:
        raise RuntimeError("dice on fire")

    monkeypatch.setattr(sandbox._rt.faults, "choose", boom)
    response = await client.get("/v1/balances", headers={"X-Request-ID": "crash-1"})
    _is_envelope(response, 500, "internal_error")
    assert response.json()["error"]["message"] == "internal server error"
    assert response.headers["x-request-id"] == "crash-1"


class Stream:
    """A streamed request body of ``total`` bytes that counts how much was pulled from it."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.total, self.chunk, self.pulled = total, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            n = min(self.chunk, self.total - self.pulled)
            self.pulled += n
            yield b" " * n


def test_limits_are_per_route_prefix() -> None:
    """1 MB everywhere, 32 MB under /v1/batches (a whole segment, not a string prefix)."""
    assert body_limit("/v1/payouts") == body_limit("/_sandbox/faults") == 1 * MB
    assert body_limit("/v1/batches") == body_limit("/v1/batches/bat_1/confirm") == 32 * MB
    assert body_limit("/v1/batchesx") == 1 * MB


async def test_a_body_over_1mb_is_413_file_too_large(client: httpx.AsyncClient) -> None:
    """A declared length over 1 MB is refused with the catalog's 413 code and the limit."""
    response = await client.post(
        "/v1/payouts", content=b" " * (MB + 1), headers={"Idempotency-Key": "big"}
    )
    _is_envelope(response, 413, "file_too_large")
    assert response.json()["error"]["message"] == "request body exceeds the 1 MB limit"


async def test_exactly_1mb_is_read(client: httpx.AsyncClient) -> None:
    """The limit is inclusive: a 1 MB body reaches the handler."""
    body = b'{"nickname": "' + b"x" * (MB - 16) + b'"}'
    assert len(body) == MB
    response = await client.post(
        "/v1/beneficiaries",
        content=body,
        headers={"Idempotency-Key": "exactly", "Content-Type": "application/json"},
    )
    _is_envelope(response, 400, "invalid_request_body")
    assert "nickname" in response.json()["error"]["message"]


async def test_a_streamed_body_is_refused_without_reading_it_all(
    client: httpx.AsyncClient,
) -> None:
    """With no Content-Length, reading stops one chunk past 1 MB of a 100 MB body."""
    stream = Stream(100 * MB)
    response = await client.post(
        "/v1/payouts", content=stream, headers={"Idempotency-Key": "stream"}
    )
    _is_envelope(response, 413, "file_too_large")
    assert stream.pulled <= MB + stream.chunk


async def test_batch_routes_take_up_to_32mb(client: httpx.AsyncClient) -> None:
    """Under /v1/batches 2 MB passes the gate (and meets the upload's form check); 32 MB + 1
    does not."""
    small = await client.post("/v1/batches", content=b" " * (2 * MB))
    _is_envelope(small, 400, "invalid_multipart_form")
    stream = Stream(32 * MB + 1, chunk=MB)
    big = await client.post("/v1/batches", content=stream)
    _is_envelope(big, 413, "file_too_large")
    assert big.json()["error"]["message"] == "request body exceeds the 32 MB limit"
    assert stream.pulled == 32 * MB + 1


async def test_admin_routes_have_the_1mb_limit(sandbox: Sandbox) -> None:
    """The /_sandbox surface is behind the same limit."""
    async with httpx.AsyncClient(transport=sandbox.transport(), base_url="http://sb") as raw:
        response = await raw.post("/_sandbox/faults", content=Stream(2 * MB))
    _is_envelope(response, 413, "file_too_large")


async def test_a_refused_body_leaves_its_key_unused(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    """Nothing ran for a 413: the same key then creates the resource, with no replay."""
    refused = await client.post(
        "/v1/beneficiaries", content=b" " * (2 * MB), headers={"Idempotency-Key": "big-ben"}
    )
    assert refused.status_code == 413
    created = await post(client, "/v1/beneficiaries", individual(), key="big-ben")
    assert created.status_code == 201
    assert "x-idempotent-replayed" not in created.headers
