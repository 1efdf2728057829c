"""Request-body validation for the creating endpoints, shaped by the OpenAPI schemas.

Unknown fields are refused whole (400 ``invalid_request_body``, as the API's strict
decoder does); every other field problem is collected, so one 422
``validation_error`` lists them all with dotted field paths.

One module per resource (``beneficiaries``, ``instruments``, ``payouts``, ``webhooks``),
sharing the collector in ``common``; every name callers use is importable from here.
"""

from __future__ import annotations

from .beneficiaries import BeneficiaryInput, validate_beneficiary
from .common import require_object
from .instruments import (
    PAYMENT_METHOD_CODES,
    SUPPORTED_INSTRUMENT_METHODS,
    InstrumentInput,
    validate_instrument,
)
from .payouts import (
    PAYOUT_METHODS,
    RAIL_CURRENCY,
    RAIL_NETWORK,
    RAILS_FOR_INSTRUMENT,
    PayoutInput,
    validate_cancel,
    validate_payout,
)
from .webhooks import WEBHOOK_EVENT_TYPES, WebhookInput, validate_webhook

__all__ = [
    "PAYMENT_METHOD_CODES",
    "PAYOUT_METHODS",
    "RAILS_FOR_INSTRUMENT",
    "RAIL_CURRENCY",
    "RAIL_NETWORK",
    "SUPPORTED_INSTRUMENT_METHODS",
    "WEBHOOK_EVENT_TYPES",
    "BeneficiaryInput",
    "InstrumentInput",
    "PayoutInput",
    "WebhookInput",
    "require_object",
    "validate_beneficiary",
    "validate_cancel",
    "validate_instrument",
    "validate_payout",
    "validate_webhook",
]
