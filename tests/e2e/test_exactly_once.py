"""Exactly once through lost responses, timeouts, 5xx and the provider's 24-hour key window."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from batchpay import pipeline
from batchpay.config import Settings
from batchpay.errors import ExitCode
from batchpay.journal import Journal
from batchpay.sandbox import Sandbox

from .conftest import payee, run_kwargs, write_csv

pytestmark = pytest.mark.anyio

ATTEMPTS = 5  # the client's default retry budget per request


def _per_reference(sb: Sandbox) -> Counter[str]:
    return Counter(p["reference"] for p in sb.ledger())


def _payout_posts(settings: Settings, run_id: str) -> int:
    with Journal(settings.journal_path) as j:
        return sum(
            1 for c in j.calls(run_id) if c["method"] == "POST" and c["path"] == "/v1/payouts"
        )


async def test_lost_responses_never_pay_twice(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """Responses lost after the server committed are replayed with the same key: one payout."""
    rows = [payee(i) for i in range(6)]
    sandbox.faults.plan("POST /v1/payouts", ["lost_response", "timeout", None] * len(rows))
    f = write_csv(tmp_path / "p.csv", rows)
    result = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path, concurrency=1))
    assert result.exit_code == ExitCode.OK
    assert _per_reference(sandbox) == Counter(r["reference"] for r in rows)
    assert {r.outcome for r in result.report.rows} == {"pending"}


async def test_unknown_outcome_is_settled_by_rerun_with_same_key(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """When every retry is lost the row is unknown; the same command later settles it, once."""
    f = write_csv(tmp_path / "p.csv", [payee(0)])
    sandbox.faults.plan("POST /v1/payouts", ["lost_response"] * ATTEMPTS)
    first = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    (row,) = first.report.rows
    assert row.outcome == "unknown" and first.exit_code == ExitCode.INCOMPLETE
    assert len(sandbox.ledger()) == 1  # the server did create it
    key = row.idempotency_key
    again = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert again.resumed and again.run_id == first.run_id
    (row,) = again.report.rows
    assert row.outcome == "pending" and row.idempotency_key == key
    assert row.payout_id == sandbox.ledger()[0]["id"]
    assert len(sandbox.ledger()) == 1


async def test_after_24_hours_in_flight_rows_are_settled_by_lookup_not_resent(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """Past the key window, an unknown row is found by reference; no POST is sent again."""
    rows = [payee(i) for i in range(3)]
    f = write_csv(tmp_path / "p.csv", rows)
    sandbox.faults.plan("POST /v1/payouts", ["lost_response"] * (ATTEMPTS * len(rows)))
    first = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert {r.outcome for r in first.report.rows} == {"unknown"}
    assert len(sandbox.ledger()) == 3
    posts_before = _payout_posts(settings, first.run_id)
    await sandbox.advance(25 * 3600)  # the provider has forgotten the keys
    again = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert _payout_posts(settings, again.run_id) == posts_before
    assert len(sandbox.ledger()) == 3
    assert {r.outcome for r in again.report.rows} == {"completed"}  # 25 h later: settled
    by_ref = {p["reference"]: p["id"] for p in sandbox.ledger()}
    assert {r.reference: r.payout_id for r in again.report.rows} == by_ref


async def test_after_24_hours_a_request_that_never_arrived_is_sent_once(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """If lookup proves no payout exists, the row is sent (once) with its own key."""
    f = write_csv(tmp_path / "p.csv", [payee(0)])
    sandbox.faults.plan("POST /v1/payouts", ["503"] * ATTEMPTS)  # refused before commit
    first = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert first.report.rows[0].outcome == "unknown" and sandbox.ledger() == []
    await sandbox.advance(25 * 3600)
    again = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert [r.outcome for r in again.report.rows] == ["pending"]
    assert len(sandbox.ledger()) == 1
    assert sandbox.ledger()[0]["idempotency_key"] == first.report.rows[0].idempotency_key


async def test_server_errors_and_rate_limits_are_retried_into_one_payout(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """5xx and 429 answers are retried with the same key; each row is paid once."""
    rows = [payee(i) for i in range(8)]
    sandbox.faults.plan("*", ["500", "503", None, "429", "502", None, "504", None] * 8)
    f = write_csv(tmp_path / "p.csv", rows)
    result = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path, concurrency=1))
    assert result.exit_code == ExitCode.OK
    assert _per_reference(sandbox) == Counter(r["reference"] for r in rows)


async def test_beneficiary_creation_survives_lost_responses(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A lost beneficiary/instrument response is replayed: one beneficiary, one instrument."""
    sandbox.faults.plan("POST /v1/beneficiaries", ["lost_response"] * ATTEMPTS)
    f = write_csv(tmp_path / "p.csv", [payee(0), payee(0, reference="INV-B")])
    first = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path, concurrency=1))
    # Row 2 gave up after its retries; row 3 (same beneficiary) replayed the key and was paid.
    assert [r.outcome for r in first.report.rows] == ["unknown", "pending"]
    assert first.exit_code == ExitCode.INCOMPLETE and len(sandbox.ledger()) == 1
    again = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert again.exit_code == ExitCode.OK
    ledger = sandbox.ledger()
    assert len(ledger) == 2 and len({p["beneficiary_id"] for p in ledger}) == 1


