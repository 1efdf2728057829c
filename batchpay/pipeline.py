"""The pipeline: ingest → validate → dedupe → resolve → submit → (track) → report.

``run`` finishes unfinished work first: a file whose earlier run is still open is
resumed (intents in flight settled with their own keys), never started afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from batchpay import dedupe, ingest, ledger, track
from batchpay import layout as layout_mod
from batchpay import report as report_mod
from batchpay import validate as validate_mod
from batchpay.client import AntonClient, ApiKey, CallRecord
from batchpay.clocks import ProviderClock
from batchpay.config import Mode, Settings, resolve_settings
from batchpay.errors import (
    ApiError,
    AuthenticationError,
    BatchpayError,
    ConfigError,
    ControlTotalsMismatch,
    DuplicateFileError,
    ExitCode,
    PreflightError,
    RowIssue,
    TransportError,
    ValidationFailed,
)
from batchpay.journal import (
    CREATED,
    REJECTED,
    SETTLED_FAILURES,
    TERMINAL_STATUSES,
    Journal,
    LivePayoutExists,
    LockOwner,
    RunExists,
    utcnow,
)
from batchpay.money import parse_amount
from batchpay.resolve import Held, Refused, Resolver, display_name, masked_account
from batchpay.submit import Submitter, payout_method

ProgressFn = Callable[[str, int, int], None]

# Row states in the journal before a payout intent exists.
PLANNED = "planned"
INVALID = "invalid"
DUPLICATE = "duplicate_in_file"
ALREADY_PAID = "already_paid"
HELD = "held"
ROW_REJECTED = "rejected"


@dataclass(frozen=True)
class RunOptions:
    """What the user asked for on top of the defaults."""

    skip_invalid: bool = False
    allow_new_bank_details: bool = False
    # None: as the layout's [duplicates] table says (refused by default).
    allow_repeats: bool | None = None
    reference_per_payee: bool | None = None
    wait: bool = False
    wait_timeout: float = 600.0
    concurrency: int = 8
    out_dir: Path | None = None
    layout_path: Path | None = None
    expected_rows: int | None = None
    expected_totals: Mapping[str, Decimal] = field(default_factory=dict)
    skip_balance_check: bool = False


@dataclass(frozen=True)
class Plan:
    """What a run of the file would do (``batchpay validate``).

    ``totals``, ``by_method`` and the beneficiary counts are of the ``rows_to_pay`` only: not
    of invalid rows, rows refused as duplicates, later copies of a repeated row, or rows
    already paid by earlier runs.
    """

    file_name: str
    sha256: str
    rows: int
    valid_rows: int
    issues: list[RowIssue]
    totals: dict[str, Decimal]
    new_beneficiaries: int
    known_beneficiaries: int
    duplicates_in_file: list[dedupe.InFileDuplicate]
    already_paid: int
    earlier_run: str | None
    by_method: dict[str, int]
    rows_to_pay: int


@dataclass(frozen=True)
class RunResult:
    """What a run did: its id, its report, and the exit code the CLI should use."""

    run_id: str
    resumed: bool
    report: report_mod.Report
    paths: report_mod.ReportPaths | None
    exit_code: ExitCode
    counts: dict[str, int]
    banner: str


# -- connection ---------------------------------------------------------------------------


@dataclass
class Connection:
    """A live client plus the journal and clock a run uses."""

    settings: Settings
    journal: Journal
    client: AntonClient
    clock: Callable[[], datetime]
    provider_clock: ProviderClock
    run_id: str | None = None


@contextlib.asynccontextmanager
async def connect(
    settings: Settings,
    journal: Journal,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = utcnow,
    concurrency: int = 8,
) -> AsyncIterator[Connection]:
    """Open the API client for ``settings`` (the embedded sandbox when configured so)."""
    sandbox = None
    if transport is None and settings.mode is Mode.EMBEDDED:
        from batchpay.sandbox import Sandbox, SandboxConfig

        assert settings.sandbox_state_path is not None
        settings.sandbox_state_path.parent.mkdir(parents=True, exist_ok=True)
        sandbox = Sandbox(SandboxConfig(state_path=str(settings.sandbox_state_path)))
        transport = sandbox.transport()
    conn_holder: list[Connection] = []
    provider_clock = ProviderClock(clock)

    def on_call(call: CallRecord) -> None:
        provider_clock.observe(call.server_date)
        run_id = conn_holder[0].run_id if conn_holder else None
        journal.record_call(run_id, call_record_dict(call))

    client = AntonClient(
        settings.api_url,
        ApiKey(settings.api_key.reveal()),
        transport=transport,
        on_call=on_call,
        max_concurrency=concurrency,
        timeout=settings.http_timeout,
    )
    conn = Connection(
        settings=settings,
        journal=journal,
        client=client,
        clock=clock,
        provider_clock=provider_clock,
    )
    conn_holder.append(conn)
    try:
        async with client:
            yield conn
    finally:
        if sandbox is not None:
            close = getattr(sandbox, "aclose", None) or getattr(sandbox, "close", None)
            if close is not None:
                maybe = close()
                if asyncio.iscoroutine(maybe):
                    await maybe


def call_record_dict(call: CallRecord) -> dict[str, Any]:
    """A CallRecord as the journal stores it."""
    started = call.started_at
    return {
        "started_at": started.isoformat() if isinstance(started, datetime) else str(started),
        "method": call.method,
        "path": call.path,
        "status": call.status,
        "error_code": call.error_code,
        "request_id": call.request_id,
        "idempotency_key": call.idempotency_key,
        "attempt": call.attempt,
        "duration_ms": call.duration_ms,
    }


# -- ingest, validate, plan ------------------------------------------------------------------


@dataclass
class _Checked:
    ingested: ingest.IngestedFile
    result: validate_mod.ValidationResult
    all_rows: list[dict[str, Any]]
    # Rows that passed validation, normalised; duplicates among them are in ``duplicates``.
    valid_rows: dict[int, dict[str, Any]]
    fingerprint: str
    default_purpose: str
    duplicates: dedupe.InFileCheck
    rules: layout_mod.DuplicateRules

    @property
    def issues(self) -> list[RowIssue]:
        """Every refusal: invalid rows, then duplicates, in row order."""
        return sorted([*self.result.issues, *self.duplicates.issues], key=lambda i: i.row)

    @property
    def accepted_rows(self) -> dict[int, dict[str, Any]]:
        """Valid rows not refused as duplicates (later copies of a repeat included)."""
        refused = self.duplicates.refused_rows
        return {n: r for n, r in self.valid_rows.items() if n not in refused}

    @property
    def payable_rows(self) -> dict[int, dict[str, Any]]:
        """Accepted rows less the later copies of a repeat: one per payout to make."""
        repeats = self.duplicates.repeat_rows
        return {n: r for n, r in self.accepted_rows.items() if n not in repeats}


def _duplicate_rules(lay: layout_mod.Layout, options: RunOptions) -> layout_mod.DuplicateRules:
    """The layout's [duplicates] settings, overridden by the run's options where given."""
    rules = lay.duplicates
    if options.allow_repeats is not None:
        rules = dataclasses.replace(rules, allow_repeats=options.allow_repeats)
    if options.reference_per_payee is not None:
        rules = dataclasses.replace(rules, reference_per_payee=options.reference_per_payee)
    return rules


def _check(path: Path, options: RunOptions) -> _Checked:
    lay = layout_mod.load_layout(options.layout_path)
    ingested = ingest.read_file(path, lay)
    result = validate_mod.validate_frame(ingested, lay)
    all_rows = ingested.frame.to_dicts()
    valid_rows = {int(r["_row"]): r for r in result.valid.to_dicts()}
    rules = _duplicate_rules(lay, options)
    return _Checked(
        ingested=ingested,
        result=result,
        all_rows=all_rows,
        valid_rows=valid_rows,
        fingerprint=dedupe.content_fingerprint(all_rows),
        default_purpose=getattr(lay, "default_purpose", ""),
        duplicates=dedupe.check_in_file(list(valid_rows.values()), rules, labels=result.header_map),
        rules=rules,
    )


def _totals(rows: Iterable[Mapping[str, Any]]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for r in rows:
        try:
            amount = parse_amount(str(r.get("amount", "")))
        except ValueError:
            continue
        cur = str(r.get("currency", "")).upper()
        totals[cur] = totals.get(cur, Decimal(0)) + amount
    return totals


@dataclass(frozen=True)
class ControlTotals:
    """Declared row count and totals per currency, from the command line or a .ctl file."""

    rows: int | None = None
    totals: Mapping[str, Decimal] = field(default_factory=dict)
    source: str = "the command line"


def control_file_for(path: Path) -> Path:
    """Where a file's control file sits: ``payouts.csv`` -> ``payouts.csv.ctl``."""
    return path.with_name(path.name + ".ctl")


