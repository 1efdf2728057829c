"""Row states in the journal before a payout intent exists (one place to read them).

A row moves ``planned → payout`` once its payout intent is committed (the intent then has
its own states: see :mod:`batchpay.submit`), or ends in one of the other states here.
"""

from __future__ import annotations

PLANNED = "planned"  # to be paid
PAYOUT = "payout"  # its payout intent is in the payouts table
INVALID = "invalid"  # refused by validation (with --skip-invalid)
DUPLICATE = "duplicate_in_file"  # a later copy of an accepted exact repeat
ALREADY_PAID = "already_paid"  # an earlier run or another journal paid it
HELD = "held"  # needs a person before it can be paid
ROW_REJECTED = "rejected"  # the provider refused its beneficiary or instrument

# A held row whose payout another unfinished run holds in flight: it waits for that run.
IN_FLIGHT_ELSEWHERE = "in_flight_elsewhere"
