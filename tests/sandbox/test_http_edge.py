"""The HTTP edge: wrong methods, routes not implemented, bodies that break parsing."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import yaml

from batchpay.sandbox import Sandbox
from batchpay.sandbox.gateway import V1_ROUTES, route_of
from batchpay.sandbox.routes import UNIMPLEMENTED

from .helpers import error_code

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
        ("GET", "/v1/batches"),
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
