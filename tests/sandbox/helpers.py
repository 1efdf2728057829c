"""Request bodies and small request helpers shared by the sandbox tests."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import httpx

_counter = itertools.count(1)

GOOD_IBAN = "DE89370400440532013000"
GOOD_GB_IBAN = "GB82WEST12345698765432"
GOOD_ABA = "021000021"


def individual(**overrides: Any) -> dict[str, Any]:
    """A valid individual BeneficiaryCreateRequest with a unique identity."""
    n = next(_counter)
    body: dict[str, Any] = {
        "type": "individual",
        "country": "GB",
        "external_ref": f"contractor-{n}",
        "individual": {
            "first_name": "Jane",
            "last_name": f"Smith{n}",
            "email": f"jane{n}@example.com",
            "phone": "+442079460000",
            "date_of_birth": "1988-05-12",
            "nationality": "GB",
            "address": {
                "street_line_1": "10 Example Street",
                "city": "London",
                "postal_code": "SW1A 1AA",
                "country": "GB",
            },
        },
    }
    body.update(overrides)
    return body


def business(**overrides: Any) -> dict[str, Any]:
    """A valid business BeneficiaryCreateRequest with a unique identity."""
    n = next(_counter)
    body: dict[str, Any] = {
        "type": "business",
        "country": "DE",
        "business": {
            "legal_name": f"Example {n} GmbH",
            "registration_number": f"HRB{n}",
            "email": f"ap{n}@example.de",
            "phone": "+493012345678",
            "entity_type": "llc",
            "address": {
                "street_line_1": "Beispielstrasse 1",
                "city": "Berlin",
                "postal_code": "10115",
                "country": "DE",
            },
        },
    }
    body.update(overrides)
    return body


def uk_bank(account: str = "12345678", sort_code: str = "12-34-56") -> dict[str, Any]:
    """A valid uk_bank InstrumentCreateRequest."""
    return {"method": "uk_bank", "credentials": {"sort_code": sort_code, "account_number": account}}


def iban(value: str = GOOD_IBAN, **extra: Any) -> dict[str, Any]:
    """A valid iban InstrumentCreateRequest."""
    return {"method": "iban", "credentials": {"iban": value, **extra}}


def us_bank(routing: str = GOOD_ABA, account: str = "000123456789") -> dict[str, Any]:
    """A valid us_bank InstrumentCreateRequest."""
    return {
        "method": "us_bank",
        "credentials": {
            "routing_number": routing,
            "account_number": account,
            "account_type": "checking",
        },
    }


def payout(
    beneficiary_id: str,
    instrument_id: str,
    amount: str = "100.00",
    currency: str = "GBP",
    *,
    method: str = "faster_payment",
    reference: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A PayoutCreateRequest funded from GBP unless told otherwise."""
    body: dict[str, Any] = {
        "beneficiary_id": beneficiary_id,
        "instrument_id": instrument_id,
        "source_amount": amount,
        "source_currency": currency,
        "dest_amount": amount,
        "dest_currency": currency,
        "method": method,
        "purpose": "contractor_payment",
        "reference": reference or f"INV-{next(_counter)}",
    }
    body.update(extra)
    return body


async def post(
    client: httpx.AsyncClient,
    path: str,
    body: Any,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST JSON with an Idempotency-Key (a fresh one unless given)."""
    all_headers = {"Idempotency-Key": key or f"key-{next(_counter)}", **(headers or {})}
    return await client.post(path, json=copy.deepcopy(body), headers=all_headers)


async def make_payee(
    client: httpx.AsyncClient, instrument: dict[str, Any] | None = None
) -> tuple[str, str]:
    """Create a beneficiary with one instrument (uk_bank by default); return both ids."""
    ben = await post(client, "/v1/beneficiaries", individual())
    assert ben.status_code == 201, ben.text
    ins = await post(
        client, f"/v1/beneficiaries/{ben.json()['id']}/instruments", instrument or uk_bank()
    )
    assert ins.status_code == 201, ins.text
    return ben.json()["id"], ins.json()["id"]


def error_code(response: httpx.Response) -> str:
    """The catalog code of an error answer."""
    code: str = response.json()["error"]["code"]
    return code


def fields(response: httpx.Response) -> list[str]:
    """The dotted field names of a validation_error answer."""
    return [d["field"] for d in response.json()["error"]["details"]]
