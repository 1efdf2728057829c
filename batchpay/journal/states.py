"""Every state batchpay keeps in its journal, in one place: rows, payout intents, runs,
beneficiary/instrument intents, and the provider's payout statuses it ranks.

Each is a ``StrEnum`` (its members are the strings stored, so they compare equal to them),
with its allowed transitions and its terminal set. The schema's CHECK constraints are made
from these sets (:mod:`batchpay.journal.schema`), so the database refuses any other value.

A row moves ``planned → payout`` once its payout intent is committed, or ends in one of the
other row states. An intent is committed ``sending`` before its request leaves, then becomes
``created`` (the provider holds the payout), ``rejected`` (definitively refused, no payout
exists) or ``unknown`` (retries ran out; settled later, by replay or look-up, same key). A
created payout then moves through the provider's statuses, never backwards
(:data:`STATUS_RANK`).
"""

from __future__ import annotations

from enum import StrEnum


class RowState(StrEnum):
    """What became of one input row."""

    PLANNED = "planned"  # to be paid
    PAYOUT = "payout"  # its payout intent is in the payouts table
    INVALID = "invalid"  # refused by validation (with --skip-invalid)
    DUPLICATE = "duplicate_in_file"  # a later copy of an accepted exact repeat
    ALREADY_PAID = "already_paid"  # an earlier run or another journal paid it
    HELD = "held"  # needs a person before it can be paid
    REJECTED = "rejected"  # the provider refused its beneficiary or instrument


class PayoutState(StrEnum):
    """A payout intent in the journal."""

    SENDING = "sending"  # intent committed; the request may or may not have left
    CREATED = "created"  # the provider answered with the payout
    REJECTED = "rejected"  # the provider definitively refused; no payout exists
    UNKNOWN = "unknown"  # retries exhausted; outcome unknown until settled
    BATCHED = "batched"  # its row is in an uploaded provider batch (batchpay.batches)


class RunStatus(StrEnum):
    """A run: open while any row is planned or any intent unsettled."""

    OPEN = "open"
    SUBMITTED = "submitted"
    FINISHED = "finished"


class ResourceState(StrEnum):
    """A beneficiary or instrument intent: committed before its create request leaves."""

    SENDING = "sending"
    CREATED = "created"


ROW_TRANSITIONS: dict[RowState, frozenset[RowState]] = {
    RowState.PLANNED: frozenset(RowState) - {RowState.PLANNED},
    # retry-failed and a held row a person released go back to planned
    RowState.HELD: frozenset({RowState.PLANNED, RowState.ALREADY_PAID, RowState.PAYOUT}),
    RowState.PAYOUT: frozenset({RowState.PLANNED, RowState.ALREADY_PAID}),
    RowState.REJECTED: frozenset({RowState.PLANNED}),
    RowState.ALREADY_PAID: frozenset(),
    RowState.INVALID: frozenset(),
    RowState.DUPLICATE: frozenset(),
}
PAYOUT_TRANSITIONS: dict[PayoutState, frozenset[PayoutState]] = {
    PayoutState.SENDING: frozenset(
        {PayoutState.CREATED, PayoutState.REJECTED, PayoutState.UNKNOWN}
    ),
    PayoutState.UNKNOWN: frozenset({PayoutState.CREATED, PayoutState.REJECTED}),
    # a refused key the provider has forgotten is revived for the same row (same key)
    PayoutState.REJECTED: frozenset({PayoutState.SENDING}),
    PayoutState.CREATED: frozenset(),
    # a batch's results settle its rows; a batch never confirmed archives them
    PayoutState.BATCHED: frozenset({PayoutState.CREATED, PayoutState.REJECTED}),
}
RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.OPEN: frozenset({RunStatus.SUBMITTED, RunStatus.FINISHED}),
    RunStatus.SUBMITTED: frozenset({RunStatus.OPEN, RunStatus.FINISHED}),
    RunStatus.FINISHED: frozenset({RunStatus.OPEN}),  # retry-failed reopens
}
TERMINAL_ROW_STATES = frozenset(s for s, nxt in ROW_TRANSITIONS.items() if not nxt)
TERMINAL_PAYOUT_STATES = frozenset({PayoutState.CREATED})


def may_move(current: str, new: str, transitions: dict[str, frozenset[str]]) -> bool:
    """Whether a state may move from ``current`` to ``new`` (staying put always may)."""
    return current == new or new in transitions.get(current, frozenset())


# Module-level names the stages import (the enum members themselves).
PLANNED = RowState.PLANNED
PAYOUT = RowState.PAYOUT
INVALID = RowState.INVALID
DUPLICATE = RowState.DUPLICATE
ALREADY_PAID = RowState.ALREADY_PAID
HELD = RowState.HELD
ROW_REJECTED = RowState.REJECTED
# A held row whose payout another unfinished run holds in flight: it waits for that run.
# (An error code on a held row, not a state of its own.)
IN_FLIGHT_ELSEWHERE = "in_flight_elsewhere"

SENDING = PayoutState.SENDING
CREATED = PayoutState.CREATED
REJECTED = PayoutState.REJECTED
UNKNOWN = PayoutState.UNKNOWN

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
