"""The journal: migrations, payout intents, monotonic statuses and run locks.

Tests taking ``journal_target`` run on SQLite and on PostgreSQL (tests/conftest.py).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from batchpay.errors import JournalError, RunLockedError
from batchpay.journal import (
    CREATED,
    MIGRATIONS,
    REJECTED,
    SENDING,
    UNKNOWN,
    Journal,
    LivePayoutExists,
    LockOwner,
)
from batchpay.journal.schema import statements
from batchpay.journal.target import PostgresURL

ENV = "sandbox:test"
Target = Path | PostgresURL


def _arg(target: Target) -> str:
    """The journal as a command line names it (a URL keeps its password here: tests only)."""
    return target.reveal() if isinstance(target, PostgresURL) else str(target)


def _run(j: Journal, rows: int = 2, owner: LockOwner | None = None) -> str:
    return j.create_run(
        environment=ENV,
        api_url="http://x",
        mode="sandbox",
        file={"sha256": "s", "fingerprint": "f", "name": "f.csv", "size": 1, "format": "csv",
              "row_count": rows},
        rows=[
            {"row_number": n + 2, "reference": f"R{n}", "beneficiary_ref": "B", "row_key": f"k{n}",
             "content_hash": "h", "amount": "1.00", "currency": "EUR", "source_currency": "EUR",
             "payment_method": "iban", "masked_account": "****1234", "state": "planned"}
            for n in range(rows)
        ],
        options={},
        owner=owner,
    )  # fmt: skip


def _begin(j: Journal, run_id: str, key: str = "bp1-k0-1", row_key: str = "k0") -> None:
    j.begin_payout(
        environment=ENV, run_id=run_id, row_number=2, row_key=row_key, reference="R0",
        attempt=int(key.rsplit("-", 1)[1]), idempotency_key=key, body='{"a":1}',
    )  # fmt: skip


def test_migrations_are_named_and_recorded(journal_target: Target) -> None:
    """A new journal records its applied migrations; reopening applies nothing twice."""
    names = ["0001_initial", "0002_one_live_payout_and_provider_ledger", "0003_payout_fees",
             "0004_state_checks", "0005_row_claims", "0006_batches"]  # fmt: skip
    with Journal(journal_target) as j:
        assert j.applied_migrations() == names
    with Journal(journal_target) as j:
        assert j.applied_migrations() == names


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    """A corrupt or foreign file at the journal path is refused with a JournalError."""
    bad = tmp_path / "j.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalError, match="cannot open the journal"):
        Journal(bad)


_OUT_OF_FILES = """
import os, resource, sys
from batchpay.errors import JournalError
from batchpay.journal import Journal
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
held = []
try:
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
try:
    Journal(sys.argv[1])
except JournalError as exc:
    print(exc)
    print(exc.hint)
