"""The client's batch methods against the in-process sandbox."""

from __future__ import annotations

import pytest

from batchpay.client import AntonClient, ApiKey, set_testing
from batchpay.client.batches import multipart_file
from batchpay.sandbox import DEFAULT_API_KEY, Sandbox

from .helpers import batch_csv, template_row

pytestmark = pytest.mark.anyio


def test_the_same_file_makes_the_same_upload_body() -> None:
    """The boundary comes from the file's hash: a retry under one key is one request."""
    data = batch_csv([template_row()])
    assert multipart_file("a.csv", data, "text/csv") == multipart_file("a.csv", data, "text/csv")
    other = multipart_file("a.csv", data + b"\r\n", "text/csv")
    assert other[1] != multipart_file("a.csv", data, "text/csv")[1]


async def test_an_upload_resent_under_its_key_is_replayed_not_a_second_batch(
    sandbox: Sandbox,
) -> None:
    """Upload, resend, read the batch and its (empty) errors before validation."""
    set_testing(True)
    try:
        async with AntonClient("http://sandbox.local", ApiKey(DEFAULT_API_KEY),
                               transport=sandbox.transport()) as client:  # fmt: skip
            data = batch_csv([template_row(), template_row()])
            first = await client.upload_batch("f.csv", data, "text/csv", "upload-1")
            again = await client.upload_batch("f.csv", data, "text/csv", "upload-1")
            assert again.replayed and again.data["id"] == first.data["id"]
            assert len(sandbox.batches()) == 1
            assert (await client.batch_errors(first.data["id"])) == ([], [])
            await sandbox.advance(2)
            batch = await client.get_batch(first.data["id"])
            assert batch["status"] == "validated" and batch["valid_rows"] == 2
            listed = [b async for b in client.iter_batches(status="validated")]
            assert [b["id"] for b in listed] == [first.data["id"]]
            results = [r async for r in client.iter_batch_results(first.data["id"])]
            assert [r["status"] for r in results] == ["pending", "pending"]
    finally:
        set_testing(False)