def read_control_file(path: Path) -> ControlTotals:
    """Read a control file (TOML: ``rows = 32`` and a ``[totals]`` table of decimal strings)."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ControlTotalsMismatch(
            f"cannot read the control file {path.name}: {exc}",
            hint='write it as TOML: rows = 32 and [totals] EUR = "12500.00"',
        ) from None
    rows = data.get("rows")
    totals_raw = data.get("totals", {})
    unknown = set(data) - {"rows", "totals"}
    if (
        unknown
        or (rows is not None and (not isinstance(rows, int) or isinstance(rows, bool)))
        or not isinstance(totals_raw, dict)
    ):
        raise ControlTotalsMismatch(
            f"the control file {path.name} is not shaped as expected",
            hint='only `rows = <integer>` and a [totals] table such as EUR = "12500.00"',
        )
    totals: dict[str, Decimal] = {}
    for cur, value in totals_raw.items():
        if not isinstance(value, str):
            raise ControlTotalsMismatch(
                f"the control file {path.name} gives {cur} as a number",
                hint=f'write amounts as quoted decimals, e.g. {cur} = "12500.00"',
            )
        try:
            totals[str(cur).upper()] = parse_amount(value.strip())
        except ValueError:
            raise ControlTotalsMismatch(
                f"the control file {path.name} gives {cur} = {value!r}, not a plain amount"
            ) from None
    return ControlTotals(rows=rows, totals=totals, source=f"the control file {path.name}")


def declared_controls(path: Path, options: RunOptions) -> list[ControlTotals]:
    """Every declaration that applies to ``path``: the command line's and its .ctl file's."""
    found = []
    if options.expected_rows is not None or options.expected_totals:
        totals = {k.upper(): v for k, v in options.expected_totals.items()}
        found.append(ControlTotals(options.expected_rows, totals))
    ctl = control_file_for(path)
    if ctl.is_file():
        found.append(read_control_file(ctl))
    return found


def _check_control_totals(checked: _Checked, path: Path, options: RunOptions) -> None:
    n = len(checked.all_rows)
    actual = _totals(checked.all_rows)
    problems = []
    for declared in declared_controls(path, options):
        if declared.rows is not None and declared.rows != n:
            problems.append(f"the file has {n} rows, {declared.source} declares {declared.rows}")
        for cur, expected in sorted(declared.totals.items()):
            got = actual.get(cur, Decimal(0))
            if got != expected:
                problems.append(f"{cur} totals {got}, {declared.source} declares {expected}")
        for cur in sorted(set(actual) - set(declared.totals)) if declared.totals else []:
            problems.append(f"{cur} totals {actual[cur]}, {declared.source} declares none")
    if problems:
        raise ControlTotalsMismatch("control totals do not match: " + "; ".join(problems))


def _paid_elsewhere(journal: Journal, environment: str, key: str) -> dict[str, Any] | None:
    """Row fields marking a row whose payout another run holds, or None if none does.

    A payout the provider confirmed makes the row ``already_paid``; one still in flight in
    an unfinished run holds the row (the other run must be finished first), so the report
    never claims a payment that may yet be refused.
    """
    for h in journal.row_history(environment, key):
        if h["state"] == REJECTED:
            continue
        other = str(h["run_id"])
        if h["state"] == CREATED:
            return {"state": ALREADY_PAID, "related_run": other,
                    "error_message": f"already paid by run {other}"}  # fmt: skip
        return {
            "state": HELD,
            "related_run": other,
            "error_code": "in_flight_elsewhere",
            "error_message": f"being paid by run {other}, which is not finished; run that "
            "file again to finish it, then this one",
        }
    return None


def _paid_at_provider(
    journal: Journal, environment: str, run_id: str, row_number: int, row_key: str
) -> bool:
    """Whether the provider's ledger holds a payout for this row made from another journal.

    A live one is adopted (the row is ``already_paid`` with its payout id); one that ended
    without paying holds the row for a person, since paying it again is a decision.
    """
    found = journal.provider_payouts_for(environment, row_key)
    if not found:
        return False
    live = [p for p in found if p["status"] not in SETTLED_FAILURES]
    if live:
        first = live[0]
        note = (
            f"already paid: the provider holds payout {first['payout_id']} "
            f"({first['status'] or 'created'}) for this row, made outside this journal"
        )
        if journal.adopt_provider_payout(
            environment=environment,
            run_id=run_id,
            row_number=row_number,
            found=dict(first),
            note=note,
        ):
            return True
        elsewhere = _paid_elsewhere(journal, environment, row_key)
        if elsewhere is not None:
            journal.update_row(run_id, row_number, **elsewhere)
        return True
    last = found[-1]
    journal.update_row(
        run_id,
        row_number,
        state=HELD,
        error_code="failed_elsewhere",
        error_message=f"the provider holds payout {last['payout_id']} for this row, made "
        f"outside this journal, which ended {last['status']}; pay it again from the journal "
        "that made it (batchpay retry-failed)",
    )
    return True


def plan(
    path: Path | str,
    *,
    settings: Settings | None = None,
    options: RunOptions | None = None,
) -> Plan:
    """Run every check on a file and say what a run would do, without sending anything."""
    settings = settings or resolve_settings()
    options = options or RunOptions()
    path = Path(path)
    report_mod.check_out_dir(options.out_dir or Path("reports"))
    checked = _check(path, options)
    env = settings.environment
    with Journal(settings.journal_path) as journal:
        earlier = journal.find_runs_for_file(
            env, sha256=checked.ingested.sha256, fingerprint=checked.fingerprint
        )
        # What a run would pay: not invalid, not a duplicate, not paid by an earlier run.
        to_pay = [
            r
            for r in checked.payable_rows.values()
            if _paid_elsewhere(
                journal, env, dedupe.row_key(env, r["reference"], r["beneficiary_ref"])
            )
            is None
        ]
        refs = {str(r["beneficiary_ref"]) for r in to_pay}
        known = {
            ref
            for ref in refs
            if (b := journal.get_beneficiary(env, ref)) is not None and b["state"] == CREATED
        }
    issues = checked.issues
    if not issues:
        _check_control_totals(checked, path, options)
    by_method: dict[str, int] = {}
    for r in to_pay:
        m = str(r.get("payment_method", ""))
        by_method[m] = by_method.get(m, 0) + 1
    return Plan(
        file_name=path.name,
        sha256=checked.ingested.sha256,
        rows=len(checked.all_rows),
        valid_rows=len(checked.accepted_rows),
        issues=issues,
        totals=_totals(to_pay),
        new_beneficiaries=len(refs - known),
        known_beneficiaries=len(known),
        duplicates_in_file=list(checked.duplicates.repeats),
        already_paid=len(checked.payable_rows) - len(to_pay),
        earlier_run=str(earlier[0]["id"]) if earlier else None,
        by_method=by_method,
        rows_to_pay=len(to_pay),
    )


# -- run ------------------------------------------------------------------------------------


def _row_records(checked: _Checked, journal: Journal, environment: str) -> list[dict[str, Any]]:
    dups = {d.row: d for d in checked.duplicates.repeats}
    accepted = checked.accepted_rows
    issues_by_row: dict[int, list[RowIssue]] = {}
    for issue in checked.issues:
        issues_by_row.setdefault(issue.row, []).append(issue)
    records = []
    for raw in checked.all_rows:
        number = int(raw["_row"])
        row = checked.valid_rows.get(number, raw)
        reference = str(row.get("reference") or "")
        ben_ref = str(row.get("beneficiary_ref") or "")
        key = dedupe.row_key(environment, reference, ben_ref)
        rec: dict[str, Any] = {
            "row_number": number,
            "reference": reference,
            "beneficiary_ref": ben_ref,
            "beneficiary_name": display_name(row),
            "row_key": key,
            "content_hash": dedupe.row_content_hash(row),
            "amount": row.get("amount") or None,
            "currency": row.get("currency") or None,
            "source_currency": row.get("source_currency") or row.get("currency") or None,
            "payment_method": row.get("payment_method") or None,
            "masked_account": _safe_mask(row),
            "state": PLANNED,
        }
        if number not in accepted:
            rec["state"] = INVALID
            # A valid row refused as a duplicate carries the duplicate's own code.
            rec["error_code"] = (
                issues_by_row[number][0].code if number in checked.valid_rows else "invalid_row"
            )
            rec["error_message"] = "; ".join(
                str(i.message if i.column is None else f"{i.column}: {i.message}")
                for i in issues_by_row.get(number, [])
            )
        elif number in dups:
            rec["state"] = DUPLICATE
            rec["duplicate_of"] = dups[number].first_row
            rec["error_message"] = dups[number].message
        elif (elsewhere := _paid_elsewhere(journal, environment, key)) is not None:
            rec.update(elsewhere)
        records.append(rec)
    return records


def _safe_mask(row: Mapping[str, Any]) -> str:
    try:
        return masked_account({k: str(v or "") for k, v in row.items()})
    except Exception:  # an invalid row may lack the fields; never leak, never crash
        return ""


def known_fees(journal: Journal, environment: str) -> dict[tuple[str, str], Decimal]:
    """The highest fee the provider charged per (payout method, fee currency) in this world."""
    fees: dict[tuple[str, str], Decimal] = {}
    for p in journal.db.execute(
        "SELECT body, fee, fee_currency FROM payouts WHERE environment=? AND fee IS NOT NULL",
        (environment,),
    ):
        try:
            method = str(json.loads(p["body"])["method"])
            fee = Decimal(str(p["fee"]))
        except (ValueError, KeyError, ArithmeticError):
            continue
        key = (method, str(p["fee_currency"]))
        fees[key] = max(fees.get(key, fee), fee)
    return fees


async def _preflight(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a run whose source balances cannot cover its same-currency payouts.

    Fees are added where the journal has seen the provider charge them (same payout method
    and currency); cross-currency rows are left to the provider, whose rate is unknown here.
    """
    fees = known_fees(conn.journal, conn.settings.environment)
    need: dict[str, Decimal] = {}
    with_fees = False
    for r in rows:
        cur = str(r.get("source_currency") or r["currency"])
        if cur == r["currency"]:
            fee = fees.get((payout_method(str(r["payment_method"]), cur), cur), Decimal(0))
            with_fees = with_fees or fee > 0
            need[cur] = need.get(cur, Decimal(0)) + parse_amount(str(r["amount"])) + fee
    if not need:
        return
    balances = {str(b.get("currency")): b for b in await conn.client.list_balances()}
    short = []
    for cur, amount in sorted(need.items()):
        available = Decimal(str(balances.get(cur, {}).get("available", "0")))
        if available < amount:
            short.append(f"{cur} needs {amount} but {available} is available")
    if short:
        what = "including the fees seen before" if with_fees else "before fees"
        raise PreflightError(
            f"the balance cannot cover this run ({what}): " + "; ".join(short),
            hint="top up the balance, split the file, or pass --skip-balance-check",
        )