"""


def test_out_of_file_descriptors_is_said_not_a_bad_path(tmp_path: Path) -> None:
    """SQLite says only "unable to open database file" when the process may open no more
    files: the error names that and its limit, not the path or permissions."""
    pytest.importorskip("resource")
    path = tmp_path / "j.db"
    Journal(path).close()
    done = subprocess.run([sys.executable, "-c", _OUT_OF_FILES, str(path)],
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    message, hint = done.stdout.strip().splitlines()
    said = f"cannot open the journal at {path}: this process may open no more files"
    assert message == f"{said} (its limit is 64)"
    assert "ulimit -n" in hint and "--concurrency" in hint
    # with descriptors to spare, the same journal opens
    Journal(path).close()


def test_intent_is_committed_before_send_and_body_never_changes(journal_target: Target) -> None:
    """begin_payout stores the body once; a second begin with another body keeps the first."""
    with Journal(journal_target) as j:
        run_id = _run(j)
        _begin(j, run_id)
        again = j.begin_payout(
            environment=ENV, run_id=run_id, row_number=2, row_key="k0", reference="R0",
            attempt=1, idempotency_key="bp1-k0-1", body='{"a":2}',
        )  # fmt: skip
        assert again["body"] == '{"a":1}' and again["state"] == SENDING
    # Visible to another connection: it was committed.
    with Journal(journal_target) as other:
        assert [h["state"] for h in other.row_history(ENV, "k0")] == [SENDING]


def test_second_live_intent_for_same_row_refused(journal_target: Target) -> None:
    """A row identity with a live intent cannot get another key (no double payment)."""
    with Journal(journal_target) as j:
        run_id = _run(j)
        _begin(j, run_id)
        with pytest.raises(JournalError, match="live payout"):
            _begin(j, run_id, key="bp1-k0-2")


def test_new_attempt_allowed_after_definitive_rejection(journal_target: Target) -> None:
    """After a refusal (nothing created) a new attempt with a new key is allowed."""
    with Journal(journal_target) as j:
        run_id = _run(j)
        _begin(j, run_id)
        j.record_payout_rejected("bp1-k0-1", code="insufficient_balance", message="m",
                                 request_id="r")  # fmt: skip
        _begin(j, run_id, key="bp1-k0-2")
        states = [h["state"] for h in j.row_history(ENV, "k0")]
        assert states == [REJECTED, SENDING]


def test_unknown_never_overwrites_created(journal_target: Target) -> None:
    """A late failure report cannot turn a created payout back into unknown."""
    with Journal(journal_target) as j:
        run_id = _run(j)
        _begin(j, run_id)
        j.record_payout_created("bp1-k0-1", {"id": "pay_1", "status": "created"},
                                request_id="r", settled_by="create")  # fmt: skip
        j.record_payout_unknown("bp1-k0-1", code="timeout", message="m", request_id=None)
        assert j.row_history(ENV, "k0")[0]["state"] == CREATED
        j.record_payout_unknown("nope", code="timeout", message="m", request_id=None)
        assert UNKNOWN not in {h["state"] for h in j.row_history(ENV, "k0")}


def test_status_only_moves_forward_and_events_dedupe(journal_target: Target) -> None:
    """A late `sent` never overwrites `completed`; a replayed event id is ignored."""
    with Journal(journal_target) as j:
        run_id = _run(j)
        _begin(j, run_id)
        j.record_payout_created("bp1-k0-1", {"id": "pay_1", "status": "created"},
                                request_id="r", settled_by="create")  # fmt: skip
        assert j.record_status("pay_1", "completed", source="webhook", event_id="evt_2")
        assert j.record_status("pay_1", "sent", source="webhook", event_id="evt_1")
        assert not j.record_status("pay_1", "sent", source="webhook", event_id="evt_1")
        assert j.row_history(ENV, "k0")[0]["status"] == "completed"
        assert j.open_payouts(run_id) == []


def test_run_lock_refuses_a_live_holder(journal_target: Target) -> None:
    """A second process cannot take a run held by a live process."""
    with Journal(journal_target) as j:
        run_id = _run(j, owner=LockOwner.current())
        with pytest.raises(RunLockedError, match="another batchpay process"):
            j.acquire_run_lock(run_id, LockOwner.current())


def test_run_lock_taken_over_from_a_dead_process(journal_target: Target) -> None:
    """A lock held by a process that was SIGKILLed is free at once (it died with its holder)."""
    with Journal(journal_target) as j:
        run_id = _run(j)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, _arg(journal_target), run_id],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with Journal(journal_target) as j:
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
            j.acquire_run_lock(run_id, LockOwner.current())
        holder.kill()
        holder.wait()
        holder.stdout.close()
        me = LockOwner.current()
        j.acquire_run_lock(run_id, me)
        assert j.get_run(run_id)["lock_owner"] == me.encode()


HOLD_LOCK = """
import sys, time
from batchpay.journal import Journal, LockOwner
j = Journal(sys.argv[1])
j.acquire_run_lock(sys.argv[2], LockOwner.current())
print("held", flush=True)
time.sleep(600)
"""


def test_webhook_before_the_payout_id_is_known_is_not_lost(journal_target: Target) -> None:
    """An event recorded before a lost response is settled still counts once the id is known."""
    with Journal(journal_target) as j:
        run_id = _run(j)
        _begin(j, run_id)
        assert j.record_status("pay_9", "completed", source="webhook", event_id="evt_9")
        j.record_payout_created("bp1-k0-1", {"id": "pay_9", "status": "created"},
                                request_id=None, settled_by="replay")  # fmt: skip
        assert j.row_history(ENV, "k0")[0]["status"] == "completed"


def test_a_created_payout_blocks_a_second_attempt_for_its_row(journal_target: Target) -> None:
    """A row whose payout was created (still pending) cannot get a second intent."""
    with Journal(journal_target) as j:
        run_id = _run(j)
        _begin(j, run_id)
        j.record_payout_created("bp1-k0-1", {"id": "pay_1", "status": "processing"},
                                request_id="r", settled_by="create")  # fmt: skip
        with pytest.raises(LivePayoutExists):
            _begin(j, run_id, key="bp1-k0-2")
        with pytest.raises(LivePayoutExists):  # not even as a retry of a failure
            j.begin_payout(environment=ENV, run_id=run_id, row_number=2, row_key="k0",
                           reference="R0", attempt=2, idempotency_key="bp1-k0-2", body="{}",
                           after_failure=True)  # fmt: skip
        j.record_status("pay_1", "failed", source="poll")
        _ = j.begin_payout(environment=ENV, run_id=run_id, row_number=2, row_key="k0",
                           reference="R0", attempt=2, idempotency_key="bp1-k0-2", body="{}",
                           after_failure=True)  # fmt: skip
        assert j.last_attempt(ENV, "k0") == 2


def test_the_database_itself_allows_one_live_intent_per_row_key(journal_target: Target) -> None:
    """No code path can add a second live intent: the unique index refuses the INSERT."""
    with Journal(journal_target) as j:
        run_id = _run(j)
        _begin(j, run_id)
        with pytest.raises(sqlite3.IntegrityError), j.transaction() as db:
            db.execute(
                """INSERT INTO payouts (idempotency_key, environment, row_key, attempt, run_id,
                   row_number, reference, body, state, live_key, created_at, updated_at)
                   VALUES ('bp1-k0-9', ?, 'k0', 9, ?, 2, 'R0', '{}', 'sending', 'k0', 'x', 'x')""",
                (ENV, run_id),
            )
        j.record_payout_rejected("bp1-k0-1", code="invalid", message="no", request_id=None)
        _begin(j, run_id, key="bp1-k0-2")  # a refused intent is not live


def test_an_old_journal_migrates_even_with_duplicate_live_intents(tmp_path: Path) -> None:
    """A journal from before the unique index (holding a double payment) still opens."""
    from batchpay import journal as journal_mod

    path = tmp_path / "old.db"
    first = journal_mod.MIGRATIONS[:1]
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for statement in first[0][1].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("INSERT INTO migrations VALUES ('0001_initial', 'then')")
    db.execute("INSERT INTO files VALUES (1, ?, 's', 'f', 'f.csv', 1, 'csv', 1, 'then')", (ENV,))
    db.execute("INSERT INTO runs (id, file_id, environment, api_url, mode, status, created_at, "
               "updated_at) VALUES ('run_old', 1, ?, 'http://x', 'sandbox', 'open', 't', 't')",
               (ENV,))  # fmt: skip
    for attempt in (1, 2):
        db.execute("INSERT INTO payouts (idempotency_key, environment, row_key, attempt, run_id, "
                   "row_number, reference, body, state, status, created_at, updated_at) VALUES "
                   "(?, ?, 'k0', ?, 'run_old', 2, 'R0', '{}', 'created', 'completed', 't', 't')",
                   (f"bp1-k0-{attempt}", ENV, attempt))  # fmt: skip
    db.commit()
    db.close()
    with Journal(path) as j:
        assert j.applied_migrations() == [m.name for m in journal_mod.MIGRATIONS]
        live = j.db.execute("SELECT attempt, live_key FROM payouts ORDER BY attempt").fetchall()
        assert [tuple(r) for r in live] == [(1, "k0"), (2, "k0#duplicate-2")]
        assert j.last_attempt(ENV, "k0") == 2


def _schema(db: sqlite3.Connection) -> list[tuple[str, str]]:
    return [tuple(r) for r in db.execute(
        "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")]  # fmt: skip


@pytest.mark.parametrize("applied", range(1, len(MIGRATIONS)))
def test_a_journal_from_every_earlier_schema_migrates_with_its_data(
    tmp_path: Path, applied: int
) -> None:
    """A journal with only the first k migrations opens, gets the rest, and keeps its data."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, sql, _pg in MIGRATIONS[:applied]:
        for statement in statements(sql, "sqlite"):
            db.execute(statement)
        db.execute("INSERT INTO migrations VALUES (?, 'then')", (name,))
    db.execute("INSERT INTO files VALUES (1, ?, 's', 'f', 'f.csv', 1, 'csv', 1, 'then')", (ENV,))
    db.execute("INSERT INTO runs (id, file_id, environment, api_url, mode, status, created_at, "
               "updated_at) VALUES ('run_old', 1, ?, 'http://x', 'sandbox', 'open', 't', 't')",
               (ENV,))  # fmt: skip
    db.execute("INSERT INTO rows (run_id, row_number, reference, beneficiary_ref, row_key, "
               "content_hash, amount, currency, state, idempotency_key, updated_at) VALUES "
               "('run_old', 2, 'R0', 'B', 'k0', 'h', '1.00', 'EUR', 'payout', 'bp1-k0-1', "
               "'t')")  # fmt: skip
    db.execute("INSERT INTO payouts (idempotency_key, environment, row_key, attempt, run_id, "
               "row_number, reference, body, state, payout_id, status, created_at, updated_at) "
               "VALUES ('bp1-k0-1', ?, 'k0', 1, 'run_old', 2, 'R0', '{}', 'created', 'po_1', "
               "'completed', 't', 't')", (ENV,))  # fmt: skip
    db.commit()
    db.close()
    with Journal(path) as j:
        assert j.applied_migrations() == [m.name for m in MIGRATIONS]
        run = j.get_run("run_old")
        assert run is not None and run["file_name"] == "f.csv"
        [row] = j.rows("run_old")
        assert (row["reference"], row["amount"], row["payout_id"]) == ("R0", "1.00", "po_1")
        assert row["payout_status"] == "completed"
        assert j.last_attempt(ENV, "k0") == 1
        with pytest.raises(LivePayoutExists):  # the old payout still counts as live
            _begin(j, "run_old", key="bp1-k0-2")
        migrated = _schema(j.db)
    with Journal(tmp_path / "new.db") as fresh:
        assert migrated == _schema(fresh.db)  # the same schema as a journal made today


