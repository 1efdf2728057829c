"""Beneficiaries: create, validation, duplicates, get, list with filters and cursors."""

from __future__ import annotations

import httpx
import pytest

from batchpay.sandbox import Sandbox

from .helpers import business, error_code, fields, individual, post

pytestmark = pytest.mark.anyio


async def test_create_returns_bare_beneficiary(client: httpx.AsyncClient) -> None:
    """Create answers 201 with the bare Beneficiary, display name derived, PII not echoed."""
    body = individual(metadata={"team": "eng"})
    response = await post(client, "/v1/beneficiaries", body)
    assert response.status_code == 201
    ben = response.json()
    assert ben["id"].startswith("ben_")
    assert ben["status"] == "active"
    assert ben["display_name"] == f"Jane {body['individual']['last_name']}"
    assert ben["external_ref"] == body["external_ref"]
    assert ben["metadata"] == {"team": "eng"}
    assert "individual" not in ben and "email" not in str(ben)


async def test_business_display_name_is_legal_name(client: httpx.AsyncClient) -> None:
    """A business beneficiary is named by its legal name."""
    body = business()
    response = await post(client, "/v1/beneficiaries", body)
    assert response.status_code == 201
    assert response.json()["display_name"] == body["business"]["legal_name"]


async def test_validation_collects_every_field_error(client: httpx.AsyncClient) -> None:
    """All field problems come back in one 422 validation_error with dotted paths."""
    body = individual(country="XX")
    body["individual"]["email"] = "not-an-email"
    body["individual"]["date_of_birth"] = "12/05/1988"
    del body["individual"]["first_name"]
    body["individual"]["address"]["country"] = "gb"
    response = await post(client, "/v1/beneficiaries", body)
    assert response.status_code == 422
    assert error_code(response) == "validation_error"
    assert set(fields(response)) == {
        "country",
        "individual.email",
        "individual.date_of_birth",
        "individual.first_name",
        "individual.address.country",
    }


async def test_us_address_needs_a_state(client: httpx.AsyncClient) -> None:
    """A US address without a state is a validation error on address.state."""
    body = individual(country="US")
    body["individual"]["address"].update(country="US", postal_code="10001")
    response = await post(client, "/v1/beneficiaries", body)
    assert response.status_code == 422
    assert fields(response) == ["individual.address.state"]


async def test_missing_detail_block_is_missing_beneficiary_details(
    client: httpx.AsyncClient,
) -> None:
    """type=business with only an individual block answers missing_beneficiary_details."""
    body = individual(type="business")
    response = await post(client, "/v1/beneficiaries", body)
    assert response.status_code == 422
    assert error_code(response) == "missing_beneficiary_details"


async def test_same_pii_is_duplicate_beneficiary(client: httpx.AsyncClient) -> None:
    """A second create with the same PII fingerprint and a new key is refused."""
    body = individual()
    assert (await post(client, "/v1/beneficiaries", body)).status_code == 201
    again = dict(body, external_ref="another-ref")
    again["individual"] = dict(body["individual"], first_name=" JANE ")
    response = await post(client, "/v1/beneficiaries", again)
    assert response.status_code == 422
    assert error_code(response) == "duplicate_beneficiary"


async def test_get_and_not_found(client: httpx.AsyncClient) -> None:
    """A created beneficiary can be read back; an unknown id is beneficiary_not_found."""
    created = (await post(client, "/v1/beneficiaries", individual())).json()
    fetched = await client.get(f"/v1/beneficiaries/{created['id']}")
    assert fetched.json() == created
    missing = await client.get("/v1/beneficiaries/ben_nope")
    assert missing.status_code == 404 and error_code(missing) == "beneficiary_not_found"


async def test_list_pages_newest_first_with_cursor(client: httpx.AsyncClient) -> None:
    """Lists page newest first; following next_cursor visits every item exactly once."""
    ids = [(await post(client, "/v1/beneficiaries", individual())).json()["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/beneficiaries", params=params)).json()
        pages += 1
        seen.extend(b["id"] for b in page["data"])
        if not page["has_more"]:
            assert "next_cursor" not in page
            break
        cursor = page["next_cursor"]
    assert seen == list(reversed(ids))
    assert pages == 3


async def test_list_filters(client: httpx.AsyncClient) -> None:
    """type, country and external_ref filters narrow the list."""
    person = (await post(client, "/v1/beneficiaries", individual())).json()
    company = (await post(client, "/v1/beneficiaries", business())).json()
    by_type = (await client.get("/v1/beneficiaries", params={"type": "business"})).json()
    assert [b["id"] for b in by_type["data"]] == [company["id"]]
    by_country = (await client.get("/v1/beneficiaries", params={"country": "GB"})).json()
    assert [b["id"] for b in by_country["data"]] == [person["id"]]
    by_ref = await client.get("/v1/beneficiaries", params={"external_ref": person["external_ref"]})
    assert [b["id"] for b in by_ref.json()["data"]] == [person["id"]]
    archived = (await client.get("/v1/beneficiaries", params={"status": "archived"})).json()
    assert archived["data"] == []


@pytest.mark.parametrize("limit", ["0", "101", "abc"])
async def test_strict_limit(client: httpx.AsyncClient, limit: str) -> None:
    """Beneficiary lists refuse limits outside 1..100 with 400 invalid_limit."""
    response = await client.get("/v1/beneficiaries", params={"limit": limit})
    assert response.status_code == 400
    assert error_code(response) == "invalid_limit"


async def test_bad_cursor_and_bad_filter(client: httpx.AsyncClient) -> None:
    """A forged cursor is invalid_cursor; an unknown status value is invalid_parameter."""
    cursor = await client.get("/v1/beneficiaries", params={"cursor": "garbage!"})
    assert cursor.status_code == 400 and error_code(cursor) == "invalid_cursor"
    status = await client.get("/v1/beneficiaries", params={"status": "deleted"})
    assert status.status_code == 400 and error_code(status) == "invalid_parameter"


async def test_seed_beneficiary_handle(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    """Sandbox.seed_beneficiary creates through the same validation and shows up in the API."""
    from .helpers import uk_bank

    seeded = sandbox.seed_beneficiary(individual(), [uk_bank()])
    assert seeded["instruments"][0]["beneficiary_id"] == seeded["id"]
    fetched = await client.get(f"/v1/beneficiaries/{seeded['id']}")
    assert fetched.status_code == 200
