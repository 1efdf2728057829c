"""The payout state machine and the deterministic triggers that pick each outcome.

A payout's whole path is fixed when it is created, from the last two digits of its
authoritative amount in minor units (the cents of ``dest_amount``, or of
``source_amount`` when ``fixed_side`` is ``fixed_source``). Transition *i* of the
path falls due ``i * step_seconds`` after creation on the sandbox clock, and is
applied lazily whenever anything reads state, or on a tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from batchpay.money import currency_scale

TERMINAL = frozenset(
    {"completed", "failed", "returned", "screening_failed", "velocity_blocked", "cancelled"}
)
# The merchant may cancel from these (send-a-payout.mdx, cancelPayout).
CANCELLABLE = frozenset(
    {"created", "pending_screening", "pending_approval", "pending_engine_review", "manual_review"}
)

_HAPPY = ("created", "pending_screening", "pending_approval", "approved", "processing", "sent")
_REVIEW = ("created", "manual_review", "approved", "processing", "sent", "completed")


@dataclass(frozen=True, slots=True)
class Outcome:
    """One trigger: the path a payout walks and the reason given when it ends badly."""

    name: str
    path: tuple[str, ...]
    reason: str | None = None
    final_actor: str | None = None


OUTCOMES: dict[str, Outcome] = {
    "completed": Outcome("completed", (*_HAPPY, "completed")),
    "failed": Outcome(
        "failed", (*_HAPPY, "failed"), "the receiving bank rejected the payment (account closed)"
    ),
    "returned": Outcome(
        "returned", (*_HAPPY, "returned"), "funds were returned by the receiving bank"
    ),
    "screening_failed": Outcome(
        "screening_failed",
        ("created", "pending_screening", "screening_failed"),
        "compliance screening flagged this payout",
    ),
    "velocity_blocked": Outcome(
        "velocity_blocked",
        ("created", "pending_screening", "pending_approval", "velocity_blocked"),
        "payout blocked by risk policy",
    ),
    "review_approved": Outcome("review_approved", _REVIEW),
    "review_cancelled": Outcome(
        "review_cancelled",
        ("created", "manual_review", "cancelled"),
        "cancelled by operations after manual review",
        final_actor="ops",
    ),
    "review_held": Outcome("review_held", ("created", "manual_review")),
}

# Last two digits of the authoritative amount in minor units -> outcome.
# 96 is special: a synchronous 403 velocity_blocked at creation (nothing is created).
TRIGGERS: dict[int, str] = {
    91: "failed",
    92: "returned",
    93: "screening_failed",
    94: "velocity_blocked",
    95: "review_approved",
    96: "sync_velocity_blocked",
    97: "review_cancelled",
    98: "review_held",
}

ACTOR_FOR_STATUS: dict[str, str] = {
    "created": "merchant",
    "pending_screening": "system",
    "screening_failed": "engine",
    "pending_approval": "engine",
    "velocity_blocked": "engine",
    "manual_review": "engine",
    "approved": "system",
    "processing": "rail",
    "sent": "rail",
    "completed": "rail",
    "failed": "rail",
    "returned": "rail",
    "cancelled": "merchant",
}

# Webhook event per status; statuses missing here are recorded but not announced,
# because WebhookEventType has no event for them.
EVENT_FOR_STATUS: dict[str, str] = {
    "approved": "payout.approved",
    "processing": "payout.processing",
    "sent": "payout.sent",
    "completed": "payout.completed",
    "failed": "payout.failed",
    "cancelled": "payout.cancelled",
    "returned": "payout.returned",
    "screening_failed": "payout.screening_failed",
    "velocity_blocked": "payout.velocity_blocked",
}

# Payout timestamp field set on entering a status.
TIMESTAMP_FOR_STATUS: dict[str, str] = {
    "pending_approval": "screened_at",
    "manual_review": "screened_at",
    "screening_failed": "screening_failed_at",
    "approved": "approved_at",
    "processing": "processed_at",
    "completed": "completed_at",
    "failed": "failed_at",
    "cancelled": "cancelled_at",
}


def trigger_digits(amount: Decimal, currency: str) -> int:
    """Last two digits of ``amount`` in the currency's minor units (cents for USD)."""
    minor = int(amount.scaleb(currency_scale(currency)).to_integral_value())
    return minor % 100


def outcome_for(amount: Decimal, currency: str) -> str:
    """Name of the outcome the amount asks for (``completed`` unless a trigger matches)."""
    return TRIGGERS.get(trigger_digits(amount, currency), "completed")
