"""The canary: a recognisable API key, OAuth client secret, DPoP private key and IBANs never
leak from a run, a refusal or a failure.

`batchpay` runs for real (click's CliRunner) against a sandbox server on a loopback port that
accepts only the canary key; Python logging is captured at DEBUG. Every line of output, log
record, report file, journal row and leftover file is searched (see ``canary.py``).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchpay.testing import payout_row, write_csv
from tests.e2e.server import Server, sandbox_server
from tests.hostile.spy import CliRun, clean_env, invoke, no_traceback

from .canary import (
    CANARY_CLIENT_ID,
    CANARY_CLIENT_SECRET,
    CANARY_DPOP_KEY,
    CANARY_IBAN,
    CANARY_KEY,
    KEY_MATERIAL,
    LIVE_KEY,
    MISTYPED_IBAN,
    OTHER_IBAN,
    WRONG_KEY,
    file_texts,
    leaks,
    log_texts,
    masked,
    spaced,
)

pytestmark = pytest.mark.socket


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A sandbox server that knows only the canary key; payouts move every 50 ms."""
    folder = tmp_path_factory.mktemp("server")
    with sandbox_server(folder, "--api-key", CANARY_KEY, "--step-seconds", "0.05") as s:
        yield s


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record of every logger, DEBUG and up."""
    caplog.set_level(logging.DEBUG)
    return caplog


def _everything(
    home: Path, runs: list[CliRun], logs: pytest.LogCaptureFixture, inputs: list[Path]
) -> list[tuple[str, str]]:
    texts = [(f"output of run {n}", done.output) for n, done in enumerate(runs)]
    texts += list(log_texts(logs.records))
    texts += list(file_texts(home, skip=inputs))
    return texts


def _authorization_only(done: CliRun, key: str) -> None:
    """The key travelled in the Authorization header of each request, and nowhere else."""
    assert done.requests.requests
    for request in done.requests.requests:
        assert request.headers["authorization"] == f"Bearer {key}"
        others = [v for k, v in request.headers.items() if k.lower() != "authorization"]
        assert key not in str(request.url) and not any(key in v for v in others)
        assert key.encode() not in request.content


def test_a_full_run_leaks_neither_key_nor_iban(
    tmp_path: Path, server: Server, logs: pytest.LogCaptureFixture
) -> None:
    """validate, run --wait, rerun, changed bank details, show, runs, report, track: no leak."""
    rows = [
        payout_row(0, iban=spaced(CANARY_IBAN)),  # as people type it
        payout_row(1),
        payout_row(2),
        payout_row(3, iban=CANARY_IBAN.lower(), country="DE", nationality="DE"),
    ]
    first = write_csv(tmp_path / "pay.csv", rows)
    changed = write_csv(tmp_path / "pay2.csv", [payout_row(0, reference="INV-9", iban=OTHER_IBAN)])
    env = clean_env(
        tmp_path,
        BATCHPAY_LOG_LEVEL="debug",
        BATCHPAY_API_KEY=CANARY_KEY,
        BATCHPAY_API_URL=server.url,
    )
    done = [invoke(tmp_path, ["validate", str(first)], env)]
    done.append(invoke(tmp_path, ["run", str(first), "--wait", "--wait-timeout", "30"], env))
    assert done[-1].exit_code == 0, done[-1].output
    _authorization_only(done[-1], CANARY_KEY)
    done.append(invoke(tmp_path, ["run", str(first)], env))
    assert done[-1].exit_code == 5
    done.append(invoke(tmp_path, ["run", str(changed)], env))  # held: new bank details
    assert done[-1].exit_code == 1, done[-1].output
    for command in (["show"], ["runs"], ["report"], ["track", "--timeout", "5"]):
        done.append(invoke(tmp_path, command, env))
        assert done[-1].exit_code == 0, done[-1].output
    assert all(no_traceback(d.output) for d in done)

    texts = _everything(tmp_path, done, logs, [first, changed])
    assert leaks(texts) == []
    # what was searched is what batchpay wrote: four report files per run, the journal, logs
    reports = sorted(p.suffix for p in (tmp_path / "reports").rglob("*.*"))
    assert reports.count(".xlsx") == 2 and reports.count(".json") == 2
    assert any(where.startswith("journal journal.db table rows") for where, _ in texts)
    # (httpx's own log is not written: API-key requests over the network go straight to
    # the aiohttp transport; batchpay.client logs every call, searched as below)
    # batchpay's own events (at --log-level debug) were searched too
    assert {"batchpay.client", "batchpay.strategies", "batchpay.pipeline"} <= {
        r.name for r in logs.records
    }
    # the IBANs do appear, masked, where a person needs them
    # every run's rows CSV (run ids end in random hex, so name them by what they are not)
    report_csv = "".join(
        p.read_text()
        for p in (tmp_path / "reports").rglob("run_*.csv")
        if not p.name.endswith("-totals.csv")
    )
    assert masked(CANARY_IBAN) in report_csv
    shown = "".join(d.output for d in done)
    assert masked(CANARY_IBAN) in shown and masked(OTHER_IBAN) in shown


def test_a_refused_key_leaks_nowhere(
    tmp_path: Path, server: Server, logs: pytest.LogCaptureFixture
) -> None:
    """The API refuses the key (exit 7): the error names neither the key nor the IBAN."""
    f = write_csv(tmp_path / "pay.csv", [payout_row(0, iban=CANARY_IBAN)])
    env = clean_env(
        tmp_path,
        BATCHPAY_LOG_LEVEL="debug",
        BATCHPAY_API_KEY=WRONG_KEY,
        BATCHPAY_API_URL=server.url,
    )
    done = invoke(tmp_path, ["run", str(f)], env)
    assert done.exit_code == 7, done.output
    assert "BATCHPAY_API_KEY" in done.stderr and no_traceback(done.output)
    _authorization_only(done, WRONG_KEY)
    assert leaks(_everything(tmp_path, [done], logs, [f])) == []


def test_a_key_from_a_file_leaks_nowhere(
    tmp_path: Path, server: Server, logs: pytest.LogCaptureFixture
) -> None:
    """BATCHPAY_API_KEY_FILE (a secret mount, with its newline): used, sent, never shown."""
    secret = tmp_path / "secrets" / "anton-key"
    secret.parent.mkdir()
    secret.write_text(CANARY_KEY + "\n")
    # A reference of its own: the module's server has paid the other tests' rows already,
    # and its ledger (rightly) reports those as paid to any new journal.
    f = write_csv(tmp_path / "pay.csv", [payout_row(0, iban=CANARY_IBAN, reference="INV-KEYFILE")])
    env = clean_env(
        tmp_path,
        BATCHPAY_LOG_LEVEL="debug",
        BATCHPAY_API_KEY_FILE=str(secret),
        BATCHPAY_API_URL=server.url,
    )
    done = invoke(tmp_path, ["run", str(f)], env)
    assert done.exit_code == 0, done.output
    _authorization_only(done, CANARY_KEY)
    assert leaks(_everything(tmp_path, [done], logs, [f, secret])) == []


def test_refused_rows_and_refused_configuration_leak_nowhere(
    tmp_path: Path, server: Server, logs: pytest.LogCaptureFixture
) -> None:
    """Invalid rows (exit 4, and paid around with --skip-invalid) and a live key (exit 6)."""
    rows = [
        payout_row(0, iban=CANARY_IBAN, amount="-5.00"),
        payout_row(3, iban=MISTYPED_IBAN),
        payout_row(6, iban=spaced(MISTYPED_IBAN)),
        payout_row(1),
    ]
    f = write_csv(tmp_path / "bad.csv", rows)
    env = clean_env(
        tmp_path,
        BATCHPAY_LOG_LEVEL="debug",
        BATCHPAY_API_KEY=CANARY_KEY,
        BATCHPAY_API_URL=server.url,
    )
    done = [invoke(tmp_path, ["validate", str(f)], env), invoke(tmp_path, ["run", str(f)], env)]
    for refused in done:
        assert refused.exit_code == 4, refused.output
        assert "row 3, column iban: fails the IBAN check digits" in refused.stderr
        assert refused.requests.requests == []
    done.append(invoke(tmp_path, ["run", str(f), "--skip-invalid"], env))
    assert done[-1].exit_code == 1, done[-1].output  # the invalid rows still need a person
    live = clean_env(
        tmp_path, BATCHPAY_LOG_LEVEL="debug", BATCHPAY_API_KEY=LIVE_KEY, BATCHPAY_API_URL=server.url
    )
    done.append(invoke(tmp_path, ["run", str(f)], live))
    assert done[-1].exit_code == 6 and "live key" in done[-1].stderr
    assert done[-1].requests.requests == []
    assert all(no_traceback(d.output) for d in done)
    assert leaks(_everything(tmp_path, done, logs, [f])) == []


def test_the_search_finds_each_way_a_canary_can_leak(tmp_path: Path) -> None:
    """The search is not blind: a key, an IBAN in any case or spacing, or part of one is found."""
    import sqlite3
    import zipfile
    from contextlib import closing

    assert leaks([("masked", f"paid to {masked(CANARY_IBAN)} with ak_test_…6789")]) == []
    assert leaks([("digest", "sha256 9f" + "de712718" + "a" * 40)]) == []  # chance, not a leak
    for planted in (
        CANARY_KEY.upper(),
        "key=CANARYKEY0123456789",
        spaced(CANARY_IBAN).lower(),
        "IBAN DE71 2718 2818 2845 9045 23",
        "DE712718…4523",  # the first eight characters shown
        "****45904523",  # masked too little
    ):
        assert leaks([("text", planted)]), planted
    with closing(sqlite3.connect(tmp_path / "journal.db")) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
        db.execute("INSERT INTO notes VALUES (?)", (f"iban={OTHER_IBAN}",))
        db.commit()
    with zipfile.ZipFile(tmp_path / "report.xlsx", "w") as book:
        book.writestr("xl/sharedStrings.xml", f"<t>{MISTYPED_IBAN}</t>")
    record = logging.LogRecord("batchpay", logging.DEBUG, "x", 1, "sent %s", (CANARY_KEY,), None)
    found = leaks([*file_texts(tmp_path), *log_texts([record])])
    assert any("table notes" in f and OTHER_IBAN in f for f in found)
    assert any("report.xlsx!xl/sharedStrings.xml" in f for f in found)
    assert any(f.startswith(f"API key {CANARY_KEY} in log") for f in found)


@pytest.fixture(scope="module")
def oauth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A sandbox server that accepts only the canary OAuth client and its DPoP key."""
    folder = tmp_path_factory.mktemp("oauth-server")
    public = folder / "canary.pub.jwk"
    public.write_text(json.dumps(CANARY_DPOP_KEY.public_jwk))
    with sandbox_server(folder, "--auth", "oauth", "--dpop-jwk", str(public),
                        "--oauth-client", f"{CANARY_CLIENT_ID}:{CANARY_CLIENT_SECRET}",
                        "--step-seconds", "0.05") as s:  # fmt: skip
        yield s


