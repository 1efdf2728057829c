"""Instruments: iban/us_bank/uk_bank, check digits, country rules, duplicates, masking."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .helpers import GOOD_GB_IBAN, error_code, fields, iban, individual, post, uk_bank, us_bank

pytestmark = pytest.mark.anyio


async def _beneficiary(client: httpx.AsyncClient) -> str:
    response = await post(client, "/v1/beneficiaries", individual())
    ben_id: str = response.json()["id"]
    return ben_id


@pytest.mark.parametrize(
    ("body", "currency", "country", "last4"),
    [
        (iban(), "EUR", "DE", "3000"),
        (iban(GOOD_GB_IBAN.lower()), "GBP", "GB", "5432"),
        (us_bank(), "USD", "US", "6789"),
        (uk_bank(), "GBP", "GB", "5678"),
    ],
)
async def test_create_each_method(
    client: httpx.AsyncClient, body: dict[str, Any], currency: str, country: str, last4: str
) -> None:
    """Each supported method creates an instrument with masked display fields only."""
    ben = await _beneficiary(client)
    response = await post(client, f"/v1/beneficiaries/{ben}/instruments", body)
    assert response.status_code == 201, response.text
    ins = response.json()
    assert ins["id"].startswith("ins_")
    assert (ins["currency"], ins["country"], ins["display_last4"]) == (currency, country, last4)
    assert ins["masked_account"] == f"****{last4}"
    assert "credentials" not in ins
    for secret in body["credentials"].values():
        if len(secret) > 4 and secret not in ("checking",):
            assert secret.upper().replace("-", "") not in response.text.upper()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (iban("DE89370400440532013001"), "credentials.iban"),
        (iban(GOOD_GB_IBAN, bic="NOTABIC!"), "credentials.bic"),
        (us_bank(routing="021000022"), "credentials.routing_number"),
        (us_bank(account="12"), "credentials.account_number"),
        (uk_bank(sort_code="12345"), "credentials.sort_code"),
        (uk_bank(account="1234567"), "credentials.account_number"),
    ],
)
async def test_bad_check_digits_are_invalid_credentials(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    """IBAN mod-97, ABA checksum and UK shapes failing answer 422 invalid_credentials."""
    ben = await _beneficiary(client)
    response = await post(client, f"/v1/beneficiaries/{ben}/instruments", body)
    assert response.status_code == 422
    assert error_code(response) == "invalid_credentials"
    assert fields(response) == [field]


@pytest.mark.parametrize(
    "body",
    [
        {**us_bank(), "country": "GB"},
        {**uk_bank(), "country": "FR"},
        {**iban(), "country": "US"},
        {"method": "pix", "credentials": {"key": "x"}},
    ],
)
async def test_method_not_valid_for_country(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    """A method that cannot serve the country (or the sandbox) is method_not_supported."""
    ben = await _beneficiary(client)
    response = await post(client, f"/v1/beneficiaries/{ben}/instruments", body)
    assert response.status_code == 422
    assert error_code(response) == "method_not_supported"


async def test_missing_credentials_are_validation_errors(client: httpx.AsyncClient) -> None:
    """Missing credential fields and an unknown method are a 422 validation_error."""
    ben = await _beneficiary(client)
    missing = await post(
        client, f"/v1/beneficiaries/{ben}/instruments", {"method": "uk_bank", "credentials": {}}
    )
    assert missing.status_code == 422
    assert fields(missing) == ["credentials.account_number", "credentials.sort_code"]
    unknown = await post(client, f"/v1/beneficiaries/{ben}/instruments", {"method": "cheque"})
    assert set(fields(unknown)) == {"method", "credentials"}


async def test_same_credentials_are_duplicate_instrument(client: httpx.AsyncClient) -> None:
    """The same account under the same beneficiary is refused; under another it is fine."""
    ben = await _beneficiary(client)
    assert (
        await post(client, f"/v1/beneficiaries/{ben}/instruments", uk_bank())
    ).status_code == 201
    again = await post(client, f"/v1/beneficiaries/{ben}/instruments", uk_bank(sort_code="123456"))
    assert again.status_code == 422 and error_code(again) == "duplicate_instrument"
    other = await _beneficiary(client)
    assert (
        await post(client, f"/v1/beneficiaries/{other}/instruments", uk_bank())
    ).status_code == 201


async def test_unknown_beneficiary_is_beneficiary_not_found(client: httpx.AsyncClient) -> None:
    """Creating under an unknown beneficiary answers 404 beneficiary_not_found."""
    response = await post(client, "/v1/beneficiaries/ben_unknown/instruments", uk_bank())
    assert response.status_code == 404 and error_code(response) == "beneficiary_not_found"


async def test_list_get_and_default_flag(client: httpx.AsyncClient) -> None:
    """The first instrument is the default; is_default moves it; list and get agree."""
    ben = await _beneficiary(client)
    first = (await post(client, f"/v1/beneficiaries/{ben}/instruments", uk_bank())).json()
    second_body = {**iban(), "is_default": True, "label": "EUR account"}
    second = (await post(client, f"/v1/beneficiaries/{ben}/instruments", second_body)).json()
    assert first["is_default"] is True and second["is_default"] is True
    listed = (await client.get(f"/v1/beneficiaries/{ben}/instruments")).json()
    assert [i["id"] for i in listed["data"]] == [second["id"], first["id"]]
    assert listed["data"][1]["is_default"] is False
    by_method = (await client.get("/v1/instruments", params={"method": "iban"})).json()
    assert [i["id"] for i in by_method["data"]] == [second["id"]]
    by_ben = (await client.get("/v1/instruments", params={"beneficiary_id": ben})).json()
    assert len(by_ben["data"]) == 2
    fetched = await client.get(f"/v1/instruments/{second['id']}")
    assert fetched.json()["label"] == "EUR account"
    missing = await client.get("/v1/instruments/ins_nope")
    assert missing.status_code == 404 and error_code(missing) == "instrument_not_found"