def test_journal_lock_files_are_the_owners_alone(tmp_path: Path) -> None:
    """The run's lock file beside the journal is readable by its owner only."""
    with Journal(tmp_path / "j.db") as j:
        run_id = _run(j, owner=LockOwner.current())
        lock = tmp_path / "j.db.locks" / f"{run_id}.lock"
        assert lock.is_file() and (lock.stat().st_mode & 0o777) == 0o600
        assert (lock.parent.stat().st_mode & 0o777) == 0o700


@pytest.mark.parametrize(
    ("table", "statement"),
    [
        ("rows", "UPDATE rows SET state='paid'"),
        ("payouts", "UPDATE payouts SET state='maybe'"),
        ("runs", "UPDATE runs SET status='done'"),
    ],
)
def test_the_database_refuses_a_state_no_module_names(
    journal_target: Target, table: str, statement: str
) -> None:
    """A state outside batchpay.journal.states is refused by the database itself."""
    with Journal(journal_target) as j:
        run_id = _run(j)
        _begin(j, run_id)
        with pytest.raises(sqlite3.IntegrityError), j.transaction() as db:
            db.execute(statement)
        assert j.get_run(run_id)["status"] == "open"
        assert {r["state"] for r in j.rows(run_id)} == {"payout", "planned"}