def _oauth_env(home: Path, url: str, secret: str = CANARY_CLIENT_SECRET) -> dict[str, str | None]:
    folder = home / "secrets"
    folder.mkdir(exist_ok=True)
    (folder / "client-secret").write_text(secret + "\n")
    (folder / "dpop.pem").write_bytes(CANARY_DPOP_KEY.pem())
    return clean_env(home, BATCHPAY_LOG_LEVEL="debug", BATCHPAY_API_URL=url,
                     BATCHPAY_CLIENT_ID=CANARY_CLIENT_ID,
                     BATCHPAY_CLIENT_SECRET_FILE=str(folder / "client-secret"),
                     BATCHPAY_DPOP_KEY_FILE=str(folder / "dpop.pem"))  # fmt: skip


def _dpop_only(done: CliRun, secret: str) -> None:
    """Every API request carried a DPoP token and proof, and neither the secret (in any
    form) nor the private key. (The token request itself is made inside the auth flow,
    where the spy does not see it; the server refusing a wrong secret shows it is sent.)"""
    assert done.requests.requests
    basic = base64.b64encode(f"{CANARY_CLIENT_ID}:{secret}".encode()).decode()
    for request in done.requests.requests:
        assert request.headers["authorization"].startswith("DPoP ") and request.headers["dpop"]
        texts = [str(request.url), request.content.decode(), *request.headers.values()]
        assert not any(secret in t or basic in t or "BEGIN" in t for t in texts)
        assert not any(m in t for m in KEY_MATERIAL for t in texts)


