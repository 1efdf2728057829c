"""``/v1/batches``: the template, upload (multipart), list, read, confirm, cancel, and the
batch's payouts, validation errors and per-row results."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from ..bank import Page, check_choice, parse_limit
from ..bank.batches import template
from ..problems import ApiProblem
from ..validation.common import Collector
from ._common import json_response, path_id, query_time, read_json, runtime

BATCH_STATUSES = (
    "uploaded",
    "validating",
    "validated",
    "validation_failed",
    "confirmed",
    "processing",
    "completed",
    "partial",
    "failed",
    "cancelled",
)
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_DISPOSITION_NAME = re.compile(r'\bname="([^"]*)"', re.IGNORECASE)
_DISPOSITION_FILE = re.compile(r'\bfilename="([^"]*)"', re.IGNORECASE)


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The form's parts by name: (file name or None, bytes); 400 when it is no form."""
    bad = ApiProblem(400, "invalid_multipart_form", "request body must be multipart/form-data")
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        raise bad
    m = _BOUNDARY.search(content_type)
    if m is None:
        raise bad
    delimiter = b"--" + m.group(1).encode("latin-1")
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise bad
    parts: dict[str, tuple[str | None, bytes]] = {}
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n"):
            raise bad
        head, sep, data = chunk[2:].partition(b"\r\n\r\n")
        if not sep or not data.endswith(b"\r\n"):
            raise bad
        headers = head.decode("latin-1")
        name = _DISPOSITION_NAME.search(headers)
        if name is None:
            raise bad
        filename = _DISPOSITION_FILE.search(headers)
        parts[name.group(1)] = (filename.group(1) if filename else None, data[:-2])
    return parts


async def download_template(request: Request) -> Response:
    """``GET /v1/batches/template``."""
    fmt = request.query_params.get("format", "xlsx")
    if fmt not in ("xlsx", "csv"):
        raise ApiProblem(400, "invalid_template_format", "format must be xlsx or csv")
    data, media_type = template(fmt)
    return Response(
        data,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="batch-template.{fmt}"'},
    )


async def upload_batch(request: Request) -> Response:
    """``POST /v1/batches`` (multipart: ``file``, optional ``file_hash``)."""
    parts = _multipart(request.headers.get("content-type", ""), await request.body())
    if "file" not in parts or parts["file"][0] is None:
        raise ApiProblem(400, "invalid_file", "the file form field is missing")
    name, data = parts["file"]
    assert name is not None
    file_hash = parts["file_hash"][1].decode("latin-1") if "file_hash" in parts else None
    batch = runtime(request).bank.batches.upload(name, data, file_hash)
    return json_response(batch, 201)


async def list_batches(request: Request) -> Response:
    """``GET /v1/batches``."""
    q = request.query_params
    status = check_choice("status", q.get("status"), BATCH_STATUSES)
    page = Page(parse_limit(q.get("limit"), strict=False), q.get("cursor"))
    return json_response(
        runtime(request).bank.batches.list_batches(
            status=status,
            created_after=query_time(request, "created_after"),
            created_before=query_time(request, "created_before"),
            page=page,
        )
    )


async def get_batch(request: Request) -> Response:
    """``GET /v1/batches/{id}``."""
    return json_response(runtime(request).bank.batches.get(path_id(request, "bat", "batch")))


async def confirm_batch(request: Request) -> Response:
    """``POST /v1/batches/{id}/confirm`` (``Idempotency-Key`` required by the gateway)."""
    batch_id = path_id(request, "bat", "batch")
    body = await read_json(request, required=False)
    source_currency = None
    if body is not None:
        unknown = sorted(set(body) - {"source_currency"})
        if unknown:
            raise ApiProblem(400, "invalid_request_body", f"unknown field {unknown[0]!r}")
        c = Collector()
        source_currency = c.currency(body, "source_currency", "", required=False)
        c.raise_if_any()
    return json_response(runtime(request).bank.batches.confirm(batch_id, source_currency))


async def cancel_batch(request: Request) -> Response:
    """``POST /v1/batches/{id}/cancel``."""
    return json_response(runtime(request).bank.batches.cancel(path_id(request, "bat", "batch")))


def _page(request: Request) -> Page:
    q = request.query_params
    return Page(parse_limit(q.get("limit"), strict=False), q.get("cursor"))


async def batch_payouts(request: Request) -> Response:
    """``GET /v1/batches/{id}/payouts``."""
    batch_id = path_id(request, "bat", "batch")
    return json_response(runtime(request).bank.batches.payouts_page(batch_id, _page(request)))


async def batch_errors(request: Request) -> Response:
    """``GET /v1/batches/{id}/errors``."""
    batch_id = path_id(request, "bat", "batch")
    return json_response({"data": runtime(request).bank.batches.errors(batch_id)})


async def batch_results(request: Request) -> Response:
    """``GET /v1/batches/{id}/results``."""
    batch_id = path_id(request, "bat", "batch")
    return json_response(runtime(request).bank.batches.results(batch_id, _page(request)))