def test_two_connections_cannot_both_begin_a_live_intent(journal_target: Target) -> None:
    """Two processes' connections racing on one row key: the second is refused."""
    with Journal(journal_target) as a, Journal(journal_target) as b:
        run_id = _run(a)
        _begin(a, run_id)
        with pytest.raises(LivePayoutExists):
            _begin(b, run_id, key="bp1-k0-2")
        assert [h["attempt"] for h in b.row_history(ENV, "k0")] == [1]


def test_every_verb_reads_back_what_it_wrote(journal_target: Target) -> None:
    """Runs, rows, intents, the swept ledger, resources and calls round-trip on each database."""
    with Journal(journal_target) as j:
        run_id = _run(j, rows=3)
        assert [r["id"] for r in j.find_runs_for_file(ENV, sha256="s", fingerprint="x")] == [run_id]
        assert j.latest_run_id() == run_id and j.list_runs()[0]["file_name"] == "f.csv"
        j.update_row(run_id, 3, state="held", error_code="c", error_message="m")
        assert (j.row(run_id, 3)["state"], j.row(run_id, 3)["error_code"]) == ("held", "c")
        _begin(j, run_id)
        j.mark_sent_attempt("bp1-k0-1", provider_at=None)
        created = {"id": "pay_1", "status": "created", "fee": "0.50", "fee_currency": "EUR"}
        j.record_payout_created("bp1-k0-1", created, request_id="r", settled_by="create")
        assert j.row(run_id, 2)["payout_id"] == "pay_1" and j.row(run_id, 2)["send_count"] == 1
        assert [p["idempotency_key"] for p in j.open_payouts(run_id)] == ["bp1-k0-1"]
        j.record_ledger_sweep(ENV, [{"payout_id": "pay_x", "idempotency_key": "bp1-k9-3",
                              "row_key": "k9", "attempt": 3, "reference": "R9",
                              "status": "completed", "created_at": "2026-01-01T00:00:00Z",
                              "doc": "{}"}], "2026-01-01T00:00:00Z")  # fmt: skip
        j.record_ledger_sweep(ENV, [], "2025-01-01T00:00:00Z")  # never moves back
        assert j.ledger_high_water(ENV) == "2026-01-01T00:00:00Z"
        assert j.last_attempt(ENV, "k9") == 3
        assert j.provider_payout_for_key("bp1-k9-3")["payout_id"] == "pay_x"
        found = dict(j.provider_payouts_for(ENV, "k9")[0])
        assert j.adopt_provider_payout(environment=ENV, run_id=run_id, row_number=4,
                                       found=found, body="{}", note="paid")  # fmt: skip
        assert not j.adopt_provider_payout(environment=ENV, run_id=run_id, row_number=4,
                                           found=found, body="{}", note="paid")  # fmt: skip
        assert j.row(run_id, 4)["state"] == "already_paid"
        assert j.begin_beneficiary(ENV, "B", "pii", "bk")["state"] == "sending"
        assert j.begin_beneficiary(ENV, "B", "pii", "bk2")["idempotency_key"] == "bk"
        j.record_beneficiary(ENV, "B", "ben_1", "Ada")
        assert j.get_beneficiary(ENV, "B")["beneficiary_id"] == "ben_1"
        j.begin_instrument(ENV, "ben_1", "cf", "ik", method="sepa", currency="EUR",
                           masked_account="****1")  # fmt: skip
        j.record_instrument(ENV, "ben_1", "cf", "ins_1")
        assert [i["instrument_id"] for i in j.instruments_of(ENV, "ben_1")] == ["ins_1"]
        j.record_call(run_id, {"started_at": "t", "method": "POST", "path": "/v1/payouts",
                               "status": 201, "duration_ms": 1.5})  # fmt: skip
        assert [(c["status"], c["duration_ms"]) for c in j.calls(run_id)] == [(201, 1.5)]
        assert j.known_fees(ENV) == {}  # the body carries no method: nothing to rank
        j.set_run_status(run_id, "finished")
        assert j.get_run(run_id)["status"] == "finished"