def test_an_oauth_run_leaks_neither_secret_nor_key(
    tmp_path: Path, oauth_server: Server, logs: pytest.LogCaptureFixture
) -> None:
    """run --wait, show, report, track, auth check with an OAuth client: no leak anywhere."""
    f = write_csv(tmp_path / "pay.csv", [payout_row(0, iban=CANARY_IBAN), payout_row(1)])
    env = _oauth_env(tmp_path, oauth_server.url)
    done = [invoke(tmp_path, ["run", str(f), "--wait", "--wait-timeout", "30"], env)]
    assert done[-1].exit_code == 0, done[-1].output
    _dpop_only(done[-1], CANARY_CLIENT_SECRET)
    for command in (["show"], ["report"], ["track", "--timeout", "5"], ["auth", "check"]):
        done.append(invoke(tmp_path, command, env))
        assert done[-1].exit_code == 0, done[-1].output
    assert "merchant:    mer_batchpaysandbox" in done[-1].output
    assert all(no_traceback(d.output) for d in done)
    secrets_folder = tmp_path / "secrets"
    inputs = [f, *secrets_folder.iterdir()]
    assert leaks(_everything(tmp_path, done, logs, inputs)) == []
    assert any(r.name == "batchpay.auth" for r in logs.records)  # its events were searched