async def run_async(
    path: Path | str,
    *,
    settings: Settings | None = None,
    options: RunOptions | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = utcnow,
    on_progress: ProgressFn | None = None,
    track_sleep: Callable[[float], Any] | None = None,
) -> RunResult:
    """Pay a file: the library verb behind ``batchpay run``."""
    settings = settings or resolve_settings()
    if settings.mode is Mode.LIVE and not settings.confirm_live:
        raise ConfigError(
            "a live run moves real money and needs an explicit confirmation",
            hint="pass --confirm-live (or set BATCHPAY_CONFIRM_LIVE=1) after checking the file",
        )
    options = options or RunOptions()
    path = Path(path)
    report_mod.check_out_dir(options.out_dir or Path("reports"))
    checked = _check(path, options)
    env = settings.environment
    owner = LockOwner.current()
    with Journal(settings.journal_path, clock=clock) as journal:
        earlier = journal.find_runs_for_file(
            env, sha256=checked.ingested.sha256, fingerprint=checked.fingerprint
        )
        resumable = [r for r in earlier if r["status"] != "finished"]
        resumed = bool(resumable)
        if earlier and not resumable:
            first = earlier[0]
            how = (
                "the same file"
                if first["sha256"] == checked.ingested.sha256
                else "a copy with the same rows (re-saved or re-exported)"
            )
            raise DuplicateFileError(
                f"{path.name} was already run: {how} was paid as {first['id']} "
                f"({first['file_name']}, {first['created_at'][:19].replace('T', ' ')} UTC)",
                run_id=str(first["id"]),
            )
        if not resumed:
            if checked.issues and not options.skip_invalid:
                raise ValidationFailed(checked.issues, rows_checked=len(checked.all_rows))
            _check_control_totals(checked, path, options)
            if not checked.accepted_rows:
                raise ValidationFailed(checked.issues, rows_checked=len(checked.all_rows))

        async with connect(
            settings, journal, transport=transport, clock=clock, concurrency=options.concurrency
        ) as conn:
            if resumed:
                run_id = str(resumable[0]["id"])
                journal.acquire_run_lock(run_id, owner)
                _refuse_if_finished_meanwhile(journal, run_id, path, owner)
            else:
                records = _row_records(checked, journal, env)
                payable = [
                    checked.valid_rows[r["row_number"]] for r in records if r["state"] == PLANNED
                ]
                if not options.skip_balance_check:
                    await _preflight(conn, payable)
                try:
                    run_id = journal.create_run(
                        environment=env,
                        api_url=settings.api_url,
                        mode=settings.mode.value,
                        file={
                            "sha256": checked.ingested.sha256,
                            "fingerprint": checked.fingerprint,
                            "name": path.name,
                            "size": path.stat().st_size,
                            "format": checked.ingested.format,
                            "row_count": len(checked.all_rows),
                        },
                        rows=records,
                        options={
                            "skip_invalid": options.skip_invalid,
                            "allow_new_bank_details": options.allow_new_bank_details,
                            "allow_repeats": checked.rules.allow_repeats,
                            "reference_per_payee": checked.rules.reference_per_payee,
                        },
                        owner=owner,
                    )
                except RunExists as exc:
                    # Another process created the run between our check and now: it is
                    # working on it, so take its lock or say who holds it.
                    run_id = exc.run_id
                    journal.acquire_run_lock(run_id, owner)
                    _refuse_if_finished_meanwhile(journal, run_id, path, owner)
                    resumed = True
            conn.run_id = run_id
            try:
                await _work(conn, run_id, checked, options, on_progress)
                if options.wait:
                    kwargs: dict[str, Any] = {"timeout": options.wait_timeout}
                    if track_sleep is not None:
                        kwargs["sleep"] = track_sleep
                    await track.follow(conn.client, journal, run_id, **kwargs)
            finally:
                close_run_if_done(journal, run_id)
                journal.release_run_lock(run_id, owner)
        rep = build_report(journal, run_id, settings)
    out_dir = options.out_dir or Path("reports")
    paths = report_mod.write_report(rep, out_dir / run_id, run_id)
    counts = _outcome_counts(rep)
    return RunResult(
        run_id=run_id,
        resumed=resumed,
        report=rep,
        paths=paths,
        exit_code=_exit_code(rep, waited=options.wait),
        counts=counts,
        banner=settings.banner(),
    )


