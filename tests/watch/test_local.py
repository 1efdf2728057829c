"""The drop-folder protocol on a local folder, against the in-process sandbox."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from batchpay.config import Settings
from batchpay.errors import ConfigError, ExitCode
from batchpay.sandbox import Sandbox
from batchpay.testing import write_csv
from batchpay.watch import LocalFolder, Outcome

from .conftest import DAY, drop, make_watcher, rows, sha256_of

pytestmark = pytest.mark.anyio

PROCESSED = f"processed/{DAY.isoformat()}"
FAILED = f"failed/{DAY.isoformat()}"


def _refs(sb: Sandbox) -> Counter[str]:
    return Counter(p["reference"] for p in sb.ledger())


async def test_dropped_file_with_marker_is_paid_once_and_answered_beside_it(
    sandbox: Sandbox, settings: Settings, inbox: Path
) -> None:
    """A file and its marker: paid, and processed/DATE holds it, its marker, result and reports."""
    batch = rows(0, 5)
    drop(inbox, "pay.csv", batch)
    watcher = make_watcher(LocalFolder(inbox), sandbox, settings)
    result = await watcher.run_pass()
    assert [(a.name, a.outcome, a.exit_code) for a in result.answers] == [
        ("pay.csv", Outcome.PROCESSED, 0)
    ]
    assert result.exit_code == 0
    assert _refs(sandbox) == Counter(r["reference"] for r in batch)
    done = inbox / PROCESSED
    assert sorted(p.name for p in done.iterdir()) == [
        "pay.csv", "pay.csv.ok", "pay.csv.report.csv", "pay.csv.report.xlsx",
        "pay.csv.result.json",
    ]  # fmt: skip
    answer = json.loads((done / "pay.csv.result.json").read_text())
    assert answer["outcome"] == "processed" and answer["exit_code"] == 0
    assert answer["run_id"] == result.answers[0].run_id
    assert answer["counts"] == {"pending": 5}
    assert answer["sha256"] == sha256_of(done / "pay.csv")
    assert isinstance(answer["totals"]["EUR"]["requested"]["amount"], str)
    assert not [p for p in (inbox / "processing").rglob("*") if p.is_file()]
    assert [p.name for p in inbox.iterdir() if p.is_file()] == []
    # A second pass has nothing to do.
    assert (await watcher.run_pass()).answers == []


async def test_file_without_marker_is_left_alone_and_temp_names_ignored(
    sandbox: Sandbox, settings: Settings, inbox: Path
) -> None:
    """No marker, no settling: untouched; *.part, *.tmp, ~$*, dot-files never taken."""
    drop(inbox, "nomarker.csv", rows(0, 2), marker=None)
    for name in ("upload.csv.part", "x.csv.tmp", "~$book.xlsx", ".hidden.csv"):
        drop(inbox, name, rows(10, 2))
    watcher = make_watcher(LocalFolder(inbox), sandbox, settings)
    result = await watcher.run_pass()
    assert result.answers == [] and result.exit_code == 0
    assert result.waiting == ["nomarker.csv"]
    assert sandbox.ledger() == []
    assert (inbox / "nomarker.csv").exists() and (inbox / "upload.csv.part").exists()


async def test_settle_mode_takes_a_file_only_once_it_stops_changing(
    sandbox: Sandbox, settings: Settings, inbox: Path
) -> None:
    """--settle: a growing file is left; the same file unchanged for the period is taken."""
    path = drop(inbox, "slow.csv", rows(0, 2), marker=None)
    watcher = make_watcher(LocalFolder(inbox), sandbox, settings, settle=0.3)
    assert (await watcher.run_pass()).answers == []
    import asyncio

    await asyncio.sleep(0.2)
    drop(inbox, "slow.csv", rows(0, 3), marker=None)  # still growing
    assert (await watcher.run_pass()).answers == []
    await asyncio.sleep(0.35)
    result = await watcher.run_pass()
    assert [a.outcome for a in result.answers] == [Outcome.PROCESSED]
    assert len(sandbox.ledger()) == 3
    assert not path.exists()


async def test_settle_wait_in_one_pass_takes_a_settled_file(
    sandbox: Sandbox, settings: Settings, inbox: Path
) -> None:
    """--once with --settle watches the file for the period and takes it in the same pass."""
    drop(inbox, "a.csv", rows(0, 2), marker=None)
    watcher = make_watcher(LocalFolder(inbox), sandbox, settings, settle=0.3)
    result = await watcher.run_pass(settle_wait=True)
    assert [a.outcome for a in result.answers] == [Outcome.PROCESSED]


async def test_same_file_dropped_again_lands_in_failed_naming_the_earlier_run(
    sandbox: Sandbox, settings: Settings, inbox: Path
) -> None:
    """Re-dropped after it was paid: failed/DATE, exit 5, the earlier run named; no new payout."""
    batch = rows(0, 3)
    drop(inbox, "pay.csv", batch)
    watcher = make_watcher(LocalFolder(inbox), sandbox, settings)
    first = (await watcher.run_pass()).answers[0]
    drop(inbox, "pay.csv", batch)
    again = await watcher.run_pass()
    assert [(a.outcome, a.exit_code) for a in again.answers] == [(Outcome.FAILED, 5)]
    assert again.exit_code == ExitCode.DUPLICATE_FILE
    answer = json.loads((inbox / FAILED / "pay.csv.result.json").read_text())
    assert answer["earlier_run"] == first.run_id and first.run_id in answer["reason"]
    assert answer["exit_code"] == 5 and answer["hint"]
    assert _refs(sandbox) == Counter(r["reference"] for r in batch)
    # The earlier answer in processed/ is untouched.
    assert (inbox / PROCESSED / "pay.csv.result.json").exists()


async def test_same_name_twice_in_a_day_never_overwrites_an_answer(
    sandbox: Sandbox, settings: Settings, inbox: Path
) -> None:
    """Two different files named pay.csv on one day: pay.csv and pay-2.csv, each answered."""
    watcher = make_watcher(LocalFolder(inbox), sandbox, settings)
    drop(inbox, "pay.csv", rows(0, 2))
    await watcher.run_pass()
    drop(inbox, "pay.csv", rows(20, 2))
    second = (await watcher.run_pass()).answers[0]
    assert second.outcome is Outcome.PROCESSED
    assert second.answer == f"{PROCESSED}/pay-2.csv"
    one = json.loads((inbox / PROCESSED / "pay.csv.result.json").read_text())
    two = json.loads((inbox / PROCESSED / "pay-2.csv.result.json").read_text())
    assert one["run_id"] != two["run_id"] and two["file"] == "pay.csv"
    assert (inbox / PROCESSED / "pay-2.csv.report.xlsx").exists()
    assert len(sandbox.ledger()) == 4


async def test_manifest_with_wrong_sha256_sends_the_file_to_failed(
    sandbox: Sandbox, settings: Settings, inbox: Path
) -> None:
    """A manifest whose sha256 is not the file's: failed/, exit 4, nothing sent."""
    drop(inbox, "pay.csv", rows(0, 2), marker=f'sha256 = "{"0" * 64}"\n')
    result = await make_watcher(LocalFolder(inbox), sandbox, settings).run_pass()
    assert [(a.outcome, a.exit_code) for a in result.answers] == [(Outcome.FAILED, 4)]
    answer = json.loads((inbox / FAILED / "pay.csv.result.json").read_text())
    assert "SHA-256" in answer["reason"] and answer["run_id"] is None
    assert (inbox / FAILED / "pay.csv.ok").exists()
    assert sandbox.ledger() == []


