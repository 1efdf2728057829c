"""Payout intent states in the journal, and the provider's payout statuses it ranks.

An intent is committed ``sending`` before its request leaves, then becomes ``created`` (the
provider holds the payout), ``rejected`` (definitively refused, no payout exists) or
``unknown`` (retries ran out; settled later). A created payout then moves through the
provider's statuses, never backwards (:data:`STATUS_RANK`). Row states before an intent
exists are in :mod:`batchpay.states`.
"""

from __future__ import annotations

# Payout intent states in the journal.
SENDING = "sending"  # intent committed; the request may or may not have left
CREATED = "created"  # the provider answered with the payout
REJECTED = "rejected"  # the provider definitively refused; no payout exists
UNKNOWN = "unknown"  # retries exhausted; outcome unknown until settled

# Statuses after which a payout holds no money in flight or delivered: the row may be paid
# again, but only through an explicit ``retry-failed``.
SETTLED_FAILURES = frozenset(
    {"failed", "returned", "screening_failed", "velocity_blocked", "cancelled"}
)

TERMINAL_STATUSES = frozenset(
    {"completed", "failed", "returned", "screening_failed", "velocity_blocked", "cancelled"}
)
# A later status never overwrites one of higher rank (out-of-order webhooks, stale polls).
STATUS_RANK: dict[str, int] = {
    "created": 0,
    "pending_screening": 1,
    "pending_engine_review": 2,
    "manual_review": 2,
    "pending_approval": 3,
    "approved": 4,
    "processing": 5,
    "sent": 6,
    "completed": 7,
    "failed": 7,
    "screening_failed": 7,
    "velocity_blocked": 7,
    "cancelled": 7,
    "returned": 8,  # sent -> completed/returned; a return can follow a completion report
}