def _refuse_if_finished_meanwhile(
    journal: Journal, run_id: str, path: Path, owner: LockOwner
) -> None:
    """Another process may have finished the run between our look and our lock."""
    run = journal.get_run(run_id)
    if run is not None and run["status"] == "finished":
        journal.release_run_lock(run_id, owner)
        raise DuplicateFileError(
            f"{path.name} was just paid by another batchpay process as {run_id}", run_id=run_id
        )


def run(path: Path | str, **kwargs: Any) -> RunResult:
    """Synchronous :func:`run_async`."""
    return asyncio.run(run_async(path, **kwargs))


async def _work(
    conn: Connection,
    run_id: str,
    checked: _Checked,
    options: RunOptions,
    on_progress: ProgressFn | None,
) -> None:
    journal = conn.journal
    env = conn.settings.environment
    submitter = Submitter(
        conn.client, journal, env, clock=conn.clock, provider_clock=conn.provider_clock
    )
    resolver = Resolver(
        conn.client,
        journal,
        env,
        allow_new_bank_details=options.allow_new_bank_details,
        clock=conn.clock,
    )
    rows = journal.rows(run_id)
    # 1. Unfinished intents first: settle them with their own keys.
    open_intents = [p for p in journal.open_payouts(run_id) if p["state"] != CREATED]
    total = len(open_intents) + sum(1 for r in rows if r["state"] in (PLANNED, HELD))
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress("submit", done, total)

    todo = [r for r in rows if r["state"] == PLANNED or _waits_for_other_run(r)]
    if options.allow_new_bank_details:
        todo += [r for r in rows if r["state"] == HELD and not _waits_for_other_run(r)]
    if open_intents or todo:
        # The provider's ledger is the last word: learn what it already holds (and its
        # clock) before settling or sending anything.
        await ledger.sweep(
            conn.client,
            journal,
            env,
            provider_clock=conn.provider_clock,
            on_progress=on_progress,
        )
    if on_progress is not None:
        on_progress("submit", 0, total)
    for intent in open_intents:
        await submitter.settle(intent)
        tick()

    # 2. Rows not yet handed to the provider.
    resolver.remember_known({str(r["beneficiary_ref"]) for r in todo})
    sem = asyncio.Semaphore(max(1, options.concurrency))
    stop: list[BaseException] = []

    # A resumed run may be fed a re-saved copy whose rows moved: match journal rows to the
    # file's rows by business identity and content, never by row number.
    by_key: dict[str, dict[str, Any]] = {}
    for valid in checked.valid_rows.values():
        key = dedupe.row_key(env, str(valid["reference"]), str(valid["beneficiary_ref"]))
        by_key.setdefault(key, valid)

    async def one(r: Any) -> None:
        if stop:
            return
        number = int(r["row_number"])
        row = by_key.get(str(r["row_key"]))
        if row is None or dedupe.row_content_hash(row) != r["content_hash"]:
            # The file being resumed no longer holds this row as it was planned.
            journal.update_row(
                run_id, number, state=HELD, error_code="row_changed",
                error_message="the file being resumed no longer holds this row as planned",
            )  # fmt: skip
            return
        async with sem:
            try:
                dest = await resolver.resolve(row)
                journal.update_row(
                    run_id,
                    number,
                    beneficiary_id=dest.beneficiary_id,
                    instrument_id=dest.instrument_id,
                    beneficiary_name=dest.display_name or r["beneficiary_name"],
                )
                elsewhere = _paid_elsewhere(journal, env, str(r["row_key"]))
                if elsewhere is not None and elsewhere["related_run"] != run_id:
                    journal.update_row(run_id, number, **elsewhere)
                    return
                if _paid_at_provider(journal, env, run_id, number, str(r["row_key"])):
                    return
                await submitter.submit(
                    run_id=run_id,
                    row=row,
                    row_number=number,
                    row_key=str(r["row_key"]),
                    beneficiary_id=dest.beneficiary_id,
                    instrument_id=dest.instrument_id,
                    default_purpose=checked.default_purpose or "contractor_payment",
                )
            except LivePayoutExists:
                # Another process got there between our check and our intent.
                elsewhere = _paid_elsewhere(journal, env, str(r["row_key"]))
                if elsewhere is not None:
                    journal.update_row(run_id, number, **elsewhere)
            except Held as exc:
                journal.update_row(
                    run_id, number, state=HELD, error_code=exc.code, error_message=exc.message
                )
            except Refused as exc:
                journal.update_row(
                    run_id,
                    number,
                    state=ROW_REJECTED,
                    error_code=exc.code,
                    error_message=exc.message,
                    request_id=exc.request_id,
                )
            except AuthenticationError as exc:
                stop.append(exc)
            except (TransportError, ApiError) as exc:
                # Could not resolve now: the row stays planned and is retried next run.
                journal.update_row(
                    run_id,
                    number,
                    error_code=getattr(exc, "code", "network_error"),
                    error_message=exc.message,
                )
            finally:
                tick()

    await asyncio.gather(*(one(r) for r in todo))
    if stop:
        raise stop[0]


