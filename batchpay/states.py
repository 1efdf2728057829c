"""The row states, re-exported from their one home, :mod:`batchpay.journal.states`."""

from __future__ import annotations

from batchpay.journal.states import (
    ALREADY_PAID,
    DUPLICATE,
    HELD,
    IN_FLIGHT_ELSEWHERE,
    INVALID,
    PAYOUT,
    PLANNED,
    ROW_REJECTED,
    RowState,
)

__all__ = [
    "ALREADY_PAID",
    "DUPLICATE",
    "HELD",
    "INVALID",
    "IN_FLIGHT_ELSEWHERE",
    "PAYOUT",
    "PLANNED",
    "ROW_REJECTED",
    "RowState",
]