def test_a_refused_oauth_secret_leaks_nowhere(
    tmp_path: Path, oauth_server: Server, logs: pytest.LogCaptureFixture
) -> None:
    """The token endpoint refuses the secret (exit 7): the message names no secret."""
    f = write_csv(tmp_path / "pay.csv", [payout_row(0, iban=CANARY_IBAN, reference="INV-OC")])
    wrong = "ant_ocs_test_CANARYWRONGSECRET987654"
    env = _oauth_env(tmp_path, oauth_server.url, secret=wrong)
    done = invoke(tmp_path, ["run", str(f)], env)
    assert done.exit_code == 7, done.output
    assert "BATCHPAY_CLIENT_SECRET" in done.stderr and no_traceback(done.output)
    assert wrong not in done.output
    inputs = [f, *(tmp_path / "secrets").iterdir()]
    assert leaks([*_everything(tmp_path, [done], logs, inputs), ("wrong", "")]) == []
    # Never answered: the balance check and the ledger look read beside it (runfast3).
    assert sorted(r.url.path for r in done.requests.requests) == ["/v1/balances", "/v1/batches"]


def test_the_search_finds_a_leaked_secret_or_key() -> None:
    """The new canaries are searched for too: the client secret, a PEM line, the key's d."""
    for planted in (CANARY_CLIENT_SECRET, KEY_MATERIAL[0], KEY_MATERIAL[-1].upper()):
        assert leaks([("text", f"oops {planted}")]), planted