async def test_manifest_rows_and_totals_are_checked(
    sandbox: Sandbox, settings: Settings, inbox: Path
) -> None:
    """A right sha256 with a wrong row count: refused, naming the marker; a right one pays."""
    path = drop(inbox, "bad.csv", rows(0, 3), marker=None)
    (inbox / "bad.csv.ok").write_text(f'sha256 = "{sha256_of(path)}"\nrows = 4\n')
    good = drop(inbox, "good.csv", rows(10, 1), marker=None)
    row = rows(10, 1)[0]
    (inbox / "good.csv.ok").write_text(
        f'sha256 = "{sha256_of(good)}"\nrows = 1\n[totals]\n{row["currency"]} = "{row["amount"]}"\n'
    )
    result = await make_watcher(LocalFolder(inbox), sandbox, settings).run_pass()
    by_name = {a.name: a for a in result.answers}
    assert by_name["bad.csv"].outcome is Outcome.FAILED and by_name["bad.csv"].exit_code == 4
    assert "the marker bad.csv.ok declares 4" in by_name["bad.csv"].message
    assert by_name["good.csv"].outcome is Outcome.PROCESSED
    assert result.exit_code == 4
    assert len(sandbox.ledger()) == 1


async def test_invalid_file_is_answered_in_failed_with_its_issues(
    sandbox: Sandbox, settings: Settings, inbox: Path
) -> None:
    """An invalid row refuses the file: failed/, exit 4, every issue in result.json."""
    batch = rows(0, 2)
    batch[1]["iban"] = "DE00000000000000000000"
    batch[1]["payment_method"] = "iban"
    drop(inbox, "bad.csv", batch)
    drop(inbox, "garbage.xlsx", [], marker="")
    (inbox / "garbage.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    result = await make_watcher(LocalFolder(inbox), sandbox, settings).run_pass()
    codes = {a.name: (a.outcome, a.exit_code) for a in result.answers}
    assert codes == {"bad.csv": (Outcome.FAILED, 4), "garbage.xlsx": (Outcome.FAILED, 3)}
    answer = json.loads((inbox / FAILED / "bad.csv.result.json").read_text())
    assert answer["issues"] and answer["issues"][0]["row"] == 3
    assert sandbox.ledger() == []


async def test_ctl_sidecar_is_honoured(sandbox: Sandbox, settings: Settings, inbox: Path) -> None:
    """A .ctl beside the file declares controls as for `batchpay run`; it travels with it."""
    drop(inbox, "pay.csv", rows(0, 2))
    (inbox / "pay.csv.ctl").write_text("rows = 3\n")
    result = await make_watcher(LocalFolder(inbox), sandbox, settings).run_pass()
    assert result.answers[0].exit_code == 4
    assert "control file pay.csv.ctl" in result.answers[0].message
    assert (inbox / FAILED / "pay.csv.ctl").exists()


async def test_two_watchers_racing_on_ten_files_pay_each_once(
    sandbox: Sandbox, settings: Settings, inbox: Path, tmp_path: Path
) -> None:
    """Two watchers (own names, own journals) on one folder: each file paid once, answered once."""
    import asyncio

    from batchpay.testing import sandbox_settings

    expected: Counter[str] = Counter()
    for i in range(10):
        batch = rows(i * 3, 3)
        expected.update(r["reference"] for r in batch)
        drop(inbox, f"f{i}.csv", batch)
    a = make_watcher(LocalFolder(inbox), sandbox, settings, worker="a")
    b = make_watcher(LocalFolder(inbox), sandbox, sandbox_settings(tmp_path / "b"), worker="b")
    ra, rb = await asyncio.gather(a.run_pass(), b.run_pass())
    assert ra.answers and rb.answers, "one watcher took every file: no race happened"
    names = [x.name for x in ra.answers + rb.answers]
    assert sorted(names) == sorted(f"f{i}.csv" for i in range(10))
    assert _refs(sandbox) == expected
    answered = sorted(p.name for p in (inbox / PROCESSED).glob("*.result.json"))
    assert answered == sorted(f"f{i}.csv.result.json" for i in range(10))


async def test_unreachable_api_leaves_the_file_in_processing_and_the_next_pass_finishes_it(
    sandbox: Sandbox, settings: Settings, inbox: Path
) -> None:
    """API unreachable: exit 11, the file stays claimed (not failed/); next pass pays it once."""
    import httpx

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    drop(inbox, "pay.csv", rows(0, 3))
    down = make_watcher(LocalFolder(inbox), sandbox, settings, worker="w")
    down.transport = httpx.MockTransport(refuse)
    result = await down.run_pass()
    assert [(a.outcome, a.exit_code) for a in result.answers] == [(Outcome.RETRY, 11)]
    assert result.exit_code == ExitCode.API_ERROR
    assert (inbox / "processing" / "w" / "pay.csv").exists()
    assert (inbox / "processing" / "w" / "pay.csv.ok").exists()
    assert not (inbox / "failed").exists()
    up = await make_watcher(LocalFolder(inbox), sandbox, settings, worker="w").run_pass()
    assert [(a.outcome, a.exit_code) for a in up.answers] == [(Outcome.PROCESSED, 0)]
    assert len(sandbox.ledger()) == 3


async def test_a_claim_of_another_worker_is_left_alone(
    sandbox: Sandbox, settings: Settings, inbox: Path
) -> None:
    """A file in processing/other/ belongs to that watcher: this one never runs it (an old
    claim, perhaps abandoned, is said: see the test below)."""
    claimed = inbox / "processing" / "other"
    claimed.mkdir(parents=True)
    drop(claimed, "theirs.csv", rows(0, 2))
    at = datetime.now(UTC).isoformat()
    (claimed / "theirs.csv.claim.json").write_text(json.dumps({"claimed_at": at}))
    result = await make_watcher(LocalFolder(inbox), sandbox, settings, worker="me").run_pass()
    assert result.answers == [] and sandbox.ledger() == []
    assert (claimed / "theirs.csv").exists()


def test_exit_codes_combine_to_the_most_urgent() -> None:
    """Several files' outcomes: setup problems, then unfinished work, then refusals, then 1."""
    from batchpay.watch import combine_exit_codes

    assert combine_exit_codes([]) == 0
    assert combine_exit_codes([0, 0]) == 0
    assert combine_exit_codes([0, 1]) == 1
    assert combine_exit_codes([1, 4, 5]) == 5
    assert combine_exit_codes([5, 10]) == 10
    assert combine_exit_codes([10, 11, 4]) == 11
    assert combine_exit_codes([11, 6]) == 6


async def test_killed_after_paying_before_answering_is_answered_as_paid_not_duplicate(
    sandbox: Sandbox, settings: Settings, inbox: Path
) -> None:
    """A claim whose run finished before the watcher died is answered processed with that run."""
    from batchpay import pipeline
    from batchpay.source import PayoutFile

    mine = inbox / "processing" / "w"
    mine.mkdir(parents=True)
    (mine / "pay.csv.claim.json").write_text(
        json.dumps({"claimed_at": sandbox.clock.now().isoformat()})
    )
    path = drop(mine, "pay.csv", rows(0, 3))
    watcher = make_watcher(LocalFolder(inbox), sandbox, settings, worker="w")
    paid = await pipeline.run_async(
        PayoutFile("pay.csv", path.read_bytes()),
        settings=settings,
        options=watcher.options.run,
        transport=sandbox.transport(),
        clock=sandbox.clock.now,
    )
    result = await watcher.run_pass()
    assert [(a.outcome, a.exit_code, a.run_id) for a in result.answers] == [
        (Outcome.PROCESSED, 0, paid.run_id)
    ]
    assert (inbox / PROCESSED / "pay.csv.report.csv").exists()
    assert len(sandbox.ledger()) == 3


async def test_another_watchers_old_claim_that_may_be_alive_is_said_not_left_silently(
    inbox: Path, sandbox: Sandbox, settings: Settings
) -> None:
    """A claim of another host's watcher, an hour old, whose file has no run in this
    journal: it may still be worked on, so it is not taken — but the pass says it (exit
    10), with the worker name to restart, instead of ending in silence."""
    theirs = inbox / "processing" / "pod-old"
    theirs.mkdir(parents=True)
    write_csv(theirs / "pay.csv", rows(0, 2))
    claimed = datetime.now(UTC) - timedelta(hours=2)
    (theirs / "pay.csv.claim.json").write_text(json.dumps(
        {"claimed_at": claimed.isoformat(), "worker": "pod-old", "host": "elsewhere", "pid": 7}
    ))  # fmt: skip
    result = await make_watcher(LocalFolder(inbox), sandbox, settings).run_pass()
    (answer,) = result.answers
    assert (answer.outcome, result.exit_code) == (Outcome.RETRY, 10)
    assert "claimed by watcher pod-old" in answer.message and "--worker pod-old" in answer.hint
    assert (theirs / "pay.csv").exists() and sandbox.ledger() == []


async def test_a_second_live_watcher_under_the_same_name_is_refused(
    inbox: Path, sandbox: Sandbox, settings: Settings
) -> None:
    """Two watchers started with one name (a scaled service, equal host names): the second
    took the first's claim for its own and, answering it, crashed on the file the first
    had moved (exit 70). A claim of this name held by a live batchpay process on this host
    is now refused, with the name to change."""
    import socket
    import subprocess
    import sys

    mine = inbox / "processing" / "me"
    mine.mkdir(parents=True)
    write_csv(mine / "pay.csv", rows(0, 2))
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "batchpay"])
    try:
        (mine / "pay.csv.claim.json").write_text(json.dumps({
            "claimed_at": datetime.now(UTC).isoformat(), "worker": "me",
            "host": socket.gethostname(), "pid": other.pid,
        }))  # fmt: skip
        watcher = make_watcher(LocalFolder(inbox), sandbox, settings, worker="me")
        with pytest.raises(ConfigError, match="another watcher named me is running") as exc:
            await watcher.run_pass()
    finally:
        other.kill()
        other.wait()
    assert exc.value.exit_code == ExitCode.CONFIG and "--worker" in exc.value.hint
    assert sandbox.ledger() == [] and (mine / "pay.csv").exists()


async def test_a_resumed_claim_names_the_process_now_holding_it(
    inbox: Path, sandbox: Sandbox, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim left by a killed pass is resumed under the record of the pass resuming it:
    with the dead pass's pid left in it, another watcher took the claim for abandoned and
    adopted it while this one paid it (the file answered twice, a false exit 6)."""
    import os
    import socket

    from batchpay.watch import Watcher

    mine = inbox / "processing" / "me"
    mine.mkdir(parents=True)
    write_csv(mine / "pay.csv", rows(0, 2))
    (mine / "pay.csv.claim.json").write_text(json.dumps({
        "claimed_at": datetime.now(UTC).isoformat(), "worker": "me",
        "host": socket.gethostname(), "pid": 2**22 + 7,  # no such process
    }))  # fmt: skip
    seen: dict[str, object] = {}

    async def process(self: Watcher, name: str, *, recovered: bool) -> None:
        seen.update(await self.read_claim(name))

    monkeypatch.setattr(Watcher, "_process", process)
    await make_watcher(LocalFolder(inbox), sandbox, settings, worker="me").run_pass()
    assert seen["pid"] == os.getpid() and seen["host"] == socket.gethostname()
