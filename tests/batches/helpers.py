"""Batch files in the sandbox's template, and the upload request, for the batch tests."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from batchpay.sandbox.bank.batches import TEMPLATE_COLUMNS

_counter = itertools.count(1)


def template_row(amount: str = "100.00", **overrides: str) -> dict[str, str]:
    """A valid template row paying a new UK individual by Faster Payments."""
    n = next(_counter)
    row = {
        "external_ref": f"batch-payee-{n}",
        "beneficiary_type": "individual",
        "first_name": "Jane",
        "last_name": f"Batch{n}",
        "email": f"jane.batch{n}@example.com",
        "phone": "+442079460000",
        "date_of_birth": "1988-05-12",
        "nationality": "GB",
        "address_line1": "10 Example Street",
        "city": "London",
        "postal_code": "SW1A 1AA",
        "dest_country": "GB",
        "method": "faster_payment",
        "dest_amount": amount,
        "dest_currency": "GBP",
        "reference": f"BATCH-INV-{n}",
        "purpose": "contractor_payment",
        "account_number": f"{10000000 + n}",
        "sort_code": "12-34-56",
    }
    row.update(overrides)
    return row


def batch_csv(rows: Sequence[Mapping[str, str]], extra: Sequence[str] = ()) -> bytes:
    """A CSV in the template's column order (plus ``extra`` trailing columns)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    header = [*TEMPLATE_COLUMNS, *extra]
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(c, "") for c in header])
    return out.getvalue().encode()


async def upload(
    client: httpx.AsyncClient,
    data: bytes,
    name: str = "payouts.csv",
    *,
    file_hash: str | None = "auto",
    **headers: str,
) -> httpx.Response:
    """POST /v1/batches as a multipart form (with the file's SHA-256 unless told otherwise)."""
    form: dict[str, Any] = {}
    if file_hash == "auto":
        form["file_hash"] = hashlib.sha256(data).hexdigest()
    elif file_hash is not None:
        form["file_hash"] = file_hash
    return await client.post(
        "/v1/batches", files={"file": (name, data, "text/csv")}, data=form, headers=headers
    )


async def exercise_batches(c: httpx.AsyncClient, advance: Any) -> None:
    """Drive the nine batch operations through their success and error answers.

    ``advance(seconds)`` moves the sandbox clock; the spec-conformance test records it all.
    """
    await c.get("/v1/batches/template")
    await c.get("/v1/batches/template", params={"format": "csv"})
    await c.get("/v1/batches/template", params={"format": "pdf"})
    good = batch_csv([template_row(), template_row("4.99"), template_row("4.96")])
    batch = (await upload(c, good)).json()
    await upload(c, good)  # 409 duplicate_file: still pending
    await upload(c, b"a,b\r\n1,2\r\n", "payouts.txt")  # 400 invalid_file_format
    await upload(c, good, "other.csv", file_hash="0" * 64)  # 400 file_hash_mismatch
    await c.post("/v1/batches", content=b"not a form", headers={"Content-Type": "text/plain"})
    await c.post(f"/v1/batches/{batch['id']}/confirm", json={}, headers={"Idempotency-Key": "e"})
    await c.post(f"/v1/batches/{batch['id']}/confirm", json={})  # 400 missing key
    await c.post("/v1/batches/bat_missing/confirm", json={}, headers={"Idempotency-Key": "m"})
    await c.get(f"/v1/batches/{batch['id']}")
    await c.get("/v1/batches/bat_missing")
    await advance(2)
    await c.get(f"/v1/batches/{batch['id']}")
    await c.get(f"/v1/batches/{batch['id']}/errors")
    await c.get("/v1/batches/bat_missing/errors")
    await c.get(f"/v1/batches/{batch['id']}/results")
    await c.post(f"/v1/batches/{batch['id']}/confirm", json={}, headers={"Idempotency-Key": "k"})
    await c.post(f"/v1/batches/{batch['id']}/cancel")  # 200: confirmed, not yet processing
    await c.get(f"/v1/batches/{batch['id']}/results")
    second = (await upload(c, batch_csv([template_row()]), "second.csv")).json()
    await advance(2)
    await c.post(f"/v1/batches/{second['id']}/confirm", json={}, headers={"Idempotency-Key": "s"})
    await advance(3)
    await c.post(f"/v1/batches/{second['id']}/cancel")  # 409 batch_not_cancellable
    await c.post("/v1/batches/bat_missing/cancel")
    await c.get(f"/v1/batches/{second['id']}")
    await c.get(f"/v1/batches/{second['id']}/payouts")
    await c.get("/v1/batches/bat_missing/payouts")
    await c.get(f"/v1/batches/{second['id']}/payouts", params={"cursor": "nope"})
    await c.get(f"/v1/batches/{second['id']}/results", params={"limit": 1})
    await c.get("/v1/batches/bat_missing/results")
    third = (await upload(c, batch_csv([template_row()]), "third.csv")).json()
    await advance(2 + 3601)
    await c.post(f"/v1/batches/{third['id']}/confirm", json={}, headers={"Idempotency-Key": "t"})
    await c.get("/v1/batches", params={"limit": 1})
    await c.get("/v1/batches", params={"status": "completed"})
    await c.get("/v1/batches", params={"cursor": "nope"})
