"""``/v1/webhooks``: subscriptions and their signing secrets."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..bank import check_choice
from ..validation import validate_webhook
from ._common import json_response, path_id, read_json, runtime


async def create_webhook(request: Request) -> Response:
    """``POST /v1/webhooks``."""
    rt = runtime(request)
    inp = validate_webhook(
        await read_json(request), allow_insecure=rt.config.webhook_allow_insecure_urls
    )
    return json_response(rt.bank.create_webhook(inp), 201)


async def list_webhooks(request: Request) -> Response:
    """``GET /v1/webhooks``."""
    status = check_choice("status", request.query_params.get("status"), ("active", "inactive"))
    return json_response({"data": runtime(request).bank.list_webhooks(status)})


async def get_webhook(request: Request) -> Response:
    """``GET /v1/webhooks/{id}``."""
    webhook_id = path_id(request, "wbh", "webhook_subscription")
    return json_response(runtime(request).bank.get_webhook(webhook_id))


async def rotate_webhook(request: Request) -> Response:
    """``POST /v1/webhooks/{id}/secret/rotate``."""
    webhook_id = path_id(request, "wbh", "webhook_subscription")
    return json_response({"secret": runtime(request).bank.rotate_webhook_secret(webhook_id)})