def _waits_for_other_run(r: Any) -> bool:
    """A row held because another, unfinished run holds its payout in flight."""
    return bool(r["state"] == HELD and r["error_code"] == "in_flight_elsewhere")


def close_run_if_done(journal: Journal, run_id: str) -> None:
    """Mark the run finished when no row is left to send or settle."""
    unfinished = [
        r
        for r in journal.rows(run_id)
        if r["state"] == PLANNED
        or _waits_for_other_run(r)
        or (r["state"] == "payout" and r["payout_state"] not in (CREATED, REJECTED))
    ]
    if not unfinished:
        journal.set_run_status(run_id, "finished")


# -- report ---------------------------------------------------------------------------------


def _outcome(r: Any) -> tuple[str, str | None, str | None, str]:
    """(outcome, error_code, error_message, note) for one journal row."""
    state = r["state"]
    if state == INVALID:
        return "invalid", r["error_code"], r["error_message"], "not sent: fix the row"
    if state == DUPLICATE:
        return "duplicate_in_file", None, None, str(r["error_message"] or "")
    if state == ALREADY_PAID:
        return "already_paid", None, None, str(r["error_message"] or "")
    if state == HELD and r["error_code"] == "in_flight_elsewhere":
        return (
            "unknown",
            r["error_code"],
            r["error_message"],
            "run again once the other run is done",
        )
    if state == HELD:
        return "skipped", r["error_code"], r["error_message"], "held: needs a person before paying"
    if state == ROW_REJECTED:
        return "rejected", r["error_code"], r["error_message"], ""
    if state == PLANNED:
        return (
            "unknown",
            r["error_code"],
            r["error_message"],
            "not sent yet: run the same command again to finish",
        )
    pstate = r["payout_state"]
    if pstate == REJECTED:
        return "rejected", r["p_error_code"], r["p_error_message"], ""
    if pstate != CREATED:
        return (
            "unknown",
            r["p_error_code"],
            r["p_error_message"],
            "outcome not yet known: run the same command again to settle it with the same key",
        )
    status = r["payout_status"] or "created"
    if r["p_error_code"] == "duplicate_payout":
        return "duplicate_payout", r["p_error_code"], r["p_error_message"], "needs a person"
    if status in TERMINAL_STATUSES:
        return status, None, r["failure_reason"], ""
    return "pending", None, None, f"provider status: {status}"


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _dec(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def build_report(journal: Journal, run_id: str, settings: Settings) -> report_mod.Report:
    """Rebuild the reconciliation report of ``run_id`` from the journal alone."""
    run = journal.get_run(run_id)
    if run is None:
        raise BatchpayError(f"no run {run_id} in the journal", hint="see `batchpay runs`")
    rows = []
    for r in journal.rows(run_id):
        outcome, code, message, note = _outcome(r)
        rows.append(
            report_mod.ReportRow(
                row=int(r["row_number"]),
                reference=str(r["reference"]),
                beneficiary_ref=str(r["beneficiary_ref"]),
                beneficiary_name=_s(r["beneficiary_name"]),
                outcome=outcome,
                payout_id=_s(r["payout_id"]),
                beneficiary_id=_s(r["beneficiary_id"]),
                instrument_id=_s(r["instrument_id"]),
                payout_status=_s(r["payout_status"]),
                error_code=_s(code),
                error_message=_s(message),
                request_id=_s(r["p_request_id"] or r["request_id"]),
                idempotency_key=_s(r["idempotency_key"]),
                amount=_dec(r["dest_amount"]) or _dec(r["amount"]),
                currency=_s(r["dest_currency"] or r["currency"]),
                source_amount=_dec(r["source_amount"]),
                source_currency=_s(r["p_source_currency"] or r["source_currency"]),
                fee=_dec(r["fee"]),
                fee_currency=_s(r["fee_currency"]),
                exchange_rate=_dec(r["exchange_rate"]),
                total_debited=_dec(r["total_debited"]),
                total_debited_currency=_s(r["total_debited_currency"]),
                masked_account=_s(r["masked_account"]),
                attempt=int(r["attempt"] or 0),
                related_run=r["related_run"],
                note=note,
            )
        )
    return report_mod.Report(
        run_id=run_id,
        file_name=str(run["file_name"]),
        file_sha256=str(run["sha256"]),
        environment="live" if run["mode"] == Mode.LIVE.value else "sandbox",
        api_url=str(run["api_url"]),
        generated_at=utcnow(),
        rows=rows,
    )


def _outcome_counts(rep: report_mod.Report) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rep.rows:
        counts[row.outcome] = counts.get(row.outcome, 0) + 1
    return counts


_FAILED = {
    "duplicate_payout",
    "invalid",
    "failed",
    "returned",
    "screening_failed",
    "velocity_blocked",
    "cancelled",
    "rejected",
    "skipped",
}


def _exit_code(rep: report_mod.Report, *, waited: bool) -> ExitCode:
    outcomes = {r.outcome for r in rep.rows}
    if outcomes == {"already_paid"}:
        return ExitCode.DUPLICATE_FILE  # every row was paid before: nothing was sent
    if "unknown" in outcomes or (waited and "pending" in outcomes):
        return ExitCode.INCOMPLETE
    if outcomes & _FAILED:
        return ExitCode.ROWS_FAILED
    return ExitCode.OK


def report_for(
    run_id: str | None = None,
    *,
    settings: Settings | None = None,
    out_dir: Path | None = None,
) -> tuple[report_mod.Report, report_mod.ReportPaths]:
    """Regenerate a run's report from the journal (the latest run when ``run_id`` is None)."""
    settings = settings or resolve_settings()
    with Journal(settings.journal_path) as journal:
        run_id = run_id or journal.latest_run_id()
        if run_id is None:
            raise BatchpayError("the journal holds no runs yet", hint="run a file first")
        rep = build_report(journal, run_id, settings)
    paths = report_mod.write_report(rep, (out_dir or Path("reports")) / run_id, run_id)
    return rep, paths


def runs(*, settings: Settings | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The most recent runs in the journal, newest first."""
    settings = settings or resolve_settings()
    with Journal(settings.journal_path) as journal:
        return [
            {
                "run_id": r["id"],
                "file": r["file_name"],
                "rows": r["row_count"],
                "status": r["status"],
                "mode": r["mode"],
                "created_at": r["created_at"],
                "parent_run_id": r["parent_run_id"],
                "options": json.loads(r["options"]),
            }
            for r in journal.list_runs(limit)
        ]
