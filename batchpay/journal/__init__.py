"""The journal: batchpay's durable memory, in SQLite (embedded) or PostgreSQL (shared).

It records every file, run, row, beneficiary, instrument, payout intent and API
call. The exactly-once promise rests on two rules kept here:

* a payout's idempotency key and exact request body are committed (state
  ``sending``) *before* the request leaves, and never change afterwards;
* one row of business identity (``row_key``) has at most one live payout
  intent per environment — the UNIQUE index on ``(environment, row_key,
  attempt)`` and the checks in :meth:`Journal.begin_payout` make a second
  submission impossible, across files, runs and processes.

Writes go through transactions that take the write lock up front (``BEGIN IMMEDIATE`` on
SQLite, an advisory transaction lock on PostgreSQL), so several processes can share one
journal safely.

The package: :mod:`~batchpay.journal.store` holds :class:`Journal`, whose verbs are grouped
by subject (``runs``, ``payouts``, ``provider_ledger``, ``beneficiaries``, ``calls``) on
``base``; ``states`` names every state, ``schema`` the migrations, ``target`` where a journal
lives, ``sqlite`` and ``postgres`` the connections and their errors, ``locks`` the run locks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from batchpay.clocks import utcnow
from batchpay.journal.base import parse_ts
from batchpay.journal.locks import LockOwner
from batchpay.journal.payouts import LivePayoutExists, dumps_body
from batchpay.journal.runs import RunExists
from batchpay.journal.schema import MIGRATIONS, Migration
from batchpay.journal.states import (
    CREATED,
    REJECTED,
    SENDING,
    SETTLED_FAILURES,
    TERMINAL_STATUSES,
    UNKNOWN,
)
from batchpay.journal.store import Journal

__all__ = [
    "BUSY_TIMEOUT_SECONDS",
    "CREATED",
    "MIGRATIONS",
    "REJECTED",
    "SENDING",
    "SETTLED_FAILURES",
    "TERMINAL_STATUSES",
    "UNKNOWN",
    "Journal",
    "LivePayoutExists",
    "LockOwner",
    "Migration",
    "RunExists",
    "connection_hook",
    "dumps_body",
    "parse_ts",
    "utcnow",
]

# Read by every new connection (batchpay.journal.sqlite), and set here by tests.
BUSY_TIMEOUT_SECONDS = 30.0

# For tests: called with every new journal connection, e.g. to set ``PRAGMA max_page_count``
# (a full disk) or ``PRAGMA query_only`` (a read-only journal) in a way root cannot bypass.
connection_hook: Callable[[sqlite3.Connection], None] | None = None