def test_a_postgres_password_never_shows(postgres_server: str) -> None:
    """The journal's URL prints without its password, and so do its failures."""
    from batchpay.errors import JournalError

    url = PostgresURL("postgresql://bp:s3cret-pw@127.0.0.1:1/nowhere")
    assert "s3cret-pw" not in f"{url} {url!r}"
    with pytest.raises(JournalError) as caught:
        Journal(url)
    assert "s3cret-pw" not in str(caught.value) + str(caught.value.hint)
    assert "postgresql://bp:***@127.0.0.1:1/nowhere" in str(caught.value)


def test_several_processes_opening_a_new_journal_at_once_migrate_it_once(
    journal_target: Target,
) -> None:
    """Four first opens at once: every step applied once, every opener sees today's schema."""
    code = (
        "import sys; from batchpay.journal import Journal\n"
        "with Journal(sys.argv[1]) as j: print(len(j.applied_migrations()))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, _arg(journal_target)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4
    assert outs == [str(len(MIGRATIONS))] * 4
    with Journal(journal_target) as j:
        assert j.applied_migrations() == [m.name for m in MIGRATIONS]


def test_records_built_in_bulk_are_those_built_one_by_one() -> None:
    """``from_rows`` builds what ``from_row`` builds, whether a statement's columns are the
    record's own order (positional), another order, or a column the record lacks (refused)."""
    import sqlite3

    from batchpay.journal.records import ApiCall

    db = sqlite3.connect(":memory:")
    db.row_factory = sqlite3.Row
    db.execute(
        "CREATE TABLE c (id INTEGER, run_id TEXT, started_at TEXT, method TEXT, path TEXT, "
        "status INTEGER, error_code TEXT, request_id TEXT, idempotency_key TEXT, "
        "attempt INTEGER, duration_ms REAL, extra TEXT)"
    )
    db.executemany(
        "INSERT INTO c VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        [(i, "run", "t", "GET", f"/p/{i}", 200, None, f"req_{i}", None, 1, 1.5, "x")
         for i in range(3)],
    )  # fmt: skip
    names = "id, run_id, started_at, method, path, status, error_code, request_id, "
    names += "idempotency_key, attempt, duration_ms"
    shuffled = ", ".join(reversed(names.split(", ")))
    for sql in (f"SELECT {names} FROM c", f"SELECT {shuffled} FROM c"):
        bulk = ApiCall.from_rows(db.execute(sql))
        assert bulk == [ApiCall.from_row(r) for r in db.execute(sql)]
        assert [c.path for c in bulk] == ["/p/0", "/p/1", "/p/2"]
    assert ApiCall.from_rows(db.execute("SELECT * FROM c WHERE id < 0")) == []
    with pytest.raises(TypeError):
        ApiCall.from_rows(db.execute("SELECT * FROM c"))


