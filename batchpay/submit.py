"""Submit: one ``POST /v1/payouts`` per row, exactly once.

Each row's payout moves through states committed in the journal::

    planned ──► sending ──► created ──► (tracked to a terminal status)
                   │   └──► rejected   (the API definitively said no; nothing exists)
                   └──────► unknown    (no answer after retries; settled later)

The idempotency key and the exact body are committed in ``sending`` *before* the
request leaves and never change. An intent left in ``sending`` or ``unknown`` (crash,
timeout, lost response) is settled by:

* re-sending the same key and body while the provider still remembers the key
  (its window is 24 hours; batchpay uses :data:`KEY_WINDOW`, an hour less, so a
  resend never races the expiry), or
* after that, looking the payout up (``GET /v1/payouts?reference=…``, matched on
  the idempotency key batchpay writes into the payout's metadata) before anything
  is sent. Only a lookup that proves no payout exists lets the request go again.

A new key is never minted for an unknown outcome; a timeout is never a failure.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from batchpay import dedupe
from batchpay.clocks import ProviderClock
from batchpay.errors import (
    ApiError,
    AuthenticationError,
    BatchpayError,
    IdempotencyConflictError,
    TransportError,
)
from batchpay.holds import AMOUNT_DIFFERS
from batchpay.journal import (
    CREATED,
    REJECTED,
    SENDING,
    SETTLED_FAILURES,
    UNKNOWN,
    Journal,
    dumps_body,
    parse_ts,
)
from batchpay.ledger import METADATA_KEY, RowLook, amount_differs, parse_key
from batchpay.states import HELD

KEY_WINDOW = timedelta(hours=23)

# Instrument credential format -> payout rail family.
_RAIL_BY_METHOD = {"us_bank": "ach", "uk_bank": "faster_payment"}


class SubmitClient(Protocol):
    """The part of the API client submission needs."""

    async def create_payout(self, body: Mapping[str, Any], idempotency_key: str) -> Any: ...

    def iter_payouts(self, **filters: Any) -> Any: ...

    async def cancel_payout(
        self, payout_id: str, idempotency_key: str, reason: str | None = None
    ) -> Any: ...


def payout_method(payment_method: str, currency: str) -> str:
    """The payout rail for an instrument format and destination currency."""
    if payment_method == "iban":
        return "sepa" if currency == "EUR" else "swift"
    return _RAIL_BY_METHOD.get(payment_method, "bank_transfer")


def payout_body(
    row: Mapping[str, str],
    *,
    beneficiary_id: str,
    instrument_id: str,
    idempotency_key: str,
    default_purpose: str = "contractor_payment",
) -> dict[str, Any]:
    """The POST /v1/payouts body for a row: fixed once, sent identically on every retry.

    ``amount``/``currency`` are what the beneficiary receives (``fixed_dest``). For a
    cross-currency row the provider recomputes ``source_amount`` from its rate; batchpay
    sends the destination amount there as the required placeholder.
    """
    currency = row["currency"]
    source_currency = row.get("source_currency") or currency
    metadata = {METADATA_KEY: idempotency_key}
    if row.get("description"):
        metadata["description"] = row["description"]
    return {
        "beneficiary_id": beneficiary_id,
        "instrument_id": instrument_id,
        "source_amount": row["amount"],
        "source_currency": source_currency,
        "dest_amount": row["amount"],
        "dest_currency": currency,
        "method": payout_method(row["payment_method"], currency),
        "rail_type": "fiat",
        "fixed_side": "fixed_dest",
        "fee_bearer": "merchant",
        "purpose": row.get("purpose") or default_purpose,
        "reference": row["reference"],
        "metadata": metadata,
    }


def data_of(result: Any) -> dict[str, Any]:
    """The resource in an API answer: an ApiResult's ``data``, or a plain mapping itself."""
    data = getattr(result, "data", result)
    return dict(data) if isinstance(data, Mapping) else {}