async def test_idempotency_conflict_is_reported_as_data_problem(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A key the provider holds with another body is never re-keyed; the row needs a person."""
    f = write_csv(tmp_path / "p.csv", [payee(0)])
    sandbox.faults.plan("POST /v1/payouts", ["lost_response"] * ATTEMPTS)
    first = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    # Tamper with the stored body, as if the row had changed after its first send, and
    # keep the provider's ledger from showing the payout (as if the sweep had not seen it
    # yet), so the resend itself meets the conflict.
    with Journal(settings.journal_path) as j, j.transaction() as db:
        db.execute("UPDATE payouts SET body = replace(body, '\"purpose\":\"contractor_payment\"', "
                   "'\"purpose\":\"salary\"')")  # fmt: skip
        db.execute("UPDATE ledger_sweeps SET high_water = '2999-01-01T00:00:00.000000Z'")
        db.execute("DELETE FROM provider_payouts")
    again = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    (row,) = again.report.rows
    assert row.outcome == "unknown" and row.error_code == "idempotency_conflict"
    assert row.idempotency_key == first.report.rows[0].idempotency_key
    assert len(sandbox.ledger()) == 1


async def test_conflicting_instrument_key_holds_the_row_not_rekeys(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """If the provider holds our instrument key with other details, the row waits for a person."""
    from batchpay import dedupe
    from batchpay.resolve import beneficiary_body, credential_fingerprint

    row = payee(0)
    ben = sandbox.seed_beneficiary(beneficiary_body(row))
    key = dedupe.instrument_key(settings.environment, ben["id"], credential_fingerprint(row))
    async with sandbox.client() as http:
        other = {"method": "iban", "currency": "EUR", "country": "FR",
                 "credentials": {"iban": "FR1420041010050500013M02606"}}  # fmt: skip
        seeded = await http.post(
            f"/v1/beneficiaries/{ben['id']}/instruments",
            json=other,
            headers={"Idempotency-Key": key},
        )
        assert seeded.status_code == 201
    result = await pipeline.run_async(
        write_csv(tmp_path / "p.csv", [row]), **run_kwargs(sandbox, settings, tmp_path)
    )
    (out,) = result.report.rows
    assert out.outcome == "skipped" and out.error_code == "idempotency_conflict"
    assert sandbox.ledger() == []


async def test_after_24_hours_an_unsettled_beneficiary_is_looked_up_not_recreated(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A beneficiary creation lost past the key window is found by reference, not re-sent."""
    f = write_csv(tmp_path / "p.csv", [payee(0)])
    sandbox.faults.plan("POST /v1/beneficiaries", ["lost_response"] * ATTEMPTS)
    first = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert first.exit_code == ExitCode.INCOMPLETE and sandbox.ledger() == []
    await sandbox.advance(25 * 3600)
    again = await pipeline.run_async(f, **run_kwargs(sandbox, settings, tmp_path))
    assert again.exit_code == ExitCode.OK and len(sandbox.ledger()) == 1
    with Journal(settings.journal_path) as j:
        calls = [(c["method"], c["path"]) for c in j.calls(first.run_id)]
    posts = [c for c in calls if c == ("POST", "/v1/beneficiaries")]
    assert len(posts) == ATTEMPTS  # all from the first run; none after the window
    assert ("GET", "/v1/beneficiaries") in calls


async def test_resuming_with_a_reordered_copy_pays_each_row_its_own_amount(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """An open run resumed from a re-saved copy whose rows moved matches rows by identity."""
    rows = [payee(i) for i in range(4)]
    sandbox.faults.plan("POST /v1/beneficiaries", ["503"] * (ATTEMPTS * 4))
    first = await pipeline.run_async(
        write_csv(tmp_path / "a.csv", rows),
        **run_kwargs(sandbox, settings, tmp_path, concurrency=1),
    )
    assert first.exit_code == ExitCode.INCOMPLETE and sandbox.ledger() == []
    moved = write_csv(tmp_path / "b.csv", list(reversed(rows)))
    again = await pipeline.run_async(moved, **run_kwargs(sandbox, settings, tmp_path))
    assert again.resumed and again.run_id == first.run_id
    paid = {p["reference"]: p["dest_amount"] for p in sandbox.ledger()}
    assert paid == {r["reference"]: r["amount"] for r in rows}


async def test_row_in_flight_in_another_unfinished_run_waits_for_it(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    """A row whose payout another run still has in flight is neither paid nor called paid."""
    shared, new = payee(0), payee(1)
    a = write_csv(tmp_path / "a.csv", [shared])
    sandbox.faults.plan("POST /v1/payouts", ["503"] * ATTEMPTS)  # refused before commit
    run_a = await pipeline.run_async(a, **run_kwargs(sandbox, settings, tmp_path))
    assert run_a.report.rows[0].outcome == "unknown"
    b = write_csv(tmp_path / "b.csv", [shared, new])
    run_b = await pipeline.run_async(b, **run_kwargs(sandbox, settings, tmp_path))
    outcomes = {r.reference: (r.outcome, r.error_code) for r in run_b.report.rows}
    assert outcomes[shared["reference"]] == ("unknown", "in_flight_elsewhere")
    assert outcomes[new["reference"]][0] == "pending"
    assert run_b.exit_code == ExitCode.INCOMPLETE
    await pipeline.run_async(a, **run_kwargs(sandbox, settings, tmp_path))  # finish A
    again_b = await pipeline.run_async(b, **run_kwargs(sandbox, settings, tmp_path))
    assert again_b.resumed and again_b.exit_code == ExitCode.OK
    outcomes = {r.reference: r.outcome for r in again_b.report.rows}
    assert outcomes[shared["reference"]] == "already_paid"
    assert sorted(p["reference"] for p in sandbox.ledger()) == sorted(
        [shared["reference"], new["reference"]]
    )