def test_created_destinations_are_what_each_look_up_says(journal_target: Target) -> None:
    """The run's one look-up of its payees' beneficiaries and instruments gives, for each,
    what ``get_beneficiary`` / ``get_instrument`` give: created ones only, per environment."""
    with Journal(journal_target) as j:
        for i in range(4):
            j.begin_beneficiary(ENV, f"P{i}", f"pii{i}", f"bk{i}")
        for i in range(3):  # P3's creation is unfinished
            j.record_beneficiary(ENV, f"P{i}", f"ben_{i}", f"Payee {i}")
        j.begin_beneficiary("sandbox:other", "P0", "pii0", "bk-other")
        j.record_beneficiary("sandbox:other", "P0", "ben_other", "Elsewhere")
        for ben, fp, done in (("ben_0", "fpA", True), ("ben_0", "fpB", False),
                              ("ben_1", "fpA", True), ("ben_2", "fpC", True)):  # fmt: skip
            j.begin_instrument(ENV, ben, fp, f"ik-{ben}-{fp}", method="iban", currency="EUR",
                               masked_account="****1234")  # fmt: skip
            if done:
                j.record_instrument(ENV, ben, fp, f"ins_{ben}_{fp}")
        refs = ["P0", "P1", "P3", "P9"]
        bens, instruments = j.created_destinations(ENV, refs)
        expected = {}
        for ref in refs:
            rec = j.get_beneficiary(ENV, ref)
            if rec is not None and rec["state"] == "created":
                expected[ref] = rec["beneficiary_id"]
        assert bens == expected == {"P0": "ben_0", "P1": "ben_1"}
        for (ben, fp), ins in instruments.items():
            rec = j.get_instrument(ENV, ben, fp)
            assert rec is not None and rec["state"] == "created" and rec["instrument_id"] == ins
        assert instruments == {("ben_0", "fpA"): "ins_ben_0_fpA", ("ben_1", "fpA"): "ins_ben_1_fpA"}
        assert j.created_destinations(ENV, []) == ({}, {})