class SendWithheld(Exception):
    """Raised by ``before_first_send``: the request is not sent now, for ``code``'s reason.

    The intent stays in the journal, ``unknown`` (an earlier send may have left), and is
    settled by a later run with its own key."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Submitter:
    """Sends payout intents and settles those whose outcome is unknown."""

    def __init__(
        self,
        client: SubmitClient,
        journal: Journal,
        environment: str,
        *,
        clock: Callable[[], datetime],
        key_window: timedelta = KEY_WINDOW,
        provider_clock: ProviderClock | None = None,
        before_first_send: Callable[[str], Awaitable[Mapping[str, Any] | None]] | None = None,
        ledger_stale: Callable[[], bool] | None = None,
    ) -> None:
        self.client = client
        self.journal = journal
        self.environment = environment
        self.clock = clock
        self.key_window = key_window
        self.provider_clock = provider_clock or ProviderClock(clock)
        self.before_first_send = before_first_send
        """Asked with the key just before a new intent's first request leaves (its intent
        committed): the provider's payout of that key, if it already holds one (made by
        another journal), which is then recorded instead of sending. It raises
        :class:`SendWithheld` when the request must not leave in this run."""
        self.ledger_stale = ledger_stale
        """Whether the caller's view of the provider's ledger is too old to send on, asked
        again after a first send was answered as new: the answer's own clock may show that
        the provider's time had moved on unseen (then the payout is looked up, as after a
        resend answered as new)."""

    def next_attempt(self, row_key: str) -> int:
        """Attempt number for a new intent: one past any this journal or the provider knows."""
        return self.journal.last_attempt(self.environment, row_key) + 1

    def first_attempt(self, row_key: str, look: RowLook | None = None) -> tuple[int, bool]:
        """(attempt, revive) for a row's first live intent.

        The lowest attempt whose key the provider can no longer remember as refused is used
        again (``revive``); otherwise one past the last. Every journal so arrives at the same
        key for the same row whatever refusals it saw, and a key the provider still holds is
        at worst answered with its old refusal — never with a second payout.

        ``look`` is the row key's history as the caller just read it (not read again).
        """
        if look is None:
            look = RowLook.read(self.journal, self.environment, row_key)
        at_provider = {int(p.attempt) for p in look.at_provider}
        for h in look.history:
            if h["state"] != REJECTED or int(h["attempt"]) in at_provider:
                continue
            if self._forgotten(h):
                return int(h["attempt"]), True
        return look.last_attempt + 1, False

    def _forgotten(self, intent: Any) -> bool:
        """Whether the provider may have forgotten this refused key (``key_window``, an
        hour short of its 24 hours, on its clock).

        Reviving a key too early is safe: a key the provider still holds is answered with
        its refusal or ``idempotency_conflict``, never with a payout. Reviving it late is
        not: a home that never saw the refusal sends that key as the row's first, the
        provider has forgotten it and makes a payout, and this journal's next attempt's
        key makes a second."""
        first = intent["first_sent_provider_at"]
        if first is None or not self.provider_clock.observed:
            return False
        return self.provider_clock.now() - parse_ts(str(first)) >= self.key_window

    def key_remembered(self, intent: Any) -> bool:
        """Whether the provider still remembers this intent's key, on the provider's clock.

        The first send's provider time (its ``Date``) against the provider's time now, with
        an hour's margin under its 24 hours. When the first send's provider time is not
        known, only a provider that never states its clock leaves the local clock to judge;
        otherwise the answer is "perhaps not", and the caller looks before resending.
        """
        first_provider = intent["first_sent_provider_at"]
        if first_provider is not None:
            if not self.provider_clock.observed:
                return False
            age = self.provider_clock.now() - parse_ts(str(first_provider))
            return timedelta(0) <= age < self.key_window
        first_local = intent["first_sent_at"]
        if first_local is None:
            return True  # never sent: nothing for the provider to have forgotten
        if self.provider_clock.observed:
            return False
        return self.clock() - parse_ts(str(first_local)) < self.key_window

    async def submit(
        self,
        *,
        run_id: str,
        row: Mapping[str, str],
        row_number: int,
        row_key: str,
        beneficiary_id: str,
        instrument_id: str,
        default_purpose: str = "contractor_payment",
        look: RowLook | None = None,
        destination: tuple[str, str, str | None] | None = None,
    ) -> str:
        """Commit the intent for ``row`` and send it; return the intent's final journal state.

        ``look``: the row key's history as the caller just read it (see :meth:`first_attempt`);
        ``destination``: written on the row with the intent (see ``Journal.begin_payout``).
        """
        attempt, revive = self.first_attempt(row_key, look)
        key = dedupe.idempotency_key(row_key, attempt)
        body = payout_body(
            row,
            beneficiary_id=beneficiary_id,
            instrument_id=instrument_id,
            idempotency_key=key,
            default_purpose=default_purpose,
        )
        return await self.send_new(
            run_id=run_id,
            row_number=row_number,
            row_key=row_key,
            reference=row["reference"],
            attempt=attempt,
            body=body,
            revive=revive,
            destination=destination,
        )

    async def send_new(
        self,
        *,
        run_id: str,
        row_number: int,
        row_key: str,
        reference: str,
        attempt: int,
        body: Mapping[str, Any],
        after_failure: bool = False,
        revive: bool = False,
        destination: tuple[str, str, str | None] | None = None,
    ) -> str:
        """Commit a new intent with ``body`` (its key in the metadata) and send it."""
        key = str(body["metadata"][METADATA_KEY])
        pc = self.provider_clock
        text = dumps_body(body)
        intent = self.journal.begin_payout(
            environment=self.environment,
            run_id=run_id,
            row_number=row_number,
            row_key=row_key,
            reference=reference,
            attempt=attempt,
            idempotency_key=key,
            body=text,
            after_failure=after_failure,
            revive=revive,
            sending=True,  # the send is recorded with the intent, in one statement
            provider_at=pc.now() if pc.observed else None,
            destination=destination,
        )
        # An intent stored before keeps its own body: its method is read from it then.
        method = str(body["method"]) if intent.body == text else None
        return await self._send(intent.idempotency_key, intent.body, marked=True, method=method)

    async def settle(self, intent: Any) -> str:
        """Bring an intent in ``sending`` or ``unknown`` to ``created`` or ``rejected``.

        Returns the journal state afterwards (``unknown`` if the provider is still
        unreachable).
        """
        state = str(intent["state"])
        if state not in (SENDING, UNKNOWN):
            return state
        key = str(intent["idempotency_key"])
        seen = self.journal.provider_payout_for_key(key) or self._paid_under_another_key(intent)
        if seen is not None:
            # The sweep of the provider's ledger already shows this key's payout (or the
            # row's, made under another attempt's key by a home that never saw this key).
            doc = json.loads(str(seen["doc"]))
            self.journal.record_payout_created(key, doc, request_id=None, settled_by="ledger")
            self._hold_if_amount_differs(intent, doc)
            return CREATED
        if self.key_remembered(intent):
            return await self._send(key, str(intent["body"]), resend=intent["first_sent_at"])
        # The provider may have forgotten the key: look before sending anything (for the
        # row's live payout under any attempt's key).
        try:
            found = await self._lookup(intent, any_attempt=True)
        except (TransportError, ApiError) as exc:
            if isinstance(exc, AuthenticationError):
                raise
            self.journal.record_payout_unknown(
                key, code=_code(exc), message=exc.message, request_id=_rid(exc)
            )
            return UNKNOWN
        if len(found) == 1:
            self.journal.record_payout_created(key, found[0], request_id=None, settled_by="lookup")
            self._hold_if_amount_differs(intent, found[0])
            return CREATED
        if len(found) > 1:
            self.journal.record_payout_unknown(
                key,
                code="ambiguous_lookup",
                message=f"{len(found)} payouts carry this row's key; a person must check",
                request_id=None,
            )
            return UNKNOWN
        # Proven absent: the request never took effect, so sending it now is the first time.
        return await self._send(key, str(intent["body"]), resend=None)

    def _hold_if_amount_differs(self, intent: Any, payout: Mapping[str, Any]) -> None:
        """An intent settled by a payout another home made for its row (another file, a
        corrected amount, under the same key) that pays another amount than the intent
        asked: its row is held ``amount_differs``, never reported paid at the asked amount."""
        try:
            body = json.loads(str(intent["body"]))
        except ValueError:
            return
        paid = (payout.get("dest_amount"), payout.get("dest_currency"))
        if not (isinstance(body, dict) and paid[0] and paid[1]):
            return
        differs = amount_differs(body.get("dest_amount"), body.get("dest_currency"),
                                 (str(paid[0]), str(paid[1])))  # fmt: skip
        if differs is not None:
            self.journal.update_row(str(intent["run_id"]), int(intent["row_number"]),
                                    state=HELD, error_code=AMOUNT_DIFFERS,
                                    error_message=differs)  # fmt: skip

    def _paid_under_another_key(self, intent: Any) -> Any:
        """A live payout a sweep saw for the intent's row under another attempt's key, or
        None. Another home that never saw this key refused (or in conflict) pays the row
        with its own first attempt: the row is paid, and this key would pay it again."""
        key = str(intent["idempotency_key"])
        for p in self.journal.provider_payouts_for(self.environment, str(intent["row_key"])):
            if p.idempotency_key != key and p.status not in SETTLED_FAILURES:
                return p
        return None

    async def _lookup(self, intent: Any, *, any_attempt: bool = False) -> list[dict[str, Any]]:
        """The provider's payouts of the intent's reference made with its key (or, with
        ``any_attempt``, live ones under any attempt's key for the same row), and those
        without metadata that match its body."""
        key = str(intent["idempotency_key"])
        parsed = parse_key(key)
        row = parsed[0] if parsed is not None and any_attempt else None
        body = json.loads(str(intent["body"]))
        matches = []
        async for payout in self.client.iter_payouts(reference=str(intent["reference"])):
            meta = payout.get("metadata") or {}
            theirs = parse_key(meta.get(METADATA_KEY)) if row is not None else None
            if (
                meta.get(METADATA_KEY) == key
                or (
                    theirs is not None
                    and theirs[0] == row
                    and payout.get("status") not in SETTLED_FAILURES
                )
                or (
                    not meta
                    and payout.get("beneficiary_id") == body["beneficiary_id"]
                    and payout.get("instrument_id") == body["instrument_id"]
                    and payout.get("dest_amount") == body["dest_amount"]
                    and payout.get("dest_currency") == body["dest_currency"]
                )
            ):
                matches.append(dict(payout))
        return matches

    async def _send(
        self,
        key: str,
        body_text: str,
        *,
        resend: Any = None,
        marked: bool = False,
        method: str | None = None,
    ) -> str:
        """Send the intent's request; ``resend`` is set when an earlier send may have left;
        ``marked`` when the journal already records this send (``begin_payout(sending=)``);
        ``method`` the body's (read from the stored body when not given).

        The stored text is what is sent (as it is, when the client can send text)."""
        if not marked:
            pc = self.provider_clock
            self.journal.mark_sent_attempt(key, provider_at=pc.now() if pc.observed else None)
        # Committed before sent: inside a grouped run this waits for the commit that holds
        # the intent (many intents share it).
        await self.journal.durable()
        if marked and resend is None and self.before_first_send is not None:
            try:
                held = await self.before_first_send(key)
            except SendWithheld as why:
                self.journal.record_payout_unknown(
                    key, code=why.code, message=why.message, request_id=None
                )
                return UNKNOWN
            if held is not None:
                self.journal.record_payout_created(key, held, request_id=None, settled_by="ledger")
                return CREATED
        send_text = getattr(self.client, "create_payout_text", None)
        try:
            if send_text is not None:
                result = await send_text(body_text, key)
            else:
                result = await self.client.create_payout(json.loads(body_text), key)
        except AuthenticationError:
            raise  # the run stops; the intent stays in `sending` and is resent later
        except IdempotencyConflictError as exc:
            # The provider holds this key with another body: a payout may exist. Never
            # mint a new key for it; a person must look.
            self.journal.record_payout_unknown(
                key, code=exc.code, message=exc.message, request_id=exc.request_id
            )
            return UNKNOWN
        except ApiError as exc:
            if exc.retryable:
                self.journal.record_payout_unknown(
                    key, code=exc.code, message=exc.message, request_id=exc.request_id
                )
                return UNKNOWN
            # A refusal replayed to this journal was another's first: the provider's memory
            # of the key began before this send, at a time not known here, so it is taken
            # as a day ago (the key may be forgotten at once; reviving it early is safe).
            pc = self.provider_clock
            seen = pc.now() - timedelta(hours=24) if exc.replayed and pc.observed else None
            self.journal.record_payout_rejected(
                key, code=exc.code, message=exc.message, request_id=exc.request_id,
                seen_before=seen,
            )  # fmt: skip
            return REJECTED
        except TransportError as exc:
            self.journal.record_payout_unknown(
                key,
                code="timeout" if exc.timeout else "network_error",
                message=exc.message,
                request_id=_rid(exc),
            )
            return UNKNOWN
        replayed = bool(getattr(result, "replayed", False))
        self.journal.record_payout_created(
            key,
            data_of(result),
            request_id=getattr(result, "request_id", None),
            settled_by="replay" if replayed else "create",
            fee_method=None if method is None else (self.environment, method),
        )
        if resend and not replayed:
            # A resend the provider answered as new: either the first send never arrived,
            # or the provider forgot the key and this is a second payout. Look, don't trust.
            await self._check_single(key, json.loads(body_text))
        elif marked and not replayed and self.ledger_stale is not None and self.ledger_stale():
            # A first send answered as new, on a view of the ledger the answer shows was
            # stale: another home may have paid the row with this key, since forgotten.
            await self._check_single(key, json.loads(body_text))
        return CREATED

    async def _check_single(self, key: str, body: Mapping[str, Any]) -> None:
        """After a resend created a payout, make sure it is the only one with this key."""
        intent = {"idempotency_key": key, "body": json.dumps(body), "reference": body["reference"]}
        try:
            found = await self._lookup(intent)
        except (TransportError, ApiError) as exc:
            if isinstance(exc, AuthenticationError):
                raise
            self.journal.note_payout_problem(
                key,
                code="unverified_resend",
                message="a resend was answered as a new payout and the check for an earlier "
                "one failed; look the reference up at the provider",
            )
            return
        if len(found) <= 1:
            return
        found.sort(key=lambda p: (str(p.get("created_at") or ""), str(p.get("id") or "")))
        keep, extra = found[0], found[1:]
        self.journal.record_payout_created(key, keep, request_id=None, settled_by="lookup")
        leftovers = []
        for dup in extra:
            pid = str(dup.get("id"))
            try:
                await self.client.cancel_payout(
                    pid, f"bp1-cancel-{pid}", reason=f"duplicate of {keep.get('id')}"
                )
            except (TransportError, ApiError) as exc:
                if isinstance(exc, AuthenticationError):
                    raise
                leftovers.append(pid)
        if leftovers:
            self.journal.note_payout_problem(
                key,
                code="duplicate_payout",
                message=f"the provider holds {len(found)} payouts for this row; "
                f"{', '.join(leftovers)} could not be cancelled: a person must recall them",
            )


def _code(exc: BatchpayError) -> str:
    if isinstance(exc, ApiError):
        return exc.code
    if isinstance(exc, TransportError):
        return "timeout" if exc.timeout else "network_error"
    return "error"


def _rid(exc: BatchpayError) -> str | None:
    rid = getattr(exc, "request_id", None)
    return str(rid) if rid else None
