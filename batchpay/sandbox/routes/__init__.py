"""The sandbox's routes: one table of ``(method, path template, handler)``.

Handlers live in a module per resource and read the runtime from
``request.app.state.runtime``; :func:`batchpay.sandbox.app.build_app` turns the
table into Starlette routes, and the gateway reads the ``/v1`` part of it for
fault plans and idempotency rules.
"""

from __future__ import annotations

from . import admin, balances, batches, beneficiaries, payouts, webhooks
from ._common import Handler

ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/v1/balances", balances.list_balances),
    ("GET", "/v1/balances/{currency}", balances.get_balance),
    ("POST", "/v1/beneficiaries", beneficiaries.create_beneficiary),
    ("GET", "/v1/beneficiaries", beneficiaries.list_beneficiaries),
    ("GET", "/v1/beneficiaries/{id}", beneficiaries.get_beneficiary),
    ("POST", "/v1/beneficiaries/{id}/instruments", beneficiaries.create_instrument),
    ("GET", "/v1/beneficiaries/{id}/instruments", beneficiaries.list_beneficiary_instruments),
    ("GET", "/v1/instruments", beneficiaries.list_instruments),
    ("GET", "/v1/instruments/{id}", beneficiaries.get_instrument),
    ("POST", "/v1/payouts", payouts.create_payout),
    ("GET", "/v1/payouts", payouts.list_payouts),
    ("GET", "/v1/payouts/{id}", payouts.get_payout),
    ("GET", "/v1/payouts/{id}/events", payouts.payout_events),
    ("POST", "/v1/payouts/{id}/cancel", payouts.cancel_payout),
    # The template first: no batch is called "template".
    ("GET", "/v1/batches/template", batches.download_template),
    ("POST", "/v1/batches", batches.upload_batch),
    ("GET", "/v1/batches", batches.list_batches),
    ("GET", "/v1/batches/{id}", batches.get_batch),
    ("POST", "/v1/batches/{id}/confirm", batches.confirm_batch),
    ("POST", "/v1/batches/{id}/cancel", batches.cancel_batch),
    ("GET", "/v1/batches/{id}/payouts", batches.batch_payouts),
    ("GET", "/v1/batches/{id}/errors", batches.batch_errors),
    ("GET", "/v1/batches/{id}/results", batches.batch_results),
    ("POST", "/v1/webhooks", webhooks.create_webhook),
    ("GET", "/v1/webhooks", webhooks.list_webhooks),
    ("GET", "/v1/webhooks/{id}", webhooks.get_webhook),
    ("POST", "/v1/webhooks/{id}/secret/rotate", webhooks.rotate_webhook),
    ("GET", "/_sandbox/health", admin.health),
    ("GET", "/_sandbox/ledger", admin.ledger),
    ("GET", "/_sandbox/batches", admin.batches),
    ("GET", "/_sandbox/clock", admin.clock),
    ("POST", "/_sandbox/clock/advance", admin.advance),
    ("POST", "/_sandbox/tick", admin.tick),
    ("GET", "/_sandbox/faults", admin.faults),
    ("POST", "/_sandbox/faults", admin.faults),
    ("DELETE", "/_sandbox/faults", admin.faults),
    ("GET", "/_sandbox/rate-limit", admin.rate_limit),
    ("POST", "/_sandbox/rate-limit", admin.rate_limit),
    ("GET", "/_sandbox/webhooks/deliveries", admin.deliveries),
    ("GET", "/_sandbox/webhooks/events", admin.events),
    ("POST", "/_sandbox/balances", admin.balances),
    ("POST", "/_sandbox/reset", admin.reset),
)

# Spec paths the sandbox does not implement that a parametrised route above would take
# for an id: ``GET /v1/webhooks/events`` is no webhook subscription called "events".
# They answer the router's 404 ``not_found``, whatever the method.
UNIMPLEMENTED: tuple[str, ...] = (
    "/v1/beneficiaries/import",
    "/v1/instruments/countries",
    "/v1/instruments/methods",
    "/v1/webhooks/events",
)

__all__ = ["ROUTES", "UNIMPLEMENTED", "Handler"]
