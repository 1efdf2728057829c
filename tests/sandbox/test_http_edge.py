"""The HTTP edge: wrong methods, routes not implemented, bodies that break parsing."""

from __future__ import annotations

import httpx
import pytest

from .helpers import error_code

pytestmark = pytest.mark.anyio


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
